package objects

import (
	"context"
	"fmt"

	"github.com/redoubt-io/redoubt/internal/blocks"
	"github.com/redoubt-io/redoubt/internal/meta"
)

// Stats counts the stored object versions (delete markers excluded) and
// their bytes in every bucket. It reads each partition's counters
// (countKey), which the transactions that add and remove versions keep
// with meta.Add, so PUTs never contend on them and the cost does not grow
// with the objects stored: one read of a few keys per partition
// (TestStatsReadsCounters). Buckets from before counters are scanned.
func (s *Service) Stats(ctx context.Context) (objects, bytes int64, err error) {
	var legacy []bucketID
	counted := map[bucketID]bool{}
	err = s.forEachBucket(ctx, func(_ string, r bucketRec) {
		if r.Counted {
			counted[r.ID] = true
		} else {
			legacy = append(legacy, r.ID)
		}
	})
	if err != nil {
		return 0, 0, err
	}
	if len(counted) > 0 {
		pre := []byte{tagCount}
		err := s.walkParts(func(p meta.Partition) error {
			var ferr error
			var objs, byts int64 // added once the whole partition is read
			err := s.md.Scan(ctx, p, pre, prefixEnd(pre), func(k []byte, it meta.Item) bool {
				var id bucketID
				if len(k) != keyHdr {
					ferr = fmt.Errorf("counter key %x: %w", k, errCorrupt)
					return false
				}
				copy(id[:], k[1:])
				if !counted[id] {
					return true // a deleted bucket's
				}
				c, err := meta.DecodeCounters(it.Value)
				if err != nil || len(c) != 2 {
					ferr = fmt.Errorf("counters %x: %w", k, errCorrupt)
					return false
				}
				objs += c[0]
				byts += c[1]
				return true
			})
			if err != nil {
				return metaErr("scan counters", err)
			}
			if ferr != nil {
				return ferr
			}
			objects, bytes = objects+objs, bytes+byts
			return nil
		})
		if err != nil {
			return 0, 0, err
		}
	}
	n, b, err := s.scanCount(ctx, legacy)
	return objects + n, bytes + b, err
}

// CountByScan is what Stats answers, counted by reading every version
// record of every bucket: the check of the counters, for tests and the
// simulation.
func (s *Service) CountByScan(ctx context.Context) (objects, bytes int64, err error) {
	var ids []bucketID
	if err := s.forEachBucket(ctx, func(_ string, r bucketRec) { ids = append(ids, r.ID) }); err != nil {
		return 0, 0, err
	}
	return s.scanCount(ctx, ids)
}

// scanCount counts the versions of buckets ids, delete markers excluded,
// and their bytes, by scanning them.
func (s *Service) scanCount(ctx context.Context, ids []bucketID) (objects, bytes int64, err error) {
	for _, id := range ids {
		err := s.scanAll(ctx, tagVersion, id, func(k []byte, it meta.Item) error {
			v, err := versionItem(k, it)
			if err != nil {
				return err
			}
			if !v.DeleteMarker {
				objects++
				bytes += v.Size
			}
			return nil
		})
		if err != nil {
			return 0, 0, err
		}
	}
	return objects, bytes, nil
}

// ForEachRef calls fn with every data Ref that committed metadata refers
// to: the parts of every object version and of every pending multipart
// upload, in every bucket incarnation, live or not, so that garbage
// collection never frees data a record still names. It stops at the first
// error fn returns.
func (s *Service) ForEachRef(ctx context.Context, fn func(blocks.Ref) error) error {
	return s.ForEachRefPaced(ctx, nil, fn)
}

// ForEachRefPaced is ForEachRef that calls pause, if not nil, before it
// reads each partition, with the partitions done and the number there
// were when it began (a partition that splits meanwhile adds one), so
// that a background reader can yield between partitions. An error from
// pause ends the walk with it.
func (s *Service) ForEachRefPaced(ctx context.Context, pause func(done, total int) error, fn func(blocks.Ref) error) error {
	total, done := len(s.md.parts()), 0
	return s.walkParts(func(p meta.Partition) error {
		if pause != nil {
			if err := pause(done, total); err != nil {
				return err
			}
		}
		done++
		for _, tag := range []byte{tagVersion, tagPart} {
			pre := []byte{tag}
			var ferr error
			err := s.md.Scan(ctx, p, pre, prefixEnd(pre), func(k []byte, it meta.Item) bool {
				if tag == tagPart {
					pr, err := decodePendingPart(it.Value)
					if err != nil {
						ferr = fmt.Errorf("part record %x: %w", k, err)
						return false
					}
					if pr.Ref.ID != "" {
						ferr = fn(pr.Ref)
					}
					return ferr == nil
				}
				v, err := versionItem(k, it)
				if err != nil {
					ferr = err
					return false
				}
				for _, r := range v.refs() {
					if r.ID == "" {
						continue
					}
					if ferr = fn(r); ferr != nil {
						return false
					}
				}
				return true
			})
			if err != nil {
				return metaErr("scan refs", err)
			}
			if ferr != nil {
				return ferr
			}
		}
		return nil
	})
}

// scanAll calls fn for each tag record of bucket id in every partition
// (a partition that splits meanwhile may show some twice: walkParts).
func (s *Service) scanAll(ctx context.Context, tag byte, id bucketID, fn func(k []byte, it meta.Item) error) error {
	pre := tagPrefix(tag, id)
	return s.walkParts(func(p meta.Partition) error {
		var ferr error
		err := s.md.Scan(ctx, p, pre, prefixEnd(pre), func(k []byte, it meta.Item) bool {
			ferr = fn(k, it)
			return ferr == nil
		})
		if err != nil {
			return metaErr("scan", err)
		}
		return ferr
	})
}

// versionItem decodes the version record k, it of a scan.
func versionItem(k []byte, it meta.Item) (versionRec, error) {
	_, ts, ok := splitVersionKey(k)
	if !ok {
		return versionRec{}, fmt.Errorf("version key %x: %w", k, errCorrupt)
	}
	v, err := decodeVersion(ts, it.Value)
	if err != nil {
		return versionRec{}, fmt.Errorf("version record %x: %w", k, err)
	}
	return v, nil
}
