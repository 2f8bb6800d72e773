package objects

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"time"

	"github.com/redoubt-io/redoubt/internal/blocks"
	"github.com/redoubt-io/redoubt/internal/checksum"
	"github.com/redoubt-io/redoubt/internal/hlc"
	"github.com/redoubt-io/redoubt/internal/meta"
	"github.com/redoubt-io/redoubt/internal/vset"
)

func msTime(ms int64) time.Time { return time.UnixMilli(ms).UTC() }

// ingestOpts says how to take in one body: an object or a part.
type ingestOpts struct {
	size       int64 // declared length, -1 if unknown
	max        int64
	contentMD5 []byte
	expected   Checksums
	alg        string
	// also is computed as well, unasked: the default checksum of parts
	// of an upload created without an algorithm.
	also    checksum.Algorithm
	trailer func() Checksums
	inline  bool // may be kept in metadata
	// partition is the key's metadata partition; the data path places
	// the shards by it.
	partition meta.Partition
	// available: the body is an available bucket's, written without a
	// write intent (writeAvailData), of key in bucket.
	available   bool
	bucket, key string
}

// ingested is a body taken in: stored (ref) or held (inline), with its
// digests verified against what the client declared.
type ingested struct {
	size      int64
	md5       []byte
	checksums Checksums
	inline    []byte
	ref       blocks.Ref // ID "" when inline
	// intent is the revision of ref's write intent (0: none); the commit
	// naming ref claims it (see intent.go).
	intent uint64
}

func (in *ingested) etag() string { return hex.EncodeToString(in.md5) }

// bodyReader hashes and counts a body as the data store consumes it, and
// turns a short or oversized body into the matching API error.
type bodyReader struct {
	r     io.Reader
	src   io.Reader // the body itself, beneath the length limit in r
	n     int64
	size  int64
	max   int64
	md5   hash.Hash
	algs  []checksum.Algorithm
	sums  []hash.Hash
	err   error
	atEOF bool
	// pipelined hashes the body on a goroutine of its own (see
	// hashPipe); set for bodies large enough to be worth it.
	pipelined bool
	pipe      *hashPipe
}

// hash feeds p to every digest, directly or through the pipe.
func (b *bodyReader) hash(p []byte) {
	if b.pipelined {
		if b.pipe == nil {
			b.pipe = newHashPipe(append([]hash.Hash{b.md5}, b.sums...))
		}
		b.pipe.write(p)
		return
	}
	b.md5.Write(p)
	for _, h := range b.sums {
		h.Write(p)
	}
}

// finish waits until every byte read so far is hashed. Call it before
// reading the digests, and on every return path (it is idempotent).
func (b *bodyReader) finish() {
	if b.pipe != nil {
		b.pipe.finish()
	}
}

// Pipelined hashing: MD5 runs at well under 1 GB/s per core and cannot be
// split within one stream, so hashing a large body on the goroutine that
// also reads, codes and hands out its stripes made it the bound of a single
// PUT. The pipe copies what was read (memmove is ten times faster than MD5)
// into buffers that a goroutine of the body's own hashes, so the digests of
// one stripe are computed while the next is read and coded. Memory per body:
// at most hashPipeBufs buffers of hashPipeBuf bytes.
const (
	pipelineMin  = 1 << 20
	hashPipeBuf  = 1 << 20
	hashPipeBufs = 4
)

type hashPipe struct {
	hs       []hash.Hash
	stage    []byte
	made     int
	full     chan []byte // to the hashing goroutine, closed by finish
	free     chan []byte // back from it
	done     chan struct{}
	finished bool
}

func newHashPipe(hs []hash.Hash) *hashPipe {
	p := &hashPipe{hs: hs, full: make(chan []byte, hashPipeBufs),
		free: make(chan []byte, hashPipeBufs), done: make(chan struct{})}
	go func() {
		defer close(p.done)
		for buf := range p.full {
			for _, h := range p.hs {
				h.Write(buf)
			}
			p.free <- buf[:0]
		}
	}()
	return p
}

func (p *hashPipe) write(b []byte) {
	for len(b) > 0 {
		if p.stage == nil {
			if p.made < hashPipeBufs {
				p.made++
				p.stage = make([]byte, 0, hashPipeBuf)
			} else {
				p.stage = <-p.free
			}
		}
		c := copy(p.stage[len(p.stage):cap(p.stage)], b)
		p.stage = p.stage[:len(p.stage)+c]
		b = b[c:]
		if len(p.stage) == cap(p.stage) {
			p.full <- p.stage
			p.stage = nil
		}
	}
}

func (p *hashPipe) finish() {
	if p.finished {
		return
	}
	p.finished = true
	if len(p.stage) > 0 {
		p.full <- p.stage
		p.stage = nil
	}
	close(p.full)
	<-p.done
}

func (b *bodyReader) Read(p []byte) (int, error) {
	if b.err != nil {
		return 0, b.err
	}
	n, err := b.r.Read(p)
	if n > 0 {
		b.hash(p[:n])
		b.n += int64(n)
		if b.n > b.max {
			b.err = fmt.Errorf("%w: more than %d bytes", ErrEntityTooLarge, b.max)
			return 0, b.err
		}
	}
	if err == io.EOF {
		if b.size >= 0 && b.n < b.size {
			b.err = fmt.Errorf("%w: got %d of %d bytes", ErrIncompleteBody, b.n, b.size)
			return n, b.err
		}
		// The limit ended the body; the body itself must end here too.
		// Reading it to its end is what makes a decoding body check what
		// comes last: chunk signatures, the payload hash, the trailers.
		if b.src != nil {
			var one [1]byte
			m, serr := io.ReadFull(b.src, one[:])
			switch {
			case m > 0:
				b.err = fmt.Errorf("%w: body longer than its declared %d bytes", ErrInvalidArgument, b.size)
			case serr != io.EOF && serr != io.ErrUnexpectedEOF:
				b.err = serr
			}
			if b.err != nil {
				return n, b.err
			}
		}
		b.atEOF = true
	} else if err != nil {
		b.err = err
	}
	return n, err
}

// checksumAlg returns the single algorithm c carries a value for, if any.
func checksumAlg(c Checksums) checksum.Algorithm {
	for _, a := range checksum.All {
		if *c.Field(a) != "" {
			return a
		}
	}
	return ""
}

func (s *Service) ingest(ctx context.Context, body io.Reader, o ingestOpts) (ingested, error) {
	if o.size > o.max {
		return ingested{}, fmt.Errorf("%w: %d bytes, more than %d", ErrEntityTooLarge, o.size, o.max)
	}
	if o.contentMD5 != nil && len(o.contentMD5) != md5.Size {
		return ingested{}, fmt.Errorf("%w: content-md5 of %d bytes", ErrBadDigest, len(o.contentMD5))
	}
	br := &bodyReader{size: o.size, max: o.max, md5: md5.New(),
		pipelined: o.size < 0 || o.size >= pipelineMin}
	defer br.finish()
	if body == nil {
		body = bytes.NewReader(nil)
	}
	if o.size >= 0 {
		br.r, br.src = io.LimitReader(body, o.size), body
	} else {
		br.r = io.LimitReader(body, o.max+1)
	}
	want := map[checksum.Algorithm]bool{}
	if o.alg != "" {
		a, err := checksum.Parse(o.alg)
		if err != nil {
			return ingested{}, fmt.Errorf("%w: %v", ErrInvalidArgument, err)
		}
		want[a] = true
	}
	if o.also != "" {
		want[o.also] = true
	}
	for _, a := range checksum.All {
		if *o.expected.Field(a) != "" {
			want[a] = true
		}
	}
	for _, a := range checksum.All {
		if want[a] {
			br.algs = append(br.algs, a)
			br.sums = append(br.sums, checksum.New(a))
		}
	}

	var in ingested
	stored := false
	if o.inline && (o.size < 0 || o.size <= int64(s.cfg.InlineMax)) {
		// Read up to InlineMax+1 bytes to decide; allocate by what
		// arrives, not by the limit, so small bodies stay cheap: the
		// declared size and room for the read that finds the end, in one
		// buffer, or growing from 512 bytes when no size was declared.
		var b bytes.Buffer
		if o.size >= 0 {
			b.Grow(int(o.size) + bytes.MinRead)
		}
		_, err := b.ReadFrom(io.LimitReader(br, int64(s.cfg.InlineMax)+1))
		if err != nil {
			return ingested{}, s.writeErr(br, err)
		}
		buf := b.Bytes()
		if len(buf) > s.cfg.InlineMax {
			// More than InlineMax: store it, starting with what was read.
			ref, rev, err := s.ingestData(ctx, o, io.MultiReader(bytes.NewReader(buf), br))
			if err != nil {
				return ingested{}, s.writeErr(br, err)
			}
			in.ref, in.intent, stored = ref, rev, true
		} else {
			in.inline = buf
		}
	} else {
		wctx := ctx
		if o.size >= 0 {
			// The data store then takes buffers for this size only.
			wctx = blocks.WithSizeHint(ctx, o.size)
		}
		ref, rev, err := s.ingestData(wctx, o, br)
		if err != nil {
			return ingested{}, s.writeErr(br, err)
		}
		in.ref, in.intent, stored = ref, rev, true
	}
	fail := func(err error) (ingested, error) {
		if stored {
			s.abandon(ctx, o.partition, in.ref, in.intent)
		}
		return ingested{}, err
	}
	if br.err != nil {
		return fail(br.err)
	}
	if !br.atEOF {
		// The data store stopped before the end of the body.
		return fail(fmt.Errorf("objects: data store did not consume the body"))
	}
	in.size = br.n
	if stored && in.ref.Size != in.size {
		return fail(fmt.Errorf("objects: data store stored %d of %d bytes", in.ref.Size, in.size))
	}
	br.finish()
	in.md5 = br.md5.Sum(nil)
	if o.contentMD5 != nil && !bytes.Equal(o.contentMD5, in.md5) {
		return fail(fmt.Errorf("%w: computed %x", ErrBadDigest, in.md5))
	}
	for i, a := range br.algs {
		*in.checksums.Field(a) = checksum.Encode(br.sums[i].Sum(nil))
	}
	if len(br.algs) > 0 {
		in.checksums.Type = "FULL_OBJECT"
	}
	check := func(exp Checksums, from string) error {
		for _, a := range checksum.All {
			e := *exp.Field(a)
			if e == "" {
				continue
			}
			got := *in.checksums.Field(a)
			if got == "" {
				return fmt.Errorf("%w: %s checksum in %s was not announced", ErrInvalidArgument, a, from)
			}
			if got != e {
				return fmt.Errorf("%w: %s %s, computed %s", ErrChecksumMismatch, a, e, got)
			}
		}
		return nil
	}
	if err := check(o.expected, "headers"); err != nil {
		return fail(err)
	}
	if o.trailer != nil {
		if err := check(o.trailer(), "trailer"); err != nil {
			return fail(err)
		}
	}
	return in, nil
}

// ingestData stores a body for ingest: under a write intent, or without
// one in an available bucket.
func (s *Service) ingestData(ctx context.Context, o ingestOpts, r io.Reader) (blocks.Ref, uint64, error) {
	if o.available {
		ref, err := s.writeAvailData(ctx, s.availPartition(o.bucket, o.key), o.key, r)
		return ref, 0, err
	}
	return s.writeData(ctx, o.partition, r)
}

// writeErr prefers the body's own error (short, too large) to the data
// store's report of it.
func (s *Service) writeErr(br *bodyReader, err error) error {
	if br.err != nil {
		return br.err
	}
	if errors.Is(err, blocks.ErrQuorum) {
		// Too few drives to write: the store is unavailable for writes,
		// which the API says the way the metadata does.
		return fmt.Errorf("objects: write data: %w: %w", meta.ErrUnavailable, err)
	}
	return fmt.Errorf("objects: write data: %w", err)
}

// versionBuild makes the record of a new version for one commit attempt,
// with anything else the commit must check and change atomically. id is
// the bucket incarnation the attempt works on.
type versionBuild func(ctx context.Context, id bucketID) (versionRec, meta.Txn, error)

// committed is what commitVersion made.
type committed struct {
	rec versionRec
	// replaced is the data of the version the commit replaced (a null
	// version), which the caller deletes.
	replaced []blocks.Ref
	// versioning is the bucket's state the commit acted on.
	versioning Versioning
	// latest: the version is the key's current one.
	latest bool
	// In an available bucket: the version's ID, and on how many nodes it
	// was durable.
	id     vset.ID
	copies int
}

// commitVersion adds a version to key. It reads the bucket's fence and the
// key's head in one view (readView), checks the write conditions against
// the head, and commits conditionally on both revisions, retrying when
// another write came between. The new version is versioned or the null
// version as the fence says, and is the key's latest, except for a write
// that straddled a configuration change (ob was read by the operation
// itself under an older epoch than the fence's, and the write has no
// condition): it is ordered before the versions committed under the newer
// configuration (placeBelow), as a write issued before the change.
func (s *Service) commitVersion(ctx context.Context, ob *opBucket, key string, ifMatch, ifNoneMatch string, build versionBuild) (committed, error) {
	if ob.available() {
		return s.commitAvailable(ctx, ob, key, ifMatch, ifNoneMatch, build)
	}
	p := s.partition(ob.name, key)
	// The first round reads from a replica, which may be a little behind:
	// the commit is conditional on the fence's and the head's revisions,
	// so an old view only costs a conflict. Every later round, and any
	// answer that rests on what the view says (a failed precondition, a
	// write ordered below newer ones), reads linearizably.
	stale := true
	for attempt := 0; attempt < maxAttempts; attempt++ {
		f, frev, items, at, err := s.readView(ctx, p, ob, func(id bucketID) []meta.Read { return []meta.Read{meta.Get(headKey(id, key))} }, meta.ReadOptions{Stale: stale})
		if err != nil {
			return committed{}, err
		}
		id := ob.rec.ID
		h, rev, err := decodeHeadItem(items[0], key)
		if err != nil {
			return committed{}, err
		}
		exists := rev != 0
		current := exists && !h.DeleteMarker
		var failed error
		switch {
		case ifNoneMatch != "" && current && etagMatches(ifNoneMatch, h.ETag):
			failed = fmt.Errorf("%w: %q exists", ErrPreconditionFailed, key)
		case ifMatch != "" && !current:
			failed = fmt.Errorf("%w: %q (if-match)", ErrNoSuchKey, key)
		case ifMatch != "" && !etagMatches(ifMatch, h.ETag):
			failed = fmt.Errorf("%w: etag of %q is not %s", ErrPreconditionFailed, key, ifMatch)
		}
		straddled := ob.fresh && ob.rec.Epoch < f.Epoch && ifMatch == "" && ifNoneMatch == "" && exists
		if stale && (failed != nil || straddled) {
			stale = false
			continue
		}
		if failed != nil {
			return committed{}, failed
		}
		rec, extra, err := build(ctx, id)
		if err != nil {
			return committed{}, err
		}
		rec.Null = f.Versioning != Enabled
		rec.Versioned = f.Versioning != Unversioned
		rec.Epoch = f.Epoch
		txn := meta.Txn{
			Conds:   append([]meta.Cond{{Key: fenceKey(id), Rev: frev}, {Key: headKey(id, key), Rev: rev}}, extra.Conds...),
			Puts:    extra.Puts,
			Deletes: extra.Deletes,
		}
		c := committed{versioning: f.Versioning}
		placed := false
		if straddled {
			if placed, err = s.placeBelow(ctx, p, id, key, ob.rec.Epoch, h, at, &rec, &txn, &c); err != nil {
				return committed{}, err
			}
		}
		if !placed {
			rec.TS = s.nextTS(h, exists)
			nh := rec.head()
			nh.HasNull, nh.NullTS = h.HasNull, h.NullTS
			txn.Puts = append(txn.Puts, meta.KV{Key: versionKey(id, key, rec.TS), Value: rec.encode()})
			countVersion(&txn, id, &rec, 1)
			if rec.Null {
				if h.HasNull {
					if err := s.replaceNull(ctx, p, id, key, h.NullTS, at, &txn, &c); err != nil {
						return committed{}, err
					}
				}
				nh.HasNull, nh.NullTS = true, rec.TS
			}
			txn.Puts = append(txn.Puts, meta.KV{Key: headKey(id, key), Value: nh.encode()})
			c.latest = true
		}
		if _, err := s.md.Commit(ctx, p, txn); err != nil {
			if isConflict(err) {
				stale = false
				continue
			}
			return committed{}, metaErr("commit version", err)
		}
		c.rec = rec
		return c, nil
	}
	return committed{}, fmt.Errorf("%w: %q", ErrConditionalConflict, key)
}

// decodeHeadItem decodes a head read by readView; rev 0 and a zero head
// mean the key has no versions.
func decodeHeadItem(it meta.Item, key string) (headRec, uint64, error) {
	if it.Rev == 0 {
		return headRec{}, 0, nil
	}
	h, err := decodeHead(it.Value)
	if err != nil {
		return headRec{}, 0, fmt.Errorf("head of %q: %w", key, err)
	}
	return h, it.Rev, nil
}

// replaceNull adds to txn the deletion of key's null version (at ts),
// conditional on the version as read, and notes its data as replaced.
func (s *Service) replaceNull(ctx context.Context, p meta.Partition, id bucketID, key string, ts hlc.Timestamp, at uint64, txn *meta.Txn, c *committed) error {
	old, vrev, ok, err := s.getVersion(ctx, p, id, key, ts, at)
	if err != nil {
		return err
	}
	vk := versionKey(id, key, ts)
	if ok {
		// Relocation rewrites a version without its head: the Cond makes
		// sure the data unreferenced is the data the version names now.
		txn.Conds = append(txn.Conds, meta.Cond{Key: vk, Rev: vrev})
		c.replaced = old.refs()
		unref(txn, c.replaced...)
		countVersion(txn, id, &old, -1)
	}
	txn.Deletes = append(txn.Deletes, vk)
	return nil
}

// placeBelow orders a write issued under epoch e, committing under a
// later one, before every version committed under a later epoch: rec gets
// the greatest timestamp before the oldest of those, provided it is after
// every version of epoch e or earlier, and txn adds it without changing
// the key's latest version. A null version replaces an older null
// version as usual. placed is false when no version of a later epoch
// exists, no timestamp lies between, or the write is a null version and
// the key's null version is newer than it would be; the write is then
// ordered as the latest, which linearizability allows too: it was
// concurrent with every write of the later epochs, all of which began
// after it read the older configuration.
func (s *Service) placeBelow(ctx context.Context, p meta.Partition, id bucketID, key string, e uint64, h headRec, at uint64, rec *versionRec, txn *meta.Txn, c *committed) (placed bool, err error) {
	var hi, lo *versionRec
	var derr error
	pre := versionPrefix(id, key)
	err = s.md.Scan(ctx, p, pre, prefixEnd(pre), func(k []byte, it meta.Item) bool {
		_, ts, ok := splitVersionKey(k)
		if !ok {
			derr = errCorrupt
			return false
		}
		v, err := decodeVersion(ts, it.Value)
		if err != nil {
			derr = err
			return false
		}
		if v.Epoch > e {
			hi = &v
			return true
		}
		lo = &v
		return false
	})
	if err != nil {
		return false, metaErr("scan versions", err)
	}
	if derr != nil {
		return false, fmt.Errorf("versions of %q: %w", key, derr)
	}
	if hi == nil {
		return false, nil
	}
	ts, ok := hi.TS.Prev()
	if !ok || (lo != nil && !lo.TS.Less(ts)) {
		return false, nil
	}
	nh := h
	if rec.Null {
		if h.HasNull {
			if ts.Less(h.NullTS) {
				return false, nil
			}
			if err := s.replaceNull(ctx, p, id, key, h.NullTS, at, txn, c); err != nil {
				return false, err
			}
		}
		nh.HasNull, nh.NullTS = true, ts
	}
	rec.TS = ts
	txn.Puts = append(txn.Puts,
		meta.KV{Key: versionKey(id, key, ts), Value: rec.encode()},
		meta.KV{Key: headKey(id, key), Value: nh.encode()})
	countVersion(txn, id, rec, 1)
	return true, nil
}

func (s *Service) PutObject(ctx context.Context, bucket, key string, body io.Reader, size int64, opts PutOptions) (ObjectInfo, error) {
	ob, err := s.openBucket(ctx, bucket)
	if err != nil {
		return ObjectInfo{}, err
	}
	if err := ValidKey(key); err != nil {
		return ObjectInfo{}, err
	}
	return s.put(ctx, ob, key, body, size, opts)
}

func (s *Service) put(ctx context.Context, ob *opBucket, key string, body io.Reader, size int64, opts PutOptions) (ObjectInfo, error) {
	p := s.partition(ob.name, key)
	in, err := s.ingest(ctx, body, ingestOpts{
		size:       size,
		max:        s.cfg.MaxObjectSize,
		contentMD5: opts.ContentMD5,
		expected:   opts.Checksums,
		alg:        opts.ChecksumAlgorithm,
		trailer:    opts.Trailer,
		inline:     true,
		partition:  p,
		available:  ob.available(),
		bucket:     ob.name,
		key:        key,
	})
	if err != nil {
		return ObjectInfo{}, err
	}
	rec := versionRec{
		Size:        in.size,
		ETag:        in.etag(),
		ContentType: opts.ContentType,
		Headers:     cloneMap(opts.Headers),
		UserMeta:    cloneMap(opts.UserMeta),
		Checksums:   in.checksums,
		Inline:      in.inline,
	}
	if in.ref.ID != "" {
		rec.Parts = []partRec{{Number: 1, Size: in.size, ETag: rec.ETag, Ref: in.ref}}
	}
	rounds := 0
	c, err := s.commitVersion(ctx, ob, key, opts.IfMatch, opts.IfNoneMatch,
		func(ctx context.Context, _ bucketID) (versionRec, meta.Txn, error) {
			var txn meta.Txn
			if rounds++; rounds > 1 {
				// A lost intent fails every round: stop at once.
				if err := s.checkIntent(ctx, p, in.ref, in.intent); err != nil {
					return versionRec{}, txn, err
				}
			}
			claim(&txn, in.ref, in.intent)
			return rec, txn, nil
		})
	if err != nil {
		s.abandon(ctx, p, in.ref, in.intent)
		return ObjectInfo{}, err
	}
	s.endWrite(in.ref.ID)
	s.deleteData(ctx, c.replaced...)
	return c.info(ob, key), nil
}

// info is the ObjectInfo of the version c committed.
func (c *committed) info(ob *opBucket, key string) ObjectInfo {
	oi := c.rec.info(ob.name, key, c.versioning)
	oi.IsLatest = c.latest
	if ob.available() {
		oi.VersionID, oi.Copies = availVersionID(c.id), c.copies
	}
	return oi
}
