package objects

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/redoubt-io/redoubt/internal/blocks"
	"github.com/redoubt-io/redoubt/internal/hlc"
	"github.com/redoubt-io/redoubt/internal/meta"
)

// etagMatches reports whether etag (unquoted) is named by an If-Match or
// If-None-Match value: "*" or a comma-separated list of entity tags,
// quoted or not, weak or strong (S3 compares them all as strong).
func etagMatches(list, etag string) bool {
	for _, t := range strings.Split(list, ",") {
		t = strings.TrimSpace(t)
		if t == "*" {
			return true
		}
		t = strings.TrimPrefix(t, "W/")
		t = strings.Trim(t, `"`)
		if t == etag {
			return true
		}
	}
	return false
}

// checkConds evaluates the read preconditions against one version, in the
// order of RFC 7232 section 6 with the S3 rules: If-Match, when present,
// decides alone against If-Unmodified-Since; If-None-Match, when present,
// decides alone against If-Modified-Since. A copy source answers 412 where
// a GET answers 304.
func checkConds(c Preconditions, etag string, modified time.Time, copySource bool) error {
	mod := modified.Truncate(time.Second)
	if c.IfMatch != "" {
		if !etagMatches(c.IfMatch, etag) {
			return fmt.Errorf("%w: if-match", ErrPreconditionFailed)
		}
	} else if !c.IfUnmodifiedSince.IsZero() && mod.After(c.IfUnmodifiedSince) {
		return fmt.Errorf("%w: if-unmodified-since", ErrPreconditionFailed)
	}
	notModified := ErrNotModified
	if copySource {
		notModified = ErrPreconditionFailed
	}
	if c.IfNoneMatch != "" {
		if etagMatches(c.IfNoneMatch, etag) {
			return fmt.Errorf("%w: if-none-match", notModified)
		}
	} else if !c.IfModifiedSince.IsZero() && !mod.After(c.IfModifiedSince) {
		return fmt.Errorf("%w: if-modified-since", notModified)
	}
	return nil
}

// resolveRange returns the bytes of v to serve. A range whose end is
// before its start is not a valid range and is ignored, as HTTP says.
func resolveRange(v *versionRec, r Range, partNumber int) (start, length int64, err error) {
	size := v.Size
	if partNumber != 0 {
		if r.Set {
			return 0, 0, fmt.Errorf("%w: range and part number together", ErrInvalidArgument)
		}
		if partNumber < 0 {
			return 0, 0, fmt.Errorf("%w: part number %d", ErrInvalidArgument, partNumber)
		}
		if !v.Multipart {
			if partNumber != 1 {
				return 0, 0, fmt.Errorf("%w: part %d of a single-part object", ErrInvalidRange, partNumber)
			}
			return 0, size, nil
		}
		if partNumber > len(v.Parts) {
			return 0, 0, fmt.Errorf("%w: part %d of %d", ErrInvalidRange, partNumber, len(v.Parts))
		}
		for _, p := range v.Parts[:partNumber-1] {
			start += p.Size
		}
		return start, v.Parts[partNumber-1].Size, nil
	}
	if !r.Set {
		return 0, size, nil
	}
	if r.Suffix > 0 {
		// A suffix of an empty object is the (empty) object itself, which
		// S3 serves whole with 200; only a range with a first byte is
		// unsatisfiable there.
		n := min(r.Suffix, size)
		return size - n, n, nil
	}
	if r.End >= 0 && r.End < r.Start {
		return 0, size, nil
	}
	if r.Start < 0 || r.Start >= size {
		return 0, 0, fmt.Errorf("%w: start %d of %d bytes", ErrInvalidRange, r.Start, size)
	}
	end := r.End
	if end < 0 || end >= size {
		end = size - 1
	}
	return r.Start, end - r.Start + 1, nil
}

// readVersion finds the version a read names: the latest when vid is ""
// (readLatest), else the one named (readInView). For a delete marker it returns the
// marker's info with the error S3 gives (ErrNoSuchKey, or
// ErrMethodNotAllowed when named by version ID), so the front end can set
// x-amz-delete-marker.
func (s *Service) readVersion(ctx context.Context, ob *opBucket, key, vid string) (versionRec, ObjectInfo, error) {
	if ob.available() {
		return s.readAvailable(ctx, ob, key, vid)
	}
	p := s.partition(ob.name, key)
	if vid == "" {
		return s.readLatest(ctx, p, ob, key)
	}
	return s.readInView(ctx, p, ob, key, vid)
}

// readInView is readVersion reading the fence and the head (and a version
// named by ID) in one linearizable view; a version found through the head
// is read from a view at least as new (meta.ReadOptions.After), which any
// replica that caught up may serve. vid "" is the latest version.
func (s *Service) readInView(ctx context.Context, p meta.Partition, ob *opBucket, key, vid string) (versionRec, ObjectInfo, error) {
	var named hlc.Timestamp
	null := false
	if vid != "" {
		t, n, err := parseVersionID(vid)
		if err != nil {
			return versionRec{}, ObjectInfo{}, err
		}
		named, null = t, n
	}
	keysOf := func(id bucketID) []meta.Read {
		if vid == "" || null {
			return []meta.Read{meta.Get(headKey(id, key))}
		}
		return []meta.Read{meta.Get(headKey(id, key)), meta.Get(versionKey(id, key, named))}
	}
	for attempt := 0; attempt < maxAttempts; attempt++ {
		f, _, items, at, err := s.readView(ctx, p, ob, keysOf, meta.ReadOptions{})
		if err != nil {
			return versionRec{}, ObjectInfo{}, err
		}
		id := ob.rec.ID
		h, rev, err := decodeHeadItem(items[0], key)
		if err != nil {
			return versionRec{}, ObjectInfo{}, err
		}
		var v versionRec
		var ok bool
		ts := h.Latest
		switch {
		case vid != "" && !null:
			ts = named
			if ok = items[1].Rev != 0; ok {
				if v, err = decodeVersion(ts, items[1].Value); err != nil {
					return versionRec{}, ObjectInfo{}, fmt.Errorf("version of %q: %w", key, err)
				}
				// A null version's ID is "null", never its timestamp,
				// which may be another key's version ID
				// (TestNullVersionIsNotNamedByItsTimestamp).
				ok = !v.Null
			}
		case vid == "" && rev == 0:
			return versionRec{}, ObjectInfo{}, fmt.Errorf("%w: %q", ErrNoSuchKey, key)
		case null && !h.HasNull:
			return versionRec{}, ObjectInfo{}, fmt.Errorf("%w: %q version null", ErrNoSuchVersion, key)
		default:
			if null {
				ts = h.NullTS
			}
			if v, _, ok, err = s.getVersion(ctx, p, id, key, ts, at); err != nil {
				return versionRec{}, ObjectInfo{}, err
			}
			if !ok {
				continue // deleted since the view: look again
			}
		}
		if !ok {
			return versionRec{}, ObjectInfo{}, fmt.Errorf("%w: %q version %s", ErrNoSuchVersion, key, vid)
		}
		oi := v.info(ob.name, key, f.Versioning)
		oi.IsLatest = rev != 0 && ts == h.Latest
		if v.DeleteMarker {
			if vid == "" {
				return versionRec{}, oi, fmt.Errorf("%w: %q (delete marker)", ErrNoSuchKey, key)
			}
			return versionRec{}, oi, fmt.Errorf("%w: %q version %s", ErrMethodNotAllowed, key, vid)
		}
		return v, oi, nil
	}
	return versionRec{}, ObjectInfo{}, fmt.Errorf("%w: %q", ErrConditionalConflict, key)
}

// readLatest reads key's latest version as the old single read did, the
// head then the version it names (from any replica that applied what the
// head's linearizable read saw), and the bucket's fence only where the
// answer depends on it: a version found under the incarnation proves the
// bucket alive (a bucket is deleted only empty), and a version committed
// while the bucket was versioned shows its ID the same way for good (a
// bucket never goes back to unversioned), which is all a GET shows of the
// bucket's state. The fence is read when the key is absent (the
// incarnation may be gone: NoSuchBucket, or a new one to look in) and for
// a null version committed while the bucket was unversioned, whose ID
// shows as "" only while it still is (read with the version when the
// head names a null version); a fence read after the head that
// says unversioned proves the bucket was unversioned when the head was
// read. Otherwise the read starts again with the fence and the head in one
// view (readVersion's way).
func (s *Service) readLatest(ctx context.Context, p meta.Partition, ob *opBucket, key string) (versionRec, ObjectInfo, error) {
	for attempt := 0; attempt < maxAttempts; attempt++ {
		id := ob.rec.ID
		items, at, err := meta.GetMany(ctx, s.md, p, []meta.Read{meta.Get(headKey(id, key))}, meta.ReadOptions{})
		if err != nil {
			return versionRec{}, ObjectInfo{}, metaErr("read head", err)
		}
		h, rev, err := decodeHeadItem(items[0], key)
		if err != nil {
			return versionRec{}, ObjectInfo{}, err
		}
		var v versionRec
		var f fenceRec
		haveFence := false
		switch {
		case rev != 0 && h.Null:
			// A null version may need the fence (below): one read for
			// both, which in a cluster is one wait for the replica.
			vk := func(id bucketID) []meta.Read { return []meta.Read{meta.Get(versionKey(id, key, h.Latest))} }
			var vitems []meta.Item
			if f, _, vitems, _, err = s.readView(ctx, p, ob, vk, meta.ReadOptions{After: at}); err != nil {
				return versionRec{}, ObjectInfo{}, err
			}
			if ob.rec.ID != id {
				continue // the name stands for a new incarnation now
			}
			haveFence = true
			var ok bool
			if v, ok, err = decodeVersionItem(vitems[0], h.Latest, key); err != nil {
				return versionRec{}, ObjectInfo{}, err
			}
			if !ok {
				continue // replaced since the head was read: look again
			}
		case rev != 0:
			var ok bool
			if v, _, ok, err = s.getVersion(ctx, p, id, key, h.Latest, at); err != nil {
				return versionRec{}, ObjectInfo{}, err
			}
			if !ok {
				continue // replaced since the head was read: look again
			}
		}
		st := Suspended // any state but Unversioned: a null version shows as "null"
		if rev == 0 || v.Null && !v.Versioned {
			if !haveFence {
				if f, _, _, _, err = s.readView(ctx, p, ob, noReads, meta.ReadOptions{After: at}); err != nil {
					return versionRec{}, ObjectInfo{}, err
				}
				if ob.rec.ID != id {
					continue // the name stands for a new incarnation now
				}
			}
			if rev != 0 && f.Versioning != Unversioned {
				return s.readInView(ctx, p, ob, key, "")
			}
			st = f.Versioning
		}
		if rev == 0 {
			return versionRec{}, ObjectInfo{}, fmt.Errorf("%w: %q", ErrNoSuchKey, key)
		}
		oi := v.info(ob.name, key, st)
		oi.IsLatest = true
		if v.DeleteMarker {
			return versionRec{}, oi, fmt.Errorf("%w: %q (delete marker)", ErrNoSuchKey, key)
		}
		return v, oi, nil
	}
	return versionRec{}, ObjectInfo{}, fmt.Errorf("%w: %q", ErrConditionalConflict, key)
}

// noReads is readView's keys when only the fence is wanted.
func noReads(bucketID) []meta.Read { return nil }

func (s *Service) GetObject(ctx context.Context, bucket, key string, opts GetOptions) (ObjectInfo, io.ReadCloser, error) {
	ob, err := s.openBucket(ctx, bucket)
	if err != nil {
		return ObjectInfo{}, nil, err
	}
	if err := ValidKey(key); err != nil {
		return ObjectInfo{}, nil, err
	}
	return s.getObject(ctx, ob, key, opts, false)
}

func (s *Service) getObject(ctx context.Context, ob *opBucket, key string, opts GetOptions, copySource bool) (ObjectInfo, io.ReadCloser, error) {
	v, oi, err := s.readVersion(ctx, ob, key, opts.VersionID)
	if err != nil {
		return oi, nil, err
	}
	if err := checkConds(opts.Cond, v.ETag, oi.LastModified, copySource); err != nil {
		return oi, nil, err
	}
	start, length, err := resolveRange(&v, opts.Range, opts.PartNumber)
	if err != nil {
		return oi, nil, err
	}
	oi.RangeStart, oi.RangeLength = start, length
	if opts.HeadOnly {
		return oi, nil, nil
	}
	if ob.available() {
		if err := s.localParts(ctx, ob, key, &v); err != nil {
			return ObjectInfo{}, nil, err
		}
	}
	rc, err := s.openRange(ctx, &v, start, length)
	if err != nil {
		return ObjectInfo{}, nil, err
	}
	return oi, rc, nil
}

// openRange returns a reader of length bytes at start of v's data,
// opening the parts it spans one after another.
func (s *Service) openRange(ctx context.Context, v *versionRec, start, length int64) (io.ReadCloser, error) {
	if len(v.Parts) == 0 {
		return io.NopCloser(bytes.NewReader(v.Inline[start : start+length])), nil
	}
	r := &partsReader{ctx: ctx, data: s.data}
	off := int64(0)
	end := start + length
	for _, p := range v.Parts {
		ps, pe := off, off+p.Size
		off = pe
		if pe <= start || ps >= end || p.Size == 0 {
			continue
		}
		a, z := max(ps, start), min(pe, end)
		r.segs = append(r.segs, segment{ref: p.Ref, off: a - ps, n: z - a})
	}
	if len(r.segs) > 0 {
		// Open the first part now so an unreadable object fails the GET
		// before any header is sent.
		if err := r.next(); err != nil {
			return nil, err
		}
	}
	return r, nil
}

type segment struct {
	ref    blocks.Ref
	off, n int64
}

type partsReader struct {
	ctx  context.Context
	data blocks.Store
	segs []segment
	cur  io.ReadCloser
	left int64 // bytes left in cur
}

func (r *partsReader) next() error {
	sg := r.segs[0]
	r.segs = r.segs[1:]
	rc, err := r.data.Open(r.ctx, sg.ref, sg.off, sg.n)
	if errors.Is(err, blocks.ErrUnreadable) {
		// Too few shards reachable: drives or nodes are down (or the data
		// is lost); either way the client should retry later, not give up.
		return fmt.Errorf("objects: open data: %w: %w", meta.ErrUnavailable, err)
	}
	if err != nil {
		return fmt.Errorf("objects: open data: %w", err)
	}
	r.cur, r.left = rc, sg.n
	return nil
}

func (r *partsReader) Read(p []byte) (int, error) {
	for {
		if r.cur == nil {
			if len(r.segs) == 0 {
				return 0, io.EOF
			}
			if err := r.next(); err != nil {
				return 0, err
			}
		}
		if r.left == 0 {
			r.cur.Close()
			r.cur = nil
			continue
		}
		if int64(len(p)) > r.left {
			p = p[:r.left]
		}
		n, err := r.cur.Read(p)
		r.left -= int64(n)
		if err == io.EOF {
			if r.left > 0 {
				return n, fmt.Errorf("objects: data ended %d bytes early: %w", r.left, io.ErrUnexpectedEOF)
			}
			err = nil
		}
		if n > 0 || err != nil {
			return n, err
		}
	}
}

// WriteTo hands each part's reader the destination, so a part that can
// write its chunks out whole (blocks does) skips the copy through the
// caller's buffer that Read would make. No part may write past its length.
func (r *partsReader) WriteTo(w io.Writer) (int64, error) {
	var total int64
	for {
		if r.cur == nil {
			if len(r.segs) == 0 {
				return total, nil
			}
			if err := r.next(); err != nil {
				return total, err
			}
		}
		if r.left > 0 {
			cw := &cappedWriter{w: w, left: r.left}
			var n int64
			var err error
			if wt, ok := r.cur.(io.WriterTo); ok {
				n, err = wt.WriteTo(cw)
			} else {
				n, err = io.Copy(cw, io.LimitReader(r.cur, r.left))
			}
			total += n
			r.left -= n
			if err != nil {
				return total, err
			}
			if r.left > 0 {
				return total, fmt.Errorf("objects: data ended %d bytes early: %w", r.left, io.ErrUnexpectedEOF)
			}
		}
		r.cur.Close()
		r.cur = nil
	}
}

// errPartOverrun is returned when a part's data runs past its length.
var errPartOverrun = errors.New("objects: data longer than its part")

// cappedWriter passes at most left bytes on to w.
type cappedWriter struct {
	w    io.Writer
	left int64
}

func (c *cappedWriter) Write(p []byte) (int, error) {
	if int64(len(p)) > c.left {
		n, err := c.w.Write(p[:c.left])
		c.left -= int64(n)
		if err == nil {
			err = errPartOverrun
		}
		return n, err
	}
	n, err := c.w.Write(p)
	c.left -= int64(n)
	return n, err
}

func (r *partsReader) Close() error {
	if r.cur != nil {
		err := r.cur.Close()
		r.cur = nil
		return err
	}
	return nil
}
