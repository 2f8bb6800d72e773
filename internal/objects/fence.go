package objects

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/redoubt-io/redoubt/internal/meta"
)

// Bucket configuration and the object records: fences.
//
// A bucket's configuration (its versioning state, its existence) is decided
// in meta.System, but its object records live in the key partitions, and a
// Txn cannot span partitions. So every partition keeps the bucket's state
// as its records must see it, the fence ('f' id), and every object write
// is conditional on the fence's revision, read in one view with the key's
// head (or upload). A write therefore acts on the state its partition's
// fence holds at the moment it commits, never on a cached copy.
//
// A change (SetVersioning, DeleteBucket) goes in three steps, each a set of
// conditional commits that anyone may repeat, so that a changer that dies
// half-way is finished by whoever meets its traces:
//
//  1. Announce and freeze. The bucket record names the change (Pending),
//     which makes epoch Epoch+1; then every partition's fence is rewritten
//     frozen at that epoch. An object operation that meets a frozen fence
//     waits for it (readView), and helps finish the change once it has
//     waited settleAfter.
//  2. Decide. The bucket record is rewritten with the change applied, or
//     deleted, conditional on its revision. This is the change's
//     linearization point: before it no write can commit under the new
//     state (the bucket record does not have it yet and the fences are
//     frozen or older), after it none under the old one (every fence is
//     frozen or at the new epoch, and every write's Txn checks its fence).
//     DeleteBucket decides only after finding every partition empty while
//     all are frozen, so no write can slip in between the check and the
//     decision.
//  3. Release. Every fence is rewritten live at the new epoch, or deleted
//     with the bucket.
//
// CreateBucket writes the fences, live at epoch 0, before the bucket
// record, so a bucket record always has its fences (records written before
// fences existed are fenced on first use: Fenced). A write never commits
// against an absent fence: absent means the incarnation is gone, and the
// operation reads the bucket record again (errBucketMoved).
//
// A write that began before a change was acknowledged, having read the
// bucket record itself, and commits after it (it straddled the change) is
// ordered by the configuration it was issued under: its version sorts
// below every version committed under the newer configuration (see
// commitVersion), as S3 orders concurrent writes by when they began.
//
// Tests that attack this: TestFence* in fence_test.go, the reproductions
// of the review (review_*_test.go), and the whole-cluster simulation.

// settleAfter is how long an operation waits for a frozen fence before it
// helps finish the change. A change normally ends within a few commits per
// partition; waiting first spares it from racing its own helpers.
const settleAfter = 2 * time.Second

// fanOut bounds the partitions a change works on at once.
const fanOut = 32

// errBucketMoved: the bucket incarnation an operation worked on has no
// fence in the partition: it was deleted (and maybe created again).
var errBucketMoved = errors.New("objects: bucket incarnation gone")

// errChangeDone: a partition is already past the change being made, so
// someone else finished (or undid) it.
var errChangeDone = errors.New("objects: bucket change already made")

func fenceKey(id bucketID) []byte { return tagPrefix(tagFence, id) }

// forEachPartition runs fn for every object partition, fanOut at a time,
// and returns the first error (errChangeDone before others). A partition
// fn finds split (meta.ErrMoved) is replaced by its children, which hold
// its keys and a copy of its fences as they were when it split (see
// Partitions that split): fn runs on them in a later round.
func (s *Service) forEachPartition(ctx context.Context, fn func(ctx context.Context, p meta.Partition) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var mu sync.Mutex
	var first error
	sem := make(chan struct{}, fanOut)
	for round := s.md.parts(); len(round) > 0; {
		var split []meta.Partition
		var wg sync.WaitGroup
		for _, p := range round {
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
			}
			if ctx.Err() != nil {
				break
			}
			wg.Add(1)
			go func(p meta.Partition) {
				defer func() { <-sem; wg.Done() }()
				err := fn(ctx, p)
				if err == nil {
					return // no lock: goroutines that finish together must not contend
				}
				mu.Lock()
				defer mu.Unlock()
				switch {
				case s.md.learnFrom(err):
					split = append(split, p)
				default:
					if first == nil || (errors.Is(err, errChangeDone) && !errors.Is(first, errChangeDone)) {
						first = err
					}
					cancel()
				}
			}(p)
		}
		wg.Wait()
		if first != nil {
			return first
		}
		if ctx.Err() != nil {
			break
		}
		slices.Sort(split) // rounds run in one order, for the simulation to replay
		round = nil
		for _, p := range split {
			c := s.md.tree.children(p)
			round = append(round, c[0], c[1])
		}
	}
	return context.Cause(ctx) // the caller's, if it ended
}

// readFence reads the fence of bucket id in p linearizably; rev 0 means
// absent.
func (s *Service) readFence(ctx context.Context, p meta.Partition, id bucketID) (fenceRec, uint64, error) {
	items, _, err := meta.GetMany(ctx, s.md, p, []meta.Read{meta.GetHot(fenceKey(id))}, meta.ReadOptions{})
	if err != nil {
		return fenceRec{}, 0, metaErr("read fence", err)
	}
	it := items[0]
	if it.Rev == 0 {
		return fenceRec{}, 0, nil
	}
	f, err := decodeFence(it.Value)
	if err != nil {
		return fenceRec{}, 0, fmt.Errorf("fence in partition %d: %w", p, err)
	}
	return f, it.Rev, nil
}

// writeFences writes a live fence of r at r.Epoch in every partition that
// has none: a new bucket's, before its record exists, or an old record's
// on first use.
func (s *Service) writeFences(ctx context.Context, r bucketRec) error {
	k := fenceKey(r.ID)
	v := (&fenceRec{Epoch: r.Epoch, Versioning: r.Versioning}).encode()
	return s.forEachPartition(ctx, func(ctx context.Context, p meta.Partition) error {
		_, err := s.md.Commit(ctx, p, meta.Txn{Conds: []meta.Cond{{Key: k}}, Puts: []meta.KV{{Key: k, Value: v}}})
		if isConflict(err) {
			return nil // written already
		}
		if err != nil {
			return metaErr("write fence", err)
		}
		return nil
	})
}

// dropFences deletes bucket id's fences, whatever their state: for an
// incarnation that never became a bucket, or one that is deleted.
func (s *Service) dropFences(ctx context.Context, id bucketID) error {
	return s.forEachPartition(ctx, func(ctx context.Context, p meta.Partition) error {
		return s.dropFence(ctx, p, id)
	})
}

func (s *Service) dropFence(ctx context.Context, p meta.Partition, id bucketID) error {
	k := fenceKey(id)
	for attempt := 0; attempt < maxAttempts; attempt++ {
		_, rev, err := s.readFence(ctx, p, id)
		if err != nil || rev == 0 {
			return err
		}
		_, err = s.md.Commit(ctx, p, meta.Txn{Conds: []meta.Cond{{Key: k, Rev: rev}}, Deletes: [][]byte{k}})
		if isConflict(err) {
			continue
		}
		if err != nil {
			return metaErr("delete fence", err)
		}
		return nil
	}
	return fmt.Errorf("%w: delete fence", ErrConditionalConflict)
}

// ensureFenced fences a bucket whose record was written before fences
// existed, and returns its record and revision after.
func (s *Service) ensureFenced(ctx context.Context, name string, r bucketRec, rev uint64) (bucketRec, uint64, error) {
	for !r.Fenced {
		if err := s.writeFences(ctx, r); err != nil {
			return bucketRec{}, 0, err
		}
		n := r
		n.Fenced = true
		k := bucketKey(name)
		nrev, err := s.md.Commit(ctx, meta.System, meta.Txn{Conds: []meta.Cond{{Key: k, Rev: rev}}, Puts: []meta.KV{{Key: k, Value: n.encode()}}})
		if err == nil {
			return n, nrev, nil
		}
		if !isConflict(err) {
			return bucketRec{}, 0, metaErr("fence bucket", err)
		}
		if r, rev, err = s.getBucket(ctx, name); err != nil {
			return bucketRec{}, 0, err
		}
	}
	return r, rev, nil
}

// change makes a configuration change of bucket name: it finishes any
// change under way first, then announces its own (step 1 of the protocol)
// and settles it. want says what to do given the current record: a
// change, or changeNone to do nothing and return nil.
func (s *Service) change(ctx context.Context, name string, want func(r bucketRec) bucketChange) error {
	k := bucketKey(name)
	for attempt := 0; attempt < maxAttempts; attempt++ {
		r, rev, err := s.getBucket(ctx, name)
		if err != nil {
			return err
		}
		if r, rev, err = s.ensureFenced(ctx, name, r, rev); err != nil {
			return err
		}
		if r.Pending.Kind != changeNone {
			// Someone else's change, under way or abandoned: finish it.
			if err := s.settle(ctx, name, r, rev); err != nil && !errors.Is(err, ErrBucketNotEmpty) {
				return err
			}
			continue
		}
		c := want(r)
		if c.Kind == changeNone {
			return nil
		}
		n := r
		n.Pending = c
		nrev, err := s.md.Commit(ctx, meta.System, meta.Txn{Conds: []meta.Cond{{Key: k, Rev: rev}}, Puts: []meta.KV{{Key: k, Value: n.encode()}}})
		if isConflict(err) {
			continue
		}
		if err != nil {
			return metaErr("announce bucket change", err)
		}
		return s.settle(ctx, name, n, nrev)
	}
	return fmt.Errorf("%w: bucket %q keeps changing", ErrConditionalConflict, name)
}

// settle drives the change r.Pending (r read at rev) to its end: freeze,
// decide, release. It may run in many places at once; every step is
// conditional. It returns ErrBucketNotEmpty for a deletion it found
// undoable, nil otherwise once the change is decided and released.
func (s *Service) settle(ctx context.Context, name string, r bucketRec, rev uint64) error {
	epoch := r.Epoch + 1
	frozen := &partRevs{tree: s.md.tree, m: map[meta.Partition]uint64{}} // the frozen fences' revisions
	err := s.forEachPartition(ctx, func(ctx context.Context, p meta.Partition) error {
		rev, err := s.freeze(ctx, p, r.ID, epoch, r.Versioning)
		if err == nil {
			frozen.set(p, rev)
		}
		return err
	})
	if err != nil && !errors.Is(err, errChangeDone) {
		return err
	}
	var result error
	decided := r.Versioning
	if r.Pending.Kind == changeVersioning {
		decided = r.Pending.Versioning
	}
	if err == nil {
		// Every fence is frozen at epoch: decide.
		var gone bool
		result, gone, err = s.decide(ctx, name, r, rev, frozen)
		if err != nil && !errors.Is(err, errChangeDone) {
			return err
		}
		if gone {
			return nil
		}
	}
	if err != nil {
		// Someone else decided: find out what, to release accordingly
		// and to answer the changer.
		cur, _, gerr := s.getBucket(ctx, name)
		switch {
		case errors.Is(gerr, ErrNoSuchBucket):
		case gerr != nil:
			return gerr
		case cur.ID != r.ID:
		case cur.Pending.Kind != changeNone && cur.Epoch < epoch:
			return fmt.Errorf("%w: bucket %q: change of epoch %d neither made nor undone", ErrConditionalConflict, name, epoch)
		case r.Pending.Kind == changeDelete:
			result = fmt.Errorf("%w: %q", ErrBucketNotEmpty, name)
		}
		if errors.Is(gerr, ErrNoSuchBucket) || (gerr == nil && cur.ID != r.ID) {
			return s.dropFences(ctx, r.ID)
		}
		if cur.Epoch > epoch {
			return result // later changes were made: this one is long released
		}
		decided = cur.Versioning
	}
	if err := s.release(ctx, r.ID, epoch, decided); err != nil {
		return err
	}
	return result
}

// decide makes step 2 for r, whose fences are all frozen (at the
// revisions frozen): it commits the bucket record with the change applied
// or deletes it. It returns the change's answer (ErrBucketNotEmpty for a
// deletion of a bucket found not empty), and gone after a deletion, whose
// fences it removed (or left frozen for the next operation that meets one
// to remove). errChangeDone means someone else decided.
func (s *Service) decide(ctx context.Context, name string, r bucketRec, rev uint64, frozen *partRevs) (result error, gone bool, err error) {
	k := bucketKey(name)
	n := r
	n.Epoch, n.Pending = r.Epoch+1, bucketChange{}
	switch r.Pending.Kind {
	case changeVersioning:
		n.Versioning, n.VersioningAt = r.Pending.Versioning, r.Pending.At
	case changeDelete:
		empty, err := s.bucketEmpty(ctx, r.ID)
		if err == nil && empty && r.Config.Consistency == Available {
			empty, err = s.availEmpty(ctx, &r)
		}
		if err != nil {
			return nil, false, err
		}
		if !empty {
			result = fmt.Errorf("%w: %q", ErrBucketNotEmpty, name)
			break
		}
		// Incomplete uploads do not keep a bucket alive: as in S3 they
		// are aborted, under the frozen fences (no one else may touch
		// them now).
		err = s.forEachPartition(ctx, func(ctx context.Context, p meta.Partition) error {
			return s.abortAllUploads(ctx, r.ID, p, meta.Cond{Key: fenceKey(r.ID), Rev: frozen.get(p)})
		})
		if err != nil {
			return nil, false, err
		}
		_, err = s.md.Commit(ctx, meta.System, meta.Txn{Conds: []meta.Cond{{Key: k, Rev: rev}}, Deletes: [][]byte{k}})
		if isConflict(err) {
			return nil, false, errChangeDone
		}
		if err != nil {
			return nil, false, metaErr("delete bucket", err)
		}
		s.buckets.forget(name)
		if err := s.dropFences(ctx, r.ID); err != nil {
			// Deleted all the same: an operation that meets one of the
			// frozen fences left removes it (help).
			s.log.Warn("deleted bucket's fences left behind", "bucket", name, "err", err)
		}
		return nil, true, nil
	default:
		return nil, false, fmt.Errorf("objects: bucket %q: unknown change %d", name, r.Pending.Kind)
	}
	_, err = s.md.Commit(ctx, meta.System, meta.Txn{Conds: []meta.Cond{{Key: k, Rev: rev}}, Puts: []meta.KV{{Key: k, Value: n.encode()}}})
	if isConflict(err) {
		return nil, false, errChangeDone
	}
	if err != nil {
		return nil, false, metaErr("change bucket", err)
	}
	s.buckets.forget(name)
	return result, false, nil
}

// freeze makes the fence of id in p frozen at epoch, keeping v (the state
// before the change) in it, and returns its revision then. A fence still
// frozen by an earlier change is frozen anew: that change was decided (the
// record announces a later one only then), and writers wait either way.
// errChangeDone: the fence is past the change (released at epoch or
// later, or gone).
func (s *Service) freeze(ctx context.Context, p meta.Partition, id bucketID, epoch uint64, v Versioning) (uint64, error) {
	k := fenceKey(id)
	for attempt := 0; attempt < maxAttempts; attempt++ {
		f, rev, err := s.readFence(ctx, p, id)
		switch {
		case err != nil:
			return 0, err
		case rev == 0:
			return 0, errChangeDone // deleted
		case f.Epoch == epoch && f.Frozen:
			return rev, nil
		case f.Epoch >= epoch:
			return 0, errChangeDone
		}
		nf := fenceRec{Epoch: epoch, Versioning: v, Frozen: true}
		nrev, err := s.md.Commit(ctx, p, meta.Txn{Conds: []meta.Cond{{Key: k, Rev: rev}}, Puts: []meta.KV{{Key: k, Value: nf.encode()}}})
		if isConflict(err) {
			continue
		}
		if err != nil {
			return 0, metaErr("freeze fence", err)
		}
		return nrev, nil
	}
	return 0, fmt.Errorf("%w: freeze fence", ErrConditionalConflict)
}

// release makes every fence of id that is frozen at epoch (or, left by a
// changer that died, at an earlier one) live at epoch with v, the state
// the bucket record was decided at for epoch (step 3). A fence frozen at a
// later epoch belongs to a later change and is left alone.
func (s *Service) release(ctx context.Context, id bucketID, epoch uint64, v Versioning) error {
	k := fenceKey(id)
	nv := (&fenceRec{Epoch: epoch, Versioning: v}).encode()
	return s.forEachPartition(ctx, func(ctx context.Context, p meta.Partition) error {
		for attempt := 0; attempt < maxAttempts; attempt++ {
			f, rev, err := s.readFence(ctx, p, id)
			if err != nil {
				return err
			}
			if rev == 0 || !f.Frozen || f.Epoch > epoch {
				return nil
			}
			_, err = s.md.Commit(ctx, p, meta.Txn{Conds: []meta.Cond{{Key: k, Rev: rev}}, Puts: []meta.KV{{Key: k, Value: nv}}})
			if isConflict(err) {
				continue
			}
			if err != nil {
				return metaErr("release fence", err)
			}
			return nil
		}
		return fmt.Errorf("%w: release fence", ErrConditionalConflict)
	})
}

// bucketEmpty reports whether bucket id has no key with versions (delete
// markers included) in any partition.
func (s *Service) bucketEmpty(ctx context.Context, id bucketID) (bool, error) {
	pre := tagPrefix(tagHead, id)
	errFound := errors.New("found")
	err := s.forEachPartition(ctx, func(ctx context.Context, p meta.Partition) error {
		found := false
		err := s.md.Scan(ctx, p, pre, prefixEnd(pre), func([]byte, meta.Item) bool {
			found = true
			return false
		})
		if err != nil {
			return metaErr("check bucket empty", err)
		}
		if found {
			return errFound
		}
		return nil
	})
	if errors.Is(err, errFound) {
		return false, nil
	}
	return err == nil, err
}

// abortAllUploads aborts every upload of bucket id in p, each conditional
// on fence (the frozen fence of a deletion).
func (s *Service) abortAllUploads(ctx context.Context, id bucketID, p meta.Partition, fence meta.Cond) error {
	upre := tagPrefix(tagUpload, id)
	var uploads [][2]string
	err := s.md.Scan(ctx, p, upre, prefixEnd(upre), func(k []byte, _ meta.Item) bool {
		if key, uid, ok := splitUploadKey(k); ok {
			uploads = append(uploads, [2]string{key, uid})
		}
		return true
	})
	if err != nil {
		return metaErr("list uploads of deleted bucket", err)
	}
	for _, u := range uploads {
		err := s.abortUploadUnder(ctx, id, p, u[0], u[1], fence)
		if errors.Is(err, ErrNoSuchUpload) {
			continue
		}
		if isConflict(err) {
			return errChangeDone // the fence moved: someone else decided
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// readView reads, from one view of partition p, the fence of the bucket
// ob works on and the keys keysOf gives for its incarnation. A frozen
// fence is waited for (a change is under way); after settleAfter the
// operation helps finish the change. When the incarnation is gone (no
// fence), ob is resolved again and the keys read under the new one; a
// bucket that no longer exists is ErrNoSuchBucket. o may let the first
// read come from a replica (o.Stale: one that may lag; o.After: one that
// applied what an earlier read saw); an absent or frozen fence is always
// read again linearizably. A stale read takes the fence from the hints
// when it has one (see fenceHints).
func (s *Service) readView(ctx context.Context, p meta.Partition, ob *opBucket, keysOf func(id bucketID) []meta.Read, o meta.ReadOptions) (fenceRec, uint64, []meta.Item, uint64, error) {
	var waited time.Duration
	backoff := time.Millisecond
	for attempt := 0; attempt < maxAttempts; attempt++ {
		if o.Stale {
			if h, ok := s.fences.get(ob.rec.ID, s.md.resolve(p)); ok && !h.f.Frozen {
				keys := keysOf(ob.rec.ID)
				if len(keys) == 0 {
					return h.f, h.rev, nil, 0, nil
				}
				items, at, err := meta.GetMany(ctx, s.md, p, keys, o)
				if err != nil {
					return fenceRec{}, 0, nil, 0, metaErr("read", err)
				}
				return h.f, h.rev, items, at, nil
			}
		}
		keys := append([]meta.Read{meta.GetHot(fenceKey(ob.rec.ID))}, keysOf(ob.rec.ID)...)
		items, at, err := meta.GetMany(ctx, s.md, p, keys, o)
		if err != nil {
			return fenceRec{}, 0, nil, 0, metaErr("read", err)
		}
		fit := items[0]
		if fit.Rev == 0 {
			if o != (meta.ReadOptions{}) {
				o = meta.ReadOptions{}
				continue
			}
			if err := s.resolveAgain(ctx, ob); err != nil {
				return fenceRec{}, 0, nil, 0, err
			}
			continue
		}
		f, err := decodeFence(fit.Value)
		if err != nil {
			return fenceRec{}, 0, nil, 0, fmt.Errorf("fence in partition %d: %w", p, err)
		}
		if !f.Frozen {
			s.fences.learn(ob.rec.ID, s.md.resolve(p), f, fit.Rev)
			return f, fit.Rev, items[1:], at, nil
		}
		o = meta.ReadOptions{}
		if waited >= settleAfter {
			if err := s.help(ctx, ob); err != nil {
				return fenceRec{}, 0, nil, 0, err
			}
			waited = 0
			continue
		}
		if dl, ok := ctx.Deadline(); ok && time.Until(dl) <= backoff {
			// The deadline comes first: end now rather than on whichever
			// of two timers due at one instant the Go scheduler picks
			// (TestSimulationReplays).
			return fenceRec{}, 0, nil, 0, context.DeadlineExceeded
		}
		select {
		case <-s.cfg.After.Wait(backoff, "fence back-off"):
		case <-ctx.Done():
			return fenceRec{}, 0, nil, 0, context.Cause(ctx)
		}
		waited += backoff
		backoff = min(2*backoff, 64*time.Millisecond)
	}
	return fenceRec{}, 0, nil, 0, fmt.Errorf("%w: bucket %q", ErrConditionalConflict, ob.name)
}

// help finishes the change that keeps a fence of ob's bucket frozen.
func (s *Service) help(ctx context.Context, ob *opBucket) error {
	r, rev, err := s.getBucket(ctx, ob.name)
	switch {
	case errors.Is(err, ErrNoSuchBucket):
		// Deleted, fences not yet removed: the deleter died after its
		// decision. Remove them, then resolve the name again.
		if err := s.dropFences(ctx, ob.rec.ID); err != nil {
			return err
		}
		return s.resolveAgain(ctx, ob)
	case err != nil:
		return err
	case r.ID != ob.rec.ID:
		if err := s.dropFences(ctx, ob.rec.ID); err != nil {
			return err
		}
		return s.resolveAgain(ctx, ob)
	case r.Pending.Kind != changeNone:
		err := s.settle(ctx, ob.name, r, rev)
		if errors.Is(err, ErrBucketNotEmpty) {
			err = nil
		}
		return err
	}
	// Decided, not released.
	return s.release(ctx, r.ID, r.Epoch, r.Versioning)
}

// resolveAgain reads ob's bucket record again, linearizably, after its
// incarnation was found gone.
func (s *Service) resolveAgain(ctx context.Context, ob *opBucket) error {
	r, rev, err := s.getBucket(ctx, ob.name)
	if err != nil {
		s.buckets.forget(ob.name)
		return err
	}
	if r.ID == ob.rec.ID && r.Fenced {
		// A fenced record whose fence is absent: not something the
		// protocol leaves behind.
		return fmt.Errorf("objects: bucket %q has no fence: %w", ob.name, errCorrupt)
	}
	if r, _, err = s.ensureFenced(ctx, ob.name, r, rev); err != nil {
		return err
	}
	s.buckets.put(ob.name, cachedBucket{rec: r, read: time.Now()})
	ob.rec = r
	return nil
}
