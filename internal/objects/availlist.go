package objects

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/redoubt-io/redoubt/internal/meta"
	"github.com/redoubt-io/redoubt/internal/records"
	"github.com/redoubt-io/redoubt/internal/vset"
)

// Listings of available buckets: every base partition's keys, read from
// the replicas that answer (records.ReadRange, which merges and repairs
// them) a page at a time, merged in key order.

// availKeyState is one key's state, as a listing reads it.
type availKeyState struct {
	rkey []byte // the records key: bucket ID, then the object key
	st   vset.State
}

func (k *availKeyState) key() string { return string(k.rkey[len(bucketID{}):]) }

// availStream pages through one partition's keys in [from, to).
type availStream struct {
	ctx  context.Context
	p    uint32
	rp   records.Partition // the records partition of p's keys (recordsPart)
	reps []records.Replica
	from []byte
	to   []byte
	page int
	// all: every replica must answer (a bucket found empty must be
	// empty everywhere).
	all  bool
	now  func() time.Time
	buf  []availKeyState
	done bool
}

func (a *availStream) fill() error {
	for len(a.buf) == 0 && !a.done {
		recs, more, answered, err := records.ReadRange(a.reps, a.rp, a.from, a.to, a.page, availWait, a.now)
		if err == nil && a.all && answered < len(a.reps) {
			err = fmt.Errorf("%d of %d replicas answered", answered, len(a.reps))
		}
		if err != nil {
			return fmt.Errorf("objects: list partition %d: %w: %w", a.p, meta.ErrUnavailable, err)
		}
		for i := 0; i < len(recs); {
			j := i
			for j < len(recs) && bytes.Equal(recs[j].Key, recs[i].Key) {
				j++
			}
			a.buf = append(a.buf, availKeyState{rkey: recs[i].Key, st: records.StateOf(recs[i:j])})
			i = j
		}
		if more && len(recs) > 0 {
			a.from = append(bytes.Clone(recs[len(recs)-1].Key), 0)
		} else {
			a.done = true
		}
	}
	return nil
}

// skipTo drops the keys before k.
func (a *availStream) skipTo(k []byte) {
	for len(a.buf) > 0 && bytes.Compare(a.buf[0].rkey, k) < 0 {
		a.buf = a.buf[1:]
	}
	if len(a.buf) == 0 && bytes.Compare(a.from, k) < 0 {
		a.from = k
	}
}

// availMerger merges the streams of every partition in key order.
type availMerger struct {
	streams []*availStream
	filled  bool
}

// availListFill bounds the partitions a listing reads at once.
const availListFill = 16

func (s *Service) newAvailMerger(ctx context.Context, b *bucketRec, from, to []byte, page int, all bool) (*availMerger, error) {
	m := &availMerger{}
	for p := range uint32(s.cfg.Partitions) {
		rs, err := s.replicasOf(ctx, p)
		if err != nil {
			return nil, err
		}
		m.streams = append(m.streams, &availStream{ctx: ctx, p: p, rp: recordsPart(b, p), reps: rs.readers(), from: from, to: to, page: page, all: all, now: s.cfg.Now})
	}
	return m, nil
}

// fillAll fills every stream, availListFill at a time.
func (m *availMerger) fillAll() error {
	sem := make(chan struct{}, availListFill)
	var wg sync.WaitGroup
	errs := make([]error, len(m.streams))
	for i, st := range m.streams {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			errs[i] = st.fill()
			<-sem
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// peek returns the least key of every stream.
func (m *availMerger) peek() (*availKeyState, bool, error) {
	if !m.filled {
		if err := m.fillAll(); err != nil {
			return nil, false, err
		}
		m.filled = true
	}
	var least *availStream
	for _, st := range m.streams {
		if err := st.fill(); err != nil {
			return nil, false, err
		}
		if len(st.buf) > 0 && (least == nil || bytes.Compare(st.buf[0].rkey, least.buf[0].rkey) < 0) {
			least = st
		}
	}
	if least == nil {
		return nil, false, nil
	}
	return &least.buf[0], true, nil
}

// pop drops the key peek returned.
func (m *availMerger) pop(k *availKeyState) {
	for _, st := range m.streams {
		if len(st.buf) > 0 && bytes.Equal(st.buf[0].rkey, k.rkey) {
			st.buf = st.buf[1:]
			return
		}
	}
}

func (m *availMerger) skipTo(k []byte) {
	for _, st := range m.streams {
		st.skipTo(k)
	}
}

// availListStart is listStart for an available bucket's records.
func availListStart(id bucketID, prefix, delim, marker string) []byte {
	lo := availKey(id, prefix)
	switch {
	case marker == "" || marker < prefix:
		return lo
	case !strings.HasPrefix(marker, prefix):
		return prefixEnd(lo)
	}
	if cp := rollup(marker, prefix, delim); cp != "" {
		return prefixEnd(availKey(id, cp))
	}
	return append(availKey(id, marker), 0)
}

// listAvailable is ListObjects in an available bucket: the keys whose
// current version, in the merged states, is no delete marker.
func (s *Service) listAvailable(ctx context.Context, b bucketRec, bucket string, opts ListOptions) (ListResult, error) {
	ob := &opBucket{name: bucket, rec: b}
	limit := pageSize(opts.MaxKeys)
	m, err := s.newAvailMerger(ctx, &b, availListStart(b.ID, opts.Prefix, opts.Delimiter, opts.Marker),
		prefixEnd(availKey(b.ID, opts.Prefix)), min(limit+1, maxListKeys), false)
	if err != nil {
		return ListResult{}, err
	}
	var res ListResult
	count := 0
	for {
		k, ok, err := m.peek()
		if err != nil {
			return ListResult{}, err
		}
		if !ok {
			break
		}
		key := k.key()
		cur, ok := k.st.Current()
		if !ok || cur.Marker {
			m.pop(k)
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
			m.skipTo(prefixEnd(availKey(b.ID, cp)))
			continue
		}
		r, err := availRec(cur, key)
		if err != nil {
			return ListResult{}, err
		}
		oi := availInfo(ob, key, cur, &r, true)
		oi.Headers, oi.UserMeta, oi.ContentType = nil, nil, ""
		res.Objects = append(res.Objects, oi)
		res.NextMarker = key
		m.pop(k)
	}
	if !res.IsTruncated {
		res.NextMarker = ""
	}
	return res, nil
}

// listAvailableVersions is ListObjectVersions in an available bucket:
// every visible version of each key, greatest first.
func (s *Service) listAvailableVersions(ctx context.Context, b bucketRec, bucket string, opts ListVersionsOptions) (ListVersionsResult, error) {
	ob := &opBucket{name: bucket, rec: b}
	limit := pageSize(opts.MaxKeys)
	var below *vset.ID // on the marker's key, only versions below this
	lo := availListStart(b.ID, opts.Prefix, opts.Delimiter, opts.KeyMarker)
	if opts.KeyMarker != "" && opts.VersionIDMarker != "" && strings.HasPrefix(opts.KeyMarker, opts.Prefix) &&
		rollup(opts.KeyMarker, opts.Prefix, opts.Delimiter) == "" {
		id, err := parseAvailVersionID(opts.VersionIDMarker)
		if err != nil {
			return ListVersionsResult{}, fmt.Errorf("%w: invalid version id marker", ErrInvalidArgument)
		}
		below, lo = &id, availKey(b.ID, opts.KeyMarker)
	}
	m, err := s.newAvailMerger(ctx, &b, lo, prefixEnd(availKey(b.ID, opts.Prefix)), min(limit+1, maxListKeys), false)
	if err != nil {
		return ListVersionsResult{}, err
	}
	var res ListVersionsResult
	full := func() bool { return len(res.Versions)+len(res.CommonPrefixes) == limit }
	for !res.IsTruncated {
		k, ok, err := m.peek()
		if err != nil {
			return ListVersionsResult{}, err
		}
		if !ok {
			break
		}
		key := k.key()
		visible := k.st.Visible()
		if len(visible) == 0 {
			m.pop(k)
			continue
		}
		if full() {
			res.IsTruncated = true
			break
		}
		if cp := rollup(key, opts.Prefix, opts.Delimiter); cp != "" {
			res.CommonPrefixes = append(res.CommonPrefixes, cp)
			res.NextKeyMarker, res.NextVersionIDMarker = cp, ""
			m.skipTo(prefixEnd(availKey(b.ID, cp)))
			continue
		}
		for i, v := range visible {
			if below != nil && key == opts.KeyMarker && v.ID.Compare(*below) >= 0 {
				continue
			}
			if full() {
				res.IsTruncated = true
				break
			}
			r, err := availRec(v, key)
			if err != nil {
				return ListVersionsResult{}, err
			}
			oi := availInfo(ob, key, v, &r, i == 0)
			oi.Headers, oi.UserMeta = nil, nil
			res.Versions = append(res.Versions, oi)
			res.NextKeyMarker, res.NextVersionIDMarker = key, oi.VersionID
		}
		m.pop(k)
	}
	if !res.IsTruncated {
		res.NextKeyMarker, res.NextVersionIDMarker = "", ""
	}
	return res, nil
}

// availEmpty reports whether no key of incarnation id has a visible
// version on any replica; every replica of every partition must answer.
func (s *Service) availEmpty(ctx context.Context, b *bucketRec) (bool, error) {
	id := b.ID
	m, err := s.newAvailMerger(ctx, b, availKey(id, ""), prefixEnd(availKey(id, "")), 100, true)
	if err != nil {
		return false, err
	}
	for {
		k, ok, err := m.peek()
		if err != nil || !ok {
			return err == nil, err
		}
		if len(k.st.Visible()) > 0 {
			return false, nil
		}
		m.pop(k)
	}
}
