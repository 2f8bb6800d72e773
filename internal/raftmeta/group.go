package raftmeta

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/cockroachdb/pebble/v2"
	"github.com/redoubt-io/redoubt/internal/meta"
	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// group is one Raft group: this host's replica of one partition.
type group struct {
	p    meta.Partition
	h    *Host
	name string
	// self is this replica: its Raft ID and generation in the group.
	self replica

	// mu guards rn, ms and peers: the event loop and the goroutines that
	// step, propose and read take it for short, non-blocking sections.
	mu sync.Mutex
	rn *raft.RawNode
	ms *raft.MemoryStorage
	// peers holds the replicas this replica heard from that its replica
	// set does not name (it has not applied their addition, or has no
	// configuration yet): their node and generation, to answer them.
	peers map[uint64]replica

	// Written by the event loop only.
	cs           *raftpb.ConfState // as of applied
	hs           *raftpb.HardState // last persisted
	lastLog      uint64            // last persisted log index
	base         uint64            // log base (last discarded index)
	pendingReads []pendingRead
	tail         []byte // the apply state's encoding after the index (applyTail)
	// retired: this group object is done with (its replica was deleted
	// or replaced, or it was loaded again after a failure); a Ready
	// caused by a late Step is not handled. Written under mu.
	retired bool
	// splitting: the tables of the group's children are being written
	// (finishSplit).
	splitting bool
	// failures counts the failures since the group last ran well for as
	// long as its back-off; retryTicks counts down the ticks before a
	// quarantined group is loaded again; healthyTicks counts the ticks
	// since it was.
	failures, retryTicks, healthyTicks int

	// Published for readers on other goroutines.
	lead    atomic.Uint64 // the leader's node; 0 when unknown
	leader  atomic.Bool
	term    atomic.Uint64
	applied atomic.Uint64
	// applying is the index the data will be at once the batch being
	// committed is (applied or a snapshot's): stored before the batch is
	// committed, it bounds from above what a read of the data sees, as
	// applied, stored after, bounds it from below.
	applying atomic.Uint64
	// hot holds the group's keys read with meta.Read.Hot; every write of
	// its data is bracketed by hot.BeginWrite and hot.EndWrite.
	hot meta.HotKeys
	// gone: the replica's data is being deleted (removeReplica,
	// makeReplica): reads of it through this group object are refused
	// (TestGetManyOfADeletedReplicaIsRefused).
	gone   atomic.Bool
	voters atomic.Pointer[[]uint64] // nodes
	// set is the replica set as of applied: stored under mu together
	// with raft's configuration, so that a proposer holding mu sees both
	// alike.
	set atomic.Pointer[replicaSet]
	// leaving: the applied configuration leaves this replica out. It is
	// deleted at the next turn of the event loop (deleteRemoved), unless
	// it came from before replicas had their own IDs and its log adds its
	// ID back. Meanwhile it is not hosted: Groups omits it and requests
	// are routed as for a group this host is not in.
	leaving atomic.Bool
	// quiet counts the ticks since this replica last heard from a leader
	// (an append, heartbeat or snapshot) or was one; a replica quiet for
	// long asks whether it is still a member (checkReplicas).
	quiet atomic.Int64
	// quiesced: the group does not tick (quiesce.go); quiescedAt is the
	// host's tick when it last quiesced.
	quiesced   atomic.Bool
	quiescedAt atomic.Uint64
	// reading counts the reads waiting for raft to confirm them at this
	// replica (readIndexAll).
	reading atomic.Int32
	// quarantined: the group failed (groupFailed) and waits to be loaded
	// again from its durable state; it is neither ticked, stepped nor
	// served meanwhile.
	quarantined atomic.Bool
	// split is set once the replica applied a split of the group
	// (split.go): it serves nothing more, and its data, frozen, waits to
	// be made into the children.
	split atomic.Pointer[splitRec]
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

// Snapshot returns a snapshot of the group as of its applied index, made
// from one Pebble snapshot so that data, index and ConfState agree; its
// items are streamed (see snapstream.go).
// Raft panics on any error but ErrSnapshotTemporarilyUnavailable: a
// failure is recorded for the event loop, which stops the group
// (checkSnapshots), and raft is told to try later.
func (s storage) Snapshot() (*raftpb.Snapshot, error) {
	if s.g.split.Load() != nil {
		// A group that split sends no snapshots: a replica behind it gets
		// its children's (split.go).
		return nil, raft.ErrSnapshotTemporarilyUnavailable
	}
	snap, err := s.g.h.makeSnapshot(s.g)
	if err != nil {
		s.g.snapErr.Store(&err)
		s.g.h.markDirty(s.g)
		return nil, raft.ErrSnapshotTemporarilyUnavailable
	}
	return snap, nil
}

// The apply state is written with the entries it covers: the applied
// index, and the configuration and replica set as of it.
//
//	version(2) applied(8) len replicaSet ConfState(protobuf)
//
// Version 1 has no replica set: applied(8) ConfState.
const applyVersion = 2

// applyTail encodes the part of the apply state after the index; a group
// keeps it between configuration changes (group.tail).
func applyTail(cs *raftpb.ConfState, set *replicaSet) []byte {
	raw, err := proto.Marshal(cs)
	if err != nil {
		panic(fmt.Sprintf("raftmeta: marshal ConfState: %v", err)) // a bug: ConfState always marshals
	}
	return append(appendBytes(nil, appendReplicaSet(nil, set)), raw...)
}

func encodeApplyState(applied uint64, tail []byte) []byte {
	b := make([]byte, 0, 9+len(tail))
	b = append(b, applyVersion)
	b = binary.BigEndian.AppendUint64(b, applied)
	return append(b, tail...)
}

// decodeApplyState returns the applied index and configuration of an
// apply state.
func decodeApplyState(b []byte) (uint64, *raftpb.ConfState, error) {
	applied, cs, _, err := decodeApplyStateSet(b)
	return applied, cs, err
}

// decodeApplyStateSet is decodeApplyState with the replica set.
func decodeApplyStateSet(b []byte) (uint64, *raftpb.ConfState, *replicaSet, error) {
	if len(b) < 9 || (b[0] != formatVersion && b[0] != applyVersion) {
		return 0, nil, nil, corrupt("apply state")
	}
	applied, rest := binary.BigEndian.Uint64(b[1:9]), b[9:]
	var set *replicaSet
	if b[0] == applyVersion {
		r := reader{b: rest}
		sr := reader{b: r.bytes("replica set")}
		set = sr.replicaSet()
		if err := sr.end(); err != nil {
			return 0, nil, nil, err
		}
		if r.err != nil {
			return 0, nil, nil, r.err
		}
		rest = r.b
	}
	cs := &raftpb.ConfState{}
	if err := proto.Unmarshal(rest, cs); err != nil {
		return 0, nil, nil, fmt.Errorf("%w: ConfState: %v", ErrCorrupt, err)
	}
	if set == nil {
		set = legacySet(cs)
	}
	return applied, cs, set, nil
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

// confMembers lists every replica of cs, voter or learner, in order.
func confMembers(cs *raftpb.ConfState) []uint64 {
	var ids []uint64
	for _, l := range [][]uint64{cs.GetVoters(), cs.GetVotersOutgoing(), cs.GetLearners(), cs.GetLearnersNext()} {
		ids = append(ids, l...)
	}
	slices.Sort(ids)
	return slices.Compact(ids)
}

// checkMembership brings g's leaving state in line with its applied
// configuration, after a Ready that may have changed it (a configuration
// change or a snapshot) or a load: a replica that applied its own
// removal is deleted (see leaving). Event loop only.
func (h *Host) checkMembership(g *group) {
	switch {
	case !outOf(g.cs, g.self.id):
		if g.leaving.Swap(false) {
			h.log.Info("added back to group", "group", g.name, "replica", g.self.id)
		}
	case g.leaving.Load():
	default:
		g.leaving.Store(true)
		if readdedInLog(g) {
			h.log.Info("removed from group, and added back in its log", "group", g.name, "replica", g.self.id)
			return
		}
		h.deleteReplica(g, "it applied its own removal")
	}
}

// readdedInLog says whether g's log, past its applied index, adds g's
// own ID back. Only a replica from before replicas had their own IDs
// can see that (its ID is its node's, which such a group gave again to
// the node added back); it then keeps its state, which the leader may
// count on, and applies the addition in time.
func readdedInLog(g *group) bool {
	if g.self.gen > 0 {
		return false // an ID is never given twice
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	first := g.applied.Load() + 1
	last, err := g.ms.LastIndex()
	if err != nil || last < first {
		return false
	}
	if fi, _ := g.ms.FirstIndex(); first < fi {
		first = fi
	}
	ents, err := g.ms.Entries(first, last+1, math.MaxUint64)
	if err != nil {
		return true // cannot tell: keep it, checkReplicas decides
	}
	for _, e := range ents {
		if t := e.GetType(); t != raftpb.EntryConfChange && t != raftpb.EntryConfChangeV2 {
			continue
		}
		cc, _, err := decodeConfChange(e)
		if err != nil {
			continue
		}
		for _, c := range cc.AsV2().GetChanges() {
			if c.GetNodeId() == g.self.id && c.GetType() != raftpb.ConfChangeType_ConfChangeRemoveNode {
				return true
			}
		}
	}
	return false
}

// bootstrapGroup writes the initial state of a new group whose initial
// voters include this node: an empty log whose base is entry 1 of term 1,
// holding the initial voters, so that every initial member starts
// identical without replicating anything. This node's replica is
// generation 0, with its node ID as Raft ID.
func (h *Host) bootstrapGroup(b *pebble.Batch, p meta.Partition, voters []uint64) {
	b.Set(groupRecordKey(p), encodeGroupRecord(replica{id: h.cfg.NodeID, node: h.cfg.NodeID}), nil)
	set := initialSet(voters)
	cs := &raftpb.ConfState{Voters: set.ids()}
	b.Set(groupKey(p, kindApply), encodeApplyState(1, applyTail(cs, set)), nil)
	b.Set(groupKey(p, kindBase), encodeBase(1, 1), nil)
	hs, _ := proto.Marshal(&raftpb.HardState{Term: new(uint64(1)), Commit: new(uint64(1))})
	b.Set(groupKey(p, kindHard), hs, nil)
}

// emptyReplica writes the state of a replica r of group p that this host
// learned of from a message: an empty log and no configuration, waiting
// for the leader's snapshot.
func emptyReplica(b *pebble.Batch, p meta.Partition, r replica) {
	b.Set(groupRecordKey(p), encodeGroupRecord(r), nil)
	b.Set(groupKey(p, kindApply), encodeApplyState(0, applyTail(&raftpb.ConfState{}, &replicaSet{})), nil)
	b.Set(groupKey(p, kindBase), encodeBase(0, 0), nil)
}

// loadGroup reads group p from Pebble and starts its RawNode.
func (h *Host) loadGroup(p meta.Partition) (*group, error) {
	g := &group{p: p, h: h, name: partitionName(p), peers: map[uint64]replica{}}
	rv, closer, err := h.db.Get(groupRecordKey(p))
	if err != nil {
		return nil, fmt.Errorf("raftmeta: group %s: record: %w", g.name, err)
	}
	g.self, err = decodeGroupRecord(rv, h.cfg.NodeID)
	closer.Close()
	if err != nil {
		return nil, fmt.Errorf("raftmeta: group %s: %w", g.name, err)
	}
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
	applied, cs, set, err := decodeApplyStateSet(av)
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
	if last := base + uint64(len(ents)); applied > hs.GetCommit() && applied <= last && !raft.IsEmptyHardState(hs) {
		// A crash kept an apply batch and lost the log batch with the
		// commit before it, as builds before the apply batch carried the
		// hard state could leave it (loop.go, cycle). What was applied
		// was committed, and the log holds it: commit it here again
		// (TestAppliedBeyondCommitLoads).
		h.log.Warn("raising a replica's commit to its applied index, which a crash left beyond it",
			"group", g.name, "commit", hs.GetCommit(), "applied", applied, "last", last)
		hs.Commit = new(applied)
	}
	if applied < base {
		// A log compacted past what was applied: the entries between are
		// neither in the log nor in the state (compact syncs the apply
		// state first; TestCompactionFollowsDurableApply). Raft would
		// panic: the replica is quarantined instead, the other groups
		// serve (TestAppliedBehindBaseQuarantined).
		return nil, fmt.Errorf("raftmeta: group %s: %w: applied %d behind the log's base %d", g.name, ErrCorrupt, applied, base)
	}
	if applied > hs.GetCommit() {
		// Applied state without the log beneath it: raft would panic.
		return nil, fmt.Errorf("raftmeta: group %s: %w: applied %d beyond commit %d", g.name, ErrCorrupt, applied, hs.GetCommit())
	}
	if !raft.IsEmptyHardState(hs) {
		if err := g.ms.SetHardState(hs); err != nil {
			return nil, err
		}
	}
	g.hs, g.base = hs, base
	g.lastLog = base + uint64(len(ents))
	g.applied.Store(applied)
	g.applying.Store(applied)
	g.term.Store(hs.GetTerm())
	g.publishSet(cs, set)
	rn, err := raft.NewRawNode(&raft.Config{
		ID:                        g.self.id,
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

// publishSet makes cs and set the group's configuration and replica set,
// as of its applied index. Event loop only, with mu held once the group
// runs.
func (g *group) publishSet(cs *raftpb.ConfState, set *replicaSet) {
	g.cs = cs
	g.tail = applyTail(cs, set)
	g.set.Store(set)
	voters := set.nodes(cs.GetVoters())
	g.voters.Store(&voters)
}

// route returns the replica with Raft ID id, as g knows it: from its
// replica set, or as heard from. mu is held.
func (g *group) route(id uint64) (replica, bool) {
	if r, ok := g.set.Load().get(id); ok {
		return r, true
	}
	r, ok := g.peers[id]
	return r, ok
}

// learn records that replica id of generation gen, on node, sent g a
// message, and says whether g accepts it: a member of g's set must come
// from its own node. mu is held.
func (g *group) learn(id, node, gen uint64) bool {
	if r, ok := g.set.Load().get(id); ok {
		return r.node == node
	}
	if r, ok := g.peers[id]; !ok || r.node != node || r.gen != gen {
		if len(g.peers) >= maxPeers {
			clear(g.peers)
		}
		g.peers[id] = replica{id: id, node: node, gen: gen}
	}
	return true
}

// maxPeers bounds what a replica remembers of replicas outside its set.
const maxPeers = 64

func partitionName(p meta.Partition) string {
	if p == meta.System {
		return "system"
	}
	return fmt.Sprint(uint32(p))
}
