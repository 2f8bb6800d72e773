package raftmeta

import (
	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"go.etcd.io/raft/v3/tracker"
)

// Quiescence. A leader heartbeats every follower of its group every
// HeartbeatTicks, and every replica ticks, whether or not the group is
// used: a node of 2,048 idle groups spent 59% of a core on that. A group
// with nothing to do stops ticking instead, as CockroachDB's ranges do:
//
//   - The leader quiesces at a tick when nothing is in flight: raft has no
//     Ready, everything is committed and applied, every follower has
//     acknowledged the last entry, no read or leadership transfer waits.
//     (A read waiting for its confirmation counts as in flight: raft
//     repeats its heartbeat at every tick until a quorum answers.)
//     Instead of ticking it sends each follower a heartbeat marked with
//     Reject (raft reads only a heartbeat's Commit and Context; the mark
//     means "quiesce"), carrying the commit index the followers hold.
//   - A follower that steps such a heartbeat from the leader it follows, at
//     the leader's term, with nothing of its own in flight and a log that
//     ends at the heartbeat's commit index, quiesces too.
//   - Ticks only drive elections and heartbeats, so a quiesced group keeps
//     stepping messages and handling Readies: quiescence changes when
//     raft's timers run, never what it decides (safety is raft's; reads
//     stay ReadOnlySafe, with no lease on time).
//   - A replica ticks again (wake) on any work of its own (a proposal, a
//     read, a campaign, a transfer, a snapshot report, a request it failed
//     to forward) and on any message but a heartbeat response (the answer
//     to its own quiescing heartbeat). A follower also wakes when its
//     leader's node went unheard for ElectionTicks, and a leader when a
//     quorum of its voters' nodes did: every host sends every peer an
//     empty batch each tick, so a node's silence is seen whatever its
//     groups do. A follower also wakes after maxQuiescedTicks and runs an
//     election timeout as an unquiesced one does, so that a replica
//     removed from its group while cut off comes to ask whether it is
//     still a member (checkReplicas); a leader wakes after as long, and
//     heartbeats, so that one removed while cut off learns it is deposed.
//
// Failing over a quiesced group takes ElectionTicks more than an active
// one: the followers first notice the silence, then time out as raft does.
// Config.Quiesce turns quiescence on; nodes do. It was off until the one
// simulation seed that failed with it (17757375522559235133) was
// explained: a crash that kept an apply batch and lost the log batch
// before it, which quiescence only made likely (loop.go, cycle;
// TestApplyOutlivesItsLogBatch). (Another, 6990802425692535423, was a
// stale replica of a split group that waited for a child that had split
// again: split.go, keeps.) Tests: TestIdleGroupsQuiesce, TestQuiescedGroupFailsOver,
// TestQuiescedFollowerWakesToForward.

// maxQuiescedTicks bounds how long a follower stays quiesced before it
// ticks again for an election timeout (spread by partition).
const maxQuiescedTicks = 600

// wake makes g tick again. Any goroutine.
func (g *group) wake() { g.quiesced.Store(false) }

// heardFrom records that node sent this host something at the current
// tick.
func (h *Host) heardFrom(node uint64) {
	now := h.ticks.Load()
	h.heardMu.Lock()
	h.heard[node] = now
	h.heardMu.Unlock()
}

// silent says whether node went unheard for more than ElectionTicks.
func (h *Host) silent(node, now uint64) bool {
	if node == h.cfg.NodeID {
		return false
	}
	h.heardMu.Lock()
	at, ok := h.heard[node]
	h.heardMu.Unlock()
	return !ok || now-at > uint64(h.cfg.ElectionTicks)
}

// stayQuiesced says whether quiesced g sleeps through tick now, and wakes
// it if not. Event loop only.
func (h *Host) stayQuiesced(g *group, now uint64) bool {
	// A replica of either kind wakes after maxQuiescedTicks at the
	// latest: a node that is heard is not proof that its replica still
	// follows (a leader removed from its group while cut off hears its
	// old voters' nodes, busy with other groups, and would lead alone
	// forever; waking, it heartbeats them, learns the group's term, steps
	// down, and then asks whether it is still a member:
	// clustersim's TestSimulationFound).
	if now-g.quiescedAt.Load() >= maxQuiescedTicks+uint64(g.p)%64 {
		g.wake()
		return false
	}
	if g.leader.Load() {
		voters := g.voterNodes()
		heard := 0
		for _, n := range voters {
			if !h.silent(n, now) {
				heard++
			}
		}
		if heard > len(voters)/2 {
			return true
		}
	} else if lead := g.lead.Load(); lead != 0 && !h.silent(lead, now) {
		return true
	}
	g.wake()
	return false
}

// voterNodes is the nodes of g's voters.
func (g *group) voterNodes() []uint64 {
	if v := g.voters.Load(); v != nil {
		return *v
	}
	return nil
}

// maybeQuiesce, for leader g at a tick (mu held, not yet ticked), marks g
// quiesced and returns the heartbeats that quiesce its followers, by node,
// if g has nothing in flight; else nil, and g ticks. Event loop only.
func (h *Host) maybeQuiesce(g *group, now uint64) map[uint64][]groupMsg {
	if !h.cfg.Quiesce || len(g.pendingReads) > 0 || g.reading.Load() > 0 || g.splitting || g.split.Load() != nil || g.leaving.Load() || g.rn.HasReady() {
		return nil
	}
	st := g.rn.BasicStatus()
	if st.RaftState != raft.StateLeader || st.LeadTransferee != 0 || st.Applied != st.HardState.GetCommit() ||
		g.applied.Load() != st.HardState.GetCommit() || g.lastLog != st.HardState.GetCommit() {
		return nil
	}
	commit := st.HardState.GetCommit()
	ok := true
	var to []uint64
	g.rn.WithProgress(func(id uint64, _ raft.ProgressType, pr tracker.Progress) {
		if id == g.self.id {
			return
		}
		if pr.Match != commit || pr.Next != commit+1 || pr.State != tracker.StateReplicate {
			ok = false
		}
		to = append(to, id)
	})
	if !ok {
		return nil
	}
	out := make(map[uint64][]groupMsg, len(to))
	for _, id := range to {
		r, known := g.route(id)
		if !known {
			return nil
		}
		out[r.node] = append(out[r.node], groupMsg{p: g.p, fromGen: g.self.gen, toGen: r.gen, msg: &raftpb.Message{
			Type: raftpb.MsgHeartbeat.Enum(), To: new(id), From: new(g.self.id), Term: new(st.HardState.GetTerm()),
			Commit: new(commit), Reject: new(true),
		}})
	}
	g.quiesced.Store(true)
	g.quiescedAt.Store(now)
	return out
}

// isQuiesce says whether m is a leader's quiescing heartbeat.
func isQuiesce(m *raftpb.Message) bool {
	return m.GetType() == raftpb.MsgHeartbeat && m.GetReject()
}

// afterStep quiesces or wakes g after it stepped m (mu held): a follower
// quiesces on its leader's quiescing heartbeat, and any message but a
// heartbeat response wakes a replica otherwise. settled says that g had
// nothing to persist, send or apply before m. A follower quiesces only if
// it holds exactly the log the heartbeat says is committed: a heartbeat
// duplicated and delivered late, after entries it did not count, must not
// leave the follower asleep short of the leader's commit (simulation seed
// 17757375522559235133).
func (h *Host) afterStep(g *group, m *raftpb.Message, settled bool) {
	switch {
	case isQuiesce(m):
		st := g.rn.BasicStatus()
		last, err := g.ms.LastIndex()
		if h.cfg.Quiesce && settled && err == nil && last == m.GetCommit() &&
			st.RaftState == raft.StateFollower && st.Lead == m.GetFrom() &&
			st.HardState.GetTerm() == m.GetTerm() && st.HardState.GetCommit() == m.GetCommit() {
			g.quiescedAt.Store(h.ticks.Load())
			g.quiesced.Store(true)
			return
		}
		g.wake()
	case m.GetType() == raftpb.MsgHeartbeatResp:
	default:
		g.wake()
	}
}

// Quiesced counts the groups hosted here that are quiesced now.
func (h *Host) Quiesced() int {
	n := 0
	for _, g := range h.groupList() {
		if g.quiesced.Load() {
			n++
		}
	}
	return n
}
