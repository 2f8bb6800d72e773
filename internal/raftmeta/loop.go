package raftmeta

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/redoubt-io/redoubt/internal/meta"
	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

type work struct {
	g  *group
	rd raft.Ready
	// failed: the group failed during this cycle (groupFailed); nothing
	// more of its Ready is handled, nor is it advanced.
	failed bool

	// snapSet is the replica set of rd's snapshot.
	snapSet *replicaSet
	// installed: rd's snapshot was streamed, and is installed
	// (installStream); persist writes only what follows it.
	installed bool

	// What applying rd computed, handed to the group and raft once the
	// apply batch is committed.
	notes   []note
	confs   []raftpb.ConfChangeI // accepted configuration changes, in order
	cs      *raftpb.ConfState    // the configuration after them; nil: unchanged
	set     *replicaSet          // the replica set after them
	applied uint64               // the last committed entry of rd; 0: none
	// txns are the transactions apply wrote into the batch.
	txns []*meta.Txn
	// split is the split apply wrote into the batch, if any.
	split *splitRec
}

// step is one turn of the event loop, after a tick or a wake-up: it
// makes and deletes the replicas asked for (runLifecycle), then handles
// the Ready of every group that may have one (cycle). Tests call
// it (and tick) directly to drive a host deterministically.
func (h *Host) step() error {
	if err := h.runLifecycle(); err != nil {
		return err
	}
	return h.cycle()
}

// cycle handles the Ready of every group that may have one, in this order:
//
//  1. Hard states, entries and snapshots of all groups go into one batch,
//     committed to Pebble without a sync. A leader's appends and
//     heartbeats are sent right after, before its own sync, so that
//     followers write in parallel with it (raft counts the leader's own
//     copy only once Advance says it is durable).
//  2. Committed entries are applied in a second batch, also unsynced, and
//     their callers answered: committed means a majority already holds
//     them durably, whether or not this node is one of it. A crash does
//     not keep a prefix of what was written since the last sync (the
//     apply batch can survive the log batch before it), so the apply
//     batch carries the hard state again, and entries that the same
//     Ready appends and applies are synced first: never applied state
//     without the commit and log beneath it.
//  3. One sync covers both batches; then the rest of the messages go out
//     (votes, acknowledgements), since what they acknowledge is durable.
//  4. Reads whose index is applied are released; Advance; logs grown past
//     Config.SnapshotEntries are compacted, after a sync if an apply
//     batch was written since the last.
//
// An error that concerns one group (its data does not decode, its log in
// memory refuses an operation, a snapshot of it cannot be read) stops that
// group only (groupFailed): its writes of this cycle are left out of the
// batches, which are rebuilt without it, and it sends nothing more. Only
// the errors of the database as a whole (a batch commit, the sync) stop
// the loop.
func (h *Host) cycle() error {
	gs := h.takeDirty()
	if len(gs) == 0 {
		return nil
	}
	var ws []work
	for _, g := range gs {
		g.mu.Lock()
		if !g.retired && !g.quarantined.Load() && g.rn.HasReady() {
			ws = append(ws, work{g: g, rd: g.rn.Ready()})
		}
		g.mu.Unlock()
	}
	if len(ws) == 0 {
		h.checkSnapshots(gs)
		return nil
	}
	h.stats.cycles.Add(1)

	// 1. Write hard states, entries and snapshots, not yet synced.
	// Streamed snapshots are installed first, each on its own.
	h.installStreams(ws)
	b, mustSync := h.persistAll(ws)
	h.send(ws, true)
	if !b.Empty() {
		h.stats.writes.Add(1)
		// A snapshot replaces the group's data: readers are told first.
		snaps := beginWrites(ws, func(w *work) (uint64, func(func([]byte) bool)) {
			if raft.IsEmptySnap(w.rd.Snapshot) {
				return 0, nil
			}
			return w.rd.Snapshot.GetMetadata().GetIndex(), nil
		})
		err := b.Commit(pebble.NoSync)
		endWrites(snaps)
		if err != nil {
			b.Close()
			return fmt.Errorf("raftmeta: persist: %w", err)
		}
	}
	b.Close()
	// A crash keeps what was synced and any part of what was written
	// since, not necessarily a prefix: the apply batch may survive
	// without the log batch before it (a torn record of Pebble's WAL is
	// skipped, and the records after it replayed). Entries appended and
	// applied by the same Ready are therefore synced before they are
	// applied; the hard state is written again with the applied index
	// (apply), so that applied never outruns the commit on disk
	// (TestAppliedEntriesAreSyncedFirst, TestApplyOutlivesItsLogBatch).
	if mustSync && appliesNew(ws) {
		if err := h.sync(); err != nil {
			return err
		}
		mustSync = false
	}

	// 2. Apply committed entries and answer their callers.
	ab := h.applyAll(ws)
	if !ab.Empty() {
		h.stats.writes.Add(1)
		writes := beginWrites(ws, func(w *work) (uint64, func(func([]byte) bool)) {
			return w.applied, w.writtenKeys
		})
		// Entries applied by a batch lost in a crash are applied again at
		// restart (applied index and data are in one batch).
		err := ab.Commit(pebble.NoSync)
		endWrites(writes)
		if err != nil {
			ab.Close()
			return fmt.Errorf("raftmeta: apply: %w", err)
		}
		h.applyUnsynced = true
	}
	ab.Close()
	var notes []note
	for i := range ws {
		if w := &ws[i]; !w.failed {
			h.applied(w)
			notes = append(notes, w.notes...)
		}
	}
	h.notify(notes)

	// 3. Sync once, for the log and the state machine alike.
	if mustSync {
		if err := h.sync(); err != nil {
			return err
		}
	}
	for i := range ws {
		w := &ws[i]
		if w.failed {
			continue
		}
		if err := h.stable(w); err != nil {
			h.groupFailed(w.g, "store in memory", err)
			w.failed = true
		}
	}
	// Now what the messages acknowledge is durable.
	h.send(ws, false)

	// 4. Reads whose index is now applied; Advance.
	for i := range ws {
		w := &ws[i]
		if w.failed {
			continue
		}
		h.releaseReads(w.g, w.rd.ReadStates)
		w.g.mu.Lock()
		w.g.rn.Advance(w.rd)
		more := w.g.rn.HasReady()
		w.g.mu.Unlock()
		h.checkMembership(w.g)
		if err := h.maybeCompact(w.g); err != nil {
			if !errors.Is(err, errGroup) {
				return err
			}
			h.groupFailed(w.g, "compact", err)
			continue
		}
		if more {
			h.markDirty(w.g)
		}
	}
	h.checkSnapshots(gs)
	return nil
}

// sync makes everything written so far durable.
func (h *Host) sync() error {
	h.stats.syncs.Add(1)
	if h.beforeSync != nil {
		h.beforeSync()
	}
	if err := h.db.LogData(nil, pebble.Sync); err != nil {
		return fmt.Errorf("raftmeta: sync: %w", err)
	}
	h.applyUnsynced = false
	return nil
}

// appliesNew says whether a work that did not fail applies entries its
// own Ready also writes (appended entries, or a snapshot), which must be
// durable before the apply batch is written.
func appliesNew(ws []work) bool {
	for i := range ws {
		w := &ws[i]
		if w.failed || len(w.rd.CommittedEntries) == 0 {
			continue
		}
		if len(w.rd.Entries) > 0 || !raft.IsEmptySnap(w.rd.Snapshot) {
			return true
		}
	}
	return false
}

// beginWrites tells the readers of each group whose data the batch about
// to be committed changes: of works that did not fail, those for which
// what returns an index (the data's once committed) and the keys written
// (nil: any key). It returns the groups to hand endWrites once the batch
// is committed, or has failed.
func beginWrites(ws []work, what func(*work) (uint64, func(func([]byte) bool))) []*group {
	var gs []*group
	for i := range ws {
		w := &ws[i]
		if w.failed {
			continue
		}
		index, keys := what(w)
		if index == 0 {
			continue
		}
		w.g.applying.Store(index)
		w.g.hot.BeginWrite(keys)
		gs = append(gs, w.g)
	}
	return gs
}

// endWrites ends what beginWrites began.
func endWrites(gs []*group) {
	for _, g := range gs {
		g.hot.EndWrite()
	}
}

// writtenKeys yields the keys of the transactions w's apply wrote.
func (w *work) writtenKeys(yield func([]byte) bool) {
	for _, t := range w.txns {
		for k := range meta.TxnKeys(t) {
			if !yield(k) {
				return
			}
		}
	}
}

// errGroup marks errors that concern one group only.
var errGroup = errors.New("raftmeta: group failed")

// persistAll writes what every group's Ready asks to store into one batch.
// A group that fails is left out: the batch is built again without it.
func (h *Host) persistAll(ws []work) (*pebble.Batch, bool) {
	for {
		b := h.db.NewBatch()
		mustSync, failed := false, false
		for i := range ws {
			w := &ws[i]
			if w.failed {
				continue
			}
			sync, err := h.persist(b, w)
			if err != nil {
				h.groupFailed(w.g, "persist", err)
				w.failed, failed = true, true
				break
			}
			mustSync = mustSync || sync
		}
		if !failed {
			return b, mustSync
		}
		b.Close()
	}
}

// applyAll applies the committed entries of every group into one indexed
// batch. A group that fails is left out: the batch is built again without
// it. Nothing but the batch is changed until it is committed (applied).
func (h *Host) applyAll(ws []work) *pebble.Batch {
	for {
		ab := h.db.NewIndexedBatch()
		failed := false
		for i := range ws {
			w := &ws[i]
			if w.failed {
				continue
			}
			if err := h.apply(ab, w); err != nil {
				h.groupFailed(w.g, "apply", err)
				w.failed, failed = true, true
				break
			}
		}
		if !failed {
			return ab
		}
		ab.Close()
	}
}

// checkSnapshots stops the groups whose snapshot could not be made: raft
// asked for it while stepping or making a Ready, and was told to try
// later (makeSnapshot).
func (h *Host) checkSnapshots(gs []*group) {
	for _, g := range gs {
		if err := g.snapErr.Swap(nil); err != nil && !g.retired && !g.quarantined.Load() {
			h.groupFailed(g, "snapshot", *err)
		}
	}
}

// persist adds to b what rd asks to store for g and says whether it needs
// a sync.
func (h *Host) persist(b *pebble.Batch, w *work) (bool, error) {
	g, rd := w.g, &w.rd
	sync := false
	if rd.SoftState != nil {
		var lead uint64
		if id := rd.SoftState.Lead; id != 0 {
			g.mu.Lock()
			r, ok := g.route(id)
			g.mu.Unlock()
			if ok {
				lead = r.node
			}
		}
		g.lead.Store(lead)
		g.leader.Store(rd.SoftState.RaftState == raft.StateLeader)
	}
	if snap := rd.Snapshot; !raft.IsEmptySnap(snap) && w.installed {
		sync = true
	} else if !raft.IsEmptySnap(snap) {
		md := snap.GetMetadata()
		// Read whole before anything is written: a snapshot that does not
		// decode leaves the batch as it was.
		var items []snapItem
		set, err := decodeSnapshotData(snap.GetData(), func(it snapItem) { items = append(items, it) })
		if err != nil {
			return false, fmt.Errorf("%w: %s: snapshot: %w", errGroup, g.name, err)
		}
		if set == nil {
			set = legacySet(md.GetConfState())
		}
		w.snapSet = set
		b.DeleteRange(groupKey(g.p, kindLog), groupKey(g.p, kindLog+1), nil)
		dl, du := dataBounds(g.p, nil, nil)
		b.DeleteRange(dl, du, nil)
		for _, it := range items {
			b.Set(dataKey(g.p, it.key), encodeItem(it.rev, it.value), nil)
		}
		b.Set(groupKey(g.p, kindApply), encodeApplyState(md.GetIndex(), applyTail(md.GetConfState(), set)), nil)
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
func (h *Host) stable(w *work) error {
	g, rd := w.g, &w.rd
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
		g.publishSet(md.GetConfState(), w.snapSet)
		g.applied.Store(md.GetIndex())
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
// that may go before the sync (early), or the others. A snapshot's items
// are streamed first (startStream), and its message follows in a batch
// of its own. A batch larger than Config.MaxBatch is split, and a single
// message larger than that is not sent but counted and logged (refuse).
func (h *Host) send(ws []work, beforeSync bool) {
	per := make(map[uint64][]groupMsg)
	type snapTo struct {
		g    *group
		to   uint64
		node uint64
		msg  groupMsg
	}
	var snaps []snapTo
	for i := range ws {
		w := &ws[i]
		if w.failed || len(w.rd.Messages) == 0 {
			continue
		}
		g := w.g
		g.mu.Lock()
		for _, m := range w.rd.Messages {
			if early(m) != beforeSync {
				continue
			}
			// Raft names replicas; the batch goes to the node of this one.
			r, ok := g.route(m.GetTo())
			if !ok {
				h.log.Debug("message to a replica of unknown node", "group", g.name, "to", m.GetTo(), "type", m.GetType())
				continue
			}
			gm := groupMsg{p: g.p, fromGen: g.self.gen, toGen: r.gen, msg: m}
			if m.GetType() == raftpb.MsgSnap {
				snaps = append(snaps, snapTo{g, m.GetTo(), r.node, gm})
				continue
			}
			per[r.node] = append(per[r.node], gm)
		}
		g.mu.Unlock()
	}
	for _, to := range slices.Sorted(maps.Keys(per)) {
		h.sendBatch(to, per[to])
	}
	for _, s := range snaps {
		h.startStream(s.g, s.to, s.node, s.msg)
	}
}

// sendBatch hands msgs to the Sender for node to, in batches of at most
// Config.MaxBatch bytes, and reports whether all of them went.
func (h *Host) sendBatch(to uint64, msgs []groupMsg) bool {
	raw, err := encodeBatch(msgs)
	if err != nil {
		h.log.Error("encode messages", "to", to, "err", err)
		return false
	}
	if max := h.cfg.MaxBatch; max > 0 && len(raw) > max {
		if len(msgs) == 1 {
			h.refuse(to, msgs[0], len(raw))
			return false
		}
		half := len(msgs) / 2
		a := h.sendBatch(to, msgs[:half])
		return h.sendBatch(to, msgs[half:]) && a
	}
	h.cfg.Send.Send(to, raw)
	return true
}

// refuse counts and logs a message too large for the Sender to carry: a
// snapshot of a group whose state outgrew the transport's limit, so a
// follower that needs one cannot catch up. Logged at warn at most once
// per refuseLogEvery for the host, so a leader retrying every round does
// not flood the log.
func (h *Host) refuse(to uint64, m groupMsg, size int) {
	h.stats.refused.Add(1)
	now := time.Now().UnixNano()
	last := h.refusedLogged.Load()
	if now-last < int64(refuseLogEvery) || !h.refusedLogged.CompareAndSwap(last, now) {
		return
	}
	h.log.Warn("raft message too large to send: not sent", "group", m.p, "to", to, "type", m.msg.GetType(),
		"bytes", size, "limit", h.cfg.MaxBatch, "refused_total", h.stats.refused.Load())
}

const refuseLogEvery = 10 * time.Second

// note is a result for a caller of this host.
type note struct {
	id  uint64
	res result
}

// apply applies the committed entries of w's Ready into ab and records
// in w what must follow once ab is committed: the results owed to callers
// waiting on this host, the configuration changes to hand raft and the
// configuration after them (see applied). It changes nothing else, so
// that a failure leaves the group as it was.
func (h *Host) apply(ab *pebble.Batch, w *work) error {
	g, rd := w.g, &w.rd
	w.notes, w.confs, w.cs, w.applied, w.txns, w.split = nil, nil, nil, 0, nil, nil
	if len(rd.CommittedEntries) == 0 {
		return nil
	}
	if h.faults != nil {
		if err := h.faults("apply", g.p); err != nil {
			return err
		}
	}
	cs, set := g.cs, g.set.Load()
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
			if split := g.split.Load(); split != nil || w.split != nil {
				// After a split the group applies nothing (split.go).
				if split == nil {
					split = w.split
				}
				if prop.node == h.cfg.NodeID {
					w.notes = append(w.notes, note{prop.id, result{err: &movedError{p: g.p, into: split.into, index: split.index}}})
				}
				continue
			}
			if prop.split != nil {
				rec, err := applySplit(ab, g, e, *prop.split, cs, set)
				if err != nil {
					h.log.Warn("split refused", "group", g.name, "index", e.GetIndex(), "err", err)
				} else {
					w.split = rec
				}
				if prop.node == h.cfg.NodeID {
					w.notes = append(w.notes, note{prop.id, result{rev: e.GetIndex(), err: err}})
				}
				continue
			}
			rev, err := applyTxn(ab, g.p, e.GetIndex(), &prop.txn)
			if err != nil && !errors.Is(err, meta.ErrConflict) && !errors.Is(err, meta.ErrCorrupt) {
				return fmt.Errorf("%w: %s: entry %d: %w", errGroup, g.name, e.GetIndex(), err)
			}
			if err == nil {
				w.txns = append(w.txns, &prop.txn)
			}
			if prop.node == h.cfg.NodeID {
				w.notes = append(w.notes, note{prop.id, result{rev, err}})
			}
		case raftpb.EntryConfChange, raftpb.EntryConfChangeV2:
			cc, ctx, err := decodeConfChange(e)
			if err != nil {
				// Refused alike by every replica: raft is not told of it.
				h.log.Error("undecodable configuration change", "group", g.name, "index", e.GetIndex(), "err", err)
				continue
			}
			node, id, _, _, ctxErr := decodeConfContext(ctx)
			mine := ctxErr == nil && node == h.cfg.NodeID
			if split := g.split.Load(); split != nil || w.split != nil {
				// Refused alike after a split: the children have the
				// configuration as of the split (split.go).
				if mine {
					w.notes = append(w.notes, note{id, result{err: fmt.Errorf("%w: %s split", errConfRefused, g.name)}})
				}
				continue
			}
			nextCS, nextSet, err := nextConf(cs, set, cc, ctx)
			if err != nil {
				h.log.Warn("configuration change refused", "group", g.name, "index", e.GetIndex(), "err", err)
				if mine {
					w.notes = append(w.notes, note{id, result{err: fmt.Errorf("%w: %v", errConfRefused, err)}})
				}
				continue
			}
			cs, set = nextCS, nextSet
			w.confs = append(w.confs, cc)
			if mine {
				w.notes = append(w.notes, note{id, result{rev: e.GetIndex()}})
			}
		}
	}
	w.applied = rd.CommittedEntries[len(rd.CommittedEntries)-1].GetIndex()
	tail := g.tail
	if len(w.confs) > 0 {
		w.cs, w.set = cs, set
		tail = applyTail(cs, set)
	}
	ab.Set(groupKey(g.p, kindApply), encodeApplyState(w.applied, tail), nil)
	// The hard state again, in the batch that records applied: the log
	// batch that wrote it may be lost in a crash that keeps this one
	// (cycle), and a replica whose applied index is beyond its commit
	// cannot be loaded (loadGroup).
	hs := rd.HardState
	if raft.IsEmptyHardState(hs) {
		hs = g.hs
	}
	if hs != nil && !raft.IsEmptyHardState(hs) {
		raw, err := proto.Marshal(hs)
		if err != nil {
			return err
		}
		ab.Set(groupKey(g.p, kindHard), raw, nil)
	}
	return nil
}

// errConfRefused: a configuration change was committed but refused when
// applied (by every replica alike); nothing changed.
var errConfRefused = fmt.Errorf("raftmeta: configuration change refused: %w", meta.ErrUnavailable)

// applied hands raft and the group what apply computed for w, once the
// apply batch holding it is committed.
func (h *Host) applied(w *work) {
	g := w.g
	if w.cs != nil {
		g.mu.Lock()
		var cs *raftpb.ConfState
		for _, cc := range w.confs {
			cs = g.rn.ApplyConfChange(cc)
		}
		if !proto.Equal(cs, w.cs) {
			// The apply state on disk says w.cs: a bug, not bad input.
			panic(fmt.Sprintf("raftmeta: group %s: raft's configuration %v, computed %v", g.name, cs, w.cs))
		}
		g.publishSet(w.cs, w.set)
		g.mu.Unlock()
		h.log.Info("group configuration changed", "group", g.name, "replicas", w.set)
	}
	if w.applied > 0 {
		g.applied.Store(w.applied)
	}
	if w.split != nil {
		g.split.Store(w.split)
		h.mu.Lock()
		h.mu.splits[g.p] = w.split
		for _, c := range w.split.into {
			h.mu.parents[c] = g.p
		}
		h.anySplit.Store(true)
		h.mu.Unlock()
		// The children are made at the next turn of the loop, once the
		// split record is durable.
		h.lifeMu.Lock()
		h.life = append(h.life, lifeOp{g: g, p: g.p, split: true})
		h.lifeMu.Unlock()
		h.poke()
	}
}

// decodeConfChange reads the configuration change of a log entry and its
// context.
func decodeConfChange(e *raftpb.Entry) (raftpb.ConfChangeI, []byte, error) {
	if e.GetType() == raftpb.EntryConfChange {
		c := &raftpb.ConfChange{}
		if err := proto.Unmarshal(e.GetData(), c); err != nil {
			return nil, nil, fmt.Errorf("%w: conf change: %v", ErrCorrupt, err)
		}
		return c, c.GetContext(), nil
	}
	c := &raftpb.ConfChangeV2{}
	if err := proto.Unmarshal(e.GetData(), c); err != nil {
		return nil, nil, fmt.Errorf("%w: conf change: %v", ErrCorrupt, err)
	}
	return c, c.GetContext(), nil
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
	// Counters are added to here, as the entry applies: every replica
	// reads the same values, so they stay identical. A counter that does
	// not decode refuses the entry alike on every replica (ErrCorrupt).
	resolved, err := meta.ResolveAdds(*txn, func(key []byte) ([]byte, error) {
		v, closer, err := ab.Get(dataKey(p, key))
		if errors.Is(err, pebble.ErrNotFound) {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		defer closer.Close()
		_, val, err := decodeItem(v)
		return bytes.Clone(val), err
	})
	if err != nil {
		return 0, err
	}
	for _, k := range resolved.Deletes {
		ab.Delete(dataKey(p, k), nil)
	}
	for _, kv := range resolved.Puts {
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
	return h.compact(g, applied-h.cfg.SnapshotEntries/4)
}

// compact discards g's log up to index to, which g has applied.
func (h *Host) compact(g *group, to uint64) error {
	var err error
	if h.faults != nil {
		err = h.faults("compact", g.p)
	}
	var term uint64
	g.mu.Lock()
	if err == nil {
		term, err = g.ms.Term(to)
	}
	if err == nil {
		err = g.ms.Compact(to)
	}
	g.mu.Unlock()
	if err != nil {
		return fmt.Errorf("%w: %s: compact to %d: %w", errGroup, g.name, to, err)
	}
	// The log goes only once the state that applied it is durable: a
	// crash may keep this batch and lose an unsynced apply batch before
	// it, which would leave entries neither in the log nor applied
	// (TestCompactionFollowsDurableApply).
	if h.applyUnsynced {
		if err := h.sync(); err != nil {
			return err
		}
	}
	b := h.db.NewBatch()
	defer b.Close()
	b.DeleteRange(logKey(g.p, g.base+1), logKey(g.p, to+1), nil)
	b.Set(groupKey(g.p, kindBase), encodeBase(to, term), nil)
	g.base = to
	h.stats.writes.Add(1)
	if err := b.Commit(pebble.NoSync); err != nil {
		return fmt.Errorf("raftmeta: compact: %w", err)
	}
	return nil
}
