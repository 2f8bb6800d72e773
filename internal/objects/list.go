package objects

import (
	"bytes"
	"container/heap"
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/redoubt-io/redoubt/internal/meta"
)

// A listing merges one ordered stream per partition. The merge keeps a
// horizon: every stream holds, in memory, all of its keys below it, so the
// smallest buffered key is the next key overall. To move the horizon, one
// sample partition (a different one each time) is read for the next few
// keys, and the horizon is set just past them; since keys hash uniformly
// over partitions, every other partition then holds about as many keys
// below it, and each is read with that bound. A page of n entries over P
// partitions thus reads O(n + P) records, and every scan is bounded at
// both ends, which keeps it cheap on stores whose Scan cost follows the
// width of the range. A common prefix is skipped by moving the horizon
// past it, never by reading the keys under it; each skip then costs one
// short, bounded read per partition, so a page of c common prefixes costs
// O(c × P) reads however many keys lie under them.

const maxListKeys = 1000

// A stream gives a listing its records in key order: a merger over the
// partitions, or an orderedStream where the store keeps the records in
// one order.
type stream interface {
	peek() (entry, bool, error)
	pop()
	took()
	skipTo(k []byte)
}

// newStream streams the tag records in [lo, hi), ordered where the store
// can, else merged over the partitions.
func newStream(ctx context.Context, r *router, tag byte, lo, hi []byte, page int, probe bool) stream {
	if os := r.ordered([]byte{tag}); os != nil {
		return &orderedStream{ctx: ctx, s: os, from: lo, hi: hi, want: page + 1, probe: probe}
	}
	return newMerger(ctx, r, lo, hi, page, probe)
}

// An orderedStream reads a range of a store that keeps it in one order
// (meta.OrderedScanner): a page is one read of one range, however many
// partitions hold its keys. Past a skipped common prefix it reads a few
// records first, as the merger does.
type orderedStream struct {
	ctx      context.Context
	s        meta.OrderedScanner
	from, hi []byte // the next read starts at from; hi: end, nil for none
	buf      []entry
	want     int  // entries the caller may still take
	probe    bool // the next read follows a skip: read a few
	done     bool // nothing is left to read past buf
}

func (o *orderedStream) peek() (entry, bool, error) {
	for len(o.buf) == 0 {
		if o.done {
			return entry{}, false, nil
		}
		if err := o.fill(); err != nil {
			return entry{}, false, err
		}
	}
	return o.buf[0], true, nil
}

func (o *orderedStream) fill() error {
	n := o.want
	if o.probe {
		n, o.probe = min(n, 2), false
	}
	var c collector
	err := o.s.ScanOrdered(o.ctx, o.from, o.hi, func(k []byte, it meta.Item) bool {
		c.add(k, it.Value)
		return len(c.lens)/2 < n
	})
	if err != nil {
		return metaErr("list", err)
	}
	o.buf = c.entries()
	if len(o.buf) < n {
		o.done = true
	} else {
		o.from = successor(o.buf[len(o.buf)-1].key)
	}
	return nil
}

func (o *orderedStream) pop() { o.buf = o.buf[1:] }

func (o *orderedStream) took() {
	if o.want > 1 {
		o.want--
	}
}

func (o *orderedStream) skipTo(k []byte) {
	if k == nil {
		o.buf, o.done = nil, true
		return
	}
	o.buf = o.buf[sort.Search(len(o.buf), func(i int) bool { return bytes.Compare(o.buf[i].key, k) >= 0 }):]
	if len(o.buf) > 0 || o.done {
		return
	}
	o.from, o.probe = k, true
	if o.hi != nil && bytes.Compare(k, o.hi) >= 0 {
		o.done = true
	}
}

type entry struct {
	key []byte
	val []byte
}

type cursor struct {
	buf []entry
}

type merger struct {
	ctx     context.Context
	r       *router
	parts   []meta.Partition // the partitions read, as the router knew them
	hi      []byte           // end of the listing; nil: end of the partition
	horizon []byte           // streams hold all their keys below it; nil: hi reached
	done    bool             // the horizon has reached hi
	want    int              // entries the caller may still take
	sample  int              // next partition to sample
	skipped bool             // the horizon was last moved by a skip
	h       cursorHeap
}

type cursorHeap []*cursor

func (h cursorHeap) Len() int           { return len(h) }
func (h cursorHeap) Less(i, j int) bool { return bytes.Compare(h[i].buf[0].key, h[j].buf[0].key) < 0 }
func (h cursorHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *cursorHeap) Push(x any)        { *h = append(*h, x.(*cursor)) }
func (h *cursorHeap) Pop() any {
	old := *h
	c := old[len(old)-1]
	*h = old[:len(old)-1]
	return c
}

// newMerger streams the keys in [lo, hi) of partitions 0..n-1 in order.
// page is the number of entries the caller expects to take; probe says
// the caller will skip common prefixes, so reading starts small.
func newMerger(ctx context.Context, r *router, lo, hi []byte, page int, probe bool) *merger {
	m := &merger{ctx: ctx, r: r, parts: r.parts(), hi: hi, horizon: lo, want: page + 1, skipped: probe}
	if hi != nil && bytes.Compare(lo, hi) >= 0 {
		m.done = true
	}
	return m
}

// took tells the merger one entry was used, for sizing later reads.
func (m *merger) took() {
	if m.want > 1 {
		m.want--
	}
}

// advance moves the horizon forward and reads every partition up to it.
// A partition that split since the listing began is read through its
// children from then on: they hold its keys (see Partitions that split).
func (m *merger) advance() error {
	for range splitDepth + 1 {
		err := m.advanceOnce()
		if err == nil || !m.r.learnFrom(err) {
			return err
		}
		m.parts = m.r.parts()
		m.sample %= len(m.parts)
	}
	return metaErr("list", meta.ErrMoved)
}

func (m *merger) advanceOnce() error {
	from := m.horizon
	n := len(m.parts)
	per := 2*m.want/n + 2
	if m.skipped {
		// Past a common prefix the density of what follows is unknown:
		// probe a little, so that a run of prefixes costs a few records
		// per partition each, not every key under them.
		per, m.skipped = 2, false
	}
	sp := m.sample
	got, err := m.scan(m.parts[sp], from, m.hi, per)
	if err != nil {
		return err
	}
	to := m.hi
	if len(got) == per {
		to = successor(got[len(got)-1].key)
	}
	// Every other partition up to the horizon, in one pass over the store.
	ranges := make([]meta.Range, 0, n-1)
	for i, p := range m.parts {
		if i != sp {
			ranges = append(ranges, meta.Range{P: p, Start: from, End: to})
		}
	}
	bufs := make([]collector, len(ranges))
	err = meta.ScanRanges(m.ctx, m.r, ranges, func(i int, k []byte, it meta.Item) bool {
		bufs[i].add(k, it.Value)
		return true
	})
	if err != nil {
		return metaErr("list", err)
	}
	// Nothing read is kept until every read succeeded: a split met on
	// the way has the whole step made again.
	m.sample = (sp + 1) % n
	if len(got) > 0 {
		m.h = append(m.h, &cursor{buf: got})
	}
	for i := range bufs {
		if buf := bufs[i].entries(); len(buf) > 0 {
			m.h = append(m.h, &cursor{buf: buf})
		}
	}
	heap.Init(&m.h)
	m.horizon = to
	m.done = to == nil || (m.hi != nil && bytes.Equal(to, m.hi))
	return nil
}

// scan reads up to limit (< 0: all) records of partition p in [from, to).
func (m *merger) scan(p meta.Partition, from, to []byte, limit int) ([]entry, error) {
	var c collector
	err := m.r.Scan(m.ctx, p, from, to, func(k []byte, it meta.Item) bool {
		c.add(k, it.Value)
		return limit < 0 || len(c.lens)/2 < limit
	})
	if err != nil {
		return nil, metaErr("list", err)
	}
	return c.entries(), nil
}

// collector copies the records a scan passes into one buffer: the store
// owns what it passes.
type collector struct {
	arena []byte
	lens  []int
}

func (c *collector) add(k, v []byte) {
	c.arena = append(c.arena, k...)
	c.arena = append(c.arena, v...)
	c.lens = append(c.lens, len(k), len(v))
}

func (c *collector) entries() []entry {
	out := make([]entry, len(c.lens)/2)
	off := 0
	for i := range out {
		kl, vl := c.lens[2*i], c.lens[2*i+1]
		out[i] = entry{key: c.arena[off : off+kl : off+kl], val: c.arena[off+kl : off+kl+vl : off+kl+vl]}
		off += kl + vl
	}
	return out
}

// peek returns the smallest remaining entry.
func (m *merger) peek() (entry, bool, error) {
	for len(m.h) == 0 {
		if m.done {
			return entry{}, false, nil
		}
		if err := m.advance(); err != nil {
			return entry{}, false, err
		}
	}
	return m.h[0].buf[0], true, nil
}

// pop drops the smallest entry.
func (m *merger) pop() {
	c := m.h[0]
	c.buf = c.buf[1:]
	if len(c.buf) == 0 {
		heap.Pop(&m.h)
	} else {
		heap.Fix(&m.h, 0)
	}
}

// skipTo drops every entry before k. Only streams that hold such entries
// are touched, and nothing below k is read from the store.
func (m *merger) skipTo(k []byte) {
	if k == nil {
		m.h, m.done = nil, true
		return
	}
	for len(m.h) > 0 {
		c := m.h[0]
		if bytes.Compare(c.buf[0].key, k) >= 0 {
			break
		}
		i := sort.Search(len(c.buf), func(i int) bool { return bytes.Compare(c.buf[i].key, k) >= 0 })
		c.buf = c.buf[i:]
		if len(c.buf) == 0 {
			heap.Pop(&m.h)
		} else {
			heap.Fix(&m.h, 0)
		}
	}
	if !m.done && bytes.Compare(m.horizon, k) < 0 {
		m.horizon, m.skipped = k, true
		if m.hi != nil && bytes.Compare(k, m.hi) >= 0 {
			m.done = true
		}
	}
}

func pageSize(n int) int {
	if n <= 0 || n > maxListKeys {
		return maxListKeys
	}
	return n
}

// rollup returns the common prefix key falls under, or "".
func rollup(key, prefix, delim string) string {
	if delim == "" {
		return ""
	}
	if i := strings.Index(key[len(prefix):], delim); i >= 0 {
		return key[:len(prefix)+i+len(delim)]
	}
	return ""
}

// listStart is where a listing of tag records under prefix resumes after
// marker: past marker itself, and past the whole common prefix marker
// falls under, which an earlier page returned. afterMarker is the suffix
// that follows every record key of marker.
func listStart(tag byte, id bucketID, prefix, delim, marker string, afterMarker []byte) []byte {
	lo := keyPrefix(tag, id, prefix)
	if marker == "" || marker < prefix {
		return lo
	}
	if !strings.HasPrefix(marker, prefix) {
		// Past every key under prefix.
		return prefixEnd(lo)
	}
	if cp := rollup(marker, prefix, delim); cp != "" {
		return prefixEnd(keyPrefix(tag, id, cp))
	}
	return append(keyPrefix(tag, id, marker), afterMarker...)
}

func (s *Service) ListObjects(ctx context.Context, bucket string, opts ListOptions) (ListResult, error) {
	// A listing reads the bucket record itself, linearizably: one read
	// for a page that reads every partition, and a bucket deleted or
	// re-created before the listing began is never listed.
	b, _, err := s.getBucket(ctx, bucket)
	if b, err = s.availableOrErr(bucket, b, err); err != nil {
		return ListResult{}, err
	}
	if b.Config.Consistency == Available {
		return s.listAvailable(ctx, b, bucket, opts)
	}
	limit := pageSize(opts.MaxKeys)
	lo := listStart(tagHead, b.ID, opts.Prefix, opts.Delimiter, opts.Marker, []byte{0})
	hi := prefixEnd(keyPrefix(tagHead, b.ID, opts.Prefix))
	m := newStream(ctx, s.md, tagHead, lo, hi, limit, opts.Delimiter != "")
	var res ListResult
	count := 0
	for {
		e, ok, err := m.peek()
		if err != nil {
			return ListResult{}, err
		}
		if !ok {
			break
		}
		key := string(e.key[keyHdr:])
		h, err := decodeHead(e.val)
		if err != nil {
			return ListResult{}, fmt.Errorf("head of %q: %w", key, err)
		}
		if h.DeleteMarker {
			// Not visible; nor does it make its common prefix visible.
			m.pop()
			continue
		}
		if count == limit {
			res.IsTruncated = true
			break
		}
		count++
		m.took()
		if cp := rollup(key, opts.Prefix, opts.Delimiter); cp != "" {
			res.CommonPrefixes = append(res.CommonPrefixes, cp)
			res.NextMarker = cp
			m.skipTo(prefixEnd(keyPrefix(tagHead, b.ID, cp)))
			continue
		}
		res.Objects = append(res.Objects, ObjectInfo{
			Bucket:       bucket,
			Key:          key,
			IsLatest:     true,
			Size:         h.Size,
			ETag:         quote(h.ETag),
			LastModified: msTime(h.Modified),
			VersionID:    versionIDString(h.Null, h.Latest, b.Versioning),
			Checksums:    h.checksums(),
		})
		res.NextMarker = key
		m.pop()
	}
	if !res.IsTruncated {
		res.NextMarker = ""
	}
	return res, nil
}

func (s *Service) ListObjectVersions(ctx context.Context, bucket string, opts ListVersionsOptions) (ListVersionsResult, error) {
	// A listing reads the bucket record itself, linearizably: one read
	// for a page that reads every partition, and a bucket deleted or
	// re-created before the listing began is never listed.
	b, _, err := s.getBucket(ctx, bucket)
	if b, err = s.availableOrErr(bucket, b, err); err != nil {
		return ListVersionsResult{}, err
	}
	if b.Config.Consistency == Available {
		return s.listAvailableVersions(ctx, b, bucket, opts)
	}
	limit := pageSize(opts.MaxKeys)
	var lo []byte
	midKey := "" // key whose newest versions an earlier page returned
	if opts.KeyMarker != "" && opts.VersionIDMarker != "" && strings.HasPrefix(opts.KeyMarker, opts.Prefix) &&
		rollup(opts.KeyMarker, opts.Prefix, opts.Delimiter) == "" && ValidKey(opts.KeyMarker) == nil {
		ts, null, err := parseVersionID(opts.VersionIDMarker)
		if errors.Is(err, ErrNoSuchVersion) {
			err = fmt.Errorf("%w: invalid version id marker", ErrInvalidArgument)
		}
		if err != nil {
			return ListVersionsResult{}, err
		}
		found := true
		if null {
			it, err := s.md.Get(ctx, s.partition(bucket, opts.KeyMarker), headKey(b.ID, opts.KeyMarker))
			if err != nil && !errors.Is(err, meta.ErrNotFound) {
				return ListVersionsResult{}, metaErr("read head", err)
			}
			h, _, err := decodeHeadItem(it, opts.KeyMarker)
			if err != nil {
				return ListVersionsResult{}, err
			}
			ts, found = h.NullTS, h.HasNull
		}
		if found {
			lo = successor(versionKey(b.ID, opts.KeyMarker, ts))
			midKey = opts.KeyMarker
		}
	}
	if lo == nil {
		lo = listStart(tagVersion, b.ID, opts.Prefix, opts.Delimiter, opts.KeyMarker, []byte{1})
	}
	hi := prefixEnd(keyPrefix(tagVersion, b.ID, opts.Prefix))
	m := newMerger(ctx, s.md, lo, hi, limit, opts.Delimiter != "")
	var res ListVersionsResult
	prev := midKey
	hasPrev := midKey != ""
	for {
		e, ok, err := m.peek()
		if err != nil {
			return ListVersionsResult{}, err
		}
		if !ok {
			break
		}
		if len(res.Versions)+len(res.CommonPrefixes) == limit {
			res.IsTruncated = true
			break
		}
		key, ts, ok := splitVersionKey(e.key)
		if !ok {
			return ListVersionsResult{}, fmt.Errorf("version key %x: %w", e.key, errCorrupt)
		}
		m.took()
		if cp := rollup(key, opts.Prefix, opts.Delimiter); cp != "" {
			res.CommonPrefixes = append(res.CommonPrefixes, cp)
			res.NextKeyMarker, res.NextVersionIDMarker = cp, ""
			m.skipTo(prefixEnd(keyPrefix(tagVersion, b.ID, cp)))
			continue
		}
		v, err := decodeVersion(ts, e.val)
		if err != nil {
			return ListVersionsResult{}, fmt.Errorf("version of %q: %w", key, err)
		}
		oi := v.info(bucket, key, b.Versioning)
		if v.Null {
			oi.VersionID = "null"
		}
		oi.IsLatest = !hasPrev || prev != key
		oi.Headers, oi.UserMeta = nil, nil
		prev, hasPrev = key, true
		res.Versions = append(res.Versions, oi)
		res.NextKeyMarker, res.NextVersionIDMarker = key, oi.VersionID
		m.pop()
	}
	if !res.IsTruncated {
		res.NextKeyMarker, res.NextVersionIDMarker = "", ""
	}
	return res, nil
}

func (s *Service) ListMultipartUploads(ctx context.Context, bucket string, opts ListUploadsOptions) (ListUploadsResult, error) {
	// A listing reads the bucket record itself, linearizably: one read
	// for a page that reads every partition, and a bucket deleted or
	// re-created before the listing began is never listed.
	b, _, err := s.getBucket(ctx, bucket)
	if err != nil {
		return ListUploadsResult{}, err
	}
	limit := pageSize(opts.MaxUploads)
	if opts.KeyMarker != "" && opts.UploadIDMarker != "" && !validUploadID(opts.UploadIDMarker) {
		// S3 ignores an upload-id-marker without a key-marker, and refuses
		// one that cannot be an upload ID.
		return ListUploadsResult{}, fmt.Errorf("%w: invalid uploadId marker", ErrInvalidArgument)
	}
	var lo []byte
	if opts.KeyMarker != "" && opts.UploadIDMarker != "" && strings.HasPrefix(opts.KeyMarker, opts.Prefix) &&
		rollup(opts.KeyMarker, opts.Prefix, opts.Delimiter) == "" {
		lo = successor(uploadKey(b.ID, opts.KeyMarker, opts.UploadIDMarker))
	} else {
		lo = listStart(tagUpload, b.ID, opts.Prefix, opts.Delimiter, opts.KeyMarker, []byte{1})
	}
	hi := prefixEnd(keyPrefix(tagUpload, b.ID, opts.Prefix))
	m := newMerger(ctx, s.md, lo, hi, limit, opts.Delimiter != "")
	var res ListUploadsResult
	for {
		e, ok, err := m.peek()
		if err != nil {
			return ListUploadsResult{}, err
		}
		if !ok {
			break
		}
		if len(res.Uploads)+len(res.CommonPrefixes) == limit {
			res.IsTruncated = true
			break
		}
		key, id, ok := splitUploadKey(e.key)
		if !ok {
			return ListUploadsResult{}, fmt.Errorf("upload key %x: %w", e.key, errCorrupt)
		}
		m.took()
		if cp := rollup(key, opts.Prefix, opts.Delimiter); cp != "" {
			res.CommonPrefixes = append(res.CommonPrefixes, cp)
			// A truncated page ending on a prefix still names an upload
			// ID, the first one the prefix rolls up, so that clients that
			// page with both markers carry on; the key marker alone
			// already resumes after the prefix.
			res.NextKeyMarker, res.NextUploadIDMarker = cp, id
			m.skipTo(prefixEnd(keyPrefix(tagUpload, b.ID, cp)))
			continue
		}
		u, err := decodeUpload(e.val)
		if err != nil {
			return ListUploadsResult{}, fmt.Errorf("upload %q: %w", id, err)
		}
		res.Uploads = append(res.Uploads, Upload{Key: key, UploadID: id, Initiated: msTime(u.Initiated)})
		res.NextKeyMarker, res.NextUploadIDMarker = key, id
		m.pop()
	}
	if !res.IsTruncated {
		res.NextKeyMarker, res.NextUploadIDMarker = "", ""
	}
	return res, nil
}
