package raftmeta

import (
	"context"
	"encoding/binary"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/objstorage/objstorageprovider"
	"github.com/cockroachdb/pebble/v2/sstable"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/redoubt-io/redoubt/internal/meta"
	"github.com/redoubt-io/redoubt/internal/placement"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// Splits. A group splits into two new groups, its children, each of
// which starts with the part of its data that Config.Splitter gives it
// (all of it without one). Nothing crosses the network: as CockroachDB's
// replicas do on a split trigger, each replica makes the children from
// its own copy.
//
//  1. Split proposes a split entry to the group. Every replica applies it
//     alike: it writes the split record ('S' p: the children, the entry's
//     index and term, the configuration then) in the apply batch, and
//     from then on the group refuses everything: the Txns of later
//     entries are not applied and their callers get meta.ErrMoved, as
//     does every read and every request forwarded here; configuration
//     changes are refused alike. So the group's data never changes after
//     the split entry, on any replica.
//  2. At the next turn of the event loop (finishSplit), the loop, or for
//     a group of more than inlineSplitBytes a goroutine, writes each
//     child's state into an sstable: its share of the
//     group's items, an apply state and log base at the split entry with
//     the group's configuration and replica set as of it (the same
//     replica IDs), and a hard state of the entry's term committed to
//     it. The loop then (installSplit) ingests each table in place of
//     whatever the child had and, in one synced batch (which makes the
//     split record durable too), names the children as its replicas and
//     deletes the group's state, keeping the split record. Every replica
//     that applies the split makes the same children, so they elect
//     leaders among themselves as any new group does; the group's leader
//     campaigns in them at once. A crash before the batch leaves the
//     group with its split record (or, if the apply batch was lost too,
//     before the split entry, applied again), and the children are made
//     again; a table ingested before the crash is replaced.
//  3. A child this host already has is left as it is if it holds any
//     state (a leader's snapshot filled it): it is at least as new. One
//     made empty for a message (a vote request of the child's leader
//     that came before this replica applied the split) is replaced by
//     the one made from the copy, keeping the term and vote it gave. A
//     child this host has a tombstone of is not made.
//
// A replica of the group that never applies the split (cut off while
// the others did, and left without a quorum once they stopped) asks, as
// any quiet replica does, whether it is still a member (checkReplica);
// the answer is that the group split. It deletes its copy only once its
// replicas of both children hold at least the split's index, which the
// children's leaders send it, so a split never lowers the number of
// copies of any item. A replica removed before the split (cut off while
// it was removed) never gets replicas of the children, and is no copy
// the group counts: the answer says so, from the configuration a
// member's split record keeps, and it is deleted at once. The split record keeps the group from being made
// again by a late message (makeReplica, EnsureGroup).
//
// Hosts that do not know a child yet forward its requests to the
// members of its parent, which are the child's first members
// (forwardTarget).
//
// Tests: testdata/split*.txt, TestSplit* (TestSplitterDividesItems for
// Config.Splitter).

// splitRec is what a host keeps of a group that split: its children
// and, while its replica's data waits to be made into them, the split
// entry's index and term and the apply tail (configuration and replica
// set) then. A record kept only to refuse the group (learned from
// another member) has no tail.
type splitRec struct {
	into        [2]meta.Partition
	index, term uint64
	tail        []byte
}

const splitRecVersion = 1

func encodeSplitRec(r *splitRec) []byte {
	b := make([]byte, 0, 32+len(r.tail))
	b = append(b, splitRecVersion)
	b = binary.BigEndian.AppendUint32(b, uint32(r.into[0]))
	b = binary.BigEndian.AppendUint32(b, uint32(r.into[1]))
	b = binary.AppendUvarint(b, r.index)
	b = binary.AppendUvarint(b, r.term)
	return appendBytes(b, r.tail)
}

func decodeSplitRec(b []byte) (*splitRec, error) {
	r := reader{b: b}
	if v := r.byte1("version"); r.err == nil && v != splitRecVersion {
		r.fail(fmt.Sprintf("unknown split record version %d", v))
	}
	s := &splitRec{into: [2]meta.Partition{meta.Partition(r.u32("child")), meta.Partition(r.u32("child"))}}
	s.index, s.term = r.uvarint("index"), r.uvarint("term")
	s.tail = r.bytes("tail")
	if len(s.tail) == 0 {
		s.tail = nil
	}
	return s, r.end()
}

// movedError is meta.ErrMoved for group p, which split into into at index.
type movedError struct {
	p     meta.Partition
	into  [2]meta.Partition
	index uint64
	// member answers a replica check (opReplica): whether the replica
	// asked about was in the group's configuration at the split, as the
	// answering host's split record has it.
	member splitMember
}

// splitMember is whether a replica was a member of its group when the
// group split.
type splitMember byte

const (
	memberUnknown splitMember = iota // the answering host kept no configuration
	memberAtSplit
	removedBeforeSplit
)

func (e *movedError) Error() string {
	return fmt.Sprintf("raftmeta: group %s split into %s and %s at index %d", partitionName(e.p),
		partitionName(e.into[0]), partitionName(e.into[1]), e.index)
}

func (e *movedError) Is(target error) bool { return target == meta.ErrMoved }

// As gives a *meta.MovedError for errors.As.
func (e *movedError) As(target any) bool {
	if t, ok := target.(**meta.MovedError); ok {
		*t = &meta.MovedError{P: e.p, Into: e.into}
		return true
	}
	return false
}

func movedResponse(p meta.Partition, r *splitRec) response {
	v := binary.BigEndian.AppendUint32(nil, uint32(p))
	v = binary.BigEndian.AppendUint32(v, uint32(r.into[0]))
	v = binary.BigEndian.AppendUint32(v, uint32(r.into[1]))
	return response{status: stMoved, value: v, rev: r.index}
}

// movedReply is movedResponse for request q; a replica check (opReplica)
// also learns whether its replica was a member at the split.
func movedReply(q *request, r *splitRec) response {
	resp := movedResponse(q.p, r)
	if q.op == opReplica {
		resp.value = append(resp.value, byte(r.member(q.node)))
	}
	return resp
}

// member says whether replica id was in the group's configuration at the
// split, from the record's tail; a record without one cannot say.
func (r *splitRec) member(id uint64) splitMember {
	if r.tail == nil {
		return memberUnknown
	}
	_, _, set, err := decodeApplyStateSet(encodeApplyState(r.index, r.tail))
	if err != nil {
		return memberUnknown
	}
	if _, ok := set.get(id); ok {
		return memberAtSplit
	}
	return removedBeforeSplit
}

// moved is the error of a stMoved response.
func (s *response) moved() *movedError {
	e := &movedError{index: s.rev}
	if len(s.value) >= 12 {
		e.p = meta.Partition(binary.BigEndian.Uint32(s.value))
		e.into = [2]meta.Partition{meta.Partition(binary.BigEndian.Uint32(s.value[4:])), meta.Partition(binary.BigEndian.Uint32(s.value[8:]))}
	}
	if len(s.value) == 13 && splitMember(s.value[12]) <= removedBeforeSplit {
		e.member = splitMember(s.value[12])
	}
	return e
}

// Split splits group p into the new groups into[0] and into[1] (see
// Splits): it returns once the split is applied at p's leader. Splitting
// again into the same children succeeds at once; into other ones fails
// with meta.ErrMoved. The children must be distinct groups that never
// existed; that is the caller's to ensure.
func (h *Host) Split(ctx context.Context, p meta.Partition, into [2]meta.Partition) error {
	if into[0] == into[1] || into[0] == p || into[1] == p || p == meta.System || into[0] == meta.System || into[1] == meta.System {
		return fmt.Errorf("raftmeta: cannot split %s into %s and %s", partitionName(p), partitionName(into[0]), partitionName(into[1]))
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	ctx, cancel := withTimeout(ctx, h.cfg.ProposalTimeout)
	defer cancel()
	resp := h.retry(ctx, &request{op: opSplit, p: p, into: into})
	if resp.status == stMoved && resp.moved().into == into {
		return nil
	}
	return resp.err()
}

// splitOf returns the split record of group p, nil if p has not split
// as far as this host knows.
func (h *Host) splitOf(p meta.Partition) *splitRec {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.mu.splits[p]
}

// movedHere answers request q if its group split: a stMoved response,
// and true.
func (h *Host) movedHere(q *request) (response, bool) {
	if !h.anySplit.Load() {
		return response{}, false
	}
	if r := h.splitOf(q.p); r != nil {
		return movedReply(q, r), true
	}
	return response{}, false
}

// splitPending says whether p is a child of a split this host applied
// and has not made the children of yet. h.mu is held.
func (h *Host) splitPending(p meta.Partition) bool {
	parent, ok := h.mu.parents[p]
	if !ok {
		return false
	}
	rec := h.mu.splits[parent]
	return rec != nil && rec.tail != nil && h.mu.groups[parent] != nil
}

// learnMoved records, from a response, that group p split: requests for
// its children go to p's members until this host knows theirs.
func (h *Host) learnMoved(p meta.Partition, e *movedError) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.anySplit.Store(true)
	for _, c := range e.into {
		if _, ok := h.mu.parents[c]; !ok {
			h.mu.parents[c] = p
		}
	}
}

// applySplit applies a split entry e of g, proposed as prop, into the
// apply batch ab, with cs and set the configuration as of e. It returns
// the split record, or the error every replica refuses the entry with.
func applySplit(ab *pebble.Batch, g *group, e *raftpb.Entry, into [2]meta.Partition, cs *raftpb.ConfState, set *replicaSet) (*splitRec, error) {
	if into[0] == into[1] || into[0] == g.p || into[1] == g.p || g.p == meta.System || into[0] == meta.System || into[1] == meta.System {
		return nil, fmt.Errorf("raftmeta: cannot split %s into %s and %s", g.name, partitionName(into[0]), partitionName(into[1]))
	}
	r := &splitRec{into: into, index: e.GetIndex(), term: e.GetTerm(), tail: applyTail(cs, set)}
	ab.Set(splitKey(g.p), encodeSplitRec(r), nil)
	return r, nil
}

// finishSplit starts making this host's replicas of g's children from
// g's data (step 2 of Splits): their tables are written on a goroutine
// of their own, since that takes time in proportion to the data, and
// installed at a later turn of the loop (installSplit). Event loop only.
func (h *Host) finishSplit(g *group) error {
	rec := g.split.Load()
	h.mu.Lock()
	ok := h.mu.groups[g.p] == g && rec != nil && rec.tail != nil && !g.splitting
	h.mu.Unlock()
	if !ok {
		return nil
	}
	lower, upper := groupBounds(g.p)
	if size, err := h.db.EstimateDiskUsage(lower, upper); err == nil && size < inlineSplitBytes {
		// Small (its tables, and at most a memtable's worth besides):
		// made in this turn, which also keeps a simulated run's order
		// of events the seed's alone.
		built := &builtSplit{}
		built.paths, built.err = h.writeChildren(g, rec)
		return h.installSplit(g, built)
	}
	s := &h.streams
	s.mu.Lock()
	if s.stopped {
		s.mu.Unlock()
		return nil
	}
	s.wg.Add(1)
	s.mu.Unlock()
	g.splitting = true
	run := h.goStream
	if run == nil {
		run = func(fn func()) { go fn() }
	}
	run(func() {
		defer s.wg.Done()
		built := &builtSplit{}
		built.paths, built.err = h.writeChildren(g, rec)
		h.lifeMu.Lock()
		h.life = append(h.life, lifeOp{g: g, p: g.p, built: built})
		h.lifeMu.Unlock()
		h.poke()
	})
	return nil
}

// inlineSplitBytes bounds the stored size of a group whose children the
// event loop makes itself; larger ones are written on a goroutine.
const inlineSplitBytes = 8 << 20

// builtSplit is the outcome of writing the tables of a group's children.
type builtSplit struct {
	paths [2]string
	err   error
}

// installSplit installs the tables of g's children that finishSplit
// wrote, and deletes g's state. Event loop only.
func (h *Host) installSplit(g *group, built *builtSplit) error {
	g.splitting = false
	for _, p := range built.paths {
		if p != "" {
			defer h.fs.Remove(p)
		}
	}
	rec := g.split.Load()
	if built.err != nil {
		// The split is made again once the group is loaded again.
		h.groupFailed(g, "split", built.err)
		return nil
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.mu.groups[g.p] != g || rec == nil {
		return nil
	}
	var made, replaced []meta.Partition
	var hardStates []*raftpb.HardState
	for i, c := range rec.into {
		var hs *raftpb.HardState
		if old := h.mu.groups[c]; old != nil {
			if old.self != g.self || old.applied.Load() != 0 || old.rn == nil {
				h.log.Info("split: child already here; left as it is", "group", g.name, "child", partitionName(c))
				continue
			}
			// Made empty for a message of the child's leader before this
			// replica applied the split: it is made from the copy
			// instead, keeping the term and vote it may have given.
			hs = old.hs
			replaced = append(replaced, c)
		} else if g.self.gen < h.mu.tombs[c] {
			h.log.Info("split: child deleted here; not made again", "group", g.name, "child", partitionName(c))
			continue
		}
		lower, upper := groupBounds(c)
		if _, err := h.db.IngestAndExcise(context.Background(), []string{built.paths[i]}, nil, nil, pebble.KeyRange{Start: lower, End: upper}); err != nil {
			return fmt.Errorf("raftmeta: split %s: child %s: %w", g.name, partitionName(c), err)
		}
		made = append(made, c)
		hardStates = append(hardStates, hs)
	}
	b := h.db.NewBatch()
	defer b.Close()
	for i, c := range made {
		b.Set(groupRecordKey(c), encodeGroupRecord(g.self), nil)
		if hs := hardStates[i]; hs != nil && hs.GetTerm() >= rec.term {
			merged := &raftpb.HardState{Term: new(hs.GetTerm()), Commit: new(rec.index)}
			if hs.GetTerm() > rec.term || hs.GetVote() != 0 {
				merged.Vote = new(hs.GetVote())
			}
			raw, err := proto.Marshal(merged)
			if err != nil {
				return err
			}
			b.Set(groupKey(c, kindHard), raw, nil)
		}
	}
	g.gone.Store(true)
	g.hot.BeginWrite(nil) // never ended: nothing is read through g again
	clearReplica(b, g.p)
	// Synced: the children may acknowledge writes as soon as they run,
	// and the split record, written unsynced by the apply batch, must
	// last as long as they do.
	if err := b.Commit(pebble.Sync); err != nil {
		return fmt.Errorf("raftmeta: split %s: %w", g.name, err)
	}
	// The parent's leader campaigns in the children at once, as
	// CockroachDB's does: they would otherwise wait out an election
	// timeout, and the others' votes are likely (they make their
	// children from their copies as this host did).
	wasLeader := g.leader.Load()
	h.dropLocked(g)
	h.stats.splits.Add(1)
	h.log.Info("group split", "group", g.name, "into", []string{partitionName(rec.into[0]), partitionName(rec.into[1])},
		"index", rec.index, "made", len(made))
	for _, c := range replaced {
		old := h.mu.groups[c]
		old.gone.Store(true)
		old.hot.BeginWrite(nil)
		h.dropLocked(old)
	}
	for _, c := range made {
		h.mu.parents[c] = g.p
		cg, err := h.loadGroup(c)
		if err != nil {
			cg = h.brokenGroup(c, err)
		}
		h.addGroupLocked(cg)
		if cg.rn != nil {
			if wasLeader {
				cg.mu.Lock()
				cg.wake()
				_ = cg.rn.Campaign()
				cg.mu.Unlock()
			}
			h.markDirty(cg)
		}
	}
	return nil
}

// Splitter divides the items of a splitting group between its two
// children. Split reads the parent's items with scan, which it may call
// more than once (each call reads them all, in key order, from one
// view), and hands each child's items to emit, in key order for each
// child: child 0 is into[0]. An item may go to both, or to neither.
// Split must decide alike on every host, since every replica of the
// group makes the children from its own copy; an error stops the
// replica's split, which is tried again later.
type Splitter interface {
	Split(parent meta.Partition, into [2]meta.Partition,
		scan func(fn func(key []byte, it meta.Item) error) error,
		emit func(child int, key []byte, it meta.Item) error) error
}

// writeChildren writes, to two tables in the staging directory, the
// initial state of g's children made from g's data as rec describes
// (and Config.Splitter divides it), and returns their paths. g's data
// does not change after the split; each scan reads it in one view.
func (h *Host) writeChildren(g *group, rec *splitRec) (paths [2]string, err error) {
	if h.faults != nil {
		if err := h.faults("split", g.p); err != nil {
			return paths, err
		}
	}
	hs, err := proto.Marshal(&raftpb.HardState{Term: new(rec.term), Commit: new(rec.index)})
	if err != nil {
		return paths, err
	}
	var ws [2]*tableWriter
	defer func() {
		if err == nil {
			return
		}
		for i, w := range ws {
			if w != nil {
				w.abort()
				h.fs.Remove(paths[i])
			}
		}
	}()
	for i, c := range rec.into {
		paths[i] = h.fs.PathJoin(h.cfg.Dir, stagingDir, fmt.Sprintf("split-%d-%d.sst", g.p, c))
		f, err := h.fs.Create(paths[i], vfs.WriteCategoryUnspecified)
		if err != nil {
			return paths, err
		}
		ws[i] = newTableWriter(f, h.tables)
		// Apply state and log base ('a', 'b'), the items ('d'), the
		// hard state ('h'): in key order.
		ws[i].set(groupKey(c, kindApply), encodeApplyState(rec.index, rec.tail))
		ws[i].set(groupKey(c, kindBase), encodeBase(rec.index, rec.term))
	}
	lower, upper := dataBounds(g.p, nil, nil)
	scan := func(fn func(key []byte, it meta.Item) error) error {
		it, err := h.db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
		if err != nil {
			return err
		}
		defer it.Close()
		var ferr error
		err = forEachItem(it, func(k []byte, item meta.Item) bool {
			ferr = fn(k, item)
			return ferr == nil
		})
		if ferr != nil {
			return ferr
		}
		return err
	}
	emit := func(child int, key []byte, it meta.Item) error {
		if child != 0 && child != 1 {
			return fmt.Errorf("split of %s: no child %d", g.name, child)
		}
		w := ws[child]
		w.set(dataKey(rec.into[child], key), encodeItem(it.Rev, it.Value))
		return w.err
	}
	if s := h.cfg.Splitter; s != nil {
		err = s.Split(g.p, rec.into, scan, emit)
	} else {
		err = scan(func(key []byte, it meta.Item) error {
			if err := emit(0, key, it); err != nil {
				return err
			}
			return emit(1, key, it)
		})
	}
	if err != nil {
		return paths, err
	}
	for i, w := range ws {
		w.set(groupKey(rec.into[i], kindHard), hs)
		if err = w.close(); err != nil {
			return paths, err
		}
	}
	return paths, nil
}

// checkMoved handles the answer to a replica check of this host's
// replica g of a group that split, which names its children (e): a
// replica that never applied the split is deleted, and the split
// recorded, once this host's replicas of both children hold the split's
// index (keeps); until then it stays, so that no item loses a copy. A
// replica the answer says was removed before the split is deleted at
// once: it was out of the configuration for good (an ID is never given
// twice), the children started without it, and it is no copy the group
// counts (testdata/split_removed_straggler.txt).
func (h *Host) checkMoved(g *group, e *movedError) {
	h.learnMoved(g.p, e)
	if g.split.Load() != nil {
		return // applied here: finishSplit makes the children
	}
	if e.member == removedBeforeSplit {
		h.lifeMu.Lock()
		h.life = append(h.life, lifeOp{g: g, p: g.p, why: "removed from its group before the group split", moved: &splitRec{into: e.into, index: e.index}})
		h.lifeMu.Unlock()
		h.poke()
		return
	}
	for _, c := range e.into {
		if !h.keeps(c, e.index, 0) {
			h.log.Info("split: waiting for the children before deleting the group", "group", g.name, "child", partitionName(c))
			return
		}
	}
	h.lifeMu.Lock()
	h.life = append(h.life, lifeOp{g: g, p: g.p, why: "its group split", moved: &splitRec{into: e.into, index: e.index}})
	h.lifeMu.Unlock()
	h.poke()
}

// keeps says whether this host keeps the items of group p as of its log
// index: its replica of p applied that far, or p split here at or after
// it and the groups it split into hold their own split's index. A child
// that split again has no replica left, only its split record: without
// following it down, a stale replica of its parent would wait for it
// for good (simulation seed 6990802425692535423 with -sim.quiesce).
func (h *Host) keeps(p meta.Partition, index uint64, depth int) bool {
	if g := h.replica(p); g != nil {
		return g.applied.Load() >= index
	}
	rec := h.splitOf(p)
	if rec == nil || rec.index < index || depth >= placement.MaxSplitDepth {
		return false
	}
	return h.keeps(rec.into[0], rec.index, depth+1) && h.keeps(rec.into[1], rec.index, depth+1)
}

// removeSplit deletes g's state, as removeReplica does, keeping rec in
// place of a tombstone. Event loop only.
func (h *Host) removeSplit(g *group, rec *splitRec, why string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.mu.groups[g.p] != g {
		return nil
	}
	b := h.db.NewBatch()
	defer b.Close()
	clearReplica(b, g.p)
	b.Set(splitKey(g.p), encodeSplitRec(rec), nil)
	g.gone.Store(true)
	g.hot.BeginWrite(nil)
	if err := b.Commit(pebble.NoSync); err != nil {
		return fmt.Errorf("raftmeta: delete replica of %s: %w", g.name, err)
	}
	h.mu.splits[g.p] = rec
	h.anySplit.Store(true)
	h.dropLocked(g)
	h.log.Info("replica deleted", "group", g.name, "replica", g.self.id, "generation", g.self.gen, "why", why)
	return nil
}

// loadSplits reads the split records into h.mu.splits and h.mu.parents.
func (h *Host) loadSplits() error {
	return h.forEachRecord(splitPrefix, "split record", func(p meta.Partition, v []byte) error {
		rec, err := decodeSplitRec(v)
		if err != nil {
			return fmt.Errorf("raftmeta: split record of %s: %w", partitionName(p), err)
		}
		h.mu.splits[p] = rec
		for _, c := range rec.into {
			h.mu.parents[c] = p
		}
		h.anySplit.Store(true)
		return nil
	})
}

// tableWriter writes an sstable, keeping its first error.
type tableWriter struct {
	w      *sstable.Writer
	err    error
	closed bool
}

func newTableWriter(f vfs.File, o sstable.WriterOptions) *tableWriter {
	return &tableWriter{w: sstable.NewWriter(objstorageprovider.NewFileWritable(f), o)}
}

func (t *tableWriter) set(k, v []byte) {
	if t.err == nil {
		t.err = t.w.Set(k, v)
	}
}

// close finishes the table, synced, and returns the first error.
func (t *tableWriter) close() error {
	t.closed = true
	if err := t.w.Close(); t.err == nil {
		t.err = err
	}
	return t.err
}

// abort closes the table if close did not; its file is the caller's to
// remove.
func (t *tableWriter) abort() {
	if !t.closed {
		t.closed = true
		_ = t.w.Close()
	}
}
