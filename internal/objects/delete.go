package objects

import (
	"context"
	"errors"
	"fmt"

	"github.com/redoubt-io/redoubt/internal/hlc"
	"github.com/redoubt-io/redoubt/internal/meta"
)

func (s *Service) DeleteObject(ctx context.Context, bucket, key string, opts DeleteOptions) (DeleteResult, error) {
	ob, err := s.openBucket(ctx, bucket)
	if err != nil {
		return DeleteResult{}, err
	}
	if err := ValidKey(key); err != nil {
		return DeleteResult{}, err
	}
	if ob.available() {
		return s.deleteAvailable(ctx, ob, key, opts)
	}
	if opts.VersionID != "" {
		return s.deleteVersion(ctx, ob, key, opts.VersionID, opts.IfMatch, false)
	}
	// Without a version ID the bucket's state decides, as its fence says
	// in the key's partition: an unversioned bucket removes the null
	// version, a versioned or suspended one adds a delete marker.
	res, err := s.deleteVersion(ctx, ob, key, "null", opts.IfMatch, true)
	if !errors.Is(err, errVersioned) {
		res.VersionID = ""
		return res, err
	}
	marker := versionRec{DeleteMarker: true}
	c, err := s.commitVersion(ctx, ob, key, opts.IfMatch, "",
		func(context.Context, bucketID) (versionRec, meta.Txn, error) { return marker, meta.Txn{}, nil })
	if err != nil {
		return DeleteResult{}, err
	}
	s.deleteData(ctx, c.replaced...)
	return DeleteResult{VersionID: versionIDString(c.rec.Null, c.rec.TS, c.versioning), DeleteMarker: true}, nil
}

// errVersioned: a delete without a version ID met a bucket that was ever
// versioned, where it adds a delete marker instead.
var errVersioned = errors.New("objects: bucket versioned")

// deleteVersion removes exactly one version. Deleting a version that does
// not exist succeeds, as in S3, unless ifMatch asks about it. unversioned
// makes it the delete of an unversioned bucket: it fails with
// errVersioned when the fence says the bucket was ever versioned.
func (s *Service) deleteVersion(ctx context.Context, ob *opBucket, key, vid, ifMatch string, unversioned bool) (DeleteResult, error) {
	ts, null, err := parseVersionID(vid)
	if errors.Is(err, ErrNoSuchVersion) && ifMatch == "" {
		// Well-formed, never issued: a version that does not exist.
		return DeleteResult{VersionID: vid}, nil
	}
	if err != nil {
		return DeleteResult{}, err
	}
	p := s.partition(ob.name, key)
	for attempt := 0; attempt < maxAttempts; attempt++ {
		// The named version is read in the same view as the head; the
		// null version's timestamp is in the head, so it is read after.
		named := func(id bucketID) []meta.Read {
			if null {
				return []meta.Read{meta.Get(headKey(id, key))}
			}
			return []meta.Read{meta.Get(headKey(id, key)), meta.Get(versionKey(id, key, ts))}
		}
		f, frev, items, at, err := s.readView(ctx, p, ob, named, meta.ReadOptions{})
		if err != nil {
			return DeleteResult{}, err
		}
		if unversioned && f.Versioning != Unversioned {
			return DeleteResult{}, errVersioned
		}
		id := ob.rec.ID
		hk := headKey(id, key)
		h, rev, err := decodeHeadItem(items[0], key)
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
		var v versionRec
		var vrev uint64
		var ok bool
		if null {
			if !h.HasNull {
				return missing()
			}
			ts = h.NullTS
			if v, vrev, ok, err = s.getVersion(ctx, p, id, key, ts, at); err != nil {
				return DeleteResult{}, err
			}
			if !ok {
				// The null version the head named was replaced since:
				// read again, never answer as if there were none
				// (TestDeleteNullVersionRacingItsReplacement).
				continue
			}
		} else if vrev = items[1].Rev; vrev != 0 {
			if v, err = decodeVersion(ts, items[1].Value); err != nil {
				return DeleteResult{}, fmt.Errorf("version of %q: %w", key, err)
			}
			// A null version is named "null" only, never by its
			// timestamp (TestNullVersionIsNotNamedByItsTimestamp).
			ok = !v.Null
		}
		if !ok {
			return missing()
		}
		if ifMatch != "" && (v.DeleteMarker || !etagMatches(ifMatch, v.ETag)) {
			return DeleteResult{}, fmt.Errorf("%w: etag of %q is not %s", ErrPreconditionFailed, key, ifMatch)
		}
		vk := versionKey(id, key, ts)
		txn := meta.Txn{
			// The version's own revision: relocation rewrites a version
			// without its head, and the data unreferenced must be the
			// data it names now.
			Conds:   []meta.Cond{{Key: fenceKey(id), Rev: frev}, {Key: hk, Rev: rev}, {Key: vk, Rev: vrev}},
			Deletes: [][]byte{vk},
		}
		unref(&txn, v.refs()...)
		countVersion(&txn, id, &v, -1)
		nh := h
		headGone := false
		if v.Null || (h.HasNull && h.NullTS == ts) {
			nh.HasNull, nh.NullTS = false, hlc.Timestamp{}
		}
		if ts == h.Latest {
			// The next newest version, if any, becomes the latest.
			var next *versionRec
			var derr error
			pre := versionPrefix(id, key)
			err := s.md.Scan(ctx, p, successor(vk), prefixEnd(pre), func(k []byte, it meta.Item) bool {
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
