package objects

import (
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"github.com/redoubt-io/redoubt/internal/blocks"
	"github.com/redoubt-io/redoubt/internal/meta"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/redoubt-io/redoubt/internal/checksum"
)

func md5hex(s string) string {
	sum := md5.Sum([]byte(s))
	return hex.EncodeToString(sum[:])
}

func sumOf(a checksum.Algorithm, s string) string {
	h := checksum.New(a)
	h.Write([]byte(s))
	return checksum.Encode(h.Sum(nil))
}

func TestPutGetInlineAndStored(t *testing.T) {
	e := newEnv(t) // InlineMax 64
	e.bucket("bkt", Unversioned)
	for _, n := range []int{0, 1, 63, 64, 65, 1000} {
		body := big(n, byte(n))
		for _, size := range []int64{int64(n), -1} {
			oi, err := e.s.PutObject(e.ctx, "bkt", "obj", strings.NewReader(body), size, PutOptions{
				ContentType: "text/plain",
				Headers:     map[string]string{"Cache-Control": "max-age=1"},
				UserMeta:    map[string]string{"color": "red"},
			})
			if err != nil {
				t.Fatalf("n=%d size=%d: %v", n, size, err)
			}
			if oi.ETag != `"`+md5hex(body)+`"` || oi.Size != int64(n) || oi.VersionID != "" || !oi.IsLatest {
				t.Fatalf("put info %+v", oi)
			}
			stored := len(e.data.ids()) == 1
			if stored != (n > 64) {
				t.Fatalf("n=%d: stored in data store = %v", n, stored)
			}
			got, body2, err := e.get("bkt", "obj", GetOptions{})
			if err != nil || body2 != body {
				t.Fatalf("n=%d: get %v, body match %v", n, err, body2 == body)
			}
			if got.ContentType != "text/plain" || got.Headers["Cache-Control"] != "max-age=1" || got.UserMeta["color"] != "red" ||
				got.ETag != oi.ETag || got.Size != int64(n) || !got.LastModified.Equal(e.clk.Now().Truncate(time.Millisecond)) {
				t.Fatalf("get info %+v", got)
			}
			if got.RangeStart != 0 || got.RangeLength != int64(n) {
				t.Fatalf("range %d+%d", got.RangeStart, got.RangeLength)
			}
		}
	}
	// HEAD returns no body.
	oi, rc, err := e.s.GetObject(e.ctx, "bkt", "obj", GetOptions{HeadOnly: true})
	if err != nil || rc != nil || oi.Size != 1000 {
		t.Fatalf("head: %+v %v %v", oi, rc, err)
	}
	if _, _, err := e.get("bkt", "missing", GetOptions{}); !errors.Is(err, ErrNoSuchKey) {
		t.Fatalf("missing: %v", err)
	}
	if _, _, err := e.get("nobucket", "k", GetOptions{}); !errors.Is(err, ErrNoSuchBucket) {
		t.Fatalf("missing bucket: %v", err)
	}
}

type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }

func TestPutFailuresCommitNothing(t *testing.T) {
	body := big(200, 3)
	small := "tiny"
	tests := []struct {
		name   string
		body   io.Reader
		size   int64
		opts   PutOptions
		inject string
		want   error
	}{
		{name: "bad content-md5", body: strings.NewReader(body), size: 200,
			opts: PutOptions{ContentMD5: make([]byte, 16)}, want: ErrBadDigest},
		{name: "bad content-md5 inline", body: strings.NewReader(small), size: 4,
			opts: PutOptions{ContentMD5: make([]byte, 16)}, want: ErrBadDigest},
		{name: "short content-md5", body: strings.NewReader(small), size: 4,
			opts: PutOptions{ContentMD5: []byte{1}}, want: ErrBadDigest},
		{name: "checksum header mismatch", body: strings.NewReader(body), size: 200,
			opts: PutOptions{Checksums: Checksums{CRC32: sumOf(checksum.CRC32, "other")}}, want: ErrChecksumMismatch},
		{name: "checksum trailer mismatch", body: strings.NewReader(body), size: 200,
			opts: PutOptions{ChecksumAlgorithm: "CRC32C", Trailer: func() Checksums {
				return Checksums{CRC32C: sumOf(checksum.CRC32C, "other")}
			}}, want: ErrChecksumMismatch},
		{name: "trailer of unannounced algorithm", body: strings.NewReader(small), size: 4,
			opts: PutOptions{Trailer: func() Checksums { return Checksums{SHA1: "x"} }}, want: ErrInvalidArgument},
		{name: "short body", body: strings.NewReader(body), size: 300, want: ErrIncompleteBody},
		{name: "short body inline", body: strings.NewReader(small), size: 10, want: ErrIncompleteBody},
		{name: "too large", body: strings.NewReader(body), size: -1, want: ErrEntityTooLarge},
		{name: "declared too large", body: strings.NewReader(body), size: 1 << 20, want: ErrEntityTooLarge},
		{name: "body read error", body: io.MultiReader(strings.NewReader(body), errReader{errInjected}), size: -1, want: errInjected},
		{name: "data store write fails", body: strings.NewReader(body), size: 200, inject: "write", want: errInjected},
		{name: "unknown algorithm", body: strings.NewReader(small), size: 4,
			opts: PutOptions{ChecksumAlgorithm: "MD4"}, want: ErrInvalidArgument},
		{name: "if-match on missing", body: strings.NewReader(body), size: 200,
			opts: PutOptions{IfMatch: `"abc"`}, want: ErrNoSuchKey},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, func(c *Config) {
				if strings.Contains(tt.name, "too large") {
					c.MaxObjectSize = 100
					c.MaxPartSize = 100
					c.MinPartSize = 1
				}
			})
			e.bucket("bkt", Unversioned)
			before := e.snapshot()
			if tt.inject != "" {
				e.data.failNext(tt.inject)
			}
			_, err := e.s.PutObject(e.ctx, "bkt", "k", tt.body, tt.size, tt.opts)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err %v, want %v", err, tt.want)
			}
			if after := e.snapshot(); after != before {
				t.Fatalf("metadata changed:\n%s\n%s", before, after)
			}
			if ids := e.data.ids(); len(ids) != 0 {
				t.Fatalf("data left: %v", ids)
			}
		})
	}
}

func TestPutChecksums(t *testing.T) {
	e := newEnv(t)
	e.bucket("bkt", Unversioned)
	for _, a := range checksum.All {
		for _, body := range []string{"short", big(500, 9)} {
			want := sumOf(a, body)
			var called bool
			oi, err := e.s.PutObject(e.ctx, "bkt", "k", strings.NewReader(body), int64(len(body)), PutOptions{
				ChecksumAlgorithm: string(a),
				Trailer: func() Checksums {
					called = true
					var c Checksums
					*c.Field(a) = want
					return c
				},
			})
			if err != nil || !called {
				t.Fatalf("%s: %v called=%v", a, err, called)
			}
			if got := *oi.Checksums.Field(a); got != want || oi.Checksums.Type != "FULL_OBJECT" {
				t.Fatalf("%s: put checksums %+v", a, oi.Checksums)
			}
			got, _, _ := e.get("bkt", "k", GetOptions{})
			if *got.Checksums.Field(a) != want {
				t.Fatalf("%s: get checksums %+v", a, got.Checksums)
			}
		}
		// An expected value alone asks for its algorithm.
		var c Checksums
		*c.Field(a) = sumOf(a, "v")
		if _, err := e.s.PutObject(e.ctx, "bkt", "k", strings.NewReader("v"), 1, PutOptions{Checksums: c}); err != nil {
			t.Fatalf("%s header: %v", a, err)
		}
	}
	sum := md5.Sum([]byte("md5 body"))
	if _, err := e.s.PutObject(e.ctx, "bkt", "k", strings.NewReader("md5 body"), 8, PutOptions{ContentMD5: sum[:]}); err != nil {
		t.Fatalf("good content-md5: %v", err)
	}
}

func TestGetPreconditions(t *testing.T) {
	e := newEnv(t)
	e.bucket("bkt", Unversioned)
	oi := e.put("bkt", "k", "body")
	etag := oi.ETag
	mod := oi.LastModified.Truncate(time.Second)
	before, after := mod.Add(-time.Hour), mod.Add(time.Hour)
	tests := []struct {
		name string
		c    Preconditions
		want error
	}{
		{"none", Preconditions{}, nil},
		{"if-match ok", Preconditions{IfMatch: etag}, nil},
		{"if-match unquoted", Preconditions{IfMatch: strings.Trim(etag, `"`)}, nil},
		{"if-match list", Preconditions{IfMatch: `"x", ` + etag}, nil},
		{"if-match star", Preconditions{IfMatch: "*"}, nil},
		{"if-match fail", Preconditions{IfMatch: `"nope"`}, ErrPreconditionFailed},
		{"if-none-match match", Preconditions{IfNoneMatch: etag}, ErrNotModified},
		{"if-none-match star", Preconditions{IfNoneMatch: "*"}, ErrNotModified},
		{"if-none-match other", Preconditions{IfNoneMatch: `"nope"`}, nil},
		{"if-modified-since before", Preconditions{IfModifiedSince: before}, nil},
		{"if-modified-since equal", Preconditions{IfModifiedSince: mod}, ErrNotModified},
		{"if-modified-since after", Preconditions{IfModifiedSince: after}, ErrNotModified},
		{"if-unmodified-since after", Preconditions{IfUnmodifiedSince: after}, nil},
		{"if-unmodified-since equal", Preconditions{IfUnmodifiedSince: mod}, nil},
		{"if-unmodified-since before", Preconditions{IfUnmodifiedSince: before}, ErrPreconditionFailed},
		// S3: If-Match true and If-Unmodified-Since false: 200.
		{"if-match wins over unmodified-since", Preconditions{IfMatch: etag, IfUnmodifiedSince: before}, nil},
		{"if-match false and unmodified-since true", Preconditions{IfMatch: `"x"`, IfUnmodifiedSince: after}, ErrPreconditionFailed},
		// S3: If-None-Match false and If-Modified-Since true: 304.
		{"if-none-match match, modified-since true", Preconditions{IfNoneMatch: etag, IfModifiedSince: before}, ErrNotModified},
		// If-None-Match present and true: If-Modified-Since ignored.
		{"if-none-match other, modified-since false", Preconditions{IfNoneMatch: `"x"`, IfModifiedSince: after}, nil},
		{"412 before 304", Preconditions{IfMatch: `"x"`, IfNoneMatch: etag}, ErrPreconditionFailed},
	}
	for _, tt := range tests {
		_, body, err := e.get("bkt", "k", GetOptions{Cond: tt.c})
		if !errors.Is(err, tt.want) || (err == nil && body != "body") {
			t.Errorf("%s: err %v body %q, want %v", tt.name, err, body, tt.want)
		}
	}
}

func TestGetRanges(t *testing.T) {
	e := newEnv(t)
	e.bucket("bkt", Unversioned)
	data := big(300, 1) // stored
	e.put("bkt", "big", data)
	e.put("bkt", "small", "0123456789") // inline
	e.put("bkt", "empty", "")
	tests := []struct {
		key         string
		r           Range
		start, size int64
		want        error
	}{
		{"small", Range{Set: true, Start: 2, End: 4}, 2, 3, nil},
		{"small", Range{Set: true, Start: 0, End: 0}, 0, 1, nil},
		{"small", Range{Set: true, Start: 5, End: -1}, 5, 5, nil},
		{"small", Range{Set: true, Start: 8, End: 100}, 8, 2, nil},
		{"small", Range{Set: true, Suffix: 3}, 7, 3, nil},
		{"small", Range{Set: true, Suffix: 30}, 0, 10, nil},
		{"small", Range{Set: true, Start: 10, End: 12}, 0, 0, ErrInvalidRange},
		{"small", Range{Set: true, Start: 10, End: -1}, 0, 0, ErrInvalidRange},
		{"small", Range{Set: true, Start: 5, End: 2}, 0, 10, nil}, // invalid: ignored
		{"big", Range{Set: true, Start: 100, End: 199}, 100, 100, nil},
		{"big", Range{Set: true, Suffix: 1}, 299, 1, nil},
		{"empty", Range{Set: true, Start: 0, End: 0}, 0, 0, ErrInvalidRange},
		{"empty", Range{Set: true, Start: 0, End: -1}, 0, 0, ErrInvalidRange},
		// S3 serves an empty object whole for a suffix range.
		{"empty", Range{Set: true, Suffix: 5}, 0, 0, nil},
		{"empty", Range{Set: true, Suffix: 1}, 0, 0, nil},
	}
	full := map[string]string{"big": data, "small": "0123456789"}
	for _, tt := range tests {
		oi, body, err := e.get("bkt", tt.key, GetOptions{Range: tt.r})
		if !errors.Is(err, tt.want) {
			t.Errorf("%s %+v: err %v, want %v", tt.key, tt.r, err, tt.want)
			continue
		}
		if err != nil {
			continue
		}
		if oi.RangeStart != tt.start || oi.RangeLength != tt.size || body != full[tt.key][tt.start:tt.start+tt.size] {
			t.Errorf("%s %+v: got %d+%d %q", tt.key, tt.r, oi.RangeStart, oi.RangeLength, body)
		}
	}
	if _, _, err := e.get("bkt", "small", GetOptions{PartNumber: 1}); err != nil {
		t.Errorf("part 1 of single-part object: %v", err)
	}
	if _, _, err := e.get("bkt", "small", GetOptions{PartNumber: 2}); !errors.Is(err, ErrInvalidRange) {
		t.Errorf("part 2 of single-part object: %v", err)
	}
	if _, _, err := e.get("bkt", "small", GetOptions{PartNumber: 1, Range: Range{Set: true, End: 1}}); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("part and range: %v", err)
	}
	e.data.failNext("open")
	if _, _, err := e.get("bkt", "big", GetOptions{}); !errors.Is(err, errInjected) {
		t.Errorf("open failure: %v", err)
	}
}

func TestUnversionedOverwriteDeletesOldData(t *testing.T) {
	e := newEnv(t)
	e.bucket("bkt", Unversioned)
	e.put("bkt", "k", big(100, 1))
	first := e.data.ids()
	e.put("bkt", "k", big(100, 2))
	second := e.data.ids()
	if len(first) != 1 || len(second) != 1 || first[0] == second[0] {
		t.Fatalf("data before %v after %v", first, second)
	}
	e.put("bkt", "k", "inline now")
	if ids := e.data.ids(); len(ids) != 0 {
		t.Fatalf("data left %v", ids)
	}
	res, err := e.s.DeleteObject(e.ctx, "bkt", "k", DeleteOptions{})
	if err != nil || res.DeleteMarker || res.VersionID != "" {
		t.Fatalf("delete %+v %v", res, err)
	}
	if _, _, err := e.get("bkt", "k", GetOptions{}); !errors.Is(err, ErrNoSuchKey) {
		t.Fatalf("after delete: %v", err)
	}
	// Deleting again, or a key that never existed, succeeds.
	if _, err := e.s.DeleteObject(e.ctx, "bkt", "k", DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.s.DeleteObject(e.ctx, "bkt", "k", DeleteOptions{IfMatch: `"x"`}); !errors.Is(err, ErrNoSuchKey) {
		t.Fatalf("if-match delete of missing: %v", err)
	}
	oi := e.put("bkt", "k", "v")
	if _, err := e.s.DeleteObject(e.ctx, "bkt", "k", DeleteOptions{IfMatch: `"x"`}); !errors.Is(err, ErrPreconditionFailed) {
		t.Fatalf("if-match delete mismatch: %v", err)
	}
	if _, err := e.s.DeleteObject(e.ctx, "bkt", "k", DeleteOptions{IfMatch: oi.ETag}); err != nil {
		t.Fatalf("if-match delete: %v", err)
	}
}

// Too few drives to write is an outage, not a server bug: the error says
// unavailable (503 at the front end), and nothing is committed.
func TestPutBelowWriteQuorumIsUnavailable(t *testing.T) {
	e := newEnv(t)
	e.bucket("quorum", Unversioned)
	e.data.mu.Lock()
	e.data.mu.fails["write"] = fmt.Errorf("3 of 4 shards failed: %w", blocks.ErrQuorum)
	e.data.mu.Unlock()
	body := big(200<<10, 7) // above InlineMax, so it goes to the data store
	_, err := e.s.PutObject(e.ctx, "quorum", "k", strings.NewReader(body), int64(len(body)), PutOptions{})
	if !errors.Is(err, meta.ErrUnavailable) {
		t.Fatalf("PUT below the write quorum: %v, want an error wrapping meta.ErrUnavailable", err)
	}
	if _, _, err := e.get("quorum", "k", GetOptions{}); !errors.Is(err, ErrNoSuchKey) {
		t.Fatalf("GET after the refused PUT: %v, want ErrNoSuchKey", err)
	}
}
