package raftmeta

import (
	"math"
	"slices"
	"time"

	"github.com/redoubt-io/redoubt/internal/meta"
)

// A failure of one group (groupFailed) stops that group only. Its copy
// on disk is what it had made durable, which is consistent: each batch
// of the event loop is committed whole or not at all, and a cycle leaves
// a failed group's writes out of its batches. The group's RawNode, which
// may be ahead of that copy, is abandoned; after a back-off the group is
// loaded again from the copy (retryFailed), as if this node had
// restarted with only that group. Nothing this node sent depends on
// state it had not made durable: acknowledgements and votes leave after
// the sync, and a failed group sends nothing more.

// groupFailed stops g after err, which concerns g alone: it is logged
// and counted, g is quarantined (neither ticked, stepped nor served; its
// requests go to its other members) and retried after a back-off that
// doubles with each failure. Event loop only.
func (h *Host) groupFailed(g *group, what string, err error) {
	h.stats.groupErrors.Add(1)
	g.failures++
	g.retryTicks = h.backoffTicks(g.failures)
	g.healthyTicks = 0
	if !g.quarantined.Swap(true) {
		h.stats.quarantined.Add(1)
	}
	g.leader.Store(false)
	g.lead.Store(0)
	h.log.Error("raft group failed; it is stopped until retried", "group", g.name, "during", what, "err", err,
		"retry_in", time.Duration(g.retryTicks)*h.cfg.TickInterval, "failures", g.failures)
}

// brokenGroup stands for group p, whose replica here could not be
// loaded (err): a quarantined group without a RawNode, retried like any
// failed group. Its replica generation is above every other, so that no
// message makes a replica in place of the one on disk.
func (h *Host) brokenGroup(p meta.Partition, err error) *group {
	g := &group{p: p, h: h, name: partitionName(p), self: replica{gen: math.MaxUint64}, peers: map[uint64]replica{}}
	g.set.Store(&replicaSet{})
	voters := []uint64{}
	g.voters.Store(&voters)
	h.groupFailed(g, "load", err)
	return g
}

// backoffTicks is the wait before the n-th retry of a failed group: one
// election timeout, doubling up to 64.
func (h *Host) backoffTicks(n int) int {
	return h.cfg.ElectionTicks << min(max(n-1, 0), 6)
}

// groupList is a copy of the list of groups.
func (h *Host) groupList() []*group {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.mu.list)
}

// retryFailed counts one tick off the back-off of the quarantined groups
// in list and loads again those whose back-off ran out. A group that has
// run well for as long as its last back-off starts afresh: its next
// failure waits one election timeout again. Event loop only.
func (h *Host) retryFailed(list []*group) {
	for _, g := range list {
		if g.retired {
			continue
		}
		if !g.quarantined.Load() {
			if g.failures > 0 {
				if g.healthyTicks++; g.healthyTicks >= h.backoffTicks(g.failures) {
					g.failures = 0
				}
			}
			continue
		}
		if g.retryTicks--; g.retryTicks > 0 {
			continue
		}
		h.reload(g)
	}
}

// reload replaces the quarantined group g by a group loaded from its
// durable state.
func (h *Host) reload(g *group) {
	var err error
	if h.faults != nil {
		err = h.faults("load", g.p)
	}
	var ng *group
	if err == nil {
		ng, err = h.loadGroup(g.p)
	}
	if err != nil {
		h.groupFailed(g, "load", err)
		return
	}
	ng.failures = g.failures
	h.mu.Lock()
	if h.mu.groups[g.p] != g {
		h.mu.Unlock()
		return
	}
	// Writes go through ng from now on: what g holds in memory is not
	// kept up to date any more, and must not be used (never ended).
	g.hot.BeginWrite(nil)
	h.mu.groups[g.p] = ng
	if i := slices.Index(h.mu.list, g); i >= 0 {
		h.mu.list[i] = ng
	}
	h.mu.Unlock()
	g.mu.Lock()
	g.retired = true
	g.mu.Unlock()
	h.dirtyMu.Lock()
	delete(h.dirty, g)
	h.dirtyMu.Unlock()
	h.stats.quarantined.Add(-1)
	h.log.Info("raft group loaded again after its failure", "group", g.name, "failures", g.failures)
	h.checkMembership(ng)
	if rec := h.splitOf(g.p); rec != nil && rec.tail != nil {
		ng.split.Store(rec)
		h.lifeMu.Lock()
		h.life = append(h.life, lifeOp{g: ng, p: ng.p, split: true})
		h.lifeMu.Unlock()
	}
	h.markDirty(ng)
}
