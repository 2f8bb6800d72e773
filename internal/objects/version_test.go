package objects

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func versionsOf(t *testing.T, e *env, bucket string) []ObjectInfo {
	t.Helper()
	r, err := e.s.ListObjectVersions(e.ctx, bucket, ListVersionsOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return r.Versions
}

func TestVersioningEnabled(t *testing.T) {
	e := newEnv(t)
	e.bucket("ver", Enabled)
	v1 := e.put("ver", "k", big(100, 1))
	e.clk.Advance(time.Second)
	v2 := e.put("ver", "k", "second")
	if v1.VersionID == "" || v2.VersionID == "" || v1.VersionID == v2.VersionID || !(v1.VersionID < v2.VersionID) {
		t.Fatalf("version ids %q %q", v1.VersionID, v2.VersionID)
	}
	if got := e.mustGet("ver", "k", GetOptions{}); got != "second" {
		t.Fatalf("latest %q", got)
	}
	if got := e.mustGet("ver", "k", GetOptions{VersionID: v1.VersionID}); got != big(100, 1) {
		t.Fatal("v1 content")
	}
	oi, _, _ := e.get("ver", "k", GetOptions{VersionID: v1.VersionID})
	if oi.IsLatest || oi.VersionID != v1.VersionID {
		t.Fatalf("v1 info %+v", oi)
	}
	// Delete without version ID adds a marker.
	dr, err := e.s.DeleteObject(e.ctx, "ver", "k", DeleteOptions{})
	if err != nil || !dr.DeleteMarker || dr.VersionID == "" {
		t.Fatalf("delete %+v %v", dr, err)
	}
	oi, _, err = e.get("ver", "k", GetOptions{})
	if !errors.Is(err, ErrNoSuchKey) || !oi.DeleteMarker || oi.VersionID != dr.VersionID {
		t.Fatalf("get after marker: %+v %v", oi, err)
	}
	if _, _, err := e.get("ver", "k", GetOptions{VersionID: dr.VersionID}); !errors.Is(err, ErrMethodNotAllowed) {
		t.Fatalf("get marker by id: %v", err)
	}
	if got := e.mustGet("ver", "k", GetOptions{VersionID: v2.VersionID}); got != "second" {
		t.Fatal("v2 after marker")
	}
	vs := versionsOf(t, e, "ver")
	if len(vs) != 3 || !vs[0].DeleteMarker || !vs[0].IsLatest || vs[1].VersionID != v2.VersionID || vs[1].IsLatest || vs[2].VersionID != v1.VersionID {
		t.Fatalf("versions %+v", vs)
	}
	if l, _ := e.s.ListObjects(e.ctx, "ver", ListOptions{}); len(l.Objects) != 0 {
		t.Fatalf("listed behind a marker: %+v", l)
	}
	// Removing the marker restores v2.
	if r, err := e.s.DeleteObject(e.ctx, "ver", "k", DeleteOptions{VersionID: dr.VersionID}); err != nil || !r.DeleteMarker {
		t.Fatalf("delete marker by id %+v %v", r, err)
	}
	if got := e.mustGet("ver", "k", GetOptions{}); got != "second" {
		t.Fatalf("after removing marker %q", got)
	}
	// Deleting a middle version removes exactly it and its data.
	if _, err := e.s.DeleteObject(e.ctx, "ver", "k", DeleteOptions{VersionID: v1.VersionID}); err != nil {
		t.Fatal(err)
	}
	if len(e.data.ids()) != 0 {
		t.Fatalf("v1 data left %v", e.data.ids())
	}
	if _, _, err := e.get("ver", "k", GetOptions{VersionID: v1.VersionID}); !errors.Is(err, ErrNoSuchVersion) {
		t.Fatalf("deleted version: %v", err)
	}
	// Deleting the latest makes the next newest latest; deleting the last removes the key.
	v3 := e.put("ver", "k", "third")
	if _, err := e.s.DeleteObject(e.ctx, "ver", "k", DeleteOptions{VersionID: v3.VersionID}); err != nil {
		t.Fatal(err)
	}
	if got := e.mustGet("ver", "k", GetOptions{}); got != "second" {
		t.Fatalf("after deleting latest %q", got)
	}
	if _, err := e.s.DeleteObject(e.ctx, "ver", "k", DeleteOptions{VersionID: v2.VersionID}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.get("ver", "k", GetOptions{}); !errors.Is(err, ErrNoSuchKey) {
		t.Fatalf("after deleting all: %v", err)
	}
	if len(versionsOf(t, e, "ver")) != 0 {
		t.Fatal("versions left")
	}
	// Unknown and malformed version IDs.
	if _, err := e.s.DeleteObject(e.ctx, "ver", "k", DeleteOptions{VersionID: v2.VersionID}); err != nil {
		t.Fatalf("delete of gone version: %v", err)
	}
	if _, err := e.s.DeleteObject(e.ctx, "ver", "k", DeleteOptions{VersionID: "bogus"}); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("malformed version id: %v", err)
	}
	for _, vid := range []string{"invalid_version_id", "../../secret.txt", "bogus"} {
		if _, _, err := e.get("ver", "k2", GetOptions{VersionID: vid}); !errors.Is(err, ErrInvalidArgument) {
			t.Fatalf("get malformed version id %q: %v", vid, err)
		}
	}
	// Well-formed but never issued here (an S3 or ULID-style ID): no such
	// version; deleting it is a no-op.
	for _, vid := range []string{"01G65Z755AFWAKHE12NY0CQ9FH", "UIORUnfndfhnw89493jJFJ8383lll22"} {
		if _, _, err := e.get("ver", "k2", GetOptions{VersionID: vid}); !errors.Is(err, ErrNoSuchVersion) {
			t.Fatalf("get unknown version id %q: %v", vid, err)
		}
		if _, err := e.s.CopyObject(e.ctx, CopySource{Bucket: "ver", Key: "k2", VersionID: vid}, "ver", "c", PutOptions{}); !errors.Is(err, ErrNoSuchVersion) {
			t.Fatalf("copy unknown version id %q: %v", vid, err)
		}
		if r, err := e.s.DeleteObject(e.ctx, "ver", "k", DeleteOptions{VersionID: vid}); err != nil || r.VersionID != vid {
			t.Fatalf("delete unknown version id %q: %+v %v", vid, r, err)
		}
	}
	if _, _, err := e.get("ver", "k", GetOptions{VersionID: "null"}); !errors.Is(err, ErrNoSuchVersion) {
		t.Fatalf("null version: %v", err)
	}
	// A marker on a key that never existed is still created.
	if r, err := e.s.DeleteObject(e.ctx, "ver", "never", DeleteOptions{}); err != nil || !r.DeleteMarker {
		t.Fatalf("marker on missing key %+v %v", r, err)
	}
}

func TestVersioningStateChanges(t *testing.T) {
	e := newEnv(t)
	e.bucket("ver", Unversioned)
	e.put("ver", "k", big(100, 1)) // the null version
	if oi, _, _ := e.get("ver", "k", GetOptions{}); oi.VersionID != "" {
		t.Fatalf("unversioned version id %q", oi.VersionID)
	}
	if err := e.s.SetVersioning(e.ctx, "ver", Enabled); err != nil {
		t.Fatal(err)
	}
	v1 := e.put("ver", "k", "enabled-1")
	vs := versionsOf(t, e, "ver")
	if len(vs) != 2 || vs[1].VersionID != "null" || vs[0].VersionID != v1.VersionID {
		t.Fatalf("versions %+v", vs)
	}
	if got := e.mustGet("ver", "k", GetOptions{VersionID: "null"}); got != big(100, 1) {
		t.Fatal("null version content")
	}
	if err := e.s.SetVersioning(e.ctx, "ver", Suspended); err != nil {
		t.Fatal(err)
	}
	// Suspended: a PUT replaces the null version (and its data).
	n := e.put("ver", "k", "suspended")
	if n.VersionID != "null" {
		t.Fatalf("suspended put version id %q", n.VersionID)
	}
	vs = versionsOf(t, e, "ver")
	if len(vs) != 2 || vs[0].VersionID != "null" || !vs[0].IsLatest || vs[1].VersionID != v1.VersionID {
		t.Fatalf("versions after suspended put %+v", vs)
	}
	if len(e.data.ids()) != 0 {
		t.Fatalf("old null data left: %v", e.data.ids())
	}
	// Suspended: DELETE puts a null delete marker in place of the null version.
	dr, err := e.s.DeleteObject(e.ctx, "ver", "k", DeleteOptions{})
	if err != nil || !dr.DeleteMarker || dr.VersionID != "null" {
		t.Fatalf("suspended delete %+v %v", dr, err)
	}
	vs = versionsOf(t, e, "ver")
	if len(vs) != 2 || !vs[0].DeleteMarker || vs[0].VersionID != "null" || vs[1].VersionID != v1.VersionID {
		t.Fatalf("versions after suspended delete %+v", vs)
	}
	// Re-enable: new versions stack on top; the null marker stays.
	if err := e.s.SetVersioning(e.ctx, "ver", Enabled); err != nil {
		t.Fatal(err)
	}
	v2 := e.put("ver", "k", "enabled-2")
	if got := e.mustGet("ver", "k", GetOptions{}); got != "enabled-2" {
		t.Fatal(got)
	}
	if len(versionsOf(t, e, "ver")) != 3 {
		t.Fatal("want 3 versions")
	}
	// Suspend again and PUT: the null marker (older than v2) is replaced,
	// and the new null version is the latest.
	if err := e.s.SetVersioning(e.ctx, "ver", Suspended); err != nil {
		t.Fatal(err)
	}
	e.put("ver", "k", "null-again")
	vs = versionsOf(t, e, "ver")
	if len(vs) != 3 || vs[0].VersionID != "null" || vs[0].DeleteMarker || vs[1].VersionID != v2.VersionID || vs[2].VersionID != v1.VersionID {
		t.Fatalf("versions %+v", vs)
	}
	if got := e.mustGet("ver", "k", GetOptions{}); got != "null-again" {
		t.Fatal(got)
	}
	// Deleting the null version by ID makes v2 current again.
	if _, err := e.s.DeleteObject(e.ctx, "ver", "k", DeleteOptions{VersionID: "null"}); err != nil {
		t.Fatal(err)
	}
	if got := e.mustGet("ver", "k", GetOptions{}); got != "enabled-2" {
		t.Fatal(got)
	}
}

func TestVersionIDsFollowClockBackwards(t *testing.T) {
	e := newEnv(t)
	e.bucket("ver", Enabled)
	a := e.put("ver", "k", "a")
	e.clk.Advance(-time.Hour) // the wall clock jumps back
	b := e.put("ver", "k", "b")
	if !(a.VersionID < b.VersionID) {
		t.Fatalf("ids not increasing: %s %s", a.VersionID, b.VersionID)
	}
	if got := e.mustGet("ver", "k", GetOptions{}); got != "b" {
		t.Fatalf("latest %q", got)
	}
}

func TestListObjectVersionsPaging(t *testing.T) {
	e := newEnv(t)
	e.bucket("ver", Enabled)
	want := map[string][]string{}
	for _, k := range []string{"a", "b/1", "b/2", "c"} {
		for i := 0; i < 3; i++ {
			oi := e.put("ver", k, strings.Repeat(k, i+1))
			want[k] = append([]string{oi.VersionID}, want[k]...)
		}
	}
	for _, max := range []int{1, 2, 5, 1000} {
		var got []string
		var cps []string
		opts := ListVersionsOptions{MaxKeys: max, Delimiter: "/"}
		for pages := 0; ; pages++ {
			if pages > 50 {
				t.Fatal("too many pages")
			}
			r, err := e.s.ListObjectVersions(e.ctx, "ver", opts)
			if err != nil {
				t.Fatal(err)
			}
			if len(r.Versions)+len(r.CommonPrefixes) > max {
				t.Fatalf("page of %d over %d", len(r.Versions)+len(r.CommonPrefixes), max)
			}
			for _, v := range r.Versions {
				got = append(got, v.Key+"@"+v.VersionID)
				if v.IsLatest != (v.VersionID == want[v.Key][0]) {
					t.Fatalf("max %d: IsLatest of %s %s = %v", max, v.Key, v.VersionID, v.IsLatest)
				}
			}
			cps = append(cps, r.CommonPrefixes...)
			if !r.IsTruncated {
				break
			}
			opts.KeyMarker, opts.VersionIDMarker = r.NextKeyMarker, r.NextVersionIDMarker
		}
		var exp []string
		for _, k := range []string{"a", "c"} {
			for _, v := range want[k] {
				exp = append(exp, k+"@"+v)
			}
		}
		if strings.Join(got, ",") != strings.Join(exp, ",") || strings.Join(cps, ",") != "b/" {
			t.Fatalf("max %d:\n got %v %v\nwant %v [b/]", max, got, cps, exp)
		}
	}
}

func TestDeleteFailuresCommitNothing(t *testing.T) {
	e := newEnv(t)
	e.bucket("ver", Enabled)
	v1 := e.put("ver", "k", big(100, 1))
	before := e.snapshot()
	for _, opts := range []DeleteOptions{
		{IfMatch: `"nope"`},
		{VersionID: v1.VersionID, IfMatch: `"nope"`},
		{VersionID: "not-a-version"},
	} {
		if _, err := e.s.DeleteObject(e.ctx, "ver", "k", opts); err == nil {
			t.Fatalf("%+v: no error", opts)
		}
		if e.snapshot() != before {
			t.Fatalf("%+v: metadata changed", opts)
		}
	}
	if _, err := e.s.DeleteObject(e.ctx, "ver", "", DeleteOptions{}); !errors.Is(err, ErrInvalidKey) {
		t.Fatalf("empty key: %v", err)
	}
	if _, err := e.s.DeleteObject(e.ctx, "nobkt", "k", DeleteOptions{}); !errors.Is(err, ErrNoSuchBucket) {
		t.Fatalf("missing bucket: %v", err)
	}
}
