package objects

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"

	"github.com/redoubt-io/redoubt/internal/meta"
	"github.com/redoubt-io/redoubt/internal/testlog"
)

// commitHook is a Mem whose commits can be held or failed by the test.
type commitHook struct {
	*meta.Mem
	mu sync.Mutex
	// onCommit, when set, sees every commit before it is applied; an
	// error it returns is returned instead of applying it.
	onCommit func(p meta.Partition, txn meta.Txn) error
}

func (h *commitHook) Commit(ctx context.Context, p meta.Partition, txn meta.Txn) (uint64, error) {
	h.mu.Lock()
	f := h.onCommit
	h.mu.Unlock()
	if f != nil {
		if err := f(p, txn); err != nil {
			return 0, err
		}
	}
	return h.Mem.Commit(ctx, p, txn)
}

func (h *commitHook) hook(f func(p meta.Partition, txn meta.Txn) error) {
	h.mu.Lock()
	h.onCommit = f
	h.mu.Unlock()
}

// commitsVersion reports whether txn adds a version (a PUT's commit).
func commitsVersion(txn meta.Txn) bool {
	for _, kv := range txn.Puts {
		if kv.Key[0] == tagVersion {
			return true
		}
	}
	return false
}

// holdOnce returns a hook that holds the first commit matching match
// until release is closed, closing held when it starts holding.
func holdOnce(match func(meta.Txn) bool) (hook func(meta.Partition, meta.Txn) error, held, release chan struct{}) {
	held, release = make(chan struct{}), make(chan struct{})
	var once sync.Once
	hook = func(_ meta.Partition, txn meta.Txn) error {
		if !match(txn) {
			return nil
		}
		first := false
		once.Do(func() { first = true })
		if first {
			close(held)
			<-release
		}
		return nil
	}
	return hook, held, release
}

func newHookService(t *testing.T, md meta.Store, data *memBlocks) *Service {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Partitions = 8
	cfg.InlineMax = 16
	s, err := New(cfg, md, data, slog.New(slog.NewTextHandler(testlog.Writer(t), &slog.HandlerOptions{Level: slog.LevelWarn})))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func readAll(t *testing.T, s *Service, bucket, key, vid string) (string, error) {
	t.Helper()
	_, rc, err := s.GetObject(context.Background(), bucket, key, GetOptions{VersionID: vid})
	if err != nil {
		return "", err
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	return string(b), err
}

// A PUT that read the bucket's state before versioning was enabled and
// commits after the change was acknowledged acts on the new state: it
// adds a version and keeps the null version and its data (the hole where
// a cached bucket record made it overwrite the null version).
func TestFencePutRacingVersioningKeepsNullVersion(t *testing.T) {
	md := &commitHook{Mem: meta.NewMem()}
	data := newMemBlocks()
	s := newHookService(t, md, data)
	ctx := context.Background()
	if err := s.CreateBucket(ctx, "bkt"); err != nil {
		t.Fatal(err)
	}
	precious := strings.Repeat("precious ", 10)
	if _, err := s.PutObject(ctx, "bkt", "k", strings.NewReader(precious), int64(len(precious)), PutOptions{}); err != nil {
		t.Fatal(err)
	}
	hook, held, release := holdOnce(commitsVersion)
	md.hook(hook)
	type result struct {
		oi  ObjectInfo
		err error
	}
	done := make(chan result)
	go func() {
		oi, err := s.PutObject(ctx, "bkt", "k", strings.NewReader("new body, stored"), 16, PutOptions{})
		done <- result{oi, err}
	}()
	<-held // the PUT read the fence (unversioned) and is about to commit
	md.hook(nil)
	if err := s.SetVersioning(ctx, "bkt", Enabled); err != nil {
		t.Fatal(err)
	}
	close(release)
	r := <-done
	if r.err != nil {
		t.Fatal(r.err)
	}
	if r.oi.VersionID == "" || r.oi.VersionID == "null" {
		t.Errorf("the PUT committed after versioning was enabled made version %q, want a new version", r.oi.VersionID)
	}
	if got, err := readAll(t, s, "bkt", "k", "null"); err != nil || got != precious {
		t.Errorf("null version after the racing PUT: %q, %v; want the first body", got, err)
	}
	if got, _ := readAll(t, s, "bkt", "k", ""); got != "new body, stored" {
		t.Errorf("latest = %q", got)
	}
}

// A PUT whose commit comes after DeleteBucket checked the bucket empty is
// refused with NoSuchBucket and leaves nothing behind, instead of being
// acknowledged and lost with the bucket.
func TestFenceDeleteBucketRacingPutLosesNothing(t *testing.T) {
	md := &commitHook{Mem: meta.NewMem()}
	data := newMemBlocks()
	s := newHookService(t, md, data)
	ctx := context.Background()
	if err := s.CreateBucket(ctx, "bkt"); err != nil {
		t.Fatal(err)
	}
	hook, held, release := holdOnce(commitsVersion)
	md.hook(hook)
	errc := make(chan error)
	go func() {
		_, err := s.PutObject(ctx, "bkt", "k", strings.NewReader("acknowledged? never"), 19, PutOptions{})
		errc <- err
	}()
	<-held
	md.hook(nil)
	if err := s.DeleteBucket(ctx, "bkt"); err != nil {
		t.Fatal(err)
	}
	close(release)
	if err := <-errc; !errors.Is(err, ErrNoSuchBucket) {
		t.Fatalf("PUT racing DeleteBucket: %v, want NoSuchBucket", err)
	}
	if ids := data.ids(); len(ids) != 0 {
		t.Errorf("data left behind: %v", ids)
	}
	for p := 0; p < s.cfg.Partitions; p++ {
		_ = md.Scan(ctx, meta.Partition(p), nil, nil, func(k []byte, _ meta.Item) bool {
			t.Errorf("partition %d still holds %q", p, k)
			return true
		})
	}
	// Created again, the bucket is empty.
	if err := s.CreateBucket(ctx, "bkt"); err != nil {
		t.Fatal(err)
	}
	if _, err := readAll(t, s, "bkt", "k", ""); !errors.Is(err, ErrNoSuchKey) {
		t.Errorf("GET in the new bucket: %v, want NoSuchKey", err)
	}
}

// A PUT that read the bucket record itself before a versioning change and
// commits after a write issued under the new state is ordered before that
// write: it does not become the latest version above it.
func TestFenceWriteIssuedBeforeChangeIsOrderedBelow(t *testing.T) {
	md := &commitHook{Mem: meta.NewMem()}
	s := newHookService(t, md, newMemBlocks())
	ctx := context.Background()
	if err := s.CreateBucket(ctx, "bkt"); err != nil {
		t.Fatal(err)
	}
	s.buckets.forget("bkt") // the PUT reads the record itself
	hook, held, release := holdOnce(commitsVersion)
	md.hook(hook)
	type result struct {
		oi  ObjectInfo
		err error
	}
	done := make(chan result)
	go func() {
		oi, err := s.PutObject(ctx, "bkt", "k", strings.NewReader("issued first, stored"), 20, PutOptions{})
		done <- result{oi, err}
	}()
	<-held
	md.hook(nil)
	if err := s.SetVersioning(ctx, "bkt", Enabled); err != nil {
		t.Fatal(err)
	}
	second, err := s.PutObject(ctx, "bkt", "k", strings.NewReader("second"), 6, PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	close(release)
	first := <-done
	if first.err != nil {
		t.Fatal(first.err)
	}
	if got, _ := readAll(t, s, "bkt", "k", ""); got != "second" {
		t.Errorf("latest = %q, want the write issued after the change", got)
	}
	if first.oi.IsLatest || first.oi.VersionID >= second.VersionID {
		t.Errorf("first write: version %s latest %v; second %s", first.oi.VersionID, first.oi.IsLatest, second.VersionID)
	}
	if got, err := readAll(t, s, "bkt", "k", first.oi.VersionID); err != nil || got != "issued first, stored" {
		t.Errorf("first write's version: %q, %v", got, err)
	}
}

// A versioning change whose changer dies after freezing the fences is
// finished by the next operation that meets them: it waits, then helps.
func TestFenceAbandonedChangeIsFinishedByOthers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		md := &commitHook{Mem: meta.NewMem()}
		s := newHookService(t, md, newMemBlocks())
		other := newHookService(t, md, newMemBlocks())
		ctx := context.Background()
		if err := s.CreateBucket(ctx, "bkt"); err != nil {
			t.Fatal(err)
		}
		crash := errors.New("changer died")
		md.hook(func(p meta.Partition, txn meta.Txn) error {
			if p == meta.System && len(txn.Puts) == 1 {
				if r, err := decodeBucket(txn.Puts[0].Value); err == nil && r.Pending.Kind == changeNone && r.Epoch == 1 {
					return crash // the decision never lands
				}
			}
			return nil
		})
		if err := s.SetVersioning(ctx, "bkt", Enabled); !errors.Is(err, crash) {
			t.Fatalf("SetVersioning: %v, want the injected failure", err)
		}
		md.hook(nil)
		oi, err := other.PutObject(ctx, "bkt", "k", strings.NewReader("v"), 1, PutOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if oi.VersionID == "" || oi.VersionID == "null" {
			t.Errorf("PUT after the abandoned change was finished: version %q, want a version", oi.VersionID)
		}
		bi, err := other.HeadBucket(ctx, "bkt")
		if err != nil || bi.Versioning != Enabled {
			t.Errorf("versioning after the change was finished: %v %v", bi.Versioning, err)
		}
	})
}

// Buckets whose records were written before fences existed are fenced on
// first use, and then behave like any other.
func TestFenceLegacyBucketIsFencedOnFirstUse(t *testing.T) {
	md := meta.NewMem()
	s := newHookService(t, md, newMemBlocks())
	ctx := context.Background()
	legacy := []byte{recordVersion, 1, 2, 3, 4, 5, 6, 7, 8, 2, byte(Unversioned)} // id, created 1, unversioned
	if _, err := md.Commit(ctx, meta.System, meta.Txn{Puts: []meta.KV{{Key: bucketKey("old"), Value: legacy}}}); err != nil {
		t.Fatal(err)
	}
	if r, err := decodeBucket(legacy); err != nil || r.Fenced {
		t.Fatalf("legacy record: %+v %v", r, err)
	}
	if _, err := s.PutObject(ctx, "old", "k", strings.NewReader("v"), 1, PutOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := s.SetVersioning(ctx, "old", Enabled); err != nil {
		t.Fatal(err)
	}
	if _, err := s.DeleteObject(ctx, "old", "k", DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteBucket(ctx, "old"); !errors.Is(err, ErrBucketNotEmpty) {
		t.Fatalf("DeleteBucket of a bucket with versions: %v", err)
	}
	vs, err := s.ListObjectVersions(ctx, "old", ListVersionsOptions{})
	if err != nil || len(vs.Versions) != 2 {
		t.Fatalf("versions: %+v %v", vs, err)
	}
}

// Two nodes creating one bucket at once: one wins, and the loser's fences
// are removed.
func TestFenceCreateRaceLeavesOneSetOfFences(t *testing.T) {
	md := meta.NewMem()
	a, b := newHookService(t, md, newMemBlocks()), newHookService(t, md, newMemBlocks())
	ctx := context.Background()
	errs := make(chan error, 2)
	for _, s := range []*Service{a, b} {
		go func() { errs <- s.CreateBucket(ctx, "bkt") }()
	}
	e1, e2 := <-errs, <-errs
	if (e1 == nil) == (e2 == nil) {
		t.Fatalf("create race: %v, %v; want one success", e1, e2)
	}
	for p := 0; p < a.cfg.Partitions; p++ {
		n := 0
		_ = md.Scan(ctx, meta.Partition(p), []byte{tagFence}, []byte{tagFence + 1}, func([]byte, meta.Item) bool { n++; return true })
		if n != 1 {
			t.Errorf("partition %d holds %d fences", p, n)
		}
	}
}

// readHook is a Mem that runs before, once, ahead of the first GetMany
// that reads a version record by its key.
type readHook struct {
	*meta.Mem
	armed  atomic.Bool
	before func()
}

func (h *readHook) GetMany(ctx context.Context, p meta.Partition, reads []meta.Read, o meta.ReadOptions) ([]meta.Item, uint64, error) {
	for _, r := range reads {
		if !r.First && len(r.Key) > 0 && r.Key[0] == tagVersion && h.armed.CompareAndSwap(true, false) {
			h.before()
		}
	}
	return h.Mem.GetMany(ctx, p, reads, o)
}

// A DELETE of the null version whose head read named a null version that
// a PUT replaced before the version itself was read deletes the
// replacement, as of a moment after the PUT; it never answers 204 having
// deleted nothing while a null version existed all along (the model
// checker found this through S3).
func TestDeleteNullVersionRacingItsReplacement(t *testing.T) {
	md := &readHook{Mem: meta.NewMem()}
	s := newHookService(t, md, newMemBlocks())
	ctx := context.Background()
	if err := s.CreateBucket(ctx, "bkt"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PutObject(ctx, "bkt", "k", strings.NewReader("first"), 5, PutOptions{}); err != nil {
		t.Fatal(err)
	}
	md.before = func() {
		if _, err := s.PutObject(ctx, "bkt", "k", strings.NewReader("second"), 6, PutOptions{}); err != nil {
			t.Error(err)
		}
	}
	md.armed.Store(true)
	if _, err := s.DeleteObject(ctx, "bkt", "k", DeleteOptions{VersionID: "null"}); err != nil {
		t.Fatal(err)
	}
	if got, err := readAll(t, s, "bkt", "k", ""); !errors.Is(err, ErrNoSuchKey) {
		t.Fatalf("after deleting the null version, GET = %q, %v; want NoSuchKey", got, err)
	}
}

// A GET shows an object's version ID as the bucket's versioning state
// says, whatever configuration changes came between: "" while the bucket
// is unversioned, though refused deletions moved its epoch on, and "null"
// once versioning was enabled over a version written before.
func TestGetShowsNullVersionIDByVersioningNotEpoch(t *testing.T) {
	s := newHookService(t, meta.NewMem(), newMemBlocks())
	ctx := context.Background()
	if err := s.CreateBucket(ctx, "bkt"); err != nil {
		t.Fatal(err)
	}
	versionID := func() string {
		t.Helper()
		oi, rc, err := s.GetObject(ctx, "bkt", "k", GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		rc.Close()
		return oi.VersionID
	}
	put := func(body string) {
		t.Helper()
		if _, err := s.PutObject(ctx, "bkt", "k", strings.NewReader(body), int64(len(body)), PutOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	put("before the refusal")
	if err := s.DeleteBucket(ctx, "bkt"); !errors.Is(err, ErrBucketNotEmpty) {
		t.Fatalf("DeleteBucket of a bucket with an object: %v", err)
	}
	if id := versionID(); id != "" {
		t.Errorf("version ID of an object in an unversioned bucket, written before a refused deletion: %q, want none", id)
	}
	put("after the refusal")
	if id := versionID(); id != "" {
		t.Errorf("version ID of an object in an unversioned bucket, written after a refused deletion: %q, want none", id)
	}
	if err := s.SetVersioning(ctx, "bkt", Suspended); err != nil {
		t.Fatal(err)
	}
	if id := versionID(); id != "null" {
		t.Errorf("version ID once versioning was suspended: %q, want null", id)
	}
	put("while suspended")
	if id := versionID(); id != "null" {
		t.Errorf("version ID of a null version written while suspended: %q, want null", id)
	}
}

// A null version's ID is "null": its timestamp, which a version of
// another key may share (version IDs are timestamps, unique per key),
// names nothing. GET, HEAD, a copy and DELETE by that ID answer as for a
// version that does not exist, and the null version stays. Found by the
// cluster simulation: a GET by another key's version ID served this key's
// null version.
func TestNullVersionIsNotNamedByItsTimestamp(t *testing.T) {
	s := newHookService(t, meta.NewMem(), newMemBlocks())
	ctx := context.Background()
	if err := s.CreateBucket(ctx, "bkt"); err != nil {
		t.Fatal(err)
	}
	const body = "the null version"
	if _, err := s.PutObject(ctx, "bkt", "k", strings.NewReader(body), int64(len(body)), PutOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := s.SetVersioning(ctx, "bkt", Enabled); err != nil {
		t.Fatal(err)
	}
	b, _, err := s.getBucket(ctx, "bkt")
	if err != nil {
		t.Fatal(err)
	}
	it, err := s.md.Get(ctx, s.partition("bkt", "k"), headKey(b.ID, "k"))
	if err != nil {
		t.Fatal(err)
	}
	h, _, err := decodeHeadItem(it, "k")
	if err != nil || !h.HasNull {
		t.Fatalf("head of k: %+v, %v; want a null version", h, err)
	}
	ts := h.NullTS.String()

	if _, rc, err := s.GetObject(ctx, "bkt", "k", GetOptions{VersionID: ts}); !errors.Is(err, ErrNoSuchVersion) {
		if rc != nil {
			rc.Close()
		}
		t.Errorf("GET k?versionId=%s (the null version's timestamp): %v, want NoSuchVersion", ts, err)
	}
	if _, rc, err := s.GetObject(ctx, "bkt", "k", GetOptions{VersionID: ts, HeadOnly: true}); !errors.Is(err, ErrNoSuchVersion) {
		if rc != nil {
			rc.Close()
		}
		t.Errorf("HEAD k?versionId=%s: %v, want NoSuchVersion", ts, err)
	}
	if _, err := s.CopyObject(ctx, CopySource{Bucket: "bkt", Key: "k", VersionID: ts}, "bkt", "copy", PutOptions{}); !errors.Is(err, ErrNoSuchVersion) {
		t.Errorf("copy of k?versionId=%s: %v, want NoSuchVersion", ts, err)
	}
	if res, err := s.DeleteObject(ctx, "bkt", "k", DeleteOptions{VersionID: ts}); err != nil || res.DeleteMarker {
		t.Errorf("DELETE k?versionId=%s: %+v, %v; want a delete of nothing", ts, res, err)
	}
	got, err := readAll(t, s, "bkt", "k", "null")
	if err != nil || got != body {
		t.Errorf("GET k?versionId=null after those: %q, %v; want %q", got, err, body)
	}
}
