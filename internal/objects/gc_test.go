package objects

import (
	"bytes"
	"context"
	crand "crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redoubt-io/redoubt/internal/blocks"
	"github.com/redoubt-io/redoubt/internal/meta"
	"github.com/redoubt-io/redoubt/internal/placement"
	"github.com/redoubt-io/redoubt/internal/store"
	"github.com/redoubt-io/redoubt/internal/testlog"
)

var errCrashed = errors.New("process crashed")

// crash is the shared "this process is dead" switch of crashMeta and
// crashData: once set, every effect of the old process fails, so none of
// its cleanup runs.
type crash struct{ dead atomic.Bool }

// crashMeta is a meta.Store of a process that may die around a commit.
type crashMeta struct {
	meta.Store
	c *crash
	// before and after, when they return true for a Txn, kill the
	// process before it is applied, or after it is applied but before
	// its answer arrives.
	before, after func(meta.Txn) bool
	// lost, when it returns true for a Txn, applies it and loses its
	// answer: the process lives on, not knowing whether it applied.
	lost func(meta.Txn) bool
	// unavailable, when it returns true for a Txn, refuses it unapplied
	// (meta.ErrUnavailable), as a group cut off from its quorum does; the
	// process lives on.
	unavailable func(meta.Txn) bool
	seenMoving  atomic.Int32 // for unavailable's predicates
}

func (m *crashMeta) Get(ctx context.Context, p meta.Partition, k []byte) (meta.Item, error) {
	if m.c.dead.Load() {
		return meta.Item{}, errCrashed
	}
	return m.Store.Get(ctx, p, k)
}

func (m *crashMeta) Scan(ctx context.Context, p meta.Partition, s, e []byte, fn func([]byte, meta.Item) bool) error {
	if m.c.dead.Load() {
		return errCrashed
	}
	return m.Store.Scan(ctx, p, s, e, fn)
}

func (m *crashMeta) Commit(ctx context.Context, p meta.Partition, txn meta.Txn) (uint64, error) {
	if m.c.dead.Load() || m.before != nil && m.before(txn) && m.c.dead.CompareAndSwap(false, true) {
		return 0, errCrashed
	}
	if m.unavailable != nil && m.unavailable(txn) {
		return 0, fmt.Errorf("cut off: %w", meta.ErrUnavailable)
	}
	rev, err := m.Store.Commit(ctx, p, txn)
	if err == nil && m.after != nil && m.after(txn) {
		m.c.dead.Store(true)
		return 0, errCrashed
	}
	if err == nil && m.lost != nil && m.lost(txn) {
		return 0, fmt.Errorf("commit answer lost: %w", meta.ErrUnavailable)
	}
	return rev, err
}

// crashData is a blocks.Store of a process that may die during a write.
type crashData struct {
	set    *blocks.Set
	drives map[string]*store.Drive
	c      *crash
	// at: "" no crash, "intent" before any shard, "some" with one shard
	// durable, "all" with every shard durable.
	at string
	// failDeletes makes best-effort deletes fail, as a dead drive would.
	failDeletes atomic.Bool
	// pause, when set, holds a write after its shards are durable until
	// it is closed; paused is closed when the first write gets there.
	pause, paused chan struct{}
	once          sync.Once
	// moveAt: "" no crash, "move-none" before any new shard, "move-some"
	// with one new shard durable, "move-all" with every new shard
	// durable; "move-fail" fails the move (every new shard durable)
	// without a crash.
	moveAt string
	// afterMove, when set, runs once every new shard of a move is durable,
	// before the move returns: what it does races the move's commit.
	afterMove func(blocks.Ref)
	// beforeDrop, when set, runs once when DropMoved is called, before it
	// removes anything.
	beforeDrop func()
}

var (
	_ blocks.IDWriter = (*crashData)(nil)
	_ blocks.Mover    = (*crashData)(nil)
)

var errMoveFailed = errors.New("move failed")

func (d *crashData) Move(ctx context.Context, ref blocks.Ref, to []string) (blocks.Ref, error) {
	if d.c.dead.Load() {
		return blocks.Ref{}, errCrashed
	}
	if d.moveAt == "move-none" {
		d.c.dead.Store(true)
		return blocks.Ref{}, errCrashed
	}
	nref, err := d.set.Move(ctx, ref, to)
	if err != nil {
		return nref, err
	}
	if f := d.afterMove; f != nil {
		d.afterMove = nil
		f(nref)
	}
	switch d.moveAt {
	case "move-some":
		// Only the first new shard reached its drive before the crash.
		first := true
		for i := range to {
			if to[i] == ref.Drives[i] {
				continue
			}
			if first {
				first = false
				continue
			}
			if err := d.drives[to[i]].Remove(ctx, store.Name{ID: ref.ID, Shard: i}); err != nil {
				return blocks.Ref{}, err
			}
		}
		d.c.dead.Store(true)
		return blocks.Ref{}, errCrashed
	case "move-all":
		d.c.dead.Store(true)
		return blocks.Ref{}, errCrashed
	case "move-fail":
		return blocks.Ref{}, errMoveFailed
	}
	return nref, nil
}

func (d *crashData) DropMoved(ctx context.Context, ref blocks.Ref, to []string) error {
	if d.c.dead.Load() || d.failDeletes.Load() {
		return errCrashed
	}
	if f := d.beforeDrop; f != nil {
		d.beforeDrop = nil
		f()
	}
	return d.set.DropMoved(ctx, ref, to)
}

func (d *crashData) Write(ctx context.Context, p uint32, r io.Reader) (blocks.Ref, error) {
	return d.set.Write(ctx, p, r)
}

func (d *crashData) WriteID(ctx context.Context, p uint32, id string, r io.Reader) (blocks.Ref, error) {
	if d.c.dead.Load() {
		return blocks.Ref{}, errCrashed
	}
	if d.at == "intent" {
		d.c.dead.Store(true)
		return blocks.Ref{}, errCrashed
	}
	ref, err := d.set.WriteID(ctx, p, id, r)
	if err != nil {
		return ref, err
	}
	if d.pause != nil {
		d.once.Do(func() { close(d.paused) })
		<-d.pause
	}
	switch d.at {
	case "some":
		// Only shard 0 reached its drive before the crash.
		for i, did := range ref.Drives[1:] {
			if err := d.drives[did].Remove(ctx, store.Name{ID: ref.ID, Shard: i + 1}); err != nil {
				return blocks.Ref{}, err
			}
		}
		d.c.dead.Store(true)
		return blocks.Ref{}, errCrashed
	case "all":
		d.c.dead.Store(true)
		return blocks.Ref{}, errCrashed
	}
	return ref, nil
}

func (d *crashData) Open(ctx context.Context, ref blocks.Ref, off, n int64) (io.ReadCloser, error) {
	return d.set.Open(ctx, ref, off, n)
}

func (d *crashData) Delete(ctx context.Context, ref blocks.Ref) error {
	if d.c.dead.Load() || d.failDeletes.Load() {
		return errCrashed
	}
	return d.set.Delete(ctx, ref)
}

// gcEnv is one standalone node's real drives and metadata.
type gcEnv struct {
	t      *testing.T
	md     meta.Store
	drives []*store.Drive
	set    *blocks.Set
	log    *slog.Logger
}

func newGCEnv(t *testing.T) *gcEnv {
	t.Helper()
	return newGCEnvWith(t, 4, placement.DefaultPolicy(4))
}

// newGCEnvWith is newGCEnv over n drives, writing with policy pol.
func newGCEnvWith(t *testing.T, n int, pol placement.Policy) *gcEnv {
	t.Helper()
	log := slog.New(slog.NewTextHandler(testlog.Writer(t), &slog.HandlerOptions{Level: slog.LevelWarn}))
	dir := t.TempDir()
	var paths []string
	for i := range n {
		p := filepath.Join(dir, fmt.Sprintf("d%d", i))
		if err := os.MkdirAll(p, 0o700); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, p)
	}
	drives, err := store.Open(context.Background(), store.DefaultConfig(), paths, log)
	if err != nil {
		t.Fatal(err)
	}
	bcfg := blocks.DefaultConfig(pol)
	bcfg.ChunkSize = 64 << 10
	set, err := blocks.New(bcfg, drives, log)
	if err != nil {
		t.Fatal(err)
	}
	return &gcEnv{t: t, md: meta.NewMem(), drives: drives, set: set, log: log}
}

// service starts a "process": a Service of a new incarnation of node n1
// over the env's stores, possibly wrapped.
func (e *gcEnv) service(md meta.Store, data blocks.Store) *Service {
	e.t.Helper()
	return e.serviceOn("n1", md, data)
}

// serviceOn is service for a process of node.
func (e *gcEnv) serviceOn(node string, md meta.Store, data blocks.Store) *Service {
	e.t.Helper()
	cfg := DefaultConfig()
	cfg.Partitions = 8
	cfg.InlineMax = 1 << 10
	cfg.MinPartSize = 1
	cfg.Incarnation = Incarnation{Node: node}
	if md == nil {
		md = e.md
	}
	if data == nil {
		data = e.set
	}
	s, err := New(cfg, md, data, e.log)
	if err != nil {
		e.t.Fatal(err)
	}
	return s
}

func (e *gcEnv) crashing() (*crash, *crashMeta, *crashData) {
	c := &crash{}
	byID := map[string]*store.Drive{}
	for _, d := range e.drives {
		byID[d.ID()] = d
	}
	return c, &crashMeta{Store: e.md, c: c}, &crashData{set: e.set, drives: byID, c: c}
}

func (e *gcEnv) gcDrives() []GCDrive {
	var out []GCDrive
	for _, d := range e.drives {
		out = append(out, d)
	}
	return out
}

func (e *gcEnv) gc(s *Service) GCStats {
	e.t.Helper()
	st, err := s.CollectGarbage(context.Background(), e.gcDrives(), GCOptions{})
	if err != nil {
		e.t.Fatalf("gc: %v", err)
	}
	e.t.Logf("gc: %s", st)
	return st
}

// check asserts the two promises: every shard file on a drive is a copy
// its record keeps, which is a copy a committed record names on that
// drive (no orphan, no copy a move left), and every shard such a record
// names is on its drive (nothing referenced was removed); every object of
// want reads back exact; and every ref record is of committed data and
// settled (no intent, no move or reaping in flight), naming the drives of
// its Ref.
func (e *gcEnv) check(s *Service, bucket string, want map[string][]byte) {
	e.t.Helper()
	ctx := context.Background()
	files := e.files()
	refs := map[string]blocks.Ref{}
	err := s.ForEachRef(ctx, func(r blocks.Ref) error {
		if old, dup := refs[r.ID]; dup {
			e.t.Errorf("ref %s named twice, on %v and %v", r.ID, old.Drives, r.Drives)
		}
		refs[r.ID] = r
		for i, did := range r.Drives {
			n := store.Name{ID: r.ID, Shard: i}
			if !slices.Contains(files[n], did) {
				e.t.Errorf("referenced shard %s missing from drive %s", n, did)
			}
		}
		return nil
	})
	if err != nil {
		e.t.Fatal(err)
	}
	for n, on := range files {
		r, ok := refs[n.ID]
		for _, did := range on {
			if !ok || n.Shard >= len(r.Drives) || r.Drives[n.Shard] != did {
				e.t.Errorf("orphan shard %s on drive %s survived garbage collection", n, did)
			}
		}
	}
	for p := 0; p < s.cfg.Partitions; p++ {
		err := e.md.Scan(ctx, meta.Partition(p), []byte{tagRef}, []byte{tagRef + 1}, func(k []byte, it meta.Item) bool {
			id := string(k[1:])
			rec, err := decodeRefRec(it.Value)
			r, named := refs[id]
			switch {
			case err != nil || !named:
				e.t.Errorf("ref record %s left: %+v %v", id, rec, err)
			case rec.State == refPlaced && !slices.Equal(rec.Drives, r.Drives):
				e.t.Errorf("ref record %s places shards on %v, its Ref on %v", id, rec.Drives, r.Drives)
			case rec.State != refLive && rec.State != refPlaced:
				e.t.Errorf("ref record %s left in state %d: %+v", id, rec.State, rec)
			}
			return true
		})
		if err != nil {
			e.t.Fatal(err)
		}
	}
	for key, data := range want {
		_, rc, err := s.GetObject(ctx, bucket, key, GetOptions{})
		if err != nil {
			e.t.Errorf("get %s: %v", key, err)
			continue
		}
		got, err := io.ReadAll(rc)
		rc.Close()
		if err != nil || !bytes.Equal(got, data) {
			e.t.Errorf("get %s: %d bytes, err %v; want %d bytes", key, len(got), err, len(data))
		}
	}
}

// files lists every shard file: the drives holding each name.
func (e *gcEnv) files() map[store.Name][]string {
	e.t.Helper()
	files := map[store.Name][]string{}
	for _, d := range e.drives {
		err := d.Walk(context.Background(), func(si store.ShardInfo) error {
			files[si.Name] = append(files[si.Name], d.ID())
			return nil
		})
		if err != nil {
			e.t.Fatal(err)
		}
	}
	return files
}

func body(rng *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}

func isVersionCommit(txn meta.Txn) bool {
	for _, kv := range txn.Puts {
		if kv.Key[0] == tagVersion {
			return true
		}
	}
	return false
}

// TestGCCrashedPut crashes a writer at each step of a PUT, restarts, runs
// one pass, and checks that no orphan survives and nothing referenced
// went.
func TestGCCrashedPut(t *testing.T) {
	for _, step := range []string{"intent", "some", "all", "before-commit", "after-commit"} {
		t.Run(step, func(t *testing.T) {
			ctx := context.Background()
			e := newGCEnv(t)
			rng := rand.New(rand.NewPCG(1, 2))
			c, md, data := e.crashing()
			s1 := e.service(md, data)
			if err := s1.CreateBucket(ctx, "bkt"); err != nil {
				t.Fatal(err)
			}
			want := map[string][]byte{"keep": body(rng, 300<<10), "small": body(rng, 100)}
			for k, v := range want {
				if _, err := s1.PutObject(ctx, "bkt", k, bytes.NewReader(v), int64(len(v)), PutOptions{}); err != nil {
					t.Fatal(err)
				}
			}
			// Orphans of a deleted version and an aborted upload whose
			// best-effort data deletes failed.
			gone := body(rng, 200<<10)
			if _, err := s1.PutObject(ctx, "bkt", "gone", bytes.NewReader(gone), int64(len(gone)), PutOptions{}); err != nil {
				t.Fatal(err)
			}
			uid, err := s1.CreateMultipartUpload(ctx, "bkt", "mp", PutOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := s1.UploadPart(ctx, "bkt", "mp", uid, 1, bytes.NewReader(gone), int64(len(gone)), PartOptions{}); err != nil {
				t.Fatal(err)
			}
			data.failDeletes.Store(true)
			if _, err := s1.DeleteObject(ctx, "bkt", "gone", DeleteOptions{}); err != nil {
				t.Fatal(err)
			}
			if err := s1.AbortMultipartUpload(ctx, "bkt", "mp", uid); err != nil {
				t.Fatal(err)
			}
			data.failDeletes.Store(false)

			victim := body(rng, 500<<10)
			switch step {
			case "before-commit":
				md.before = isVersionCommit
			case "after-commit":
				md.after = isVersionCommit
				want["victim"] = victim
			default:
				data.at = step
			}
			_, err = s1.PutObject(ctx, "bkt", "victim", bytes.NewReader(victim), int64(len(victim)), PutOptions{})
			if !errors.Is(err, errCrashed) {
				t.Fatalf("put: %v, want the crash", err)
			}
			if !c.dead.Load() {
				t.Fatal("no crash")
			}

			s2 := e.service(nil, nil)
			st := e.gc(s2)
			if st.Removed == 0 {
				t.Error("nothing removed")
			}
			e.check(s2, "bkt", want)
			// A second pass finds nothing more.
			if st := e.gc(s2); st.Removed != 0 || st.IntentsSwept != 0 {
				t.Errorf("second pass: %s", st)
			}
		})
	}
}

// TestGCKeepsWriteInFlight runs a pass while a PUT holds durable shards
// not yet committed: its intent is alive, so they stay and the PUT
// succeeds. A pass that wrongly judges the writer dead makes the PUT fail
// without committing, never lose committed data.
func TestGCKeepsWriteInFlight(t *testing.T) {
	for _, wrong := range []bool{false, true} {
		t.Run(fmt.Sprint("wrongly-dead=", wrong), func(t *testing.T) {
			ctx := context.Background()
			e := newGCEnv(t)
			_, md, data := e.crashing()
			data.pause, data.paused = make(chan struct{}), make(chan struct{})
			s := e.service(md, data)
			if err := s.CreateBucket(ctx, "bkt"); err != nil {
				t.Fatal(err)
			}
			v := body(rand.New(rand.NewPCG(3, 4)), 400<<10)
			errc := make(chan error, 1)
			go func() {
				_, err := s.PutObject(ctx, "bkt", "k", bytes.NewReader(v), int64(len(v)), PutOptions{})
				errc <- err
			}()
			<-data.paused
			opts := GCOptions{}
			if wrong {
				opts.Dead = func(Incarnation) bool { return true }
			}
			st, err := s.CollectGarbage(ctx, e.gcDrives(), opts)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("gc: %s", st)
			close(data.pause)
			err = <-errc
			want := map[string][]byte{"k": v}
			if wrong {
				if !errors.Is(err, errIntentLost) {
					t.Fatalf("put after its intent was swept: %v", err)
				}
				want = nil
				e.gc(s)
			} else {
				if err != nil {
					t.Fatal(err)
				}
				if st.InFlight == 0 || st.Removed != 0 {
					t.Errorf("in-flight shards not kept: %s", st)
				}
			}
			e.check(s, "bkt", want)
		})
	}
}

// TestGCRandomized runs random PUTs, overwrites, deletes and multipart
// uploads with failing best-effort deletes, crashes and restarts, and GC
// passes in between; after a final pass nothing is orphaned and every
// object reads back.
func TestGCRandomized(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 0))
	ctx := context.Background()
	e := newGCEnv(t)
	_, md, data := e.crashing()
	s := e.service(md, data)
	if err := s.CreateBucket(ctx, "bkt"); err != nil {
		t.Fatal(err)
	}
	if rng.IntN(2) == 0 {
		if err := s.SetVersioning(ctx, "bkt", Enabled); err != nil {
			t.Fatal(err)
		}
	}
	b, _, err := s.getBucket(ctx, "bkt")
	if err != nil {
		t.Fatal(err)
	}
	versioned := b.Versioning == Enabled
	want := map[string][]byte{}
	keys := []string{"a", "b", "c", "d", "e"}
	for i := 0; i < 60; i++ {
		data.failDeletes.Store(rng.IntN(3) == 0)
		k := keys[rng.IntN(len(keys))]
		v := body(rng, []int{10, 2 << 10, 70 << 10, 300 << 10}[rng.IntN(4)])
		switch op := rng.IntN(10); {
		case op < 5:
			if _, err := s.PutObject(ctx, "bkt", k, bytes.NewReader(v), int64(len(v)), PutOptions{}); err != nil {
				t.Fatalf("seed %d: put: %v", seed, err)
			}
			want[k] = v
		case op < 6:
			if _, err := s.DeleteObject(ctx, "bkt", k, DeleteOptions{}); err != nil {
				t.Fatalf("seed %d: delete: %v", seed, err)
			}
			delete(want, k)
		case op < 8:
			uid, err := s.CreateMultipartUpload(ctx, "bkt", k, PutOptions{})
			if err != nil {
				t.Fatal(err)
			}
			var parts []CompletePart
			for n := 1; n <= 1+rng.IntN(3); n++ {
				pi, err := s.UploadPart(ctx, "bkt", k, uid, n, bytes.NewReader(v), int64(len(v)), PartOptions{})
				if err != nil {
					t.Fatalf("seed %d: part: %v", seed, err)
				}
				if rng.IntN(3) > 0 {
					parts = append(parts, CompletePart{Number: n, ETag: pi.ETag})
				}
			}
			if len(parts) == 0 || rng.IntN(4) == 0 {
				if err := s.AbortMultipartUpload(ctx, "bkt", k, uid); err != nil {
					t.Fatalf("seed %d: abort: %v", seed, err)
				}
				break
			}
			if _, err := s.CompleteMultipartUpload(ctx, "bkt", k, uid, parts, CompleteOptions{}); err != nil {
				t.Fatalf("seed %d: complete: %v", seed, err)
			}
			want[k] = bytes.Repeat(v, len(parts))
		case op < 9:
			// Crash in the middle of a PUT, then restart.
			data.at = []string{"intent", "some", "all"}[rng.IntN(3)]
			_, err := s.PutObject(ctx, "bkt", k, bytes.NewReader(v), int64(len(v)), PutOptions{})
			switch {
			case err == nil && len(v) > 1<<10:
				t.Fatalf("seed %d: put survived a crash", seed)
			case err == nil:
				want[k] = v // inline: no data write to crash in
			}
			_, md, data = e.crashing()
			s = e.service(md, data)
		default:
			if _, err := s.CollectGarbage(ctx, e.gcDrives(), GCOptions{}); err != nil {
				t.Fatalf("seed %d: gc: %v", seed, err)
			}
		}
	}
	if versioned {
		// Older versions keep their data; only current ones are compared.
		t.Log("versioned bucket")
	}
	data.failDeletes.Store(false)
	e.gc(s)
	e.check(s, "bkt", want)
	if t.Failed() {
		t.Logf("failed with seed %d", seed)
	}
}

func FuzzDecodeRefRec(f *testing.F) {
	f.Add((&refRec{State: refLive}).encode())
	f.Add((&refRec{State: refIntent, Inc: Incarnation{Node: "n1", Nonce: 7}, Time: 99}).encode())
	f.Add((&refRec{State: refPlaced, Drives: []string{"d0", "d1", "d2"}, Moved: 1700000000000}).encode())
	f.Add((&refRec{State: refMoving, Inc: Incarnation{Node: "n2", Nonce: 9}, Time: 5, Moved: 3,
		Drives: []string{"d0", "d1", "d2"}, Targets: []string{"d3", "d1", "d4"}}).encode())
	f.Add((&refRec{State: refReaping, Inc: Incarnation{Node: "n1", Nonce: 1 << 60}, Time: 8, Moved: 2,
		Drives: []string{"d3", "d1", "d4"}}).encode())
	f.Add((&refRec{State: refPlaced}).encode())
	f.Add([]byte{1})
	f.Add([]byte{1, refMoving, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := decodeRefRec(b)
		if err != nil {
			return
		}
		if got := r.encode(); !bytes.Equal(got, b) {
			t.Fatalf("round trip %x -> %+v -> %x", b, r, got)
		}
	})
}

func TestRefID(t *testing.T) {
	for _, p := range []meta.Partition{0, 1, 255, 1 << 20} {
		id := newRefID(crand.Reader, p)
		if err := (store.Name{ID: id}).Validate(); err != nil {
			t.Fatal(err)
		}
		got, ok := RefPartition(id)
		if !ok || got != p {
			t.Errorf("RefPartition(%s) = %d, %v; want %d", id, got, ok, p)
		}
	}
	if _, ok := RefPartition(store.NewID()); ok {
		t.Error("an ID without a partition was taken for a ref ID")
	}
}

// failingMeta fails the commits fail matches with meta.ErrUnavailable,
// as a partition cut from its group's leader does.
type failingMeta struct {
	meta.Store
	fail func(meta.Txn) bool
}

func (f *failingMeta) Commit(ctx context.Context, p meta.Partition, txn meta.Txn) (uint64, error) {
	if f.fail(txn) {
		return 0, fmt.Errorf("injected: %w", meta.ErrUnavailable)
	}
	return f.Store.Commit(ctx, p, txn)
}

// A PUT whose commit failed and whose writer could not drop its intent
// either (its partition unreachable) leaves shards under an intent of a
// live incarnation: the next pass of that same incarnation collects them,
// since the write they belong to has ended.
func TestAbandonedIntentIsCollected(t *testing.T) {
	ctx := context.Background()
	e := newGCEnv(t)
	cut := false
	md := &failingMeta{Store: e.md, fail: func(txn meta.Txn) bool {
		if !cut {
			return false
		}
		for _, k := range txn.Deletes { // dropping the intent
			if k[0] == tagRef {
				return true
			}
		}
		return isVersionCommit(txn)
	}}
	s := e.service(md, e.set)
	if err := s.CreateBucket(ctx, "bkt"); err != nil {
		t.Fatal(err)
	}
	keep := body(rand.New(rand.NewPCG(5, 6)), 300<<10)
	if _, err := s.PutObject(ctx, "bkt", "keep", bytes.NewReader(keep), int64(len(keep)), PutOptions{}); err != nil {
		t.Fatal(err)
	}
	cut = true
	lost := body(rand.New(rand.NewPCG(7, 8)), 300<<10)
	if _, err := s.PutObject(ctx, "bkt", "lost", bytes.NewReader(lost), int64(len(lost)), PutOptions{}); !errors.Is(err, meta.ErrUnavailable) {
		t.Fatalf("put with its partition cut: %v", err)
	}
	cut = false
	st := e.gc(s)
	if st.Removed == 0 || st.InFlight != 0 {
		t.Errorf("the abandoned write's shards were not collected: %s", st)
	}
	e.check(s, "bkt", map[string][]byte{"keep": keep})
}

// readCounting counts a store's reads: Gets, and GetManys with the keys
// they ask for.
type readCounting struct {
	meta.Store
	gets, getManys, keys atomic.Int64
}

func (r *readCounting) Get(ctx context.Context, p meta.Partition, k []byte) (meta.Item, error) {
	r.gets.Add(1)
	return r.Store.Get(ctx, p, k)
}

func (r *readCounting) GetMany(ctx context.Context, p meta.Partition, reads []meta.Read, o meta.ReadOptions) ([]meta.Item, uint64, error) {
	r.getManys.Add(1)
	r.keys.Add(int64(len(reads)))
	return meta.GetMany(ctx, r.Store, p, reads, o)
}

// TestGCReadsRecordsInBatches: a collection reads the ref records of the
// IDs it lists a partition's worth at a time (gcReadBatch), not one read
// per ID, and still removes exactly the orphans.
func TestGCReadsRecordsInBatches(t *testing.T) {
	ctx := context.Background()
	e := newGCEnv(t)
	rng := rand.New(rand.NewPCG(3, 4))
	_, _, data := e.crashing()
	rc := &readCounting{Store: e.md}
	s := e.service(rc, data)
	if err := s.CreateBucket(ctx, "bkt"); err != nil {
		t.Fatal(err)
	}
	const objects = 200
	want := map[string][]byte{}
	for i := range objects {
		k := fmt.Sprintf("k%03d", i)
		want[k] = body(rng, 2<<10)
		if _, err := s.PutObject(ctx, "bkt", k, bytes.NewReader(want[k]), int64(len(want[k])), PutOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	data.failDeletes.Store(true) // the deletes leave their shards: orphans
	for i := 0; i < objects; i += 4 {
		k := fmt.Sprintf("k%03d", i)
		if _, err := s.DeleteObject(ctx, "bkt", k, DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		delete(want, k)
	}
	data.failDeletes.Store(false)
	rc.gets.Store(0)
	rc.getManys.Store(0)
	rc.keys.Store(0)
	st := e.gc(s)
	if st.Removed == 0 {
		t.Fatalf("no orphan removed: %s", st)
	}
	if n := rc.gets.Load(); n != 0 {
		t.Errorf("%d single reads; want none", n)
	}
	// 8 partitions, fewer than gcReadBatch IDs in each: one read each.
	if n, k := rc.getManys.Load(), rc.keys.Load(); n > 8 || k != objects {
		t.Errorf("%d reads of %d records; want at most 8 reads of %d", n, k, objects)
	}
	e.check(s, "bkt", want)
}
