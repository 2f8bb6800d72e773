package meta

import (
	"bytes"
	"context"
	"fmt"
)

var _ RangeScanner = (*Local)(nil)

// ScanRanges reads every range through one Pebble iterator, re-bounded per
// range: opening an iterator costs far more than moving one, and a listing
// page reads a range of every partition. All ranges see one view of the
// replica. On a replica failure the ranges not yet finished are read again
// with Scan, which fails over to the next replica.
func (l *Local) ScanRanges(ctx context.Context, ranges []Range, fn func(i int, key []byte, item Item) bool) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	l.closeMu.RLock()
	r := l.readReplica()
	closed := l.closed
	var res rangesResult
	if !closed && r != nil {
		res = scanRangesReplica(r, ranges, fn)
	}
	l.closeMu.RUnlock()
	switch {
	case closed:
		return errClosed
	case r == nil:
		return l.unavailable("scan")
	case res.err == nil:
		return nil
	case res.badData:
		return res.err // not the replica's fault
	}
	readFail(r, res.err)
	if res.partial {
		// Part of a range went out already; reading it again would
		// repeat keys, so this request fails and the next one fails over.
		return res.err
	}
	done := res.done
	// Nothing of range done was delivered: read it and the rest through
	// Scan, which fails over to the next replica.
	for i := done; i < len(ranges); i++ {
		rg := ranges[i]
		if err := l.Scan(ctx, rg.P, rg.Start, rg.End, func(k []byte, it Item) bool { return fn(i, k, it) }); err != nil {
			return err
		}
	}
	return nil
}

// rangesResult is how far scanRangesReplica got: done ranges finished; on
// err, partial tells whether range done was partly delivered, and badData
// an error in the data rather than in the replica.
type rangesResult struct {
	done             int
	partial, badData bool
	err              error
}

// scanRangesReplica scans ranges on r with one iterator.
func scanRangesReplica(r *replica, ranges []Range, fn func(i int, key []byte, item Item) bool) (res rangesResult) {
	defer func() {
		if p := recover(); p != nil {
			res.err = fmt.Errorf("pebble scan panicked: %v", p)
		}
	}()
	it, err := r.db.NewIter(nil)
	if err != nil {
		return rangesResult{err: err}
	}
	defer it.Close()
	for i, rg := range ranges {
		res.done = i
		if rg.End != nil && bytes.Compare(rg.Start, rg.End) >= 0 {
			continue
		}
		lower, upper := partitionBounds(rg.P, rg.Start, rg.End)
		it.SetBounds(lower, upper)
		res.partial = false
		for ok := it.First(); ok; ok = it.Next() {
			v, err := it.ValueAndErr()
			if err != nil {
				break
			}
			rev, val, err := decodeItem(v)
			if err != nil {
				res.err, res.badData = err, true
				return res
			}
			res.partial = true
			if !fn(i, it.Key()[dataKeyHeader:], Item{Value: val, Rev: rev}) {
				break
			}
		}
		if err := it.Error(); err != nil {
			res.err = err
			return res
		}
	}
	return rangesResult{done: len(ranges)}
}
