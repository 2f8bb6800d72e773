package checksum

import (
	"bytes"
	"math/rand/v2"
	"testing"
)

func sumOf(a Algorithm, b []byte) []byte {
	h := New(a)
	h.Write(b)
	return h.Sum(nil)
}

// Combining the sums of two halves gives the sum of the whole, for every
// split point, lengths from 0 to beyond a few KiB, and each CRC.
func TestCombineMatchesDirect(t *testing.T) {
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, 0))
	data := make([]byte, 5000)
	for i := range data {
		data[i] = byte(r.Uint32())
	}
	lengths := []int{0, 1, 2, 3, 7, 8, 9, 63, 64, 65, 1000, 4096, 5000}
	for i := 0; i < 30; i++ {
		lengths = append(lengths, r.IntN(len(data)+1))
	}
	for _, a := range []Algorithm{CRC32, CRC32C, CRC64NVME} {
		for _, n := range lengths {
			whole := data[:n]
			for _, cut := range []int{0, n / 3, n / 2, n} {
				got, ok := Combine(a, sumOf(a, whole[:cut]), sumOf(a, whole[cut:]), int64(n-cut))
				if !ok || !bytes.Equal(got, sumOf(a, whole)) {
					t.Fatalf("%s len %d cut %d: got %x, want %x", a, n, cut, got, sumOf(a, whole))
				}
			}
		}
	}
}

// Many parts fold left into the sum of the object, as for a multipart
// upload's full-object checksum.
func TestCombineParts(t *testing.T) {
	var whole []byte
	var acc []byte
	for i := 0; i < 20; i++ {
		part := bytes.Repeat([]byte{byte(i), byte(3 * i)}, 100*i+1)
		whole = append(whole, part...)
		if acc == nil {
			acc = sumOf(CRC64NVME, part)
			continue
		}
		var ok bool
		acc, ok = Combine(CRC64NVME, acc, sumOf(CRC64NVME, part), int64(len(part)))
		if !ok {
			t.Fatal("not combined")
		}
	}
	if !bytes.Equal(acc, sumOf(CRC64NVME, whole)) {
		t.Fatalf("got %x, want %x", acc, sumOf(CRC64NVME, whole))
	}
	// A run of zeros as B, then a 5 GiB length: the cost grows with the
	// logarithm of the length, not with the length.
	zeros := make([]byte, 1<<16)
	got, _ := Combine(CRC32, sumOf(CRC32, []byte("abc")), sumOf(CRC32, zeros), int64(len(zeros)))
	if want := sumOf(CRC32, append([]byte("abc"), zeros...)); !bytes.Equal(got, want) {
		t.Fatalf("zeros: got %x, want %x", got, want)
	}
	if _, ok := Combine(CRC32, sumOf(CRC32, nil), sumOf(CRC32, nil), 5<<30); !ok {
		t.Fatal("large length refused")
	}
}

func TestCombineRefuses(t *testing.T) {
	for _, c := range []struct {
		a      Algorithm
		sa, sb []byte
		n      int64
	}{
		{SHA256, sumOf(SHA256, nil), sumOf(SHA256, nil), 0},
		{SHA1, sumOf(SHA1, nil), sumOf(SHA1, nil), 0},
		{CRC32, []byte{1, 2, 3}, sumOf(CRC32, nil), 0},
		{CRC64NVME, sumOf(CRC32, nil), sumOf(CRC64NVME, nil), 0},
		{CRC32C, sumOf(CRC32C, nil), sumOf(CRC32C, nil), -1},
	} {
		if _, ok := Combine(c.a, c.sa, c.sb, c.n); ok {
			t.Errorf("%s %x %x %d: combined", c.a, c.sa, c.sb, c.n)
		}
	}
}
