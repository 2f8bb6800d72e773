package shardrpc

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/redoubt-io/redoubt/internal/store"
	"github.com/redoubt-io/redoubt/internal/testlog"
)

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(testlog.Writer(t), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func seeded(t testing.TB) *rand.Rand {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	return rand.New(rand.NewPCG(seed, seed))
}

// fakeNet is an in-memory transport: it calls the servers' Handle
// directly, copying messages as a wire would, and flattens handler errors
// to their text.
type fakeNet struct {
	from    string
	servers map[string]*Server
	latency time.Duration
	calls   atomic.Int64

	mu struct {
		sync.Mutex
		down     map[string]bool
		failNext map[string]int // node -> calls to fail from the next one
		failOps  map[op]bool    // fail every call of these ops
	}
}

var _ Caller = (*fakeNet)(nil)

func newFakeNet() *fakeNet {
	n := &fakeNet{from: "client", servers: map[string]*Server{}}
	n.mu.down = map[string]bool{}
	n.mu.failNext = map[string]int{}
	n.mu.failOps = map[op]bool{}
	return n
}

func (n *fakeNet) setDown(node string, down bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.mu.down[node] = down
}

func (n *fakeNet) failOp(o op, fail bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.mu.failOps[o] = fail
}

func (n *fakeNet) Call(ctx context.Context, node, service string, req []byte) ([]byte, error) {
	n.calls.Add(1)
	if service != Service {
		return nil, fmt.Errorf("no service %q", service)
	}
	n.mu.Lock()
	down := n.mu.down[node]
	failOp := len(req) > 1 && n.mu.failOps[op(req[1])]
	srv := n.servers[node]
	n.mu.Unlock()
	if down || failOp || srv == nil {
		return nil, fmt.Errorf("dial %s: connection refused", node)
	}
	if n.latency > 0 {
		select {
		case <-time.After(n.latency):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	resp, err := srv.Handle(ctx, n.from, bytes.Clone(req))
	if err != nil {
		return nil, errors.New(err.Error())
	}
	return bytes.Clone(resp), nil
}

type fixture struct {
	net    *fakeNet
	drives []*store.Drive
	srv    *Server
	remote []*RemoteDrive
}

func newFixture(t testing.TB, ndrives int, scfg ServerConfig) *fixture {
	t.Helper()
	root := t.TempDir()
	paths := make([]string, ndrives)
	for i := range paths {
		paths[i] = filepath.Join(root, fmt.Sprintf("d%d", i))
	}
	cfg := store.DefaultConfig()
	ds, err := store.Open(context.Background(), cfg, paths, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{net: newFakeNet(), drives: ds}
	f.srv = NewServer(ds, scfg, testLogger(t))
	t.Cleanup(f.srv.Close)
	f.net.servers["n1"] = f.srv
	for _, d := range ds {
		f.remote = append(f.remote, NewRemoteDrive(f.net, "n1", d.ID(), DefaultClientConfig()))
	}
	return f
}

func randomBytes(r *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := 0; i+8 <= n; i += 8 {
		v := r.Uint64()
		for j := range 8 {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	return b
}

// writeRemote writes data to d in writes of the given size and commits.
func writeRemote(t testing.TB, d Drive, name store.Name, data []byte, step int) {
	t.Helper()
	ctx := context.Background()
	w, err := d.Create(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	for p := data; len(p) > 0; {
		n := min(len(p), step)
		if _, err := w.Write(p[:n]); err != nil {
			t.Fatal(err)
		}
		p = p[n:]
	}
	if err := w.Commit(ctx); err != nil {
		t.Fatal(err)
	}
}

// assertNoTemp checks that no drive holds an in-flight file.
func assertNoTemp(t testing.TB, ds []*store.Drive) {
	t.Helper()
	for _, d := range ds {
		ents, err := os.ReadDir(filepath.Join(d.Path(), ".tmp"))
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range ents {
			t.Errorf("drive %s: temp file %s left behind", d.ID(), e.Name())
		}
	}
}

func shardFile(d *store.Drive, n store.Name) string {
	return filepath.Join(d.Path(), "shards", n.ID[0:2], n.ID[2:4], n.String())
}

func TestRoundTrip(t *testing.T) {
	rng := seeded(t)
	f := newFixture(t, 2, DefaultServerConfig())
	ctx := context.Background()
	rd := f.remote[1]
	name := store.Name{ID: store.NewID(), Shard: 3}
	data := randomBytes(rng, 10<<20+12345)
	before := f.net.calls.Load()
	writeRemote(t, rd, name, data, 1<<20)
	// create + 10 full appends + commit with the tail.
	if got := f.net.calls.Load() - before; got != 12 {
		t.Errorf("write took %d calls, want 12", got)
	}
	if f.srv.Sessions() != 0 {
		t.Errorf("%d sessions open after commit", f.srv.Sessions())
	}
	assertNoTemp(t, f.drives)

	// The shard is where the store would have put it, readable locally.
	lr, err := LocalDrive{f.drives[1]}.OpenShard(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	if lr.Size() != int64(len(data)) {
		t.Fatalf("local size %d, want %d", lr.Size(), len(data))
	}
	lr.Close()

	r, err := rd.OpenShard(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if r.Size() != int64(len(data)) {
		t.Fatalf("size %d, want %d", r.Size(), len(data))
	}
	ranges := [][2]int{{0, 1}, {0, len(data)}, {65535, 2}, {1 << 20, 3 << 20}, {len(data) - 7, 7}}
	for range 20 {
		off := rng.IntN(len(data))
		ranges = append(ranges, [2]int{off, rng.IntN(len(data) - off + 1)})
	}
	for _, rg := range ranges {
		p := make([]byte, rg[1])
		n, err := r.ReadAt(p, int64(rg[0]))
		if err != nil || n != rg[1] {
			t.Fatalf("ReadAt(%d, %d) = %d, %v", rg[0], rg[1], n, err)
		}
		if !bytes.Equal(p, data[rg[0]:rg[0]+rg[1]]) {
			t.Fatalf("ReadAt(%d, %d): wrong bytes", rg[0], rg[1])
		}
	}
	// Past the end: io.ReaderAt semantics.
	p := make([]byte, 100)
	if n, err := r.ReadAt(p, int64(len(data)-40)); n != 40 || !errors.Is(err, io.EOF) || !bytes.Equal(p[:40], data[len(data)-40:]) {
		t.Errorf("read across the end = %d, %v", n, err)
	}
	if n, err := r.ReadAt(p, int64(len(data))); n != 0 || !errors.Is(err, io.EOF) {
		t.Errorf("read at the end = %d, %v", n, err)
	}
	if _, err := r.ReadAt(p, -1); err == nil {
		t.Error("negative offset accepted")
	}

	if err := rd.Remove(ctx, name); err != nil {
		t.Fatal(err)
	}
	if err := rd.Remove(ctx, name); err != nil {
		t.Errorf("second remove: %v", err)
	}
	if _, err := rd.OpenShard(ctx, name); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("open after remove: %v, want ErrNotFound", err)
	}
	if _, err := r.ReadAt(p, 0); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("read of an open reader after remove: %v, want ErrNotFound", err)
	}
	if !rd.Online() {
		t.Error("drive offline after NotFound")
	}
}

func TestEmptyShardAndSmallWrites(t *testing.T) {
	f := newFixture(t, 1, DefaultServerConfig())
	ctx := context.Background()
	empty := store.Name{ID: store.NewID(), Shard: 0}
	writeRemote(t, f.remote[0], empty, nil, 1)
	if n, err := f.remote[0].Stat(ctx, empty); err != nil || n != 0 {
		t.Fatalf("stat empty = %d, %v", n, err)
	}
	small := store.Name{ID: store.NewID(), Shard: 1}
	data := []byte("the quick brown fox jumps over the lazy dog")
	writeRemote(t, f.remote[0], small, data, 3)
	r, err := f.remote[0].OpenShard(ctx, small)
	if err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(data))
	if _, err := r.ReadAt(got, 0); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read = %q, %v", got, err)
	}
	r.Close()
	if _, err := r.ReadAt(got, 0); !errors.Is(err, os.ErrClosed) {
		t.Errorf("read after close: %v", err)
	}
}

func TestAbortLeavesNothing(t *testing.T) {
	f := newFixture(t, 1, DefaultServerConfig())
	ctx := context.Background()
	name := store.Name{ID: store.NewID(), Shard: 0}
	w, err := f.remote[0].Create(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(make([]byte, 3<<20)); err != nil {
		t.Fatal(err)
	}
	w.Abort()
	w.Abort()
	if err := w.Commit(ctx); err == nil {
		t.Error("commit after abort succeeded")
	}
	if _, err := w.Write([]byte("x")); err == nil {
		t.Error("write after abort succeeded")
	}
	if f.srv.Sessions() != 0 {
		t.Errorf("%d sessions open after abort", f.srv.Sessions())
	}
	if _, err := f.remote[0].OpenShard(ctx, name); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("open after abort: %v, want ErrNotFound", err)
	}
	assertNoTemp(t, f.drives)
}

func TestSessionTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := DefaultServerConfig()
		f := newFixture(t, 1, cfg)
		ctx := context.Background()
		name := store.Name{ID: store.NewID(), Shard: 0}
		w, err := f.remote[0].Create(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		// A writer that keeps calling keeps its session past the timeout.
		for range 4 {
			time.Sleep(cfg.SessionTimeout / 2)
			if _, err := w.Write(make([]byte, 1<<20)); err != nil {
				t.Fatal(err)
			}
		}
		if f.srv.Sessions() != 1 {
			t.Fatalf("%d sessions, want the live one", f.srv.Sessions())
		}
		// Then the writer's node dies.
		time.Sleep(cfg.SessionTimeout + time.Second)
		synctest.Wait()
		if f.srv.Sessions() != 0 {
			t.Fatalf("%d sessions after the timeout", f.srv.Sessions())
		}
		assertNoTemp(t, f.drives)
		if _, err := w.Write(make([]byte, 1<<20)); !errors.Is(err, ErrUnknownSession) || !errors.Is(err, store.ErrDriveFailed) {
			t.Errorf("append to an expired session: %v", err)
		}
		if err := w.Commit(ctx); !errors.Is(err, ErrUnknownSession) {
			t.Errorf("commit after a failed append: %v (want the sticky error)", err)
		}
		if _, err := f.remote[0].OpenShard(ctx, name); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("open after expiry: %v, want ErrNotFound", err)
		}
	})
}

func TestCorruptBlock(t *testing.T) {
	rng := seeded(t)
	f := newFixture(t, 1, DefaultServerConfig())
	ctx := context.Background()
	name := store.Name{ID: store.NewID(), Shard: 2}
	data := randomBytes(rng, 1<<20)
	writeRemote(t, f.remote[0], name, data, 1<<20)

	// Flip one byte inside data block 5.
	path := shardFile(f.drives[0], name)
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	pos := store.HeaderSize + 5*(64<<10+4) + 100
	raw[pos] ^= 0x40
	if err := os.WriteFile(path, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	r, err := f.remote[0].OpenShard(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	p := make([]byte, 10)
	if _, err := r.ReadAt(p, 5*(64<<10)+50); !errors.Is(err, store.ErrCorrupt) {
		t.Fatalf("read of a corrupt block: %v, want ErrCorrupt", err)
	}
	if errors.Is(err, store.ErrDriveFailed) {
		t.Error("corruption reported as a failed drive")
	}
	// Blocks elsewhere still read.
	if _, err := r.ReadAt(p, 0); err != nil || !bytes.Equal(p, data[:10]) {
		t.Errorf("read of a good block: %v", err)
	}
	if !f.remote[0].Online() {
		t.Error("drive offline after corruption")
	}
	// A corrupt header fails the open itself.
	raw[3] ^= 1
	if err := os.WriteFile(path, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := f.remote[0].OpenShard(ctx, name); !errors.Is(err, store.ErrCorrupt) {
		t.Errorf("open with a corrupt header: %v, want ErrCorrupt", err)
	}
}

func TestNodeDown(t *testing.T) {
	f := newFixture(t, 1, DefaultServerConfig())
	ctx := context.Background()
	rd := f.remote[0]
	name := store.Name{ID: store.NewID(), Shard: 0}
	writeRemote(t, rd, name, []byte("hello"), 5)

	f.net.setDown("n1", true)
	if _, err := rd.OpenShard(ctx, name); !errors.Is(err, store.ErrDriveFailed) {
		t.Errorf("open on a down node: %v", err)
	}
	if rd.Online() {
		t.Error("Online after a transport failure")
	}
	if _, err := rd.Create(ctx, name); !errors.Is(err, store.ErrDriveFailed) {
		t.Errorf("create on a down node: %v", err)
	}
	if err := rd.Remove(ctx, name); !errors.Is(err, store.ErrDriveFailed) {
		t.Errorf("remove on a down node: %v", err)
	}
	if err := rd.Refresh(ctx); !errors.Is(err, store.ErrDriveFailed) {
		t.Errorf("refresh on a down node: %v", err)
	}
	f.net.setDown("n1", false)
	if err := rd.Refresh(ctx); err != nil || !rd.Online() {
		t.Fatalf("refresh after recovery: %v, online %v", err, rd.Online())
	}

	// An append that fails mid-shard makes the writer fail for good.
	w, err := rd.Create(ctx, store.Name{ID: store.NewID(), Shard: 1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(make([]byte, 1<<20)); err != nil {
		t.Fatal(err)
	}
	f.net.failOp(opAppend, true)
	_, werr := w.Write(make([]byte, 1<<20))
	if !errors.Is(werr, store.ErrDriveFailed) {
		t.Fatalf("failed append: %v", werr)
	}
	f.net.failOp(opAppend, false)
	if _, err := w.Write([]byte("x")); err != werr {
		t.Errorf("write after a failed append: %v, want the same error", err)
	}
	if err := w.Commit(ctx); err != werr {
		t.Errorf("commit after a failed append: %v, want the same error", err)
	}
	// Commit's abort reached the server.
	if f.srv.Sessions() != 0 {
		t.Errorf("%d sessions left", f.srv.Sessions())
	}
	assertNoTemp(t, f.drives)

	// A cancelled call is not the drive's fault.
	if err := rd.Refresh(ctx); err != nil || !rd.Online() {
		t.Fatalf("refresh: %v, online %v", err, rd.Online())
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	f.net.latency = time.Hour
	if _, err := rd.OpenShard(cctx, name); !errors.Is(err, context.Canceled) || errors.Is(err, store.ErrDriveFailed) {
		t.Errorf("cancelled open: %v", err)
	}
	if !rd.Online() {
		t.Error("a cancelled call took the drive offline")
	}
}

func TestDriveErrors(t *testing.T) {
	cfg := DefaultServerConfig()
	cfg.MaxSessions = 2
	f := newFixture(t, 2, cfg)
	ctx := context.Background()
	name := store.Name{ID: store.NewID(), Shard: 0}

	unknown := NewRemoteDrive(f.net, "n1", "00000000000000000000000000000000", DefaultClientConfig())
	if _, err := unknown.Create(ctx, name); !errors.Is(err, store.ErrDriveFailed) || unknown.Online() {
		t.Errorf("create on an unknown drive: %v, online %v", err, unknown.Online())
	}
	if err := unknown.Refresh(ctx); !errors.Is(err, store.ErrDriveFailed) {
		t.Errorf("refresh of an unknown drive: %v", err)
	}
	if _, err := f.remote[0].Create(ctx, store.Name{ID: "../../etc", Shard: 0}); !errors.Is(err, store.ErrInvalidName) {
		t.Errorf("bad name: %v", err)
	}
	// The server judges names too, whatever the client checked.
	bad := encodeResp(t, f.srv, &request{Op: opStat, Drive: f.drives[0].ID(), Name: store.Name{ID: "XYZ", Shard: 999}})
	if resp, err := decodeResponse(opStat, bad); err != nil || resp.Status != statusInvalidName {
		t.Errorf("server on a bad name: %+v, %v", resp, err)
	}

	// Session limit.
	w1, err := f.remote[0].Create(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	w2, err := f.remote[1].Create(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.remote[0].Create(ctx, store.Name{ID: store.NewID(), Shard: 0}); !errors.Is(err, ErrBusy) || !errors.Is(err, store.ErrDriveFailed) {
		t.Errorf("third session: %v, want ErrBusy", err)
	}
	w1.Abort()
	w2.Abort()

	// Append too large for the server.
	big := DefaultClientConfig()
	big.AppendSize = cfg.MaxData + 1
	bd := NewRemoteDrive(f.net, "n1", f.drives[0].ID(), big)
	w, err := bd.Create(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(make([]byte, big.AppendSize)); !errors.Is(err, ErrTooLarge) {
		t.Errorf("oversized append: %v, want ErrTooLarge", err)
	}
	w.Abort()
	if f.srv.Sessions() != 0 {
		t.Errorf("%d sessions left", f.srv.Sessions())
	}

	// Sessions are private to their node; an out-of-order append ends one.
	w, err = f.remote[0].Create(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	id := w.(*remoteWriter).session
	other := newFakeNet()
	other.from, other.servers = "intruder", f.net.servers
	if resp := callRaw(t, other, &request{Op: opAppend, Session: id, Data: []byte("x")}); resp.Status != statusUnknownSession {
		t.Errorf("append from another node: status %d", resp.Status)
	}
	if resp := callRaw(t, f.net, &request{Op: opAppend, Session: id, Off: 7, Data: []byte("x")}); resp.Status != statusBadRequest {
		t.Errorf("append at a wrong offset: status %d", resp.Status)
	}
	if f.srv.Sessions() != 0 {
		t.Errorf("a session survived an out-of-order append")
	}
	if err := w.Commit(ctx); !errors.Is(err, ErrUnknownSession) {
		t.Errorf("commit of the ended session: %v", err)
	}
	assertNoTemp(t, f.drives)

	// Oversized read.
	if resp := callRaw(t, f.net, &request{Op: opRead, Drive: f.drives[0].ID(), Name: name, Len: int64(cfg.MaxData) + 1}); resp.Status != statusTooLarge {
		t.Errorf("oversized read: status %d", resp.Status)
	}
	// Garbage.
	for _, msg := range [][]byte{nil, {9}, {wireVersion, 77}, {wireVersion, byte(opAbort)}} {
		out, _ := f.srv.Handle(ctx, "client", msg)
		if resp, err := decodeResponse(opAbort, out); err != nil || resp.Status != statusBadRequest {
			t.Errorf("garbage %x: %+v, %v", msg, resp, err)
		}
	}
}

func encodeResp(t testing.TB, s *Server, r *request) []byte {
	out, err := s.Handle(context.Background(), "client", r.encode())
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func callRaw(t testing.TB, n *fakeNet, r *request) response {
	t.Helper()
	out, err := n.Call(context.Background(), "n1", Service, r.encode())
	if err != nil {
		t.Fatal(err)
	}
	resp, err := decodeResponse(r.Op, out)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

func TestDriveStates(t *testing.T) {
	f := newFixture(t, 3, DefaultServerConfig())
	ctx := context.Background()
	st, err := DriveStates(ctx, f.net, "n1")
	if err != nil {
		t.Fatal(err)
	}
	if len(st) != 3 {
		t.Fatalf("%d drives", len(st))
	}
	for i, s := range st {
		want := f.drives[i].Stats()
		if s.ID != want.ID || s.Path != want.Path || s.Slot != want.Slot || s.State != store.Online || s.TotalBytes == 0 {
			t.Errorf("drive %d: %+v, want %+v", i, s, want)
		}
	}
	if _, err := DriveStates(ctx, f.net, "nowhere"); !errors.Is(err, store.ErrDriveFailed) {
		t.Errorf("states of an unknown node: %v", err)
	}
}

// TestFailedDrive: a drive the store marked failed is reported as such and
// takes the remote view offline.
func TestFailedDrive(t *testing.T) {
	f := newFixture(t, 2, DefaultServerConfig())
	ctx := context.Background()
	if err := os.RemoveAll(f.drives[1].Path()); err != nil {
		t.Fatal(err)
	}
	_ = f.drives[1].Check() // the store notices
	if _, err := f.remote[1].Create(ctx, store.Name{ID: store.NewID(), Shard: 0}); !errors.Is(err, store.ErrDriveFailed) {
		t.Errorf("create on a failed drive: %v", err)
	}
	if f.remote[1].Online() {
		t.Error("failed drive still online")
	}
	if err := f.remote[1].Refresh(ctx); err != nil || f.remote[1].Online() {
		t.Errorf("refresh: %v, online %v", err, f.remote[1].Online())
	}
	if err := f.remote[0].Refresh(ctx); err != nil || !f.remote[0].Online() {
		t.Errorf("healthy drive: %v, online %v", err, f.remote[0].Online())
	}
}

func TestConcurrent(t *testing.T) {
	rng := seeded(t)
	f := newFixture(t, 2, DefaultServerConfig())
	ctx := context.Background()
	const workers = 8
	type shard struct {
		name store.Name
		data []byte
	}
	shards := make([]shard, workers)
	for i := range shards {
		shards[i] = shard{store.Name{ID: store.NewID(), Shard: i}, randomBytes(rng, 2<<20+rng.IntN(1<<20))}
	}
	// A pre-existing shard that readers hammer while writers write.
	hot := shard{store.Name{ID: store.NewID(), Shard: 9}, randomBytes(rng, 3<<20)}
	writeRemote(t, f.remote[0], hot.name, hot.data, 1<<20)

	var wg sync.WaitGroup
	errs := make(chan error, 2*workers)
	for i := range workers {
		d := f.remote[i%2]
		wg.Go(func() {
			sh := shards[i]
			w, err := d.Create(ctx, sh.name)
			if err != nil {
				errs <- err
				return
			}
			for p := sh.data; len(p) > 0; {
				n := min(len(p), 100_000+i)
				if _, err := w.Write(p[:n]); err != nil {
					errs <- err
					return
				}
				p = p[n:]
			}
			if err := w.Commit(ctx); err != nil {
				errs <- err
				return
			}
			r, err := d.OpenShard(ctx, sh.name)
			if err != nil {
				errs <- err
				return
			}
			got := make([]byte, len(sh.data))
			if _, err := r.ReadAt(got, 0); err != nil || !bytes.Equal(got, sh.data) {
				errs <- fmt.Errorf("shard %d read back wrong: %v", i, err)
			}
		})
		wg.Go(func() {
			r, err := f.remote[0].OpenShard(ctx, hot.name)
			if err != nil {
				errs <- err
				return
			}
			p := make([]byte, 300_000)
			for k := range 20 {
				off := (k*7919 + i*104729) % (len(hot.data) - len(p))
				if _, err := r.ReadAt(p, int64(off)); err != nil || !bytes.Equal(p, hot.data[off:off+len(p)]) {
					errs <- fmt.Errorf("reader %d at %d: %v", i, off, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if f.srv.Sessions() != 0 {
		t.Errorf("%d sessions left", f.srv.Sessions())
	}
	assertNoTemp(t, f.drives)
}

func TestLocalDrive(t *testing.T) {
	rng := seeded(t)
	f := newFixture(t, 1, DefaultServerConfig())
	ctx := context.Background()
	var drives = []Drive{LocalDrive{f.drives[0]}, f.remote[0]}
	for i, d := range drives {
		if d.ID() != f.drives[0].ID() || !d.Online() {
			t.Fatalf("drive %d: ID %s online %v", i, d.ID(), d.Online())
		}
		name := store.Name{ID: store.NewID(), Shard: i}
		data := randomBytes(rng, 200_000)
		writeRemote(t, d, name, data, 70_000)
		// Written through one, read through the other: same files.
		r, err := drives[1-i].OpenShard(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		got := make([]byte, len(data))
		if _, err := r.ReadAt(got, 0); err != nil || !bytes.Equal(got, data) {
			t.Fatalf("drive %d: read back: %v", i, err)
		}
		r.Close()
		if err := d.Remove(ctx, name); err != nil {
			t.Fatal(err)
		}
		if r, err := d.OpenShard(ctx, name); !errors.Is(err, store.ErrNotFound) || r != nil {
			t.Errorf("drive %d: open after remove: %v, %v", i, r, err)
		}
	}
	if w, err := (LocalDrive{f.drives[0]}).Create(ctx, store.Name{ID: "no"}); err == nil || w != nil {
		t.Errorf("local create with a bad name: %v, %v", w, err)
	}
}

func TestConfigValidate(t *testing.T) {
	if err := DefaultServerConfig().Validate(); err != nil {
		t.Error(err)
	}
	if err := DefaultClientConfig().Validate(); err != nil {
		t.Error(err)
	}
	if err := (ServerConfig{}).Validate(); err == nil {
		t.Error("zero server config accepted")
	}
	if err := (ClientConfig{}).Validate(); err == nil {
		t.Error("zero client config accepted")
	}
	// Invalid configurations fall back to the defaults.
	if d := NewRemoteDrive(nil, "n", "d", ClientConfig{}); d.cfg != DefaultClientConfig() {
		t.Errorf("client config %+v", d.cfg)
	}
	if s := NewServer(nil, ServerConfig{}, testLogger(t)); s.cfg != DefaultServerConfig() {
		t.Errorf("server config %+v", s.cfg)
	}
}
