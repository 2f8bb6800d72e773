package membership

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func TestMetaRoundTrip(t *testing.T) {
	for _, m := range []NodeMeta{
		{},
		{Zone: "eu-west-1a", RPCAddr: "10.0.0.1:7947", S3Addr: "10.0.0.1:9000", AdminAddr: "10.0.0.1:9001", Version: "v0.3.1"},
		{Zone: "ζώνη", Version: strings.Repeat("v", 300)},
	} {
		for _, flags := range []metaFlags{0, flagLeaving, 0xff} {
			b, err := encodeMeta(m, flags)
			if err != nil {
				t.Fatalf("encode %+v: %v", m, err)
			}
			if b[0] != metaVersion {
				t.Fatalf("version byte %d, want %d", b[0], metaVersion)
			}
			got, gotFlags, err := decodeMeta(b)
			if err != nil || got != m || gotFlags != flags {
				t.Fatalf("round trip of %+v, %x: got %+v, %x, %v", m, flags, got, gotFlags, err)
			}
		}
	}
}

func TestMetaLimits(t *testing.T) {
	// Version, flags and 5 length prefixes leave 500 bytes of text.
	fits := NodeMeta{Zone: strings.Repeat("z", MaxMetaSize-12)}
	if b, err := encodeMeta(fits, 0); err != nil || len(b) != MaxMetaSize {
		t.Fatalf("meta of exactly %d bytes: len %d, err %v", MaxMetaSize, len(b), err)
	}
	over := NodeMeta{Zone: strings.Repeat("z", MaxMetaSize-11)}
	if _, err := encodeMeta(over, 0); !errors.Is(err, ErrMetaTooLarge) {
		t.Fatalf("oversize meta: err %v, want ErrMetaTooLarge", err)
	}
	cfg := testConfig("n1", goodSecret, ProfileLocal)
	cfg.Meta = over
	if err := cfg.Validate(); !errors.Is(err, ErrMetaTooLarge) || !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("Validate with oversize meta: %v", err)
	}
}

func TestDecodeMetaRejects(t *testing.T) {
	good, _ := encodeMeta(NodeMeta{Zone: "z", S3Addr: "a:1"}, 0)
	for _, tc := range []struct {
		name string
		in   []byte
		want error
	}{
		{"empty", nil, ErrMetaCorrupt},
		{"future version", append([]byte{2}, good[1:]...), ErrMetaVersion},
		{"truncated", good[:len(good)-1], ErrMetaCorrupt},
		{"no flags", good[:1], ErrMetaCorrupt},
		{"truncated length", good[:3], ErrMetaCorrupt},
		{"trailing", append(bytes.Clone(good), 0), ErrMetaCorrupt},
		{"too large", append([]byte{1}, make([]byte, MaxMetaSize)...), ErrMetaTooLarge},
	} {
		if _, _, err := decodeMeta(tc.in); !errors.Is(err, tc.want) {
			t.Errorf("%s: err %v, want %v", tc.name, err, tc.want)
		}
	}
}

func FuzzDecodeMeta(f *testing.F) {
	for _, m := range []NodeMeta{{}, {Zone: "a", RPCAddr: "127.0.0.1:1", S3Addr: "x", AdminAddr: "y", Version: "v1"}} {
		b, _ := encodeMeta(m, flagLeaving)
		f.Add(b)
	}
	f.Add([]byte{})
	f.Add([]byte{2, 0, 0, 0})
	f.Add([]byte{1, 0, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, in []byte) {
		m, flags, err := decodeMeta(in)
		if err != nil {
			return
		}
		out, err := encodeMeta(m, flags)
		if err != nil {
			t.Fatalf("decoded %+v does not encode: %v", m, err)
		}
		if !bytes.Equal(out, in) {
			t.Fatalf("decode then encode changed the bytes:\n in %x\nout %x", in, out)
		}
	})
}
