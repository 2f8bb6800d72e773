package objects

import (
	"errors"
	"strings"
	"testing"
)

func TestBucketNames(t *testing.T) {
	tests := []struct {
		name string
		ok   bool
	}{
		{"abc", true},
		{"my-bucket.example", true},
		{"a1-b2.c3", true},
		{strings.Repeat("a", 63), true},
		{"1bucket", true},
		{"ab", false},
		{strings.Repeat("a", 64), false},
		{"Upper", false},
		{"under_score", false},
		{"-start", false},
		{"end-", false},
		{".start", false},
		{"end.", false},
		{"double..dot", false},
		{"192.168.1.1", false},
		{"xn--bucket", false},
		{"bucket-s3alias", false},
		{"sthree-bucket", false},
		{"bucket--ol-s3", false},
		{"has space", false},
		{"ünicode", false},
		{"", false},
	}
	for _, tt := range tests {
		err := ValidBucketName(tt.name)
		if (err == nil) != tt.ok {
			t.Errorf("ValidBucketName(%q) = %v, want ok=%v", tt.name, err, tt.ok)
		}
		if err != nil && !errors.Is(err, ErrInvalidBucketName) {
			t.Errorf("ValidBucketName(%q) error %v is not ErrInvalidBucketName", tt.name, err)
		}
	}
}

func TestObjectKeys(t *testing.T) {
	tests := []struct {
		key string
		ok  bool
	}{
		{"a", true},
		{"../../etc/passwd", true},
		{"dir/sub/file.txt", true},
		{"ünïcødé/🙂", true},
		{strings.Repeat("k", 1024), true},
		{"", false},
		{strings.Repeat("k", 1025), false},
		{"bad\x00nul", false},
		{"bad\xffutf8", false},
	}
	e := newEnv(t)
	e.bucket("keys", Unversioned)
	for _, tt := range tests {
		err := ValidKey(tt.key)
		if (err == nil) != tt.ok || (err != nil && !errors.Is(err, ErrInvalidKey)) {
			t.Errorf("ValidKey(%.20q) = %v, want ok=%v", tt.key, err, tt.ok)
		}
		_, perr := e.s.PutObject(e.ctx, "keys", tt.key, strings.NewReader("x"), 1, PutOptions{})
		if (perr == nil) != tt.ok {
			t.Errorf("PutObject(%.20q) = %v, want ok=%v", tt.key, perr, tt.ok)
		}
		if tt.ok && e.mustGet("keys", tt.key, GetOptions{}) != "x" {
			t.Errorf("get %.20q", tt.key)
		}
	}
}

func TestBucketLifecycle(t *testing.T) {
	e := newEnv(t)
	if err := e.s.CreateBucket(e.ctx, "Bad_Name"); !errors.Is(err, ErrInvalidBucketName) {
		t.Fatalf("create invalid: %v", err)
	}
	e.bucket("alpha", Unversioned)
	e.bucket("beta", Unversioned)
	if err := e.s.CreateBucket(e.ctx, "alpha"); !errors.Is(err, ErrBucketExists) {
		t.Fatalf("create twice: %v", err)
	}
	bi, err := e.s.HeadBucket(e.ctx, "alpha")
	if err != nil || bi.Name != "alpha" || bi.Versioning != Unversioned || !bi.Created.Equal(e.clk.Now().Truncate(1e6)) {
		t.Fatalf("head %+v %v", bi, err)
	}
	if _, err := e.s.HeadBucket(e.ctx, "gamma"); !errors.Is(err, ErrNoSuchBucket) {
		t.Fatalf("head missing: %v", err)
	}
	bs, err := e.s.ListBuckets(e.ctx)
	if err != nil || len(bs) != 2 || bs[0].Name != "alpha" || bs[1].Name != "beta" {
		t.Fatalf("list %+v %v", bs, err)
	}
	if err := e.s.SetVersioning(e.ctx, "alpha", Unversioned); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("set unversioned: %v", err)
	}
	if err := e.s.SetVersioning(e.ctx, "alpha", Enabled); err != nil {
		t.Fatal(err)
	}
	if bi, _ := e.s.HeadBucket(e.ctx, "alpha"); bi.Versioning != Enabled {
		t.Fatalf("versioning %v", bi.Versioning)
	}
	if err := e.s.SetVersioning(e.ctx, "nope", Enabled); !errors.Is(err, ErrNoSuchBucket) {
		t.Fatalf("set versioning missing: %v", err)
	}

	// Non-empty: an object, a delete marker alone, an upload.
	e.put("alpha", "k", "v")
	if err := e.s.DeleteBucket(e.ctx, "alpha"); !errors.Is(err, ErrBucketNotEmpty) {
		t.Fatalf("delete with object: %v", err)
	}
	res, err := e.s.DeleteObject(e.ctx, "alpha", "k", DeleteOptions{})
	if err != nil || !res.DeleteMarker {
		t.Fatal(res, err)
	}
	vs, _ := e.s.ListObjectVersions(e.ctx, "alpha", ListVersionsOptions{})
	for _, v := range vs.Versions {
		if !v.DeleteMarker {
			if _, err := e.s.DeleteObject(e.ctx, "alpha", "k", DeleteOptions{VersionID: v.VersionID}); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := e.s.DeleteBucket(e.ctx, "alpha"); !errors.Is(err, ErrBucketNotEmpty) {
		t.Fatalf("delete with only a delete marker: %v", err)
	}
	if _, err := e.s.DeleteObject(e.ctx, "alpha", "k", DeleteOptions{VersionID: res.VersionID}); err != nil {
		t.Fatal(err)
	}
	// Incomplete uploads do not keep a bucket alive, as in S3: they are
	// aborted with the bucket and their parts' data is deleted (checked
	// by newEnv's cleanup against the data store).
	var ids []string
	for _, key := range []string{"mp", "mp", "dir/other"} {
		id, err := e.s.CreateMultipartUpload(e.ctx, "alpha", key, PutOptions{})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
		for n := 1; n <= 2; n++ {
			body := big(100, byte(n))
			if _, err := e.s.UploadPart(e.ctx, "alpha", key, id, n, strings.NewReader(body), int64(len(body)), PartOptions{}); err != nil {
				t.Fatal(err)
			}
		}
	}
	if len(e.data.ids()) == 0 {
		t.Fatal("parts stored no data")
	}
	e.put("alpha", "k", "v")
	if err := e.s.DeleteBucket(e.ctx, "alpha"); !errors.Is(err, ErrBucketNotEmpty) {
		t.Fatalf("delete with object and uploads: %v", err)
	}
	if _, err := e.s.ListMultipartUploads(e.ctx, "alpha", ListUploadsOptions{}); err != nil {
		t.Fatal(err)
	}
	vs, _ = e.s.ListObjectVersions(e.ctx, "alpha", ListVersionsOptions{})
	for _, v := range vs.Versions {
		if _, err := e.s.DeleteObject(e.ctx, "alpha", "k", DeleteOptions{VersionID: v.VersionID}); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.s.DeleteBucket(e.ctx, "alpha"); err != nil {
		t.Fatalf("delete with only uploads: %v", err)
	}
	if got := e.data.ids(); len(got) != 0 {
		t.Fatalf("data left after deleting the bucket: %v", got)
	}
	if err := e.s.AbortMultipartUpload(e.ctx, "alpha", "mp", ids[0]); !errors.Is(err, ErrNoSuchBucket) {
		t.Fatalf("abort in deleted bucket: %v", err)
	}
	if err := e.s.DeleteBucket(e.ctx, "alpha"); !errors.Is(err, ErrNoSuchBucket) {
		t.Fatalf("delete twice: %v", err)
	}
	if _, err := e.s.PutObject(e.ctx, "alpha", "k", strings.NewReader("x"), 1, PutOptions{}); !errors.Is(err, ErrNoSuchBucket) {
		t.Fatalf("put to deleted bucket: %v", err)
	}
	// A new bucket of the same name starts empty and unversioned.
	e.bucket("alpha", Unversioned)
	if bi, _ := e.s.HeadBucket(e.ctx, "alpha"); bi.Versioning != Unversioned {
		t.Fatal("recreated bucket kept versioning")
	}
	if r, _ := e.s.ListObjectVersions(e.ctx, "alpha", ListVersionsOptions{}); len(r.Versions) != 0 {
		t.Fatalf("recreated bucket not empty: %+v", r)
	}
}

func TestConfigValidate(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatal(err)
	}
	bad := []func(*Config){
		func(c *Config) { c.Partitions = 0 },
		func(c *Config) { c.InlineMax = -1 },
		func(c *Config) { c.Now = nil },
		func(c *Config) { c.MaxObjectSize = 0 },
		func(c *Config) { c.MinPartSize = c.MaxPartSize + 1 },
		func(c *Config) { c.MaxParts = 10001 },
	}
	for i, f := range bad {
		c := DefaultConfig()
		f(&c)
		if err := c.Validate(); err == nil {
			t.Errorf("case %d: accepted", i)
		}
		if _, err := New(c, nil, nil, nil); err == nil {
			t.Errorf("case %d: New accepted", i)
		}
	}
}

// TestStrongIsTheDefault: a bucket made without asking, or asking for
// strong, is strong and says so; an unknown consistency is refused.
func TestStrongIsTheDefault(t *testing.T) {
	e := newEnv(t)
	if err := e.s.CreateBucketWith(e.ctx, "odd", BucketConfig{Consistency: 7}); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("create with consistency 7: %v", err)
	}
	if err := e.s.CreateBucketWith(e.ctx, "strong", BucketConfig{Consistency: Strong}); err != nil {
		t.Fatal(err)
	}
	e.bucket("plain", Unversioned)
	for _, name := range []string{"strong", "plain"} {
		bi, err := e.s.HeadBucket(e.ctx, name)
		if err != nil || bi.Consistency != Strong {
			t.Fatalf("head %s: %+v %v", name, bi, err)
		}
	}
}

func TestParseConsistency(t *testing.T) {
	for in, want := range map[string]Consistency{"": Strong, "strong": Strong, " Available ": Available, "AVAILABLE": Available} {
		if got, err := ParseConsistency(in); err != nil || got != want {
			t.Errorf("ParseConsistency(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"eventual", "strongish", "1"} {
		if _, err := ParseConsistency(in); !errors.Is(err, ErrInvalidArgument) {
			t.Errorf("ParseConsistency(%q): %v, want ErrInvalidArgument", in, err)
		}
	}
	for _, c := range []Consistency{Strong, Available} {
		if got, err := ParseConsistency(c.String()); err != nil || got != c {
			t.Errorf("round trip of %v: %v %v", c, got, err)
		}
	}
}
