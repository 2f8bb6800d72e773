package meta

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"syscall"
)

// Partition names one partition of the key space. Partitions 0..P-1 hold
// object metadata; System holds cluster-wide records (buckets, credentials).
type Partition uint32

// System is the partition of cluster-wide records: buckets, credentials and,
// later, the layout. It is never the target of a key hash.
const System Partition = 1<<32 - 1

// Item is a stored value and the revision at which it was last written.
// Revisions increase with every commit to a partition and are never reused,
// so a revision names one exact value of a key.
type Item struct {
	Value []byte
	Rev   uint64
	// Key is set by GetMany for a First read: the key found.
	Key []byte
}

// Cond is a precondition of a Txn: the key must currently be at Rev.
// Rev 0 means the key must be absent.
type Cond struct {
	Key []byte
	Rev uint64
}

// Txn is an atomic, conditional write to one partition: when every Cond
// holds, all Deletes, Puts and Adds are applied together, in that order;
// otherwise nothing is. Txns are deterministic so that a Raft group can
// replicate them as-is.
type Txn struct {
	Conds   []Cond
	Puts    []KV
	Deletes [][]byte
	Adds    []Add
}

// Add adds Delta, element by element, to the counters stored at Key: a
// vector of signed integers (DecodeCounters), all zeros while the key is
// absent. Adds commute, so transactions that only add to a counter need
// no condition on it and never conflict over it; a partition keeps its
// object count and bytes this way, in the transactions that change them.
// A counter value that does not decode fails the commit with ErrCorrupt
// and changes nothing.
type Add struct {
	Key   []byte
	Delta []int64
}

// KV is one key and value of a Txn.
type KV struct {
	Key   []byte
	Value []byte
}

// Store is the metadata of the node, organised by partition. On one node the
// partitions are local; the cluster backs each one with a Raft group. All
// methods are safe for concurrent use.
type Store interface {
	// Get returns the item at key in partition p, or ErrNotFound.
	Get(ctx context.Context, p Partition, key []byte) (Item, error)
	// Scan calls fn for each key in [start, end) of partition p in byte
	// order until fn returns false. A nil end means the end of the
	// partition. fn must not retain key or item.Value after it returns.
	Scan(ctx context.Context, p Partition, start, end []byte, fn func(key []byte, item Item) bool) error
	// Commit applies txn durably and atomically if every condition holds,
	// and returns the revision it was applied at. It returns ErrConflict,
	// and changes nothing, if a condition does not hold.
	Commit(ctx context.Context, p Partition, txn Txn) (rev uint64, err error)
}

var (
	// ErrNotFound is returned by Get for a key that is absent.
	ErrNotFound = errors.New("meta: key not found")
	// ErrConflict is returned by Commit when a condition does not hold.
	ErrConflict = errors.New("meta: condition failed")
	// ErrUnavailable is returned when the partition cannot commit or read
	// now (no quorum of metadata replicas); the caller answers 503.
	ErrUnavailable = errors.New("meta: partition unavailable")
	// ErrMoved is returned for a partition that has split: its keys are
	// now in its two children, and the caller routes them there (see
	// raftmeta, Splits). Nothing was applied.
	ErrMoved = errors.New("meta: partition split; its keys are in its children")
	// ErrNoSpace is returned by Commit when a drive of the store is too
	// full to take the commit safely: nothing was applied, reads go on,
	// and commits succeed again once space is freed. The caller answers
	// 507 Insufficient Storage, which clients do not retry as they do a
	// 503. It wraps syscall.ENOSPC, as a full disk does anywhere below.
	ErrNoSpace = fmt.Errorf("meta: no space for metadata: %w", syscall.ENOSPC)
)

// Range is one partition's key range [Start, End) for ScanRanges; a nil
// End means the end of the partition.
type Range struct {
	P          Partition
	Start, End []byte
}

// RangeScanner is implemented by stores that read many partition ranges
// from one view more cheaply than with a Scan each. fn is called for the
// keys of ranges[i] in order, range after range; returning false ends
// range i early. Callers use ScanRanges (the function), which falls back to
// Scan for stores without it.
type RangeScanner interface {
	ScanRanges(ctx context.Context, ranges []Range, fn func(i int, key []byte, item Item) bool) error
}

// OrderedScanner is implemented by stores that keep some keys in one order
// across partitions (LocalConfig.OrderedPrefixes), so that a range of them
// is read as one range rather than one per partition and merged. Ordered
// reports whether every key under prefix is so kept. ScanOrdered calls fn
// with the keys in [start, end) under such a prefix in every partition,
// in key order, from one view; key and item are valid only until fn
// returns. A store keeps a key so only if it lives in one partition at a
// time (an object's head: its partition is a hash of bucket and key).
type OrderedScanner interface {
	Ordered(prefix []byte) bool
	ScanOrdered(ctx context.Context, start, end []byte, fn func(key []byte, item Item) bool) error
}

// ScanRanges scans each range in turn, with one consistent view where the
// store offers it (see RangeScanner).
func ScanRanges(ctx context.Context, s Store, ranges []Range, fn func(i int, key []byte, item Item) bool) error {
	if rs, ok := s.(RangeScanner); ok {
		return rs.ScanRanges(ctx, ranges, fn)
	}
	for i, r := range ranges {
		err := s.Scan(ctx, r.P, r.Start, r.End, func(k []byte, it Item) bool { return fn(i, k, it) })
		if err != nil {
			return err
		}
	}
	return nil
}

// StaleGetter is implemented by stores that can read a key more cheaply
// when the value may be a little old: a replica's own copy, without the
// round that makes a read linearizable. Callers use GetStale (the
// function), which falls back to Get.
//
// A stale read is only for optimistic use: reading a revision to make a
// conditional commit on. If the value was old, the commit's condition
// fails and the caller reads again, linearizably.
type StaleGetter interface {
	GetStale(ctx context.Context, p Partition, key []byte) (Item, error)
}

// GetStale reads key, possibly a little behind the latest commit where the
// store offers it (see StaleGetter); otherwise it is Get.
func GetStale(ctx context.Context, s Store, p Partition, key []byte) (Item, error) {
	if sg, ok := s.(StaleGetter); ok {
		return sg.GetStale(ctx, p, key)
	}
	return s.Get(ctx, p, key)
}

// ReadOptions says how fresh a GetMany must be. The zero value is a
// linearizable read.
type ReadOptions struct {
	// Stale lets a replica answer from its own copy, which may lag the
	// latest commit (see StaleGetter): only for an optimistic read whose
	// revisions a conditional commit then checks.
	Stale bool
	// After, when not zero, lets any replica answer once it has applied
	// every commit up to After, a position an earlier linearizable
	// GetMany returned: the view then reflects every commit acknowledged
	// before that read began, and possibly more.
	After uint64
}

// A Read is one read of GetMany: the item at Key, or, with First, the
// first item of the partition whose key starts with Key (the newest
// version of an object, say, where versions sort newest first).
type Read struct {
	Key   []byte
	First bool
	// Hot marks a key read far more often than it is written: a store
	// may answer it from memory (HotKeys), from the same view as the
	// other reads. Not with First.
	Hot bool
}

// Get is a Read of one key.
func Get(key []byte) Read { return Read{Key: key} }

// GetHot is a Read of one key that is read far more often than written.
func GetHot(key []byte) Read { return Read{Key: key, Hot: true} }

// ManyGetter is implemented by stores that read several keys of one
// partition from one consistent view, at the cost of one read. Callers use
// GetMany (the function), which falls back to a Get or a Scan per read.
type ManyGetter interface {
	GetMany(ctx context.Context, p Partition, reads []Read, o ReadOptions) (items []Item, at uint64, err error)
}

// GetMany reads partition p. items[i] answers reads[i]: the value and
// revision of its key, and for a First read the key found (Item.Key); an
// absent item has Rev 0 and nil Value and Key. at names the view read: a
// later GetMany with ReadOptions.After = at sees at least that view. A
// store that serves every read from its current state returns at 0, and
// then After asks nothing more of it than a linearizable read does.
//
// Stores with ManyGetter answer all reads from one view; the fallback
// reads them one after another, each as fresh as o asks.
func GetMany(ctx context.Context, s Store, p Partition, reads []Read, o ReadOptions) (items []Item, at uint64, err error) {
	if mg, ok := s.(ManyGetter); ok {
		return mg.GetMany(ctx, p, reads, o)
	}
	items = make([]Item, len(reads))
	for i, r := range reads {
		var it Item
		var err error
		switch {
		case r.First:
			err = s.Scan(ctx, p, r.Key, PrefixEnd(r.Key), func(k []byte, found Item) bool {
				it = Item{Key: bytes.Clone(k), Value: bytes.Clone(found.Value), Rev: found.Rev}
				return false
			})
		case o.Stale:
			it, err = GetStale(ctx, s, p, r.Key)
		default:
			it, err = s.Get(ctx, p, r.Key)
		}
		switch {
		case errors.Is(err, ErrNotFound):
		case err != nil:
			return nil, 0, err
		default:
			items[i] = it
		}
	}
	return items, 0, nil
}

// PrefixEnd returns the smallest key after every key that starts with p,
// or nil when there is none (p is empty or all 0xff).
func PrefixEnd(p []byte) []byte {
	e := bytes.Clone(p)
	for i := len(e) - 1; i >= 0; i-- {
		if e[i] != 0xff {
			e[i]++
			return e[:i+1]
		}
	}
	return nil
}

// MovedError is ErrMoved for partition P, which split into Into. Stores
// wrap it (errors.As finds it) where they know which partition split.
type MovedError struct {
	P    Partition
	Into [2]Partition
}

func (e *MovedError) Error() string {
	return fmt.Sprintf("meta: partition %d split into %d and %d", e.P, e.Into[0], e.Into[1])
}

func (e *MovedError) Is(target error) bool { return target == ErrMoved }
