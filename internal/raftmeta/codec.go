package raftmeta

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/redoubt-io/redoubt/internal/meta"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// formatVersion is the first byte of every encoding this package writes:
// proposals in the log, snapshots, message batches, forwarded requests and
// their responses, and stored items.
const formatVersion = 1

// ErrCorrupt is returned (wrapped) by every decoder of this package for
// bytes it cannot read.
var ErrCorrupt = errors.New("raftmeta: malformed encoding")

func corrupt(what string) error { return fmt.Errorf("%w: %s", ErrCorrupt, what) }

// reader reads the primitives of the encodings; the first error sticks.
type reader struct {
	b   []byte
	err error
}

func (r *reader) fail(what string) {
	if r.err == nil {
		r.err = corrupt(what)
	}
	r.b = nil
}

func (r *reader) byte1(what string) byte {
	if len(r.b) < 1 {
		r.fail(what)
		return 0
	}
	v := r.b[0]
	r.b = r.b[1:]
	return v
}

func (r *reader) u32(what string) uint32 {
	if len(r.b) < 4 {
		r.fail(what)
		return 0
	}
	v := binary.BigEndian.Uint32(r.b)
	r.b = r.b[4:]
	return v
}

func (r *reader) u64(what string) uint64 {
	if len(r.b) < 8 {
		r.fail(what)
		return 0
	}
	v := binary.BigEndian.Uint64(r.b)
	r.b = r.b[8:]
	return v
}

func (r *reader) uvarint(what string) uint64 {
	v, n := binary.Uvarint(r.b)
	// A varint padded with a final zero byte reads the same number: refuse
	// it, so that each message has one encoding.
	if n <= 0 || (n > 1 && r.b[n-1] == 0) {
		r.fail(what)
		return 0
	}
	r.b = r.b[n:]
	return v
}

// varint reads a zig-zag varint, refusing padded ones as uvarint does.
func (r *reader) varint(what string) int64 {
	v, n := binary.Varint(r.b)
	if n <= 0 || (n > 1 && r.b[n-1] == 0) {
		r.fail(what)
		return 0
	}
	r.b = r.b[n:]
	return v
}

// bytes returns a length-prefixed byte string, copied so that the result
// does not alias the input.
func (r *reader) bytes(what string) []byte {
	n := r.uvarint(what)
	if r.err != nil {
		return nil
	}
	if n > uint64(len(r.b)) {
		r.fail(what)
		return nil
	}
	v := make([]byte, n)
	copy(v, r.b)
	r.b = r.b[n:]
	return v
}

// count reads a number of elements, each at least min bytes long, and
// rejects counts the remaining input cannot hold, so that a hostile count
// cannot make the decoder allocate.
func (r *reader) count(what string, min int) int {
	n := r.uvarint(what)
	if r.err != nil {
		return 0
	}
	if n > uint64(len(r.b)/min) {
		r.fail(what)
		return 0
	}
	return int(n)
}

func (r *reader) version() {
	if v := r.byte1("version"); r.err == nil && v != formatVersion {
		r.fail(fmt.Sprintf("unknown format version %d", v))
	}
}

func (r *reader) end() error {
	if r.err == nil && len(r.b) != 0 {
		r.fail("trailing bytes")
	}
	return r.err
}

func appendBytes(b, v []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(v)))
	return append(b, v...)
}

// appendTxn encodes a Txn: its conditions, puts and deletes in order.
func appendTxn(b []byte, txn *meta.Txn) []byte {
	b = binary.AppendUvarint(b, uint64(len(txn.Conds)))
	for _, c := range txn.Conds {
		b = appendBytes(b, c.Key)
		b = binary.AppendUvarint(b, c.Rev)
	}
	b = binary.AppendUvarint(b, uint64(len(txn.Puts)))
	for _, kv := range txn.Puts {
		b = appendBytes(b, kv.Key)
		b = appendBytes(b, kv.Value)
	}
	b = binary.AppendUvarint(b, uint64(len(txn.Deletes)))
	for _, k := range txn.Deletes {
		b = appendBytes(b, k)
	}
	// The adds follow only when there are some, so that a transaction
	// without them is encoded as before they existed.
	if len(txn.Adds) > 0 {
		b = binary.AppendUvarint(b, uint64(len(txn.Adds)))
		for _, a := range txn.Adds {
			b = appendBytes(b, a.Key)
			b = binary.AppendUvarint(b, uint64(len(a.Delta)))
			for _, d := range a.Delta {
				b = binary.AppendVarint(b, d)
			}
		}
	}
	return b
}

func (r *reader) txn() meta.Txn {
	var txn meta.Txn
	if n := r.count("conds", 2); n > 0 {
		txn.Conds = make([]meta.Cond, n)
		for i := range txn.Conds {
			txn.Conds[i] = meta.Cond{Key: r.bytes("cond key"), Rev: r.uvarint("cond rev")}
		}
	}
	if n := r.count("puts", 2); n > 0 {
		txn.Puts = make([]meta.KV, n)
		for i := range txn.Puts {
			txn.Puts[i] = meta.KV{Key: r.bytes("put key"), Value: r.bytes("put value")}
		}
	}
	if n := r.count("deletes", 1); n > 0 {
		txn.Deletes = make([][]byte, n)
		for i := range txn.Deletes {
			txn.Deletes[i] = r.bytes("delete key")
		}
	}
	// A transaction is the last field of what holds it: bytes after its
	// deletes are its adds, at least one.
	if r.err == nil && len(r.b) > 0 {
		n := r.count("adds", 2)
		if r.err == nil && n == 0 {
			r.fail("empty adds")
		}
		for range n {
			a := meta.Add{Key: r.bytes("add key")}
			m := r.count("deltas", 1)
			for range m {
				a.Delta = append(a.Delta, r.varint("delta"))
			}
			if r.err != nil {
				break
			}
			txn.Adds = append(txn.Adds, a)
		}
	}
	return txn
}

// proposal is the payload of a normal log entry: a Txn and the identity of
// the proposal, by which the proposing node finds the caller waiting for
// its result. Every replica applies the Txn; only the proposer answers.
type proposal struct {
	node, id uint64
	txn      meta.Txn
	// split, when set, makes the entry a split of the group into these
	// two children (split.go) instead of a Txn.
	split *[2]meta.Partition
}

const (
	entryTxn   = 1
	entrySplit = 2
)

func encodeProposal(p *proposal) []byte {
	b := make([]byte, 0, 32+txnSize(&p.txn))
	kind := byte(entryTxn)
	if p.split != nil {
		kind = entrySplit
	}
	b = append(b, formatVersion, kind)
	b = binary.BigEndian.AppendUint64(b, p.node)
	b = binary.BigEndian.AppendUint64(b, p.id)
	if p.split != nil {
		b = binary.BigEndian.AppendUint32(b, uint32(p.split[0]))
		return binary.BigEndian.AppendUint32(b, uint32(p.split[1]))
	}
	return appendTxn(b, &p.txn)
}

func txnSize(txn *meta.Txn) int {
	n := 0
	for _, c := range txn.Conds {
		n += len(c.Key) + 20
	}
	for _, kv := range txn.Puts {
		n += len(kv.Key) + len(kv.Value) + 20
	}
	for _, k := range txn.Deletes {
		n += len(k) + 10
	}
	for _, a := range txn.Adds {
		n += len(a.Key) + 10*len(a.Delta) + 10
	}
	return n
}

func decodeProposal(b []byte) (proposal, error) {
	r := reader{b: b}
	r.version()
	k := r.byte1("entry kind")
	if r.err == nil && k != entryTxn && k != entrySplit {
		r.fail(fmt.Sprintf("unknown entry kind %d", k))
	}
	p := proposal{node: r.u64("node"), id: r.u64("proposal id")}
	if k == entrySplit {
		p.split = &[2]meta.Partition{meta.Partition(r.u32("child")), meta.Partition(r.u32("child"))}
	} else {
		p.txn = r.txn()
	}
	return p, r.end()
}

// The context of a configuration change names its proposer and, from
// version 2 on, the replica it adds, removes or changes: version, the
// proposer's node and proposal ID (8 bytes each), then the replica's ID,
// node and generation (uvarints). A version 1 context (proposer only)
// comes from before replicas had their own IDs.
const confContextVersion = 2

func encodeConfContext(node, id uint64, r replica) []byte {
	b := make([]byte, 0, 48)
	b = append(b, confContextVersion)
	b = binary.BigEndian.AppendUint64(b, node)
	b = binary.BigEndian.AppendUint64(b, id)
	b = binary.AppendUvarint(b, r.id)
	b = binary.AppendUvarint(b, r.node)
	return binary.AppendUvarint(b, r.gen)
}

// decodeConfContext returns the proposer of a configuration change, and
// the replica it concerns (ok false for a version 1 context).
func decodeConfContext(b []byte) (node, id uint64, r replica, ok bool, err error) {
	rd := reader{b: b}
	v := rd.byte1("version")
	if rd.err == nil && v != formatVersion && v != confContextVersion {
		rd.fail(fmt.Sprintf("unknown conf context version %d", v))
	}
	node, id = rd.u64("node"), rd.u64("proposal id")
	if v == confContextVersion {
		r = replica{id: rd.uvarint("replica ID"), node: rd.uvarint("replica node"), gen: rd.uvarint("replica generation")}
		ok = true
	}
	if err := rd.end(); err != nil {
		return 0, 0, replica{}, false, err
	}
	return node, id, r, ok, nil
}

// confContextReplica is the replica a configuration change's context
// names, if it names one.
func confContextReplica(b []byte) (replica, bool) {
	_, _, r, ok, err := decodeConfContext(b)
	return r, ok && err == nil
}

// Stored items: the revision and the value of one key.
func encodeItem(rev uint64, value []byte) []byte {
	b := make([]byte, 0, 9+len(value))
	b = append(b, formatVersion)
	b = binary.BigEndian.AppendUint64(b, rev)
	return append(b, value...)
}

// decodeItem returns the revision and value of a stored item; the value
// aliases b.
func decodeItem(b []byte) (uint64, []byte, error) {
	if len(b) < 9 || b[0] != formatVersion {
		return 0, nil, corrupt("stored item")
	}
	return binary.BigEndian.Uint64(b[1:9]), b[9:], nil
}

// A message batch carries the Raft messages of all groups for one peer,
// each tagged with its partition and the generations of the replicas it
// goes from and to, so that the receiver tells a newer incarnation of its
// replica from an older one (Step):
//
//	version(2) count {partition(4) fromGen toGen len message}
//
// Version 1 batches, without generations, are refused: a node that sends
// them names replicas by node ID alone.
const batchVersion = 2

type groupMsg struct {
	p              meta.Partition
	fromGen, toGen uint64
	msg            *raftpb.Message
}

func encodeBatch(msgs []groupMsg) ([]byte, error) {
	b := []byte{batchVersion}
	b = binary.AppendUvarint(b, uint64(len(msgs)))
	for _, m := range msgs {
		b = binary.BigEndian.AppendUint32(b, uint32(m.p))
		b = binary.AppendUvarint(b, m.fromGen)
		b = binary.AppendUvarint(b, m.toGen)
		// Marshalled in place, behind its length: a batch of appends is
		// one allocation, not one per message.
		b = binary.AppendUvarint(b, uint64(proto.Size(m.msg)))
		var err error
		if b, err = (proto.MarshalOptions{}).MarshalAppend(b, m.msg); err != nil {
			return nil, err
		}
	}
	return b, nil
}

func decodeBatch(b []byte) ([]groupMsg, error) {
	r := reader{b: b}
	if v := r.byte1("version"); r.err == nil && v != batchVersion {
		r.fail(fmt.Sprintf("unknown batch version %d", v))
	}
	n := r.count("messages", 7)
	msgs := make([]groupMsg, 0, n)
	for range n {
		m := groupMsg{p: meta.Partition(r.u32("partition")), fromGen: r.uvarint("from generation"), toGen: r.uvarint("to generation")}
		raw := r.bytes("message")
		if r.err != nil {
			break
		}
		m.msg = &raftpb.Message{}
		if err := proto.Unmarshal(raw, m.msg); err != nil {
			return nil, fmt.Errorf("%w: message: %v", ErrCorrupt, err)
		}
		msgs = append(msgs, m)
	}
	if err := r.end(); err != nil {
		return nil, err
	}
	return msgs, nil
}

// Snapshot data: the group's replica set as of the snapshot, then every
// item of the group in key order:
//
//	version(2) len replicaSet count {key rev value}
//
// Version 1 data has no replica set: its members are their nodes.
// Version 3 data carries no items: they were streamed to the receiver
// beforehand (snapstream.go), and the data names the stream:
//
//	version(3) len replicaSet node(8) id(8)
const (
	snapshotVersion = 2
	streamedVersion = 3
)

// streamHeader is the data of a streamed snapshot: the replica set as
// of it, and the stream that carried its items, by the sending node and
// an ID of that node's.
type streamHeader struct {
	set      *replicaSet
	node, id uint64
}

func encodeStreamHeader(h streamHeader) []byte {
	b := []byte{streamedVersion}
	b = appendBytes(b, appendReplicaSet(nil, h.set))
	b = binary.BigEndian.AppendUint64(b, h.node)
	return binary.BigEndian.AppendUint64(b, h.id)
}

// decodeStreamHeader decodes the data of a streamed snapshot; ok is
// false for data of an older version, which carries its items inline.
func decodeStreamHeader(b []byte) (h streamHeader, ok bool, err error) {
	if len(b) == 0 || b[0] != streamedVersion {
		return h, false, nil
	}
	r := reader{b: b[1:]}
	sr := reader{b: r.bytes("replica set")}
	if h.set = sr.replicaSet(); r.err == nil && sr.end() != nil {
		r.fail("replica set")
	}
	h.node, h.id = r.u64("node"), r.u64("stream")
	return h, true, r.end()
}

type snapItem struct {
	key, value []byte
	rev        uint64
}

// decodeSnapshotData hands fn the items of snapshot data b and returns
// its replica set (nil for version 1).
func decodeSnapshotData(b []byte, fn func(snapItem)) (*replicaSet, error) {
	r := reader{b: b}
	v := r.byte1("version")
	if r.err == nil && v != formatVersion && v != snapshotVersion {
		r.fail(fmt.Sprintf("unknown snapshot version %d", v))
	}
	var set *replicaSet
	if v == snapshotVersion {
		sr := reader{b: r.bytes("replica set")}
		if set = sr.replicaSet(); r.err == nil && sr.end() != nil {
			r.fail("replica set")
		}
	}
	n := r.count("items", 3)
	for range n {
		it := snapItem{key: r.bytes("key"), rev: r.uvarint("rev"), value: r.bytes("value")}
		if r.err != nil {
			break
		}
		fn(it)
	}
	return set, r.end()
}

// decodeChunkItems hands fn the items of a chunk's payload (count {key
// rev value}), stopping at fn's first error, and returns how many there
// were.
func decodeChunkItems(b []byte, fn func(snapItem) error) (uint64, error) {
	r := reader{b: b}
	n := r.count("items", 3)
	for range n {
		it := snapItem{key: r.bytes("key"), rev: r.uvarint("rev"), value: r.bytes("value")}
		if r.err != nil {
			break
		}
		if err := fn(it); err != nil {
			return 0, err
		}
	}
	return uint64(n), r.end()
}

// Forwarded requests and their responses.
type op byte

const (
	opCommit op = 1 + iota
	opGet
	opScan
	opConf
	// opRanges reads many ranges, of the groups the receiver leads, in
	// one request (ScanRanges); it is never forwarded further.
	opRanges
	// opGetMany reads several keys of one group from one view
	// (meta.ManyGetter); the response's rev is the view's applied index.
	opGetMany
	// opReplica asks the group's leader, after a ReadIndex round, whether
	// replica node (a Raft ID) is a member: value 1 if it is, 0 if not.
	opReplica
	// opChunk carries one chunk of a streamed snapshot (snapstream.go);
	// it is never forwarded further.
	opChunk
	// opSplit splits the group into the two children named in into
	// (split.go).
	opSplit
)

type request struct {
	op       op
	hops     byte
	p        meta.Partition
	txn      meta.Txn              // opCommit
	key      []byte                // opGet; start of opScan
	end      []byte                // opScan; nil is the end of the partition
	maxBytes uint32                // opScan: page size
	change   raftpb.ConfChangeType // opConf
	node     uint64                // opConf: a node; opReplica: a replica
	ranges   []scanRange           // opRanges
	reads    []meta.Read           // opGetMany
	chunk    chunk                 // opChunk
	into     [2]meta.Partition     // opSplit
}

// chunk is one piece of a streamed snapshot of group p: items in key
// order, encoded as in snapshot data (count {key rev value}), and their
// CRC-32C. Chunks go in sequence, each after the last was acknowledged;
// the last one says how many items the stream held in all.
type chunk struct {
	node, id uint64 // the stream: the sending node, and its ID there
	seq      uint64
	last     bool
	total    uint64 // last: the items of the whole stream
	index    uint64 // the snapshot's index, for the receiver's log
	crc      uint32
	items    []byte
}

// scanRange is one range of an opRanges request. limit > 0 caps the keys
// the receiver reads for it: the caller will take no more.
type scanRange struct {
	p          meta.Partition
	start, end []byte // a nil end is the end of the partition
	limit      uint64
}

func appendEnd(b, end []byte) []byte {
	if end == nil {
		return append(b, 0)
	}
	return appendBytes(append(b, 1), end)
}

func (r *reader) optEnd() []byte {
	switch r.byte1("end flag") {
	case 0:
		return nil
	case 1:
		return r.bytes("end")
	}
	r.fail("end flag")
	return nil
}

func encodeRequest(q *request) []byte {
	b := make([]byte, 0, 32+len(q.key)+len(q.end)+txnSize(&q.txn))
	b = append(b, formatVersion, byte(q.op), q.hops)
	b = binary.BigEndian.AppendUint32(b, uint32(q.p))
	switch q.op {
	case opCommit:
		b = appendTxn(b, &q.txn)
	case opGet:
		b = appendBytes(b, q.key)
	case opGetMany:
		b = binary.AppendUvarint(b, uint64(len(q.reads)))
		for _, rd := range q.reads {
			first := byte(0)
			if rd.First {
				first = 1
			}
			b = appendBytes(append(b, first), rd.Key)
		}
	case opScan:
		b = appendBytes(b, q.key)
		b = appendEnd(b, q.end)
		b = binary.BigEndian.AppendUint32(b, q.maxBytes)
	case opConf:
		b = append(b, byte(q.change))
		b = binary.BigEndian.AppendUint64(b, q.node)
	case opReplica:
		b = binary.BigEndian.AppendUint64(b, q.node)
	case opSplit:
		b = binary.BigEndian.AppendUint32(b, uint32(q.into[0]))
		b = binary.BigEndian.AppendUint32(b, uint32(q.into[1]))
	case opChunk:
		c := &q.chunk
		b = binary.BigEndian.AppendUint64(b, c.node)
		b = binary.BigEndian.AppendUint64(b, c.id)
		b = binary.AppendUvarint(b, c.seq)
		last := byte(0)
		if c.last {
			last = 1
		}
		b = append(b, last)
		b = binary.AppendUvarint(b, c.total)
		b = binary.AppendUvarint(b, c.index)
		b = binary.BigEndian.AppendUint32(b, c.crc)
		b = appendBytes(b, c.items)
	case opRanges:
		b = binary.BigEndian.AppendUint32(b, q.maxBytes)
		b = binary.AppendUvarint(b, uint64(len(q.ranges)))
		for _, rg := range q.ranges {
			b = binary.BigEndian.AppendUint32(b, uint32(rg.p))
			b = appendBytes(b, rg.start)
			b = appendEnd(b, rg.end)
			b = binary.AppendUvarint(b, rg.limit)
		}
	}
	return b
}

func decodeRequest(b []byte) (request, error) {
	r := reader{b: b}
	r.version()
	q := request{op: op(r.byte1("op")), hops: r.byte1("hops"), p: meta.Partition(r.u32("partition"))}
	if r.err != nil {
		return q, r.err
	}
	switch q.op {
	case opCommit:
		q.txn = r.txn()
	case opGet:
		q.key = r.bytes("key")
	case opGetMany:
		if n := r.count("reads", 2); n > 0 {
			q.reads = make([]meta.Read, n)
			for i := range q.reads {
				switch r.byte1("read kind") {
				case 0:
				case 1:
					q.reads[i].First = true
				default:
					r.fail("read kind")
				}
				q.reads[i].Key = r.bytes("key")
			}
		}
	case opScan:
		q.key = r.bytes("start")
		q.end = r.optEnd()
		q.maxBytes = r.u32("page size")
	case opConf:
		q.change = raftpb.ConfChangeType(r.byte1("change"))
		q.node = r.u64("node")
		if _, ok := raftpb.ConfChangeType_name[int32(q.change)]; r.err == nil && !ok {
			r.fail("change type")
		}
	case opReplica:
		q.node = r.u64("replica")
	case opSplit:
		q.into = [2]meta.Partition{meta.Partition(r.u32("child")), meta.Partition(r.u32("child"))}
	case opChunk:
		c := &q.chunk
		c.node, c.id, c.seq = r.u64("node"), r.u64("stream"), r.uvarint("sequence")
		switch r.byte1("last flag") {
		case 0:
		case 1:
			c.last = true
		default:
			r.fail("last flag")
		}
		c.total, c.index, c.crc = r.uvarint("total"), r.uvarint("index"), r.u32("crc")
		c.items = r.bytes("items")
	case opRanges:
		q.maxBytes = r.u32("page size")
		if n := r.count("ranges", 7); n > 0 {
			q.ranges = make([]scanRange, n)
			for i := range q.ranges {
				q.ranges[i] = scanRange{p: meta.Partition(r.u32("partition")), start: r.bytes("start"), end: r.optEnd(), limit: r.uvarint("limit")}
			}
		}
	default:
		r.fail(fmt.Sprintf("unknown op %d", q.op))
	}
	return q, r.end()
}

// status is the outcome of a forwarded request.
type status byte

const (
	stOK status = iota
	stNotFound
	stConflict
	// stUnavailable: the request may have been applied; do not retry it.
	stUnavailable
	// stRetry: the request was not served (no leader there); it is safe to
	// send it again, to the same node or another.
	stRetry
	stError
	// stCorrupt: a counter the commit adds to holds no counter
	// (meta.ErrCorrupt); nothing was applied.
	stCorrupt
	// stMoved: the group has split (meta.ErrMoved); value names the
	// children and the split's index (encodeMoved). Nothing was applied.
	stMoved
)

type response struct {
	status status
	msg    string // stError, stUnavailable
	rev    uint64 // opCommit, opGet
	value  []byte // opGet
	items  []snapItem
	more   bool // opScan: the page ended before the range did
}

func encodeResponse(s *response) []byte {
	n := 16 + len(s.msg) + len(s.value)
	for _, it := range s.items {
		n += len(it.key) + len(it.value) + 16
	}
	b := make([]byte, 0, n)
	b = append(b, formatVersion, byte(s.status))
	b = appendBytes(b, []byte(s.msg))
	b = binary.BigEndian.AppendUint64(b, s.rev)
	b = appendBytes(b, s.value)
	b = binary.AppendUvarint(b, uint64(len(s.items)))
	for _, it := range s.items {
		b = appendBytes(b, it.key)
		b = binary.AppendUvarint(b, it.rev)
		b = appendBytes(b, it.value)
	}
	more := byte(0)
	if s.more {
		more = 1
	}
	return append(b, more)
}

func decodeResponse(b []byte) (response, error) {
	r := reader{b: b}
	r.version()
	s := response{status: status(r.byte1("status"))}
	if r.err == nil && s.status > stMoved {
		r.fail("status")
	}
	s.msg = string(r.bytes("message"))
	s.rev = r.u64("rev")
	s.value = r.bytes("value")
	if n := r.count("items", 3); n > 0 {
		s.items = make([]snapItem, n)
		for i := range s.items {
			s.items[i] = snapItem{key: r.bytes("key"), rev: r.uvarint("rev"), value: r.bytes("value")}
		}
	}
	switch r.byte1("more") {
	case 0:
	case 1:
		s.more = true
	default:
		r.fail("more flag")
	}
	return s, r.end()
}

// rangeState is how far the receiver of an opRanges request read one range.
type rangeState byte

const (
	// rangeDone: every key of the range (up to its limit) is in the
	// response.
	rangeDone rangeState = iota
	// rangeMore: the response filled up; the range continues after its
	// last key in the response (from its start if it has none).
	rangeMore
	// rangeNotLed: the receiver does not lead the range's group (any
	// more); the caller asks the group's leader instead.
	rangeNotLed
	// rangeUnavailable: the group's leader could not confirm a read with
	// a quorum in time; the response's msg says why.
	rangeUnavailable
)

// rangesResponse answers an opRanges request: a state and the items of
// each of its ranges, in request order. A status other than stOK (msg
// says why) fails the whole request.
type rangesResponse struct {
	status status
	msg    string
	ranges []rangeResult
}

type rangeResult struct {
	state  rangeState
	leader uint64 // rangeNotLed: the leader the receiver knows, or 0
	items  []snapItem
}

func encodeRangesResponse(s *rangesResponse) []byte {
	n := 16 + len(s.msg)
	for _, rr := range s.ranges {
		n += 4
		for _, it := range rr.items {
			n += len(it.key) + len(it.value) + 16
		}
	}
	b := make([]byte, 0, n)
	b = append(b, formatVersion, byte(s.status))
	b = appendBytes(b, []byte(s.msg))
	b = binary.AppendUvarint(b, uint64(len(s.ranges)))
	for _, rr := range s.ranges {
		b = append(b, byte(rr.state))
		b = binary.AppendUvarint(b, rr.leader)
		b = binary.AppendUvarint(b, uint64(len(rr.items)))
		for _, it := range rr.items {
			b = appendBytes(b, it.key)
			b = binary.AppendUvarint(b, it.rev)
			b = appendBytes(b, it.value)
		}
	}
	return b
}

func decodeRangesResponse(b []byte) (rangesResponse, error) {
	r := reader{b: b}
	r.version()
	s := rangesResponse{status: status(r.byte1("status"))}
	if r.err == nil && s.status > stError {
		r.fail("status")
	}
	s.msg = string(r.bytes("message"))
	if n := r.count("ranges", 3); n > 0 {
		s.ranges = make([]rangeResult, n)
		for i := range s.ranges {
			rr := &s.ranges[i]
			rr.state = rangeState(r.byte1("range state"))
			if r.err == nil && rr.state > rangeUnavailable {
				r.fail("range state")
			}
			rr.leader = r.uvarint("leader")
			if m := r.count("items", 3); m > 0 {
				rr.items = make([]snapItem, m)
				for j := range rr.items {
					rr.items[j] = snapItem{key: r.bytes("key"), rev: r.uvarint("rev"), value: r.bytes("value")}
				}
			}
		}
	}
	return s, r.end()
}
