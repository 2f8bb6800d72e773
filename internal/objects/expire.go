package objects

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redoubt-io/redoubt/internal/meta"
)

// expireBatch bounds the stale uploads one partition scan collects before
// they are aborted, so memory stays bounded whatever the number of
// abandoned uploads; the next scan resumes after the last one seen.
const expireBatch = 1000

// ExpireMultipartUploads aborts every multipart upload of every bucket
// initiated more than age ago (by Config.Now), deleting its parts' data,
// and returns how many it aborted. Uploads are found with one scan of the
// upload records per partition, whatever the number of buckets. An upload
// completed or aborted meanwhile (by a client, or by another node running
// the same expiry) is skipped. It carries on past an upload it cannot
// abort and returns the errors joined, after trying the others.
func (s *Service) ExpireMultipartUploads(ctx context.Context, age time.Duration) (aborted int, err error) {
	return s.expireUploads(ctx, age, expireBatch)
}

func (s *Service) expireUploads(ctx context.Context, age time.Duration, batchMax int) (aborted int, err error) {
	if age <= 0 {
		return 0, fmt.Errorf("%w: expiry age %v must be positive", ErrInvalidArgument, age)
	}
	type live struct {
		name string
		rec  bucketRec
	}
	buckets := map[bucketID]live{}
	if err := s.forEachBucket(ctx, func(name string, r bucketRec) { buckets[r.ID] = live{name, r} }); err != nil {
		return 0, err
	}
	if len(buckets) == 0 {
		return 0, nil
	}
	cutoff := s.cfg.Now().Add(-age).UnixMilli()
	type stale struct {
		bucket      live
		key, upload string
	}
	var errs []error
	pre := []byte{tagUpload}
	for _, p := range s.md.parts() {
		start := pre
		for start != nil {
			var batch []stale
			var next, ferr = []byte(nil), error(nil)
			err := s.md.Scan(ctx, p, start, prefixEnd(pre), func(k []byte, it meta.Item) bool {
				if len(batch) == batchMax {
					next = bytes.Clone(k)
					return false
				}
				if len(k) < keyHdr {
					ferr = fmt.Errorf("upload key %x: %w", k, errCorrupt)
					return false
				}
				b, ok := buckets[bucketID(k[1:keyHdr])]
				if !ok {
					return true // a deleted bucket's: garbage collection's
				}
				key, id, ok := splitUploadKey(k)
				if !ok {
					ferr = fmt.Errorf("upload key %x: %w", k, errCorrupt)
					return false
				}
				u, err := decodeUpload(it.Value)
				if err != nil {
					ferr = fmt.Errorf("upload %q: %w", id, err)
					return false
				}
				if u.Initiated < cutoff {
					batch = append(batch, stale{b, key, id})
				}
				return true
			})
			if err != nil {
				return aborted, errors.Join(append(errs, metaErr("scan uploads", err))...)
			}
			if ferr != nil {
				return aborted, errors.Join(append(errs, ferr)...)
			}
			for _, st := range batch {
				ob := &opBucket{name: st.bucket.name, rec: st.bucket.rec}
				err := s.abortUpload(ctx, ob, s.partition(st.bucket.name, st.key), st.key, st.upload)
				switch {
				case err == nil:
					aborted++
					s.log.Info("aborted a stale multipart upload", "bucket", st.bucket.name, "key", st.key, "upload", st.upload)
				case errors.Is(err, ErrNoSuchUpload):
				case ctx.Err() != nil:
					return aborted, errors.Join(append(errs, ctx.Err())...)
				default:
					errs = append(errs, fmt.Errorf("abort upload %q of %q: %w", st.upload, st.bucket.name, err))
				}
			}
			start = next
		}
	}
	return aborted, errors.Join(errs...)
}
