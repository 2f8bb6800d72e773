package objects

import (
	"context"
	"fmt"
	"time"
)

// A Conflict is a key of an available bucket written concurrently: more
// than one of its visible versions was written without seeing the others
// (on two sides of a partition, say). Every one stays until a write that
// sees them, or a delete by version ID, resolves the conflict.
type Conflict struct {
	Key string
	// Heads are the concurrent versions, greatest (the current one)
	// first; a delete marker among them has DeleteMarker set.
	Heads []ObjectInfo
}

// MaxConflicts bounds the conflicts one call of Conflicts returns.
const MaxConflicts = 1000

// Conflicts lists the keys of available bucket bucket under prefix, after
// the key after, that are in conflict, at most max of them (0 or more than
// MaxConflicts: MaxConflicts); next is the key to continue after, "" at
// the end. It reads every partition's replicas, as a listing does.
func (s *Service) Conflicts(ctx context.Context, bucket, prefix, after string, max int) (out []Conflict, next string, err error) {
	b, _, err := s.getBucket(ctx, bucket)
	if b, err = s.availableOrErr(bucket, b, err); err != nil {
		return nil, "", err
	}
	if b.Config.Consistency != Available {
		return nil, "", fmt.Errorf("%w: %q is a strong bucket, whose writes are ordered: it has no conflicts", ErrInvalidArgument, bucket)
	}
	if max <= 0 || max > MaxConflicts {
		max = MaxConflicts
	}
	ob := &opBucket{name: bucket, rec: b}
	m, err := s.newAvailMerger(ctx, &b, availListStart(b.ID, prefix, "", after), prefixEnd(availKey(b.ID, prefix)), maxListKeys, false)
	if err != nil {
		return nil, "", err
	}
	for {
		k, ok, err := m.peek()
		if err != nil {
			return nil, "", err
		}
		if !ok {
			return out, "", nil
		}
		heads := k.st.Heads()
		if len(heads) > 1 {
			if len(out) == max {
				return out, out[len(out)-1].Key, nil
			}
			key := k.key()
			c := Conflict{Key: key}
			for i, v := range heads {
				r, err := availRec(v, key)
				if err != nil {
					return nil, "", err
				}
				oi := availInfo(ob, key, v, &r, i == 0)
				oi.Headers, oi.UserMeta = nil, nil
				c.Heads = append(c.Heads, oi)
			}
			out = append(out, c)
		}
		m.pop(k)
	}
}

// maxConflictRetention bounds BucketConfig.ConflictRetention.
const maxConflictRetention = 100 * 365 * 24 * time.Hour

// ConflictRetentionHeader is CreateBucket's request header that sets an
// available bucket's BucketConfig.ConflictRetention (a Go duration, such
// as 72h), and HeadBucket's response header that shows it.
const ConflictRetentionHeader = "X-Redoubt-Conflict-Retention"

// ResolveOldConflicts removes, in every unversioned available bucket with
// a conflict retention, the heads of each conflict but the current one
// that are older than the retention, by version ID, as a client could. It
// returns how many it removed. In a versioned bucket every head is a
// version the user may want, and none is removed.
func (s *Service) ResolveOldConflicts(ctx context.Context) (removed int, err error) {
	bs, err := s.ListBuckets(ctx)
	if err != nil {
		return 0, err
	}
	for _, b := range bs {
		if b.Consistency != Available || b.ConflictRetention == 0 || b.Versioning != Unversioned {
			continue
		}
		cutoff := s.cfg.Now().Add(-b.ConflictRetention)
		after := ""
		for {
			cs, next, err := s.Conflicts(ctx, b.Name, "", after, 0)
			if err != nil {
				return removed, err
			}
			for _, c := range cs {
				for _, h := range c.Heads[1:] {
					if !h.LastModified.Before(cutoff) {
						continue
					}
					if _, err := s.DeleteObject(ctx, b.Name, c.Key, DeleteOptions{VersionID: h.VersionID}); err != nil {
						return removed, err
					}
					removed++
				}
			}
			if next == "" {
				break
			}
			after = next
		}
	}
	return removed, nil
}
