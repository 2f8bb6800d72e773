package raftmeta

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"slices"

	"github.com/redoubt-io/redoubt/internal/meta"
	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"go.etcd.io/raft/v3/tracker"
	"google.golang.org/protobuf/proto"
)

// ErrNotLeader is returned by Progress for a group this host hosts but
// does not lead: only the leader tracks how far its members got.
var ErrNotLeader = errors.New("raftmeta: not the group's leader")

// Progress is how far the members of a group got, as its leader sees it.
type Progress struct {
	Partition meta.Partition
	Term      uint64
	// Commit is the leader's commit index.
	Commit uint64
	// LogStart is the first index still in the leader's log; a member
	// that needs an earlier entry gets a snapshot instead.
	LogStart uint64
	// Members lists voters and learners by node.
	Members []MemberProgress
}

// MemberProgress is one member of a group, as its leader sees it.
type MemberProgress struct {
	ID      uint64
	Learner bool
	// Match is the highest log index the member has acknowledged.
	Match uint64
	// Active says the leader heard from the member since its last quorum
	// check, at most one election timeout ago (raft's RecentActive); the
	// leader itself always is. A live member can read false for the short
	// while between the check and its answer to the next heartbeat, so
	// Active false alone does not prove a member dead.
	Active bool
	// Snapshot says the leader is sending the member a snapshot: it
	// needs entries the leader's log no longer holds, so until the
	// snapshot is in it holds none of the group's recent state.
	Snapshot bool
	// AddedAt, for a learner, is the index of the log entry that made it
	// a learner, or LogStart-1 when that entry is no longer in the log
	// (it was then added at or before that index). 0 for voters.
	AddedAt uint64
}

// Member returns the member with the given ID.
func (p Progress) Member(id uint64) (MemberProgress, bool) {
	for _, m := range p.Members {
		if m.ID == id {
			return m, true
		}
	}
	return MemberProgress{}, false
}

// Progress returns the replication progress of group p, which this host
// must lead: ErrNoGroup if it does not host p, ErrNotLeader if another
// member leads it.
func (h *Host) Progress(p meta.Partition) (Progress, error) {
	g := h.group(p)
	if g == nil {
		return Progress{}, fmt.Errorf("%w: %s", ErrNoGroup, partitionName(p))
	}
	out := Progress{Partition: p}
	var confEnts []*raftpb.Entry
	g.mu.Lock()
	st := g.rn.BasicStatus()
	if st.RaftState != raft.StateLeader {
		g.mu.Unlock()
		return Progress{}, fmt.Errorf("%w: %s", ErrNotLeader, partitionName(p))
	}
	out.Term, out.Commit = st.HardState.GetTerm(), st.HardState.GetCommit()
	learners := false
	set := g.set.Load()
	var ids []uint64 // Raft IDs of out.Members
	g.rn.WithProgress(func(id uint64, typ raft.ProgressType, pr tracker.Progress) {
		r, ok := set.get(id)
		if !ok {
			return // cannot be: raft's configuration is the set's
		}
		m := MemberProgress{ID: r.node, Learner: typ == raft.ProgressTypeLearner, Match: pr.Match,
			Active: pr.RecentActive || id == g.self.id, Snapshot: pr.State == tracker.StateSnapshot}
		learners = learners || m.Learner
		out.Members = append(out.Members, m)
		ids = append(ids, id)
	})
	out.LogStart, _ = g.ms.FirstIndex()
	if learners {
		// Only the configuration changes are kept: the entries themselves
		// are not modified once in the log, so they are decoded after the
		// lock is released.
		last, _ := g.ms.LastIndex()
		if ents, err := g.ms.Entries(out.LogStart, last+1, math.MaxUint64); err == nil {
			for _, e := range ents {
				if t := e.GetType(); t == raftpb.EntryConfChange || t == raftpb.EntryConfChangeV2 {
					confEnts = append(confEnts, e)
				}
			}
		}
	}
	g.mu.Unlock()

	if learners {
		// By Raft ID: a node added, removed and added again is a new
		// replica, added by the last change.
		added := learnersAddedAt(confEnts)
		for i := range out.Members {
			m := &out.Members[i]
			if !m.Learner {
				continue
			}
			m.AddedAt = added[ids[i]]
			if m.AddedAt == 0 && out.LogStart > 0 {
				m.AddedAt = out.LogStart - 1
			}
		}
	}
	slices.SortFunc(out.Members, func(a, b MemberProgress) int { return cmp.Compare(a.ID, b.ID) })
	return out, nil
}

// learnersAddedAt maps each replica (Raft ID) that ents (configuration
// change entries in log order) make a learner to the index of the last
// entry doing so.
// Entries that do not decode are skipped: they change nothing either.
func learnersAddedAt(ents []*raftpb.Entry) map[uint64]uint64 {
	out := map[uint64]uint64{}
	for _, e := range ents {
		var changes []*raftpb.ConfChangeSingle
		if e.GetType() == raftpb.EntryConfChange {
			cc := &raftpb.ConfChange{}
			if proto.Unmarshal(e.GetData(), cc) != nil {
				continue
			}
			changes = cc.AsV2().GetChanges()
		} else {
			cc := &raftpb.ConfChangeV2{}
			if proto.Unmarshal(e.GetData(), cc) != nil {
				continue
			}
			changes = cc.GetChanges()
		}
		for _, c := range changes {
			if c.GetType() == raftpb.ConfChangeType_ConfChangeAddLearnerNode {
				out[c.GetNodeId()] = e.GetIndex()
			}
		}
	}
	return out
}

// TransferLeader asks this host, leader of group p, to hand the lead to
// member to: raft brings to up to date, then has it start an election at
// once, so the group is without a leader for a round trip rather than for
// an election timeout. It returns without waiting; a transfer that does
// not complete within an election timeout is abandoned, and proposals
// made meanwhile are refused (callers retry them at the new leader).
func (h *Host) TransferLeader(p meta.Partition, to uint64) error {
	g := h.group(p)
	if g == nil {
		return fmt.Errorf("%w: %s", ErrNoGroup, partitionName(p))
	}
	g.mu.Lock()
	if g.rn.BasicStatus().RaftState != raft.StateLeader {
		g.mu.Unlock()
		return fmt.Errorf("%w: %s", ErrNotLeader, partitionName(p))
	}
	r, ok := g.set.Load().ofNode(to)
	if !ok {
		g.mu.Unlock()
		return fmt.Errorf("raftmeta: node %d is no member of %s", to, partitionName(p))
	}
	g.wake()
	g.rn.TransferLeader(r.id)
	g.mu.Unlock()
	h.markDirty(g)
	return nil
}
