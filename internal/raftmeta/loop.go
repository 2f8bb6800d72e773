package raftmeta

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

	"github.com/cockroachdb/pebble/v2"
	"github.com/redoubt-io/redoubt/internal/meta"
	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

type work struct {
	g  *group
	rd raft.Ready
}

// cycle handles the Ready of every group that may have one: one batch
// for all their log writes, then one batch of state machine writes, then
// one sync for both; messages go one batch per peer; then Advance.
//
// Committed entries are applied, and their callers answered, before this
// node's own log writes are synced: committed means a majority already
// holds them durably, whether or not this node is one of it. The log
// batch goes into Pebble's write-ahead log before the apply batch, so a
// crash keeps a prefix: never applied state without the log beneath it.
// What acknowledges this node's own copy (Advance, append responses,
// votes) waits for the sync.
func (h *Host) cycle() error {
	gs := h.takeDirty()
	if len(gs) == 0 {
		return nil
	}
	// In partition order, not the dirty set's: a cycle then writes, sends
	// and answers the same way for the same inputs, which a simulation
	// replaying a seed relies on.
	slices.SortFunc(gs, func(a, b *group) int { return cmp.Compare(a.p, b.p) })
	var ws []work
	for _, g := range gs {
		g.mu.Lock()
		if !g.removed && g.rn.HasReady() {
			ws = append(ws, work{g, g.rn.Ready()})
		}
		g.mu.Unlock()
	}
	if len(ws) == 0 {
		return nil
	}
	h.stats.cycles.Add(1)

	// 1. Write hard states, entries and snapshots, not yet synced.
	b := h.db.NewBatch()
	mustSync := false
	for i := range ws {
		w := &ws[i]
		sync, err := h.persist(b, w.g, &w.rd)
		if err != nil {
			b.Close()
			return err
		}
		mustSync = mustSync || sync
	}
	// A leader's appends and heartbeats go out before its own sync, so
	// that followers write in parallel with it (raft counts the leader's
	// own copy only once Advance says it is durable). Everything else
	// (votes, acknowledgements) waits for the sync.
	h.send(ws, true)
	if !b.Empty() {
		h.stats.writes.Add(1)
		if err := b.Commit(pebble.NoSync); err != nil {
			b.Close()
			return fmt.Errorf("raftmeta: persist: %w", err)
		}
	}
	b.Close()

	// 2. Apply committed entries and answer their callers.
	var notes []note
	ab := h.db.NewIndexedBatch()
	for i := range ws {
		n, err := h.apply(ab, ws[i].g, &ws[i].rd)
		if err != nil {
			ab.Close()
			return err
		}
		notes = append(notes, n...)
	}
	if !ab.Empty() {
		h.stats.writes.Add(1)
		// Entries applied by a batch lost in a crash are applied again at
		// restart (applied index and data are in one batch).
		if err := ab.Commit(pebble.NoSync); err != nil {
			ab.Close()
			return fmt.Errorf("raftmeta: apply: %w", err)
		}
	}
	ab.Close()
	for i := range ws {
		w := &ws[i]
		if n := len(w.rd.CommittedEntries); n > 0 {
			w.g.applied.Store(w.rd.CommittedEntries[n-1].GetIndex())
		}
	}
	h.notify(notes)

	// 3. Sync once, for the log and the state machine alike.
	if mustSync {
		h.stats.syncs.Add(1)
		if err := h.db.LogData(nil, pebble.Sync); err != nil {
			return fmt.Errorf("raftmeta: sync: %w", err)
		}
	}
	for i := range ws {
		if err := h.stable(ws[i].g, &ws[i].rd); err != nil {
			return err
		}
	}
	// Now what the messages acknowledge is durable.
	h.send(ws, false)

	// 4. Reads whose index is now applied; Advance.
	for i := range ws {
		w := &ws[i]
		h.releaseReads(w.g, w.rd.ReadStates)
		w.g.mu.Lock()
		w.g.rn.Advance(w.rd)
		more := w.g.rn.HasReady()
		w.g.mu.Unlock()
		h.checkMembership(w.g)
		if err := h.maybeCompact(w.g); err != nil {
			return err
		}
		if more {
			h.markDirty(w.g)
		}
	}
	return nil
}

// persist adds to b what rd asks to store for g and says whether it needs
// a sync.
func (h *Host) persist(b *pebble.Batch, g *group, rd *raft.Ready) (bool, error) {
	sync := false
	if rd.SoftState != nil {
		g.lead.Store(rd.SoftState.Lead)
		g.leader.Store(rd.SoftState.RaftState == raft.StateLeader)
	}
	if snap := rd.Snapshot; !raft.IsEmptySnap(snap) {
		md := snap.GetMetadata()
		b.DeleteRange(groupKey(g.p, kindLog), groupKey(g.p, kindLog+1), nil)
		dl, du := dataBounds(g.p, nil, nil)
		b.DeleteRange(dl, du, nil)
		err := decodeSnapshotData(snap.GetData(), func(it snapItem) {
			b.Set(dataKey(g.p, it.key), encodeItem(it.rev, it.value), nil)
		})
		if err != nil {
			return false, fmt.Errorf("raftmeta: group %s: snapshot: %w", g.name, err)
		}
		b.Set(groupKey(g.p, kindApply), encodeApplyState(md.GetIndex(), md.GetConfState()), nil)
		b.Set(groupKey(g.p, kindBase), encodeBase(md.GetIndex(), md.GetTerm()), nil)
		sync = true
	}
	if len(rd.Entries) > 0 {
		for _, e := range rd.Entries {
			raw, err := proto.Marshal(e)
			if err != nil {
				return false, err
			}
			b.Set(logKey(g.p, e.GetIndex()), raw, nil)
		}
		last := rd.Entries[len(rd.Entries)-1].GetIndex()
		if g.lastLog > last {
			// A new leader cut the log short: drop the rest.
			b.DeleteRange(logKey(g.p, last+1), logKey(g.p, g.lastLog+1), nil)
		}
		sync = true
	}
	if hs := rd.HardState; !raft.IsEmptyHardState(hs) {
		raw, err := proto.Marshal(hs)
		if err != nil {
			return false, err
		}
		b.Set(groupKey(g.p, kindHard), raw, nil)
		if raft.MustSync(hs, g.hs, len(rd.Entries)) {
			sync = true
		}
	}
	return sync, nil
}

// stable updates g's in-memory log once rd's writes are durable.
func (h *Host) stable(g *group, rd *raft.Ready) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if snap := rd.Snapshot; !raft.IsEmptySnap(snap) {
		md := snap.GetMetadata()
		// The data is in Pebble now; the in-memory log needs only the
		// metadata.
		meta := &raftpb.Snapshot{Metadata: md}
		if err := g.ms.ApplySnapshot(meta); err != nil && !errors.Is(err, raft.ErrSnapOutOfDate) {
			return err
		}
		g.base, g.lastLog = md.GetIndex(), md.GetIndex()
		g.cs = md.GetConfState()
		g.applied.Store(md.GetIndex())
		voters := slices.Clone(g.cs.GetVoters())
		g.voters.Store(&voters)
	}
	if len(rd.Entries) > 0 {
		if err := g.ms.Append(rd.Entries); err != nil {
			return err
		}
		g.lastLog = rd.Entries[len(rd.Entries)-1].GetIndex()
	}
	if hs := rd.HardState; !raft.IsEmptyHardState(hs) {
		g.hs = hs
		g.term.Store(hs.GetTerm())
		if err := g.ms.SetHardState(hs); err != nil {
			return err
		}
	}
	return nil
}

// early tells the messages that may leave before this node's writes are
// durable: a leader's appends, heartbeats and snapshots, and proposals or
// read requests a follower passes to its leader; none acknowledges
// anything.
func early(m *raftpb.Message) bool {
	switch m.GetType() {
	case raftpb.MsgApp, raftpb.MsgHeartbeat, raftpb.MsgSnap, raftpb.MsgProp, raftpb.MsgReadIndex:
		return true
	}
	return false
}

// send delivers the messages of all groups, one batch per peer: those
// that may go before the sync (early), or the others.
func (h *Host) send(ws []work, beforeSync bool) {
	per := make(map[uint64][]groupMsg)
	type snapTo struct {
		g  *group
		to uint64
	}
	var snaps []snapTo
	for i := range ws {
		for _, m := range ws[i].rd.Messages {
			if early(m) != beforeSync {
				continue
			}
			per[m.GetTo()] = append(per[m.GetTo()], groupMsg{ws[i].g.p, m})
			if m.GetType() == raftpb.MsgSnap {
				snaps = append(snaps, snapTo{ws[i].g, m.GetTo()})
			}
		}
	}
	for to, msgs := range per {
		raw, err := encodeBatch(msgs)
		if err != nil {
			h.log.Error("encode messages", "to", to, "err", err)
			continue
		}
		h.cfg.Send.Send(to, raw)
	}
	// The network gives no receipt for a snapshot; say it arrived, so the
	// leader probes the follower again instead of waiting forever. If it
	// was lost, the probe is refused and another snapshot follows.
	for _, s := range snaps {
		s.g.mu.Lock()
		s.g.rn.ReportSnapshot(s.to, raft.SnapshotFinish)
		s.g.mu.Unlock()
	}
}

// note is a result for a caller of this host.
type note struct {
	id  uint64
	res result
}

// apply applies rd's committed entries of g into ab and returns the
// results owed to callers waiting on this host.
func (h *Host) apply(ab *pebble.Batch, g *group, rd *raft.Ready) ([]note, error) {
	if len(rd.CommittedEntries) == 0 {
		return nil, nil
	}
	var notes []note
	for _, e := range rd.CommittedEntries {
		switch e.GetType() {
		case raftpb.EntryNormal:
			if len(e.GetData()) == 0 {
				continue // a new leader's empty entry, or a refused conf change
			}
			prop, err := decodeProposal(e.GetData())
			if err != nil {
				// Every replica refuses it alike, so they stay identical.
				h.log.Error("undecodable log entry", "group", g.name, "index", e.GetIndex(), "err", err)
				continue
			}
			rev, err := applyTxn(ab, g.p, e.GetIndex(), &prop.txn)
			if err != nil && !errors.Is(err, meta.ErrConflict) {
				return nil, err
			}
			if prop.node == h.cfg.NodeID {
				notes = append(notes, note{prop.id, result{rev, err}})
			}
		case raftpb.EntryConfChange, raftpb.EntryConfChangeV2:
			var cc raftpb.ConfChangeI
			var ctx []byte
			if e.GetType() == raftpb.EntryConfChange {
				c := &raftpb.ConfChange{}
				if err := proto.Unmarshal(e.GetData(), c); err != nil {
					return nil, fmt.Errorf("raftmeta: group %s: conf change: %w", g.name, err)
				}
				cc, ctx = c, c.GetContext()
			} else {
				c := &raftpb.ConfChangeV2{}
				if err := proto.Unmarshal(e.GetData(), c); err != nil {
					return nil, fmt.Errorf("raftmeta: group %s: conf change: %w", g.name, err)
				}
				cc, ctx = c, c.GetContext()
			}
			g.mu.Lock()
			cs := g.rn.ApplyConfChange(cc)
			g.mu.Unlock()
			g.cs = cs
			voters := slices.Clone(cs.GetVoters())
			g.voters.Store(&voters)
			h.log.Info("group configuration changed", "group", g.name, "voters", cs.GetVoters(), "learners", cs.GetLearners())
			if node, id, err := decodeConfContext(ctx); err == nil && node == h.cfg.NodeID {
				notes = append(notes, note{id, result{rev: e.GetIndex()}})
			}
		}
	}
	last := rd.CommittedEntries[len(rd.CommittedEntries)-1].GetIndex()
	ab.Set(groupKey(g.p, kindApply), encodeApplyState(last, g.cs), nil)
	return notes, nil
}

// applyTxn applies txn at revision index, or returns ErrConflict. ab is an
// indexed batch: conditions see the entries applied before in the batch.
func applyTxn(ab *pebble.Batch, p meta.Partition, index uint64, txn *meta.Txn) (uint64, error) {
	for _, c := range txn.Conds {
		v, closer, err := ab.Get(dataKey(p, c.Key))
		var rev uint64
		switch {
		case errors.Is(err, pebble.ErrNotFound):
		case err != nil:
			return 0, err
		default:
			rev, _, err = decodeItem(v)
			closer.Close()
			if err != nil {
				return 0, err
			}
		}
		if rev != c.Rev {
			return 0, meta.ErrConflict
		}
	}
	for _, k := range txn.Deletes {
		ab.Delete(dataKey(p, k), nil)
	}
	for _, kv := range txn.Puts {
		ab.Set(dataKey(p, kv.Key), encodeItem(index, kv.Value), nil)
	}
	return index, nil
}

func (h *Host) notify(notes []note) {
	if len(notes) == 0 {
		return
	}
	h.waitMu.Lock()
	defer h.waitMu.Unlock()
	for _, n := range notes {
		if ch, ok := h.props[n.id]; ok {
			ch <- n.res
			delete(h.props, n.id)
		}
	}
}

// releaseReads records the read indexes raft confirmed and lets go every
// read whose index is applied.
func (h *Host) releaseReads(g *group, rs []raft.ReadState) {
	for _, r := range rs {
		if len(r.RequestCtx) == 8 {
			g.pendingReads = append(g.pendingReads, pendingRead{r.Index, binary.BigEndian.Uint64(r.RequestCtx)})
		}
	}
	if len(g.pendingReads) == 0 {
		return
	}
	applied := g.applied.Load()
	h.waitMu.Lock()
	defer h.waitMu.Unlock()
	keep := g.pendingReads[:0]
	for _, r := range g.pendingReads {
		if r.index > applied {
			keep = append(keep, r)
			continue
		}
		if ch, ok := h.reads[r.id]; ok {
			close(ch)
			delete(h.reads, r.id)
		}
	}
	g.pendingReads = keep
}

// maybeCompact discards the oldest three quarters of g's log once it holds
// SnapshotEntries applied entries.
func (h *Host) maybeCompact(g *group) error {
	applied := g.applied.Load()
	if applied < g.base+h.cfg.SnapshotEntries {
		return nil
	}
	to := applied - h.cfg.SnapshotEntries/4
	g.mu.Lock()
	term, err := g.ms.Term(to)
	if err == nil {
		err = g.ms.Compact(to)
	}
	g.mu.Unlock()
	if err != nil {
		return fmt.Errorf("raftmeta: group %s: compact to %d: %w", g.name, to, err)
	}
	b := h.db.NewBatch()
	defer b.Close()
	b.DeleteRange(logKey(g.p, g.base+1), logKey(g.p, to+1), nil)
	b.Set(groupKey(g.p, kindBase), encodeBase(to, term), nil)
	g.base = to
	h.stats.writes.Add(1)
	return b.Commit(pebble.NoSync)
}

// dropGroup stops a group this node was removed from, once its grace
// ran out (expireRemoved), and deletes its copy. It runs on the event
// loop between cycles, so no Ready of the group is in flight.
func (h *Host) dropGroup(g *group) {
	g.mu.Lock()
	g.removed = true // a Ready of it, from a late Step, is not handled
	g.mu.Unlock()
	h.dirtyMu.Lock()
	delete(h.dirty, g)
	h.dirtyMu.Unlock()
	// Under h.mu: EnsureGroup, which may start the group afresh, must
	// not load the copy being deleted.
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.mu.groups[g.p] == g {
		delete(h.mu.groups, g.p)
	}
	h.mu.list = slices.DeleteFunc(h.mu.list, func(x *group) bool { return x == g })
	b := h.db.NewBatch()
	defer b.Close()
	lower, upper := groupBounds(g.p)
	b.DeleteRange(lower, upper, nil)
	b.Delete(groupRecordKey(g.p), nil)
	if err := b.Commit(pebble.Sync); err != nil {
		// The copy is loaded again, leaving, at the next start.
		h.log.Error("delete removed group", "group", g.name, "err", err)
		return
	}
	h.log.Info("removed from group; its copy is deleted", "group", g.name)
}
