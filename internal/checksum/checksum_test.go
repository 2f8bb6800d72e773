package checksum

import (
	"encoding/binary"
	"encoding/hex"
	"hash/crc64"
	"math/rand/v2"
	"testing"
	"time"
)

// Check values for "123456789" from the CRC catalogue and the SHA specs.
func TestKnownValues(t *testing.T) {
	want := map[Algorithm]string{
		CRC32:     "cbf43926",
		CRC32C:    "e3069283",
		CRC64NVME: "ae8b14860a799888",
		SHA1:      "f7c3bc1d808e04732adf679965ccc34ca7ae3441",
		SHA256:    "15e2b0d3c33891ebb0f1ef609ec419420c20e320ce94c65fbc8c3312448eb225",
	}
	for _, a := range All {
		h := New(a)
		h.Write([]byte("123456789"))
		sum := h.Sum(nil)
		if got := hex.EncodeToString(sum); got != want[a] {
			t.Errorf("%s = %s, want %s", a, got, want[a])
		}
		if len(sum) != a.Size() {
			t.Errorf("%s size %d, want %d", a, len(sum), a.Size())
		}
		if b, ok := FromHeader(a.Header()); !ok || b != a {
			t.Errorf("FromHeader(%s) = %s %v", a.Header(), b, ok)
		}
	}
	if _, err := Parse("md5"); err == nil {
		t.Error("Parse(md5) succeeded")
	}
}

// The accelerated CRC64NVME must agree with the table-driven definition
// for every length and split, including the short and unaligned tails the
// vector code handles apart.
func TestCRC64NVMEMatchesTable(t *testing.T) {
	seed := time.Now().UnixNano()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(uint64(seed), 0))
	data := make([]byte, 1<<20+77)
	for i := range data {
		data[i] = byte(rng.Uint32())
	}
	for range 200 {
		n := rng.IntN(len(data))
		if rng.IntN(4) == 0 {
			n = rng.IntN(300)
		}
		off := rng.IntN(len(data) - n + 1)
		p := data[off : off+n]
		want := crc64.Checksum(p, nvme)
		h := New(CRC64NVME)
		for rest := p; len(rest) > 0; {
			k := min(len(rest), 1+rng.IntN(70000))
			h.Write(rest[:k])
			rest = rest[k:]
		}
		if got := binary.BigEndian.Uint64(h.Sum(nil)); got != want {
			t.Fatalf("seed %d: %d bytes at %d: %x, want %x", seed, n, off, got, want)
		}
	}
}

func BenchmarkNew1MiB(b *testing.B) {
	data := make([]byte, 1<<20)
	for _, a := range All {
		b.Run(string(a), func(b *testing.B) {
			h := New(a)
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				h.Write(data)
			}
		})
	}
}
