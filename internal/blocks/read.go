package blocks

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/redoubt-io/redoubt/internal/shardrpc"
	"github.com/redoubt-io/redoubt/internal/store"
)

// shardState is what one reader knows of one shard.
type shardState int8

const (
	untried shardState = iota
	good
	bad
	// offline: the drive is believed down (or unknown), so the shard is
	// tried only when the others are not enough.
	offline
)

// shardSource opens the shards of one ref on demand and remembers which are
// bad. Used by one goroutine at a time (the fetching goroutine), though
// the readers it holds are read concurrently.
type shardSource struct {
	s       *Set
	ref     Ref
	g       geometry
	state   []shardState
	readers []shardrpc.ShardReader
	noted   bool // the ref was noted for repair (or is being repaired)
}

func newShardSource(s *Set, ref Ref, g geometry) *shardSource {
	n := ref.K + ref.M
	return &shardSource{s: s, ref: ref, g: g, state: make([]shardState, n), readers: make([]shardrpc.ShardReader, n)}
}

func (src *shardSource) close() {
	for _, r := range src.readers {
		if r != nil {
			r.Close()
		}
	}
}

// open returns the reader of shard i, or nil when the shard is bad. A
// shard on a drive believed offline is tried only with force (the last
// resort): an unreachable node can cost a timeout per call.
func (src *shardSource) open(ctx context.Context, i int, force bool) shardrpc.ShardReader {
	switch src.state[i] {
	case good:
		return src.readers[i]
	case bad:
		return nil
	case offline:
		if !force {
			return nil
		}
	}
	d, ok := src.s.drive(src.ref.Drives[i])
	if !ok {
		src.markBad(i, fmt.Errorf("drive %s unknown to this node: %w", src.ref.Drives[i], store.ErrDriveFailed))
		return nil
	}
	if src.state[i] == untried && !force && !d.Online() {
		src.state[i] = offline
		src.noteRepair()
		return nil
	}
	r, err := d.OpenShard(ctx, store.Name{ID: src.ref.ID, Shard: i})
	if err == nil && r.Size() != src.g.shardLen(src.ref.Size) {
		r.Close()
		err = fmt.Errorf("shard holds %d bytes, want %d: %w", r.Size(), src.g.shardLen(src.ref.Size), store.ErrCorrupt)
	}
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		src.markBad(i, err)
		return nil
	}
	src.state[i], src.readers[i] = good, r
	return r
}

// noteRepair notes the ref for repair once per reader.
func (src *shardSource) noteRepair() {
	if !src.noted {
		src.noted = true
		src.s.noteRepair(src.ref)
	}
}

// markBad records a shard as unusable, logs corruption, and notes the ref
// for repair once per reader.
func (src *shardSource) markBad(i int, err error) {
	src.state[i] = bad
	if r := src.readers[i]; r != nil {
		r.Close()
		src.readers[i] = nil
	}
	driveID := src.ref.Drives[i]
	switch {
	case errors.Is(err, store.ErrMisplaced):
		// Not rot: some file was put where this shard belongs (a
		// misdirected write or rename, a restored backup).
		src.s.corruptShards.Add(1)
		src.s.log.Warn("shard file belongs to another shard; reconstructing from the others", "ref", src.ref.ID, "shard", i, "drive", driveID, "err", err)
	case errors.Is(err, store.ErrCorrupt):
		src.s.corruptShards.Add(1)
		src.s.log.Warn("corrupt shard; reconstructing from the others", "ref", src.ref.ID, "shard", i, "drive", driveID, "err", err)
	case errors.Is(err, store.ErrDriveFailed):
		// The drive logged its failure once; per-request logs would flood.
	default:
		src.s.log.Warn("shard unreadable; reconstructing from the others", "ref", src.ref.ID, "shard", i, "drive", driveID, "err", err)
	}
	src.noteRepair()
}

// fetch reads chunk c into buf (capacity StripeSize of a full chunk) and
// returns its bytes, reading data shards first and reconstructing from
// parity only when one is missing or bad. With all set, it also fills every
// shard (for repair); shards[i] is then shard i of the chunk.
//
// Only bytes [lo, hi) of the returned chunk are wanted; when that is less
// than the chunk, the overlapping parts of the data shards are read alone
// if they are healthy, and the rest of the returned slice is undefined.
func (src *shardSource) fetch(ctx context.Context, c int64, buf []byte, shards [][]byte, all bool, lo, hi int) ([]byte, error) {
	g := src.g
	if chunkLen := int(g.chunkLen(src.ref.Size, c)); !all && (lo > 0 || hi < chunkLen) && src.fetchPart(ctx, c, buf, lo, hi) {
		return buf[:chunkLen], nil
	}
	k, n := src.ref.K, src.ref.K+src.ref.M
	chunkLen := int(g.chunkLen(src.ref.Size, c))
	ss := g.coder.ShardSize(chunkLen)
	off := c * g.shardFull
	mirror := src.ref.Mirror || n == 1
	for i := range shards {
		shards[i] = nil
	}
	slot := func(i int) []byte {
		if mirror {
			return buf[0:ss:ss]
		}
		return buf[i*ss : (i+1)*ss : (i+1)*ss]
	}
	have := 0
	next := 0
	for have < k {
		// Choose the next shards to try, data shards first.
		var try []int
		for ; next < n && len(try) < k-have; next++ {
			if src.open(ctx, next, false) != nil {
				try = append(try, next)
			}
		}
		if len(try) == 0 {
			// Too few shards on drives known up: try those believed down,
			// which may be back.
			for i := 0; i < n && len(try) < k-have; i++ {
				if src.state[i] == offline && src.open(ctx, i, true) != nil {
					try = append(try, i)
				}
			}
		}
		if len(try) == 0 {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			return nil, fmt.Errorf("%w: ref %s chunk %d: %d of %d shards readable, need %d", ErrUnreadable, src.ref.ID, c, have, n, k)
		}
		errs := make([]error, len(try))
		if len(try) == 1 {
			_, errs[0] = src.readers[try[0]].ReadAt(slot(try[0]), off)
		} else {
			var wg sync.WaitGroup
			for j, i := range try {
				r := src.readers[i]
				wg.Go(func() { _, errs[j] = r.ReadAt(slot(i), off) })
			}
			wg.Wait()
		}
		for j, i := range try {
			if errs[j] != nil && !errors.Is(errs[j], io.EOF) {
				if ctx.Err() != nil {
					return nil, ctx.Err()
				}
				src.markBad(i, errs[j])
				continue
			}
			shards[i] = slot(i)
			have++
		}
	}
	if mirror {
		if all {
			for i := range shards {
				shards[i] = buf[0:ss:ss]
			}
		}
		return buf[:chunkLen], nil
	}
	missingData := false
	for i := range n {
		if shards[i] == nil {
			if i < k {
				missingData = true
			}
			shards[i] = slot(i)[:0]
		}
	}
	if missingData || all {
		if err := g.coder.Reconstruct(shards, chunkLen, !all); err != nil {
			return nil, fmt.Errorf("ref %s chunk %d: %w", src.ref.ID, c, err)
		}
	}
	return buf[:chunkLen], nil
}

// fetchPart reads bytes [lo, hi) of chunk c straight from the data shards
// (or one copy) that hold them, into their place in buf. It reports false,
// having marked any shard that failed, when the full path must be taken.
func (src *shardSource) fetchPart(ctx context.Context, c int64, buf []byte, lo, hi int) bool {
	g := src.g
	chunkLen := int(g.chunkLen(src.ref.Size, c))
	ss := g.coder.ShardSize(chunkLen)
	off := c * g.shardFull
	if src.ref.Mirror || src.ref.K+src.ref.M == 1 {
		for i := range src.ref.K + src.ref.M {
			r := src.open(ctx, i, false)
			if r == nil {
				continue
			}
			if _, err := r.ReadAt(buf[lo:hi], off+int64(lo)); err != nil && !errors.Is(err, io.EOF) {
				if ctx.Err() != nil {
					return false
				}
				src.markBad(i, err)
				continue
			}
			return true
		}
		return false
	}
	first, last := lo/ss, (hi-1)/ss
	for i := first; i <= last; i++ {
		if src.open(ctx, i, false) == nil {
			return false
		}
	}
	errs := make([]error, last-first+1)
	read := func(i int) {
		a, b := max(lo, i*ss), min(hi, (i+1)*ss)
		_, errs[i-first] = src.readers[i].ReadAt(buf[a:b], off+int64(a-i*ss))
	}
	if first == last {
		read(first)
	} else {
		var wg sync.WaitGroup
		for i := first; i <= last; i++ {
			wg.Go(func() { read(i) })
		}
		wg.Wait()
	}
	ok := true
	for j, err := range errs {
		if err != nil && !errors.Is(err, io.EOF) {
			ok = false
			if ctx.Err() == nil {
				src.markBad(first+j, err)
			}
		}
	}
	return ok
}

// chunk is one decoded piece handed from the fetcher to the reader.
type chunk struct {
	buf  *[]byte
	data []byte
	err  error
}

// reader streams a byte range of a ref.
type reader struct {
	s      *Set
	cancel context.CancelFunc
	ch     chan chunk
	done   chan struct{}
	cur    chunk
	held   int64 // of the read budget, given back by Close
	closed bool
	err    error
}

// Open implements Store. length < 0 means to the end; a range reaching past
// the end is cut short there. off outside [0, Size] is ErrRange.
func (s *Set) Open(ctx context.Context, ref Ref, off, length int64) (io.ReadCloser, error) {
	g, err := s.geometry(ref)
	if err != nil {
		return nil, err
	}
	if off < 0 || off > ref.Size {
		return nil, fmt.Errorf("blocks: offset %d of %d bytes: %w", off, ref.Size, ErrRange)
	}
	if length < 0 || length > ref.Size-off {
		length = ref.Size - off
	}
	if length == 0 {
		return io.NopCloser(eofReader{}), nil
	}
	// No chunk is longer than the data: small refs take small buffers.
	bufLen := g.coder.StripeSize(int(min(g.stripe, ref.Size)))
	end := off + length
	// A reader holds at most ReadAhead chunks sent, one being fetched and
	// one being read, and takes them all now: it never waits for buffers
	// once open (budget.go).
	chunks := (end-1)/g.stripe - off/g.stripe + 1
	held, err := s.readBudget.take(ctx, min(chunks, int64(s.cfg.ReadAhead+2))*int64(bufLen), s.cfg.BufferWait)
	if err != nil {
		return nil, fmt.Errorf("blocks: read: %w", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	rd := &reader{s: s, cancel: cancel, held: held, ch: make(chan chunk, s.cfg.ReadAhead), done: make(chan struct{})}
	src := newShardSource(s, ref, g)
	go func() {
		defer close(rd.done)
		defer close(rd.ch)
		defer src.close()
		shards := make([][]byte, ref.K+ref.M)
		for c := off / g.stripe; c*g.stripe < end; c++ {
			buf := s.getBuf(bufLen)
			chunkLen := g.chunkLen(ref.Size, c)
			lo, hi := max(off-c*g.stripe, 0), min(end-c*g.stripe, chunkLen)
			data, err := src.fetch(ctx, c, *buf, shards, false, int(lo), int(hi))
			if err == nil {
				data = data[lo:hi]
			}
			select {
			case rd.ch <- chunk{buf: buf, data: data, err: err}:
			case <-ctx.Done():
				s.putBuf(buf)
				return
			}
			if err != nil {
				return
			}
		}
	}()
	// Wait for the first chunk, so that data that cannot be read fails
	// Open, before a front end has sent a status line and headers, rather
	// than the first Read in the middle of a 200 response.
	select {
	case c, ok := <-rd.ch:
		switch {
		case !ok:
			rd.Close()
			return nil, fmt.Errorf("blocks: read: %w", context.Cause(ctx))
		case c.err != nil:
			s.putBuf(c.buf)
			rd.Close()
			return nil, fmt.Errorf("blocks: read: %w", c.err)
		}
		rd.cur = c
	case <-ctx.Done():
		rd.Close()
		return nil, fmt.Errorf("blocks: read: %w", context.Cause(ctx))
	}
	return rd, nil
}

func (rd *reader) Read(p []byte) (int, error) {
	if rd.err != nil {
		return 0, rd.err
	}
	for len(rd.cur.data) == 0 {
		if rd.cur.buf != nil {
			rd.s.putBuf(rd.cur.buf)
			rd.cur.buf = nil
		}
		c, ok := <-rd.ch
		if !ok {
			rd.err = io.EOF
			return 0, io.EOF
		}
		if c.err != nil {
			rd.s.putBuf(c.buf)
			rd.err = fmt.Errorf("blocks: read: %w", c.err)
			return 0, rd.err
		}
		rd.cur = c
	}
	n := copy(p, rd.cur.data)
	rd.cur.data = rd.cur.data[n:]
	return n, nil
}

// WriteTo lets io.Copy hand out whole chunks without an extra copy.
func (rd *reader) WriteTo(w io.Writer) (int64, error) {
	var total int64
	for {
		if len(rd.cur.data) > 0 {
			n, err := w.Write(rd.cur.data)
			total += int64(n)
			rd.cur.data = rd.cur.data[n:]
			if err != nil {
				return total, err
			}
			continue
		}
		var one [0]byte
		if _, err := rd.Read(one[:]); err != nil {
			if errors.Is(err, io.EOF) {
				return total, nil
			}
			return total, err
		}
	}
}

// Close stops the fetcher and returns every buffer. Safe to call twice.
func (rd *reader) Close() error {
	if rd.closed {
		return nil
	}
	rd.closed = true
	rd.cancel()
	for c := range rd.ch {
		rd.s.putBuf(c.buf)
	}
	<-rd.done
	if rd.cur.buf != nil {
		rd.s.putBuf(rd.cur.buf)
		rd.cur.buf = nil
	}
	rd.s.readBudget.give(rd.held)
	rd.held = 0
	if rd.err == nil {
		rd.err = errors.New("blocks: read after close")
	}
	return nil
}

type eofReader struct{}

func (eofReader) Read([]byte) (int, error) { return 0, io.EOF }
