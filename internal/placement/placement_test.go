package placement

import (
	"errors"
	"fmt"
	"math"
	"testing"
)

func TestDefaultPolicy(t *testing.T) {
	tests := []struct {
		drives int
		want   Policy
		str    string
	}{
		{0, Policy{1, 0, true}, "single copy"},
		{1, Policy{1, 0, true}, "single copy"},
		{2, Policy{1, 1, true}, "mirror x2"},
		{3, Policy{2, 1, false}, "EC 2+1"},
		{4, Policy{2, 2, false}, "EC 2+2"},
		{5, Policy{3, 2, false}, "EC 3+2"},
		{6, Policy{4, 2, false}, "EC 4+2"},
		{7, Policy{5, 2, false}, "EC 5+2"},
		{8, Policy{6, 2, false}, "EC 6+2"},
		{9, Policy{6, 3, false}, "EC 6+3"},
		{10, Policy{7, 3, false}, "EC 7+3"},
		{12, Policy{9, 3, false}, "EC 9+3"},
		{16, Policy{13, 3, false}, "EC 13+3"},
		{40, Policy{13, 3, false}, "EC 13+3"},
	}
	for _, tt := range tests {
		got := DefaultPolicy(tt.drives)
		if got != tt.want || got.String() != tt.str {
			t.Errorf("DefaultPolicy(%d) = %+v %q, want %+v %q", tt.drives, got, got, tt.want, tt.str)
		}
	}
	for n := 1; n <= 64; n++ {
		p := DefaultPolicy(n)
		if err := p.Validate(); err != nil {
			t.Errorf("DefaultPolicy(%d) invalid: %v", n, err)
		}
		if p.Shards() > n {
			t.Errorf("DefaultPolicy(%d) = %v needs %d drives", n, p, p.Shards())
		}
		if n >= 4 && p.Tolerates() < 2 {
			t.Errorf("DefaultPolicy(%d) = %v survives %d losses", n, p, p.Tolerates())
		}
		if n >= 6 && p.Overhead() > 1.5 {
			t.Errorf("DefaultPolicy(%d) = %v overhead %.2f", n, p, p.Overhead())
		}
	}
}

func TestWriteQuorum(t *testing.T) {
	tests := []struct {
		p    Policy
		want int
	}{
		{Policy{1, 0, true}, 1},
		{Policy{1, 1, true}, 2},
		{Policy{1, 2, true}, 2},
		{Policy{2, 1, false}, 3},
		{Policy{2, 2, false}, 3},
		{Policy{6, 3, false}, 7},
	}
	for _, tt := range tests {
		if got := tt.p.WriteQuorum(); got != tt.want {
			t.Errorf("%v.WriteQuorum() = %d, want %d", tt.p, got, tt.want)
		}
	}
}

func TestParse(t *testing.T) {
	tests := []struct {
		in   string
		want Policy
		err  bool
	}{
		{"2+2", Policy{2, 2, false}, false},
		{" 4 + 2 ", Policy{4, 2, false}, false},
		{"EC 6+3", Policy{6, 3, false}, false},
		{"mirror x2", Policy{1, 1, true}, false},
		{"x3", Policy{1, 2, true}, false},
		{"single copy", Policy{1, 0, true}, false},
		{"2+0", Policy{}, true},
		{"0+2", Policy{}, true},
		{"2-2", Policy{}, true},
		{"a+b", Policy{}, true},
		{"30+3", Policy{}, true},
		{"x0", Policy{}, true},
		{"", Policy{}, true},
	}
	for _, tt := range tests {
		got, err := Parse(tt.in)
		if (err != nil) != tt.err || got != tt.want {
			t.Errorf("Parse(%q) = %+v, %v; want %+v, err=%v", tt.in, got, err, tt.want, tt.err)
		}
		if err != nil && !errors.Is(err, ErrInvalid) {
			t.Errorf("Parse(%q) error %v is not ErrInvalid", tt.in, err)
		}
		if err == nil {
			back, err := Parse(got.String())
			if err != nil || back != got {
				t.Errorf("Parse(%q) = %+v, %v; want %+v", got.String(), back, err, got)
			}
		}
	}
}

func TestPartitionOfUnambiguous(t *testing.T) {
	if KeyHash("ab", "c") == KeyHash("a", "bc") {
		t.Fatal("(ab,c) and (a,bc) hash alike")
	}
	if KeyHash("", "abc") == KeyHash("abc", "") {
		t.Fatal("(,abc) and (abc,) hash alike")
	}
	// Stable across releases: data placement depends on it.
	if got := PartitionOf("bucket", "key", 256); got != PartitionOf("bucket", "key", 256) {
		t.Fatal("unstable")
	}
	if PartitionOf("b", "k", 0) != 0 {
		t.Fatal("partitions=0 must give 0")
	}
}

func TestPartitionOfBalance(t *testing.T) {
	const keys, parts = 100_000, 256
	var counts [parts]int
	for i := range keys {
		counts[PartitionOf("photos", fmt.Sprintf("2024/07/img_%06d.jpg", i), parts)]++
	}
	mean := float64(keys) / parts
	var chi2 float64
	lo, hi := keys, 0
	for _, c := range counts {
		d := float64(c) - mean
		chi2 += d * d / mean
		lo, hi = min(lo, c), max(hi, c)
	}
	// 255 degrees of freedom: mean 255, sd ~22.6; 400 is beyond 6 sd.
	if chi2 > 400 {
		t.Fatalf("chi2 = %.1f over %d partitions (min %d max %d)", chi2, parts, lo, hi)
	}
	if float64(hi) > 1.2*mean || float64(lo) < 0.8*mean {
		t.Fatalf("partition sizes %d..%d, mean %.0f", lo, hi, mean)
	}
	t.Logf("chi2=%.1f min=%d max=%d mean=%.0f sd=%.1f", chi2, lo, hi, mean, math.Sqrt(chi2*mean/parts))
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"2+2", "EC 6+3", "mirror x2", "x1", "single copy", "+", "9999999999999999999+1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := Parse(s)
		if err != nil {
			return
		}
		if err := p.Validate(); err != nil {
			t.Fatalf("Parse(%q) = %+v, invalid: %v", s, p, err)
		}
		back, err := Parse(p.String())
		if err != nil || back != p {
			t.Fatalf("round trip of %q: %+v -> %q -> %+v, %v", s, p, p.String(), back, err)
		}
	})
}

func BenchmarkPartitionOf(b *testing.B) {
	for b.Loop() {
		PartitionOf("bucket", "some/fairly/long/object/key.jpg", 256)
	}
}
