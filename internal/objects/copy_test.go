package objects

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/redoubt-io/redoubt/internal/checksum"
)

func TestCopyObject(t *testing.T) {
	e := newEnv(t)
	e.bucket("src", Enabled)
	e.bucket("dst", Unversioned)
	data := big(150, 4)
	src, err := e.s.PutObject(e.ctx, "src", "s", strings.NewReader(data), 150, PutOptions{
		ContentType: "a/b", UserMeta: map[string]string{"x": "1"}, ChecksumAlgorithm: "CRC32"})
	if err != nil {
		t.Fatal(err)
	}
	e.clk.Advance(time.Minute)
	// COPY keeps metadata and the checksum kind.
	oi, err := e.s.CopyObject(e.ctx, CopySource{Bucket: "src", Key: "s"}, "dst", "d", PutOptions{ContentType: "ignored"})
	if err != nil {
		t.Fatal(err)
	}
	if oi.ETag != src.ETag || oi.Size != 150 || oi.Checksums.CRC32 != src.Checksums.CRC32 {
		t.Fatalf("copy info %+v", oi)
	}
	got, body, err := e.get("dst", "d", GetOptions{})
	if err != nil || body != data || got.ContentType != "a/b" || got.UserMeta["x"] != "1" {
		t.Fatalf("copied %+v %v", got, err)
	}
	// REPLACE takes the new metadata.
	if _, err := e.s.CopyObject(e.ctx, CopySource{Bucket: "src", Key: "s", ReplaceMetadata: true}, "dst", "d2",
		PutOptions{ContentType: "c/d", UserMeta: map[string]string{"y": "2"}}); err != nil {
		t.Fatal(err)
	}
	got, _, _ = e.get("dst", "d2", GetOptions{})
	if got.ContentType != "c/d" || got.UserMeta["y"] != "2" || got.UserMeta["x"] != "" {
		t.Fatalf("replaced metadata %+v", got)
	}
	// Data is rewritten: deleting the source leaves the copy readable.
	if _, err := e.s.DeleteObject(e.ctx, "src", "s", DeleteOptions{VersionID: src.VersionID}); err != nil {
		t.Fatal(err)
	}
	if e.mustGet("dst", "d", GetOptions{}) != data {
		t.Fatal("copy lost its data")
	}
}

func TestCopyConditionsAndSelf(t *testing.T) {
	e := newEnv(t)
	e.bucket("bkt", Enabled)
	v1 := e.put("bkt", "k", "one")
	e.clk.Advance(time.Hour)
	e.put("bkt", "k", "two")
	mod := e.clk.Now().Truncate(time.Second)
	tests := []struct {
		name string
		c    Preconditions
		want error
	}{
		{"if-match fail", Preconditions{IfMatch: `"x"`}, ErrPreconditionFailed},
		{"if-none-match match", Preconditions{IfNoneMatch: `"` + md5hex("two") + `"`}, ErrPreconditionFailed},
		{"if-modified-since not modified", Preconditions{IfModifiedSince: mod}, ErrPreconditionFailed},
		{"if-unmodified-since fail", Preconditions{IfUnmodifiedSince: mod.Add(-time.Minute)}, ErrPreconditionFailed},
		{"if-match ok", Preconditions{IfMatch: `"` + md5hex("two") + `"`}, nil},
		{"if-match ok, unmodified-since false", Preconditions{IfMatch: `"` + md5hex("two") + `"`, IfUnmodifiedSince: mod.Add(-time.Minute)}, nil},
	}
	for _, tt := range tests {
		before := e.snapshot()
		_, err := e.s.CopyObject(e.ctx, CopySource{Bucket: "bkt", Key: "k", Cond: tt.c}, "bkt", "dst", PutOptions{})
		if !errors.Is(err, tt.want) {
			t.Errorf("%s: %v, want %v", tt.name, err, tt.want)
		}
		if err != nil && e.snapshot() != before {
			t.Errorf("%s: metadata changed", tt.name)
		}
	}
	// Onto itself: refused without REPLACE; allowed with it, and allowed
	// to restore an older version.
	if _, err := e.s.CopyObject(e.ctx, CopySource{Bucket: "bkt", Key: "k"}, "bkt", "k", PutOptions{}); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("self copy: %v", err)
	}
	if _, err := e.s.CopyObject(e.ctx, CopySource{Bucket: "bkt", Key: "k", ReplaceMetadata: true}, "bkt", "k", PutOptions{ContentType: "n/w"}); err != nil {
		t.Fatalf("self copy with replace: %v", err)
	}
	if _, err := e.s.CopyObject(e.ctx, CopySource{Bucket: "bkt", Key: "k", VersionID: v1.VersionID}, "bkt", "k", PutOptions{}); err != nil {
		t.Fatalf("restore old version: %v", err)
	}
	if e.mustGet("bkt", "k", GetOptions{}) != "one" {
		t.Fatal("restore")
	}
	// Missing source, delete-marker source, conditional destination.
	if _, err := e.s.CopyObject(e.ctx, CopySource{Bucket: "bkt", Key: "none"}, "bkt", "x", PutOptions{}); !errors.Is(err, ErrNoSuchKey) {
		t.Fatalf("missing source: %v", err)
	}
	if _, err := e.s.CopyObject(e.ctx, CopySource{Bucket: "bkt", Key: "k"}, "bkt", "dst", PutOptions{IfNoneMatch: "*"}); !errors.Is(err, ErrPreconditionFailed) {
		t.Fatalf("dst if-none-match: %v", err)
	}
	if _, err := e.s.CopyObject(e.ctx, CopySource{Bucket: "bkt", Key: "k"}, "nobkt", "x", PutOptions{}); !errors.Is(err, ErrNoSuchBucket) {
		t.Fatalf("missing dst bucket: %v", err)
	}
}

func TestUploadPartCopy(t *testing.T) {
	e := newEnv(t)
	e.bucket("bkt", Unversioned)
	data := big(100, 7)
	e.put("bkt", "src", data)
	id, _ := e.s.CreateMultipartUpload(e.ctx, "bkt", "dst", PutOptions{ChecksumAlgorithm: "CRC32"})
	p1, err := e.s.UploadPartCopy(e.ctx, CopySource{Bucket: "bkt", Key: "src", Range: Range{Set: true, Start: 10, End: 49}}, "bkt", "dst", id, 1)
	if err != nil {
		t.Fatal(err)
	}
	if p1.Size != 40 || p1.ETag != `"`+md5hex(data[10:50])+`"` || p1.Checksums.CRC32 != sumOf(checksum.CRC32, data[10:50]) {
		t.Fatalf("part %+v", p1)
	}
	p2, err := e.s.UploadPartCopy(e.ctx, CopySource{Bucket: "bkt", Key: "src"}, "bkt", "dst", id, 2)
	if err != nil {
		t.Fatal(err)
	}
	// A copy range must lie inside the source (S3: InvalidArgument naming
	// the source's size), unlike a GET range.
	for _, r := range []Range{{Set: true, Start: 100, End: 120}, {Set: true, Start: 50, End: 100}, {Set: true, Start: 0, End: 1000}} {
		_, err := e.s.UploadPartCopy(e.ctx, CopySource{Bucket: "bkt", Key: "src", Range: r}, "bkt", "dst", id, 3)
		if !errors.Is(err, ErrInvalidArgument) || !strings.Contains(err.Error(), "source object of size: 100") {
			t.Fatalf("range %+v: %v", r, err)
		}
	}
	if _, err := e.s.UploadPartCopy(e.ctx, CopySource{Bucket: "bkt", Key: "src", Range: Range{Set: true, Start: 99, End: 99}}, "bkt", "dst", id, 3); err != nil {
		t.Fatalf("last byte: %v", err)
	}
	// A missing upload bucket is NoSuchBucket, whatever the source.
	for _, src := range []CopySource{{Bucket: "bkt", Key: "src"}, {Bucket: "nobkt", Key: "src"}} {
		if _, err := e.s.UploadPartCopy(e.ctx, src, "nosuchbucket", "dst", id, 3); !errors.Is(err, ErrNoSuchBucket) {
			t.Fatalf("missing bucket, source %+v: %v", src, err)
		}
	}
	if _, err := e.s.UploadPartCopy(e.ctx, CopySource{Bucket: "bkt", Key: "src", Cond: Preconditions{IfMatch: `"x"`}}, "bkt", "dst", id, 3); !errors.Is(err, ErrPreconditionFailed) {
		t.Fatalf("copy source condition: %v", err)
	}
	if _, err := e.s.CompleteMultipartUpload(e.ctx, "bkt", "dst", id, []CompletePart{{1, p1.ETag, p1.Checksums}, {2, p2.ETag, p2.Checksums}}, CompleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if e.mustGet("bkt", "dst", GetOptions{}) != data[10:50]+data {
		t.Fatal("content")
	}
}

// The copy-source conditions follow the table of the CopyObject
// reference: a true if-match overrides a false if-unmodified-since (the
// copy is made), a false if-none-match with a true if-modified-since is
// 412, and any other false condition is 412 too; a copy never answers 304.
func TestCopySourceConditions(t *testing.T) {
	e := newEnv(t)
	e.bucket("bkt", Unversioned)
	src := e.put("bkt", "src", "data")
	etag := src.ETag
	mod := src.LastModified
	before, after := mod.Add(-time.Hour), mod.Add(time.Hour)
	tests := []struct {
		name string
		c    Preconditions
		want error
	}{
		{"if-match true, if-unmodified-since false", Preconditions{IfMatch: etag, IfUnmodifiedSince: before}, nil},
		{"if-none-match false, if-modified-since true", Preconditions{IfNoneMatch: etag, IfModifiedSince: before}, ErrPreconditionFailed},
		{"if-match false", Preconditions{IfMatch: `"other"`}, ErrPreconditionFailed},
		{"if-none-match false", Preconditions{IfNoneMatch: etag}, ErrPreconditionFailed},
		{"if-modified-since false", Preconditions{IfModifiedSince: after}, ErrPreconditionFailed},
		{"if-unmodified-since false", Preconditions{IfUnmodifiedSince: before}, ErrPreconditionFailed},
		{"if-none-match false, if-unmodified-since false", Preconditions{IfNoneMatch: etag, IfUnmodifiedSince: before}, ErrPreconditionFailed},
		{"if-none-match true, if-modified-since false", Preconditions{IfNoneMatch: `"other"`, IfModifiedSince: after}, nil},
		{"all true", Preconditions{IfMatch: etag, IfNoneMatch: `"other"`, IfModifiedSince: before, IfUnmodifiedSince: after}, nil},
	}
	for _, tt := range tests {
		_, err := e.s.CopyObject(e.ctx, CopySource{Bucket: "bkt", Key: "src", Cond: tt.c}, "bkt", "dst", PutOptions{})
		if !errors.Is(err, tt.want) || errors.Is(err, ErrNotModified) {
			t.Errorf("%s: %v, want %v", tt.name, err, tt.want)
		}
	}
}
