package checksum

import (
	"encoding/hex"
	"testing"
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
