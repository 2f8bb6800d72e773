package raftmeta

import (
	"context"
	"fmt"
	"slices"

	"github.com/cockroachdb/pebble/v2"
	"github.com/redoubt-io/redoubt/internal/meta"
)

// A host has at most one replica of each group. Replicas are made,
// replaced and deleted on the event loop, between cycles (runLifecycle),
// under h.mu, so that EnsureGroup, which may make one too, sees a
// consistent picture. See doc.go, Replica identity, for why each step is
// safe.

// lifeOp is a change to the replicas of a host: delete g (if it is still
// this host's replica of its group), or make replica r of group p (if no
// replica of a generation at least r's is here or was deleted).
type lifeOp struct {
	g   *group
	p   meta.Partition
	r   replica
	why string
	// msgs came for r from node from: they are stepped once r is made,
	// rather than waiting for raft to send them again.
	msgs []groupMsg
	from uint64
	// split: make g's children and delete it (finishSplit); moved:
	// delete g, which split, keeping this record (removeSplit).
	split bool
	moved *splitRec
	// built: install g's children, whose tables are written
	// (installSplit).
	built *builtSplit
}

// maxEarlyMsgs bounds the messages kept for a replica being made.
const maxEarlyMsgs = 8

// deleteReplica has g deleted at the next turn of the event loop.
func (h *Host) deleteReplica(g *group, why string) {
	h.lifeMu.Lock()
	h.life = append(h.life, lifeOp{g: g, p: g.p, why: why})
	h.lifeMu.Unlock()
	h.poke()
}

// wantReplica has replica r of group p made at the next turn of the
// event loop, for message m from node from, which names it; m is then
// stepped.
func (h *Host) wantReplica(p meta.Partition, r replica, from uint64, m groupMsg) {
	h.lifeMu.Lock()
	for i := range h.life {
		op := &h.life[i]
		if op.g != nil || op.p != p || op.r.gen < r.gen {
			continue
		}
		if op.r == r && op.from == from && len(op.msgs) < maxEarlyMsgs {
			op.msgs = append(op.msgs, m)
		}
		h.lifeMu.Unlock()
		return
	}
	h.life = append(h.life, lifeOp{p: p, r: r, msgs: []groupMsg{m}, from: from})
	h.lifeMu.Unlock()
	h.poke()
}

// poke wakes the event loop, through Config.Wake if set.
func (h *Host) poke() {
	if h.cfg.Wake != nil {
		h.cfg.Wake(h.kick)
		return
	}
	h.kick()
}

// kick wakes the event loop now.
func (h *Host) kick() {
	select {
	case h.wake <- struct{}{}:
	default:
	}
}

// runLifecycle makes and deletes the replicas asked for since the last
// turn. Only a failure of the database stops it. Event loop only.
func (h *Host) runLifecycle() error {
	h.lifeMu.Lock()
	ops := h.life
	h.life = nil
	h.lifeMu.Unlock()
	for _, op := range ops {
		var err error
		switch {
		case op.split:
			err = h.finishSplit(op.g)
		case op.built != nil:
			err = h.installSplit(op.g, op.built)
		case op.moved != nil:
			err = h.removeSplit(op.g, op.moved, op.why)
		case op.g != nil:
			err = h.removeReplica(op.g, op.why)
		default:
			err = h.makeReplica(op.p, op.r, op.from, op.msgs)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// removeReplica deletes g's state, keeping a tombstone that refuses its
// generation and older ones from then on.
func (h *Host) removeReplica(g *group, why string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.mu.groups[g.p] != g {
		return nil
	}
	minGen := g.self.gen + 1
	b := h.db.NewBatch()
	defer b.Close()
	clearReplica(b, g.p)
	g.gone.Store(true)
	g.hot.BeginWrite(nil) // never ended: nothing is read through g again
	b.Set(tombstoneKey(g.p), encodeTombstone(minGen), nil)
	// Unsynced: a crash that loses this batch loses it whole, and the
	// replica comes back as it was, to be deleted again. A later
	// replica of the group acknowledges nothing before a sync, which
	// covers this batch too (Pebble's log is ordered).
	if err := b.Commit(pebble.NoSync); err != nil {
		return fmt.Errorf("raftmeta: delete replica of %s: %w", g.name, err)
	}
	h.mu.tombs[g.p] = minGen
	h.dropLocked(g)
	h.log.Info("replica deleted", "group", g.name, "replica", g.self.id, "generation", g.self.gen, "why", why)
	return nil
}

// makeReplica makes replica r of group p, empty, to wait for its
// leader's snapshot, in place of this host's older replica of p if it
// has one, and steps into it msgs, which node from sent it.
func (h *Host) makeReplica(p meta.Partition, r replica, from uint64, msgs []groupMsg) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	old := h.mu.groups[p]
	if r.gen < h.mu.tombs[p] || (old != nil && old.self.gen >= r.gen) || h.mu.splits[p] != nil {
		return nil
	}
	if old == nil && h.splitPending(p) {
		// This host's own split makes the replica in a moment, from its
		// copy: an empty one now would wait for a snapshot instead.
		return nil
	}
	b := h.db.NewBatch()
	defer b.Close()
	if old != nil {
		clearReplica(b, p)
		old.gone.Store(true)
		old.hot.BeginWrite(nil) // never ended: nothing is read through old again
	}
	b.Set(tombstoneKey(p), encodeTombstone(r.gen), nil)
	emptyReplica(b, p, r)
	if err := b.Commit(pebble.NoSync); err != nil {
		return fmt.Errorf("raftmeta: make replica of %s: %w", partitionName(p), err)
	}
	h.mu.tombs[p] = r.gen
	g, err := h.loadGroup(p)
	if err != nil {
		g = h.brokenGroup(p, err)
	}
	if old != nil {
		h.dropLocked(old)
		h.log.Info("replica replaced by a newer one", "group", g.name, "old", old.self.id, "old_generation", old.self.gen,
			"replica", r.id, "generation", r.gen)
	} else {
		h.log.Info("replica made for a message", "group", g.name, "replica", r.id, "generation", r.gen)
	}
	h.addGroupLocked(g)
	if g.rn == nil {
		return nil
	}
	g.mu.Lock()
	for _, m := range msgs {
		if g.learn(m.msg.GetFrom(), from, m.fromGen) {
			_ = h.stepLocked(g, m.msg)
		}
	}
	g.mu.Unlock()
	h.markDirty(g)
	return nil
}

// clearReplica deletes every key of the replica of group p.
func clearReplica(b *pebble.Batch, p meta.Partition) {
	lower, upper := groupBounds(p)
	b.DeleteRange(lower, upper, nil)
	b.Delete(groupRecordKey(p), nil)
}

// dropLocked forgets g, whose state is deleted: no Ready of it is
// handled any more. h.mu is held.
func (h *Host) dropLocked(g *group) {
	if h.mu.groups[g.p] == g {
		delete(h.mu.groups, g.p)
	}
	h.mu.list = slices.DeleteFunc(h.mu.list, func(x *group) bool { return x == g })
	g.mu.Lock()
	g.retired = true
	g.mu.Unlock()
	h.dirtyMu.Lock()
	delete(h.dirty, g)
	h.dirtyMu.Unlock()
	if g.quarantined.Load() {
		h.stats.quarantined.Add(-1)
	}
	h.stats.deleted.Add(1)
}

// suspect says whether g heard from no leader for two election timeouts
// (and leads nothing): it may have been removed without learning it.
func (h *Host) suspect(g *group) bool {
	return !g.leader.Load() && !g.quarantined.Load() && g.quiet.Load() >= int64(2*h.cfg.ElectionTicks)
}

// checkReplicas asks, Config.ReplicaCheckInterval after its last round
// ended, for each suspect replica, whether it is still a member
// (checkReplica). A leader
// stops sending to a replica once it applies its removal, so a replica
// cut off then never learns it was removed; nor does one made for a
// message from a leader that removed it before sending it anything else.
// It runs on its own goroutine, for Run.
func (h *Host) checkReplicas(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-h.cfg.After.Wait(h.cfg.ReplicaCheckInterval, "replica check"):
		}
		for _, g := range h.groupList() {
			if ctx.Err() != nil {
				return
			}
			if !h.suspect(g) {
				continue
			}
			if err := h.checkReplica(ctx, g.p); err != nil {
				h.log.Debug("replica check", "group", g.name, "err", err)
			}
		}
	}
}

// checkReplica asks the leader of group p whether this host's replica of
// it is a member, and has the replica deleted if it is not. The answer
// comes from a consistent read at the leader (ReadIndex): it reflects
// every configuration change committed before the question, among them
// the one that added this replica (it exists only because a member that
// had applied that change sent it a message, or was an initial voter);
// so "not a member" means removed, and, since an ID is never given
// twice, removed for good.
func (h *Host) checkReplica(ctx context.Context, p meta.Partition) error {
	g := h.replica(p)
	if g == nil || g.leader.Load() || g.quarantined.Load() {
		return nil
	}
	ctx, cancel := withTimeout(ctx, h.cfg.ProposalTimeout)
	defer cancel()
	resp := h.retry(ctx, &request{op: opReplica, p: p, node: g.self.id})
	if resp.status == stMoved {
		h.checkMoved(g, resp.moved())
		return nil
	}
	if err := resp.err(); err != nil {
		return err
	}
	if len(resp.value) == 1 && resp.value[0] == 1 {
		return nil
	}
	h.deleteReplica(g, fmt.Sprintf("its group's leader finds it no member at index %d", resp.rev))
	return nil
}
