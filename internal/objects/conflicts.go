package objects

import (
	"context"
	"fmt"
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
	m, err := s.newAvailMerger(ctx, availListStart(b.ID, prefix, "", after), prefixEnd(availKey(b.ID, prefix)), maxListKeys, false)
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
