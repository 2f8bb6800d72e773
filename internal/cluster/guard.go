package cluster

import (
	"context"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/redoubt-io/redoubt/internal/meta"
)

// guardedStore is the cluster's metadata for callers above: once Close has
// begun it answers ErrUnavailable instead of reaching a closed host, and
// Close waits for the operations already running.
type guardedStore struct {
	mu     sync.RWMutex
	closed bool
	s      meta.Store
	// commits times successful commits, for status and benchmarks.
	commits latencies
}

var _ meta.Store = (*guardedStore)(nil)

func (g *guardedStore) enter() error {
	g.mu.RLock()
	if g.closed {
		g.mu.RUnlock()
		return fmt.Errorf("node is shutting down: %w", meta.ErrUnavailable)
	}
	return nil
}

// shut refuses new operations and waits for those in flight.
func (g *guardedStore) shut() {
	g.mu.Lock()
	g.closed = true
	g.mu.Unlock()
}

func (g *guardedStore) Get(ctx context.Context, p meta.Partition, key []byte) (meta.Item, error) {
	if err := g.enter(); err != nil {
		return meta.Item{}, err
	}
	defer g.mu.RUnlock()
	return g.s.Get(ctx, p, key)
}

func (g *guardedStore) Scan(ctx context.Context, p meta.Partition, start, end []byte, fn func(key []byte, item meta.Item) bool) error {
	if err := g.enter(); err != nil {
		return err
	}
	defer g.mu.RUnlock()
	return g.s.Scan(ctx, p, start, end, fn)
}

func (g *guardedStore) Commit(ctx context.Context, p meta.Partition, txn meta.Txn) (uint64, error) {
	if err := g.enter(); err != nil {
		return 0, err
	}
	defer g.mu.RUnlock()
	start := time.Now()
	rev, err := g.s.Commit(ctx, p, txn)
	if err == nil {
		g.commits.observe(time.Since(start))
	}
	return rev, err
}

// latencies is a histogram of durations in buckets a quarter of a power
// of two wide (about 19% apart), from 1 µs up: enough for percentiles to
// within a bucket, at a fixed size.
type latencies struct {
	mu      sync.Mutex
	buckets [128]uint64
	n       uint64
}

func bucketOf(d time.Duration) int {
	us := float64(d.Microseconds())
	if us < 1 {
		return 0
	}
	return min(int(4*math.Log2(us)), 127)
}

func (l *latencies) observe(d time.Duration) {
	l.mu.Lock()
	l.buckets[bucketOf(d)]++
	l.n++
	l.mu.Unlock()
}

// quantile returns the upper bound of the bucket holding quantile q, and
// the number of samples.
func (l *latencies) quantile(q float64) (time.Duration, uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.n == 0 {
		return 0, 0
	}
	want := uint64(math.Ceil(q * float64(l.n)))
	var seen uint64
	for i, c := range l.buckets {
		seen += c
		if seen >= want {
			return time.Duration(math.Exp2(float64(i+1)/4)) * time.Microsecond, l.n
		}
	}
	return 0, l.n
}

var _ meta.RangeScanner = (*guardedStore)(nil)

// ScanRanges passes the host's one-request-per-node range reads through,
// which listing depends on.
func (g *guardedStore) ScanRanges(ctx context.Context, ranges []meta.Range, fn func(i int, key []byte, item meta.Item) bool) error {
	if err := g.enter(); err != nil {
		return err
	}
	defer g.mu.RUnlock()
	return meta.ScanRanges(ctx, g.s, ranges, fn)
}

var _ meta.StaleGetter = (*guardedStore)(nil)

// GetStale passes the host's replica reads through (see meta.StaleGetter).
func (g *guardedStore) GetStale(ctx context.Context, p meta.Partition, key []byte) (meta.Item, error) {
	if err := g.enter(); err != nil {
		return meta.Item{}, err
	}
	defer g.mu.RUnlock()
	return meta.GetStale(ctx, g.s, p, key)
}
