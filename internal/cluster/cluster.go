package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redoubt-io/redoubt/internal/admin"
	"github.com/redoubt-io/redoubt/internal/clock"
	"github.com/redoubt-io/redoubt/internal/layout"
	"github.com/redoubt-io/redoubt/internal/meta"
	"github.com/redoubt-io/redoubt/internal/placement"
	"github.com/redoubt-io/redoubt/internal/raftmeta"
	"github.com/redoubt-io/redoubt/internal/records"
	"github.com/redoubt-io/redoubt/internal/shardrpc"
	"github.com/redoubt-io/redoubt/internal/store"
	"github.com/redoubt-io/redoubt/internal/transport"
	"github.com/redoubt-io/redoubt/internal/vfs"

	pebblevfs "github.com/cockroachdb/pebble/v2/vfs"
)

// Config is one node's part in a cluster.
type Config struct {
	// RPCAddr, GossipAddr: where this node listens and is reached.
	RPCAddr, GossipAddr string
	// S3Addr and AdminAddr are advertised to the others, for status.
	S3Addr, AdminAddr string
	// Join lists RPC addresses of members; empty for the first node.
	Join []string
	Zone string
	// Secret admits nodes: only holders take part in RPC and gossip.
	Secret []byte
	// BootstrapExpect: the first node commits the first layout once this
	// many nodes have joined.
	BootstrapExpect int
	// Partitions and MetaReplicas shape the first layout.
	Partitions, MetaReplicas int
	// Policy, when set, is the redundancy of the first layout; otherwise
	// it follows the cluster size (placement.ClusterPolicy).
	Policy *placement.Policy
	// Version is the software version, shown in status.
	Version string
	// LayoutPoll is how often a node checks for a new layout version.
	LayoutPoll time.Duration
	// SnapshotRate is raftmeta.Config.SnapshotRate: bytes per second of
	// the snapshots this node streams; 0: no limit.
	SnapshotRate int64
	// Splitter is raftmeta.Config.Splitter: how a splitting partition's
	// records are divided (objects.NewSplitter).
	Splitter raftmeta.Splitter
	// RaftTick is the Raft tick; elections take 10 ticks.
	RaftTick time.Duration
	// RaftWake is raftmeta.Config.Wake: nil wakes the Raft loop at once;
	// a simulation defers the wake-up to its own event loop.
	RaftWake func(kick func())
	// RaftTicks is raftmeta.Config.Ticks: nil ticks every RaftTick.
	RaftTicks <-chan time.Time
	// RaftQuiesce is raftmeta.Config.Quiesce: idle groups stop ticking.
	RaftQuiesce bool
	// After is raftmeta.Config.After, and makes the cluster's own waits
	// too (the layout poll's period, a join's retries); nil: time's
	// timers.
	After clock.After
	// Net, when set, is the node-to-node transport to use instead of
	// listening on RPCAddr with mutual TLS: tests pass an in-memory one.
	Net transport.Caller
	// NoGossip leaves out gossip membership (tests on an in-memory
	// network, where every node is taken to be alive).
	NoGossip bool
	// Supervise, when set, runs the node's long-lived cluster loops under
	// the caller's supervisor, which restarts them if they panic or fail;
	// otherwise they are plain goroutines. They are "layout-watcher" (which
	// also does the System leader's housekeeping) and, with gossip on,
	// "gossip", whose upkeep replaces a gossip instance that closed or
	// stopped answering, and begins every run after the first with a new
	// instance on the same address. The Raft loop stays inside: a Raft
	// loop that panicked mid-cycle must not resume.
	Supervise func(name string, run func(ctx context.Context) error)
	// Fatal, when set, is told (once) that the Raft loop stopped with an
	// error or panicked: the node can no longer agree on metadata, and
	// should stop so that whatever runs it starts it again from its disk,
	// rather than serve on without consensus.
	Fatal func(error)
	// FS is the file system of the drives, for the cluster's own small
	// files on them (peers, where the Raft state is); nil is the
	// operating system's. RaftFS is the file system of the Raft state
	// (raftmeta.Config.FS); nil is the operating system's. A simulation
	// passes in-memory, crashable ones.
	FS     vfs.FS
	RaftFS pebblevfs.FS
	// AntiEntropy is how often the node compares its available buckets'
	// records with each other replica of each partition it replicates,
	// and copies what either lacks (antientropy.go). 0 keeps no records at
	// all: no store, no service, no loop.
	AntiEntropy time.Duration
	// RepairAfter is how long a node of the layout may be dead (by gossip)
	// before the System leader commits a layout without it, so that every
	// partition's Raft group gets its voters back and new data goes to live
	// nodes; a node so removed that comes back is added again the same way.
	// 0 leaves layout changes to operators. Shorter reacts sooner; too short
	// turns a reboot into two layout changes.
	RepairAfter time.Duration
}

// Cluster is this node's membership in the cluster: identity, node-to-node
// transport, gossip, the Raft groups it hosts and the layout it follows.
type Cluster struct {
	cfg    Config
	log    *slog.Logger
	id     *transport.Identity
	nodeID transport.NodeID
	raftID uint64
	net    transport.Caller
	tnet   *transport.Net // when this package listens itself
	host   *raftmeta.Host
	store  *guardedStore
	gossip gossipState
	book   *addressBook
	sender *raftSender
	// placeIx is Place's index of the layout it last saw.
	placeIx atomic.Pointer[placeIndex]
	shards  *shardrpc.Server
	// records holds the available buckets' records this node
	// replicates (antientropy.go).
	records *records.Store
	// lastSync is the last anti-entropy pass, for /status.
	lastSync atomic.Pointer[admin.AntiEntropyStatus]
	// entropy is what anti-entropy's retries need (antientropy.go).
	entropy syncState
	// dead is gossip's dead nodes, for RecordReplicas.
	dead deadCache
	// conflicts is CountConflicts at the last full anti-entropy pass.
	conflicts atomic.Int64
	// clockRefusals and clockWarn are noteClock's.
	clockRefusals atomic.Int64
	clockWarn     struct {
		sync.Mutex
		last time.Time
	}
	local []*store.Drive
	self  NodeInfo

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu struct {
		sync.RWMutex
		layout *layout.Layout
		nodes  map[string]NodeInfo
		remote map[string]*shardrpc.RemoteDrive
		// created records the groups this node has set up, so a layout
		// change creates a group empty (to be filled by its leader)
		// rather than with a voter list of its own.
		created map[meta.Partition]bool
	}
	peersFile string
	peersMu   sync.Mutex // one savePeers at a time
	deaths    deathWatch
	// usage caches every node's drive states and the replicas catching up
	// in the groups it leads, for status (askNodes).
	usage struct {
		sync.Mutex
		m  map[string]nodeReport
		at time.Time
	}
	closeOnce  sync.Once
	refreshing atomic.Bool
	// restarted says the node had Raft state when it started.
	restarted   bool
	layoutReady chan struct{}
	readyOnce   sync.Once
	onLayout    []func(*layout.Layout)
}

// Start opens this node's cluster state (identity and Raft data under
// dirs[0], identity mirrored in every dir), listens for peers, and joins
// or bootstraps. It returns once the node is part of the System group;
// the layout may come later (WaitLayout).
func Start(ctx context.Context, cfg Config, drives []*store.Drive, logger *slog.Logger) (_ *Cluster, err error) {
	if len(drives) == 0 {
		return nil, errors.New("cluster: no drives")
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if cfg.LayoutPoll <= 0 {
		cfg.LayoutPoll = 200 * time.Millisecond
	}
	if cfg.FS == nil {
		cfg.FS = vfs.OS()
	}
	c := &Cluster{cfg: cfg, log: logger, local: drives, book: newAddressBook(), layoutReady: make(chan struct{})}
	c.mu.nodes = map[string]NodeInfo{}
	c.mu.remote = map[string]*shardrpc.RemoteDrive{}
	c.mu.created = map[meta.Partition]bool{}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	defer func() {
		if err != nil {
			c.Close()
		}
	}()

	sorted := slices.SortedFunc(slices.Values(drives), func(a, b *store.Drive) int { return a.Slot() - b.Slot() })
	home := sorted[0].Path()
	if cfg.Net == nil {
		if c.id, err = loadIdentity(sorted); err != nil {
			return nil, err
		}
	}

	if cfg.Net != nil {
		c.net = cfg.Net
		c.id = nil
	} else {
		tcfg := transport.DefaultConfig()
		tcfg.Identity, tcfg.Secret, tcfg.ListenAddr = c.id, cfg.Secret, cfg.RPCAddr
		tcfg.Logger = logger.With("component", "transport")
		c.tnet, err = transport.Listen(c.ctx, tcfg)
		if err != nil {
			return nil, fmt.Errorf("listening for nodes on %s: %w", cfg.RPCAddr, err)
		}
		c.net = c.tnet
	}
	c.nodeID = c.net.ID()
	c.raftID = RaftID(c.nodeID)
	c.book.set(c.nodeID, c.net.Addr())

	c.sender = newRaftSender(c.ctx, c.net, c.book, logger)
	rcfg := raftmeta.DefaultConfig()
	rcfg.NodeID = c.raftID
	rcfg.Dir = filepath.Join(home, "raft")
	rcfg.FS = cfg.RaftFS
	var statErr error
	if cfg.RaftFS != nil {
		_, statErr = cfg.RaftFS.Stat(rcfg.Dir)
	} else {
		_, statErr = os.Stat(rcfg.Dir)
	}
	c.restarted = statErr == nil
	if err := checkRaftHome(cfg.FS, sorted, c.restarted); err != nil {
		return nil, err
	}
	c.peersFile = filepath.Join(home, "redoubt-peers.json")
	rcfg.Send = c.sender
	// The transport refuses larger messages; the host splits its batches
	// below this and counts what it cannot send (Stats.Refused).
	rcfg.MaxBatch = transport.DefaultConfig().MaxMessage
	rcfg.Forward = forwarder{net: c.net, book: c.book}
	rcfg.Logger = logger.With("component", "raft")
	if cfg.RaftTick > 0 {
		rcfg.TickInterval = cfg.RaftTick
	}
	rcfg.Wake = cfg.RaftWake
	rcfg.Ticks = cfg.RaftTicks
	rcfg.Quiesce = cfg.RaftQuiesce
	rcfg.After = cfg.After
	rcfg.SnapshotRate = cfg.SnapshotRate
	rcfg.Splitter = cfg.Splitter
	c.host, err = raftmeta.New(rcfg)
	if err != nil {
		return nil, fmt.Errorf("opening raft state: %w", err)
	}
	if err := markRaftHome(cfg.FS, sorted); err != nil {
		return nil, err
	}
	c.sender.onErr = c.host.ReportUnreachable
	c.store = &guardedStore{s: c.host}

	if cfg.AntiEntropy > 0 {
		c.records, err = records.Open(filepath.Join(home, "records"), cfg.RaftFS, logger.With("component", "records"))
		if err != nil {
			return nil, fmt.Errorf("opening the available buckets' records: %w", err)
		}
		c.records.RefuseAhead(time.Now)
		records.Serve(c.net, c.records, time.Now)
	}

	c.shards = shardrpc.NewServer(drives, shardrpc.DefaultServerConfig(), logger.With("component", "shardrpc"))
	c.net.Handle(svcRaft, c.handleRaft)
	c.net.Handle(svcMeta, func(ctx context.Context, _ transport.NodeID, req []byte) ([]byte, error) {
		return c.host.HandleForward(ctx, req)
	})
	c.net.Handle(svcJoin, c.handleJoin)
	c.net.Handle(svcGroups, c.handleGroups)
	c.net.Handle(svcShard, func(ctx context.Context, from transport.NodeID, req []byte) ([]byte, error) {
		return c.shards.Handle(ctx, string(from), req)
	})

	c.learnNodes(loadPeers(cfg.FS, c.peersFile))
	c.self = NodeInfo{Format: recordFormat, ID: string(c.nodeID), RaftID: c.raftID, Zone: cfg.Zone,
		RPCAddr: c.net.Addr(), GossipAdr: cfg.GossipAddr, S3Addr: cfg.S3Addr, AdminAddr: cfg.AdminAddr, Version: cfg.Version,
		Features: []string{featureSplit, featureSplitData}}
	for _, d := range drives {
		capacity := d.Stats().TotalBytes
		if capacity == 0 {
			capacity = 1 << 30
		}
		c.self.Drives = append(c.self.Drives, DriveInfo{ID: d.ID(), Capacity: capacity})
	}

	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		err := c.runRaft()
		if err == nil || errors.Is(err, context.Canceled) || c.ctx.Err() != nil {
			return
		}
		c.log.Error("raft loop stopped; the node stops too", "err", err)
		if cfg.Fatal != nil {
			cfg.Fatal(err)
		}
	}()

	// Gossip binds first, so that the node's record carries the address it
	// really listens on (a port 0 in tests), and joins once the node knows
	// its peers.
	if !cfg.NoGossip {
		if err := c.startGossip(); err != nil {
			return nil, err
		}
		c.self.GossipAdr = c.gossipAdvertised(c.gossip.bind)
	}
	if err := c.joinOrBootstrap(ctx); err != nil {
		return nil, err
	}
	if m := c.members(); m != nil {
		c.joinGossip(ctx, m)
		c.superviseGossip()
	}

	c.loop("layout-watcher", c.watchLayout)
	if cfg.AntiEntropy > 0 {
		c.loop("anti-entropy", c.runAntiEntropy)
	}
	return c, nil
}

// loop runs fn as the node's long-lived loop name: under the caller's
// supervisor when there is one (Config.Supervise), else as a goroutine
// that Close waits for.
func (c *Cluster) loop(name string, fn func(context.Context) error) {
	if c.cfg.Supervise != nil {
		c.cfg.Supervise(name, fn)
		return
	}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		fn(c.ctx)
	}()
}

// raftHomeFile, on every drive of a cluster node, names the drive that
// holds the node's Raft state (its lowest slot).
const raftHomeFile = "redoubt-raft-home"

// checkRaftHome refuses to start a node whose Raft state is gone while its
// other drives say it had some: the drive that held it was replaced. The
// node's groups still count it as a member that has acknowledged entries
// and cast votes; coming back with an empty log would make it forget both
// (and etcd raft stops the process when a leader finds the log gone).
func checkRaftHome(fs vfs.FS, drives []*store.Drive, haveState bool) error {
	if haveState {
		return nil
	}
	for _, d := range drives[1:] {
		b, err := vfs.ReadFile(fs, filepath.Join(d.Path(), raftHomeFile))
		if err != nil {
			continue
		}
		return fmt.Errorf("this node's Raft state was on drive %s, which is now empty (replaced?): "+
			"the node cannot rejoin as the member it was, since it would forget its votes. "+
			"Take it out of the layout from another node (redoubt layout stage remove NODE; redoubt layout apply), "+
			"then start it on empty drives as a new node; the cluster rebuilds its data. (Drive %s says so in %s.)",
			strings.TrimSpace(string(b)), d.Path(), raftHomeFile)
	}
	return nil
}

// markRaftHome records on every drive which one holds the Raft state.
func markRaftHome(fs vfs.FS, drives []*store.Drive) error {
	want := drives[0].ID() + "\n"
	for _, d := range drives {
		p := filepath.Join(d.Path(), raftHomeFile)
		if b, err := vfs.ReadFile(fs, p); err == nil && string(b) == want {
			continue
		}
		if err := vfs.WriteFileDurable(fs, p, []byte(want), 0o600); err != nil {
			return fmt.Errorf("recording where the Raft state is, on %s: %w", d.Path(), err)
		}
	}
	return nil
}

// runRaft runs the Raft loop, turning a panic into an error: the loop
// does not resume (its state is on disk, for a restarted process).
func (c *Cluster) runRaft() (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("raft loop panicked: %v", r)
		}
	}()
	return c.host.Run(c.ctx)
}

// loadIdentity reads the node key from the first drive that has it and
// copies it to the others, so the node keeps its identity when it loses a
// drive; on first start it creates one.
func loadIdentity(drives []*store.Drive) (*transport.Identity, error) {
	var id *transport.Identity
	var firstErr error
	for _, d := range drives {
		if _, err := os.Stat(filepath.Join(d.Path(), transport.IdentityFile)); err != nil {
			continue
		}
		i, err := transport.LoadOrCreateIdentity(d.Path())
		if err == nil {
			id = i
			break
		}
		if firstErr == nil {
			firstErr = err
		}
	}
	if id == nil {
		if firstErr != nil {
			return nil, fmt.Errorf("node identity: %w", firstErr)
		}
		var err error
		if id, err = transport.LoadOrCreateIdentity(drives[0].Path()); err != nil {
			return nil, fmt.Errorf("node identity: %w", err)
		}
	}
	for _, d := range drives {
		if err := transport.SaveIdentity(d.Path(), id); err != nil {
			return nil, fmt.Errorf("node identity on %s: %w", d.Path(), err)
		}
	}
	return id, nil
}

func (c *Cluster) handleRaft(ctx context.Context, from transport.NodeID, req []byte) ([]byte, error) {
	return nil, c.host.Step(ctx, RaftID(from), req)
}

// ID is this node's ID.
func (c *Cluster) ID() string { return string(c.nodeID) }

// Meta is the cluster's metadata: every partition a Raft group, reached
// from any node.
func (c *Cluster) Meta() meta.Store { return c.store }

// Close leaves gossip, stops the Raft loop and closes the transport.
func (c *Cluster) Close() error {
	var err error
	c.closeOnce.Do(func() { err = c.close() })
	return err
}

func (c *Cluster) close() error {
	if c.store != nil {
		// Operations in flight finish while the Raft loop still runs.
		c.store.shut()
	}
	if m := c.stopGossip(); m != nil {
		m.Leave(time.Second)
		m.Close()
	}
	c.cancel()
	if c.tnet != nil {
		c.tnet.Close()
	}
	c.wg.Wait()
	if c.sender != nil {
		c.sender.wg.Wait()
	}
	if c.records != nil {
		c.records.Close()
	}
	if c.host != nil {
		return c.host.Close()
	}
	return nil
}

// Raft is the Raft host of this node's metadata groups, for tests and the
// cluster simulation (replica digests, group status).
func (c *Cluster) Raft() *raftmeta.Host { return c.host }
