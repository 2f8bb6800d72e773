package raftmeta

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/objstorage/objstorageprovider"
	"github.com/cockroachdb/pebble/v2/sstable"
	"github.com/cockroachdb/pebble/v2/vfs"
	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"golang.org/x/time/rate"
	"google.golang.org/protobuf/proto"

	"github.com/redoubt-io/redoubt/internal/meta"
)

// Streamed snapshots. A group's data can be far larger than a message the
// transport carries, so a snapshot goes in two parts, as etcd's and
// CockroachDB's do:
//
//  1. When raft asks for a snapshot (storage.Snapshot), the leader takes
//     a Pebble snapshot of the group, which costs no copy, and gives raft
//     a snapshot whose data only names a stream (streamHeader). Nothing
//     is read under the group's lock.
//  2. A goroutine of the leader's (stream) reads the items from that
//     Pebble snapshot and sends them to the follower's node in chunks of
//     about Config.MaxMessage, one at a time: each is acknowledged before
//     the next goes (flow control), carries its CRC-32C, and is paced by
//     Config.SnapshotRate. The receiver (receiveChunk) writes them, in
//     order, to an sstable in its staging directory. Once the last chunk
//     is acknowledged, the leader sends raft's MsgSnap in the ordinary
//     way, and tells raft the snapshot was sent; if any step fails it
//     tells raft it failed, and raft asks for a new one later. A stream
//     is restarted, never resumed.
//  3. The follower steps the MsgSnap into raft only if its stream is
//     staged whole (admitSnapshot; TestSnapshotMessageNeedsItsStream);
//     otherwise the message is dropped, the
//     leader's next probe is refused and another snapshot follows.
//  4. When raft hands the snapshot over in a Ready, the follower replaces
//     the group's state in one atomic Pebble operation (installStream):
//     it excises every key of the group and ingests the staged items with
//     two small sstables written then, one with the apply state and log
//     base, one with the hard state. A crash leaves either the old state
//     or the new one, consistent either way (TestInteraction, streamed_snapshot_crash.txt).
//
// Staged streams that stop moving are deleted after snapStale
// (ageStreams; TestStaleStreamsAreDropped), as are the leader's Pebble
// snapshots that no stream took.

// stagingDir is where a host stages incoming streams, inside Config.Dir
// (so that Pebble links, not copies, them in). It is emptied at start.
const stagingDir = "snapshots"

// maxIncoming bounds the streams a host stages at once; a stream beyond
// it is refused, and its leader tries again later
// (TestIncomingStreamsAreBounded).
const maxIncoming = 4

// maxOutgoing bounds the streams a host sends at once; others wait.
const maxOutgoing = 2

// snapStale is how long a stream may stand still before it is dropped.
const snapStale = 60 * time.Second

// outSnap is a leader's Pebble snapshot of a group, made for raft and
// waiting for the stream that sends it.
type outSnap struct {
	snap  *pebble.Snapshot
	p     meta.Partition
	index uint64
	age   int // ticks since it was made
}

// inStream is a stream being staged, or staged whole (done) and waiting
// for its MsgSnap.
type inStream struct {
	mu       sync.Mutex
	p        meta.Partition
	node, id uint64
	path     string
	f        vfs.File
	w        *sstable.Writer
	next     uint64 // the chunk expected next
	items    uint64
	bytes    int64
	done     bool
	failed   bool
	idle     int // ticks since a chunk arrived or the stream was claimed
}

type streamKey struct{ node, id uint64 }

// snapStreams is a host's streamed snapshots, both ways.
type snapStreams struct {
	mu  sync.Mutex
	out map[uint64]*outSnap
	in  map[streamKey]*inStream

	slots   chan struct{} // outgoing streams at once
	limit   *rate.Limiter // nil: no limit
	wg      sync.WaitGroup
	ctx     context.Context
	cancel  context.CancelFunc
	stopped bool
}

func (h *Host) initStreams() error {
	s := &h.streams
	s.out = make(map[uint64]*outSnap)
	s.in = make(map[streamKey]*inStream)
	s.slots = make(chan struct{}, maxOutgoing)
	if r := h.cfg.SnapshotRate; r > 0 {
		s.limit = rate.NewLimiter(rate.Limit(r), int(max(r/4, int64(2*h.cfg.MaxMessage))))
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	dir := h.fs.PathJoin(h.cfg.Dir, stagingDir)
	// What a crash left staged is of no use: its leader has long failed
	// the stream and will send another.
	if err := h.fs.RemoveAll(dir); err != nil {
		return fmt.Errorf("raftmeta: clearing %s: %w", dir, err)
	}
	if err := h.fs.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("raftmeta: %w", err)
	}
	return nil
}

// stopStreams ends every stream: the outgoing ones are cancelled and
// waited for, their Pebble snapshots closed; staged ones are deleted.
// Before the database closes.
func (h *Host) stopStreams() {
	s := &h.streams
	s.mu.Lock()
	s.stopped = true
	s.mu.Unlock()
	s.cancel()
	s.wg.Wait()
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, o := range s.out {
		o.snap.Close()
		delete(s.out, id)
	}
	for k, in := range s.in {
		h.dropStream(in)
		delete(s.in, k)
	}
}

// makeSnapshot is raft's snapshot of g: a Pebble snapshot is kept for a
// stream to send, and raft gets a snapshot whose data names the stream.
// g.mu is held; this reads one key.
func (h *Host) makeSnapshot(g *group) (*raftpb.Snapshot, error) {
	if h.faults != nil {
		if err := h.faults("snapshot", g.p); err != nil {
			return nil, err
		}
	}
	snap := h.db.NewSnapshot()
	v, closer, err := snap.Get(groupKey(g.p, kindApply))
	if err != nil {
		snap.Close()
		return nil, fmt.Errorf("raftmeta: snapshot of %s: %w", g.name, err)
	}
	applied, cs, set, err := decodeApplyStateSet(v)
	closer.Close()
	if err != nil {
		snap.Close()
		return nil, err
	}
	term, err := g.ms.Term(applied)
	if err != nil {
		snap.Close()
		return nil, fmt.Errorf("raftmeta: snapshot of %s at %d: %w", g.name, applied, err)
	}
	id := h.newID()
	s := &h.streams
	s.mu.Lock()
	if s.stopped {
		s.mu.Unlock()
		snap.Close()
		return nil, ErrClosed
	}
	s.out[id] = &outSnap{snap: snap, p: g.p, index: applied}
	s.mu.Unlock()
	return &raftpb.Snapshot{
		Data:     encodeStreamHeader(streamHeader{set: set, node: h.cfg.NodeID, id: id}),
		Metadata: &raftpb.SnapshotMetadata{Index: new(applied), Term: new(term), ConfState: cs},
	}, nil
}

// startStream sends the snapshot of MsgSnap m (to replica to of g, on
// node) on a goroutine of its own; it reports the outcome to raft.
func (h *Host) startStream(g *group, to, node uint64, m groupMsg) {
	hdr, ok, err := decodeStreamHeader(m.msg.GetSnapshot().GetData())
	if err != nil || !ok {
		h.log.Error("snapshot message without a stream", "group", g.name, "err", err)
		h.reportSnapshot(g, to, raft.SnapshotFailure)
		return
	}
	s := &h.streams
	s.mu.Lock()
	out := s.out[hdr.id]
	delete(s.out, hdr.id)
	if out != nil && !s.stopped {
		s.wg.Add(1)
	}
	stopped := s.stopped
	s.mu.Unlock()
	if out == nil || stopped {
		if out != nil {
			out.snap.Close()
		}
		h.reportSnapshot(g, to, raft.SnapshotFailure)
		return
	}
	run := h.goStream
	if run == nil {
		run = func(fn func()) { go fn() }
	}
	run(func() {
		defer s.wg.Done()
		defer out.snap.Close()
		status := raft.SnapshotFailure
		defer func() { h.reportSnapshot(g, to, status) }()
		start := time.Now()
		n, bytes, err := h.stream(s.ctx, out, hdr.id, node)
		if err == nil && !h.sendBatch(node, []groupMsg{m}) {
			err = errors.New("the snapshot message was not sent")
		}
		if err != nil {
			h.stats.snapFailed.Add(1)
			if s.ctx.Err() == nil {
				h.log.Warn("snapshot not sent", "group", g.name, "to", node, "index", out.index, "items", n, "bytes", bytes, "err", err)
			}
			return
		}
		h.stats.snapSent.Add(1)
		h.stats.snapBytesSent.Add(uint64(bytes))
		h.log.Info("snapshot sent", "group", g.name, "to", node, "index", out.index, "items", n, "bytes", bytes,
			"took", time.Since(start).Round(time.Millisecond))
		status = raft.SnapshotFinish
	})
}

func (h *Host) reportSnapshot(g *group, to uint64, status raft.SnapshotStatus) {
	g.mu.Lock()
	if !g.retired {
		g.wake()
		g.rn.ReportSnapshot(to, status)
	}
	g.mu.Unlock()
	h.markDirty(g)
	h.poke()
}

// stream sends out's items to node in acknowledged chunks, and returns
// how many items and bytes it sent.
func (h *Host) stream(ctx context.Context, out *outSnap, id, node uint64) (items uint64, bytes int64, err error) {
	s := &h.streams
	select {
	case s.slots <- struct{}{}:
	case <-ctx.Done():
		return 0, 0, ctx.Err()
	}
	defer func() { <-s.slots }()
	lower, upper := dataBounds(out.p, nil, nil)
	it, err := out.snap.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return 0, 0, err
	}
	defer it.Close()
	var body []byte
	var n, seq uint64
	send := func(last bool) error {
		payload := binary.AppendUvarint(make([]byte, 0, len(body)+binary.MaxVarintLen64), n)
		payload = append(payload, body...)
		c := chunk{node: h.cfg.NodeID, id: id, seq: seq, last: last, index: out.index,
			crc: crc32.Checksum(payload, castagnoli), items: payload}
		if last {
			c.total = items
		}
		req := encodeRequest(&request{op: opChunk, p: out.p, chunk: c})
		if s.limit != nil {
			if err := s.limit.WaitN(ctx, min(len(req), s.limit.Burst())); err != nil {
				return err
			}
		}
		cctx, cancel := withTimeout(ctx, h.cfg.ProposalTimeout)
		raw, err := h.cfg.Forward.Forward(cctx, node, req)
		cancel()
		if err != nil {
			return err
		}
		resp, err := decodeResponse(raw)
		if err != nil {
			return err
		}
		if resp.status != stOK {
			return fmt.Errorf("chunk %d refused: %s", seq, resp.msg)
		}
		bytes += int64(len(req))
		seq++
		body, n = body[:0], 0
		return nil
	}
	for ok := it.First(); ok; ok = it.Next() {
		v, err := it.ValueAndErr()
		if err != nil {
			return items, bytes, err
		}
		rev, val, err := decodeItem(v)
		if err != nil {
			return items, bytes, err
		}
		body = appendBytes(body, it.Key()[dataKeyHeader:])
		body = binary.AppendUvarint(body, rev)
		body = appendBytes(body, val)
		n++
		items++
		if len(body) >= h.cfg.MaxMessage {
			if err := send(false); err != nil {
				return items, bytes, err
			}
		}
	}
	if err := it.Error(); err != nil {
		return items, bytes, err
	}
	return items, bytes, send(true)
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// receiveChunk stages chunk c of a stream of group p.
func (h *Host) receiveChunk(p meta.Partition, c *chunk) response {
	s := &h.streams
	key := streamKey{c.node, c.id}
	s.mu.Lock()
	in := s.in[key]
	if in == nil {
		if c.seq != 0 {
			s.mu.Unlock()
			return response{status: stError, msg: fmt.Sprintf("no stream %x of node %d here", c.id, c.node)}
		}
		busy := 0
		for _, o := range s.in {
			if !o.done {
				busy++
			}
		}
		if busy >= maxIncoming || s.stopped {
			s.mu.Unlock()
			return response{status: stRetry, msg: fmt.Sprintf("node %d stages %d snapshots already", h.cfg.NodeID, busy)}
		}
		in = &inStream{p: p, node: c.node, id: c.id,
			path: h.fs.PathJoin(h.cfg.Dir, stagingDir, fmt.Sprintf("%d-%d-%x.sst", p, c.node, c.id))}
		s.in[key] = in
	}
	s.mu.Unlock()

	in.mu.Lock()
	defer in.mu.Unlock()
	err := h.stage(in, p, c)
	if err != nil {
		in.failed = true
		h.log.Warn("snapshot chunk refused", "group", partitionName(p), "from", c.node, "chunk", c.seq, "err", err)
		return response{status: stError, msg: err.Error()}
	}
	return response{}
}

// stage writes chunk c into in, whose mu is held.
func (h *Host) stage(in *inStream, p meta.Partition, c *chunk) error {
	switch {
	case in.failed || in.done:
		return errors.New("stream ended")
	case in.p != p:
		return fmt.Errorf("stream of %s, chunk of %s", partitionName(in.p), partitionName(p))
	case c.seq != in.next:
		return fmt.Errorf("chunk %d, expected %d", c.seq, in.next)
	case crc32.Checksum(c.items, castagnoli) != c.crc:
		return errors.New("checksum mismatch")
	}
	if in.w == nil {
		f, err := h.fs.Create(in.path, vfs.WriteCategoryUnspecified)
		if err != nil {
			return err
		}
		in.f = f
		in.w = sstable.NewWriter(objstorageprovider.NewFileWritable(f), h.tables)
	}
	n, err := decodeChunkItems(c.items, func(it snapItem) error {
		// The writer refuses keys out of order.
		return in.w.Set(dataKey(p, it.key), encodeItem(it.rev, it.value))
	})
	if err != nil {
		return err
	}
	in.items += n
	in.bytes += int64(len(c.items))
	in.next++
	in.idle = 0
	if !c.last {
		return nil
	}
	if c.total != in.items {
		return fmt.Errorf("stream of %d items, %d received", c.total, in.items)
	}
	err = in.w.Close() // syncs the file
	in.w, in.f = nil, nil
	if err != nil {
		return err
	}
	if in.items == 0 {
		_ = h.fs.Remove(in.path)
		in.path = ""
	}
	in.done = true
	h.log.Debug("snapshot staged", "group", partitionName(p), "from", in.node, "index", c.index, "items", in.items, "bytes", in.bytes)
	return nil
}

// dropStream deletes what in staged. s.mu is held.
func (h *Host) dropStream(in *inStream) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.w != nil {
		_ = in.w.Close()
		in.w, in.f = nil, nil
	}
	if in.path != "" {
		_ = h.fs.Remove(in.path)
	}
	in.failed = true
}

// admitSnapshot says whether MsgSnap m of group p may be stepped into
// raft: its data carries its items (an older sender's), or names a
// stream staged whole here, which it then claims.
func (h *Host) admitSnapshot(p meta.Partition, m *raftpb.Message) bool {
	hdr, ok, err := decodeStreamHeader(m.GetSnapshot().GetData())
	if err != nil {
		return false
	}
	if !ok {
		return true
	}
	s := &h.streams
	s.mu.Lock()
	defer s.mu.Unlock()
	in := s.in[streamKey{hdr.node, hdr.id}]
	if in == nil {
		return false
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	if !in.done || in.failed || in.p != p {
		return false
	}
	in.idle = 0
	return true
}

// ageStreams drops the streams that stood still for snapStale, and the
// leader's snapshots no stream took. Once per tick.
func (h *Host) ageStreams() {
	stale := max(int(snapStale/h.cfg.TickInterval), 2)
	s := &h.streams
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, o := range s.out {
		if o.age++; o.age > stale {
			o.snap.Close()
			delete(s.out, id)
		}
	}
	for k, in := range s.in {
		in.mu.Lock()
		in.idle++
		drop := in.idle > stale || in.failed
		in.mu.Unlock()
		if drop {
			h.dropStream(in)
			delete(s.in, k)
		}
	}
}

// installStreams installs the streamed snapshots of the Readys in ws
// (installStream), before their other writes are built; a group whose
// snapshot cannot be installed fails.
func (h *Host) installStreams(ws []work) {
	for i := range ws {
		w := &ws[i]
		if w.failed || raft.IsEmptySnap(w.rd.Snapshot) {
			continue
		}
		hdr, ok, err := decodeStreamHeader(w.rd.Snapshot.GetData())
		if err == nil && !ok {
			continue // inline items: persist writes them
		}
		if err == nil {
			err = h.installStream(w, hdr)
		}
		if err != nil {
			h.groupFailed(w.g, "install snapshot", fmt.Errorf("%w: %s: %w", errGroup, w.g.name, err))
			w.failed = true
		}
	}
}

// installStream replaces w's group's state with the snapshot of w's
// Ready, whose items hdr's stream staged: one IngestAndExcise removes
// every key of the group and adds the items, the apply state and log
// base as of the snapshot, and the Ready's hard state. The log is gone;
// entries after the snapshot in the Ready are written by persist.
func (h *Host) installStream(w *work, hdr streamHeader) error {
	g := w.g
	s := &h.streams
	key := streamKey{hdr.node, hdr.id}
	s.mu.Lock()
	in := s.in[key]
	delete(s.in, key)
	s.mu.Unlock()
	if in == nil {
		return fmt.Errorf("stream %x of node %d is not staged", hdr.id, hdr.node)
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.path != "" {
		defer h.fs.Remove(in.path)
	}
	if !in.done || in.failed || in.p != g.p {
		return fmt.Errorf("stream %x of node %d is not staged whole", hdr.id, hdr.node)
	}
	md := w.rd.Snapshot.GetMetadata()
	set := hdr.set
	hs := w.rd.HardState
	if raft.IsEmptyHardState(hs) {
		hs = &raftpb.HardState{}
		if g.hs != nil {
			hs = proto.Clone(g.hs).(*raftpb.HardState)
		}
		if hs.GetCommit() < md.GetIndex() {
			hs.Commit = new(md.GetIndex())
		}
	}
	rawHS, err := proto.Marshal(hs)
	if err != nil {
		return err
	}
	// The staged items sort between the apply state and log base ('a',
	// 'b') and the hard state ('h'): three tables that do not overlap.
	pre := h.fs.PathJoin(h.cfg.Dir, stagingDir, fmt.Sprintf("%d-%d-%x.pre.sst", g.p, hdr.node, hdr.id))
	post := h.fs.PathJoin(h.cfg.Dir, stagingDir, fmt.Sprintf("%d-%d-%x.post.sst", g.p, hdr.node, hdr.id))
	defer h.fs.Remove(pre)
	defer h.fs.Remove(post)
	if err := h.writeTable(pre, []kv{
		{groupKey(g.p, kindApply), encodeApplyState(md.GetIndex(), applyTail(md.GetConfState(), set))},
		{groupKey(g.p, kindBase), encodeBase(md.GetIndex(), md.GetTerm())},
	}); err != nil {
		return err
	}
	if err := h.writeTable(post, []kv{{groupKey(g.p, kindHard), rawHS}}); err != nil {
		return err
	}
	paths := []string{pre}
	if in.path != "" {
		paths = append(paths, in.path)
	}
	paths = append(paths, post)
	if h.faults != nil {
		if err := h.faults("install", g.p); err != nil {
			return err
		}
	}
	lower, upper := groupBounds(g.p)
	// Readers are told first, as for any write of the data.
	g.applying.Store(md.GetIndex())
	g.hot.BeginWrite(nil)
	_, err = h.db.IngestAndExcise(context.Background(), paths, nil, nil, pebble.KeyRange{Start: lower, End: upper})
	g.hot.EndWrite()
	if err != nil {
		return err
	}
	w.snapSet = set
	w.installed = true
	h.stats.snapReceived.Add(1)
	h.log.Info("snapshot installed", "group", g.name, "from", hdr.node, "index", md.GetIndex(), "items", in.items, "bytes", in.bytes)
	return nil
}

type kv struct{ k, v []byte }

// writeTable writes kvs, in key order, to a new sstable at name, synced.
func (h *Host) writeTable(name string, kvs []kv) error {
	f, err := h.fs.Create(name, vfs.WriteCategoryUnspecified)
	if err != nil {
		return err
	}
	w := sstable.NewWriter(objstorageprovider.NewFileWritable(f), h.tables)
	for _, e := range kvs {
		if err := w.Set(e.k, e.v); err != nil {
			_ = w.Close()
			return err
		}
	}
	return w.Close()
}
