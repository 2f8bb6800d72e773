package hlc

import (
	"bytes"
	"errors"
	"math"
	"math/rand/v2"
	"sort"
	"testing"
	"time"
)

func TestClockSequence(t *testing.T) {
	type step struct {
		phys   int64 // physical ms at this step
		update *Timestamp
		want   Timestamp
	}
	ts := func(w int64, l uint32) *Timestamp { return &Timestamp{Wall: w, Logical: l} }
	tests := []struct {
		name  string
		steps []step
	}{
		{"physical advances", []step{
			{phys: 100, want: Timestamp{100, 0}},
			{phys: 101, want: Timestamp{101, 0}},
			{phys: 105, want: Timestamp{105, 0}},
		}},
		{"same millisecond counts", []step{
			{phys: 100, want: Timestamp{100, 0}},
			{phys: 100, want: Timestamp{100, 1}},
			{phys: 100, want: Timestamp{100, 2}},
			{phys: 101, want: Timestamp{101, 0}},
		}},
		{"physical goes backwards", []step{
			{phys: 100, want: Timestamp{100, 0}},
			{phys: 90, want: Timestamp{100, 1}},
			{phys: 95, want: Timestamp{100, 2}},
			{phys: 101, want: Timestamp{101, 0}},
		}},
		{"remote ahead", []step{
			{phys: 100, want: Timestamp{100, 0}},
			{phys: 100, update: ts(200, 7), want: Timestamp{200, 8}},
			{phys: 150, want: Timestamp{200, 9}},
			{phys: 201, want: Timestamp{201, 0}},
		}},
		{"remote behind", []step{
			{phys: 100, want: Timestamp{100, 0}},
			{phys: 120, update: ts(50, 3), want: Timestamp{120, 0}},
			{phys: 120, update: ts(120, 5), want: Timestamp{120, 6}},
		}},
		{"logical overflow", []step{
			{phys: 10, update: ts(10, math.MaxUint32), want: Timestamp{11, 0}},
		}},
		{"negative physical clamps", []step{
			{phys: -5, want: Timestamp{0, 1}},
			{phys: -5, want: Timestamp{0, 2}},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var phys int64
			c := New(func() time.Time { return time.UnixMilli(phys) })
			for i, s := range tt.steps {
				phys = s.phys
				var got Timestamp
				if s.update != nil {
					got = c.Update(*s.update)
					if !s.update.Less(got) {
						t.Fatalf("step %d: Update(%v) = %v, not after remote", i, *s.update, got)
					}
				} else {
					got = c.Now()
				}
				if got != s.want {
					t.Fatalf("step %d: got %v, want %v", i, got, s.want)
				}
			}
		})
	}
}

func TestStringRoundTripAndOrder(t *testing.T) {
	seed := time.Now().UnixNano()
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(uint64(seed), 1))
	var tss []Timestamp
	for i := 0; i < 2000; i++ {
		tss = append(tss, Timestamp{Wall: r.Int64N(MaxWall + 1), Logical: r.Uint32()})
	}
	tss = append(tss, Timestamp{}, Timestamp{MaxWall, math.MaxUint32}, Timestamp{1, 0}, Timestamp{0, 1})
	for _, ts := range tss {
		s := ts.String()
		if len(s) != StringLen {
			t.Fatalf("%v: len %d", ts, len(s))
		}
		got, err := Parse(s)
		if err != nil || got != ts {
			t.Fatalf("Parse(%q) = %v, %v; want %v", s, got, err, ts)
		}
		b := ts.AppendBinary(nil)
		gb, err := FromBinary(b)
		if err != nil || gb != ts {
			t.Fatalf("FromBinary = %v, %v; want %v", gb, err, ts)
		}
	}
	sort.Slice(tss, func(i, j int) bool { return tss[i].Less(tss[j]) })
	for i := 1; i < len(tss); i++ {
		a, b := tss[i-1], tss[i]
		if a == b {
			continue
		}
		if !(a.String() < b.String()) {
			t.Fatalf("string order: %v !< %v", a, b)
		}
		if bytes.Compare(a.AppendBinary(nil), b.AppendBinary(nil)) >= 0 {
			t.Fatalf("binary order: %v !< %v", a, b)
		}
	}
}

func TestParseRejects(t *testing.T) {
	for _, s := range []string{
		"", "0", "0000000000000000000", "000000000000000000000",
		"00000000000A00000000", "0000000000g000000000", "null",
		"0000000000 000000000", "-00000000000000000000"[:20],
	} {
		if _, err := Parse(s); !errors.Is(err, ErrInvalid) {
			t.Errorf("Parse(%q) err = %v, want ErrInvalid", s, err)
		}
	}
	if _, err := FromBinary(make([]byte, 11)); !errors.Is(err, ErrInvalid) {
		t.Errorf("short binary accepted")
	}
	if _, err := FromBinary(bytes.Repeat([]byte{0xff}, 12)); !errors.Is(err, ErrInvalid) {
		t.Errorf("out of range wall accepted")
	}
}

func TestConcurrentNowIsUnique(t *testing.T) {
	c := New(func() time.Time { return time.UnixMilli(1000) })
	const G, N = 8, 500
	out := make(chan Timestamp, G*N)
	done := make(chan struct{})
	for g := 0; g < G; g++ {
		go func() {
			for i := 0; i < N; i++ {
				out <- c.Now()
			}
			done <- struct{}{}
		}()
	}
	for g := 0; g < G; g++ {
		<-done
	}
	close(out)
	seen := map[Timestamp]bool{}
	for ts := range out {
		if seen[ts] {
			t.Fatalf("duplicate %v", ts)
		}
		seen[ts] = true
	}
}

func FuzzParse(f *testing.F) {
	f.Add("0000000000000000000")
	f.Add(Timestamp{Wall: 1700000000000, Logical: 3}.String())
	f.Fuzz(func(t *testing.T, s string) {
		ts, err := Parse(s)
		if err != nil {
			return
		}
		if ts.String() != s {
			t.Fatalf("round trip %q -> %q", s, ts.String())
		}
	})
}

func FuzzFromBinary(f *testing.F) {
	f.Add(Timestamp{Wall: 5, Logical: 9}.AppendBinary(nil))
	f.Fuzz(func(t *testing.T, b []byte) {
		ts, err := FromBinary(b)
		if err != nil {
			return
		}
		if !bytes.Equal(ts.AppendBinary(nil), b) {
			t.Fatalf("round trip %x", b)
		}
	})
}

func TestPrevIsTheGreatestBefore(t *testing.T) {
	for _, ts := range []Timestamp{{Wall: 5, Logical: 3}, {Wall: 5}, {Wall: MaxWall, Logical: math.MaxUint32}, {Logical: 1}} {
		p, ok := ts.Prev()
		if !ok || !p.Less(ts) || p.Next() != ts {
			t.Errorf("%v.Prev() = %v, %v; want the timestamp whose Next is %v", ts, p, ok, ts)
		}
	}
	if _, ok := (Timestamp{}).Prev(); ok {
		t.Error("the zero timestamp has a predecessor")
	}
}
