package objects

import (
	"context"
	"sync"
	"time"
)

// bucketCache keeps the bucket records this node read, so that object
// requests do not each read the bucket record (in a cluster, a
// linearizable read of the System group, often on another node).
//
// A cached record is only a hint of which incarnation (ID) a name stands
// for: no decision of an object operation rests on it. Versioning and
// existence are read from the bucket's fence in the key's partition, in
// the same view as the key and checked by the commit (see fence.go); a
// fence that is gone sends the operation back to the bucket record. An
// entry is used for Config.BucketCacheTTL after its read began, which
// only bounds how long a node keeps trying a name's old incarnation
// before it reads the record again. The absence of a bucket is never
// cached: it is answered from a linearizable read.
type bucketCache struct {
	ttl time.Duration
	mu  sync.Mutex
	m   map[string]cachedBucket
}

type cachedBucket struct {
	rec  bucketRec
	read time.Time
}

// maxCachedBuckets bounds the cache; beyond it, entries are dropped at
// random (Go's map order), which only costs a read.
const maxCachedBuckets = 10000

func (c *bucketCache) get(name string) (bucketRec, bool) {
	if c.ttl <= 0 {
		return bucketRec{}, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[name]
	if !ok || time.Since(e.read) >= c.ttl {
		return bucketRec{}, false
	}
	return e.rec, true
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

// opBucket is the bucket an object operation works on.
type opBucket struct {
	name string
	// rec is the bucket record the operation resolved the name to; its
	// ID names the incarnation whose fence and records it reads.
	rec bucketRec
	// fresh: rec was read by this operation itself, at its start, not
	// taken from the cache, so rec.Epoch is the configuration the
	// operation was issued under (see commitVersion).
	fresh bool
}

// openBucket resolves a bucket name for an object operation: from the
// cache, or from a linearizable read of the bucket record.
func (s *Service) openBucket(ctx context.Context, name string) (*opBucket, error) {
	if r, ok := s.buckets.get(name); ok {
		return &opBucket{name: name, rec: r}, nil
	}
	if ob, ok := s.rememberedBucket(ctx, name); ok {
		return ob, nil
	}
	start := time.Now()
	r, rev, err := s.getBucket(ctx, name)
	if err != nil {
		return nil, err
	}
	if !r.Fenced {
		if r, _, err = s.ensureFenced(ctx, name, r, rev); err != nil {
			return nil, err
		}
	}
	s.buckets.put(name, cachedBucket{rec: r, read: start})
	return &opBucket{name: name, rec: r, fresh: true}, nil
}
