package raftmeta

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/redoubt-io/redoubt/internal/meta"
)

// Cut off from a quorum. A request for a group waits here for its quorum:
// a proposal for its commit, a read for its confirmation, a forward for
// the answer of the member it went to. On the side of a partition without
// a majority of the group's voters no wait can end well, and waiting out
// the caller's deadline (5 s and more) outlasts many clients' timeouts.
// So, with Quiesce on (every metadata node then sends every other a batch
// at every tick: metadataNodes), a host that has heard for ElectionTicks
// from fewer than a quorum of a group's voters' nodes takes itself to be
// cut off from that group. At each tick it ends the waits of the groups
// it is cut off from, and a request that found no leader on its first try
// is refused at once rather than tried again until its deadline; both
// with meta.ErrUnavailable (503). A write refused while its proposal was
// in flight may still apply later, as one whose deadline passed may.
//
// A voter's node counts as heard unless this host expects its batches
// and has had none for ElectionTicks; a node that has not spoken since
// this host started counts as heard. The verdict needs every view of the
// voters this host has to agree (cutOff), and is never taken before a
// request's first try, so a stale view of gone nodes costs a request at
// most its first wait. It only ever shortens a wait that could not have
// ended in success, or one that could have (a link silent for a whole
// election timeout yet working); it decides nothing raft decides.
// TestCutOffRefusesQuickly, and on real processes behind packet rules the
// e2e TestBedStrongMinorityRefusesQuickly and
// TestBedStrongLinearizableThroughCuts.

// errCutOff is the cause of a wait ended because the group's quorum went
// unheard.
var errCutOff = errors.New("raftmeta: cut off from a quorum of the group's voters")

// watch returns ctx, ended with errCutOff when this host is cut off from
// group p's quorum, and the function that stops watching.
func (h *Host) watch(ctx context.Context, p meta.Partition) (context.Context, func()) {
	if !h.cfg.Quiesce {
		return ctx, func() {}
	}
	ctx, cancel := context.WithCancelCause(ctx)
	w := &watched{p: p, cancel: cancel}
	h.watchMu.Lock()
	h.watched[w] = struct{}{}
	h.watchMu.Unlock()
	return ctx, func() {
		h.watchMu.Lock()
		delete(h.watched, w)
		h.watchMu.Unlock()
		cancel(nil)
	}
}

type watched struct {
	p      meta.Partition
	cancel context.CancelCauseFunc
}

// endCutOff ends the watched waits of the groups this host is cut off
// from, at tick now. Event loop only.
func (h *Host) endCutOff(now uint64) {
	h.watchMu.Lock()
	defer h.watchMu.Unlock()
	if len(h.watched) == 0 {
		return
	}
	verdicts := map[meta.Partition]error{}
	for w := range h.watched {
		err, ok := verdicts[w.p]
		if !ok {
			err = h.cutOff(w.p, now)
			verdicts[w.p] = err
		}
		if err != nil {
			w.cancel(err)
			delete(h.watched, w)
		}
	}
}

// cutOff says, with the reason, whether this host went unheard-from by a
// quorum of group p's voters' nodes at tick now; nil if not, or if it
// cannot tell. It judges by both views of the voters it has, its replica's
// (which is stale once the replica was removed from the group) and the
// layout's (which runs ahead of the group's configuration while it
// changes), and says cut off only when both do: a stale view of gone
// nodes must not refuse requests a live quorum would serve (found by the
// cluster simulation, seed 17381206144445429758 of TestSimulationLayout).
func (h *Host) cutOff(p meta.Partition, now uint64) error {
	if !h.cfg.Quiesce {
		return nil
	}
	var views [][]uint64
	if g := h.group(p); g != nil {
		views = append(views, g.voterNodes())
	}
	h.mu.Lock()
	if m := h.mu.members[p]; len(m) > 0 {
		views = append(views, m)
	}
	h.mu.Unlock()
	var why error
	for _, voters := range views {
		if len(voters) == 0 {
			return nil
		}
		heard := 0
		h.heardMu.Lock()
		for _, n := range voters {
			at, spoke := h.heard[n]
			if n == h.cfg.NodeID || !spoke || !h.expected[n] || now-at <= uint64(h.cfg.ElectionTicks) {
				heard++
			}
		}
		h.heardMu.Unlock()
		if heard > len(voters)/2 {
			return nil
		}
		why = fmt.Errorf("%w: group %s: heard from %d of its %d voters' nodes within %d ticks",
			errCutOff, partitionName(p), heard, len(voters), h.cfg.ElectionTicks)
	}
	return why
}

// metadataNodes is every node other than this one that this host sends a
// batch at every tick (with Quiesce on): those holding, or meant to hold,
// a voter of a group it knows of (its own groups' voters, and the members
// the layout gives every group: SetMembers, EnsureGroup), and those it
// heard from within ElectionTicks. The last makes it mutual: a node this
// host's view leaves out, or that leaves this host out of its view (a
// stale replica still naming the voters of a group the node was removed
// from, as the cluster simulation found), hears from it all the same once
// one of them speaks. So two metadata nodes hear from each other every
// tick while the link between them holds, busy groups or not.
func (h *Host) metadataNodes(list []*group, now uint64) []uint64 {
	seen := map[uint64]bool{}
	for _, g := range list {
		for _, n := range g.voterNodes() {
			seen[n] = true
		}
	}
	h.mu.Lock()
	for _, voters := range h.mu.members {
		for _, n := range voters {
			seen[n] = true
		}
	}
	h.mu.Unlock()
	h.heardMu.Lock()
	for n, at := range h.heard {
		if now-at <= uint64(h.cfg.ElectionTicks) {
			seen[n] = true
		}
	}
	h.heardMu.Unlock()
	delete(seen, h.cfg.NodeID)
	return slices.Sorted(maps.Keys(seen))
}

// expect records nodes as those this host hears from every tick. Event
// loop only.
func (h *Host) expect(nodes []uint64) {
	m := make(map[uint64]bool, len(nodes))
	for _, n := range nodes {
		m[n] = true
	}
	h.heardMu.Lock()
	h.expected = m
	h.heardMu.Unlock()
}

// cutOffResponse is the answer to a request whose wait ctx ended because
// the host is cut off from the group, if it did.
func cutOffResponse(ctx context.Context) (response, bool) {
	if err := context.Cause(ctx); err != nil && errors.Is(err, errCutOff) {
		return response{status: stUnavailable, msg: err.Error()}, true
	}
	return response{}, false
}
