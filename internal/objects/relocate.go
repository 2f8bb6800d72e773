package objects

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/redoubt-io/redoubt/internal/blocks"
	"github.com/redoubt-io/redoubt/internal/meta"
)

// Relocation moves the data of committed object versions to other drives:
// around drives that left the layout (repair) and onto the drives a new
// layout gives their partition (rebalance). A Ref keeps its ID; its shards
// are written to the new drives, then one Txn rewrites the version record
// to name them, and garbage collection later removes the copies left
// behind (gc.go). Until that commit every reader uses the old copies, which
// are complete; after it, readers of the new record use the new ones.
//
// A move of a tracked Ref (one with a ref record) is guarded like a write:
//
//  1. it reads the ref record, then the version record, which must still
//     be at the revision the scan read (so the drives it leaves are the
//     committed ones), and commits the ref record as moving (the drives
//     it leaves, those it writes, this incarnation), conditional on the
//     revision it read: a collector reaping old copies (reaping) or
//     another mover (moving) that is not dead makes it wait;
//  2. it writes the new shards;
//  3. it commits the version record naming the new drives and the ref
//     record as placed there, conditional on both records' revisions.
//
// A move that fails at step 2 or 3 re-commits its moving record
// (conditionally: proof that its own commit can no longer apply and that
// nobody took the record over), drops the new shards, and puts the record
// back to placed on the old drives (abandonMove). If any of that fails,
// garbage collection settles the record once this incarnation is dead and
// removes the copies it does not name. A mover never removes a copy
// except its own, under its own live moving record; every other removal
// is a collector's, under a reaping mark. So a mover wrongly judged dead
// costs only its move; a collector wrongly judged dead (by GCOptions.Dead
// or RelocateOptions.Dead) while it still removes copies can remove the
// new copy a mover that took its mark over has just written: Dead must
// answer true only for incarnations that can no longer act.
//
// Pending multipart parts are not moved: a completion copies their Refs
// into a version without checking the part records, so it could commit a
// Ref naming copies a move has left. They are moved once completed.

// RelocatePlan says where the shards of ref, data of partition p, should
// be: a drive ID per shard, or false to leave them where they are.
type RelocatePlan func(p meta.Partition, ref blocks.Ref) ([]string, bool)

// RelocateOptions tunes Relocate.
type RelocateOptions struct {
	// Plan chooses where data goes; required.
	Plan RelocatePlan
	// DryRun counts what would move, moving nothing.
	DryRun bool
	// Before, when set, is called before each move with the bytes it will
	// write (a rate limiter waits here); an error stops the pass.
	Before func(ctx context.Context, bytes int64) error
	// After, when set, is called after each move (or failed move) with the
	// bytes written and the error.
	After func(ref blocks.Ref, bytes int64, err error)
	// Dead reports whether the incarnation of another mover or collector
	// is gone for good; as in GCOptions.
	Dead func(Incarnation) bool
}

// RelocateStats counts what one Relocate call found and did.
type RelocateStats struct {
	Refs       int64 // Refs the plan wants elsewhere
	Bytes      int64 // shard bytes those moves write
	Moved      int64 // Refs moved and committed
	MovedBytes int64
	// Busy counts Refs another mover or collector holds, or whose
	// version changed since the scan read it; tried next pass.
	Busy   int64
	Failed int64
}

// relocateBatch bounds the versions one scan of a partition collects
// before their moves are made.
const relocateBatch = 256

// Relocate moves, in partition p, the data of every object version whose
// Ref opts.Plan wants on other drives (see the comment above). It returns
// the first metadata error of a scan; failed moves are counted, reported
// to opts.After, and left for the next pass.
// A partition that split is relocated through the partitions now holding
// its keys; opts.Plan is still asked with p, whose drives their data was
// placed on.
func (s *Service) Relocate(ctx context.Context, p meta.Partition, opts RelocateOptions) (RelocateStats, error) {
	var st RelocateStats
	queue := s.md.under(p)
	for len(queue) > 0 {
		leaf := queue[0]
		queue = queue[1:]
		err := s.relocate(ctx, p, leaf, opts, &st)
		if err != nil && s.md.learnFrom(err) {
			c := s.md.tree.children(leaf)
			queue = append([]meta.Partition{c[0], c[1]}, queue...)
			continue
		}
		if err != nil {
			return st, err
		}
	}
	return st, nil
}

// relocate is Relocate of partition p for the keys partition leaf holds.
func (s *Service) relocate(ctx context.Context, p, leaf meta.Partition, opts RelocateOptions, st *RelocateStats) error {
	mover, ok := s.data.(blocks.Mover)
	if !ok && !opts.DryRun {
		return fmt.Errorf("objects: relocate: the data store cannot move data")
	}
	if ok && !opts.DryRun {
		s.retryAbandoned(ctx, mover)
	}
	dead := opts.Dead
	if dead == nil {
		self := s.cfg.Incarnation
		dead = func(inc Incarnation) bool { return inc.Node == self.Node && inc.Nonce != self.Nonce }
	}
	type found struct {
		key []byte
		rev uint64
		rec versionRec
	}
	start := []byte{tagVersion}
	end := prefixEnd(start)
	for {
		var batch []found
		var ferr error
		err := s.md.Scan(ctx, leaf, start, end, func(k []byte, it meta.Item) bool {
			v, err := versionItem(k, it)
			if err != nil {
				ferr = err
				return false
			}
			start = append(slices.Clone(k), 0)
			for _, part := range v.Parts {
				if part.Ref.ID == "" {
					continue
				}
				if _, move := opts.Plan(p, part.Ref); move {
					batch = append(batch, found{slices.Clone(k), it.Rev, v})
					break
				}
			}
			return len(batch) < relocateBatch
		})
		if err != nil {
			return metaErr("relocate: scan versions", err)
		}
		if ferr != nil {
			return ferr
		}
		for _, f := range batch {
			rev, rec := f.rev, f.rec
			for i := range rec.Parts {
				ref := rec.Parts[i].Ref
				if ref.ID == "" {
					continue
				}
				to, move := opts.Plan(p, ref)
				if !move {
					continue
				}
				n := movedBytes(ref, to)
				st.Refs++
				st.Bytes += n
				if opts.DryRun {
					continue
				}
				if opts.Before != nil {
					if err := opts.Before(ctx, n); err != nil {
						return err
					}
				}
				nrev, nref, err := s.moveRef(ctx, mover, leaf, f.key, rev, &rec, i, to, dead)
				switch {
				case err == nil:
					st.Moved++
					st.MovedBytes += n
					rev, rec.Parts[i].Ref = nrev, nref
				case errors.Is(err, errMoveBusy), errors.Is(err, errMoveStale):
					st.Busy++
				default:
					st.Failed++
					s.log.Warn("relocate: moving data failed; tried again next pass", "ref", ref.ID, "err", err)
				}
				if opts.After != nil {
					if err != nil {
						n = 0
					}
					opts.After(ref, n, err)
				}
				if err != nil && !errors.Is(err, errMoveBusy) {
					break // the version may have changed: the next pass reads it again
				}
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
		}
		if len(batch) < relocateBatch {
			return nil
		}
	}
}

// movedBytes is what moving ref to 'to' writes: one shard per drive that
// changes.
func movedBytes(ref blocks.Ref, to []string) int64 {
	k := int64(max(ref.K, 1))
	if ref.Mirror {
		k = 1
	}
	// Each shard holds about size/k bytes (a little more where chunks
	// round up); progress needs no more than that.
	shard := (ref.Size + k - 1) / k
	var n int64
	for i := range min(len(to), len(ref.Drives)) {
		if to[i] != ref.Drives[i] {
			n += shard
		}
	}
	return n
}

// errMoveBusy: another mover or a collector holds the Ref.
var errMoveBusy = errors.New("objects: data is being moved or collected")

// errMoveStale: the version record changed since the scan read it (moved,
// replaced or deleted); the next pass reads it again.
var errMoveStale = errors.New("objects: the version changed since it was read")

// moveRef moves part i of the version rec (at key, revision rev) to the
// drives 'to' and returns the version record's new revision and the
// moved Ref.
func (s *Service) moveRef(ctx context.Context, mover blocks.Mover, p meta.Partition, key []byte, rev uint64, rec *versionRec, i int, to []string, dead func(Incarnation) bool) (uint64, blocks.Ref, error) {
	ref := rec.Parts[i].Ref
	rk := refKey(ref.ID)
	rp, tracked := RefPartition(ref.ID)
	tracked = tracked && s.md.resolve(rp) == p
	var moving refRec
	var mrev uint64
	if tracked {
		it, err := s.md.Get(ctx, p, rk)
		if errors.Is(err, meta.ErrNotFound) {
			return 0, blocks.Ref{}, fmt.Errorf("relocate: %s: %w", ref.ID, errMoveStale)
		}
		if err != nil {
			return 0, blocks.Ref{}, metaErr("relocate: read ref record", err)
		}
		prev, err := decodeRefRec(it.Value)
		if err != nil {
			return 0, blocks.Ref{}, fmt.Errorf("relocate: ref record of %s: %w", ref.ID, err)
		}
		switch {
		case !prev.live():
			return 0, blocks.Ref{}, fmt.Errorf("relocate: %s: a committed version names a ref in intent: %w", ref.ID, errCorrupt)
		case (prev.State == refMoving || prev.State == refReaping) && !dead(prev.Inc):
			return 0, blocks.Ref{}, errMoveBusy
		}
		// The version record, read after the ref record, must still be
		// the one the scan read. Every move commits a new ref record, so
		// a move committed before the read above shows here, and one
		// after it fails the conditional commit below: the drives this
		// move leaves are the committed ones. Without this a stale scan
		// would move from drives a committed move already left, and its
		// failure would remove copies that move committed.
		vit, err := s.md.Get(ctx, p, key)
		if errors.Is(err, meta.ErrNotFound) || err == nil && vit.Rev != rev {
			return 0, blocks.Ref{}, fmt.Errorf("relocate: %s: %w", ref.ID, errMoveStale)
		}
		if err != nil {
			return 0, blocks.Ref{}, metaErr("relocate: read version record", err)
		}
		if prev.State != refLive && !slices.Equal(prev.Drives, ref.Drives) {
			return 0, blocks.Ref{}, fmt.Errorf("relocate: %s: ref record names drives %v, version %v: %w", ref.ID, prev.Drives, ref.Drives, errCorrupt)
		}
		moving = refRec{State: refMoving, Inc: s.cfg.Incarnation, Time: s.cfg.Now().UnixMilli(),
			Drives: ref.Drives, Targets: to, Moved: prev.Moved}
		mrev, err = s.md.Commit(ctx, p, meta.Txn{
			Conds: []meta.Cond{{Key: rk, Rev: it.Rev}},
			Puts:  []meta.KV{{Key: rk, Value: moving.encode()}},
		})
		if isConflict(err) {
			return 0, blocks.Ref{}, errMoveBusy
		}
		if err != nil {
			return 0, blocks.Ref{}, metaErr("relocate: commit move intent", err)
		}
	}
	nref, err := mover.Move(ctx, ref, to)
	if err != nil {
		s.abandonMove(ctx, mover, p, ref, to, moving, mrev)
		return 0, blocks.Ref{}, err
	}
	next := *rec
	next.Parts = slices.Clone(rec.Parts)
	next.Parts[i].Ref = nref
	txn := meta.Txn{
		Conds: []meta.Cond{{Key: key, Rev: rev}},
		Puts:  []meta.KV{{Key: key, Value: next.encode()}},
	}
	if tracked {
		placed := refRec{State: refPlaced, Drives: nref.Drives, Moved: s.cfg.Now().UnixMilli()}
		txn.Conds = append(txn.Conds, meta.Cond{Key: rk, Rev: mrev})
		txn.Puts = append(txn.Puts, meta.KV{Key: rk, Value: placed.encode()})
	}
	nrev, err := s.md.Commit(ctx, p, txn)
	if err != nil {
		// The commit may yet apply if its answer was lost: abandonMove
		// finds out before it drops anything.
		s.abandonMove(ctx, mover, p, ref, to, moving, mrev)
		if isConflict(err) {
			return 0, blocks.Ref{}, fmt.Errorf("relocate: %s: %w: %w", ref.ID, errMoveStale, err)
		}
		return 0, blocks.Ref{}, metaErr("relocate: commit the moved data", err)
	}
	*rec = next
	s.log.Debug("moved data", "ref", ref.ID, "from", ref.Drives, "to", nref.Drives)
	return nrev, nref, nil
}

// abandonMove gives up a move of ref to 'to' whose commit did not apply
// (or whose answer was lost). For a tracked Ref, whose moving record is
// at mrev:
//
//  1. the moving record is committed again, conditional on mrev: once
//     that applies, the move's own commit (conditional on mrev too) never
//     can, and no other mover or collector has taken the record over;
//  2. the new copies are dropped, while the record still says a live
//     mover may be writing them, so no other move can be writing them;
//  3. the record goes back to placed on the drives the version names.
//
// A step that fails for want of the metadata stops there, and this
// incarnation's next relocation pass goes on from it (retryAbandoned):
// meanwhile the record stays moving under a live incarnation, which holds
// every other mover and collector off. If this incarnation dies first,
// garbage collection settles the record and removes the copies it does
// not name. An untracked Ref has no record to tell a
// lost commit from a failed one, nor to hold off another mover writing the
// same copies: its new copies are left, as are its old ones after a move.
func (s *Service) abandonMove(ctx context.Context, mover blocks.Mover, p meta.Partition, ref blocks.Ref, to []string, moving refRec, mrev uint64) {
	if mrev == 0 {
		s.log.Warn("relocate: copies of a failed move of untracked data left behind", "ref", ref.ID, "to", to)
		return
	}
	s.finishAbandon(ctx, mover, stuckMove{p: p, ref: ref, to: to, moving: moving, rev: mrev})
}

// stuckMove is a move abandonMove could not finish: its record stays
// moving under this live incarnation, which holds off every other mover
// and collector, so this incarnation finishes it (retryAbandoned) rather
// than leave it to its death (TestAbandonedMoveFinishedAfterAnOutage).
type stuckMove struct {
	p      meta.Partition
	ref    blocks.Ref
	to     []string
	moving refRec
	// rev is the record's revision; held says step 1 applied (rev is
	// then the held record's).
	rev  uint64
	held bool
}

// stuckMoves are this incarnation's unfinished abandons, by Ref ID.
type stuckMoves struct {
	mu sync.Mutex
	m  map[string]stuckMove
}

func (s *Service) stick(m stuckMove) {
	s.stuck.mu.Lock()
	defer s.stuck.mu.Unlock()
	if s.stuck.m == nil {
		s.stuck.m = map[string]stuckMove{}
	}
	s.stuck.m[m.ref.ID] = m
}

// retryAbandoned finishes the abandons a metadata outage interrupted,
// before a relocation pass.
func (s *Service) retryAbandoned(ctx context.Context, mover blocks.Mover) {
	s.stuck.mu.Lock()
	todo := s.stuck.m
	s.stuck.m = nil
	s.stuck.mu.Unlock()
	for _, m := range todo {
		if ctx.Err() != nil {
			s.stick(m)
			continue
		}
		s.finishAbandon(ctx, mover, m)
	}
}

// finishAbandon runs abandonMove's steps from where m stands; a step that
// fails for want of the metadata keeps m for retryAbandoned.
func (s *Service) finishAbandon(ctx context.Context, mover blocks.Mover, m stuckMove) {
	ctx = context.WithoutCancel(ctx)
	rk := refKey(m.ref.ID)
	if !m.held {
		m.moving.Time = s.cfg.Now().UnixMilli()
		hrev, err := s.md.Commit(ctx, m.p, meta.Txn{
			Conds: []meta.Cond{{Key: rk, Rev: m.rev}},
			Puts:  []meta.KV{{Key: rk, Value: m.moving.encode()}},
		})
		if isConflict(err) {
			return // the move's commit applied after all, or another took over
		}
		if err != nil {
			s.log.Warn("relocate: hold the record of a failed move; tried again next pass", "ref", m.ref.ID, "err", err)
			s.stick(m)
			return
		}
		m.rev, m.held = hrev, true
	}
	if err := mover.DropMoved(ctx, m.ref, m.to); err != nil {
		s.log.Warn("relocate: dropping the copies of a failed move", "ref", m.ref.ID, "err", err)
	}
	back := refRec{State: refPlaced, Drives: m.ref.Drives, Moved: m.moving.Moved}
	_, err := s.md.Commit(ctx, m.p, meta.Txn{
		Conds: []meta.Cond{{Key: rk, Rev: m.rev}},
		Puts:  []meta.KV{{Key: rk, Value: back.encode()}},
	})
	if err != nil && !isConflict(err) {
		s.log.Warn("relocate: put back the record of a failed move; tried again next pass", "ref", m.ref.ID, "err", err)
		s.stick(m)
	}
}
