package objects

import (
	"context"
	"errors"
	"sync"
	"time"
)

// bucketCache keeps the bucket records this node read, so that object
// requests do not each read the bucket from the metadata (in a cluster, a
// linearizable read of the System group, often on another node).
//
// It is a lease: an entry is used for Config.BucketCacheTTL from the
// moment its read began. A bucket change invalidates this node's entry
// and, when other nodes may cache too (Config.SharedMetadata), waits one
// TTL before it answers. Every entry read before the change committed has
// then expired everywhere, so once a client sees a change acknowledged, no
// node acts on the old record. Only the rate of each node's monotonic
// clock matters, not agreement between clocks.
type bucketCache struct {
	ttl time.Duration
	mu  sync.Mutex
	m   map[string]cachedBucket
}

type cachedBucket struct {
	rec     bucketRec
	rev     uint64
	missing bool // the bucket did not exist
	read    time.Time
}

// maxCachedBuckets bounds the cache; beyond it, entries are dropped at
// random (Go's map order), which only costs a read.
const maxCachedBuckets = 10000

func (c *bucketCache) get(name string) (cachedBucket, bool) {
	if c.ttl <= 0 {
		return cachedBucket{}, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[name]
	if !ok || time.Since(e.read) >= c.ttl {
		return cachedBucket{}, false
	}
	return e, true
}

func (c *bucketCache) put(name string, e cachedBucket) {
	if c.ttl <= 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[string]cachedBucket{}
	}
	if len(c.m) >= maxCachedBuckets {
		for k := range c.m {
			delete(c.m, k)
			if len(c.m) < maxCachedBuckets/2 {
				break
			}
		}
	}
	if old, ok := c.m[name]; ok && old.read.After(e.read) {
		return // a newer read is already here
	}
	c.m[name] = e
}

func (c *bucketCache) forget(name string) {
	c.mu.Lock()
	delete(c.m, name)
	c.mu.Unlock()
}

// changed is called after a bucket record was (or may have been) changed:
// it drops this node's entry and, when other nodes cache too, waits out
// the lease of their entries.
func (s *Service) bucketChanged(ctx context.Context, name string) error {
	s.buckets.forget(name)
	if !s.cfg.SharedMetadata || s.buckets.ttl <= 0 {
		return nil
	}
	t := time.NewTimer(s.buckets.ttl)
	defer t.Stop()
	select {
	case <-t.C:
		s.buckets.forget(name) // a read that raced the change
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

// getBucketCached is getBucket through the cache, for object operations.
// Bucket changes use getBucket itself: their conditional commits need the
// current revision.
func (s *Service) getBucketCached(ctx context.Context, name string) (bucketRec, uint64, error) {
	if e, ok := s.buckets.get(name); ok {
		if e.missing {
			return bucketRec{}, 0, noSuchBucket(name)
		}
		return e.rec, e.rev, nil
	}
	start := time.Now()
	r, rev, err := s.getBucket(ctx, name)
	switch {
	case err == nil:
		s.buckets.put(name, cachedBucket{rec: r, rev: rev, read: start})
	case errors.Is(err, ErrNoSuchBucket):
		s.buckets.put(name, cachedBucket{missing: true, read: start})
	}
	return r, rev, err
}
