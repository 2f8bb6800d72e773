package objects

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"sync"

	"github.com/redoubt-io/redoubt/internal/blocks"
	"github.com/redoubt-io/redoubt/internal/meta"
	"github.com/redoubt-io/redoubt/internal/records"
	"github.com/redoubt-io/redoubt/internal/vset"
)

// Data of replicated buckets written on another site.
//
// A replicated bucket's version records are the same on every site, so a
// body too large to be inline names data (blocks.Ref) on the drives of
// the site that took the write: foreign data, on the others. Each site
// keeps its own copy of foreign data. It copies the bytes from the linked
// sites (Config.SiteData), checks them against the part's MD5, writes
// them to its drives as it writes an available bucket's bodies
// (writeAvailData), and notes the copy in a data note: a record in the
// partition records.DataPartition of the key's base partition, on the
// key's replicas, keyed by the foreign data's ID, whose body is the
// copy's ref. Data notes are merged and synced within the site like
// keys' records, and never sent to another site. Two nodes that copy
// the same data at once both note their copy; the greater note is used.
//
// Copies are made as soon as replication brings a version (CopySiteData,
// called by package sites) and, failing that, by the first read of the
// version (localParts), which then waits for the copy.
// Test: TestSitesReplicateBothWays (internal/node), whose large bodies
// both sites serve with the link cut once copied.

// SiteDataSource opens the bytes of data another site wrote, from the
// linked sites.
type SiteDataSource func(ctx context.Context, ref blocks.Ref) (io.ReadCloser, error)

func dataNoteKey(refID string) []byte { return append([]byte{'d'}, refID...) }

// foreign says whether ref names data on another site's drives: none of
// its drives is this cluster's.
func (s *Service) foreign(ref blocks.Ref) bool {
	if s.cfg.KnownDrive == nil || len(ref.Drives) == 0 {
		return false
	}
	for _, d := range ref.Drives {
		if s.cfg.KnownDrive(d) {
			return false
		}
	}
	return true
}

// localParts replaces the refs of v's parts that name foreign data with
// this site's copies, making those it lacks.
func (s *Service) localParts(ctx context.Context, ob *opBucket, key string, v *versionRec) error {
	p := s.availPartition(ob.name, key)
	for i := range v.Parts {
		if ob.rec.Config.Replicate && s.foreign(v.Parts[i].Ref) {
			local, err := s.siteCopy(ctx, p, key, &v.Parts[i])
			if err != nil {
				return err
			}
			v.Parts[i].Ref = local
		}
		if degraded(v.Parts[i].Ref) {
			// Written in a degraded placement: re-spread since?
			if rs, err := s.replicasOf(ctx, p); err == nil {
				if spread, ok := s.noted(rs, records.DataPartition(p), v.Parts[i].Ref.ID); ok {
					v.Parts[i].Ref = spread
				}
			}
		}
	}
	return nil
}

// siteCopy returns this site's copy of the foreign data of part, a part
// of key (of base partition p), making it when the data notes name none.
func (s *Service) siteCopy(ctx context.Context, p uint32, key string, part *partRec) (blocks.Ref, error) {
	ref := part.Ref
	rs, err := s.replicasOf(ctx, p)
	if err != nil {
		return blocks.Ref{}, err
	}
	q := records.DataPartition(p)
	if local, ok := s.noted(rs, q, ref.ID); ok {
		return local, nil
	}
	// One copy at a time per data on this node: a read and the copier
	// wait for each other, then find the note.
	mu := s.siteCopies.lock(ref.ID)
	defer s.siteCopies.unlock(ref.ID, mu)
	if local, ok := s.noted(rs, q, ref.ID); ok {
		return local, nil
	}
	if s.cfg.SiteData == nil {
		return blocks.Ref{}, fmt.Errorf("objects: data %s is on another site: %w: no site is linked", ref.ID, meta.ErrUnavailable)
	}
	rc, err := s.cfg.SiteData(ctx, ref)
	if err != nil {
		return blocks.Ref{}, fmt.Errorf("objects: data %s from the linked sites: %w: %w", ref.ID, meta.ErrUnavailable, err)
	}
	defer rc.Close()
	sum := md5.New()
	local, err := s.writeAvailData(ctx, p, key, io.TeeReader(io.LimitReader(rc, ref.Size+1), sum))
	if err != nil {
		return blocks.Ref{}, err
	}
	if local.Size != ref.Size || plainMD5(part.ETag) && hex.EncodeToString(sum.Sum(nil)) != part.ETag {
		s.deleteData(ctx, local)
		return blocks.Ref{}, fmt.Errorf("objects: data %s from the linked sites: %w: %d bytes, or not the part's MD5", ref.ID, meta.ErrUnavailable, local.Size)
	}
	body, err := json.Marshal(local)
	if err != nil {
		return blocks.Ref{}, err
	}
	note := []records.Record{{Key: dataNoteKey(ref.ID), Version: vset.Version{ID: vset.ID{TS: s.clock.Now(), Node: s.writer}, Body: body}}}
	n, err := records.Write(rs.Replicas, q, note, len(rs.Replicas), availWait)
	if n == 0 && len(rs.Hints) > 0 {
		n, err = records.Write(rs.Hints, q, note, 1, availWait)
	}
	if n == 0 {
		// Unnoted, the copy is never found: another is made later.
		s.deleteData(ctx, local)
		return blocks.Ref{}, fmt.Errorf("objects: noting a copy of %s: %w: %w", ref.ID, meta.ErrUnavailable, err)
	}
	return local, nil
}

// plainMD5 says whether etag (unquoted) is a body's MD5, not a multipart
// object's.
func plainMD5(etag string) bool {
	b, err := hex.DecodeString(etag)
	return err == nil && len(b) == md5.Size
}

// noted returns the copy the data notes of q name for foreign data id.
func (s *Service) noted(rs RecordSet, q records.Partition, id string) (blocks.Ref, bool) {
	recs, _, err := records.Read(rs.readers(), q, dataNoteKey(id), availWait, s.cfg.Now)
	if err != nil {
		return blocks.Ref{}, false
	}
	cur, ok := records.StateOf(recs).Current()
	if !ok {
		return blocks.Ref{}, false
	}
	var local blocks.Ref
	if err := json.Unmarshal(cur.Body, &local); err != nil || local.ID == "" {
		return blocks.Ref{}, false
	}
	return local, true
}

// CopySiteData copies the foreign data that the versions among recs,
// records of partition q of buckets replicated to sites, name, as far as
// this site has no copy of it yet. It returns how many copies it made
// or found, and the first error.
func (s *Service) CopySiteData(ctx context.Context, q records.Partition, recs []records.Record) (int, error) {
	if uint32(q)&records.SiteFlag == 0 {
		return 0, nil
	}
	p := q.Base()
	// The keys whose versions name data, once each.
	var keys [][]byte
	for i := range recs {
		r := &recs[i]
		if r.Removal || r.Version.Marker || len(r.Key) < len(bucketID{}) {
			continue
		}
		if len(keys) > 0 && bytes.Equal(keys[len(keys)-1], r.Key) {
			continue
		}
		if v, err := decodeVersion(r.Version.ID.TS, r.Version.Body); err == nil && len(v.Parts) > 0 {
			keys = append(keys, r.Key)
		}
	}
	if len(keys) == 0 {
		return 0, nil
	}
	rs, err := s.replicasOf(ctx, p)
	if err != nil {
		return 0, err
	}
	n := 0
	var first error
	for _, k := range keys {
		// The versions visible now: a version removed since, on either
		// site, needs no copy (and its data may be gone).
		held, _, err := records.Read(rs.readers(), q, k, availWait, s.cfg.Now)
		if err != nil {
			first = cmpOr(first, err)
			continue
		}
		key := string(k[len(bucketID{}):])
		for _, ver := range records.StateOf(held).Visible() {
			v, err := decodeVersion(ver.ID.TS, ver.Body)
			if err != nil || ver.Marker {
				continue
			}
			for j := range v.Parts {
				if !s.foreign(v.Parts[j].Ref) {
					continue
				}
				if _, err := s.siteCopy(ctx, p, key, &v.Parts[j]); err != nil {
					first = cmpOr(first, err)
					continue
				}
				n++
			}
		}
	}
	return n, first
}

func cmpOr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

// copyLocks serialises the copies of one foreign data on this node.
type copyLocks struct {
	mu sync.Mutex
	m  map[string]*copyLock
}

type copyLock struct {
	sync.Mutex
	users int
}

func (c *copyLocks) lock(id string) *copyLock {
	c.mu.Lock()
	if c.m == nil {
		c.m = map[string]*copyLock{}
	}
	l, ok := c.m[id]
	if !ok {
		l = &copyLock{}
		c.m[id] = l
	}
	l.users++
	c.mu.Unlock()
	l.Lock()
	return l
}

func (c *copyLocks) unlock(id string, l *copyLock) {
	l.Unlock()
	c.mu.Lock()
	if l.users--; l.users == 0 {
		delete(c.m, id)
	}
	c.mu.Unlock()
}
