package objects

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/redoubt-io/redoubt/internal/meta"
	"github.com/redoubt-io/redoubt/internal/placement"
)

// Partitions that split. A metadata partition can split in two (see
// raftmeta, Splits), and each half again, so the partitions form a
// binary tree over the base partitions 0..B-1 (Config.Partitions).
//
//   - Position. A partition at depth d has an index i in [0, B<<d); its
//     ID is i at depth 0 and (B<<d)+i below, so IDs of different depths
//     never meet. Splitting (d, i) makes (d+1, i) and (d+1, i+(B<<d)).
//   - Keys. A key's records belong at depth 0 to the partition
//     placement.PartitionOf(bucket, key, B), as before splits existed,
//     and, at each split below, to the child that bit d of
//     splitHash(key) names. splitHash reads the object key alone, so a
//     partition's own records say where each goes (Splitter).
//   - Routes. Operations on a key address it by a route (routeOf): a
//     partition value with bit 31 set, carrying the key's base
//     partition and the low splitDepth bits of its split hash. The
//     store the Service uses (router) sends a route to the partition
//     that holds the key now, as far as it knows which partitions
//     split, and, told meta.ErrMoved (nothing was applied), learns that
//     the partition split and sends the request on to the child. So an
//     operation is never concerned with splits, however many happen
//     while it runs. Ref IDs carry the route of their key's partition
//     (newRefID), so a ref record goes where its key goes.
//   - Walks. Work over every partition (listing, fences, counters, GC)
//     walks the leaves of the tree as the router knows it (parts); a
//     walk that meets meta.ErrMoved learns the split and walks the
//     children instead (walkParts).
//
// Tests: TestRouteFollowsSplits, TestSplitterDividesRecords,
// TestObjectsSurviveSplits.

// splitDepth bounds how often a base partition may split: a route keeps
// that many bits of the split hash.
const splitDepth = placement.MaxSplitDepth

// routeFlag marks a partition value as a route. Real partition IDs stay
// below it (partTree.valid); meta.System has it set but is no route
// (its base field is beyond every base partition).
const routeFlag = 1 << 31

// splitHash is the hash whose bits choose a key's child at each split.
func splitHash(key []byte) uint64 { return placement.KeyHash("", string(key)) }

// partTree is placement.SplitTree over meta.Partition values.
type partTree struct{ t placement.SplitTree }

func newPartTree(base int) partTree { return partTree{placement.SplitTree{Base: uint32(base)}} }

func (t partTree) base() uint32 { return t.t.Base }

func (t partTree) pos(p meta.Partition) (d int, i uint32) { return t.t.Pos(uint32(p)) }

// valid says whether p is a partition of the tree.
func (t partTree) valid(p meta.Partition) bool { return p != meta.System && t.t.Valid(uint32(p)) }

// children are the two partitions p splits into.
func (t partTree) children(p meta.Partition) [2]meta.Partition {
	c := t.t.Children(uint32(p))
	return [2]meta.Partition{meta.Partition(c[0]), meta.Partition(c[1])}
}

// parent is the partition p split from; ok is false at depth 0.
func (t partTree) parent(p meta.Partition) (meta.Partition, bool) {
	up, ok := t.t.Parent(uint32(p))
	return meta.Partition(up), ok
}

// partRevs holds a revision per partition, such as those of the fences
// a change froze. A partition that split after its revision was set
// answers for its children, whose copies of its records kept their
// revisions.
type partRevs struct {
	tree partTree
	mu   sync.Mutex
	m    map[meta.Partition]uint64
}

func (r *partRevs) set(p meta.Partition, rev uint64) {
	r.mu.Lock()
	r.m[p] = rev
	r.mu.Unlock()
}

func (r *partRevs) get(p meta.Partition) uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	for {
		if rev, ok := r.m[p]; ok {
			return rev
		}
		up, ok := r.tree.parent(p)
		if !ok {
			return 0
		}
		p = up
	}
}

// routeOf is the route of the records of key in base partition p0.
func routeOf(p0 uint32, key string) meta.Partition {
	h := splitHash([]byte(key))
	return meta.Partition(routeFlag | p0<<splitDepth | uint32(h)&(1<<splitDepth-1))
}

// placementOf is the data key (placement.DataKey) of the keys of route
// p: their base partition and split bits, from which a layout finds the
// data partition whose drives their data goes to, however often the
// partitions split. A plain partition p gives the data key of its own
// keys.
func (s *Service) placementOf(p meta.Partition) uint32 {
	if p0, bits, ok := isRoute(p); ok {
		return placement.DataKey(p0, bits)
	}
	if !s.md.tree.valid(p) {
		return uint32(p)
	}
	return s.md.tree.t.DataKeyOf(uint32(p))
}

// DataKeyOf is the data key (placement.DataKey) of the data with ID id
// whose ref record partition p holds, in a tree of base partitions:
// the key's that the ID carries (RefPartition), else p's own. The
// relocation of p's data asks its layout where that key's data belongs.
func DataKeyOf(base int, p meta.Partition, id string) uint32 {
	if rp, ok := RefPartition(id); ok {
		if p0, bits, ok := isRoute(rp); ok {
			return placement.DataKey(p0, bits)
		}
		// An ID made before routes names its base partition.
		if uint32(rp) < uint32(base) {
			return uint32(rp)
		}
	}
	return placement.SplitTree{Base: uint32(base)}.DataKeyOf(uint32(p))
}

// isRoute says whether p is a route, and gives its base partition and
// split bits.
func isRoute(p meta.Partition) (p0, bits uint32, ok bool) {
	if p == meta.System || uint32(p)&routeFlag == 0 {
		return 0, 0, false
	}
	v := uint32(p) &^ routeFlag
	return v >> splitDepth, v & (1<<splitDepth - 1), true
}

// router is the meta.Store a Service uses: it sends routes to the
// partitions holding their keys now (see Partitions that split), and
// anything else to the partition named.
type router struct {
	inner meta.Store
	tree  partTree
	// any: some partition is known to have split; until then routes
	// resolve to their base partitions without taking mu.
	any   atomic.Bool
	mu    sync.RWMutex
	split map[meta.Partition]bool // partitions known to have split
}

var (
	_ meta.Store        = (*router)(nil)
	_ meta.ManyGetter   = (*router)(nil)
	_ meta.StaleGetter  = (*router)(nil)
	_ meta.RangeScanner = (*router)(nil)
)

func newRouter(inner meta.Store, base int) *router {
	return &router{inner: inner, tree: newPartTree(base), split: map[meta.Partition]bool{}}
}

// resolve is the partition that holds p's keys, as far as r knows: p
// itself unless p is a route.
func (r *router) resolve(p meta.Partition) meta.Partition {
	p0, b, ok := isRoute(p)
	if !ok {
		return p
	}
	if !r.any.Load() {
		return meta.Partition(p0)
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	id := meta.Partition(p0)
	for d := 0; d < splitDepth && r.split[id]; d++ {
		id = r.tree.children(id)[b>>d&1]
	}
	return id
}

// learn records that partition p split.
func (r *router) learn(p meta.Partition) {
	r.mu.Lock()
	r.split[p] = true
	r.any.Store(true)
	r.mu.Unlock()
}

// parts is the partitions that hold keys now, as far as r knows: the
// leaves of the tree, in order of base partition, then of position.
func (r *router) parts() []meta.Partition {
	r.mu.RLock()
	defer r.mu.RUnlock()
	var out []meta.Partition
	for p0 := range r.tree.base() {
		out = r.leavesLocked(out, meta.Partition(p0))
	}
	return out
}

// under is the partitions that hold the keys partition p held: p, or
// the leaves below it if it split.
func (r *router) under(p meta.Partition) []meta.Partition {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.leavesLocked(nil, p)
}

// leavesLocked appends to out the leaves at or below p. r.mu is held.
func (r *router) leavesLocked(out []meta.Partition, p meta.Partition) []meta.Partition {
	if d, _ := r.tree.pos(p); d < splitDepth && r.split[p] {
		for _, c := range r.tree.children(p) {
			out = r.leavesLocked(out, c)
		}
		return out
	}
	return append(out, p)
}

// do runs fn on the partition holding p's keys, following splits for a
// route: meta.ErrMoved means nothing was applied, so the request goes
// on to the child that holds the key now.
func (r *router) do(p meta.Partition, fn func(meta.Partition) error) error {
	for range splitDepth + 1 {
		at := r.resolve(p)
		err := fn(at)
		if !errors.Is(err, meta.ErrMoved) {
			return err
		}
		if !r.learnFrom(err) {
			return err
		}
		if _, _, ok := isRoute(p); !ok {
			return err // a walk's: it walks the children (walkParts)
		}
	}
	return fmt.Errorf("objects: partition %d split more than %d times: %w", p, splitDepth, meta.ErrMoved)
}

func (r *router) Get(ctx context.Context, p meta.Partition, key []byte) (it meta.Item, err error) {
	err = r.do(p, func(at meta.Partition) error {
		it, err = r.inner.Get(ctx, at, key)
		return err
	})
	return it, err
}

func (r *router) Scan(ctx context.Context, p meta.Partition, start, end []byte, fn func(key []byte, item meta.Item) bool) error {
	return r.do(p, func(at meta.Partition) error {
		called := false
		err := r.inner.Scan(ctx, at, start, end, func(k []byte, it meta.Item) bool {
			called = true
			return fn(k, it)
		})
		if called && errors.Is(err, meta.ErrMoved) {
			// Part of the range was seen: it cannot be started again.
			return fmt.Errorf("objects: scan of partition %d: %w", at, err)
		}
		return err
	})
}

func (r *router) Commit(ctx context.Context, p meta.Partition, txn meta.Txn) (rev uint64, err error) {
	err = r.do(p, func(at meta.Partition) error {
		rev, err = r.inner.Commit(ctx, at, txn)
		return err
	})
	return rev, err
}

func (r *router) GetStale(ctx context.Context, p meta.Partition, key []byte) (it meta.Item, err error) {
	err = r.do(p, func(at meta.Partition) error {
		it, err = meta.GetStale(ctx, r.inner, at, key)
		return err
	})
	return it, err
}

func (r *router) GetMany(ctx context.Context, p meta.Partition, reads []meta.Read, o meta.ReadOptions) (items []meta.Item, at uint64, err error) {
	err = r.do(p, func(part meta.Partition) error {
		items, at, err = meta.GetMany(ctx, r.inner, part, reads, o)
		return err
	})
	return items, at, err
}

// ScanRanges resolves each range's partition once; a range whose
// partition split meanwhile fails the call with meta.ErrMoved, for the
// walk that asked to learn it (walkParts).
func (r *router) ScanRanges(ctx context.Context, ranges []meta.Range, fn func(i int, key []byte, item meta.Item) bool) error {
	rs := slices.Clone(ranges)
	for i := range rs {
		rs[i].P = r.resolve(rs[i].P)
	}
	return meta.ScanRanges(ctx, r.inner, rs, fn)
}

// ordered returns the store's ordered scanner if it keeps every key under
// prefix in one order across partitions (meta.OrderedScanner), else nil.
// A store that does never splits its partitions (one node's Local).
func (r *router) ordered(prefix []byte) meta.OrderedScanner {
	if os, ok := r.inner.(meta.OrderedScanner); ok && os.Ordered(prefix) {
		return os
	}
	return nil
}

// learnFrom learns the split err reports, if it is meta.ErrMoved for a
// partition of the tree, and says whether it was.
func (r *router) learnFrom(err error) bool {
	var me *meta.MovedError
	if !errors.As(err, &me) || !r.tree.valid(me.P) {
		return false
	}
	r.learn(me.P)
	return true
}

// SplitTo records that every partition split depth times (as a layout
// says): operations go straight to the partitions that hold their keys,
// rather than learning each split from a partition's answer.
func (s *Service) SplitTo(depth int) {
	if depth <= 0 {
		return
	}
	r := s.md
	r.mu.Lock()
	r.any.Store(true)
	defer r.mu.Unlock()
	for d := range min(depth, splitDepth) {
		for _, p := range r.tree.t.Level(d) {
			r.split[meta.Partition(p)] = true
		}
	}
}

// walkParts calls fn for every partition that holds keys, one at a
// time, in order. A partition fn finds split (meta.ErrMoved) is walked
// again as its children, which hold its keys: fn must be content to see
// some of a partition's records twice, once there and once in a child.
func (s *Service) walkParts(fn func(p meta.Partition) error) error {
	queue := s.md.parts()
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		err := fn(p)
		if err != nil && s.md.learnFrom(err) {
			c := s.md.tree.children(p)
			queue = append([]meta.Partition{c[0], c[1]}, queue...)
			continue
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// refHome is the partition that holds the ref records of RefPartition p
// now, and false for a p that names no partition of this Service, or
// whose record cannot be found for sure: an ID made before routes, of a
// base partition that split since (its record went to both children,
// see splitRecords), is never collected.
func (s *Service) refHome(p meta.Partition) (meta.Partition, bool) {
	if p0, _, ok := isRoute(p); ok {
		return s.md.resolve(p), p0 < s.md.tree.base()
	}
	if uint32(p) >= s.md.tree.base() {
		return 0, false
	}
	s.md.mu.RLock()
	split := s.md.split[p]
	s.md.mu.RUnlock()
	return p, !split
}
