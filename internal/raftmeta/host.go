package raftmeta

import (
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"
	"github.com/cockroachdb/pebble/v2/sstable"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/redoubt-io/redoubt/internal/meta"
	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
)

var (
	// ErrClosed is returned by a Host whose event loop has stopped.
	ErrClosed = errors.New("raftmeta: host closed")
	// ErrNoGroup is returned for a partition this host neither hosts nor
	// knows the members of.
	ErrNoGroup = errors.New("raftmeta: unknown group")
)

// Host runs the Raft groups of one node. See the package documentation.
type Host struct {
	cfg Config
	log *slog.Logger
	db  *pebble.DB
	fs  vfs.FS
	// tables writes the sstables of streamed snapshots, as Pebble writes
	// its own.
	tables sstable.WriterOptions

	// streams holds the snapshots being streamed, both ways.
	streams snapStreams
	// applyUnsynced says an apply batch was written since the last sync
	// (event loop only).
	applyUnsynced bool

	mu struct {
		sync.Mutex
		groups  map[meta.Partition]*group
		list    []*group // the values of groups, for ticking
		members map[meta.Partition][]uint64
		// tombs holds the tombstones: the lowest generation of each
		// group this host may still have a replica of.
		tombs map[meta.Partition]uint64
		// splits holds the split records of the groups known to have
		// split (split.go), and parents the group each of their
		// children came from.
		splits  map[meta.Partition]*splitRec
		parents map[meta.Partition]meta.Partition
	}
	// ticks counts the ticks of the event loop; heard holds, per peer
	// node, the tick at which it last sent this host anything (quiesce.go).
	ticks   atomic.Uint64
	heardMu sync.Mutex
	heard   map[uint64]uint64
	// expected holds the nodes this host sends a batch every tick, which
	// send it theirs (cutoff.go). Guarded by heardMu.
	expected map[uint64]bool
	// watched holds the waits to end when this host is cut off from
	// their group (cutoff.go).
	watchMu sync.Mutex
	watched map[*watched]struct{}

	// anySplit: this host knows of a split (h.mu.splits or parents is
	// not empty), so requests must look there; until then they take no
	// lock for it.
	anySplit atomic.Bool

	// life holds the replicas to make and delete at the next turn of the
	// event loop (runLifecycle).
	lifeMu sync.Mutex
	life   []lifeOp

	// hints remembers, for ScanRanges, the leaders of groups this host
	// has no replica of (or no leader for), as other hosts reported them.
	// A stale hint costs one more round.
	hintMu sync.Mutex
	hints  map[meta.Partition]uint64

	dirtyMu sync.Mutex
	dirty   map[*group]struct{}
	wake    chan struct{}

	waitMu sync.Mutex
	props  map[uint64]chan result
	reads  map[uint64]chan struct{}
	nextID atomic.Uint64

	runOnce sync.Once
	done    chan struct{} // closed when Run returns
	// broken holds the panic raft raised while a message was stepped in
	// (a follower whose log lost what it acknowledged, say): Run ends
	// with it, as with a panic of its own.
	broken atomic.Pointer[error]

	// closeMu keeps Close from closing the database under the calls that
	// come from the network (Step, HandleForward).
	closeMu sync.RWMutex
	closed  bool

	stats struct {
		cycles, syncs, writes, groupErrors, deleted, refused atomic.Uint64
		snapSent, snapBytesSent, snapFailed, snapReceived    atomic.Uint64
		splits                                               atomic.Uint64
		quarantined                                          atomic.Int64
	}
	// stalls counts Pebble's write stalls since open (EngineStats).
	stalls *atomic.Int64
	// refusedLogged is when a refused message was last logged (unix ns).
	refusedLogged atomic.Int64

	// Seams for tests; nil in production. faults is asked before each
	// operation that can fail for one group ("apply", "compact",
	// "snapshot", "load") and fails it with the error it returns.
	// beforeSync runs in a cycle between the unsynced batches and the
	// sync.
	faults     func(op string, p meta.Partition) error
	beforeSync func()
	// goStream runs a snapshot's stream; nil runs it on a goroutine of
	// its own.
	goStream func(func())
}

// result is the outcome of a proposal, given to its waiting proposer.
type result struct {
	rev uint64
	err error
}

// New opens (or creates) the host's database in cfg.Dir and restarts every
// group found there. Call Run to drive them and Close when Run returned.
func New(cfg Config) (*Host, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	fs := cfg.FS
	if fs == nil {
		fs = vfs.Default
	}
	if err := makeDir(fs, cfg.Dir); err != nil {
		return nil, fmt.Errorf("raftmeta: %w", err)
	}
	cache := meta.NewBlockCache(cfg.CacheBytes, cfg.MemTableBytes, 1)
	defer cache.Unref() // the DB holds its own reference
	stalls := new(atomic.Int64)
	opts := &pebble.Options{
		FS:                          fs,
		FormatMajorVersion:          pebble.FormatNewest,
		Logger:                      meta.PebbleLogger{L: log},
		Cache:                       cache,
		MemTableSize:                cfg.MemTableBytes,
		MemTableStopWritesThreshold: meta.MemTableStopWrites,
		EventListener: &pebble.EventListener{WriteStallBegin: func(info pebble.WriteStallBeginInfo) {
			stalls.Add(1)
			log.Warn("metadata writes stalled", "reason", info.Reason)
		}},
	}
	// Applying a transaction reads the revision of each key it is
	// conditional on, often of a key that does not exist yet: a Bloom
	// filter per table answers "not here" without reading a data block.
	// Lower levels inherit L0's policy.
	opts.Levels[0].FilterPolicy = bloom.FilterPolicy(10)
	// Pebble opening without room for its WAL's flush retries forever.
	if err := meta.CheckOpenSpace(fs, cfg.Dir); err != nil {
		return nil, fmt.Errorf("raftmeta: %w", err)
	}
	db, err := pebble.Open(cfg.Dir, opts)
	if err != nil {
		return nil, fmt.Errorf("raftmeta: open %s: %w", cfg.Dir, err)
	}
	h := &Host{
		stalls:  stalls,
		cfg:     cfg,
		log:     log,
		db:      db,
		fs:      fs,
		dirty:   make(map[*group]struct{}),
		wake:    make(chan struct{}, 1),
		props:   make(map[uint64]chan result),
		reads:   make(map[uint64]chan struct{}),
		done:    make(chan struct{}),
		hints:   make(map[meta.Partition]uint64),
		heard:   make(map[uint64]uint64),
		watched: make(map[*watched]struct{}),
	}
	wopts := opts.Clone()
	wopts.EnsureDefaults()
	h.tables = wopts.MakeWriterOptions(0, db.TableFormat())
	h.mu.groups = make(map[meta.Partition]*group)
	h.mu.members = make(map[meta.Partition][]uint64)
	h.mu.tombs = make(map[meta.Partition]uint64)
	h.mu.splits = make(map[meta.Partition]*splitRec)
	h.mu.parents = make(map[meta.Partition]meta.Partition)
	// Proposal IDs must not repeat across restarts, or a result meant for
	// a proposal of an earlier run could reach a new caller.
	h.nextID.Store(uint64(time.Now().UnixNano()))
	if err := h.initStreams(); err != nil {
		_ = db.Close()
		return nil, err
	}
	if err := h.open(); err != nil {
		h.stopStreams()
		_ = db.Close()
		return nil, err
	}
	return h, nil
}

func (h *Host) open() error {
	v, closer, err := h.db.Get(formatKey)
	switch {
	case errors.Is(err, pebble.ErrNotFound):
		if err := h.db.Set(formatKey, []byte{formatVersion}, pebble.Sync); err != nil {
			return err
		}
	case err != nil:
		return err
	default:
		ok := len(v) == 1 && v[0] == formatVersion
		closer.Close()
		if !ok {
			return fmt.Errorf("raftmeta: %s: %w: unknown database format", h.cfg.Dir, ErrCorrupt)
		}
	}
	if err := h.loadTombstones(); err != nil {
		return err
	}
	if err := h.loadSplits(); err != nil {
		return err
	}
	return h.forEachRecord(groupRecordPrefix, "group record", func(p meta.Partition, _ []byte) error {
		g, err := h.loadGroup(p)
		if err != nil {
			// The others start; this one is retried (see Failures).
			h.addGroupLocked(h.brokenGroup(p, err))
			return nil
		}
		h.addGroupLocked(g)
		// A replica that applied its own removal before a restart is
		// deleted at the first turn of the loop; one that applied a
		// split has its children made then.
		h.checkMembership(g)
		if rec := h.mu.splits[p]; rec != nil && rec.tail != nil {
			g.split.Store(rec)
			h.life = append(h.life, lifeOp{g: g, p: p, split: true})
		}
		return nil
	})
}

// forEachRecord calls fn with the partition and value of every host
// record of kind prefix ('G', 'T', 'S': one key per group).
func (h *Host) forEachRecord(prefix byte, what string, fn func(p meta.Partition, v []byte) error) error {
	it, err := h.db.NewIter(&pebble.IterOptions{LowerBound: []byte{prefix}, UpperBound: []byte{prefix + 1}})
	if err != nil {
		return err
	}
	defer it.Close()
	for ok := it.First(); ok; ok = it.Next() {
		k := it.Key()
		if len(k) != 5 {
			return fmt.Errorf("raftmeta: %w: %s key %x", ErrCorrupt, what, k)
		}
		if err := fn(meta.Partition(binary.BigEndian.Uint32(k[1:])), it.Value()); err != nil {
			return err
		}
	}
	return it.Error()
}

func (h *Host) loadTombstones() error {
	return h.forEachRecord(tombstonePrefix, "tombstone", func(p meta.Partition, v []byte) error {
		gen, err := decodeTombstone(v)
		if err != nil {
			return fmt.Errorf("raftmeta: tombstone of %s: %w", partitionName(p), err)
		}
		h.mu.tombs[p] = gen
		return nil
	})
}

func (h *Host) addGroupLocked(g *group) {
	h.mu.groups[g.p] = g
	h.mu.list = append(h.mu.list, g)
}

// Close closes the database. Run must have returned, and no Commit, Get
// or Scan may be in progress; calls from the network (Step,
// HandleForward) are waited for, and refused afterwards.
// EngineStats is what the host's database reports of its compactions and
// caches; zero once the host is closed.
func (h *Host) EngineStats() meta.EngineStats {
	h.closeMu.RLock()
	defer h.closeMu.RUnlock()
	if h.closed {
		return meta.EngineStats{}
	}
	return meta.EngineStatsOf(h.db, h.stalls.Load())
}

func (h *Host) Close() error {
	h.runOnce.Do(func() { close(h.done) })
	h.closeMu.Lock()
	defer h.closeMu.Unlock()
	if h.closed {
		return ErrClosed
	}
	h.closed = true
	h.stopStreams()
	return h.db.Close()
}

// enter admits a call from the network unless the host is closed; the
// caller must call h.closeMu.RUnlock when done.
func (h *Host) enter() error {
	h.closeMu.RLock()
	if h.closed {
		h.closeMu.RUnlock()
		return ErrClosed
	}
	return nil
}

// EnsureGroup starts group p on this host if this node is one of its
// initial voters: from its state on disk if it has any, else as a new
// group. All initial members of a group must be given the same voters.
// voters are also remembered as the members to forward requests to.
//
// A node not in voters (one that joins the group later) starts nothing:
// its replica is made when the group's leader adds it and sends it a
// message, and filled by a snapshot. Nor is anything started for a group
// whose replica this host had and deleted (a tombstone remains): its
// initial replica can never come back, only a new one, added by the
// leader. A replica this host has is kept as it is, whatever voters say.
func (h *Host) EnsureGroup(p meta.Partition, voters []uint64) error {
	if len(voters) == 0 {
		return fmt.Errorf("raftmeta: group %s: no voters", partitionName(p))
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.mu.members[p] = slices.Clone(voters)
	if _, ok := h.mu.groups[p]; ok || !slices.Contains(voters, h.cfg.NodeID) {
		return nil
	}
	if _, ok := h.mu.tombs[p]; ok {
		h.log.Warn("not starting a group whose replica this node deleted; its leader may add the node back",
			"group", partitionName(p))
		return nil
	}
	if _, ok := h.mu.splits[p]; ok {
		h.log.Info("not starting a group that split", "group", partitionName(p))
		return nil
	}
	_, closer, err := h.db.Get(groupRecordKey(p))
	if err == nil {
		closer.Close()
	} else if errors.Is(err, pebble.ErrNotFound) {
		b := h.db.NewBatch()
		h.bootstrapGroup(b, p, voters)
		err := b.Commit(pebble.Sync)
		b.Close()
		if err != nil {
			return err
		}
	} else {
		return err
	}
	g, err := h.loadGroup(p)
	if err != nil {
		return err
	}
	h.addGroupLocked(g)
	if len(voters) == 1 && g.hs.GetTerm() <= 1 {
		// A group of one need not wait an election timeout.
		g.mu.Lock()
		g.wake()
		_ = g.rn.Campaign()
		g.mu.Unlock()
	}
	h.markDirty(g)
	return nil
}

// SetMembers remembers the members of a group this host may not be in, so
// that requests for it can be forwarded there.
func (h *Host) SetMembers(p meta.Partition, voters []uint64) {
	h.mu.Lock()
	h.mu.members[p] = slices.Clone(voters)
	h.mu.Unlock()
}

// group returns the group p this host hosts: nil if it has no replica,
// or one that applied its own removal (leaving), or one quarantined after
// a failure, so that requests treat it as a group this host is not in
// (and go to its other members), or one that split (they are answered
// meta.ErrMoved).
func (h *Host) group(p meta.Partition) *group {
	g := h.replica(p)
	if g == nil || g.leaving.Load() || g.quarantined.Load() || g.split.Load() != nil {
		return nil
	}
	return g
}

// replica returns this host's replica of group p, hosted or not.
func (h *Host) replica(p meta.Partition) *group {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.mu.groups[p]
}

// Status describes one group as seen by this host.
type Status struct {
	Partition meta.Partition
	Leader    uint64 // 0 when unknown
	Term      uint64
	Applied   uint64
	// LogStart is the first index still in the log: entries before it
	// were discarded, or came in a snapshot.
	LogStart uint64
	// Voters and Learners are nodes.
	Voters   []uint64
	Learners []uint64
	// Replica and Generation identify this host's replica: its Raft ID
	// in the group (its node ID for an initial voter, generation 0) and
	// its incarnation.
	Replica, Generation uint64
	// Quarantined: the group failed here and waits to be retried (see
	// Stats); meanwhile this host neither serves it nor takes part in it.
	Quarantined bool
}

// Groups lists the groups of this host in partition order. A replica
// that applied its own removal is not listed, even before it is deleted.
func (h *Host) Groups() []Status {
	h.mu.Lock()
	list := slices.Clone(h.mu.list)
	h.mu.Unlock()
	out := make([]Status, 0, len(list))
	for _, g := range list {
		if g.leaving.Load() {
			continue
		}
		if g.rn == nil { // not loaded (brokenGroup)
			out = append(out, Status{Partition: g.p, Quarantined: true})
			continue
		}
		g.mu.Lock()
		st := g.rn.BasicStatus()
		first, _ := g.ms.FirstIndex()
		set := g.set.Load()
		voters, learners := set.nodes(g.cs.GetVoters()), set.nodes(g.cs.GetLearners())
		g.mu.Unlock()
		out = append(out, Status{
			Partition:   g.p,
			Leader:      g.lead.Load(),
			Term:        st.HardState.GetTerm(),
			Applied:     g.applied.Load(),
			LogStart:    first,
			Voters:      voters,
			Learners:    learners,
			Replica:     g.self.id,
			Generation:  g.self.gen,
			Quarantined: g.quarantined.Load(),
		})
	}
	slices.SortFunc(out, func(a, b Status) int { return cmp.Compare(a.Partition, b.Partition) })
	return out
}

// Step hands the host a message batch that peer from sent it. Each
// message goes to this host's replica of its group if it is the one the
// message names (Raft ID and generation). A message to a newer replica of
// this node (a later generation than the one here, and than the
// tombstone) has that replica made, in place of the older one, and is
// stepped into it. Other messages are dropped: for an older
// replica (a deleted one too), from a member that is not on node from,
// or for a group stopped after a failure.
func (h *Host) Step(ctx context.Context, from uint64, batch []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	msgs, err := decodeBatch(batch)
	if err != nil {
		return err
	}
	if err := h.enter(); err != nil {
		return err
	}
	defer h.closeMu.RUnlock()
	if h.cfg.Quiesce {
		h.heardFrom(from)
	}
	for _, m := range msgs {
		to := m.msg.GetTo()
		g := h.replica(m.p)
		if g == nil || g.self.id != to || g.self.gen != m.toGen {
			if (g == nil || g.self.gen < m.toGen) && to != 0 && (m.toGen > 0 || to == h.cfg.NodeID) && m.toGen >= h.tomb(m.p) {
				h.wantReplica(m.p, replica{id: to, node: h.cfg.NodeID, gen: m.toGen}, from, m)
			}
			continue
		}
		if g.quarantined.Load() {
			continue
		}
		g.mu.Lock()
		if !g.learn(m.msg.GetFrom(), from, m.fromGen) {
			g.mu.Unlock()
			h.log.Debug("message from a replica of another node", "group", g.name, "from", from, "replica", m.msg.GetFrom())
			continue
		}
		switch m.msg.GetType() {
		case raftpb.MsgApp, raftpb.MsgHeartbeat, raftpb.MsgSnap:
			g.quiet.Store(0)
		}
		settled := isQuiesce(m.msg) && !g.rn.HasReady()
		err := h.stepLocked(g, m.msg)
		h.afterStep(g, m.msg, settled)
		g.mu.Unlock()
		if err != nil && !errors.Is(err, raft.ErrStepPeerNotFound) {
			h.log.Debug("step", "group", g.name, "from", from, "err", err)
		}
		h.markDirty(g)
	}
	return nil
}

// stepLocked steps msg into g, whose mu is held. A panic of raft's (it
// meets a state it cannot accept) is not left to the caller's goroutine,
// where a transport would recover it with g.mu still held and every later
// message of the group waiting on it: it is turned into the host's fatal
// error, which Run returns (TestStepPanicStopsTheHost).
func (h *Host) stepLocked(g *group, msg *raftpb.Message) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("raftmeta: group %s: raft panicked stepping a message: %v", g.name, r)
			if h.broken.CompareAndSwap(nil, &err) {
				h.log.Error("raft panicked; the host stops", "group", g.name, "panic", r)
			}
			h.poke()
		}
	}()
	if msg.GetType() == raftpb.MsgSnap && g.split.Load() != nil {
		return nil // its data is frozen for its children (split.go)
	}
	if msg.GetType() == raftpb.MsgSnap && !h.admitSnapshot(g.p, msg) {
		h.log.Debug("snapshot message before its stream was staged: dropped", "group", g.name)
		return nil
	}
	return g.rn.Step(msg)
}

// tomb is the lowest generation of group p this host may have a replica
// of.
func (h *Host) tomb(p meta.Partition) uint64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.mu.tombs[p]
}

// ReportUnreachable tells the groups led here that messages to node to
// are being lost, so that they probe its replica instead of streaming to
// it.
func (h *Host) ReportUnreachable(to uint64) {
	h.mu.Lock()
	list := slices.Clone(h.mu.list)
	h.mu.Unlock()
	for _, g := range list {
		if !g.leader.Load() {
			continue
		}
		if r, ok := g.set.Load().ofNode(to); ok {
			g.mu.Lock()
			g.rn.ReportUnreachable(r.id)
			g.mu.Unlock()
		}
	}
}

func (h *Host) markDirty(g *group) {
	h.dirtyMu.Lock()
	h.dirty[g] = struct{}{}
	h.dirtyMu.Unlock()
	h.poke()
}

// pending says whether the event loop may have work.
func (h *Host) pending() bool {
	h.lifeMu.Lock()
	life := len(h.life)
	h.lifeMu.Unlock()
	h.dirtyMu.Lock()
	defer h.dirtyMu.Unlock()
	return len(h.dirty) > 0 || life > 0
}

func (h *Host) takeDirty() []*group {
	h.dirtyMu.Lock()
	defer h.dirtyMu.Unlock()
	if len(h.dirty) == 0 {
		return nil
	}
	gs := make([]*group, 0, len(h.dirty))
	for g := range h.dirty {
		gs = append(gs, g)
	}
	clear(h.dirty)
	// In partition order: a cycle's batches and messages do not depend
	// on the order of a map.
	slices.SortFunc(gs, func(a, b *group) int { return cmp.Compare(a.p, b.p) })
	return gs
}

// Run drives every group until ctx ends or the database fails. It may be
// called once.
func (h *Host) Run(ctx context.Context) error {
	defer h.runOnce.Do(func() { close(h.done) })
	cctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { h.checkReplicas(cctx) })
	defer wg.Wait()
	defer cancel()
	ticks := h.cfg.Ticks
	if ticks == nil {
		ticker := time.NewTicker(h.cfg.TickInterval)
		defer ticker.Stop()
		ticks = ticker.C
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-h.done:
			return ErrClosed
		case <-ticks:
			h.tick()
		case <-h.wake:
		}
		if err := h.broken.Load(); err != nil {
			return *err
		}
		if err := h.step(); err != nil {
			h.log.Error("raft metadata stopped", "err", err)
			return err
		}
	}
}

// tick is one TickInterval of the event loop: every group ticks, and
// quarantined groups whose back-off ran out are loaded again. Tests call
// it (and step) directly to drive a host deterministically.
func (h *Host) tick() {
	h.tickAll()
	h.retryFailed(h.groupList())
}

// tickAll ticks every group but the quiesced ones (quiesce.go), and
// sends every peer node this host's quiescing heartbeats, or an empty
// batch, so that it hears this node is alive.
func (h *Host) tickAll() {
	h.ageStreams()
	now := h.ticks.Add(1)
	h.mu.Lock()
	list := h.mu.list
	h.mu.Unlock()
	ticked := make([]*group, 0, len(list))
	out := map[uint64][]groupMsg{}
	for _, g := range list {
		if g.quarantined.Load() {
			continue
		}
		if g.quiesced.Load() && h.stayQuiesced(g, now) {
			continue
		}
		g.mu.Lock()
		var q map[uint64][]groupMsg
		if g.leader.Load() {
			q = h.maybeQuiesce(g, now)
		}
		if q == nil {
			g.rn.Tick()
		}
		g.mu.Unlock()
		for n, ms := range q {
			out[n] = append(out[n], ms...)
		}
		if q != nil {
			continue
		}
		ticked = append(ticked, g)
		if g.leader.Load() {
			g.quiet.Store(0)
		} else {
			g.quiet.Add(1)
		}
	}
	h.dirtyMu.Lock()
	for _, g := range ticked {
		h.dirty[g] = struct{}{}
	}
	h.dirtyMu.Unlock()
	if h.cfg.Quiesce {
		peers := h.metadataNodes(list, now)
		for _, n := range peers {
			if _, ok := out[n]; !ok {
				out[n] = nil
			}
		}
		h.expect(peers)
	}
	for _, n := range slices.Sorted(maps.Keys(out)) {
		h.sendBatch(n, out[n])
	}
	h.endCutOff(now)
}

// Stats counts the work of the event loop: cycles that had a Ready to
// handle, synced writes and writes to the database; GroupErrors counts
// the failures of single groups (each logged at error level), and
// Quarantined is how many groups are stopped by one now, waiting to be
// retried. Deleted counts the replicas deleted (removed from their
// groups, or replaced by a newer one).
type Stats struct {
	Cycles, Syncs, Writes uint64
	GroupErrors           uint64
	Quarantined           int
	Deleted               uint64
	// Refused counts messages not sent because they were larger than
	// Config.MaxBatch (see send).
	Refused uint64
	// SnapshotsSent counts the snapshots streamed to followers whole, and
	// SnapshotBytesSent their bytes; SnapshotsFailed the streams that
	// failed (each logged at warn). SnapshotsInstalled counts those this
	// host received and installed.
	SnapshotsSent, SnapshotBytesSent, SnapshotsFailed, SnapshotsInstalled uint64
	// Splits counts the groups this host split into children (split.go).
	Splits uint64
}

func (h *Host) Stats() Stats {
	return Stats{
		Cycles: h.stats.cycles.Load(), Syncs: h.stats.syncs.Load(), Writes: h.stats.writes.Load(),
		GroupErrors: h.stats.groupErrors.Load(), Quarantined: int(h.stats.quarantined.Load()),
		Deleted: h.stats.deleted.Load(), Refused: h.stats.refused.Load(),
		SnapshotsSent: h.stats.snapSent.Load(), SnapshotBytesSent: h.stats.snapBytesSent.Load(),
		SnapshotsFailed: h.stats.snapFailed.Load(), SnapshotsInstalled: h.stats.snapReceived.Load(),
		Splits: h.stats.splits.Load(),
	}
}

func (h *Host) newID() uint64 { return h.nextID.Add(1) }

var _ raftpb.ConfChangeI = (*raftpb.ConfChangeV2)(nil)

// makeDir creates dir and syncs the parent of every directory it
// creates, so that a crash right after the first start does not lose a
// directory entry (and with it whatever Pebble synced inside).
func makeDir(fs vfs.FS, dir string) error {
	var made []string
	for d := dir; ; d = fs.PathDir(d) {
		if _, err := fs.Stat(d); err == nil {
			break
		}
		made = append(made, d)
		if fs.PathDir(d) == d {
			break
		}
	}
	if len(made) == 0 {
		return nil
	}
	if err := fs.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for _, d := range made {
		parent, err := fs.OpenDir(fs.PathDir(d))
		if err != nil {
			return err
		}
		err = parent.Sync()
		parent.Close()
		if err != nil {
			return err
		}
	}
	return nil
}
