package bench

import (
	"bytes"
	"io"
	"math/rand/v2"
	"testing"
)

func TestPayload(t *testing.T) {
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, 1))
	block := make([]byte, 1000)
	for i := range block {
		block[i] = byte(r.Uint32())
	}
	for _, size := range []int64{0, 1, 15, 16, 17, 999, 1000, 1016, 5000} {
		p := newPayload(block, 42, size)
		all, err := io.ReadAll(p)
		if err != nil || int64(len(all)) != size {
			t.Fatalf("size %d: read %d bytes, %v", size, len(all), err)
		}
		// Reading again after a rewind, in odd-sized pieces, gives the same bytes.
		if _, err := p.Seek(0, io.SeekStart); err != nil {
			t.Fatal(err)
		}
		var again bytes.Buffer
		buf := make([]byte, 1+r.IntN(300))
		if _, err := io.CopyBuffer(&again, struct{ io.Reader }{p}, buf); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(all, again.Bytes()) {
			t.Fatalf("size %d: second read differs", size)
		}
		if size > 0 {
			if end, _ := p.Seek(0, io.SeekEnd); end != size {
				t.Fatalf("SeekEnd = %d; want %d", end, size)
			}
		}
	}
	a, _ := io.ReadAll(newPayload(block, 1, 4096))
	b, _ := io.ReadAll(newPayload(block, 2, 4096))
	if bytes.Equal(a, b) || bytes.Equal(a[headerSize:], b[headerSize:]) {
		t.Fatalf("two objects have the same body")
	}
}
