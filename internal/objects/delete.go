package objects

import (
	"context"
	"errors"
	"fmt"

	"github.com/redoubt-io/redoubt/internal/hlc"
	"github.com/redoubt-io/redoubt/internal/meta"
)

func (s *Service) DeleteObject(ctx context.Context, bucket, key string, opts DeleteOptions) (DeleteResult, error) {
	b, _, err := s.getBucketCached(ctx, bucket)
	if err != nil {
		return DeleteResult{}, err
	}
	if err := ValidKey(key); err != nil {
		return DeleteResult{}, err
	}
	if opts.VersionID != "" {
		return s.deleteVersion(ctx, b, bucket, key, opts.VersionID, opts.IfMatch)
	}
	if b.Versioning == Unversioned {
		res, err := s.deleteVersion(ctx, b, bucket, key, "null", opts.IfMatch)
		res.VersionID = ""
		return res, err
	}
	marker := versionRec{DeleteMarker: true}
	rec, replaced, err := s.commitVersion(ctx, b, bucket, key, opts.IfMatch, "",
		func(context.Context) (versionRec, meta.Txn, error) { return marker, meta.Txn{}, nil })
	if err != nil {
		return DeleteResult{}, err
	}
	s.deleteData(ctx, replaced...)
	return DeleteResult{VersionID: versionIDString(rec.Null, rec.TS, b.Versioning), DeleteMarker: true}, nil
}

// deleteVersion removes exactly one version. Deleting a version that does
// not exist succeeds, as in S3, unless ifMatch asks about it.
func (s *Service) deleteVersion(ctx context.Context, b bucketRec, bucket, key, vid, ifMatch string) (DeleteResult, error) {
	ts, null, err := parseVersionID(vid)
	if errors.Is(err, ErrNoSuchVersion) && ifMatch == "" {
		// Well-formed, never issued: a version that does not exist.
		return DeleteResult{VersionID: vid}, nil
	}
	if err != nil {
		return DeleteResult{}, err
	}
	p := s.partition(bucket, key)
	hk := headKey(b.ID, key)
	for attempt := 0; attempt < maxAttempts; attempt++ {
		h, rev, err := s.getHead(ctx, p, b.ID, key)
		if err != nil {
			return DeleteResult{}, err
		}
		missing := func() (DeleteResult, error) {
			if ifMatch != "" {
				return DeleteResult{}, fmt.Errorf("%w: %q version %s", ErrNoSuchKey, key, vid)
			}
			return DeleteResult{VersionID: vid}, nil
		}
		if rev == 0 {
			return missing()
		}
		if null {
			if !h.HasNull {
				return missing()
			}
			ts = h.NullTS
		}
		v, ok, err := s.getVersion(ctx, p, b.ID, key, ts)
		if err != nil {
			return DeleteResult{}, err
		}
		if !ok {
			return missing()
		}
		if ifMatch != "" && (v.DeleteMarker || !etagMatches(ifMatch, v.ETag)) {
			return DeleteResult{}, fmt.Errorf("%w: etag of %q is not %s", ErrPreconditionFailed, key, ifMatch)
		}
		txn := meta.Txn{
			Conds:   []meta.Cond{{Key: hk, Rev: rev}},
			Deletes: [][]byte{versionKey(b.ID, key, ts)},
		}
		unref(&txn, v.refs()...)
		nh := h
		headGone := false
		if v.Null || (h.HasNull && h.NullTS == ts) {
			nh.HasNull, nh.NullTS = false, hlc.Timestamp{}
		}
		if ts == h.Latest {
			// The next newest version, if any, becomes the latest.
			var next *versionRec
			var derr error
			pre := versionPrefix(b.ID, key)
			err := s.md.Scan(ctx, p, successor(versionKey(b.ID, key, ts)), prefixEnd(pre), func(k []byte, it meta.Item) bool {
				_, nts, ok := splitVersionKey(k)
				if !ok {
					derr = errCorrupt
					return false
				}
				r, err := decodeVersion(nts, it.Value)
				if err != nil {
					derr = err
					return false
				}
				next = &r
				return false
			})
			if err != nil {
				return DeleteResult{}, metaErr("scan versions", err)
			}
			if derr != nil {
				return DeleteResult{}, fmt.Errorf("versions of %q: %w", key, derr)
			}
			if next == nil {
				headGone = true
				txn.Deletes = append(txn.Deletes, hk)
			} else {
				n := next.head()
				n.HasNull, n.NullTS = nh.HasNull, nh.NullTS
				nh = n
			}
		}
		if !headGone {
			// Every change to a key's versions rewrites its head.
			txn.Puts = []meta.KV{{Key: hk, Value: nh.encode()}}
		}
		if _, err := s.md.Commit(ctx, p, txn); err != nil {
			if isConflict(err) {
				continue
			}
			return DeleteResult{}, metaErr("delete version", err)
		}
		s.deleteData(ctx, v.refs()...)
		return DeleteResult{VersionID: vid, DeleteMarker: v.DeleteMarker}, nil
	}
	return DeleteResult{}, fmt.Errorf("%w: %q", ErrConditionalConflict, key)
}
