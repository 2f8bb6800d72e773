package records

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/redoubt-io/redoubt/internal/merkle"
	"github.com/redoubt-io/redoubt/internal/transport"
	"github.com/redoubt-io/redoubt/internal/vset"
)

// Service is the transport service a node's Store answers Sync on.
const Service = "records"

// The requests, each an op byte and the partition (4 bytes, big-endian),
// then:
//
//	opRoot      nothing                      -> the root digest
//	opChildren  merkle.AppendRequest's form  -> merkle.AppendHashes' form
//	opLeaves    count, then leaf indexes (uvarints, increasing) -> records
//	opPut       records                      -> putDone and the count added (uvarint),
//	                                            or putClockAhead and why (the records
//	                                            in time are kept all the same)
//	opGet       a key                        -> its records
//	opScan      from, to (lengths first; to's length+1, 0 for none),
//	            limit (uvarints)             -> more (a byte, 1: keys remain), records
//
// Records are a count, then each: the key's length and the key, a kind
// byte (0 version, 1 removal), then the version's encoding with its length
// before it, or the removed ID.
const (
	opRoot byte = iota + 1
	opChildren
	opLeaves
	opPut
	opGet
	opScan
)

// maxScanKeys bounds the keys one opScan returns.
const maxScanKeys = 1000

// The first byte of an answer to opPut.
const (
	putDone       byte = 0
	putClockAhead byte = 1
)

// leavesPerCall bounds the leaves one opLeaves names, and so, with the
// records of a leaf, what one answer carries.
const leavesPerCall = 256

// MaxOffset is how far ahead of this node's clock a version's timestamp
// may be for the node to take it from another: a version stamped further
// ahead was written by a node whose clock runs ahead, and would be the
// current version of its key everywhere until the others' clocks caught
// up. CockroachDB's default bound on clock offset is the same.
const MaxOffset = 500 * time.Millisecond

// ErrClockAhead refuses records whose writer's clock runs ahead of the
// receiver's by more than MaxOffset.
var ErrClockAhead = errors.New("records: the writer's clock is ahead of this node's by more than the maximum offset")

// Serve answers other nodes' reads, writes and Syncs with s's records,
// refusing versions stamped more than MaxOffset ahead of now().
func Serve(c transport.Caller, s *Store, now func() time.Time) {
	c.Handle(Service, func(_ context.Context, _ transport.NodeID, req []byte) ([]byte, error) {
		return s.answer(req, now)
	})
}

// splitAhead returns the records of recs a node whose clock reads now
// takes, and an error naming the first it refuses: a version stamped more
// than MaxOffset ahead of now. Removals name older versions and are not
// checked.
func splitAhead(recs []Record, now time.Time) ([]Record, error) {
	limit := now.Add(MaxOffset).UnixMilli()
	var err error
	ok := recs[:0:0]
	for i := range recs {
		if r := &recs[i]; !r.Removal && r.Version.ID.TS.Wall > limit {
			if err == nil {
				err = fmt.Errorf("%w: version %s is %v ahead", ErrClockAhead, r.Version.ID,
					time.Duration(r.Version.ID.TS.Wall-now.UnixMilli())*time.Millisecond)
			}
			continue
		}
		ok = append(ok, recs[i])
	}
	return ok, err
}

// PutRecords returns the records of req, a put request.
func PutRecords(req []byte) ([]Record, error) {
	op, _, body, err := decodeHeader(req)
	if err != nil {
		return nil, err
	}
	if op != opPut {
		return nil, fmt.Errorf("%w: op %d is no put", ErrInvalidRequest, op)
	}
	return decodeRecords(body)
}

// RootRequest is the request for partition p's root digest.
func RootRequest(p Partition) []byte { return header(opRoot, p) }

// Answer answers req, a request of Serve's service, as Serve would.
func (s *Store) Answer(req []byte, now func() time.Time) ([]byte, error) { return s.answer(req, now) }

// SiteRequest checks req, a request of Serve's service, as one site may
// make of another: one of a Sync's requests (root, children, leaves,
// put) about a partition of buckets replicated to sites, never another
// partition's records. It returns the partition and whether req writes.
func SiteRequest(req []byte) (p Partition, put bool, err error) {
	op, p, _, err := decodeHeader(req)
	if err != nil {
		return 0, false, err
	}
	if uint32(p)&SiteFlag == 0 || uint32(p)&^SiteFlag >= DataFlag {
		return 0, false, fmt.Errorf("%w: partition %#x is no partition of replicated buckets", ErrInvalidRequest, uint32(p))
	}
	switch op {
	case opRoot, opChildren, opLeaves:
		return p, false, nil
	case opPut:
		return p, true, nil
	}
	return 0, false, fmt.Errorf("%w: op %d is not for sites", ErrInvalidRequest, op)
}

func (s *Store) answer(req []byte, now func() time.Time) ([]byte, error) {
	op, p, body, err := decodeHeader(req)
	if err != nil {
		return nil, err
	}
	switch op {
	case opRoot:
		if len(body) != 0 {
			return nil, fmt.Errorf("%w: root request of %d bytes", ErrInvalidRequest, len(req))
		}
		r := s.Root(p)
		return r[:], nil
	case opChildren:
		l, parents, err := merkle.DecodeRequest(body, Levels)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrInvalidRequest, err)
		}
		hs, err := s.Children(p, l, parents)
		if err != nil {
			return nil, err
		}
		return merkle.AppendHashes(nil, hs), nil
	case opLeaves:
		leaves, err := decodeLeaves(body)
		if err != nil {
			return nil, err
		}
		recs, err := s.Leaves(p, leaves)
		if err != nil {
			return nil, err
		}
		return appendRecords(nil, recs), nil
	case opPut:
		recs, err := decodeRecords(body)
		if err != nil {
			return nil, err
		}
		ok, ahead := splitAhead(recs, now())
		n, err := s.Put(p, ok)
		if err != nil {
			return nil, err
		}
		if ahead != nil {
			// The records in time are kept; the refusal is an answer,
			// not an error, so that the writer can tell it apart (the
			// transport carries errors as text).
			return append([]byte{putClockAhead}, ahead.Error()...), nil
		}
		return binary.AppendUvarint([]byte{putDone}, uint64(n)), nil
	case opGet:
		recs, err := s.Records(p, body)
		if err != nil {
			return nil, err
		}
		return appendRecords(nil, recs), nil
	case opScan:
		from, to, limit, err := decodeScan(body)
		if err != nil {
			return nil, err
		}
		recs, more, err := s.Scan(p, from, to, min(limit, maxScanKeys))
		if err != nil {
			return nil, err
		}
		b := []byte{0}
		if more {
			b[0] = 1
		}
		return appendRecords(b, recs), nil
	}
	return nil, fmt.Errorf("%w: op %d", ErrInvalidRequest, op)
}

// ErrInvalidRequest is returned (wrapped) for a request or an answer that
// does not decode.
var ErrInvalidRequest = errors.New("records: invalid request")

func header(op byte, p Partition) []byte {
	return binary.BigEndian.AppendUint32([]byte{op}, uint32(p))
}

func decodeHeader(b []byte) (op byte, p Partition, body []byte, err error) {
	if len(b) < 5 {
		return 0, 0, nil, fmt.Errorf("%w: %d bytes", ErrInvalidRequest, len(b))
	}
	return b[0], Partition(binary.BigEndian.Uint32(b[1:5])), b[5:], nil
}

func appendLeaves(b []byte, leaves []int) []byte {
	b = binary.AppendUvarint(b, uint64(len(leaves)))
	for _, l := range leaves {
		b = binary.AppendUvarint(b, uint64(l))
	}
	return b
}

// reader reads uvarints and byte strings in their shortest forms only.
type reader struct {
	b   []byte
	err error
}

func (r *reader) uvarint(what string) uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 || n != len(binary.AppendUvarint(nil, v)) {
		r.err = fmt.Errorf("%w: bad %s", ErrInvalidRequest, what)
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) bytes(n uint64, what string) []byte {
	if r.err != nil {
		return nil
	}
	if n > uint64(len(r.b)) {
		r.err = fmt.Errorf("%w: %s of %d bytes, %d left", ErrInvalidRequest, what, n, len(r.b))
		return nil
	}
	out := r.b[:n:n]
	r.b = r.b[n:]
	return out
}

func (r *reader) end() error {
	if r.err == nil && len(r.b) != 0 {
		r.err = fmt.Errorf("%w: %d bytes after the end", ErrInvalidRequest, len(r.b))
	}
	return r.err
}

func decodeLeaves(b []byte) ([]int, error) {
	r := reader{b: b}
	n := r.uvarint("count")
	if n > leavesPerCall {
		return nil, fmt.Errorf("%w: %d leaves in one request", ErrInvalidRequest, n)
	}
	leaves := make([]int, 0, n)
	for range n {
		l := r.uvarint("leaf")
		if r.err == nil && (l >= 1<<(4*Levels) || len(leaves) > 0 && l <= uint64(leaves[len(leaves)-1])) {
			return nil, fmt.Errorf("%w: leaf %d out of order or range", ErrInvalidRequest, l)
		}
		leaves = append(leaves, int(l))
	}
	return leaves, r.end()
}

func appendRecords(b []byte, recs []Record) []byte {
	b = binary.AppendUvarint(b, uint64(len(recs)))
	for i := range recs {
		r := &recs[i]
		b = binary.AppendUvarint(b, uint64(len(r.Key)))
		b = append(b, r.Key...)
		if r.Removal {
			b = append(b, kindRemoval)
			b = r.Version.ID.AppendBinary(b)
			continue
		}
		v := r.Version.Encode()
		b = append(b, kindVersion)
		b = binary.AppendUvarint(b, uint64(len(v)))
		b = append(b, v...)
	}
	return b
}

func decodeRecords(b []byte) ([]Record, error) {
	r := reader{b: b}
	n := r.uvarint("count")
	if n > uint64(len(b)) { // each record takes more than a byte
		return nil, fmt.Errorf("%w: %d records in %d bytes", ErrInvalidRequest, n, len(b))
	}
	recs := make([]Record, 0, n)
	for range n {
		key := r.bytes(r.uvarint("key length"), "key")
		kind := r.bytes(1, "kind")
		if r.err != nil {
			return nil, r.err
		}
		var rec Record
		switch kind[0] {
		case kindRemoval:
			id, err := vset.IDFromBinary(r.bytes(vset.IDLen, "removed ID"))
			if r.err != nil {
				return nil, r.err
			}
			if err != nil {
				return nil, fmt.Errorf("%w: %w", ErrInvalidRequest, err)
			}
			rec = Record{Removal: true, Version: vset.Version{ID: id}}
		case kindVersion:
			raw := r.bytes(r.uvarint("version length"), "version")
			if r.err != nil {
				return nil, r.err
			}
			v, err := vset.DecodeVersion(raw)
			if err != nil {
				return nil, fmt.Errorf("%w: %w", ErrInvalidRequest, err)
			}
			rec = Record{Version: v}
		default:
			return nil, fmt.Errorf("%w: kind %d", ErrInvalidRequest, kind[0])
		}
		rec.Key = key
		recs = append(recs, rec)
	}
	return recs, r.end()
}

func appendScan(b, from, to []byte, limit int) []byte {
	b = binary.AppendUvarint(b, uint64(len(from)))
	b = append(b, from...)
	if to == nil {
		b = binary.AppendUvarint(b, 0)
	} else {
		b = binary.AppendUvarint(b, uint64(len(to))+1)
		b = append(b, to...)
	}
	return binary.AppendUvarint(b, uint64(limit))
}

func decodeScan(b []byte) (from, to []byte, limit int, err error) {
	r := reader{b: b}
	from = r.bytes(r.uvarint("from length"), "from")
	if n := r.uvarint("to length"); n > 0 {
		to = r.bytes(n-1, "to")
		if to == nil && r.err == nil {
			to = []byte{}
		}
	}
	l := r.uvarint("limit")
	if err := r.end(); err != nil {
		return nil, nil, 0, err
	}
	return from, to, int(min(l, maxScanKeys)), nil
}

// RemotePeer is the Store of node to, reached through c; ctx bounds
// every call it makes.
func RemotePeer(ctx context.Context, c transport.Caller, to transport.Peer) Peer {
	return remote{call: func(req []byte) ([]byte, error) { return c.Call(ctx, to, Service, req) }}
}

// PeerOver is a replica reached through call, which delivers a request
// to a store's Answer and returns the answer: another site's, say, over
// its admin API.
func PeerOver(call func(req []byte) ([]byte, error)) Peer { return remote{call: call} }

type remote struct {
	call func(req []byte) ([]byte, error)
}

func (r remote) Root(p Partition) (merkle.Hash, error) {
	b, err := r.call(header(opRoot, p))
	if err != nil {
		return merkle.Hash{}, err
	}
	if len(b) != merkle.Size {
		return merkle.Hash{}, fmt.Errorf("%w: root of %d bytes", ErrInvalidRequest, len(b))
	}
	return merkle.Hash(b), nil
}

func (r remote) Children(p Partition, l int, parents []int) ([]merkle.Hash, error) {
	b, err := r.call(merkle.AppendRequest(header(opChildren, p), l, parents))
	if err != nil {
		return nil, err
	}
	return merkle.DecodeHashes(b)
}

func (r remote) Leaves(p Partition, leaves []int) ([]Record, error) {
	var out []Record
	for len(leaves) > 0 {
		chunk := leaves[:min(len(leaves), leavesPerCall)]
		leaves = leaves[len(chunk):]
		b, err := r.call(appendLeaves(header(opLeaves, p), chunk))
		if err != nil {
			return nil, err
		}
		recs, err := decodeRecords(b)
		if err != nil {
			return nil, err
		}
		out = append(out, recs...)
	}
	return out, nil
}

func (r remote) Records(p Partition, key []byte) ([]Record, error) {
	b, err := r.call(append(header(opGet, p), key...))
	if err != nil {
		return nil, err
	}
	return decodeRecords(b)
}

func (r remote) Scan(p Partition, from, to []byte, limit int) ([]Record, bool, error) {
	b, err := r.call(appendScan(header(opScan, p), from, to, limit))
	if err != nil {
		return nil, false, err
	}
	if len(b) == 0 || b[0] > 1 {
		return nil, false, fmt.Errorf("%w: answer to a scan", ErrInvalidRequest)
	}
	recs, err := decodeRecords(b[1:])
	return recs, b[0] == 1, err
}

// putBytes bounds the records one opPut carries, well under the
// transport's message limit.
const putBytes = 4 << 20

func (r remote) Put(p Partition, recs []Record) (int, error) {
	added := 0
	for len(recs) > 0 {
		n, size := 0, 0
		for n < len(recs) && (n == 0 || size < putBytes) {
			size += len(recs[n].Key) + len(recs[n].Version.Body) + 64
			n++
		}
		b, err := r.call(appendRecords(header(opPut, p), recs[:n]))
		if err != nil {
			return added, err
		}
		recs = recs[n:]
		if len(b) > 0 && b[0] == putClockAhead {
			return added, fmt.Errorf("%w (said %s)", ErrClockAhead, b[1:])
		}
		if len(b) == 0 || b[0] != putDone {
			return added, fmt.Errorf("%w: answer to a put", ErrInvalidRequest)
		}
		rd := reader{b: b[1:]}
		k := rd.uvarint("count")
		if err := rd.end(); err != nil {
			return added, err
		}
		added += int(k)
	}
	return added, nil
}
