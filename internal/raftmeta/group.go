package raftmeta

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/cockroachdb/pebble/v2"
	"github.com/redoubt-io/redoubt/internal/meta"
	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// group is one Raft group: one partition's replica on this host.
type group struct {
	p    meta.Partition
	h    *Host
	name string

	// mu guards rn and ms: the event loop and the goroutines that step,
	// propose and read take it for short, non-blocking sections.
	mu sync.Mutex
	rn *raft.RawNode
	ms *raft.MemoryStorage

	// Written by the event loop only.
	cs           *raftpb.ConfState // as of applied
	hs           *raftpb.HardState // last persisted
	lastLog      uint64            // last persisted log index
	base         uint64            // log base (last discarded index)
	pendingReads []pendingRead
	// retired: this group object is done with (its copy was deleted, or
	// it was loaded again after a failure); a Ready caused by a late Step
	// is not handled. Written under mu, by the event loop only.
	retired bool
	// failures counts the failures since the group last ran well for as
	// long as its back-off; retryTicks counts down the ticks before a
	// quarantined group is loaded again; healthyTicks counts the ticks
	// since it was.
	failures, retryTicks, healthyTicks int
	// graceTicks counts down the ticks left before a leaving group is
	// dropped.
	graceTicks int

	// Published for readers on other goroutines.
	lead    atomic.Uint64
	leader  atomic.Bool
	term    atomic.Uint64
	applied atomic.Uint64
	voters  atomic.Pointer[[]uint64]
	// leaving: the applied configuration leaves this node out. The
	// group still steps messages and applies entries, in case a later
	// change adds the node back, but is not hosted: Groups omits it and
	// requests for it are routed as for a group this host is not in.
	leaving atomic.Bool
	// quarantined: the group failed (groupFailed) and waits to be loaded
	// again from its durable state; it is neither ticked, stepped nor
	// served meanwhile.
	quarantined atomic.Bool
	// snapErr is set by makeSnapshot, which raft calls where it cannot
	// return an error, for the event loop to stop the group.
	snapErr atomic.Pointer[error]
}

type pendingRead struct{ index, id uint64 }

// storage is the raft.Storage of a group: the log in memory (its durable
// copy is in Pebble), and snapshots made on demand from the group's data.
type storage struct {
	*raft.MemoryStorage
	g *group
}

// Snapshot returns the group's data as of its applied index, read from
// one Pebble snapshot so that data, index and ConfState agree.
// Raft panics on any error but ErrSnapshotTemporarilyUnavailable: a
// failure is recorded for the event loop, which stops the group
// (checkSnapshots), and raft is told to try later.
func (s storage) Snapshot() (*raftpb.Snapshot, error) {
	snap, err := s.g.h.makeSnapshot(s.g)
	if err != nil {
		s.g.snapErr.Store(&err)
		s.g.h.markDirty(s.g)
		return nil, raft.ErrSnapshotTemporarilyUnavailable
	}
	return snap, nil
}

func (h *Host) makeSnapshot(g *group) (*raftpb.Snapshot, error) {
	if h.faults != nil {
		if err := h.faults("snapshot", g.p); err != nil {
			return nil, err
		}
	}
	snap := h.db.NewSnapshot()
	defer snap.Close()
	v, closer, err := snap.Get(groupKey(g.p, kindApply))
	if err != nil {
		return nil, fmt.Errorf("raftmeta: snapshot of %s: %w", g.name, err)
	}
	applied, cs, err := decodeApplyState(v)
	closer.Close()
	if err != nil {
		return nil, err
	}
	term, err := g.ms.Term(applied)
	if err != nil {
		return nil, fmt.Errorf("raftmeta: snapshot of %s at %d: %w", g.name, applied, err)
	}
	lower, upper := dataBounds(g.p, nil, nil)
	it, err := snap.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	data := []byte{formatVersion}
	var body []byte
	n := 0
	for ok := it.First(); ok; ok = it.Next() {
		v, err := it.ValueAndErr()
		if err != nil {
			return nil, err
		}
		rev, val, err := decodeItem(v)
		if err != nil {
			return nil, err
		}
		body = appendBytes(body, it.Key()[dataKeyHeader:])
		body = binary.AppendUvarint(body, rev)
		body = appendBytes(body, val)
		n++
	}
	if err := it.Error(); err != nil {
		return nil, err
	}
	data = binary.AppendUvarint(data, uint64(n))
	data = append(data, body...)
	return &raftpb.Snapshot{
		Data:     data,
		Metadata: &raftpb.SnapshotMetadata{Index: new(applied), Term: new(term), ConfState: cs},
	}, nil
}

func encodeApplyState(applied uint64, cs *raftpb.ConfState) []byte {
	raw, err := proto.Marshal(cs)
	if err != nil {
		panic(fmt.Sprintf("raftmeta: marshal ConfState: %v", err)) // a bug: ConfState always marshals
	}
	b := append([]byte{formatVersion}, binary.BigEndian.AppendUint64(nil, applied)...)
	return append(b, raw...)
}

func decodeApplyState(b []byte) (uint64, *raftpb.ConfState, error) {
	if len(b) < 9 || b[0] != formatVersion {
		return 0, nil, corrupt("apply state")
	}
	cs := &raftpb.ConfState{}
	if err := proto.Unmarshal(b[9:], cs); err != nil {
		return 0, nil, fmt.Errorf("%w: ConfState: %v", ErrCorrupt, err)
	}
	return binary.BigEndian.Uint64(b[1:9]), cs, nil
}

func encodeBase(index, term uint64) []byte {
	b := []byte{formatVersion}
	b = binary.BigEndian.AppendUint64(b, index)
	return binary.BigEndian.AppendUint64(b, term)
}

func decodeBase(b []byte) (index, term uint64, err error) {
	r := reader{b: b}
	r.version()
	index, term = r.u64("base index"), r.u64("base term")
	return index, term, r.end()
}

// confMembers lists every node of cs, voter or learner.
func confMembers(cs *raftpb.ConfState) []uint64 {
	var ids []uint64
	for _, l := range [][]uint64{cs.GetVoters(), cs.GetVotersOutgoing(), cs.GetLearners(), cs.GetLearnersNext()} {
		ids = append(ids, l...)
	}
	slices.Sort(ids)
	return slices.Compact(ids)
}

// outOf reports whether cs leaves node id out of a group it has members
// in. A group with no members at all is a copy waiting for its leader to
// add this node (see bootstrapGroup), not one it was removed from. It
// runs after every Ready, so it allocates nothing.
func outOf(cs *raftpb.ConfState, id uint64) bool {
	members := false
	for _, l := range [...][]uint64{cs.GetVoters(), cs.GetVotersOutgoing(), cs.GetLearners(), cs.GetLearnersNext()} {
		if slices.Contains(l, id) {
			return false
		}
		members = members || len(l) > 0
	}
	return members
}

// graceTicks is Config.RemovedGrace in ticks, rounded up.
func (h *Host) graceTicks() int {
	return int((h.cfg.RemovedGrace + h.cfg.TickInterval - 1) / h.cfg.TickInterval)
}

// checkMembership brings g's leaving state in line with its applied
// configuration, after a Ready that may have changed it (a configuration
// change or a snapshot): a node left out starts its grace, a node added
// back during its grace keeps the group. Event loop only.
func (h *Host) checkMembership(g *group) {
	out := outOf(g.cs, h.cfg.NodeID)
	switch {
	case out && !g.leaving.Load():
		g.graceTicks = h.graceTicks()
		g.leaving.Store(true)
		h.log.Info("removed from group; its copy is kept for the grace", "group", g.name, "grace", h.cfg.RemovedGrace)
	case !out && g.leaving.Load():
		g.graceTicks = 0
		g.leaving.Store(false)
		h.log.Info("added back to group within the grace", "group", g.name)
	}
}

// expireRemoved counts one tick off the grace of the leaving groups in
// list and drops those whose grace ran out while their applied
// configuration still leaves this node out. Event loop only, between
// cycles.
func (h *Host) expireRemoved(list []*group) {
	var drop []*group
	for _, g := range list {
		if !g.leaving.Load() {
			continue
		}
		if g.graceTicks--; g.graceTicks > 0 {
			continue
		}
		if h.checkMembership(g); g.leaving.Load() {
			drop = append(drop, g)
		}
	}
	// Dropping edits the group list: not while iterating over it.
	for _, g := range drop {
		h.dropGroup(g)
	}
}

// bootstrapGroup writes the initial state of a new group: an empty log
// whose base is entry 1 of term 1, holding the initial voters, so that
// every initial member starts identical without replicating anything.
// A node outside voters starts empty and waits for the leader's snapshot.
func (h *Host) bootstrapGroup(b *pebble.Batch, p meta.Partition, voters []uint64) {
	b.Set(groupRecordKey(p), []byte{formatVersion}, nil)
	if !slices.Contains(voters, h.cfg.NodeID) {
		b.Set(groupKey(p, kindApply), encodeApplyState(0, &raftpb.ConfState{}), nil)
		b.Set(groupKey(p, kindBase), encodeBase(0, 0), nil)
		return
	}
	cs := &raftpb.ConfState{Voters: slices.Clone(voters)}
	b.Set(groupKey(p, kindApply), encodeApplyState(1, cs), nil)
	b.Set(groupKey(p, kindBase), encodeBase(1, 1), nil)
	hs, _ := proto.Marshal(&raftpb.HardState{Term: new(uint64(1)), Commit: new(uint64(1))})
	b.Set(groupKey(p, kindHard), hs, nil)
}

// loadGroup reads group p from Pebble and starts its RawNode.
func (h *Host) loadGroup(p meta.Partition) (*group, error) {
	g := &group{p: p, h: h, name: partitionName(p)}
	get := func(kind byte) ([]byte, error) {
		v, closer, err := h.db.Get(groupKey(p, kind))
		if errors.Is(err, pebble.ErrNotFound) {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		defer closer.Close()
		return bytes.Clone(v), nil
	}
	av, err := get(kindApply)
	if err != nil {
		return nil, err
	}
	applied, cs, err := decodeApplyState(av)
	if err != nil {
		return nil, fmt.Errorf("raftmeta: group %s: %w", g.name, err)
	}
	bv, err := get(kindBase)
	if err != nil {
		return nil, err
	}
	base, baseTerm, err := decodeBase(bv)
	if err != nil {
		return nil, fmt.Errorf("raftmeta: group %s: %w", g.name, err)
	}
	hs := &raftpb.HardState{}
	if hv, err := get(kindHard); err != nil {
		return nil, err
	} else if hv != nil {
		if err := proto.Unmarshal(hv, hs); err != nil {
			return nil, fmt.Errorf("raftmeta: group %s: %w: HardState: %v", g.name, ErrCorrupt, err)
		}
	}
	g.ms = raft.NewMemoryStorage()
	// The ConfState given to raft is the one as of applied: entries up to
	// applied are not applied again, so their configuration changes must
	// already be in it.
	if err := g.ms.ApplySnapshot(&raftpb.Snapshot{Metadata: &raftpb.SnapshotMetadata{
		Index: new(base), Term: new(baseTerm), ConfState: cs,
	}}); err != nil {
		return nil, err
	}
	it, err := h.db.NewIter(&pebble.IterOptions{LowerBound: logKey(p, base+1), UpperBound: logKey(p, 1<<64-1)})
	if err != nil {
		return nil, err
	}
	var ents []*raftpb.Entry
	for ok := it.First(); ok; ok = it.Next() {
		e := &raftpb.Entry{}
		if err := proto.Unmarshal(it.Value(), e); err != nil {
			it.Close()
			return nil, fmt.Errorf("raftmeta: group %s: %w: entry: %v", g.name, ErrCorrupt, err)
		}
		if want := base + 1 + uint64(len(ents)); e.GetIndex() != want {
			it.Close()
			return nil, fmt.Errorf("raftmeta: group %s: %w: entry %d where %d belongs", g.name, ErrCorrupt, e.GetIndex(), want)
		}
		ents = append(ents, e)
	}
	if err := it.Close(); err != nil {
		return nil, err
	}
	if err := g.ms.Append(ents); err != nil {
		return nil, err
	}
	if applied > hs.GetCommit() {
		// Cannot happen with Pebble's ordered WAL; raft would panic on it.
		return nil, fmt.Errorf("raftmeta: group %s: %w: applied %d beyond commit %d", g.name, ErrCorrupt, applied, hs.GetCommit())
	}
	if !raft.IsEmptyHardState(hs) {
		if err := g.ms.SetHardState(hs); err != nil {
			return nil, err
		}
	}
	g.cs, g.hs, g.base = cs, hs, base
	g.lastLog = base + uint64(len(ents))
	g.applied.Store(applied)
	g.term.Store(hs.GetTerm())
	voters := slices.Clone(cs.GetVoters())
	g.voters.Store(&voters)
	if outOf(cs, h.cfg.NodeID) {
		// Removed before a restart: a fresh grace, since the change that
		// adds it back may be among the entries it has yet to learn.
		g.graceTicks = h.graceTicks()
		g.leaving.Store(true)
		h.log.Info("restarting a group this node was removed from; its copy is kept for the grace", "group", g.name, "grace", h.cfg.RemovedGrace)
	}
	rn, err := raft.NewRawNode(&raft.Config{
		ID:                        h.cfg.NodeID,
		ElectionTick:              h.cfg.ElectionTicks,
		HeartbeatTick:             h.cfg.HeartbeatTicks,
		Storage:                   storage{g.ms, g},
		Applied:                   applied,
		MaxSizePerMsg:             uint64(h.cfg.MaxMessage),
		MaxCommittedSizePerReady:  uint64(4 * h.cfg.MaxMessage),
		MaxUncommittedEntriesSize: uint64(64 * h.cfg.MaxMessage),
		MaxInflightMsgs:           h.cfg.MaxInflight,
		CheckQuorum:               true,
		PreVote:                   true,
		ReadOnlyOption:            raft.ReadOnlySafe,
		StepDownOnRemoval:         true, // a removed leader stops leading at once
		Logger:                    slogRaft{h.log.With("group", g.name)},
	})
	if err != nil {
		return nil, fmt.Errorf("raftmeta: group %s: %w", g.name, err)
	}
	g.rn = rn
	return g, nil
}

func partitionName(p meta.Partition) string {
	if p == meta.System {
		return "system"
	}
	return fmt.Sprint(uint32(p))
}
