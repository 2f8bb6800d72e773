package erasure

import (
	"bytes"
	"errors"
	"testing"

	"pgregory.net/rapid"
)

func newCoder(t rapid.TB, k, m int, mirrored bool) Coder {
	var c Coder
	var err error
	if mirrored {
		c, err = NewMirror(m + 1)
	} else {
		c, err = New(k, m)
	}
	if err != nil {
		t.Fatalf("new coder: %v", err)
	}
	return c
}

// Any m erasures of a coded chunk reconstruct it exactly.
func TestReconstructAnyErasures(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		mirrored := rapid.Bool().Draw(t, "mirror")
		k := 1
		if !mirrored {
			k = rapid.IntRange(1, 10).Draw(t, "k")
		}
		m := rapid.IntRange(1, 4).Draw(t, "m")
		c := newCoder(t, k, m, mirrored)
		data := rapid.SliceOfN(rapid.Byte(), 1, 5000).Draw(t, "data")
		n := len(data)

		buf := make([]byte, n, c.StripeSize(n))
		copy(buf, data)
		shards := make([][]byte, c.Shards())
		if err := c.Encode(buf, shards); err != nil {
			t.Fatal(err)
		}
		// Copy the shards out: the stripe buffer is the reader's to reuse.
		stored := make([][]byte, len(shards))
		for i, s := range shards {
			if len(s) != c.ShardSize(n) {
				t.Fatalf("shard %d has %d bytes, want %d", i, len(s), c.ShardSize(n))
			}
			stored[i] = bytes.Clone(s)
		}

		lost := rapid.SliceOfNDistinct(rapid.IntRange(0, k+m-1), 0, m, rapid.ID[int]).Draw(t, "lost")
		dataOnly := rapid.Bool().Draw(t, "dataOnly")
		got := make([][]byte, len(stored))
		for i := range stored {
			got[i] = bytes.Clone(stored[i])
		}
		for _, i := range lost {
			got[i] = got[i][:0]
		}
		if err := c.Reconstruct(got, n, dataOnly); err != nil {
			t.Fatal(err)
		}
		out := make([]byte, n)
		if err := c.Join(out, got, n); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(out, data) {
			t.Fatalf("reconstructed chunk differs after losing %v", lost)
		}
		if !dataOnly {
			for i := range got {
				if !bytes.Equal(got[i], stored[i]) {
					t.Fatalf("shard %d differs after losing %v", i, lost)
				}
			}
		}
	})
}

func TestTooManyErasures(t *testing.T) {
	c, err := New(2, 2)
	if err != nil {
		t.Fatal(err)
	}
	data := []byte("hello, redoubt")
	shards := make([][]byte, 4)
	if err := c.Encode(data, shards); err != nil {
		t.Fatal(err)
	}
	shards[0], shards[1], shards[3] = nil, nil, nil
	if err := c.Reconstruct(shards, len(data), false); !errors.Is(err, ErrTooFewShards) {
		t.Fatalf("got %v, want ErrTooFewShards", err)
	}
	m, _ := NewMirror(2)
	if err := m.Reconstruct([][]byte{nil, nil}, 3, false); !errors.Is(err, ErrTooFewShards) {
		t.Fatalf("mirror: got %v, want ErrTooFewShards", err)
	}
}

// Encode must code in place when the buffer has room: no copy, shards alias
// the chunk.
func TestEncodeInPlace(t *testing.T) {
	c, _ := New(4, 2)
	n := 1000
	buf := make([]byte, n, c.StripeSize(n))
	for i := range buf {
		buf[i] = byte(i)
	}
	shards := make([][]byte, 6)
	if err := c.Encode(buf, shards); err != nil {
		t.Fatal(err)
	}
	if &shards[0][0] != &buf[0] {
		t.Fatal("data shard 0 does not alias the chunk")
	}
	if allocs := testing.AllocsPerRun(10, func() { _ = c.Encode(buf, shards) }); allocs > 2 {
		t.Fatalf("Encode allocates %.0f times", allocs)
	}
}

func TestNewRejects(t *testing.T) {
	for _, km := range [][2]int{{0, 1}, {1, 0}, {200, 100}, {-1, 2}} {
		if _, err := New(km[0], km[1]); err == nil {
			t.Errorf("New(%d, %d) succeeded", km[0], km[1])
		}
	}
	if _, err := NewMirror(0); err == nil {
		t.Error("NewMirror(0) succeeded")
	}
}

func BenchmarkEncode2plus2(b *testing.B) {
	c, _ := New(2, 2)
	n := 2 << 20
	buf := make([]byte, n, c.StripeSize(n))
	shards := make([][]byte, 4)
	b.SetBytes(int64(n))
	for b.Loop() {
		if err := c.Encode(buf, shards); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkReconstruct2plus2(b *testing.B) {
	c, _ := New(2, 2)
	n := 2 << 20
	buf := make([]byte, n, c.StripeSize(n))
	shards := make([][]byte, 4)
	_ = c.Encode(buf, shards)
	b.SetBytes(int64(n))
	for b.Loop() {
		shards[0] = shards[0][:0]
		if err := c.Reconstruct(shards, n, true); err != nil {
			b.Fatal(err)
		}
	}
}
