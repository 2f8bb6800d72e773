package raftmeta

import (
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"
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

	mu struct {
		sync.Mutex
		groups  map[meta.Partition]*group
		list    []*group // the values of groups, for ticking
		members map[meta.Partition][]uint64
	}

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

	// closeMu keeps Close from closing the database under the calls that
	// come from the network (Step, HandleForward).
	closeMu sync.RWMutex
	closed  bool

	stats struct {
		cycles, syncs, writes atomic.Uint64
	}
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
	cache := pebble.NewCache(cfg.CacheBytes)
	defer cache.Unref() // the DB holds its own reference
	opts := &pebble.Options{
		FS:                 fs,
		FormatMajorVersion: pebble.FormatNewest,
		Logger:             pebbleLogger{log},
		Cache:              cache,
		MemTableSize:       cfg.MemTableBytes,
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
		cfg:   cfg,
		log:   log,
		db:    db,
		dirty: make(map[*group]struct{}),
		wake:  make(chan struct{}, 1),
		props: make(map[uint64]chan result),
		reads: make(map[uint64]chan struct{}),
		done:  make(chan struct{}),
		hints: make(map[meta.Partition]uint64),
	}
	h.mu.groups = make(map[meta.Partition]*group)
	h.mu.members = make(map[meta.Partition][]uint64)
	// Proposal IDs must not repeat across restarts, or a result meant for
	// a proposal of an earlier run could reach a new caller.
	h.nextID.Store(uint64(time.Now().UnixNano()))
	if err := h.open(); err != nil {
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
	it, err := h.db.NewIter(&pebble.IterOptions{LowerBound: []byte{groupRecordPrefix}, UpperBound: []byte{groupRecordPrefix + 1}})
	if err != nil {
		return err
	}
	defer it.Close()
	for ok := it.First(); ok; ok = it.Next() {
		k := it.Key()
		if len(k) != 5 {
			return fmt.Errorf("raftmeta: %w: group record key %x", ErrCorrupt, k)
		}
		g, err := h.loadGroup(meta.Partition(binary.BigEndian.Uint32(k[1:])))
		if err != nil {
			return err
		}
		h.addGroupLocked(g)
	}
	return it.Error()
}

func (h *Host) addGroupLocked(g *group) {
	h.mu.groups[g.p] = g
	h.mu.list = append(h.mu.list, g)
}

// Close closes the database. Run must have returned, and no Commit, Get
// or Scan may be in progress; calls from the network (Step,
// HandleForward) are waited for, and refused afterwards.
func (h *Host) Close() error {
	h.runOnce.Do(func() { close(h.done) })
	h.closeMu.Lock()
	defer h.closeMu.Unlock()
	if h.closed {
		return ErrClosed
	}
	h.closed = true
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

// EnsureGroup starts group p on this host: from its state on disk if it
// has any, else as a new member. All initial members of a group must be
// given the same voters. A node not in voters starts empty and is brought
// up to date by the leader once a voter or learner is added for it.
// voters are also remembered as the members to forward requests to.
// A group this node was removed from and whose copy it still keeps (see
// Config.RemovedGrace) is kept as it is: it is hosted again when its
// leader adds the node back, and dropped if the grace ends first (a
// later EnsureGroup then starts it afresh).
func (h *Host) EnsureGroup(p meta.Partition, voters []uint64) error {
	if len(voters) == 0 {
		return fmt.Errorf("raftmeta: group %s: no voters", partitionName(p))
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.mu.members[p] = slices.Clone(voters)
	if _, ok := h.mu.groups[p]; ok {
		// Leaving or not, the copy stays as it is: a second RawNode
		// would share its log, and a fresh one would lack entries the
		// leader counts on this node having.
		return nil
	}
	_, closer, err := h.db.Get(groupRecordKey(p))
	if err == nil {
		closer.Close()
	} else if errors.Is(err, pebble.ErrNotFound) {
		b := h.db.NewBatch()
		h.bootstrapGroup(b, p, voters)
		if err := b.Commit(pebble.Sync); err != nil {
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
	if len(voters) == 1 && voters[0] == h.cfg.NodeID && g.hs.GetTerm() <= 1 {
		// A group of one need not wait an election timeout.
		g.mu.Lock()
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

// group returns the group p this host hosts: nil if it has no copy, or
// keeps one only for the grace after its removal (leaving), so that
// requests treat it as a group this host is not in.
func (h *Host) group(p meta.Partition) *group {
	g := h.replica(p)
	if g == nil || g.leaving.Load() {
		return nil
	}
	return g
}

// replica returns this host's copy of group p, hosted or leaving.
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
	Voters   []uint64
	Learners []uint64
}

// Groups lists the groups of this host in partition order. A group this
// node was removed from is not listed, even while its copy is kept for
// Config.RemovedGrace.
func (h *Host) Groups() []Status {
	h.mu.Lock()
	list := slices.Clone(h.mu.list)
	h.mu.Unlock()
	out := make([]Status, 0, len(list))
	for _, g := range list {
		if g.leaving.Load() {
			continue
		}
		g.mu.Lock()
		st := g.rn.Status()
		first, _ := g.ms.FirstIndex()
		g.mu.Unlock()
		out = append(out, Status{
			Partition: g.p,
			Leader:    st.Lead,
			Term:      st.HardState.GetTerm(),
			Applied:   g.applied.Load(),
			LogStart:  first,
			Voters:    sortedIDs(st.Config.Voters.IDs()),
			Learners:  sortedIDs(st.Config.Learners),
		})
	}
	slices.SortFunc(out, func(a, b Status) int { return cmp.Compare(a.Partition, b.Partition) })
	return out
}

func sortedIDs(m map[uint64]struct{}) []uint64 {
	ids := make([]uint64, 0, len(m))
	for id := range m {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// Step hands the host a message batch that peer from sent it. Messages
// for groups it has no copy of, or claiming another sender, are dropped;
// a group kept for the grace after its removal receives its messages.
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
	for _, m := range msgs {
		if m.msg.GetFrom() != from || m.msg.GetTo() != h.cfg.NodeID {
			continue
		}
		g := h.replica(m.p)
		if g == nil {
			continue
		}
		g.mu.Lock()
		err := g.rn.Step(m.msg)
		g.mu.Unlock()
		if err != nil && !errors.Is(err, raft.ErrStepPeerNotFound) {
			h.log.Debug("step", "group", g.name, "from", from, "err", err)
		}
		h.markDirty(g)
	}
	return nil
}

// ReportUnreachable tells the groups led here that messages to peer to
// are being lost, so that they probe it instead of streaming to it.
func (h *Host) ReportUnreachable(to uint64) {
	h.mu.Lock()
	list := slices.Clone(h.mu.list)
	h.mu.Unlock()
	for _, g := range list {
		if g.leader.Load() {
			g.mu.Lock()
			g.rn.ReportUnreachable(to)
			g.mu.Unlock()
		}
	}
}

func (h *Host) markDirty(g *group) {
	h.dirtyMu.Lock()
	h.dirty[g] = struct{}{}
	h.dirtyMu.Unlock()
	select {
	case h.wake <- struct{}{}:
	default:
	}
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
	return gs
}

// Run drives every group until ctx ends or the database fails. It may be
// called once.
func (h *Host) Run(ctx context.Context) error {
	defer h.runOnce.Do(func() { close(h.done) })
	ticker := time.NewTicker(h.cfg.TickInterval)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-h.done:
			return ErrClosed
		case <-ticker.C:
			h.expireRemoved(h.tickAll())
		case <-h.wake:
		}
		if err := h.cycle(); err != nil {
			h.log.Error("raft metadata stopped", "err", err)
			return err
		}
	}
}

// tickAll ticks every group and returns the list of groups it ticked,
// which only the event loop may edit (dropGroup).
func (h *Host) tickAll() []*group {
	h.mu.Lock()
	list := h.mu.list
	h.mu.Unlock()
	for _, g := range list {
		g.mu.Lock()
		g.rn.Tick()
		g.mu.Unlock()
	}
	h.dirtyMu.Lock()
	for _, g := range list {
		h.dirty[g] = struct{}{}
	}
	h.dirtyMu.Unlock()
	return list
}

// Stats counts the work of the event loop: cycles that had a Ready to
// handle, synced writes and writes to the database.
type Stats struct{ Cycles, Syncs, Writes uint64 }

func (h *Host) Stats() Stats {
	return Stats{h.stats.cycles.Load(), h.stats.syncs.Load(), h.stats.writes.Load()}
}

func (h *Host) newID() uint64 { return h.nextID.Add(1) }

// pebbleLogger routes Pebble's log to slog; Pebble's fatal errors panic
// rather than exit the process.
type pebbleLogger struct{ l *slog.Logger }

func (p pebbleLogger) Infof(f string, a ...any)  { p.l.Debug(fmt.Sprintf(f, a...)) }
func (p pebbleLogger) Errorf(f string, a ...any) { p.l.Error(fmt.Sprintf(f, a...)) }
func (p pebbleLogger) Fatalf(f string, a ...any) {
	m := fmt.Sprintf(f, a...)
	p.l.Error(m)
	panic(m)
}

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
