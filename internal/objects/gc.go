package objects

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/redoubt-io/redoubt/internal/meta"
	"github.com/redoubt-io/redoubt/internal/store"
)

// GCDrive is one local drive as garbage collection sees it (*store.Drive).
type GCDrive interface {
	ID() string
	Walk(ctx context.Context, fn func(store.ShardInfo) error) error
	Remove(ctx context.Context, name store.Name) error
}

var _ GCDrive = (*store.Drive)(nil)

// GCOptions tunes one garbage collection pass.
type GCOptions struct {
	// MinAge skips shard files modified less than MinAge ago. It only
	// saves metadata reads for writes in flight; safety never rests on it
	// (a young orphan is kept, an old in-flight shard is kept by its
	// intent).
	MinAge time.Duration
	// Dead reports whether the writer incarnation of an intent is gone for
	// good. nil means: an incarnation of this node (Config.Incarnation's
	// Node) with another nonce. Answering false when unsure only delays
	// collection; answering true for a live writer makes its write fail
	// (errIntentLost), and for a live mover its move, never lose
	// committed data. Answering true for a live collector of another pass
	// still removing the copies a move left can (see relocate.go): say
	// true only of incarnations that can no longer act.
	Dead func(Incarnation) bool
	// LeftoverGrace keeps the copies a relocation moved away from for
	// this long after the move: a reader that read the Ref before the
	// move may still be reading them. Their removal is safe for committed
	// data at any age; the grace is for readers of a superseded Ref.
	LeftoverGrace time.Duration
}

// gcShard is one shard file a pass listed.
type gcShard struct {
	drive GCDrive
	info  store.ShardInfo
}

// GCStats counts what one pass did.
type GCStats struct {
	Scanned      int64 // shard files seen
	Young        int64 // skipped by MinAge
	Untracked    int64 // IDs without ref records (older format), kept
	InFlight     int64 // shards of live writers' intents, kept
	Removed      int64 // orphan shard files removed
	BytesFreed   int64
	IntentsSwept int64 // intents of dead writers deleted
	Settled      int64 // records of dead movers or collectors put back to placed
	Superseded   int64 // copies a move left, kept for LeftoverGrace
	Leftovers    int64 // copies a move left, removed (also in Removed)
	Errors       int64 // removals or reads that failed; retried next pass
}

// CollectGarbage removes, from drives, every shard file of a ref ID that
// no committed record names and no live writer may still commit; see
// doc.go "Garbage collection" for why this is safe. Then it deletes every
// intent of a dead writer. It returns the first metadata error, after
// doing what it could.
func (s *Service) CollectGarbage(ctx context.Context, drives []GCDrive, opts GCOptions) (GCStats, error) {
	var st GCStats
	dead := opts.Dead
	if dead == nil {
		self := s.cfg.Incarnation
		dead = func(inc Incarnation) bool { return inc.Node == self.Node && inc.Nonce != self.Nonce }
	}
	// An intent of this incarnation whose write has ended was abandoned
	// by a writer that could not drop it (TestAbandonedIntentIsCollected).
	abandoned := func(id string, rec refRec) bool {
		return rec.State == refIntent && rec.Inc == s.cfg.Incarnation && !s.writing(id)
	}
	// 1. List first. Every shard listed here was created after its intent
	// was committed, so the reads of step 2, made after, see the intent,
	// its live successor, or the end of both.
	cutoff := s.cfg.Now().Add(-opts.MinAge)
	byID := map[string][]gcShard{}
	for _, d := range drives {
		err := d.Walk(ctx, func(si store.ShardInfo) error {
			st.Scanned++
			if _, ok := RefPartition(si.Name.ID); !ok {
				st.Untracked++
				return nil
			}
			if opts.MinAge > 0 && si.Modified.After(cutoff) {
				st.Young++
				return nil
			}
			byID[si.Name.ID] = append(byID[si.Name.ID], gcShard{d, si})
			return nil
		})
		if err != nil {
			if ctx.Err() != nil {
				return st, err
			}
			// A failed drive is skipped; its shards wait for a pass that
			// can read it.
			st.Errors++
			s.log.Warn("gc: list drive", "drive", d.ID(), "err", err)
		}
	}
	ids := make([]string, 0, len(byID))
	for id := range byID {
		ids = append(ids, id)
	}
	slices.Sort(ids)

	// 2. Decide each ID by its ref record, read linearizably, up to
	// gcReadBatch records of a partition in one read (one round, not one
	// per ID).
	var firstErr error
	// group sorts IDs by the partition holding their records now; a
	// partition that split under a read has its IDs sorted again.
	group := func(ids []string) map[meta.Partition][]string {
		byPart := map[meta.Partition][]string{}
		for _, id := range ids {
			p, _ := RefPartition(id)
			leaf, ok := s.refHome(p)
			if !ok {
				st.Untracked += int64(len(byID[id]))
				continue
			}
			byPart[leaf] = append(byPart[leaf], id)
		}
		return byPart
	}
	for byPart := group(ids); len(byPart) > 0; {
		var again []string
		for _, p := range slices.Sorted(maps.Keys(byPart)) {
			for batch := range slices.Chunk(byPart[p], gcReadBatch) {
				reads := make([]meta.Read, len(batch))
				for i, id := range batch {
					reads[i] = meta.Get(refKey(id))
				}
				items, _, err := meta.GetMany(ctx, s.md, p, reads, meta.ReadOptions{})
				if err != nil && s.md.learnFrom(err) {
					again = append(again, batch...)
					continue
				}
				if err != nil {
					st.Errors += int64(len(batch))
					if firstErr == nil {
						firstErr = metaErr("gc: read ref records", err)
					}
					if ctx.Err() != nil {
						return st, firstErr
					}
					continue
				}
				for i, id := range batch {
					s.collectID(ctx, p, id, items[i], byID[id], dead, abandoned, opts, &st)
				}
			}
		}
		byPart = group(again)
	}

	// 3. Sweep intents of dead writers that left no shard on these
	// drives (a crash before the first shard, or shards elsewhere: they
	// become plain orphans for their drives' next pass), and settle the
	// records of dead movers and collectors likewise (the copies they
	// leave are collected by the passes of their drives).
	for queue := s.md.parts(); len(queue) > 0; {
		p := queue[0]
		queue = queue[1:]
		type found struct {
			id  string
			rev uint64
			rec refRec
		}
		var gone []found
		pre := []byte{tagRef}
		err := s.md.Scan(ctx, p, pre, prefixEnd(pre), func(k []byte, it meta.Item) bool {
			rec, err := decodeRefRec(it.Value)
			if err == nil && ((rec.State == refIntent || rec.State == refMoving || rec.State == refReaping) && dead(rec.Inc) || abandoned(string(k[1:]), rec)) {
				gone = append(gone, found{string(k[1:]), it.Rev, rec})
			}
			return true
		})
		if err != nil && s.md.learnFrom(err) {
			// It split: its children hold its records.
			c := s.md.tree.children(p)
			queue = append([]meta.Partition{c[0], c[1]}, queue...)
			continue
		}
		if err != nil {
			st.Errors++
			if firstErr == nil {
				firstErr = metaErr("gc: scan intents", err)
			}
			if ctx.Err() != nil {
				break
			}
			continue
		}
		for _, g := range gone {
			if g.rec.State == refIntent {
				s.sweepIntent(ctx, p, g.id, g.rev, &st)
			} else {
				s.settleRef(ctx, p, g.id, g.rev, &g.rec, &st)
			}
		}
	}
	return st, firstErr
}

// gcReadBatch bounds the ref records one read of a collection asks for.
const gcReadBatch = 256

// collectID decides the shards of ref ID id listed on these drives by its
// ref record it (absent: revision 0), read after they were listed, and
// removes them when no committed record names them and no live writer may
// still commit them.
func (s *Service) collectID(ctx context.Context, p meta.Partition, id string, it meta.Item, shards []gcShard, dead func(Incarnation) bool, abandoned func(string, refRec) bool, opts GCOptions, st *GCStats) {
	if it.Rev != 0 {
		rec, err := decodeRefRec(it.Value)
		if err != nil {
			st.Errors++
			s.log.Warn("gc: bad ref record; shards kept", "ref", id, "err", err)
			return
		}
		if rec.State == refMoving && dead(rec.Inc) || rec.State == refReaping && dead(rec.Inc) {
			// The mover or collector is gone: the record goes back to
			// where the shards are, conditionally, before any of its
			// unnamed copies is judged.
			rev, ok := s.settleRef(ctx, p, id, it.Rev, &rec, st)
			if !ok {
				return
			}
			it.Rev = rev
		}
		if rec.live() {
			s.collectLeftovers(ctx, p, id, it.Rev, rec, shards, dead, opts.LeftoverGrace, st)
			return
		}
		if !dead(rec.Inc) && !abandoned(id, rec) {
			st.InFlight += int64(len(shards))
			return
		}
		// The intent goes first: once it is gone the dead writer's
		// commit, conditional on it, can never apply.
		if !s.sweepIntent(ctx, p, id, it.Rev, st) {
			return
		}
	}
	s.removeShards(ctx, shards, "orphan shard", st)
}

// removeShards removes shards from their drives, counting them in st, and
// returns how many went; what names them in the log of a failure.
func (s *Service) removeShards(ctx context.Context, shards []gcShard, what string, st *GCStats) int64 {
	var n int64
	for _, sh := range shards {
		if err := sh.drive.Remove(ctx, sh.info.Name); err != nil {
			st.Errors++
			s.log.Warn("gc: remove "+what, "drive", sh.drive.ID(), "shard", sh.info.Name.String(), "err", err)
			continue
		}
		n++
		st.Removed++
		st.BytesFreed += sh.info.Size
	}
	return n
}

// sweepIntent deletes the intent of a dead writer if it is still at rev.
// A conflict means the record changed (it cannot become live: only its
// writer could do that, and that writer is dead), so it is re-read next
// pass; true when the intent is gone.
func (s *Service) sweepIntent(ctx context.Context, p meta.Partition, id string, rev uint64, st *GCStats) bool {
	k := refKey(id)
	_, err := s.md.Commit(ctx, p, meta.Txn{
		Conds:   []meta.Cond{{Key: k, Rev: rev}},
		Deletes: [][]byte{k},
	})
	if err != nil {
		if !isConflict(err) {
			st.Errors++
			s.log.Warn("gc: delete dead intent", "ref", id, "err", err)
		}
		return false
	}
	st.IntentsSwept++
	return true
}

// settleRef turns the record of a move or reaping whose owner is dead
// back into a plain placed record, if it is still at rev. It returns the
// new revision.
func (s *Service) settleRef(ctx context.Context, p meta.Partition, id string, rev uint64, rec *refRec, st *GCStats) (uint64, bool) {
	settled := refRec{State: refPlaced, Drives: rec.Drives, Moved: rec.Moved}
	k := refKey(id)
	nrev, err := s.md.Commit(ctx, p, meta.Txn{
		Conds: []meta.Cond{{Key: k, Rev: rev}},
		Puts:  []meta.KV{{Key: k, Value: settled.encode()}},
	})
	if err != nil {
		if !isConflict(err) {
			st.Errors++
			s.log.Warn("gc: settle the record of a dead mover", "ref", id, "err", err)
		}
		return 0, false
	}
	st.Settled++
	*rec = settled
	return nrev, true
}

// collectLeftovers removes the shards of a live ref that its record does
// not name: copies a committed move left behind (or a dead mover's
// unfinished ones). Only a placed record is acted on, and only under a
// reaping mark committed on its revision, so that no move can be writing
// any of those copies while they are removed: a move begins with a
// commit conditional on the revision it read, and one of the two
// commits fails. A record with a live move or reaping in flight waits for
// the next pass.
func (s *Service) collectLeftovers(ctx context.Context, p meta.Partition, id string, rev uint64, rec refRec, shards []gcShard, dead func(Incarnation) bool, grace time.Duration, st *GCStats) {
	var gone []gcShard
	for _, sh := range shards {
		if !rec.keeps(sh.drive.ID(), sh.info.Name.Shard, dead) {
			gone = append(gone, sh)
		}
	}
	if len(gone) == 0 {
		return
	}
	if rec.State != refPlaced || s.cfg.Now().Before(time.UnixMilli(rec.Moved).Add(grace)) {
		st.Superseded += int64(len(gone))
		return
	}
	k := refKey(id)
	mark := rec
	mark.State, mark.Inc, mark.Time = refReaping, s.cfg.Incarnation, s.cfg.Now().UnixMilli()
	mrev, err := s.md.Commit(ctx, p, meta.Txn{
		Conds: []meta.Cond{{Key: k, Rev: rev}},
		Puts:  []meta.KV{{Key: k, Value: mark.encode()}},
	})
	if err != nil {
		if !isConflict(err) {
			st.Errors++
			s.log.Warn("gc: mark a ref for reaping", "ref", id, "err", err)
		}
		return
	}
	st.Leftovers += s.removeShards(ctx, gone, "a moved shard's old copy", st)
	_, err = s.md.Commit(context.WithoutCancel(ctx), p, meta.Txn{
		Conds: []meta.Cond{{Key: k, Rev: mrev}},
		Puts:  []meta.KV{{Key: k, Value: rec.encode()}},
	})
	if err != nil && !isConflict(err) {
		// The mark stays until this incarnation is known dead; moves of
		// this ref wait until then.
		st.Errors++
		s.log.Warn("gc: clear a reaping mark", "ref", id, "err", err)
	}
}

// Incarnation returns the writer incarnation of this Service's intents.
func (s *Service) Incarnation() Incarnation { return s.cfg.Incarnation }

func (st GCStats) String() string {
	return fmt.Sprintf("scanned %d, removed %d (%d bytes; %d left by moves), in flight %d, intents swept %d, moves settled %d, moved copies kept %d, errors %d",
		st.Scanned, st.Removed, st.BytesFreed, st.Leftovers, st.InFlight, st.IntentsSwept, st.Settled, st.Superseded, st.Errors)
}
