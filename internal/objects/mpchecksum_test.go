package objects

import (
	"encoding/base64"
	"errors"
	"strings"
	"testing"

	"github.com/redoubt-io/redoubt/internal/checksum"
)

// uploadWith creates an upload with algorithm alg and type typ and sends
// parts of the given sizes, each with its checksum.
func (e *env) uploadWith(key, alg, typ string, sizes ...int) (id string, parts []CompletePart, whole string) {
	e.t.Helper()
	id, err := e.s.CreateMultipartUpload(e.ctx, "mpb", key, PutOptions{ChecksumAlgorithm: alg, Checksums: Checksums{Type: typ}})
	if err != nil {
		e.t.Fatal(err)
	}
	for i, n := range sizes {
		data := big(n, byte(i+1))
		whole += data
		pi, err := e.s.UploadPart(e.ctx, "mpb", key, id, i+1, strings.NewReader(data), int64(n), PartOptions{})
		if err != nil {
			e.t.Fatal(err)
		}
		parts = append(parts, CompletePart{Number: i + 1, ETag: pi.ETag, Checksums: pi.Checksums})
	}
	return id, parts, whole
}

// A FULL_OBJECT upload's checksum is the CRC of the whole object,
// computed from the parts' CRCs; CRC64NVME is FULL_OBJECT by default,
// the other algorithms COMPOSITE.
func TestCompleteFullObjectChecksum(t *testing.T) {
	e := newEnv(t)
	e.bucket("mpb", Unversioned)
	for _, c := range []struct{ alg, typ, want string }{
		{"CRC32", "FULL_OBJECT", "FULL_OBJECT"},
		{"CRC32C", "FULL_OBJECT", "FULL_OBJECT"},
		{"CRC64NVME", "FULL_OBJECT", "FULL_OBJECT"},
		{"CRC64NVME", "", "FULL_OBJECT"},
		{"CRC32", "", "COMPOSITE"},
		{"SHA1", "", "COMPOSITE"},
	} {
		a := checksum.Algorithm(c.alg)
		id, parts, whole := e.uploadWith("k", c.alg, c.typ, 30, 17, 11)
		oi, err := e.s.CompleteMultipartUpload(e.ctx, "mpb", "k", id, parts, CompleteOptions{})
		if err != nil {
			t.Fatalf("%s %s: %v", c.alg, c.typ, err)
		}
		got := *oi.Checksums.Field(a)
		if oi.Checksums.Type != c.want {
			t.Fatalf("%s %s: type %q, want %s", c.alg, c.typ, oi.Checksums.Type, c.want)
		}
		if c.want == "FULL_OBJECT" && got != sumOf(a, whole) {
			t.Fatalf("%s: got %s, want %s", c.alg, got, sumOf(a, whole))
		}
		if c.want == "COMPOSITE" && !strings.HasSuffix(got, "-3") {
			t.Fatalf("%s composite: %s", c.alg, got)
		}
	}
	if _, err := e.s.CreateMultipartUpload(e.ctx, "mpb", "k", PutOptions{ChecksumAlgorithm: "SHA256", Checksums: Checksums{Type: "FULL_OBJECT"}}); !errors.Is(err, ErrInvalidRequest) {
		t.Fatalf("full-object sha256: %v", err)
	}
}

func TestCompleteVerifiesChecksums(t *testing.T) {
	e := newEnv(t)
	e.bucket("mpb", Unversioned)
	complete := func(id string, parts []CompletePart, opts CompleteOptions) error {
		_, err := e.s.CompleteMultipartUpload(e.ctx, "mpb", "k", id, parts, opts)
		return err
	}
	id, parts, whole := e.uploadWith("k", "CRC32C", "FULL_OBJECT", 20, 20)
	right := sumOf(checksum.CRC32C, whole)
	wrong := sumOf(checksum.CRC32C, "other")
	other := parts[0].Checksums.CRC32C
	withPart0 := func(c Checksums) []CompletePart {
		ps := append([]CompletePart(nil), parts...)
		ps[0].Checksums = c
		return ps
	}
	for name, c := range map[string]struct {
		parts []CompletePart
		opts  CompleteOptions
		want  error
	}{
		"wrong part value":      {withPart0(Checksums{CRC32C: parts[1].Checksums.CRC32C}), CompleteOptions{}, ErrInvalidPart},
		"part of other kind":    {withPart0(Checksums{SHA256: sumOf(checksum.SHA256, "x")}), CompleteOptions{}, ErrChecksumMismatch},
		"part not base64":       {withPart0(Checksums{CRC32C: "invalid_checksum"}), CompleteOptions{}, ErrInvalidArgument},
		"two part checksums":    {withPart0(Checksums{CRC32C: other, SHA1: sumOf(checksum.SHA1, "x")}), CompleteOptions{}, ErrInvalidArgument},
		"wrong whole value":     {parts, CompleteOptions{Checksums: Checksums{CRC32C: wrong}}, ErrChecksumMismatch},
		"whole of a part":       {parts, CompleteOptions{Checksums: Checksums{CRC32C: other}}, ErrChecksumMismatch},
		"whole not base64":      {parts, CompleteOptions{Checksums: Checksums{CRC32C: "invalid_crc32c"}}, ErrInvalidRequest},
		"two whole checksums":   {parts, CompleteOptions{Checksums: Checksums{CRC32C: right, CRC32: sumOf(checksum.CRC32, whole)}}, ErrInvalidRequest},
		"whole of another kind": {parts, CompleteOptions{Checksums: Checksums{CRC32: sumOf(checksum.CRC32, whole)}}, ErrInvalidRequest},
		"other checksum type":   {parts, CompleteOptions{Checksums: Checksums{Type: "COMPOSITE"}}, ErrInvalidRequest},
	} {
		if err := complete(id, c.parts, c.opts); !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", name, err, c.want)
		}
	}
	// A full-object upload may leave the parts' checksums out; the whole
	// value, when sent, must be the object's.
	oi, err := e.s.CompleteMultipartUpload(e.ctx, "mpb", "k", id, []CompletePart{{1, parts[0].ETag, Checksums{}}, {2, parts[1].ETag, Checksums{}}},
		CompleteOptions{Checksums: Checksums{CRC32C: right, Type: "FULL_OBJECT"}})
	if err != nil || oi.Checksums.CRC32C != right {
		t.Fatalf("complete: %+v %v", oi.Checksums, err)
	}

	// Composite: the sent value may carry the part count or not.
	for _, suffix := range []string{"-2", ""} {
		id, parts, _ := e.uploadWith("k", "SHA256", "", 20, 20)
		h := checksum.New(checksum.SHA256)
		for _, p := range parts {
			raw, _ := base64.StdEncoding.DecodeString(p.Checksums.SHA256)
			h.Write(raw)
		}
		want := checksum.Encode(h.Sum(nil))
		if err := complete(id, parts, CompleteOptions{Checksums: Checksums{SHA256: want + "-3"}}); !errors.Is(err, ErrChecksumMismatch) {
			t.Fatalf("wrong part count: %v", err)
		}
		if err := complete(id, parts, CompleteOptions{Checksums: Checksums{SHA256: want + "-x"}}); !errors.Is(err, ErrInvalidRequest) {
			t.Fatalf("bad part count: %v", err)
		}
		oi, err := e.s.CompleteMultipartUpload(e.ctx, "mpb", "k", id, parts, CompleteOptions{Checksums: Checksums{SHA256: want + suffix}})
		if err != nil || oi.Checksums.SHA256 != want+"-2" || oi.Checksums.Type != "COMPOSITE" {
			t.Fatalf("composite %q: %+v %v", suffix, oi.Checksums, err)
		}
	}
	// An upload without a checksum ignores a whole-object value.
	id, parts, _ = e.uploadWith("k", "", "", 20, 20)
	if err := complete(id, parts, CompleteOptions{Checksums: Checksums{CRC64NVME: sumOf(checksum.CRC64NVME, "x")}}); err != nil {
		t.Fatal(err)
	}
}

// Completing an upload again with the same parts answers the object the
// first completion made, as S3 does; other parts, or an aborted upload,
// are still NoSuchUpload.
func TestCompleteTwice(t *testing.T) {
	e := newEnv(t)
	e.bucket("mpb", Enabled)
	id, parts, whole := e.uploadWith("k", "", "", 20, 7)
	first, err := e.s.CompleteMultipartUpload(e.ctx, "mpb", "k", id, parts, CompleteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	again, err := e.s.CompleteMultipartUpload(e.ctx, "mpb", "k", id, parts, CompleteOptions{})
	if err != nil || again.ETag != first.ETag || again.VersionID != first.VersionID || again.Size != first.Size {
		t.Fatalf("second completion: %+v %v, first %+v", again, err, first)
	}
	if vs := versionsOf(t, e, "mpb"); len(vs) != 1 {
		t.Fatalf("versions after two completions: %v", vs)
	}
	if e.mustGet("mpb", "k", GetOptions{}) != whole {
		t.Fatal("content")
	}
	if _, err := e.s.CompleteMultipartUpload(e.ctx, "mpb", "k", id, parts[:1], CompleteOptions{}); !errors.Is(err, ErrNoSuchUpload) {
		t.Fatalf("other parts: %v", err)
	}
	id2, parts2, _ := e.uploadWith("k2", "", "", 20)
	if err := e.s.AbortMultipartUpload(e.ctx, "mpb", "k2", id2); err != nil {
		t.Fatal(err)
	}
	if _, err := e.s.CompleteMultipartUpload(e.ctx, "mpb", "k2", id2, parts2, CompleteOptions{}); !errors.Is(err, ErrNoSuchUpload) {
		t.Fatalf("aborted: %v", err)
	}
}

// An upload created without an algorithm gets a FULL_OBJECT CRC64NVME,
// combined from the CRC64NVMEs its parts were given (copied parts too); a
// whole-object value sent with the completion is ignored, as in S3.
func TestCompleteDefaultChecksum(t *testing.T) {
	e := newEnv(t)
	e.bucket("mpb", Unversioned)
	src := e.put("mpb", "src", big(23, 9))
	id, parts, whole := e.uploadWith("k", "", "", 30, 17)
	// Parts answer no checksum the client did not ask for.
	for _, p := range parts {
		if p.Checksums != (Checksums{}) {
			t.Fatalf("part %d: %+v", p.Number, p.Checksums)
		}
	}
	pi, err := e.s.UploadPartCopy(e.ctx, CopySource{Bucket: "mpb", Key: "src", VersionID: src.VersionID}, "mpb", "k", id, 3)
	if err != nil {
		t.Fatal(err)
	}
	if pi.Checksums != (Checksums{}) {
		t.Fatalf("copied part: %+v", pi.Checksums)
	}
	parts = append(parts, CompletePart{Number: 3, ETag: pi.ETag})
	whole += big(23, 9)
	oi, err := e.s.CompleteMultipartUpload(e.ctx, "mpb", "k", id, parts,
		CompleteOptions{Checksums: Checksums{CRC64NVME: "vqf3hRLTlJw="}})
	if err != nil {
		t.Fatal(err)
	}
	want := Checksums{CRC64NVME: sumOf(checksum.CRC64NVME, whole), Type: "FULL_OBJECT"}
	if oi.Checksums != want {
		t.Fatalf("complete: %+v, want %+v", oi.Checksums, want)
	}
	got, _, err := e.get("mpb", "k", GetOptions{HeadOnly: true})
	if err != nil || got.Checksums != want {
		t.Fatalf("head: %+v, %v", got.Checksums, err)
	}

	// A part uploaded with an algorithm of the client's choice answers
	// that one only, and still counts towards the object's CRC64NVME.
	id, err = e.s.CreateMultipartUpload(e.ctx, "mpb", "j", PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var cps []CompletePart
	for i, body := range []string{big(40, 1), "abc"} {
		opts := PartOptions{}
		if i == 0 {
			opts.ChecksumAlgorithm = "CRC32"
		}
		pi, err := e.s.UploadPart(e.ctx, "mpb", "j", id, i+1, strings.NewReader(body), int64(len(body)), opts)
		if err != nil || (i == 0) != (pi.Checksums != (Checksums{})) {
			t.Fatalf("part %d: %+v, %v", i+1, pi.Checksums, err)
		}
		cps = append(cps, CompletePart{Number: i + 1, ETag: pi.ETag, Checksums: pi.Checksums})
	}
	oi, err = e.s.CompleteMultipartUpload(e.ctx, "mpb", "j", id, cps, CompleteOptions{})
	want = Checksums{CRC64NVME: sumOf(checksum.CRC64NVME, big(40, 1)+"abc"), Type: "FULL_OBJECT"}
	if err != nil || oi.Checksums != want {
		t.Fatalf("complete: %+v, %v", oi.Checksums, err)
	}
}
