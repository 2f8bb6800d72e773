package objects

import (
	"context"
	"fmt"

	"github.com/redoubt-io/redoubt/internal/blocks"
	"github.com/redoubt-io/redoubt/internal/meta"
)

// Stats counts the stored object versions (delete markers excluded) and
// their bytes in every bucket. It scans all metadata on demand, so PUTs
// never contend on a shared counter; callers should cache the answer.
func (s *Service) Stats(ctx context.Context) (objects, bytes int64, err error) {
	bs, err := s.liveBuckets(ctx)
	if err != nil {
		return 0, 0, err
	}
	for _, id := range bs {
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
	for p := 0; p < s.cfg.Partitions; p++ {
		for _, tag := range []byte{tagVersion, tagPart} {
			pre := []byte{tag}
			var ferr error
			err := s.md.Scan(ctx, meta.Partition(p), pre, prefixEnd(pre), func(k []byte, it meta.Item) bool {
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
	}
	return nil
}

func (s *Service) liveBuckets(ctx context.Context) ([]bucketID, error) {
	var ids []bucketID
	err := s.forEachBucket(ctx, func(_ string, r bucketRec) { ids = append(ids, r.ID) })
	return ids, err
}

// scanAll calls fn for each tag record of bucket id in every partition.
func (s *Service) scanAll(ctx context.Context, tag byte, id bucketID, fn func(k []byte, it meta.Item) error) error {
	pre := tagPrefix(tag, id)
	for p := 0; p < s.cfg.Partitions; p++ {
		var ferr error
		err := s.md.Scan(ctx, meta.Partition(p), pre, prefixEnd(pre), func(k []byte, it meta.Item) bool {
			ferr = fn(k, it)
			return ferr == nil
		})
		if err != nil {
			return metaErr("scan", err)
		}
		if ferr != nil {
			return ferr
		}
	}
	return nil
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
