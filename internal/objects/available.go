package objects

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"time"

	"github.com/redoubt-io/redoubt/internal/blocks"
	"github.com/redoubt-io/redoubt/internal/meta"
	"github.com/redoubt-io/redoubt/internal/placement"
	"github.com/redoubt-io/redoubt/internal/records"
	"github.com/redoubt-io/redoubt/internal/vset"
)

// Available buckets (BucketConfig.Consistency Available). A key's state
// is a vset.State kept as records (package records) on the replicas of
// its base partition: the metadata partition's nodes in the layout. No
// operation on an available bucket's objects waits for a Raft majority:
//
//   - A write (PUT, copy, delete, and a multipart upload's completion)
//     reads the key's state from the replicas that answer, makes a
//     version whose ID (hybrid-clock timestamp, writer) is greater than
//     every version it saw (so it is current wherever its writer saw
//     everything) and that names the heads it saw (vset), and writes it,
//     with the removals an overwrite makes,
//     to every replica it reaches. It acknowledges once the bucket's
//     WriteCopies replicas hold it durably, or fewer if fewer answer
//     within availWait of the first (never none), and says how many
//     (ObjectInfo.Copies, the X-Redoubt-Copies header).
//   - A read merges the answering replicas' records (records.Read) and
//     repairs those that lacked some; listings merge the replicas' pages
//     of every partition (records.ReadRange).
//   - Merging is set union: versions written on both sides of a cut all
//     survive, and the current version of a key is its greatest visible
//     one (vset's contract). Anti-entropy (package cluster) makes the
//     replicas equal in the background.
//   - Bodies up to Config.InlineMax live in the version record, so they
//     are as available as the record. Larger bodies go to the data store
//     under IDs with no write intent (availDataID), which garbage
//     collection never removes (GCStats.Untracked): a write never waits
//     for the metadata majority, and data is lost to nothing but its
//     drives. Their placement is the layout's; a node that cannot reach a
//     write quorum of those drives refuses the write (503).
//   - The bucket record is read once and remembered (availBuckets): its ID
//     and consistency are fixed for its life, and a node cut off from the
//     System group goes on serving the buckets it knows. A versioning
//     change reaches a node at its next re-read, which a request starts
//     once the record is availRefresh old.
//
// Tests: TestAvailableWritesOnBothSidesOfACut, TestAvailableOverwriteAndDelete,
// TestAvailableListing, TestAvailableVersions.

// RecordReplicas reaches the replicas of available buckets' records.
type RecordReplicas interface {
	// RecordReplicas returns where the records of base partition p are
	// written and read, as a request with ctx reaches them.
	RecordReplicas(ctx context.Context, p uint32) RecordSet
}

// A RecordSet is where an available bucket's records of one partition go.
type RecordSet struct {
	// Replicas are the partition's replicas, as the layout places them.
	Replicas []records.Replica
	// Hints keep a write for the replicas that could not take it
	// (hinted handoff, a sloppy quorum): other nodes, which hold the
	// records apart and hand them to the replicas once they answer. A
	// write turns to them only when fewer of Replicas than it wants
	// took it.
	Hints []records.Replica
	// Own is this node's hints, which reads consult with Replicas so
	// that a node cut off from every replica reads its own writes; nil
	// when the node is a replica.
	Own records.Replica
}

// readers are the replicas a read consults.
func (rs RecordSet) readers() []records.Replica {
	if rs.Own == nil {
		return rs.Replicas
	}
	return append(rs.Replicas[:len(rs.Replicas):len(rs.Replicas)], rs.Own)
}

// availWait is how long an available write waits, once one replica holds
// it, for the others it wants; and how long a read waits, once one has
// answered, for the others. A replica cut off then only delays requests
// by this much.
const availWait = 250 * time.Millisecond

// availRefresh is how often a node reads a remembered available bucket's
// record again, in the background.
const availRefresh = time.Second

// DefaultWriteCopies is the copies an available bucket's writes wait for
// when the bucket does not say.
const DefaultWriteCopies = 2

// CopiesHeader is the response header that says on how many nodes an
// available bucket's write was durable when it was acknowledged.
const CopiesHeader = "X-Redoubt-Copies"

// WriteCopiesHeader is CreateBucket's request header that sets an
// available bucket's BucketConfig.WriteCopies.
const WriteCopiesHeader = "X-Redoubt-Write-Copies"

// MaxWriteCopies bounds BucketConfig.WriteCopies.
const MaxWriteCopies = 16

func (ob *opBucket) available() bool { return ob.rec.Config.Consistency == Available }

// availBuckets remembers available buckets' records (see above).
type availBuckets struct {
	mu sync.Mutex
	m  map[string]*availEntry
}

type availEntry struct {
	rec        bucketRec
	read       time.Time
	refreshing bool
}

func (a *availBuckets) remember(name string, r bucketRec, at time.Time) {
	if r.Config.Consistency != Available {
		a.forget(name)
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.m == nil {
		a.m = map[string]*availEntry{}
	}
	if e, ok := a.m[name]; ok && e.read.After(at) {
		return
	}
	a.m[name] = &availEntry{rec: r, read: at}
}

func (a *availBuckets) forget(name string) {
	a.mu.Lock()
	delete(a.m, name)
	a.mu.Unlock()
}

// get returns the remembered record of name, and whether it is due to be
// read again (the caller then reads it; one caller at a time).
func (a *availBuckets) get(name string, now time.Time) (r bucketRec, ok, refresh bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	e, ok := a.m[name]
	if !ok {
		return bucketRec{}, false, false
	}
	if now.Sub(e.read) >= availRefresh && !e.refreshing {
		e.refreshing, refresh = true, true
	}
	return e.rec, true, refresh
}

func (a *availBuckets) refreshed(name string) {
	a.mu.Lock()
	if e, ok := a.m[name]; ok {
		e.refreshing = false
	}
	a.mu.Unlock()
}

// rememberedBucket returns an available bucket's remembered record,
// reading it again in the background when it is due.
func (s *Service) rememberedBucket(ctx context.Context, name string) (*opBucket, bool) {
	r, ok, refresh := s.avail.get(name, time.Now())
	if !ok {
		return nil, false
	}
	if refresh {
		go func() {
			defer s.avail.refreshed(name)
			ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			defer cancel()
			if _, _, err := s.getBucket(ctx, name); errors.Is(err, ErrNoSuchBucket) {
				s.avail.forget(name)
			}
		}()
	}
	return &opBucket{name: name, rec: r}, true
}

// availableOrErr answers a bucket read that failed for want of the System
// group's majority with the remembered record of an available bucket.
func (s *Service) availableOrErr(name string, r bucketRec, err error) (bucketRec, error) {
	if err == nil || !errors.Is(err, meta.ErrUnavailable) {
		return r, err
	}
	if rr, ok, _ := s.avail.get(name, time.Now()); ok {
		return rr, nil
	}
	return r, err
}

// availKey is the records key of key in incarnation id.
func availKey(id bucketID, key string) []byte {
	return append(id[:len(id):len(id)], key...)
}

// recordsPart is the records partition of base partition p's keys in
// bucket b: p itself, or in a bucket replicated to other sites p's
// partition of such buckets, kept apart so that sites compare only what
// they share.
func recordsPart(b *bucketRec, p uint32) records.Partition {
	if b.Config.Replicate {
		return records.SitePartition(p)
	}
	return records.Partition(p)
}

// availPartition is the base partition of key: the placement of its
// records (recordsPart).
func (s *Service) availPartition(bucket, key string) uint32 {
	return placement.PartitionOf(bucket, key, s.cfg.Partitions)
}

func (s *Service) replicasOf(ctx context.Context, p uint32) (RecordSet, error) {
	if s.cfg.Records == nil {
		return RecordSet{}, fmt.Errorf("%w: this node keeps no records of available buckets", ErrNotImplemented)
	}
	rs := s.cfg.Records.RecordReplicas(ctx, p)
	if len(rs.Replicas)+len(rs.Hints) == 0 {
		return RecordSet{}, fmt.Errorf("objects: partition %d: %w: no replica of its records is known", p, meta.ErrUnavailable)
	}
	return rs, nil
}

// availState reads key's state from its replicas, and moves this node's
// clock past every version in it, so that a version written next is
// greater than every version read.
func (s *Service) availState(ctx context.Context, ob *opBucket, key string) (vset.State, RecordSet, uint32, error) {
	p := s.availPartition(ob.name, key)
	rs, err := s.replicasOf(ctx, p)
	if err != nil {
		return vset.State{}, RecordSet{}, 0, err
	}
	recs, _, err := records.Read(rs.readers(), recordsPart(&ob.rec, p), availKey(ob.rec.ID, key), availWait, s.cfg.Now)
	if err != nil {
		return vset.State{}, RecordSet{}, 0, fmt.Errorf("objects: read %q: %w: %w", key, meta.ErrUnavailable, err)
	}
	st := records.StateOf(recs)
	for _, id := range st.IDs() {
		s.clock.Update(id.TS)
	}
	return st, rs, p, nil
}

// availVersionID is the version ID S3 shows for version id.
func availVersionID(id vset.ID) string { return hex.EncodeToString(id.AppendBinary(nil)) }

func parseAvailVersionID(vid string) (vset.ID, error) {
	b, err := hex.DecodeString(vid)
	if err != nil || len(b) != vset.IDLen {
		if vid == "null" || plausibleVersionID(vid) {
			return vset.ID{}, fmt.Errorf("%w: version id %q", ErrNoSuchVersion, vid)
		}
		return vset.ID{}, fmt.Errorf("%w: invalid version id specified", ErrInvalidArgument)
	}
	id, err := vset.IDFromBinary(b)
	if err != nil {
		return vset.ID{}, fmt.Errorf("%w: version id %q", ErrNoSuchVersion, vid)
	}
	return id, nil
}

// availRec decodes a version's record.
func availRec(v vset.Version, key string) (versionRec, error) {
	r, err := decodeVersion(v.ID.TS, v.Body)
	if err != nil {
		return versionRec{}, fmt.Errorf("version %s of %q: %w", v.ID, key, err)
	}
	return r, nil
}

// availInfo is the ObjectInfo of version v of key, current or not.
func availInfo(ob *opBucket, key string, v vset.Version, r *versionRec, current bool) ObjectInfo {
	oi := r.info(ob.name, key, ob.rec.Versioning)
	oi.VersionID = availVersionID(v.ID)
	oi.IsLatest = current
	return oi
}

// readAvailable is readVersion in an available bucket.
func (s *Service) readAvailable(ctx context.Context, ob *opBucket, key, vid string) (versionRec, ObjectInfo, error) {
	var named vset.ID
	if vid != "" {
		id, err := parseAvailVersionID(vid)
		if err != nil {
			return versionRec{}, ObjectInfo{}, err
		}
		named = id
	}
	st, _, _, err := s.availState(ctx, ob, key)
	if err != nil {
		return versionRec{}, ObjectInfo{}, err
	}
	cur, ok := st.Current()
	v := cur
	if vid != "" {
		ok = false
		for _, w := range st.Visible() {
			if w.ID == named {
				v, ok = w, true
			}
		}
		if !ok {
			return versionRec{}, ObjectInfo{}, fmt.Errorf("%w: %q version %s", ErrNoSuchVersion, key, vid)
		}
	} else if !ok {
		return versionRec{}, ObjectInfo{}, fmt.Errorf("%w: %q", ErrNoSuchKey, key)
	}
	r, err := availRec(v, key)
	if err != nil {
		return versionRec{}, ObjectInfo{}, err
	}
	oi := availInfo(ob, key, v, &r, v.ID == cur.ID)
	if r.DeleteMarker {
		if vid == "" {
			return versionRec{}, oi, fmt.Errorf("%w: %q (delete marker)", ErrNoSuchKey, key)
		}
		return versionRec{}, oi, fmt.Errorf("%w: %q version %s", ErrMethodNotAllowed, key, vid)
	}
	return r, oi, nil
}

// commitAvailable is commitVersion in an available bucket. The write's
// conditions are checked against the state the answering replicas hold,
// which a write on the other side of a partition may not be in: in an
// available bucket a conditional write is a best effort, and both writes
// of such a race survive as concurrent versions.
func (s *Service) commitAvailable(ctx context.Context, ob *opBucket, key string, ifMatch, ifNoneMatch string, build versionBuild) (committed, error) {
	st, rs, p, err := s.availState(ctx, ob, key)
	if err != nil {
		return committed{}, err
	}
	cur, ok := st.Current()
	var current *versionRec
	if ok && !cur.Marker {
		r, err := availRec(cur, key)
		if err != nil {
			return committed{}, err
		}
		current = &r
	}
	switch {
	case ifNoneMatch != "" && current != nil && etagMatches(ifNoneMatch, current.ETag):
		return committed{}, fmt.Errorf("%w: %q exists", ErrPreconditionFailed, key)
	case ifMatch != "" && current == nil:
		return committed{}, fmt.Errorf("%w: %q (if-match)", ErrNoSuchKey, key)
	case ifMatch != "" && !etagMatches(ifMatch, current.ETag):
		return committed{}, fmt.Errorf("%w: etag of %q is not %s", ErrPreconditionFailed, key, ifMatch)
	}
	rec, extra, err := build(ctx, ob.rec.ID)
	if err != nil {
		return committed{}, err
	}
	if len(extra.Conds)+len(extra.Puts)+len(extra.Deletes) > 0 {
		// What the write names in the metadata (a multipart upload it
		// completes, the parts it keeps) changes first: a version never
		// names parts that are not kept.
		if _, err := s.md.Commit(ctx, s.partition(ob.name, key), extra); err != nil {
			if isConflict(err) {
				return committed{}, fmt.Errorf("%w: %q changed while completing", ErrConditionalConflict, key)
			}
			return committed{}, metaErr("commit", err)
		}
	}
	versioning := ob.rec.Versioning
	rec.Null = versioning != Enabled
	rec.Versioned = versioning != Unversioned
	id := vset.ID{TS: s.clock.Now(), Node: s.writer}
	rec.TS = id.TS
	v := vset.Version{ID: id, Marker: rec.DeleteMarker, Body: rec.encode()}
	k := availKey(ob.rec.ID, key)
	recs := []records.Record{{Key: k, Version: v}}
	var replaced []blocks.Ref
	for _, w := range st.Heads() {
		v.Saw = append(v.Saw, w.ID)
	}
	for _, w := range st.Visible() {
		if rec.Null {
			// A write that is not versioned replaces the null versions
			// it saw (an unversioned bucket's are all null).
			old, err := availRec(w, key)
			if err != nil {
				return committed{}, err
			}
			if old.Null {
				recs = append(recs, records.Record{Key: k, Removal: true, Version: vset.Version{ID: w.ID}})
				replaced = append(replaced, old.refs()...)
			}
		}
	}
	slices.SortFunc(v.Saw, vset.ID.Compare)
	recs[0].Version = v
	copies, everywhere, err := s.writeAvailable(ob, p, rs, recs)
	if err != nil {
		return committed{}, err
	}
	c := committed{rec: rec, versioning: versioning, latest: true, copies: copies, id: id}
	if everywhere {
		// Every replica holds the removals: no merge brings the replaced
		// versions back, so their data can go. Otherwise it stays until
		// a sweep of available buckets' data exists.
		c.replaced = replaced
	}
	return c, nil
}

// writeAvailable writes recs to the replicas of partition p, waiting for
// the bucket's WriteCopies, and to hints for as many as the replicas
// fell short. everywhere says whether every replica took them.
func (s *Service) writeAvailable(ob *opBucket, p uint32, rs RecordSet, recs []records.Record) (copies int, everywhere bool, err error) {
	want := ob.rec.Config.WriteCopiesOrDefault()
	var errs []error
	if len(rs.Replicas) > 0 {
		// Every replica that answers in time takes the write, even past
		// want: the fewer that miss it, the less anti-entropy has to do.
		copies, err = records.Write(rs.Replicas, recordsPart(&ob.rec, p), recs, len(rs.Replicas), availWait)
		if err != nil {
			errs = append(errs, err)
		}
	}
	everywhere = copies == len(rs.Replicas)
	if copies < want && len(rs.Hints) > 0 {
		hinted, err := records.Write(rs.Hints, recordsPart(&ob.rec, p), recs, want-copies, availWait)
		if err != nil {
			errs = append(errs, err)
		}
		copies += hinted
	}
	if copies == 0 {
		return 0, false, fmt.Errorf("objects: write: %w: %w", meta.ErrUnavailable, errors.Join(errs...))
	}
	return copies, everywhere, nil
}

// deleteAvailable is DeleteObject in an available bucket. Without a
// version ID, a versioned or suspended bucket gets a delete marker (which
// in a suspended bucket replaces the null version), and an unversioned
// one removes the versions the delete saw. With one, the named version
// is removed, on every replica the delete reaches and, through them, for
// good.
func (s *Service) deleteAvailable(ctx context.Context, ob *opBucket, key string, opts DeleteOptions) (DeleteResult, error) {
	if opts.VersionID == "" && ob.rec.Versioning != Unversioned {
		marker := versionRec{DeleteMarker: true}
		c, err := s.commitAvailable(ctx, ob, key, opts.IfMatch, "",
			func(context.Context, bucketID) (versionRec, meta.Txn, error) { return marker, meta.Txn{}, nil })
		if err != nil {
			return DeleteResult{}, err
		}
		s.deleteData(ctx, c.replaced...)
		return DeleteResult{VersionID: availVersionID(c.id), DeleteMarker: true, Copies: c.copies}, nil
	}
	var named vset.ID
	if opts.VersionID != "" {
		id, err := parseAvailVersionID(opts.VersionID)
		if errors.Is(err, ErrNoSuchVersion) && opts.IfMatch == "" {
			// Well-formed, never issued: a version that does not exist.
			return DeleteResult{VersionID: opts.VersionID}, nil
		}
		if err != nil {
			return DeleteResult{}, err
		}
		named = id
	}
	st, rs, p, err := s.availState(ctx, ob, key)
	if err != nil {
		return DeleteResult{}, err
	}
	cur, hasCur := st.Current()
	if opts.IfMatch != "" {
		if !hasCur || cur.Marker {
			return DeleteResult{}, fmt.Errorf("%w: %q (if-match)", ErrNoSuchKey, key)
		}
		r, err := availRec(cur, key)
		if err != nil {
			return DeleteResult{}, err
		}
		if !etagMatches(opts.IfMatch, r.ETag) {
			return DeleteResult{}, fmt.Errorf("%w: etag of %q is not %s", ErrPreconditionFailed, key, opts.IfMatch)
		}
	}
	k := availKey(ob.rec.ID, key)
	var recs []records.Record
	var replaced []blocks.Ref
	res := DeleteResult{VersionID: opts.VersionID}
	for _, w := range st.Visible() {
		if opts.VersionID != "" && w.ID != named {
			continue
		}
		r, err := availRec(w, key)
		if err != nil {
			return DeleteResult{}, err
		}
		recs = append(recs, records.Record{Key: k, Removal: true, Version: vset.Version{ID: w.ID}})
		replaced = append(replaced, r.refs()...)
		res.DeleteMarker = res.DeleteMarker || opts.VersionID != "" && r.DeleteMarker
	}
	if opts.VersionID != "" && len(recs) == 0 {
		// Not visible here: removed already, or not written yet as far
		// as these replicas know. Its removal is recorded all the same,
		// so that a copy arriving later stays removed.
		recs = append(recs, records.Record{Key: k, Removal: true, Version: vset.Version{ID: named}})
	}
	if len(recs) == 0 {
		return res, nil
	}
	copies, everywhere, err := s.writeAvailable(ob, p, rs, recs)
	if err != nil {
		return DeleteResult{}, err
	}
	res.Copies = copies
	if everywhere {
		s.deleteData(ctx, replaced...)
	}
	return res, nil
}

// availDataIDHex is the length of the data IDs of available buckets'
// bodies: unlike write intents' IDs (refIDLen), they name no ref record,
// so garbage collection leaves their shards alone (RefPartition).
const availDataIDHex = 48

// degradedIDHex is the length of the data IDs of available buckets'
// bodies written in a degraded placement (respread.go): no ref record
// either, and told apart from the others by their length.
const degradedIDHex = 46

// writeAvailData stores a body of key in an available bucket without a
// write intent (see above). When the layout's drives for it are out of
// reach (a write quorum of them), it takes the write all the same, as
// copies on the drives that are (a degraded placement), and notes it for
// re-spreading under the policy once they are back (respread.go).
func (s *Service) writeAvailData(ctx context.Context, base uint32, key string, r io.Reader) (blocks.Ref, error) {
	return s.writeAvailDataMay(ctx, base, key, r, true)
}

// writeAvailDataMay is writeAvailData, which may degrade the placement or
// not (then it fails with blocks.ErrQuorum).
func (s *Service) writeAvailDataMay(ctx context.Context, base uint32, key string, r io.Reader, mayDegrade bool) (blocks.Ref, error) {
	p := routeOf(base, key)
	w, ok := s.data.(blocks.IDWriter)
	if !ok {
		return s.data.Write(ctx, s.placementOf(p), r)
	}
	id, err := s.dataID(availDataIDHex)
	if err != nil {
		return blocks.Ref{}, err
	}
	cr := &countingReader{r: r}
	ref, err := w.WriteID(ctx, s.placementOf(p), id, cr)
	dw, canDegrade := s.data.(blocks.DegradedWriter)
	if err == nil || !errors.Is(err, blocks.ErrQuorum) || cr.n > 0 || !canDegrade || !mayDegrade {
		return ref, err
	}
	// Not a byte sent: too few of the layout's drives are online.
	if id, err = s.dataID(degradedIDHex); err != nil {
		return blocks.Ref{}, err
	}
	ref, err = dw.WriteDegraded(ctx, s.placementOf(p), id, r)
	if err != nil {
		return blocks.Ref{}, err
	}
	if err := s.noteDegraded(ctx, base, key, ref); err != nil {
		s.deleteData(ctx, ref)
		return blocks.Ref{}, err
	}
	return ref, nil
}

func (s *Service) dataID(hexLen int) (string, error) {
	b := make([]byte, hexLen/2)
	if _, err := io.ReadFull(s.cfg.Rand, b); err != nil {
		return "", fmt.Errorf("objects: data id: %w", err)
	}
	return hex.EncodeToString(b), nil
}

// countingReader counts what was read through it.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}
