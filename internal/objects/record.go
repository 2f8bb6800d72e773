package objects

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"sort"
	"time"

	"github.com/redoubt-io/redoubt/internal/blocks"
	"github.com/redoubt-io/redoubt/internal/hlc"
)

// Records in the metadata store start with recordVersion. A reader meeting
// another version refuses the record rather than guess at its layout.
//
// Layouts (v1), in field order; u = uvarint, i = varint, s = uvarint length
// then bytes, m = u count then s key, s value pairs in key order:
//
//	bucket:  ver, id[8], created i (unix ms), versioning u, then (absent in
//	         records written before fences) epoch u, flags u (1: fenced),
//	         pending change kind u, pending versioning u, then (absent in a
//	         strong bucket's record) consistency u, then (absent unless one is
//	         set) write copies u (0: the default), conflict retention u (seconds,
//	         0: none)
//	fence:   ver, epoch u, versioning u, flags u (1: frozen)
//	head:    ver, flags u, latest[12], null[12] if flagHasNull, size i, etag s, modified i,
//	         checksum-alg s, checksum s, checksum-type s if flagHasChecksum
//	version: ver, flags u, size i, etag s, content-type s, headers m, user-meta m,
//	         checksums 6×s, inline s, parts u then part×, epoch u if flagHasEpoch
//	         (flags: 1 delete marker, 2 null, 4 multipart, 32 has epoch,
//	         64 committed while the bucket was versioned)
//	part:    number u, size i, etag s, modified i, checksum-alg s, checksum s, ref
//	ref:     id s, size i, k u, m u, mirror u, chunk i, drives u then s×
//	upload:  ver, initiated i, content-type s, headers m, user-meta m, checksum-alg s,
//	         checksum-type s (absent in records written before it existed:
//	         COMPOSITE when checksum-alg is set)
//	pending part: ver, part, default-crc s (present only when set)
const recordVersion = 1

var errCorrupt = errors.New("objects: corrupt metadata record")

const (
	flagDeleteMarker = 1 << iota
	flagNull
	flagMultipart
	flagHasNull
	flagHasChecksum
	flagHasEpoch
	flagVersioned
)

type enc struct{ b []byte }

func (e *enc) u(v uint64) { e.b = binary.AppendUvarint(e.b, v) }
func (e *enc) i(v int64)  { e.b = binary.AppendVarint(e.b, v) }
func (e *enc) s(v string) { e.u(uint64(len(v))); e.b = append(e.b, v...) }
func (e *enc) bs(v []byte) {
	e.u(uint64(len(v)))
	e.b = append(e.b, v...)
}
func (e *enc) m(v map[string]string) {
	keys := make([]string, 0, len(v))
	for k := range v {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	e.u(uint64(len(keys)))
	for _, k := range keys {
		e.s(k)
		e.s(v[k])
	}
}
func (e *enc) ts(t hlc.Timestamp) { e.b = t.AppendBinary(e.b) }

type dec struct {
	b   []byte
	err error
}

func (d *dec) fail() {
	if d.err == nil {
		d.err = errCorrupt
	}
	d.b = nil
}

func (d *dec) u() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *dec) i() int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *dec) raw(n uint64) []byte {
	if n > uint64(len(d.b)) {
		d.fail()
		return nil
	}
	v := d.b[:n:n]
	d.b = d.b[n:]
	return v
}

func (d *dec) s() string { return string(d.raw(d.u())) }
func (d *dec) count() int {
	n := d.u()
	// Every counted element takes at least one byte, which bounds
	// allocations made from hostile counts.
	if n > uint64(len(d.b)) {
		d.fail()
		return 0
	}
	return int(n)
}

func (d *dec) m() map[string]string {
	n := d.count()
	if n == 0 {
		return nil
	}
	v := make(map[string]string, n)
	for j := 0; j < n && d.err == nil; j++ {
		k := d.s()
		v[k] = d.s()
	}
	return v
}

func (d *dec) ts() hlc.Timestamp {
	b := d.raw(hlc.BinaryLen)
	if d.err != nil {
		return hlc.Timestamp{}
	}
	t, err := hlc.FromBinary(b)
	if err != nil {
		d.fail()
	}
	return t
}

func (d *dec) version() {
	if len(d.b) == 0 || d.b[0] != recordVersion {
		if d.err == nil {
			if len(d.b) == 0 {
				d.err = errCorrupt
			} else {
				d.err = fmt.Errorf("%w: record version %d", errCorrupt, d.b[0])
			}
		}
		d.b = nil
		return
	}
	d.b = d.b[1:]
}

func (d *dec) done() error {
	if d.err == nil && len(d.b) != 0 {
		d.err = fmt.Errorf("%w: %d trailing bytes", errCorrupt, len(d.b))
	}
	return d.err
}

// bucketRec is the record of a bucket in meta.System. ID names the bucket's
// incarnation: a bucket deleted and created again gets a new ID. Epoch
// counts the configuration changes made to it; Pending names a change
// under way (see fence.go), which makes epoch Epoch+1. Fenced says every
// partition holds the bucket's fence: records written before fences
// existed lack them until the bucket is first used.
type bucketRec struct {
	ID         bucketID
	Created    int64 // unix ms
	Versioning Versioning
	Epoch      uint64
	Fenced     bool
	// Counted: the bucket's partitions count its objects and bytes
	// (countKey) since it was created; a bucket from before counters is
	// counted by scanning its versions.
	Counted bool
	Pending bucketChange
	// Config is what the bucket was created with, for its life. Absent
	// (a strong bucket) in records written before buckets had one.
	Config BucketConfig
	// VersioningAt, in a bucket replicated to sites, is when (unix ms,
	// on the clock of the site where it was made) its versioning state
	// was last set: of two sites' states, the later is the bucket's
	// (AdoptBucket). 0 elsewhere.
	VersioningAt int64
}

// bucketChange is a configuration change under way.
type bucketChange struct {
	Kind       changeKind
	Versioning Versioning // changeVersioning: the new state
	At         int64      // changeVersioning: the new VersioningAt
}

type changeKind uint8

const (
	changeNone changeKind = iota
	changeVersioning
	changeDelete
)

func (r *bucketRec) encode() []byte {
	e := enc{b: make([]byte, 0, 32)}
	e.b = append(e.b, recordVersion)
	e.b = append(e.b, r.ID[:]...)
	e.i(r.Created)
	e.u(uint64(r.Versioning))
	e.u(r.Epoch)
	var f uint64
	if r.Fenced {
		f |= 1
	}
	if r.Counted {
		f |= 2
	}
	e.u(f)
	e.u(uint64(r.Pending.Kind))
	e.u(uint64(r.Pending.Versioning))
	// Trailing fields, each group written when it or a later one is set,
	// so that records without them decode as before.
	hasAt := r.VersioningAt != 0 || r.Pending.At != 0
	hasReplicate := r.Config.Replicate || hasAt
	hasCopies := r.Config.WriteCopies != 0 || r.Config.ConflictRetention != 0 || hasReplicate
	if r.Config != (BucketConfig{}) || hasCopies {
		e.u(uint64(r.Config.Consistency))
	}
	if hasCopies {
		e.u(uint64(r.Config.WriteCopies))
		e.u(uint64(r.Config.ConflictRetention / time.Second))
	}
	if hasReplicate {
		if r.Config.Replicate {
			e.u(1)
		} else {
			e.u(0)
		}
	}
	if hasAt {
		e.u(uint64(r.VersioningAt))
		e.u(uint64(r.Pending.At))
	}
	return e.b
}

func decodeBucket(b []byte) (bucketRec, error) {
	d := dec{b: b}
	d.version()
	var r bucketRec
	copy(r.ID[:], d.raw(uint64(len(r.ID))))
	r.Created = d.i()
	r.Versioning = d.versioning()
	if d.err == nil && len(d.b) > 0 { // absent in records written before fences
		r.Epoch = d.u()
		f := d.u()
		if f > 3 {
			d.fail()
		}
		r.Fenced, r.Counted = f&1 != 0, f&2 != 0
		k := d.u()
		if k > uint64(changeDelete) {
			d.fail()
		}
		r.Pending = bucketChange{Kind: changeKind(k), Versioning: d.versioning()}
	}
	if d.err == nil && len(d.b) > 0 { // absent in strong buckets' records
		c := d.u()
		if c > uint64(Available) {
			d.fail()
		}
		r.Config.Consistency = Consistency(c)
	}
	if d.err == nil && len(d.b) > 0 { // absent unless set
		n := d.u()
		if n > MaxWriteCopies {
			d.fail()
		}
		r.Config.WriteCopies = int(n)
		secs := d.u()
		if secs > uint64(maxConflictRetention/time.Second) {
			d.fail()
		}
		r.Config.ConflictRetention = time.Duration(secs) * time.Second
	}
	if d.err == nil && len(d.b) > 0 { // absent unless replicated to sites
		f := d.u()
		if f > 1 {
			d.fail()
		}
		r.Config.Replicate = f == 1
	}
	if d.err == nil && len(d.b) > 0 { // absent unless versioning was set in a replicated bucket
		at, pat := d.u(), d.u()
		if at > math.MaxInt64 || pat > math.MaxInt64 {
			d.fail()
		}
		r.VersioningAt, r.Pending.At = int64(at), int64(pat)
	}
	return r, d.done()
}

func (d *dec) versioning() Versioning {
	v := d.u()
	if v > uint64(Suspended) {
		d.fail()
	}
	return Versioning(v)
}

// fenceRec is a bucket's state as the records of one partition see it
// (see fence.go): the configuration epoch, the versioning state of that
// epoch, and whether a change to a later epoch is under way (Frozen, with
// Epoch already the new one and Versioning still the old state).
type fenceRec struct {
	Epoch      uint64
	Versioning Versioning
	Frozen     bool
}

func (r *fenceRec) encode() []byte {
	e := enc{b: make([]byte, 0, 8)}
	e.b = append(e.b, recordVersion)
	e.u(r.Epoch)
	e.u(uint64(r.Versioning))
	var f uint64
	if r.Frozen {
		f |= 1
	}
	e.u(f)
	return e.b
}

func decodeFence(b []byte) (fenceRec, error) {
	d := dec{b: b}
	d.version()
	var r fenceRec
	r.Epoch = d.u()
	r.Versioning = d.versioning()
	f := d.u()
	if f > 1 {
		d.fail()
	}
	r.Frozen = f&1 != 0
	return r, d.done()
}

// headRec summarises a key: its latest version, and where its null
// version is. Every change to a key's versions rewrites its head, so a
// Cond on the head's revision guards a decision about the whole key.
type headRec struct {
	Latest       hlc.Timestamp
	DeleteMarker bool
	Null         bool // the latest version is the null version
	HasNull      bool
	NullTS       hlc.Timestamp
	Size         int64
	ETag         string // unquoted
	Modified     int64  // unix ms
	// ChecksumAlg, Checksum and ChecksumType copy the latest version's
	// stored checksum (one algorithm: the one it was written with), so
	// that listings report it without reading versions. Heads written
	// before they existed have none.
	ChecksumAlg  string
	Checksum     string // base64
	ChecksumType string
}

func (r *headRec) encode() []byte {
	e := enc{b: make([]byte, 0, 64)}
	e.b = append(e.b, recordVersion)
	var f uint64
	if r.DeleteMarker {
		f |= flagDeleteMarker
	}
	if r.Null {
		f |= flagNull
	}
	if r.HasNull {
		f |= flagHasNull
	}
	if r.ChecksumAlg != "" {
		f |= flagHasChecksum
	}
	e.u(f)
	e.ts(r.Latest)
	if r.HasNull {
		e.ts(r.NullTS)
	}
	e.i(r.Size)
	e.s(r.ETag)
	e.i(r.Modified)
	if r.ChecksumAlg != "" {
		e.s(r.ChecksumAlg)
		e.s(r.Checksum)
		e.s(r.ChecksumType)
	}
	return e.b
}

func decodeHead(b []byte) (headRec, error) {
	d := dec{b: b}
	d.version()
	var r headRec
	f := d.u()
	r.DeleteMarker = f&flagDeleteMarker != 0
	r.Null = f&flagNull != 0
	r.HasNull = f&flagHasNull != 0
	r.Latest = d.ts()
	if r.HasNull {
		r.NullTS = d.ts()
	}
	r.Size = d.i()
	r.ETag = d.s()
	r.Modified = d.i()
	if f&flagHasChecksum != 0 {
		r.ChecksumAlg = d.s()
		r.Checksum = d.s()
		r.ChecksumType = d.s()
		if r.ChecksumAlg == "" {
			d.fail()
		}
	}
	return r, d.done()
}

// partRec is one stored part: of a pending upload, or of an object (a
// single PUT stored in the data store is one part numbered 1).
type partRec struct {
	Number      int
	Size        int64
	ETag        string // hex MD5, unquoted
	Modified    int64  // unix ms
	ChecksumAlg string
	Checksum    string // base64
	Ref         blocks.Ref
	// DefaultCRC is kept in pending parts only: the CRC64NVME (base64)
	// of a part of an upload created without an algorithm whose own
	// checksum is of another algorithm the client chose.
	DefaultCRC string
}

func (e *enc) part(p *partRec) {
	e.u(uint64(p.Number))
	e.i(p.Size)
	e.s(p.ETag)
	e.i(p.Modified)
	e.s(p.ChecksumAlg)
	e.s(p.Checksum)
	r := &p.Ref
	e.s(r.ID)
	e.i(r.Size)
	e.u(uint64(r.K))
	e.u(uint64(r.M))
	if r.Mirror {
		e.u(1)
	} else {
		e.u(0)
	}
	e.i(r.ChunkSize)
	e.u(uint64(len(r.Drives)))
	for _, dr := range r.Drives {
		e.s(dr)
	}
}

func (d *dec) part() partRec {
	var p partRec
	n := d.u()
	if n > maxPartNumber {
		d.fail()
	}
	p.Number = int(n)
	p.Size = d.i()
	p.ETag = d.s()
	p.Modified = d.i()
	p.ChecksumAlg = d.s()
	p.Checksum = d.s()
	r := &p.Ref
	r.ID = d.s()
	r.Size = d.i()
	k, m := d.u(), d.u()
	if k > 1<<16 || m > 1<<16 {
		d.fail()
	}
	r.K, r.M = int(k), int(m)
	r.Mirror = d.u() != 0
	r.ChunkSize = d.i()
	nd := d.count()
	if nd > 0 {
		r.Drives = make([]string, 0, nd)
		for j := 0; j < nd && d.err == nil; j++ {
			r.Drives = append(r.Drives, d.s())
		}
	}
	return p
}

func encodePendingPart(p *partRec) []byte {
	e := enc{b: make([]byte, 0, 96)}
	e.b = append(e.b, recordVersion)
	e.part(p)
	if p.DefaultCRC != "" {
		e.s(p.DefaultCRC)
	}
	return e.b
}

func decodePendingPart(b []byte) (partRec, error) {
	d := dec{b: b}
	d.version()
	p := d.part()
	if len(d.b) > 0 {
		if p.DefaultCRC = d.s(); p.DefaultCRC == "" {
			d.fail()
		}
	}
	return p, d.done()
}

// versionRec is one version of an object, or a delete marker. Its
// timestamp is in its key.
type versionRec struct {
	TS           hlc.Timestamp
	DeleteMarker bool
	Null         bool
	Multipart    bool
	Size         int64
	ETag         string // unquoted
	ContentType  string
	Headers      map[string]string
	UserMeta     map[string]string
	Checksums    Checksums
	Inline       []byte
	Parts        []partRec
	// Epoch is the bucket configuration epoch the version was committed
	// under (0 for versions written before epochs existed).
	Epoch uint64
	// Versioned: the bucket was versioned (Enabled or Suspended) when the
	// version was committed, so its null version shows as "null" for
	// good; false also for versions written before the flag existed.
	Versioned bool
}

func (r *versionRec) encode() []byte {
	// Sized for all of it: growing the buffer would copy an inline body.
	c := &r.Checksums
	n := 64 + len(r.ETag) + len(r.ContentType) + len(r.Inline) + len(r.Parts)*96 +
		len(c.CRC32) + len(c.CRC32C) + len(c.CRC64NVME) + len(c.SHA1) + len(c.SHA256) + len(c.Type)
	for _, m := range []map[string]string{r.Headers, r.UserMeta} {
		for k, v := range m {
			n += len(k) + len(v) + 4
		}
	}
	e := enc{b: make([]byte, 0, n)}
	e.b = append(e.b, recordVersion)
	var f uint64
	if r.DeleteMarker {
		f |= flagDeleteMarker
	}
	if r.Null {
		f |= flagNull
	}
	if r.Multipart {
		f |= flagMultipart
	}
	if r.Epoch != 0 {
		f |= flagHasEpoch
	}
	if r.Versioned {
		f |= flagVersioned
	}
	e.u(f)
	e.i(r.Size)
	e.s(r.ETag)
	e.s(r.ContentType)
	e.m(r.Headers)
	e.m(r.UserMeta)
	e.s(c.CRC32)
	e.s(c.CRC32C)
	e.s(c.CRC64NVME)
	e.s(c.SHA1)
	e.s(c.SHA256)
	e.s(c.Type)
	e.bs(r.Inline)
	e.u(uint64(len(r.Parts)))
	for i := range r.Parts {
		e.part(&r.Parts[i])
	}
	if r.Epoch != 0 {
		e.u(r.Epoch)
	}
	return e.b
}

// decodeVersion decodes a version record. The record's inline data
// aliases b, which is the caller's to give up: a 4 KiB object read is
// then copied once (out of the metadata store), not twice.
func decodeVersion(ts hlc.Timestamp, b []byte) (versionRec, error) {
	d := dec{b: b}
	d.version()
	r := versionRec{TS: ts}
	f := d.u()
	r.DeleteMarker = f&flagDeleteMarker != 0
	r.Null = f&flagNull != 0
	r.Multipart = f&flagMultipart != 0
	r.Versioned = f&flagVersioned != 0
	r.Size = d.i()
	r.ETag = d.s()
	r.ContentType = d.s()
	r.Headers = d.m()
	r.UserMeta = d.m()
	c := &r.Checksums
	c.CRC32 = d.s()
	c.CRC32C = d.s()
	c.CRC64NVME = d.s()
	c.SHA1 = d.s()
	c.SHA256 = d.s()
	c.Type = d.s()
	r.Inline = d.raw(d.u())
	if len(r.Inline) == 0 {
		r.Inline = nil
	}
	n := d.count()
	if n > 0 {
		r.Parts = make([]partRec, 0, n)
		for j := 0; j < n && d.err == nil; j++ {
			r.Parts = append(r.Parts, d.part())
		}
	}
	if f&flagHasEpoch != 0 {
		if r.Epoch = d.u(); r.Epoch == 0 {
			d.fail()
		}
	}
	return r, d.done()
}

// uploadRec is an in-progress multipart upload.
type uploadRec struct {
	Initiated   int64 // unix ms
	ContentType string
	Headers     map[string]string
	UserMeta    map[string]string
	ChecksumAlg string
	// ChecksumType is "COMPOSITE" or "FULL_OBJECT" when ChecksumAlg is
	// set, else "".
	ChecksumType string
}

func (r *uploadRec) encode() []byte {
	e := enc{b: make([]byte, 0, 48)}
	e.b = append(e.b, recordVersion)
	e.i(r.Initiated)
	e.s(r.ContentType)
	e.m(r.Headers)
	e.m(r.UserMeta)
	e.s(r.ChecksumAlg)
	e.s(r.ChecksumType)
	return e.b
}

func decodeUpload(b []byte) (uploadRec, error) {
	d := dec{b: b}
	d.version()
	var r uploadRec
	r.Initiated = d.i()
	r.ContentType = d.s()
	r.Headers = d.m()
	r.UserMeta = d.m()
	r.ChecksumAlg = d.s()
	if len(d.b) > 0 {
		r.ChecksumType = d.s()
	} else if r.ChecksumAlg != "" {
		r.ChecksumType = "COMPOSITE"
	}
	return r, d.done()
}
