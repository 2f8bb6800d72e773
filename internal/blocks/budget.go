package blocks

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"golang.org/x/sync/semaphore"
)

// ErrBusy is returned by Write and Open when the buffers they need did
// not come free within Config.BufferWait: the node holds as much data in
// flight as Config.BufferBytes allows. Retry later.
var ErrBusy = errors.New("data buffers of this node are all in use")

// budget bounds the bytes of buffers one kind of request holds at once.
// Waiters are served in arrival order, as semaphore.Weighted documents,
// so a large request is not starved by small ones arriving after it.
//
// Every request takes all it may hold when it starts, and waits for
// nothing after: a Write its stripes in flight and its shard writers'
// buffers (writeNeed), a reader its read-ahead. So no request ever waits
// while holding part of a budget, which with waiters served in order
// would be a deadlock. Writes and reads have a budget each: a copy holds
// its reader while it waits for a Write, and a Write never waits for a
// reader's budget, so that is no cycle either
// (TestBudgetCopiesDoNotDeadlock).
type budget struct {
	sem     *semaphore.Weighted // nil: no bound
	size    int64
	held    atomic.Int64
	waiting atomic.Int64  // requests waiting now
	busy    atomic.Uint64 // requests refused after BufferWait
}

func newBudget(size int64) *budget {
	b := &budget{size: size}
	if size > 0 {
		b.sem = semaphore.NewWeighted(size)
	}
	return b
}

// take waits for n bytes, at most wait if wait > 0, then fails with
// ErrBusy; it also ends with ctx. A request larger than the whole budget
// takes the whole budget: it runs alone rather than never.
func (b *budget) take(ctx context.Context, n int64, wait time.Duration) (int64, error) {
	if b.sem == nil || n <= 0 {
		return 0, nil
	}
	n = min(n, b.size)
	if b.sem.TryAcquire(n) {
		b.held.Add(n)
		return n, nil
	}
	wctx := ctx
	if wait > 0 {
		var cancel context.CancelFunc
		wctx, cancel = context.WithTimeout(ctx, wait)
		defer cancel()
	}
	b.waiting.Add(1)
	err := b.sem.Acquire(wctx, n)
	b.waiting.Add(-1)
	if err != nil {
		if ctx.Err() != nil {
			return 0, context.Cause(ctx)
		}
		b.busy.Add(1)
		return 0, fmt.Errorf("%w (%d bytes asked, waited %v)", ErrBusy, n, wait)
	}
	b.held.Add(n)
	return n, nil
}

// sizeHintKey carries the bytes a Write will read, when its caller
// knows them (WithSizeHint).
type sizeHintKey struct{}

// WithSizeHint tells a Write under ctx that it will read size bytes, so
// that it takes buffers for what it will store rather than for the
// largest object (a 200 KiB object needs one stripe, not four).
func WithSizeHint(ctx context.Context, size int64) context.Context {
	return context.WithValue(ctx, sizeHintKey{}, size)
}

// writeNeed is what a Write of shards shards, stripe bytes of buffer per
// stripe of stripeLen bytes of data, may hold at once: WriteAhead stripes
// waiting for the drives, one each drive is writing and the one being
// read, fewer for a body that WithSizeHint says is shorter (one more than
// it fills: the read that finds its end takes a buffer too), and the
// shard writers' buffers.
func (s *Set) writeNeed(ctx context.Context, stripe, stripeLen, shards int) int64 {
	stripes := int64(s.cfg.WriteAhead + 2)
	if size, ok := ctx.Value(sizeHintKey{}).(int64); ok && size >= 0 {
		stripes = min(stripes, size/int64(stripeLen)+1)
	}
	return stripes*int64(stripe) + int64(shards)*int64(s.cfg.WriterBytes)
}

// give returns n bytes taken by take.
func (b *budget) give(n int64) {
	if b.sem == nil || n == 0 {
		return
	}
	b.held.Add(-n)
	b.sem.Release(n)
}

// BufferStats is what the buffers of Writes and readers hold, for status
// and metrics.
type BufferStats struct {
	// WriteHeld and ReadHeld are the bytes held now; WriteLimit and
	// ReadLimit the bounds (0: none).
	WriteHeld, WriteLimit int64
	ReadHeld, ReadLimit   int64
	// Waiting is the requests waiting for buffers now; Busy counts those
	// refused with ErrBusy since start.
	Waiting int64
	Busy    uint64
}

// Buffers returns what the Set's request buffers hold.
func (s *Set) Buffers() BufferStats {
	return BufferStats{
		WriteHeld: s.writeBudget.held.Load(), WriteLimit: s.writeBudget.size,
		ReadHeld: s.readBudget.held.Load(), ReadLimit: s.readBudget.size,
		Waiting: s.writeBudget.waiting.Load() + s.readBudget.waiting.Load(),
		Busy:    s.writeBudget.busy.Load() + s.readBudget.busy.Load(),
	}
}
