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
// Close waits for the operations already running. It keeps the host's
// optional interfaces (GetMany, GetStale, ScanRanges), whose cheaper reads
// the layers above rely on.
type guardedStore struct {
	mu     sync.Mutex
	closed bool
	// inflight counts the operations running. A WaitGroup rather than a
	// read lock held across them: Close waits on it without holding a
	// lock that new operations would queue behind.
	inflight sync.WaitGroup
	s        meta.Store
	// commits times successful commits, for status and benchmarks.
	commits latencies
}

var (
	_ meta.Store        = (*guardedStore)(nil)
	_ meta.ManyGetter   = (*guardedStore)(nil)
	_ meta.StaleGetter  = (*guardedStore)(nil)
	_ meta.RangeScanner = (*guardedStore)(nil)
)

// enter admits an operation unless Close has begun; the caller must call
// g.inflight.Done when it ends.
func (g *guardedStore) enter() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return fmt.Errorf("node is shutting down: %w", meta.ErrUnavailable)
	}
	g.inflight.Add(1)
	return nil
}

// shut refuses new operations and waits for those in flight.
func (g *guardedStore) shut() {
	g.mu.Lock()
	g.closed = true
	g.mu.Unlock()
	g.inflight.Wait()
}

func (g *guardedStore) Get(ctx context.Context, p meta.Partition, key []byte) (meta.Item, error) {
	if err := g.enter(); err != nil {
		return meta.Item{}, err
	}
	defer g.inflight.Done()
	return g.s.Get(ctx, p, key)
}

func (g *guardedStore) Scan(ctx context.Context, p meta.Partition, start, end []byte, fn func(key []byte, item meta.Item) bool) error {
	if err := g.enter(); err != nil {
		return err
	}
	defer g.inflight.Done()
	return g.s.Scan(ctx, p, start, end, fn)
}

func (g *guardedStore) Commit(ctx context.Context, p meta.Partition, txn meta.Txn) (uint64, error) {
	if err := g.enter(); err != nil {
		return 0, err
	}
	defer g.inflight.Done()
	start := time.Now()
	rev, err := g.s.Commit(ctx, p, txn)
	if err == nil {
		g.commits.observe(time.Since(start))
	}
	return rev, err
}

func (g *guardedStore) GetMany(ctx context.Context, p meta.Partition, reads []meta.Read, o meta.ReadOptions) ([]meta.Item, uint64, error) {
	if err := g.enter(); err != nil {
		return nil, 0, err
	}
	defer g.inflight.Done()
	return meta.GetMany(ctx, g.s, p, reads, o)
}

func (g *guardedStore) GetStale(ctx context.Context, p meta.Partition, key []byte) (meta.Item, error) {
	if err := g.enter(); err != nil {
		return meta.Item{}, err
	}
	defer g.inflight.Done()
	return meta.GetStale(ctx, g.s, p, key)
}

func (g *guardedStore) ScanRanges(ctx context.Context, ranges []meta.Range, fn func(i int, key []byte, item meta.Item) bool) error {
	if err := g.enter(); err != nil {
		return err
	}
	defer g.inflight.Done()
	return meta.ScanRanges(ctx, g.s, ranges, fn)
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
