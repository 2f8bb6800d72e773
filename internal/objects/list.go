package objects

import (
	"bytes"
	"container/heap"
	"context"
	"fmt"
	"strings"

	"github.com/redoubt-io/redoubt/internal/meta"
)

// A listing merges one ordered stream per partition. Each stream reads
// its partition in batches that start small and double, so a page of n
// entries over P partitions reads O(n + P) records, not O(n × P); and a
// common prefix is skipped by seeking every stream that surfaces inside
// it to the prefix's end, not by reading the keys under it.

const maxListKeys = 1000

type entry struct {
	key []byte
	val []byte
}

type cursor struct {
	p     meta.Partition
	buf   []entry
	next  []byte // where the next batch starts; nil when the scan is done
	batch int
}

type merger struct {
	ctx  context.Context
	md   meta.Store
	hi   []byte
	h    cursorHeap
	err  error
	maxB int
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
// page is the number of entries the caller expects to take.
func newMerger(ctx context.Context, md meta.Store, n int, lo, hi []byte, page int) (*merger, error) {
	m := &merger{ctx: ctx, md: md, hi: hi, maxB: max(page+1, 16)}
	if hi != nil && bytes.Compare(lo, hi) >= 0 {
		return m, nil
	}
	first := max(2, 2*page/n+1)
	m.h = make(cursorHeap, 0, n)
	for p := 0; p < n; p++ {
		c := &cursor{p: meta.Partition(p), next: lo, batch: first}
		if err := m.fill(c); err != nil {
			return nil, err
		}
		if len(c.buf) > 0 {
			m.h = append(m.h, c)
		}
	}
	heap.Init(&m.h)
	return m, nil
}

// fill reads c's next batch when its buffer is empty.
func (m *merger) fill(c *cursor) error {
	for len(c.buf) == 0 && c.next != nil {
		want := c.batch
		c.batch = min(c.batch*2, m.maxB)
		var got []entry
		err := m.md.Scan(m.ctx, c.p, c.next, m.hi, func(k []byte, it meta.Item) bool {
			got = append(got, entry{key: bytes.Clone(k), val: it.Value})
			return len(got) < want
		})
		if err != nil {
			return metaErr("list", err)
		}
		if len(got) < want {
			c.next = nil
		} else {
			c.next = successor(got[len(got)-1].key)
		}
		c.buf = got
	}
	return nil
}

// peek returns the smallest remaining entry.
func (m *merger) peek() (entry, bool) {
	if len(m.h) == 0 {
		return entry{}, false
	}
	return m.h[0].buf[0], true
}

// pop drops the smallest entry.
func (m *merger) pop() error {
	c := m.h[0]
	c.buf = c.buf[1:]
	return m.fix(c)
}

func (m *merger) fix(c *cursor) error {
	if err := m.fill(c); err != nil {
		return err
	}
	if len(c.buf) == 0 {
		heap.Pop(&m.h)
		return nil
	}
	heap.Fix(&m.h, 0)
	return nil
}

// skipTo drops every entry before k (nil: every entry). Only streams that
// surface below k are touched.
func (m *merger) skipTo(k []byte) error {
	for len(m.h) > 0 {
		c := m.h[0]
		if k != nil && bytes.Compare(c.buf[0].key, k) >= 0 {
			return nil
		}
		i := len(c.buf)
		if k != nil {
			// Binary search the buffer; past its end, seek the scan.
			lo, hi := 0, len(c.buf)
			for lo < hi {
				mid := (lo + hi) / 2
				if bytes.Compare(c.buf[mid].key, k) < 0 {
					lo = mid + 1
				} else {
					hi = mid
				}
			}
			i = lo
		}
		c.buf = c.buf[i:]
		if len(c.buf) == 0 && c.next != nil {
			if k == nil {
				c.next = nil
			} else if bytes.Compare(c.next, k) < 0 {
				c.next = k
			}
		}
		if err := m.fix(c); err != nil {
			return err
		}
	}
	return nil
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
	b, _, err := s.getBucket(ctx, bucket)
	if err != nil {
		return ListResult{}, err
	}
	limit := pageSize(opts.MaxKeys)
	lo := listStart(tagHead, b.ID, opts.Prefix, opts.Delimiter, opts.Marker, []byte{0})
	hi := prefixEnd(keyPrefix(tagHead, b.ID, opts.Prefix))
	m, err := newMerger(ctx, s.md, s.cfg.Partitions, lo, hi, limit)
	if err != nil {
		return ListResult{}, err
	}
	var res ListResult
	count := 0
	for {
		e, ok := m.peek()
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
			if err := m.pop(); err != nil {
				return ListResult{}, err
			}
			continue
		}
		if count == limit {
			res.IsTruncated = true
			break
		}
		count++
		if cp := rollup(key, opts.Prefix, opts.Delimiter); cp != "" {
			res.CommonPrefixes = append(res.CommonPrefixes, cp)
			res.NextMarker = cp
			if err := m.skipTo(prefixEnd(keyPrefix(tagHead, b.ID, cp))); err != nil {
				return ListResult{}, err
			}
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
		})
		res.NextMarker = key
		if err := m.pop(); err != nil {
			return ListResult{}, err
		}
	}
	if !res.IsTruncated {
		res.NextMarker = ""
	}
	return res, nil
}

func (s *Service) ListObjectVersions(ctx context.Context, bucket string, opts ListVersionsOptions) (ListVersionsResult, error) {
	b, _, err := s.getBucket(ctx, bucket)
	if err != nil {
		return ListVersionsResult{}, err
	}
	limit := pageSize(opts.MaxKeys)
	var lo []byte
	midKey := "" // key whose newest versions an earlier page returned
	if opts.KeyMarker != "" && opts.VersionIDMarker != "" && strings.HasPrefix(opts.KeyMarker, opts.Prefix) &&
		rollup(opts.KeyMarker, opts.Prefix, opts.Delimiter) == "" && ValidKey(opts.KeyMarker) == nil {
		ts, null, err := parseVersionID(opts.VersionIDMarker)
		if err != nil {
			return ListVersionsResult{}, err
		}
		found := true
		if null {
			h, _, err := s.getHead(ctx, s.partition(bucket, opts.KeyMarker), b.ID, opts.KeyMarker)
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
	m, err := newMerger(ctx, s.md, s.cfg.Partitions, lo, hi, limit)
	if err != nil {
		return ListVersionsResult{}, err
	}
	var res ListVersionsResult
	prev := midKey
	hasPrev := midKey != ""
	for {
		e, ok := m.peek()
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
		if cp := rollup(key, opts.Prefix, opts.Delimiter); cp != "" {
			res.CommonPrefixes = append(res.CommonPrefixes, cp)
			res.NextKeyMarker, res.NextVersionIDMarker = cp, ""
			if err := m.skipTo(prefixEnd(keyPrefix(tagVersion, b.ID, cp))); err != nil {
				return ListVersionsResult{}, err
			}
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
		if err := m.pop(); err != nil {
			return ListVersionsResult{}, err
		}
	}
	if !res.IsTruncated {
		res.NextKeyMarker, res.NextVersionIDMarker = "", ""
	}
	return res, nil
}

func (s *Service) ListMultipartUploads(ctx context.Context, bucket string, opts ListUploadsOptions) (ListUploadsResult, error) {
	b, _, err := s.getBucket(ctx, bucket)
	if err != nil {
		return ListUploadsResult{}, err
	}
	limit := pageSize(opts.MaxUploads)
	var lo []byte
	if opts.KeyMarker != "" && opts.UploadIDMarker != "" && strings.HasPrefix(opts.KeyMarker, opts.Prefix) &&
		rollup(opts.KeyMarker, opts.Prefix, opts.Delimiter) == "" {
		lo = successor(uploadKey(b.ID, opts.KeyMarker, opts.UploadIDMarker))
	} else {
		lo = listStart(tagUpload, b.ID, opts.Prefix, opts.Delimiter, opts.KeyMarker, []byte{1})
	}
	hi := prefixEnd(keyPrefix(tagUpload, b.ID, opts.Prefix))
	m, err := newMerger(ctx, s.md, s.cfg.Partitions, lo, hi, limit)
	if err != nil {
		return ListUploadsResult{}, err
	}
	var res ListUploadsResult
	for {
		e, ok := m.peek()
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
		if cp := rollup(key, opts.Prefix, opts.Delimiter); cp != "" {
			res.CommonPrefixes = append(res.CommonPrefixes, cp)
			res.NextKeyMarker, res.NextUploadIDMarker = cp, ""
			if err := m.skipTo(prefixEnd(keyPrefix(tagUpload, b.ID, cp))); err != nil {
				return ListUploadsResult{}, err
			}
			continue
		}
		u, err := decodeUpload(e.val)
		if err != nil {
			return ListUploadsResult{}, fmt.Errorf("upload %q: %w", id, err)
		}
		res.Uploads = append(res.Uploads, Upload{Key: key, UploadID: id, Initiated: msTime(u.Initiated)})
		res.NextKeyMarker, res.NextUploadIDMarker = key, id
		if err := m.pop(); err != nil {
			return ListUploadsResult{}, err
		}
	}
	if !res.IsTruncated {
		res.NextKeyMarker, res.NextUploadIDMarker = "", ""
	}
	return res, nil
}
