package objects

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	pebblevfs "github.com/cockroachdb/pebble/v2/vfs"

	"github.com/redoubt-io/redoubt/internal/meta"
	"github.com/redoubt-io/redoubt/internal/records"
	"github.com/redoubt-io/redoubt/internal/testlog"
)

// recordNet is three nodes' records stores, and which nodes are cut off
// from which.
type recordNet struct {
	stores [3]*records.Store
	mu     sync.Mutex
	cut    map[[2]int]bool
}

var errCut = errors.New("test: link cut")

func newRecordNet(t *testing.T) *recordNet {
	n := &recordNet{cut: map[[2]int]bool{}}
	for i := range n.stores {
		s, err := records.Open("db", pebblevfs.NewMem(), nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		n.stores[i] = s
	}
	return n
}

// isolate cuts node i off from the others; heal joins them again.
func (n *recordNet) isolate(i int) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for j := range n.stores {
		if j != i {
			n.cut[[2]int{i, j}], n.cut[[2]int{j, i}] = true, true
		}
	}
}

func (n *recordNet) heal() {
	n.mu.Lock()
	n.cut = map[[2]int]bool{}
	n.mu.Unlock()
}

func (n *recordNet) linked(from, to int) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cut[[2]int{from, to}] {
		return errCut
	}
	return nil
}

// from is RecordReplicas as node i reaches them.
func (n *recordNet) from(i int) RecordReplicas { return netView{n, i} }

type netView struct {
	n    *recordNet
	from int
}

func (v netView) RecordReplicas(_ context.Context, _ uint32) RecordSet {
	var rs RecordSet
	for j := range v.n.stores {
		rs.Replicas = append(rs.Replicas, linkReplica{v.n, v.from, j})
	}
	return rs
}

type linkReplica struct {
	n        *recordNet
	from, to int
}

func (l linkReplica) Put(p records.Partition, recs []records.Record) (int, error) {
	if err := l.n.linked(l.from, l.to); err != nil {
		return 0, err
	}
	return l.n.stores[l.to].Put(p, recs)
}

func (l linkReplica) Records(p records.Partition, key []byte) ([]records.Record, error) {
	if err := l.n.linked(l.from, l.to); err != nil {
		return nil, err
	}
	return l.n.stores[l.to].Records(p, key)
}

func (l linkReplica) Scan(p records.Partition, from, to []byte, limit int) ([]records.Record, bool, error) {
	if err := l.n.linked(l.from, l.to); err != nil {
		return nil, false, err
	}
	return l.n.stores[l.to].Scan(p, from, to, limit)
}

// availEnv is three nodes over one metadata store and one data store,
// each reaching the records of available buckets through the recordNet.
type availEnv struct {
	*env
	net   *recordNet
	nodes [3]*Service
}

func newAvailEnv(t *testing.T) *availEnv {
	t.Helper()
	net := newRecordNet(t)
	e := newEnv(t, func(c *Config) { c.Records = net.from(0) })
	a := &availEnv{env: e, net: net}
	a.nodes[0] = e.s
	for i := 1; i < 3; i++ {
		cfg := e.s.cfg
		cfg.Records = net.from(i)
		cfg.Incarnation.Nonce = 0
		s, err := New(cfg, e.s.md.inner, e.data, slog.New(slog.NewTextHandler(testlog.Writer(t), nil)))
		if err != nil {
			t.Fatal(err)
		}
		a.nodes[i] = s
	}
	e.moreRefs = a.dataRefs
	return a
}

// dataRefs are the data IDs the visible versions in the records name.
func (a *availEnv) dataRefs() []string {
	seen := map[string]bool{}
	for _, s := range a.net.stores {
		for p := range uint32(a.s.cfg.Partitions) {
			recs, _, err := s.Scan(records.Partition(p), nil, nil, 1<<20)
			if err != nil {
				a.t.Fatal(err)
			}
			for i := 0; i < len(recs); {
				j := i
				for j < len(recs) && string(recs[j].Key) == string(recs[i].Key) {
					j++
				}
				st := records.StateOf(recs[i:j])
				for _, v := range st.Visible() {
					r, err := decodeVersion(v.ID.TS, v.Body)
					if err != nil {
						a.t.Fatal(err)
					}
					for _, ref := range r.refs() {
						seen[ref.ID] = true
					}
				}
				i = j
			}
		}
	}
	var out []string
	for id := range seen {
		out = append(out, id)
	}
	return out
}

func (a *availEnv) bucket(name string, v Versioning, copies int) {
	a.t.Helper()
	if err := a.s.CreateBucketWith(a.ctx, name, BucketConfig{Consistency: Available, WriteCopies: copies}); err != nil {
		a.t.Fatal(err)
	}
	if v != Unversioned {
		if err := a.s.SetVersioning(a.ctx, name, v); err != nil {
			a.t.Fatal(err)
		}
	}
}

func (a *availEnv) put(node int, bucket, key, body string) ObjectInfo {
	a.t.Helper()
	oi, err := a.nodes[node].PutObject(a.ctx, bucket, key, strings.NewReader(body), int64(len(body)), PutOptions{})
	if err != nil {
		a.t.Fatalf("put %s/%s through node %d: %v", bucket, key, node, err)
	}
	return oi
}

func (a *availEnv) read(node int, bucket, key string) (string, error) {
	a.t.Helper()
	_, rc, err := a.nodes[node].GetObject(a.ctx, bucket, key, GetOptions{})
	if err != nil {
		return "", err
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	return string(b), err
}

func (a *availEnv) mustRead(node int, bucket, key string) string {
	a.t.Helper()
	body, err := a.read(node, bucket, key)
	if err != nil {
		a.t.Fatalf("get %s/%s through node %d: %v", bucket, key, node, err)
	}
	return body
}

// versions lists key's versions through node, greatest first, as
// "body" (or "marker"), the current one starred.
func (a *availEnv) versions(node int, bucket, key string) []string {
	a.t.Helper()
	res, err := a.nodes[node].ListObjectVersions(a.ctx, bucket, ListVersionsOptions{Prefix: key})
	if err != nil {
		a.t.Fatal(err)
	}
	var out []string
	for _, v := range res.Versions {
		if v.Key != key {
			continue
		}
		s := "marker"
		if !v.DeleteMarker {
			_, rc, err := a.nodes[node].GetObject(a.ctx, bucket, key, GetOptions{VersionID: v.VersionID})
			if err != nil {
				a.t.Fatalf("get version %s: %v", v.VersionID, err)
			}
			b, _ := io.ReadAll(rc)
			rc.Close()
			s = string(b)
		}
		if v.IsLatest {
			s += "*"
		}
		out = append(out, s)
	}
	return out
}

// TestAvailableWritesOnBothSidesOfACut: a node cut off from the other
// replicas takes writes (one copy, said so), as the other side does (two
// copies); each side reads its own write; after the heal both writes are
// versions of the key everywhere, the greater current, and a write that
// saw both replaces both.
func TestAvailableWritesOnBothSidesOfACut(t *testing.T) {
	a := newAvailEnv(t)
	a.bucket("shop", Unversioned, 0)
	if oi := a.put(0, "shop", "cart", "before"); oi.Copies < 2 {
		t.Fatalf("write with every node up: %d copies, want at least 2", oi.Copies)
	}
	a.net.isolate(0)
	left := a.put(0, "shop", "cart", "left")
	right := a.put(1, "shop", "cart", "right")
	if left.Copies != 1 || right.Copies != 2 {
		t.Fatalf("copies: %d on the lone side, %d on the pair's; want 1 and 2", left.Copies, right.Copies)
	}
	if got := a.mustRead(0, "shop", "cart"); got != "left" {
		t.Fatalf("lone side reads %q, want its own write", got)
	}
	if got := a.mustRead(2, "shop", "cart"); got != "right" {
		t.Fatalf("pair side reads %q, want its own write", got)
	}
	a.net.heal()
	want := "right" // the later write: the fake clock does not move, so the greater ID is the later one
	if left.VersionID > right.VersionID {
		want = "left"
	}
	for n := range a.nodes {
		if got := a.mustRead(n, "shop", "cart"); got != want {
			t.Fatalf("after the heal node %d reads %q, want %q (the greater version)", n, got, want)
		}
	}
	got := a.versions(1, "shop", "cart")
	if len(got) != 2 || !slices.Contains(got, "left") && !slices.Contains(got, "left*") {
		t.Fatalf("versions after the heal %v: want both writes, nothing lost", got)
	}
	// Read repair made every replica hold both.
	for i, s := range a.net.stores {
		st, err := s.Get(records.Partition(a.s.availPartition("shop", "cart")), availKey(mustBucketID(t, a.env, "shop"), "cart"))
		if err != nil || len(st.Heads()) != 2 {
			t.Fatalf("replica %d holds %d heads after reads (%v), want the 2 concurrent writes", i, len(st.Heads()), err)
		}
	}
	a.put(2, "shop", "cart", "resolved")
	if got := a.versions(0, "shop", "cart"); !slices.Equal(got, []string{"resolved*"}) {
		t.Fatalf("after a write that saw both: %v, want only it", got)
	}
}

func mustBucketID(t *testing.T, e *env, name string) bucketID {
	r, _, err := e.s.getBucket(e.ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	return r.ID
}

// TestAvailableOverwriteAndDelete: the S3 semantics of an available
// bucket with every node up: unversioned overwrites and deletes leave
// nothing behind; versioned ones keep versions and add markers, and a
// version named by its ID is read and removed.
func TestAvailableOverwriteAndDelete(t *testing.T) {
	a := newAvailEnv(t)
	a.bucket("plain", Unversioned, 3)
	a.put(0, "plain", "k", "one")
	a.put(1, "plain", "k", big(200, 1)) // in the data store
	if got := a.versions(2, "plain", "k"); len(got) != 1 || got[0] != big(200, 1)+"*" {
		t.Fatalf("unversioned overwrite leaves %d versions, want 1", len(got))
	}
	a.put(2, "plain", "k", "three") // replaces the stored body: its data goes
	if res, err := a.nodes[0].DeleteObject(a.ctx, "plain", "k", DeleteOptions{}); err != nil || res.DeleteMarker || res.Copies != 3 {
		t.Fatalf("unversioned delete: %+v %v", res, err)
	}
	if _, err := a.read(1, "plain", "k"); !errors.Is(err, ErrNoSuchKey) {
		t.Fatalf("read after delete: %v, want ErrNoSuchKey", err)
	}
	if got := a.versions(1, "plain", "k"); len(got) != 0 {
		t.Fatalf("versions after an unversioned delete: %v", got)
	}

	a.bucket("kept", Enabled, 3)
	v1 := a.put(0, "kept", "k", "v1")
	a.put(1, "kept", "k", "v2")
	del, err := a.nodes[2].DeleteObject(a.ctx, "kept", "k", DeleteOptions{})
	if err != nil || !del.DeleteMarker {
		t.Fatalf("versioned delete: %+v %v", del, err)
	}
	if _, err := a.read(0, "kept", "k"); !errors.Is(err, ErrNoSuchKey) {
		t.Fatalf("read under a marker: %v", err)
	}
	if got := a.versions(0, "kept", "k"); !slices.Equal(got, []string{"marker*", "v2", "v1"}) {
		t.Fatalf("versions %v", got)
	}
	_, rc, err := a.nodes[1].GetObject(a.ctx, "kept", "k", GetOptions{VersionID: v1.VersionID})
	if err != nil {
		t.Fatalf("get v1 by ID: %v", err)
	}
	rc.Close()
	if _, err := a.nodes[1].DeleteObject(a.ctx, "kept", "k", DeleteOptions{VersionID: del.VersionID}); err != nil {
		t.Fatal(err)
	}
	if got := a.mustRead(2, "kept", "k"); got != "v2" {
		t.Fatalf("after removing the marker: %q, want v2", got)
	}
	if _, err := a.nodes[0].DeleteObject(a.ctx, "kept", "k", DeleteOptions{VersionID: v1.VersionID}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := a.nodes[2].GetObject(a.ctx, "kept", "k", GetOptions{VersionID: v1.VersionID}); !errors.Is(err, ErrNoSuchVersion) {
		t.Fatalf("removed version: %v, want ErrNoSuchVersion", err)
	}
	if _, _, err := a.nodes[2].GetObject(a.ctx, "kept", "k", GetOptions{VersionID: "null"}); !errors.Is(err, ErrNoSuchVersion) {
		t.Fatalf("version null: %v, want ErrNoSuchVersion", err)
	}
	if _, _, err := a.nodes[2].GetObject(a.ctx, "kept", "k", GetOptions{VersionID: "x!"}); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("version x!: %v, want ErrInvalidArgument", err)
	}
	// Conditions hold against what the replicas hold.
	if _, err := a.nodes[0].PutObject(a.ctx, "kept", "k", strings.NewReader("x"), 1, PutOptions{IfNoneMatch: "*"}); !errors.Is(err, ErrPreconditionFailed) {
		t.Fatalf("create-only over an object: %v", err)
	}
	if _, err := a.nodes[0].PutObject(a.ctx, "kept", "new", strings.NewReader("x"), 1, PutOptions{IfNoneMatch: "*"}); err != nil {
		t.Fatalf("create-only of a new key: %v", err)
	}
}

// TestAvailableListing: listings merge every replica's keys, page by
// page, with prefixes and delimiters, and leave out deleted keys.
func TestAvailableListing(t *testing.T) {
	a := newAvailEnv(t)
	a.bucket("logs", Unversioned, 0)
	var want []string
	a.net.isolate(0)
	for i := range 40 {
		key := fmt.Sprintf("day%d/%02d", i%3, i)
		a.put(i%2, "logs", key, "x") // half on node 0 alone, half on 1 and 2
		want = append(want, key)
	}
	a.put(1, "logs", "gone", "x")
	if _, err := a.nodes[1].DeleteObject(a.ctx, "logs", "gone", DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	a.net.heal()
	slices.Sort(want)
	var got []string
	marker := ""
	for {
		res, err := a.nodes[2].ListObjects(a.ctx, "logs", ListOptions{Marker: marker, MaxKeys: 7})
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range res.Objects {
			got = append(got, o.Key)
		}
		if !res.IsTruncated {
			break
		}
		marker = res.NextMarker
	}
	if !slices.Equal(got, want) {
		t.Fatalf("listed %v\nwant %v", got, want)
	}
	res, err := a.nodes[0].ListObjects(a.ctx, "logs", ListOptions{Delimiter: "/"})
	if err != nil || !slices.Equal(res.CommonPrefixes, []string{"day0/", "day1/", "day2/"}) || len(res.Objects) != 0 {
		t.Fatalf("delimited listing: %+v %v", res, err)
	}
	res, err = a.nodes[0].ListObjects(a.ctx, "logs", ListOptions{Prefix: "day1/", MaxKeys: 1000})
	if err != nil || len(res.Objects) != 13 {
		t.Fatalf("prefix listing: %d objects, %v; want 13", len(res.Objects), err)
	}
}

// unavailableMeta fails every call once down is set, as a metadata store
// without a majority does.
type unavailableMeta struct {
	meta.Store
	down *bool
}

func (u unavailableMeta) Get(ctx context.Context, p meta.Partition, key []byte) (meta.Item, error) {
	if *u.down {
		return meta.Item{}, meta.ErrUnavailable
	}
	return u.Store.Get(ctx, p, key)
}

func (u unavailableMeta) Scan(ctx context.Context, p meta.Partition, start, end []byte, fn func([]byte, meta.Item) bool) error {
	if *u.down {
		return meta.ErrUnavailable
	}
	return u.Store.Scan(ctx, p, start, end, fn)
}

func (u unavailableMeta) Commit(ctx context.Context, p meta.Partition, txn meta.Txn) (uint64, error) {
	if *u.down {
		return 0, meta.ErrUnavailable
	}
	return u.Store.Commit(ctx, p, txn)
}

// TestAvailableWithoutMetadataMajority: a node that knows an available
// bucket goes on writing, reading, deleting and listing its objects when
// no metadata partition answers, while a strong bucket's requests
// answer unavailable.
func TestAvailableWithoutMetadataMajority(t *testing.T) {
	net := newRecordNet(t)
	down := false
	e := newEnvOn(t, func(md *meta.Mem, _ int) meta.Store { return unavailableMeta{md, &down} },
		func(c *Config) { c.Records = net.from(0) })
	if err := e.s.CreateBucketWith(e.ctx, "avail", BucketConfig{Consistency: Available}); err != nil {
		t.Fatal(err)
	}
	e.bucket("strong", Unversioned)
	if _, err := e.s.HeadBucket(e.ctx, "avail"); err != nil {
		t.Fatal(err)
	}
	down = true
	defer func() { down = false }()
	e.put("avail", "k", "written without a majority")
	if got := e.mustGet("avail", "k", GetOptions{}); got != "written without a majority" {
		t.Fatalf("read %q", got)
	}
	if res, err := e.s.ListObjects(e.ctx, "avail", ListOptions{}); err != nil || len(res.Objects) != 1 {
		t.Fatalf("list: %+v %v", res, err)
	}
	if _, err := e.s.DeleteObject(e.ctx, "avail", "k", DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if bi, err := e.s.HeadBucket(e.ctx, "avail"); err != nil || bi.Consistency != Available {
		t.Fatalf("head: %+v %v", bi, err)
	}
	if _, err := e.s.PutObject(e.ctx, "strong", "k", strings.NewReader("x"), 1, PutOptions{}); !errors.Is(err, meta.ErrUnavailable) {
		t.Fatalf("strong bucket without a majority: %v, want unavailable", err)
	}
}

// TestAvailableBucketNeedsRecords: a node that keeps no records refuses
// to make an available bucket, precisely and with nothing made; write
// copies are for available buckets only.
func TestAvailableBucketNeedsRecords(t *testing.T) {
	e := newEnv(t)
	if err := e.s.CreateBucketWith(e.ctx, "avail", BucketConfig{Consistency: Available}); !errors.Is(err, ErrNotImplemented) {
		t.Fatalf("create available: %v, want ErrNotImplemented", err)
	}
	if _, err := e.s.HeadBucket(e.ctx, "avail"); !errors.Is(err, ErrNoSuchBucket) {
		t.Fatalf("head of the refused bucket: %v, want ErrNoSuchBucket", err)
	}
	if err := e.s.CreateBucketWith(e.ctx, "strong", BucketConfig{WriteCopies: 2}); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("strong bucket with write copies: %v", err)
	}
	a := newAvailEnv(t)
	if err := a.s.CreateBucketWith(a.ctx, "many", BucketConfig{Consistency: Available, WriteCopies: MaxWriteCopies + 1}); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("write copies %d: %v", MaxWriteCopies+1, err)
	}
	a.bucket("three", Unversioned, 3)
	bi, err := a.nodes[1].HeadBucket(a.ctx, "three")
	if err != nil || bi.Consistency != Available || bi.WriteCopies != 3 {
		t.Fatalf("head: %+v %v", bi, err)
	}
}

// TestAvailableDeleteBucket: a bucket with a visible version anywhere is
// not deleted; once every key is deleted it is, and every replica must
// answer for that.
func TestAvailableDeleteBucket(t *testing.T) {
	a := newAvailEnv(t)
	a.bucket("bkt", Unversioned, 0)
	a.net.isolate(2)
	a.put(2, "bkt", "only-on-2", "x")
	if err := a.nodes[0].DeleteBucket(a.ctx, "bkt"); !errors.Is(err, meta.ErrUnavailable) {
		t.Fatalf("delete with a replica cut off: %v, want unavailable", err)
	}
	a.net.heal()
	if err := a.nodes[0].DeleteBucket(a.ctx, "bkt"); !errors.Is(err, ErrBucketNotEmpty) {
		t.Fatalf("delete of a bucket with an object on one replica: %v, want ErrBucketNotEmpty", err)
	}
	if _, err := a.nodes[0].DeleteObject(a.ctx, "bkt", "only-on-2", DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := a.nodes[0].DeleteBucket(a.ctx, "bkt"); err != nil {
		t.Fatalf("delete of the emptied bucket: %v", err)
	}
}

// TestAvailableMultipart: a multipart upload to an available bucket
// completes into a version of its records.
func TestAvailableMultipart(t *testing.T) {
	a := newAvailEnv(t)
	a.bucket("upl", Unversioned, 3)
	id, err := a.s.CreateMultipartUpload(a.ctx, "upl", "big", PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	p1 := big(100, 3)
	p2 := "tail"
	i1, err := a.s.UploadPart(a.ctx, "upl", "big", id, 1, strings.NewReader(p1), int64(len(p1)), PartOptions{})
	if err != nil {
		t.Fatal(err)
	}
	i2, err := a.s.UploadPart(a.ctx, "upl", "big", id, 2, strings.NewReader(p2), int64(len(p2)), PartOptions{})
	if err != nil {
		t.Fatal(err)
	}
	oi, err := a.nodes[1].CompleteMultipartUpload(a.ctx, "upl", "big", id, []CompletePart{{Number: 1, ETag: i1.ETag}, {Number: 2, ETag: i2.ETag}}, CompleteOptions{})
	if err != nil || oi.Copies != 3 || oi.Parts != 2 {
		t.Fatalf("complete: %+v %v", oi, err)
	}
	if got := a.mustRead(2, "upl", "big"); got != p1+p2 {
		t.Fatalf("read %d bytes, want %d", len(got), len(p1+p2))
	}
}

// TestAvailableConflicts: keys written on both sides of a cut are listed
// as conflicts, with both writes, until a write that saw both resolves
// them; a strong bucket has none to list.
func TestAvailableConflicts(t *testing.T) {
	a := newAvailEnv(t)
	a.bucket("shop", Enabled, 0)
	a.put(0, "shop", "calm", "only one writer")
	a.net.isolate(0)
	for _, key := range []string{"a", "b"} {
		a.put(0, "shop", key, "left")
		a.put(1, "shop", key, "right")
	}
	a.net.heal()
	got, next, err := a.nodes[2].Conflicts(a.ctx, "shop", "", "", 0)
	if err != nil || next != "" || len(got) != 2 || got[0].Key != "a" || got[1].Key != "b" || len(got[0].Heads) != 2 || !got[0].Heads[0].IsLatest {
		t.Fatalf("conflicts: %+v next %q %v", got, next, err)
	}
	page, next, err := a.nodes[2].Conflicts(a.ctx, "shop", "", "", 1)
	if err != nil || len(page) != 1 || next != "a" {
		t.Fatalf("first page of one: %+v next %q %v", page, next, err)
	}
	a.put(2, "shop", "a", "resolved")
	if got, _, err := a.nodes[0].Conflicts(a.ctx, "shop", "", "", 0); err != nil || len(got) != 1 || got[0].Key != "b" {
		t.Fatalf("after resolving a: %+v %v", got, err)
	}
	a.env.bucket("strong", Unversioned)
	if _, _, err := a.s.Conflicts(a.ctx, "strong", "", "", 0); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("conflicts of a strong bucket: %v", err)
	}
}

// TestOldConflictsResolved: in an unversioned available bucket with a
// conflict retention, a conflict's older heads are removed once older
// than the retention, the current version staying; a versioned bucket's
// and a younger conflict's are kept.
func TestOldConflictsResolved(t *testing.T) {
	a := newAvailEnv(t)
	for _, name := range []string{"kept-briefly", "versioned"} {
		if err := a.s.CreateBucketWith(a.ctx, name, BucketConfig{Consistency: Available, ConflictRetention: time.Hour}); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.s.SetVersioning(a.ctx, "versioned", Enabled); err != nil {
		t.Fatal(err)
	}
	if bi, err := a.nodes[1].HeadBucket(a.ctx, "kept-briefly"); err != nil || bi.ConflictRetention != time.Hour {
		t.Fatalf("head: %+v %v", bi, err)
	}
	a.net.isolate(0)
	for _, b := range []string{"kept-briefly", "versioned"} {
		a.put(0, b, "k", "left")
		a.put(1, b, "k", "right")
	}
	a.net.heal()
	current := a.mustRead(2, "kept-briefly", "k")
	if n, err := a.s.ResolveOldConflicts(a.ctx); err != nil || n != 0 {
		t.Fatalf("a young conflict: %d removed, %v", n, err)
	}
	a.clk.Advance(2 * time.Hour)
	if n, err := a.s.ResolveOldConflicts(a.ctx); err != nil || n != 1 {
		t.Fatalf("an old conflict: %d removed, %v; want 1", n, err)
	}
	if got := a.versions(1, "kept-briefly", "k"); len(got) != 1 || got[0] != current+"*" {
		t.Fatalf("after the retention: %v, want the current version alone", got)
	}
	if got := a.versions(1, "versioned", "k"); len(got) != 2 {
		t.Fatalf("versioned bucket: %v, want both versions kept", got)
	}
	if err := a.s.CreateBucketWith(a.ctx, "odd-retention", BucketConfig{Consistency: Available, ConflictRetention: 1500 * time.Millisecond}); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("retention of 1.5 s: %v", err)
	}
}
