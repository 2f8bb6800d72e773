package objects

import (
	"context"
	"crypto/md5"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/redoubt-io/redoubt/internal/blocks"
	"github.com/redoubt-io/redoubt/internal/checksum"
	"github.com/redoubt-io/redoubt/internal/hlc"
	"github.com/redoubt-io/redoubt/internal/meta"
)

// An upload ID is the hlc timestamp of its creation (so a key's uploads
// list in the order they began) and 128 random bits (so it cannot be
// guessed), all in lower-case hex.
const uploadIDLen = hlc.StringLen + 32

func (s *Service) newUploadID() (string, error) {
	var r [16]byte
	if _, err := io.ReadFull(s.cfg.Rand, r[:]); err != nil {
		return "", fmt.Errorf("objects: upload id: %w", err)
	}
	return s.clock.Now().String() + hex.EncodeToString(r[:]), nil
}

func validUploadID(id string) bool {
	if len(id) != uploadIDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

func (s *Service) checkPartArgs(uploadID string, part int) error {
	if part < 1 || part > s.cfg.MaxParts {
		return fmt.Errorf("%w: part number %d not in 1..%d", ErrInvalidArgument, part, s.cfg.MaxParts)
	}
	if !validUploadID(uploadID) {
		return fmt.Errorf("%w: %q", ErrNoSuchUpload, uploadID)
	}
	return nil
}

func (s *Service) CreateMultipartUpload(ctx context.Context, bucket, key string, opts PutOptions) (string, error) {
	ob, err := s.openBucket(ctx, bucket)
	if err != nil {
		return "", err
	}
	if err := ValidKey(key); err != nil {
		return "", err
	}
	u := uploadRec{
		Initiated:   s.cfg.Now().UnixMilli(),
		ContentType: opts.ContentType,
		Headers:     cloneMap(opts.Headers),
		UserMeta:    cloneMap(opts.UserMeta),
	}
	if opts.ChecksumAlgorithm != "" {
		a, err := checksum.Parse(opts.ChecksumAlgorithm)
		if err != nil {
			return "", fmt.Errorf("%w: %v", ErrInvalidArgument, err)
		}
		u.ChecksumAlg = string(a)
		u.ChecksumType, err = uploadChecksumType(a, opts.Checksums.Type)
		if err != nil {
			return "", err
		}
	}
	uid, err := s.newUploadID()
	if err != nil {
		return "", err
	}
	p := s.partition(bucket, key)
	stale := true
	for attempt := 0; attempt < maxAttempts; attempt++ {
		_, frev, _, _, err := s.readView(ctx, p, ob, func(bucketID) []meta.Read { return nil }, meta.ReadOptions{Stale: stale})
		if err != nil {
			return "", err
		}
		k := uploadKey(ob.rec.ID, key, uid)
		_, err = s.md.Commit(ctx, p, meta.Txn{
			Conds: []meta.Cond{{Key: fenceKey(ob.rec.ID), Rev: frev}, {Key: k, Rev: 0}},
			Puts:  []meta.KV{{Key: k, Value: u.encode()}},
		})
		if isConflict(err) {
			stale = false
			continue
		}
		if err != nil {
			return "", metaErr("create upload", err)
		}
		return uid, nil
	}
	return "", fmt.Errorf("%w: create upload of %q", ErrConditionalConflict, key)
}

// uploadChecksumType returns the checksum type of an upload with
// algorithm a whose creation asked for typ. Without a type, S3 makes a
// CRC64NVME checksum FULL_OBJECT (it has no composite form) and every
// other one COMPOSITE; a FULL_OBJECT checksum exists only for the CRCs,
// whose values combine across parts.
func uploadChecksumType(a checksum.Algorithm, typ string) (string, error) {
	switch typ {
	case "":
		if a == checksum.CRC64NVME {
			return typeFullObject, nil
		}
		return typeComposite, nil
	case typeFullObject:
		if !checksum.Combinable(a) {
			return "", fmt.Errorf("%w: the full_object checksum type cannot be used with the %s checksum algorithm", ErrInvalidRequest, a)
		}
	case typeComposite:
		if a == checksum.CRC64NVME {
			return "", fmt.Errorf("%w: the composite checksum type cannot be used with the %s checksum algorithm", ErrInvalidRequest, a)
		}
	default:
		return "", fmt.Errorf("%w: checksum type %q", ErrInvalidRequest, typ)
	}
	return typ, nil
}

const (
	typeComposite  = "COMPOSITE"
	typeFullObject = "FULL_OBJECT"
)

// checkCompleteChecksums checks the syntax of the checksums a
// CompleteMultipartUpload request names: at most one per part, each the
// base64 of a sum of its algorithm's size, and at most one for the whole
// object, optionally followed by "-N" (the part count of a composite
// value).
func checkCompleteChecksums(parts []CompletePart, whole Checksums) error {
	for _, cp := range parts {
		n := 0
		for _, a := range checksum.All {
			v := *cp.Checksums.Field(a)
			if v == "" {
				continue
			}
			n++
			if raw, err := base64.StdEncoding.DecodeString(v); err != nil || len(raw) != a.Size() || n > 1 {
				return fmt.Errorf("%w: invalid Base64 or multiple checksums present in request", ErrInvalidArgument)
			}
		}
	}
	n := 0
	for _, a := range checksum.All {
		v := *whole.Field(a)
		if v == "" {
			continue
		}
		if n++; n > 1 {
			return fmt.Errorf("%w: expecting a single x-amz-checksum- header. Multiple checksum Types are not allowed.", ErrInvalidRequest)
		}
		b64, count, composite := strings.Cut(v, "-")
		if _, err := strconv.ParseUint(count, 10, 16); composite && err != nil {
			return fmt.Errorf("%w: value for %s header is invalid.", ErrInvalidRequest, a.Header())
		}
		if raw, err := base64.StdEncoding.DecodeString(b64); err != nil || len(raw) != a.Size() {
			return fmt.Errorf("%w: value for %s header is invalid.", ErrInvalidRequest, a.Header())
		}
	}
	return nil
}

// getUpload reads an upload of the bucket ob works on, linearizably. An
// upload that is missing because its bucket incarnation is gone answers
// for the bucket (NoSuchBucket), as S3 does.
func (s *Service) getUpload(ctx context.Context, p meta.Partition, ob *opBucket, key, uploadID string) (uploadRec, meta.Item, error) {
	_, _, items, _, err := s.readView(ctx, p, ob, func(id bucketID) []meta.Read { return []meta.Read{meta.Get(uploadKey(id, key, uploadID))} }, meta.ReadOptions{})
	if err != nil {
		return uploadRec{}, meta.Item{}, err
	}
	it := items[0]
	if it.Rev == 0 {
		return uploadRec{}, meta.Item{}, fmt.Errorf("%w: %q", ErrNoSuchUpload, uploadID)
	}
	u, err := decodeUpload(it.Value)
	if err != nil {
		return uploadRec{}, meta.Item{}, fmt.Errorf("upload %q: %w", uploadID, err)
	}
	return u, it, nil
}

// scanParts returns the stored parts of an upload after part number
// after, at most limit of them (limit < 0: all), with their revisions.
func (s *Service) scanParts(ctx context.Context, p meta.Partition, id bucketID, key, uploadID string, after, limit int) ([]partRec, error) {
	pre := partPrefix(id, key, uploadID)
	var out []partRec
	var derr error
	err := s.md.Scan(ctx, p, partKey(id, key, uploadID, after+1), prefixEnd(pre), func(k []byte, it meta.Item) bool {
		if limit >= 0 && len(out) == limit {
			return false
		}
		pr, err := decodePendingPart(it.Value)
		if err != nil {
			derr = err
			return false
		}
		out = append(out, pr)
		return true
	})
	if err != nil {
		return nil, metaErr("scan parts", err)
	}
	if derr != nil {
		return nil, fmt.Errorf("parts of %q: %w", uploadID, derr)
	}
	return out, nil
}

func (s *Service) UploadPart(ctx context.Context, bucket, key, uploadID string, part int, body io.Reader, size int64, opts PartOptions) (PartInfo, error) {
	ob, err := s.openBucket(ctx, bucket)
	if err != nil {
		return PartInfo{}, err
	}
	if err := ValidKey(key); err != nil {
		return PartInfo{}, err
	}
	if err := s.checkPartArgs(uploadID, part); err != nil {
		return PartInfo{}, err
	}
	return s.uploadPart(ctx, ob, key, uploadID, part, body, size, opts)
}

func (s *Service) uploadPart(ctx context.Context, ob *opBucket, key, uploadID string, part int, body io.Reader, size int64, opts PartOptions) (PartInfo, error) {
	p := s.partition(ob.name, key)
	u, _, err := s.getUpload(ctx, p, ob, key, uploadID)
	if err != nil {
		return PartInfo{}, err
	}
	alg := u.ChecksumAlg
	if opts.ChecksumAlgorithm != "" {
		a, err := checksum.Parse(opts.ChecksumAlgorithm)
		if err != nil {
			return PartInfo{}, fmt.Errorf("%w: %v", ErrInvalidArgument, err)
		}
		if alg != "" && string(a) != alg {
			return PartInfo{}, fmt.Errorf("%w: checksum type mismatch occurred, expected checksum type %s, actual checksum type: %s", ErrInvalidRequest, strings.ToLower(alg), strings.ToLower(string(a)))
		}
		alg = string(a)
	}
	iopts := ingestOpts{
		size:       size,
		max:        s.cfg.MaxPartSize,
		contentMD5: opts.ContentMD5,
		expected:   opts.Checksums,
		alg:        alg,
		trailer:    opts.Trailer,
		partition:  p,
	}
	if u.ChecksumAlg == "" {
		// An upload created without an algorithm gets a FULL_OBJECT
		// CRC64NVME at completion, as in S3, combined from its parts'.
		iopts.also = checksum.CRC64NVME
	}
	in, err := s.ingest(ctx, body, iopts)
	if err != nil {
		return PartInfo{}, err
	}
	pr := partRec{
		Number:   part,
		Size:     in.size,
		ETag:     in.etag(),
		Modified: s.cfg.Now().UnixMilli(),
		Ref:      in.ref,
	}
	if a := checksum.Algorithm(alg); a != "" {
		pr.ChecksumAlg = alg
		pr.Checksum = *in.checksums.Field(a)
	}
	if iopts.also != "" && pr.ChecksumAlg != string(iopts.also) {
		// Kept beside the part's own checksum, if the client chose one
		// (SDKs send CRC32 by default), and never answered for the part:
		// S3 answers a part only the checksum the client asked for.
		pr.DefaultCRC = *in.checksums.Field(iopts.also)
	}
	for attempt := 0; attempt < maxAttempts; attempt++ {
		if attempt > 0 {
			// A lost intent fails every round: stop at once.
			if err := s.checkIntent(ctx, p, in.ref, in.intent); err != nil {
				s.abandon(ctx, p, in.ref, in.intent)
				return PartInfo{}, err
			}
		}
		_, frev, items, _, err := s.readView(ctx, p, ob, func(id bucketID) []meta.Read {
			return []meta.Read{meta.Get(uploadKey(id, key, uploadID)), meta.Get(partKey(id, key, uploadID, part))}
		}, meta.ReadOptions{})
		if err != nil {
			s.abandon(ctx, p, in.ref, in.intent)
			return PartInfo{}, err
		}
		id := ob.rec.ID
		pk, uk := partKey(id, key, uploadID, part), uploadKey(id, key, uploadID)
		uit, it := items[0], items[1]
		if uit.Rev == 0 {
			s.abandon(ctx, p, in.ref, in.intent)
			return PartInfo{}, fmt.Errorf("%w: %q", ErrNoSuchUpload, uploadID)
		}
		var old partRec
		if it.Rev != 0 {
			if old, err = decodePendingPart(it.Value); err != nil {
				s.abandon(ctx, p, in.ref, in.intent)
				return PartInfo{}, fmt.Errorf("part %d of %q: %w", part, uploadID, err)
			}
		}
		// Rewriting the upload record moves its revision, so a Complete
		// or Abort that read the parts before this one fails its Cond.
		txn := meta.Txn{
			Conds: []meta.Cond{{Key: fenceKey(id), Rev: frev}, {Key: uk, Rev: uit.Rev}, {Key: pk, Rev: it.Rev}},
			Puts:  []meta.KV{{Key: uk, Value: uit.Value}, {Key: pk, Value: encodePendingPart(&pr)}},
		}
		claim(&txn, in.ref, in.intent)
		if it.Rev != 0 {
			unref(&txn, old.Ref)
		}
		_, err = s.md.Commit(ctx, p, txn)
		if isConflict(err) {
			continue
		}
		if err != nil {
			s.abandon(ctx, p, in.ref, in.intent)
			return PartInfo{}, metaErr("commit part", err)
		}
		s.endWrite(in.ref.ID)
		if it.Rev != 0 {
			s.deleteData(ctx, old.Ref)
		}
		return pr.info(), nil
	}
	s.abandon(ctx, p, in.ref, in.intent)
	return PartInfo{}, fmt.Errorf("%w: part %d of %q", ErrConditionalConflict, part, uploadID)
}

func (p *partRec) info() PartInfo {
	pi := PartInfo{Number: p.Number, ETag: quote(p.ETag), Size: p.Size, LastModified: msTime(p.Modified)}
	if a := checksum.Algorithm(p.ChecksumAlg); p.Checksum != "" && pi.Checksums.Field(a) != nil {
		*pi.Checksums.Field(a) = p.Checksum
	}
	return pi
}

func (s *Service) CompleteMultipartUpload(ctx context.Context, bucket, key, uploadID string, parts []CompletePart, opts CompleteOptions) (ObjectInfo, error) {
	ob, err := s.openBucket(ctx, bucket)
	if err != nil {
		return ObjectInfo{}, err
	}
	if err := ValidKey(key); err != nil {
		return ObjectInfo{}, err
	}
	if !validUploadID(uploadID) {
		return ObjectInfo{}, fmt.Errorf("%w: %q", ErrNoSuchUpload, uploadID)
	}
	if len(parts) == 0 {
		return ObjectInfo{}, fmt.Errorf("%w: no parts", ErrInvalidArgument)
	}
	if err := checkCompleteChecksums(parts, opts.Checksums); err != nil {
		return ObjectInfo{}, err
	}
	for i, cp := range parts {
		if cp.Number < 1 || cp.Number > s.cfg.MaxParts {
			return ObjectInfo{}, fmt.Errorf("%w: part number %d", ErrInvalidPart, cp.Number)
		}
		if i > 0 && cp.Number <= parts[i-1].Number {
			return ObjectInfo{}, fmt.Errorf("%w: part %d after %d", ErrInvalidPartOrder, cp.Number, parts[i-1].Number)
		}
	}
	p := s.partition(bucket, key)
	var unlisted []blocks.Ref
	build := func(ctx context.Context, id bucketID) (versionRec, meta.Txn, error) {
		u, uit, err := s.getUpload(ctx, p, ob, key, uploadID)
		if err != nil {
			return versionRec{}, meta.Txn{}, err
		}
		stored, err := s.scanParts(ctx, p, id, key, uploadID, 0, -1)
		if err != nil {
			return versionRec{}, meta.Txn{}, err
		}
		byNum := make(map[int]*partRec, len(stored))
		for i := range stored {
			byNum[stored[i].Number] = &stored[i]
		}
		alg := checksum.Algorithm(u.ChecksumAlg)
		if t := opts.Checksums.Type; t != "" && alg != "" && t != u.ChecksumType {
			return versionRec{}, meta.Txn{}, fmt.Errorf("%w: the upload was created using the %s checksum mode. The complete request must use the same checksum mode.", ErrInvalidRequest, u.ChecksumType)
		}
		rec := versionRec{
			Multipart:   true,
			ContentType: u.ContentType,
			Headers:     u.Headers,
			UserMeta:    u.UserMeta,
			Parts:       make([]partRec, 0, len(parts)),
		}
		md5s := make([]byte, 0, len(parts)*md5.Size)
		var sums []byte
		defaultSum := alg == ""
		listed := make(map[int]bool, len(parts))
		for i, cp := range parts {
			sp := byNum[cp.Number]
			if sp == nil {
				// The upload record and its parts are separate reads: a
				// racing completion may have removed both in between.
				// Then this is that upload's repeat, not a missing part.
				if _, _, err := s.getUpload(ctx, p, ob, key, uploadID); err != nil {
					return versionRec{}, meta.Txn{}, err
				}
				return versionRec{}, meta.Txn{}, fmt.Errorf("%w: part %d was not uploaded", ErrInvalidPart, cp.Number)
			}
			if !etagMatches(cp.ETag, sp.ETag) || cp.ETag == "*" || cp.ETag == "" {
				return versionRec{}, meta.Txn{}, fmt.Errorf("%w: part %d etag %s", ErrInvalidPart, cp.Number, cp.ETag)
			}
			if err := checkPartChecksum(cp, sp, alg, u.ChecksumType); err != nil {
				return versionRec{}, meta.Txn{}, err
			}
			if i < len(parts)-1 && sp.Size < s.cfg.MinPartSize {
				return versionRec{}, meta.Txn{}, fmt.Errorf("%w: part %d is %d bytes", ErrEntityTooSmall, cp.Number, sp.Size)
			}
			raw, err := hex.DecodeString(sp.ETag)
			if err != nil {
				return versionRec{}, meta.Txn{}, fmt.Errorf("part %d etag: %w", cp.Number, errCorrupt)
			}
			md5s = append(md5s, raw...)
			partSum := sp.Checksum
			if u.ChecksumAlg == "" {
				switch {
				case sp.ChecksumAlg == string(checksum.CRC64NVME):
				case sp.DefaultCRC != "":
					partSum = sp.DefaultCRC
				default:
					// A part stored before parts got the default CRC:
					// the object gets no checksum.
					defaultSum = false
				}
			}
			if u.ChecksumAlg != "" || defaultSum {
				raw, err := base64.StdEncoding.DecodeString(partSum)
				if err != nil {
					return versionRec{}, meta.Txn{}, fmt.Errorf("part %d checksum: %w", cp.Number, errCorrupt)
				}
				sums = append(sums, raw...)
			}
			rec.Size += sp.Size
			rec.Parts = append(rec.Parts, *sp)
			rec.Parts[len(rec.Parts)-1].DefaultCRC = ""
			listed[cp.Number] = true
		}
		if rec.Size > s.cfg.MaxObjectSize {
			return versionRec{}, meta.Txn{}, fmt.Errorf("%w: %d bytes", ErrEntityTooLarge, rec.Size)
		}
		sum := md5.Sum(md5s)
		suffix := "-" + strconv.Itoa(len(parts))
		rec.ETag = hex.EncodeToString(sum[:]) + suffix
		if alg != "" {
			if err := wholeChecksum(&rec, alg, u.ChecksumType, sums, opts.Checksums); err != nil {
				return versionRec{}, meta.Txn{}, err
			}
		} else if defaultSum {
			// The checksum is Redoubt's own, not one the client chose: a
			// whole-object value sent with the completion is ignored, as
			// S3 ignores it for such an upload.
			if err := wholeChecksum(&rec, checksum.CRC64NVME, typeFullObject, sums, Checksums{}); err != nil {
				return versionRec{}, meta.Txn{}, err
			}
		}
		txn := meta.Txn{
			Conds:   []meta.Cond{{Key: uploadKey(id, key, uploadID), Rev: uit.Rev}},
			Deletes: [][]byte{uploadKey(id, key, uploadID)},
		}
		unlisted = unlisted[:0]
		for i := range stored {
			txn.Deletes = append(txn.Deletes, partKey(id, key, uploadID, stored[i].Number))
			if !listed[stored[i].Number] {
				unlisted = append(unlisted, stored[i].Ref)
			}
		}
		unref(&txn, unlisted...)
		return rec, txn, nil
	}
	c, err := s.commitVersion(ctx, ob, key, opts.IfMatch, opts.IfNoneMatch, build)
	if errors.Is(err, ErrNoSuchUpload) {
		if oi, ok := s.completedBefore(ctx, ob, key, parts); ok {
			return oi, nil
		}
	}
	if err != nil {
		return ObjectInfo{}, err
	}
	s.deleteData(ctx, unlisted...)
	s.deleteData(ctx, c.replaced...)
	return c.info(ob, key), nil
}

// completedBefore answers a completion whose upload is gone: when the
// key's current version is a multipart object made of exactly the parts
// listed (numbers and ETags), this is a repeat of the completion that made
// it (a client retrying after a lost answer, or racing itself), and S3
// answers it with that object again. Uploads keep no record once
// completed, so the parts stand for the upload ID; two uploads with the
// same parts made the same object anyway.
func (s *Service) completedBefore(ctx context.Context, ob *opBucket, key string, parts []CompletePart) (ObjectInfo, bool) {
	v, oi, err := s.readVersion(ctx, ob, key, "")
	if err != nil || !v.Multipart || len(v.Parts) != len(parts) {
		return ObjectInfo{}, false
	}
	for i, cp := range parts {
		if v.Parts[i].Number != cp.Number || cp.ETag == "" || cp.ETag == "*" || !etagMatches(cp.ETag, v.Parts[i].ETag) {
			return ObjectInfo{}, false
		}
	}
	oi.IsLatest = true
	return oi, true
}

// checkPartChecksum checks the checksum a CompleteMultipartUpload request
// gives for a part against the stored part, as S3 does: a value of another
// algorithm than the upload's is a wrong digest, a composite upload needs
// every part's value, and a value must be the stored one.
func checkPartChecksum(cp CompletePart, sp *partRec, alg checksum.Algorithm, typ string) error {
	if alg != "" {
		for _, a := range checksum.All {
			if a != alg && *cp.Checksums.Field(a) != "" {
				return fmt.Errorf("%w: the %s you specified for part %d did not match what we received", ErrChecksumMismatch, strings.ToLower(string(a)), cp.Number)
			}
		}
		if *cp.Checksums.Field(alg) == "" && typ == typeComposite {
			return fmt.Errorf("%w: the upload was created using a %s checksum. The complete request must include the checksum for each part. It was missing for part %d in the request.",
				ErrInvalidRequest, strings.ToLower(string(alg)), cp.Number)
		}
	}
	if a := checksum.Algorithm(sp.ChecksumAlg); a != "" {
		if want := *cp.Checksums.Field(a); want != "" && want != sp.Checksum {
			return fmt.Errorf("%w: part %d %s checksum", ErrInvalidPart, cp.Number, a)
		}
	}
	return nil
}

// wholeChecksum sets rec's checksum of algorithm alg from the parts' raw
// sums, concatenated in order: a hash of them with a "-N" suffix for a
// composite checksum, their CRCs combined for a full-object one. A value
// the client sent (sent) must match it.
func wholeChecksum(rec *versionRec, alg checksum.Algorithm, typ string, sums []byte, sent Checksums) error {
	n := len(rec.Parts)
	var value string
	if typ == typeFullObject {
		size := alg.Size()
		acc := sums[:size]
		for i := 1; i < n; i++ {
			var ok bool
			acc, ok = checksum.Combine(alg, acc, sums[i*size:(i+1)*size], rec.Parts[i].Size)
			if !ok {
				return fmt.Errorf("objects: combine %s of part %d: %w", alg, rec.Parts[i].Number, errCorrupt)
			}
		}
		value = checksum.Encode(acc)
	} else {
		h := checksum.New(alg)
		h.Write(sums)
		value = checksum.Encode(h.Sum(nil)) + "-" + strconv.Itoa(n)
	}
	for _, a := range checksum.All {
		v := *sent.Field(a)
		if v == "" {
			continue
		}
		if a != alg {
			return fmt.Errorf("%w: the upload was created using the %s checksum algorithm; the complete request sent %s", ErrInvalidRequest, strings.ToLower(string(alg)), a.Header())
		}
		got, want := v, value
		if typ == typeComposite && !strings.Contains(v, "-") {
			// The part count may be left out.
			want, _, _ = strings.Cut(value, "-")
		}
		if got != want {
			return fmt.Errorf("%w: the %s you specified did not match the calculated checksum", ErrChecksumMismatch, alg)
		}
	}
	*rec.Checksums.Field(alg) = value
	rec.Checksums.Type = typ
	return nil
}

func (s *Service) AbortMultipartUpload(ctx context.Context, bucket, key, uploadID string) error {
	ob, err := s.openBucket(ctx, bucket)
	if err != nil {
		return err
	}
	if err := ValidKey(key); err != nil {
		return err
	}
	if !validUploadID(uploadID) {
		return fmt.Errorf("%w: %q", ErrNoSuchUpload, uploadID)
	}
	return s.abortUpload(ctx, ob, s.partition(bucket, key), key, uploadID)
}

// abortUpload deletes an upload's records, conditional on the bucket's
// fence, then its parts' data.
func (s *Service) abortUpload(ctx context.Context, ob *opBucket, p meta.Partition, key, uploadID string) error {
	for attempt := 0; attempt < maxAttempts; attempt++ {
		_, frev, _, _, err := s.readView(ctx, p, ob, func(bucketID) []meta.Read { return nil }, meta.ReadOptions{})
		if err != nil {
			return err
		}
		err = s.abortUploadUnder(ctx, ob.rec.ID, p, key, uploadID, meta.Cond{Key: fenceKey(ob.rec.ID), Rev: frev})
		if isConflict(err) {
			continue
		}
		return err
	}
	return fmt.Errorf("%w: abort %q", ErrConditionalConflict, uploadID)
}

// abortUploadUnder deletes an upload of bucket id, conditional on fence,
// then its parts' data. It returns meta.ErrConflict (wrapped) when the
// fence moved, and retries when only the upload did.
func (s *Service) abortUploadUnder(ctx context.Context, id bucketID, p meta.Partition, key, uploadID string, fence meta.Cond) error {
	uk := uploadKey(id, key, uploadID)
	for attempt := 0; attempt < maxAttempts; attempt++ {
		items, _, err := meta.GetMany(ctx, s.md, p, []meta.Read{meta.Get(fence.Key), meta.Get(uk)}, meta.ReadOptions{})
		if err != nil {
			return metaErr("read upload", err)
		}
		if items[0].Rev != fence.Rev {
			return fmt.Errorf("objects: abort %q: %w", uploadID, meta.ErrConflict)
		}
		if items[1].Rev == 0 {
			return fmt.Errorf("%w: %q", ErrNoSuchUpload, uploadID)
		}
		stored, err := s.scanParts(ctx, p, id, key, uploadID, 0, -1)
		if err != nil {
			return err
		}
		txn := meta.Txn{Conds: []meta.Cond{fence, {Key: uk, Rev: items[1].Rev}}, Deletes: [][]byte{uk}}
		var refs []blocks.Ref
		for i := range stored {
			txn.Deletes = append(txn.Deletes, partKey(id, key, uploadID, stored[i].Number))
			refs = append(refs, stored[i].Ref)
		}
		unref(&txn, refs...)
		_, err = s.md.Commit(ctx, p, txn)
		if isConflict(err) {
			continue
		}
		if err != nil {
			return metaErr("abort upload", err)
		}
		s.deleteData(ctx, refs...)
		return nil
	}
	return fmt.Errorf("%w: abort %q", ErrConditionalConflict, uploadID)
}

func (s *Service) ListParts(ctx context.Context, bucket, key, uploadID string, opts ListPartsOptions) (ListPartsResult, error) {
	ob, err := s.openBucket(ctx, bucket)
	if err != nil {
		return ListPartsResult{}, err
	}
	if err := ValidKey(key); err != nil {
		return ListPartsResult{}, err
	}
	if !validUploadID(uploadID) {
		return ListPartsResult{}, fmt.Errorf("%w: %q", ErrNoSuchUpload, uploadID)
	}
	limit := opts.MaxParts
	if limit <= 0 || limit > 1000 {
		limit = 1000
	}
	after := max(0, min(opts.PartNumberMarker, maxPartNumber))
	p := s.partition(bucket, key)
	u, _, err := s.getUpload(ctx, p, ob, key, uploadID)
	if err != nil {
		return ListPartsResult{}, err
	}
	stored, err := s.scanParts(ctx, p, ob.rec.ID, key, uploadID, after, limit+1)
	if err != nil {
		return ListPartsResult{}, err
	}
	res := ListPartsResult{ChecksumAlgorithm: u.ChecksumAlg, Initiated: msTime(u.Initiated)}
	if len(stored) > limit {
		stored = stored[:limit]
		res.IsTruncated = true
	}
	for i := range stored {
		res.Parts = append(res.Parts, stored[i].info())
	}
	if res.IsTruncated {
		res.NextPartNumberMarker = stored[len(stored)-1].Number
	}
	return res, nil
}
