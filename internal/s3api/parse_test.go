package s3api

import (
	"errors"
	"strings"
	"testing"

	"github.com/redoubt-io/redoubt/internal/objects"
)

func TestParseRange(t *testing.T) {
	for _, c := range []struct {
		in   string
		want objects.Range
		err  error
	}{
		{"bytes=0-0", objects.Range{Set: true, Start: 0, End: 0}, nil},
		{"bytes=5-9", objects.Range{Set: true, Start: 5, End: 9}, nil},
		{"bytes=5-", objects.Range{Set: true, Start: 5, End: -1}, nil},
		{"bytes=-3", objects.Range{Set: true, Suffix: 3, End: -1}, nil},
		// Blanks inside the range make it malformed: the whole object is served.
		{" bytes= 1 - 2 ", objects.Range{}, errRangeIgnored},
		{"bytes= -1", objects.Range{}, errRangeIgnored},
		{"bytes=0 -1", objects.Range{}, errRangeIgnored},
		{"bytes=0-\t1", objects.Range{}, errRangeIgnored},
		{"bytes=-0", objects.Range{}, errRangeUnsatisfiable},
		{"bytes=9-5", objects.Range{}, errRangeIgnored},
		{"bytes=0-1,3-4", objects.Range{}, errRangeIgnored},
		{"items=0-1", objects.Range{}, errRangeIgnored},
		{"bytes=-", objects.Range{}, errRangeIgnored},
		{"bytes=+1-2", objects.Range{}, errRangeIgnored},
		{"bytes=99999999999999999999-", objects.Range{}, errRangeIgnored},
		{"bytes=9223372036854775807-", objects.Range{Set: true, Start: 1<<63 - 1, End: -1}, nil},
	} {
		got, err := parseRange(c.in)
		if !errors.Is(err, c.err) || got != c.want {
			t.Errorf("parseRange(%q) = %+v, %v; want %+v, %v", c.in, got, err, c.want, c.err)
		}
	}
}

func FuzzParseRange(f *testing.F) {
	for _, s := range []string{"bytes=0-1", "bytes=-5", "bytes=7-", "bytes=1-2,3-4", "bytes=-0", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := parseRange(s)
		if err != nil {
			if r != (objects.Range{}) {
				t.Fatalf("error with a range: %+v", r)
			}
			return
		}
		if !r.Set || r.Start < 0 || r.Suffix < 0 || (r.End >= 0 && r.End < r.Start) || (r.Suffix > 0 && r.Start != 0) {
			t.Fatalf("parseRange(%q) = %+v", s, r)
		}
	})
}

func TestParseXMLBodies(t *testing.T) {
	parts, err := parseComplete([]byte(`<CompleteMultipartUpload xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
	<Part><PartNumber>1</PartNumber><ETag>"aa"</ETag></Part><Part><PartNumber>2</PartNumber><ETag>bb</ETag><ChecksumCRC32>AAAAAA==</ChecksumCRC32></Part></CompleteMultipartUpload>`))
	if err != nil || len(parts) != 2 || parts[1].ETag != `"bb"` || parts[1].Checksums.CRC32 != "AAAAAA==" {
		t.Fatalf("complete: %+v %v", parts, err)
	}
	for _, bad := range []string{"", "<CompleteMultipartUpload/>", "<Other><Part/></Other>", "<CompleteMultipartUpload><Part>",
		"<CompleteMultipartUpload><Part><PartNumber>x</PartNumber></Part></CompleteMultipartUpload>"} {
		if _, err := parseComplete([]byte(bad)); err == nil {
			t.Errorf("parseComplete(%q) accepted", bad)
		}
	}
	quiet, objs, err := parseDelete([]byte(`<Delete><Quiet>true</Quiet><Object><Key>a</Key><VersionId>v1</VersionId></Object></Delete>`))
	if err != nil || !quiet || len(objs) != 1 || objs[0] != (deleteObject{"a", "v1"}) {
		t.Fatalf("delete: %v %+v %v", quiet, objs, err)
	}
	many := "<Delete>" + strings.Repeat("<Object><Key>k</Key></Object>", 1001) + "</Delete>"
	if _, _, err := parseDelete([]byte(many)); !errors.Is(err, errMalformedXML) {
		t.Fatalf("1001 keys: %v", err)
	}
	if loc, err := parseCreateBucket([]byte("  ")); err != nil || loc != "" {
		t.Fatalf("empty create config: %q %v", loc, err)
	}
	if loc, err := parseCreateBucket([]byte("<CreateBucketConfiguration><LocationConstraint>eu-west-1</LocationConstraint></CreateBucketConfiguration>")); err != nil || loc != "eu-west-1" {
		t.Fatalf("create config: %q %v", loc, err)
	}
	if v, err := parseVersioning([]byte("<VersioningConfiguration><Status>Suspended</Status></VersioningConfiguration>")); err != nil || v != objects.Suspended {
		t.Fatalf("versioning: %v %v", v, err)
	}
	if _, err := parseVersioning([]byte("<VersioningConfiguration><Status>Enabled</Status><MfaDelete>Enabled</MfaDelete></VersioningConfiguration>")); !errors.Is(err, errNotImpl) {
		t.Fatalf("mfa delete: %v", err)
	}
}

// fuzzXML checks that a parser never panics and only fails with an S3
// error.
func fuzzXML(f *testing.F, seeds []string, parse func([]byte) error) {
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if err := parse(b); err != nil {
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("non-S3 error %v", err)
			}
		}
	})
}

func FuzzParseComplete(f *testing.F) {
	fuzzXML(f, []string{`<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>"x"</ETag></Part></CompleteMultipartUpload>`},
		func(b []byte) error { _, err := parseComplete(b); return err })
}

func FuzzParseDelete(f *testing.F) {
	fuzzXML(f, []string{`<Delete><Quiet>false</Quiet><Object><Key>a</Key></Object></Delete>`},
		func(b []byte) error { _, _, err := parseDelete(b); return err })
}

func FuzzParseCreateBucket(f *testing.F) {
	fuzzXML(f, []string{`<CreateBucketConfiguration><LocationConstraint>us-east-1</LocationConstraint></CreateBucketConfiguration>`, ""},
		func(b []byte) error { _, err := parseCreateBucket(b); return err })
}

func FuzzParseVersioning(f *testing.F) {
	fuzzXML(f, []string{`<VersioningConfiguration><Status>Enabled</Status></VersioningConfiguration>`},
		func(b []byte) error { _, err := parseVersioning(b); return err })
}

func FuzzCopySource(f *testing.F) {
	for _, s := range []string{"bkt/key", "/bkt/a%20b?versionId=v1", "bkt", "%zz"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		src, err := copySource(s)
		if err == nil && (src.Bucket == "" || src.Key == "") {
			t.Fatalf("copySource(%q) = %+v", s, src)
		}
	})
}

func TestContinuationToken(t *testing.T) {
	for _, m := range []string{"", "a", "dir/", "ünï\x00code"} {
		got, err := decodeToken(encodeToken(m))
		if err != nil || got != m {
			t.Fatalf("token round trip %q: %q %v", m, got, err)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatal(err)
	}
	c := DefaultConfig()
	c.Region = ""
	c.Domains = []string{"a/b"}
	if err := c.Validate(); err == nil {
		t.Fatal("bad config accepted")
	}
}
