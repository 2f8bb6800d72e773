package clustersim

import (
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	pebblevfs "github.com/cockroachdb/pebble/v2/vfs"
	"github.com/zeebo/xxh3"

	"github.com/redoubt-io/redoubt/internal/blocks"
	"github.com/redoubt-io/redoubt/internal/cluster"
	"github.com/redoubt-io/redoubt/internal/layout"
	"github.com/redoubt-io/redoubt/internal/meta"
	"github.com/redoubt-io/redoubt/internal/objects"
	"github.com/redoubt-io/redoubt/internal/store"
	"github.com/redoubt-io/redoubt/internal/transport"
	"github.com/redoubt-io/redoubt/internal/vfs"
)

// drivesPerNode is each simulated node's drive count.
const drivesPerNode = 2

// Each simulated drive is a disk of driveCapacity bytes, whose last
// driveReserve bytes new shard data leaves free.
const (
	driveCapacity = 64 << 20
	driveReserve  = 256 << 10
)

// node is one simulated node: its disks, which outlive its incarnations,
// and the incarnation running on them now, if any.
type node struct {
	sim  *Sim
	i    int
	id   transport.NodeID
	zone string
	// disks: the drives' files and the Raft state. A crash replaces them
	// with what a power cut would leave.
	mem  *vfs.Mem
	raft *pebblevfs.MemFS
	// skew is added to the wall clock the node's objects layer reads
	// (version timestamps); the cluster's timers run on the shared clock.
	skewMu sync.Mutex
	skew   time.Duration
	rand   *rand.Rand // the node's ID source, seeded from the run's seed

	mu  sync.Mutex
	inc *incarnation // nil while down
	gen int
}

// incarnation is one run of a node's software on its disks.
type incarnation struct {
	n       *node
	gen     int
	ep      *endpoint
	fs      *vfs.Faulty // the node's disks, as this incarnation sees them
	drives  []*store.Drive
	cl      *cluster.Cluster
	data    *blocks.Set
	obj     *objects.Service
	cancel  context.CancelFunc
	wakeKey uint64
	// ended stops the Raft loop's ticks (see tickRaft).
	ended atomic.Bool
	// woken says a wake-up of the Raft loop is scheduled (see wakeRaft).
	woken atomic.Bool
}

// tickRaft sends the Raft loop a tick every period, from the event loop
// (cluster.Config.RaftTicks), until the incarnation ends: at an instant
// where a tick and a timer of the node's fall (a retry every tick, begun
// by what a tick did), the timer's goroutine runs first and the tick
// after it, every time, rather than in the Go scheduler's order.
func (inc *incarnation) tickRaft(period time.Duration, ticks chan time.Time) {
	key := fmt.Sprintf("tick %s %d", inc.n.id, inc.gen)
	var next func()
	next = func() {
		if inc.ended.Load() {
			return
		}
		select {
		case ticks <- time.Now():
		default:
		}
		inc.n.sim.after(period, key, next)
	}
	inc.n.sim.after(period, key, next)
}

// wakeRaft is the Raft loop's wake-up (cluster.Config.RaftWake): an event
// of this instant, run once every goroutine waits, so that the loop's
// next cycle takes all the proposals, reads and messages the goroutines
// running now leave, not those the Go scheduler ran before it. Wake-ups
// asked for while one is scheduled join it.
func (inc *incarnation) wakeRaft(kick func()) {
	if inc.woken.Swap(true) {
		return
	}
	inc.n.sim.schedule(0, inc.wakeKey, "wake", func() {
		inc.woken.Store(false)
		kick()
	})
}

// after makes the node's own waits (cluster.Config.After) events of the
// simulation, keyed by the node and what it waits for: a wait that ends
// at the instant of another event ends before or after it as the seed
// says, and alone, not beside whatever else the fake clock wakes then.
func (inc *incarnation) after(d time.Duration, what string) <-chan time.Time {
	ch := make(chan time.Time, 1)
	inc.n.sim.after(d, fmt.Sprintf("after %s %d %s", inc.n.id, inc.gen, what), func() { ch <- time.Now() })
	return ch
}

func newNode(s *Sim, i int) *node {
	// Node IDs are hex, as the hashes of real node keys are (Raft IDs
	// are read from them), and readable: 51..01 is node 1.
	n := &node{sim: s, i: i, id: transport.NodeID(fmt.Sprintf("51%014x", i+1)),
		zone: fmt.Sprintf("zone-%c", 'a'+i%max(1, s.cfg.Zones)),
		mem:  vfs.NewMem(vfs.MemConfig{Clock: time.Now}), raft: pebblevfs.NewCrashableMem()}
	n.rand = rand.New(rand.NewPCG(s.cfg.Seed, uint64(i)+1))
	for _, d := range n.dirs() {
		if err := n.mem.Mount(d, driveCapacity); err != nil {
			panic(err) // a fresh Mem: cannot fail
		}
	}
	return n
}

func (n *node) dirs() []string {
	out := make([]string, drivesPerNode)
	for j := range out {
		out[j] = fmt.Sprintf("/%s/d%d", n.id, j)
	}
	return out
}

// now is the node's wall clock: the simulation's, skewed.
func (n *node) now() time.Time {
	n.skewMu.Lock()
	defer n.skewMu.Unlock()
	return time.Now().Add(n.skew)
}

// randReader gives the node's objects layer its IDs. Draws happen only in
// actors between gates, one actor at a time.
type randReader struct {
	mu sync.Mutex
	r  *rand.Rand
}

func (r *randReader) Read(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := range p {
		p[i] = byte(r.r.Uint32())
	}
	return len(p), nil
}

// current returns the running incarnation, or nil.
func (n *node) current() *incarnation {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.inc
}

// start boots an incarnation on the node's disks: opens the drives, joins
// (or, node 0 on first start, bootstraps) the cluster, and builds the data
// path and the objects layer over them. It blocks on the network, so it
// runs on its own goroutine while the event loop runs.
func (n *node) start(ctx context.Context, join []string) (_ *incarnation, err error) {
	s := n.sim
	n.mu.Lock()
	n.gen++
	gen := n.gen
	n.mu.Unlock()
	log := s.log.With("node", n.id, "gen", gen)
	inc := &incarnation{n: n, gen: gen, ep: s.net.attach(n.id), fs: vfs.NewFaulty(n.mem),
		wakeKey: hashString(s.cfg.Seed, fmt.Sprintf("wake %s %d", n.id, gen))}
	defer func() {
		if err != nil {
			inc.ended.Store(true)
		}
	}()
	scfg := store.DefaultConfig()
	scfg.FS = inc.fs
	scfg.Reserve = driveReserve
	scfg.BlockSize = 4 << 10
	scfg.WriteBuffer = 16 << 10
	drives, err := store.Open(ctx, scfg, n.dirs(), log.With("component", "store"))
	if err != nil {
		return nil, fmt.Errorf("%s: drives: %w", n.id, err)
	}
	inc.drives = drives
	raftTick := 20*time.Millisecond + time.Duration(1000*n.i+7)*time.Nanosecond
	ticks := make(chan time.Time, 1)
	inc.tickRaft(raftTick, ticks)
	ccfg := cluster.Config{
		Zone: n.zone, Join: join, Partitions: s.cfg.Partitions, MetaReplicas: 3,
		Net: inc.ep, NoGossip: true,
		// Periods no two nodes share, and that are no multiples of one
		// another, so that a node's ticker and its layout poll (or two
		// nodes' tickers) never fire at one instant: goroutines that
		// wake together run in the Go scheduler's order, not the seed's.
		RaftTick:    raftTick,
		RaftWake:    inc.wakeRaft,
		RaftTicks:   ticks,
		RaftQuiesce: s.cfg.Quiesce,
		After:       inc.after,
		LayoutPoll:  100*time.Millisecond + time.Duration(1000*n.i+13)*time.Nanosecond,
		FS:          inc.fs, RaftFS: n.raft, Version: "sim",
		Splitter: objects.NewSplitter(s.cfg.Partitions),
	}
	if len(join) == 0 {
		ccfg.BootstrapExpect = s.cfg.Nodes
	}
	inc.cl, err = cluster.Start(ctx, ccfg, drives, log.With("component", "cluster"))
	if err != nil {
		return nil, fmt.Errorf("%s: cluster: %w", n.id, err)
	}
	l, err := inc.cl.WaitLayout(ctx)
	if err != nil {
		inc.cl.Close()
		return nil, fmt.Errorf("%s: %w", n.id, err)
	}
	bcfg := blocks.DefaultConfig(l.Policy)
	bcfg.ChunkSize = 4 << 10
	bcfg.Resolve, bcfg.Place = inc.cl.Drive, inc.cl.Place
	// Failed drives are re-checked (and back in service once they pass)
	// every few seconds, on a period of the node's own, as events of the
	// simulation.
	bcfg.HealthInterval = 2*time.Second + time.Duration(1000*n.i+17)*time.Nanosecond
	bcfg.After = inc.after
	inc.data, err = blocks.New(bcfg, drives, log.With("component", "blocks"))
	if err != nil {
		inc.cl.Close()
		return nil, fmt.Errorf("%s: data path: %w", n.id, err)
	}
	inc.cl.OnLayout(func(l *layout.Layout) { inc.data.SetPolicy(l.Policy) })
	hctx, cancel := context.WithCancel(context.Background())
	inc.cancel = cancel
	s.spawn(func() { _ = inc.data.Run(hctx) })
	ocfg := objects.DefaultConfig()
	ocfg.Partitions = s.cfg.Partitions
	ocfg.InlineMax = s.cfg.InlineMax
	ocfg.MinPartSize = partMin
	ocfg.Now = n.now
	ocfg.Rand = &randReader{r: n.rand}
	ocfg.After = inc.after
	ocfg.Incarnation.Node = string(n.id)
	ocfg.Incarnation.Nonce = uint64(gen)
	inc.obj, err = objects.New(ocfg, gatedStore{inner: inc.cl.Meta(), sim: s}, inc.data, log.With("component", "objects"))
	if err != nil {
		cancel()
		inc.cl.Close()
		return nil, err
	}
	// As a node does: partitions the layout says split are not asked.
	inc.cl.OnLayout(func(l *layout.Layout) { inc.obj.SplitTo(l.Depth) })
	if l := inc.cl.Layout(); l != nil {
		inc.obj.SplitTo(l.Depth)
	}
	n.mu.Lock()
	n.inc = inc
	n.mu.Unlock()
	return inc, nil
}

// crash ends the running incarnation as a power cut would: it is cut off
// at once, and the disks become what a crash leaves of them (synced data
// kept, the rest lost or torn). The old incarnation's goroutines wind
// down on the old disks, which nothing reads again.
func (n *node) crash(r *rand.Rand) {
	n.mu.Lock()
	inc := n.inc
	n.inc = nil
	n.mu.Unlock()
	if inc == nil {
		return
	}
	// What the disks keep is taken first, while the node's goroutines
	// still wait: taking the network away or cancelling wakes them, and
	// whatever they then wrote or synced before the clone would be the
	// Go scheduler's choice, not the seed's.
	n.mem = n.mem.CrashClone(r)
	n.raft = n.raft.CrashClone(pebblevfs.CrashCloneCfg{UnsyncedDataPercent: r.IntN(101),
		RNG: rand.New(rand.NewPCG(r.Uint64(), r.Uint64()))})
	n.sim.net.detach(inc.ep)
	inc.cancel()
	inc.ended.Store(true)
	n.sim.closing.Go(func() { _ = inc.cl.Close() })
}

// stop ends the running incarnation cleanly (at the end of a run).
func (n *node) stop() {
	n.mu.Lock()
	inc := n.inc
	n.inc = nil
	n.mu.Unlock()
	if inc == nil {
		return
	}
	n.sim.net.detach(inc.ep)
	inc.cancel()
	inc.ended.Store(true)
	_ = inc.cl.Close()
}

// gatedStore is the metadata store of a node's objects layer: every call
// passes the simulation's gate on its way back (see Sim.gate). It keeps
// the optional interfaces of the store it wraps.
type gatedStore struct {
	inner meta.Store
	sim   *Sim
}

var (
	_ meta.ManyGetter   = gatedStore{}
	_ meta.StaleGetter  = gatedStore{}
	_ meta.RangeScanner = gatedStore{}
)

func (g gatedStore) Get(ctx context.Context, p meta.Partition, key []byte) (meta.Item, error) {
	it, err := g.inner.Get(ctx, p, key)
	g.sim.gate(ctx, callName("get", p, key))
	return it, err
}

func (g gatedStore) Scan(ctx context.Context, p meta.Partition, start, end []byte, fn func([]byte, meta.Item) bool) error {
	err := g.inner.Scan(ctx, p, start, end, fn)
	g.sim.gate(ctx, callName("scan", p, start, end))
	return err
}

func (g gatedStore) Commit(ctx context.Context, p meta.Partition, txn meta.Txn) (uint64, error) {
	rev, err := g.inner.Commit(ctx, p, txn)
	g.sim.gate(ctx, callName("commit", p, txnKeys(txn)...))
	return rev, err
}

func (g gatedStore) GetMany(ctx context.Context, p meta.Partition, reads []meta.Read, o meta.ReadOptions) ([]meta.Item, uint64, error) {
	items, at, err := meta.GetMany(ctx, g.inner, p, reads, o)
	keys := make([][]byte, len(reads))
	for i, r := range reads {
		keys[i] = r.Key
	}
	g.sim.gate(ctx, callName("getmany", p, keys...))
	return items, at, err
}

func (g gatedStore) GetStale(ctx context.Context, p meta.Partition, key []byte) (meta.Item, error) {
	it, err := meta.GetStale(ctx, g.inner, p, key)
	g.sim.gate(ctx, callName("getstale", p, key))
	return it, err
}

func (g gatedStore) ScanRanges(ctx context.Context, ranges []meta.Range, fn func(int, []byte, meta.Item) bool) error {
	err := meta.ScanRanges(ctx, g.inner, ranges, fn)
	var keys [][]byte
	for _, r := range ranges {
		keys = append(keys, binary.BigEndian.AppendUint32(nil, uint32(r.P)), r.Start, r.End)
	}
	g.sim.gate(ctx, callName("scanranges", 0, keys...))
	return err
}

// callName names a metadata call for the gate: its operation, partition
// and keys. Calls of one actor that wait at the gate together (its
// goroutines in parallel) are told apart by it, not by the order they
// reached the gate in, which is the Go scheduler's.
func callName(op string, p meta.Partition, keys ...[]byte) string {
	h := xxh3.New()
	for _, k := range keys {
		h.Write(binary.BigEndian.AppendUint32(nil, uint32(len(k))))
		h.Write(k)
	}
	return fmt.Sprintf("%s %d %x", op, p, h.Sum64())
}

// txnKeys are the keys a transaction reads or writes, in its order.
func txnKeys(txn meta.Txn) [][]byte {
	var keys [][]byte
	for _, c := range txn.Conds {
		keys = append(keys, c.Key)
	}
	for _, kv := range txn.Puts {
		keys = append(keys, kv.Key)
	}
	keys = append(keys, txn.Deletes...)
	for _, a := range txn.Adds {
		keys = append(keys, a.Key)
	}
	return keys
}

// diskFault makes the drive at dir fail, one of three ways drawn from r:
// reads fail with EIO, writes and syncs fail with EIO, or the disk fills
// up. It returns what heals the fault.
func (n *node) diskFault(r *rand.Rand, dir string) (heal func()) {
	kind := r.IntN(3)
	if kind == 2 {
		return n.fill(dir)
	}
	inc := n.current()
	if inc == nil {
		return func() {}
	}
	ops := vfs.OpRead
	if kind == 1 {
		ops = vfs.OpWrite | vfs.OpSync
	}
	n.sim.log.Info("disk fault", "node", n.id, "drive", dir, "ops", ops)
	inc.fs.Fail(dir, ops, syscall.EIO)
	return func() { inc.fs.Heal(dir) }
}

// fillerName is the file that fills a drive; the store ignores files of
// its drive's root that are not its own.
const fillerName = "sim-filler"

// fill writes a synced file taking all of dir's disk but a sliver, below
// the store's reserve; healing removes it from the disk as it is then
// (the node may have crashed and restarted on it meanwhile).
func (n *node) fill(dir string) (heal func()) {
	path := dir + "/" + fillerName
	u, err := n.mem.Usage(dir)
	if err != nil || u.Avail < driveReserve/4 {
		return func() {}
	}
	f, err := n.mem.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return func() {}
	}
	_, err = f.Write(make([]byte, u.Avail-driveReserve/4))
	if err == nil {
		err = f.Sync()
	}
	f.Close()
	if err == nil {
		err = n.mem.SyncDir(dir)
	}
	n.sim.log.Info("disk full", "node", n.id, "drive", dir, "err", err)
	return func() {
		_ = n.mem.Remove(path)
		_ = n.mem.SyncDir(dir)
	}
}
