package objects

import (
	"context"
	"errors"
	"fmt"
	"strings"
)

func (s *Service) CopyObject(ctx context.Context, src CopySource, dstBucket, dstKey string, opts PutOptions) (ObjectInfo, error) {
	sb, err := s.openBucket(ctx, src.Bucket)
	if err != nil {
		return ObjectInfo{}, err
	}
	if err := ValidKey(src.Key); err != nil {
		return ObjectInfo{}, err
	}
	db := sb
	if dstBucket != src.Bucket {
		if db, err = s.openBucket(ctx, dstBucket); err != nil {
			return ObjectInfo{}, err
		}
	} else {
		// Each operation moves its own bucket to a new incarnation.
		c := *sb
		db = &c
	}
	if err := ValidKey(dstKey); err != nil {
		return ObjectInfo{}, err
	}
	if src.Range.Set {
		return ObjectInfo{}, fmt.Errorf("%w: a range is for UploadPartCopy only", ErrInvalidArgument)
	}
	oi, rc, err := s.getObject(ctx, sb, src.Key, GetOptions{VersionID: src.VersionID, Cond: src.Cond}, true)
	if err != nil {
		return ObjectInfo{}, err
	}
	defer rc.Close()
	if src.Bucket == dstBucket && src.Key == dstKey && !src.ReplaceMetadata && oi.IsLatest {
		return ObjectInfo{}, fmt.Errorf("%w: copying an object onto itself needs a change, such as the REPLACE metadata directive", ErrInvalidArgument)
	}
	put := PutOptions{
		ChecksumAlgorithm: opts.ChecksumAlgorithm,
		IfMatch:           opts.IfMatch,
		IfNoneMatch:       opts.IfNoneMatch,
	}
	if src.ReplaceMetadata {
		put.ContentType, put.Headers, put.UserMeta = opts.ContentType, opts.Headers, opts.UserMeta
	} else {
		put.ContentType, put.Headers, put.UserMeta = oi.ContentType, oi.Headers, oi.UserMeta
	}
	if put.ChecksumAlgorithm == "" {
		// Keep the source's kind of checksum, as a full-object one.
		put.ChecksumAlgorithm = string(checksumAlg(oi.Checksums))
	}
	if a := checksumAlg(oi.Checksums); a != "" && oi.Checksums.Type == "FULL_OBJECT" && strings.EqualFold(put.ChecksumAlgorithm, string(a)) {
		// The source's value is what the copy must hash to.
		*put.Checksums.Field(a) = *oi.Checksums.Field(a)
	}
	return s.put(ctx, db, dstKey, rc, oi.Size, put)
}

func (s *Service) UploadPartCopy(ctx context.Context, src CopySource, bucket, key, uploadID string, part int) (PartInfo, error) {
	// The upload's bucket is checked first, as S3 does.
	db, err := s.openBucket(ctx, bucket)
	if err != nil {
		return PartInfo{}, err
	}
	if err := ValidKey(key); err != nil {
		return PartInfo{}, err
	}
	sb := db
	if bucket != src.Bucket {
		if sb, err = s.openBucket(ctx, src.Bucket); err != nil {
			return PartInfo{}, err
		}
	} else {
		c := *db
		sb = &c
	}
	if err := ValidKey(src.Key); err != nil {
		return PartInfo{}, err
	}
	if err := s.checkPartArgs(uploadID, part); err != nil {
		return PartInfo{}, err
	}
	oi, rc, err := s.getObject(ctx, sb, src.Key, GetOptions{VersionID: src.VersionID, Cond: src.Cond, Range: src.Range}, true)
	// Unlike a GET, which serves what it can of a range, a copy range must
	// lie wholly inside the source.
	if r := src.Range; r.Set && (err == nil || errors.Is(err, ErrInvalidRange)) && oi.Size >= 0 &&
		(r.Suffix > 0 || r.Start < 0 || r.End < r.Start || r.End >= oi.Size) {
		if rc != nil {
			rc.Close()
		}
		return PartInfo{}, fmt.Errorf("%w: Range specified is not valid for source object of size: %d", ErrInvalidArgument, oi.Size)
	}
	if err != nil {
		return PartInfo{}, err
	}
	defer rc.Close()
	return s.uploadPart(ctx, db, key, uploadID, part, rc, oi.RangeLength, PartOptions{})
}
