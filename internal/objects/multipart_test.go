package objects

import (
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"

	"github.com/redoubt-io/redoubt/internal/checksum"
)

func (e *env) part(bucket, key, id string, n int, body string) PartInfo {
	e.t.Helper()
	pi, err := e.s.UploadPart(e.ctx, bucket, key, id, n, strings.NewReader(body), int64(len(body)), PartOptions{})
	if err != nil {
		e.t.Fatalf("part %d: %v", n, err)
	}
	return pi
}

func multipartETag(parts ...string) string {
	var cat []byte
	for _, p := range parts {
		s := md5.Sum([]byte(p))
		cat = append(cat, s[:]...)
	}
	s := md5.Sum(cat)
	return fmt.Sprintf(`"%s-%d"`, hex.EncodeToString(s[:]), len(parts))
}

func TestMultipartBasic(t *testing.T) {
	e := newEnv(t) // MinPartSize 10
	e.bucket("mpb", Unversioned)
	id, err := e.s.CreateMultipartUpload(e.ctx, "mpb", "obj", PutOptions{ContentType: "app/x", UserMeta: map[string]string{"m": "1"}})
	if err != nil {
		t.Fatal(err)
	}
	id2, _ := e.s.CreateMultipartUpload(e.ctx, "mpb", "obj", PutOptions{})
	if len(id) != uploadIDLen || id == id2 {
		t.Fatalf("upload ids %q %q", id, id2)
	}
	p1, p2, p3 := big(20, 1), big(15, 2), "tail"
	e.part("mpb", "obj", id, 1, "to be replaced")
	before := e.data.ids()
	i1 := e.part("mpb", "obj", id, 1, p1)
	if after := e.data.ids(); len(after) != len(before) {
		t.Fatalf("replaced part's data not deleted: %v -> %v", before, after)
	}
	i2 := e.part("mpb", "obj", id, 2, p2)
	e.part("mpb", "obj", id, 3, "unlisted part data")
	i4 := e.part("mpb", "obj", id, 4, p3)
	lp, err := e.s.ListParts(e.ctx, "mpb", "obj", id, ListPartsOptions{MaxParts: 2})
	if err != nil || len(lp.Parts) != 2 || !lp.IsTruncated || lp.NextPartNumberMarker != 2 || lp.Parts[0].ETag != i1.ETag {
		t.Fatalf("list parts %+v %v", lp, err)
	}
	lp, err = e.s.ListParts(e.ctx, "mpb", "obj", id, ListPartsOptions{PartNumberMarker: 2})
	if err != nil || len(lp.Parts) != 2 || lp.IsTruncated || lp.Parts[0].Number != 3 {
		t.Fatalf("list parts page 2 %+v %v", lp, err)
	}
	oi, err := e.s.CompleteMultipartUpload(e.ctx, "mpb", "obj", id, []CompletePart{
		{Number: 1, ETag: i1.ETag}, {Number: 2, ETag: strings.Trim(i2.ETag, `"`)}, {Number: 4, ETag: i4.ETag},
	}, CompleteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if oi.ETag != multipartETag(p1, p2, p3) || oi.Size != int64(len(p1+p2+p3)) || oi.Parts != 3 {
		t.Fatalf("complete info %+v", oi)
	}
	got, body, err := e.get("mpb", "obj", GetOptions{})
	if err != nil || body != p1+p2+p3 || got.ContentType != "app/x" || got.UserMeta["m"] != "1" || got.ETag != oi.ETag || got.Parts != 3 {
		t.Fatalf("get %+v %v", got, err)
	}
	// Ranges across part boundaries, and part numbers.
	all := p1 + p2 + p3
	for _, r := range [][2]int64{{0, 0}, {19, 20}, {18, 36}, {10, 38}, {35, 38}} {
		if b := e.mustGet("mpb", "obj", GetOptions{Range: Range{Set: true, Start: r[0], End: r[1]}}); b != all[r[0]:r[1]+1] {
			t.Fatalf("range %v: %q", r, b)
		}
	}
	for n, want := range map[int]string{1: p1, 2: p2, 3: p3} {
		oi, b, err := e.get("mpb", "obj", GetOptions{PartNumber: n})
		if err != nil || b != want || oi.Parts != 3 {
			t.Fatalf("part %d: %q %v", n, b, err)
		}
	}
	if _, _, err := e.get("mpb", "obj", GetOptions{PartNumber: 4}); !errors.Is(err, ErrInvalidRange) {
		t.Fatalf("part 4: %v", err)
	}
	// The upload is gone; the other one is still listed, then aborted.
	if _, err := e.s.ListParts(e.ctx, "mpb", "obj", id, ListPartsOptions{}); !errors.Is(err, ErrNoSuchUpload) {
		t.Fatalf("list parts of completed: %v", err)
	}
	if _, err := e.s.UploadPart(e.ctx, "mpb", "obj", id, 5, strings.NewReader("x"), 1, PartOptions{}); !errors.Is(err, ErrNoSuchUpload) {
		t.Fatalf("part for completed upload: %v", err)
	}
	lu, err := e.s.ListMultipartUploads(e.ctx, "mpb", ListUploadsOptions{})
	if err != nil || len(lu.Uploads) != 1 || lu.Uploads[0].UploadID != id2 {
		t.Fatalf("uploads %+v %v", lu, err)
	}
	e.part("mpb", "obj", id2, 1, "abc")
	if err := e.s.AbortMultipartUpload(e.ctx, "mpb", "obj", id2); err != nil {
		t.Fatal(err)
	}
	if err := e.s.AbortMultipartUpload(e.ctx, "mpb", "obj", id2); !errors.Is(err, ErrNoSuchUpload) {
		t.Fatalf("abort twice: %v", err)
	}
	// Overwriting the multipart object deletes all its parts' data.
	e.put("mpb", "obj", "x")
	if ids := e.data.ids(); len(ids) != 0 {
		t.Fatalf("data left: %v", ids)
	}
}

func TestMultipartCompleteErrors(t *testing.T) {
	e := newEnv(t)
	e.bucket("mpb", Unversioned)
	id, _ := e.s.CreateMultipartUpload(e.ctx, "mpb", "k", PutOptions{})
	i1 := e.part("mpb", "k", id, 1, big(20, 1))
	i2 := e.part("mpb", "k", id, 2, "small")
	i3 := e.part("mpb", "k", id, 3, big(20, 3))
	tests := []struct {
		name  string
		parts []CompletePart
		want  error
	}{
		{"empty", nil, ErrInvalidArgument},
		{"descending", []CompletePart{{2, i2.ETag, Checksums{}}, {1, i1.ETag, Checksums{}}}, ErrInvalidPartOrder},
		{"duplicate", []CompletePart{{1, i1.ETag, Checksums{}}, {1, i1.ETag, Checksums{}}}, ErrInvalidPartOrder},
		{"missing part", []CompletePart{{1, i1.ETag, Checksums{}}, {7, i1.ETag, Checksums{}}}, ErrInvalidPart},
		{"wrong etag", []CompletePart{{1, i2.ETag, Checksums{}}}, ErrInvalidPart},
		{"star etag", []CompletePart{{1, "*", Checksums{}}}, ErrInvalidPart},
		{"part number 0", []CompletePart{{0, i1.ETag, Checksums{}}}, ErrInvalidPart},
		{"small middle part", []CompletePart{{1, i1.ETag, Checksums{}}, {2, i2.ETag, Checksums{}}, {3, i3.ETag, Checksums{}}}, ErrEntityTooSmall},
	}
	for _, tt := range tests {
		before := e.snapshot()
		_, err := e.s.CompleteMultipartUpload(e.ctx, "mpb", "k", id, tt.parts, CompleteOptions{})
		if !errors.Is(err, tt.want) {
			t.Errorf("%s: %v, want %v", tt.name, err, tt.want)
		}
		if e.snapshot() != before {
			t.Errorf("%s: metadata changed", tt.name)
		}
	}
	if _, err := e.s.CompleteMultipartUpload(e.ctx, "mpb", "k", strings.Repeat("0", uploadIDLen), []CompletePart{{1, i1.ETag, Checksums{}}}, CompleteOptions{}); !errors.Is(err, ErrNoSuchUpload) {
		t.Errorf("unknown upload: %v", err)
	}
	if _, err := e.s.CompleteMultipartUpload(e.ctx, "mpb", "k", "../../x", []CompletePart{{1, i1.ETag, Checksums{}}}, CompleteOptions{}); !errors.Is(err, ErrNoSuchUpload) {
		t.Errorf("malformed upload: %v", err)
	}
	for _, n := range []int{0, -1, 10001} {
		if _, err := e.s.UploadPart(e.ctx, "mpb", "k", id, n, strings.NewReader("x"), 1, PartOptions{}); !errors.Is(err, ErrInvalidArgument) {
			t.Errorf("part number %d: %v", n, err)
		}
	}
	// A small last part is fine; 2 then 3 skipping... 1 and 3 only.
	if _, err := e.s.CompleteMultipartUpload(e.ctx, "mpb", "k", id, []CompletePart{{1, i1.ETag, Checksums{}}, {3, i3.ETag, Checksums{}}}, CompleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if got := e.mustGet("mpb", "k", GetOptions{}); got != big(20, 1)+big(20, 3) {
		t.Fatal("content")
	}
}

func TestMultipartPartFailures(t *testing.T) {
	e := newEnv(t)
	e.bucket("mpb", Unversioned)
	id, _ := e.s.CreateMultipartUpload(e.ctx, "mpb", "k", PutOptions{ChecksumAlgorithm: "crc32c"})
	before := e.snapshot()
	cases := []struct {
		body io.Reader
		size int64
		opts PartOptions
		want error
	}{
		{strings.NewReader("abc"), 3, PartOptions{ContentMD5: make([]byte, 16)}, ErrBadDigest},
		{strings.NewReader("abc"), 3, PartOptions{Checksums: Checksums{CRC32C: sumOf(checksum.CRC32C, "x")}}, ErrChecksumMismatch},
		{strings.NewReader("abc"), 3, PartOptions{ChecksumAlgorithm: "SHA1"}, ErrInvalidRequest}, // not the upload's algorithm
		{strings.NewReader("abc"), 9, PartOptions{}, ErrIncompleteBody},
	}
	for i, c := range cases {
		if _, err := e.s.UploadPart(e.ctx, "mpb", "k", id, 1, c.body, c.size, c.opts); !errors.Is(err, c.want) {
			t.Errorf("case %d: %v, want %v", i, err, c.want)
		}
	}
	e.data.failNext("write")
	if _, err := e.s.UploadPart(e.ctx, "mpb", "k", id, 1, strings.NewReader("abc"), 3, PartOptions{}); !errors.Is(err, errInjected) {
		t.Errorf("write failure: %v", err)
	}
	if e.snapshot() != before || len(e.data.ids()) != 0 {
		t.Fatal("failed parts left state")
	}
	if err := e.s.AbortMultipartUpload(e.ctx, "mpb", "k", id); err != nil {
		t.Fatal(err)
	}
}

func TestMultipartChecksums(t *testing.T) {
	e := newEnv(t)
	e.bucket("mpb", Unversioned)
	id, _ := e.s.CreateMultipartUpload(e.ctx, "mpb", "k", PutOptions{ChecksumAlgorithm: "SHA256"})
	p1, p2 := big(12, 1), big(5, 2)
	i1 := e.part("mpb", "k", id, 1, p1)
	i2, err := e.s.UploadPart(e.ctx, "mpb", "k", id, 2, strings.NewReader(p2), int64(len(p2)), PartOptions{
		Checksums: Checksums{SHA256: sumOf(checksum.SHA256, p2)}})
	if err != nil {
		t.Fatal(err)
	}
	if i1.Checksums.SHA256 != sumOf(checksum.SHA256, p1) || i2.Checksums.SHA256 != sumOf(checksum.SHA256, p2) {
		t.Fatalf("part checksums %+v %+v", i1.Checksums, i2.Checksums)
	}
	lp, _ := e.s.ListParts(e.ctx, "mpb", "k", id, ListPartsOptions{})
	if lp.ChecksumAlgorithm != "SHA256" || lp.Parts[1].Checksums.SHA256 != i2.Checksums.SHA256 {
		t.Fatalf("list parts %+v", lp)
	}
	if _, err := e.s.CompleteMultipartUpload(e.ctx, "mpb", "k", id, []CompletePart{
		{1, i1.ETag, Checksums{SHA256: i2.Checksums.SHA256}}, {2, i2.ETag, Checksums{}}}, CompleteOptions{}); !errors.Is(err, ErrInvalidPart) {
		t.Fatalf("wrong part checksum: %v", err)
	}
	// A composite upload's completion names every part's checksum.
	if _, err := e.s.CompleteMultipartUpload(e.ctx, "mpb", "k", id, []CompletePart{
		{1, i1.ETag, i1.Checksums}, {2, i2.ETag, Checksums{}}}, CompleteOptions{}); !errors.Is(err, ErrInvalidRequest) ||
		!strings.Contains(err.Error(), "missing for part 2") {
		t.Fatalf("missing part checksum: %v", err)
	}
	oi, err := e.s.CompleteMultipartUpload(e.ctx, "mpb", "k", id, []CompletePart{
		{1, i1.ETag, i1.Checksums}, {2, i2.ETag, i2.Checksums}}, CompleteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	h := checksum.New(checksum.SHA256)
	for _, p := range []string{p1, p2} {
		s := checksum.New(checksum.SHA256)
		s.Write([]byte(p))
		h.Write(s.Sum(nil))
	}
	want := checksum.Encode(h.Sum(nil)) + "-2"
	if oi.Checksums.SHA256 != want || oi.Checksums.Type != "COMPOSITE" {
		t.Fatalf("object checksums %+v, want %s", oi.Checksums, want)
	}
}

func TestMultipartConditionalComplete(t *testing.T) {
	e := newEnv(t)
	e.bucket("mpb", Unversioned)
	e.put("mpb", "k", "existing")
	id, _ := e.s.CreateMultipartUpload(e.ctx, "mpb", "k", PutOptions{})
	i1 := e.part("mpb", "k", id, 1, "only")
	parts := []CompletePart{{1, i1.ETag, Checksums{}}}
	if _, err := e.s.CompleteMultipartUpload(e.ctx, "mpb", "k", id, parts, CompleteOptions{IfNoneMatch: "*"}); !errors.Is(err, ErrPreconditionFailed) {
		t.Fatalf("if-none-match: %v", err)
	}
	if _, err := e.s.CompleteMultipartUpload(e.ctx, "mpb", "k", id, parts, CompleteOptions{IfMatch: `"nope"`}); !errors.Is(err, ErrPreconditionFailed) {
		t.Fatalf("if-match: %v", err)
	}
	if _, err := e.s.CompleteMultipartUpload(e.ctx, "mpb", "k", id, parts, CompleteOptions{IfMatch: `"` + md5hex("existing") + `"`}); err != nil {
		t.Fatalf("if-match ok: %v", err)
	}
	if got := e.mustGet("mpb", "k", GetOptions{}); got != "only" {
		t.Fatal(got)
	}
}

// TestMultipartCompleteRacesParts: parts uploaded while Complete runs
// either make it into the object or are rejected; none is left behind.
func TestMultipartCompleteRacesParts(t *testing.T) {
	for round := 0; round < 20; round++ {
		e := newEnv(t)
		e.bucket("mpb", Unversioned)
		id, _ := e.s.CreateMultipartUpload(e.ctx, "mpb", "k", PutOptions{})
		i1 := e.part("mpb", "k", id, 1, big(20, 1))
		var wg sync.WaitGroup
		for g := 2; g < 8; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, err := e.s.UploadPart(e.ctx, "mpb", "k", id, g, strings.NewReader("late"), 4, PartOptions{})
				if err != nil && !errors.Is(err, ErrNoSuchUpload) {
					t.Error(err)
				}
			}()
		}
		if _, err := e.s.CompleteMultipartUpload(e.ctx, "mpb", "k", id, []CompletePart{{1, i1.ETag, Checksums{}}}, CompleteOptions{}); err != nil {
			t.Fatal(err)
		}
		wg.Wait()
		e.checkRefs()
		if lu, _ := e.s.ListMultipartUploads(e.ctx, "mpb", ListUploadsOptions{}); len(lu.Uploads) != 0 {
			t.Fatalf("uploads left %+v", lu)
		}
	}
}

func TestListMultipartUploads(t *testing.T) {
	e := newEnv(t)
	e.bucket("mpb", Unversioned)
	var want []string
	for _, k := range []string{"a", "a", "b/x", "b/y", "c"} {
		id, err := e.s.CreateMultipartUpload(e.ctx, "mpb", k, PutOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(k, "b/") {
			want = append(want, k+"@"+id)
		}
	}
	var got, cps []string
	opts := ListUploadsOptions{Delimiter: "/", MaxUploads: 1}
	for i := 0; i < 10; i++ {
		r, err := e.s.ListMultipartUploads(e.ctx, "mpb", opts)
		if err != nil {
			t.Fatal(err)
		}
		for _, u := range r.Uploads {
			got = append(got, u.Key+"@"+u.UploadID)
		}
		cps = append(cps, r.CommonPrefixes...)
		if !r.IsTruncated {
			break
		}
		if r.NextKeyMarker == "" || r.NextUploadIDMarker == "" {
			t.Fatalf("truncated page without both markers: %+v", r)
		}
		opts.KeyMarker, opts.UploadIDMarker = r.NextKeyMarker, r.NextUploadIDMarker
	}
	if strings.Join(got, ",") != strings.Join(want, ",") || strings.Join(cps, ",") != "b/" {
		t.Fatalf("got %v %v, want %v [b/]", got, cps, want)
	}
	// An upload-id-marker that cannot be an upload ID is refused, unless
	// there is no key-marker, when it is ignored as in S3.
	if _, err := e.s.ListMultipartUploads(e.ctx, "mpb", ListUploadsOptions{KeyMarker: "a", UploadIDMarker: "invalid_uploadId_marker"}); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("invalid upload id marker: %v", err)
	}
	if r, err := e.s.ListMultipartUploads(e.ctx, "mpb", ListUploadsOptions{UploadIDMarker: "invalid"}); err != nil || len(r.Uploads) != 5 {
		t.Fatalf("upload id marker alone: %+v %v", r, err)
	}
	r, _ := e.s.ListMultipartUploads(e.ctx, "mpb", ListUploadsOptions{Prefix: "b/"})
	if len(r.Uploads) != 2 {
		t.Fatalf("prefix b/: %+v", r)
	}
	for _, u := range append(r.Uploads, mustUploads(t, e, "a")...) {
		e.s.AbortMultipartUpload(e.ctx, "mpb", u.Key, u.UploadID)
	}
	for _, u := range mustUploads(t, e, "") {
		e.s.AbortMultipartUpload(e.ctx, "mpb", u.Key, u.UploadID)
	}
}

func mustUploads(t *testing.T, e *env, prefix string) []Upload {
	r, err := e.s.ListMultipartUploads(e.ctx, "mpb", ListUploadsOptions{Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	return r.Uploads
}
