package objects

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"

	"github.com/redoubt-io/redoubt/internal/blocks"
	"github.com/redoubt-io/redoubt/internal/meta"
)

// Incarnation names one run of one writer process: the node's ID and a
// random nonce drawn at start. A restarted process has a new nonce, so an
// intent of an older incarnation belongs to a writer that is dead.
type Incarnation struct {
	Node  string
	Nonce uint64
}

// newNonce returns a random nonzero nonce from r.
func newNonce(r io.Reader) uint64 {
	var b [8]byte
	for {
		_, _ = io.ReadFull(r, b[:]) // crypto/rand never fails on supported platforms
		if n := binary.BigEndian.Uint64(b[:]); n != 0 {
			return n
		}
	}
}

// Ref records. Every data Ref this package writes is named by a ref ID
// that carries its key's partition, and is tracked by one record
// 'r' refID in that partition:
//
//	intent  written (Cond: absent) before the first shard file exists;
//	        holds the writer's incarnation and the time.
//	live    written in the same Txn that commits the record naming the
//	        Ref (a version or a multipart part), conditional on the
//	        intent's revision; deleted in the same Txn that deletes or
//	        replaces that record.
//
// A Ref that a relocation moved (relocate.go) keeps its ID; its live record
// then also says where its shards are, so that copies left on other drives
// are known for garbage:
//
//	placed  live, with the drives the committed record names and the time
//	        of the move that put them there.
//	moving  live, with a move in flight: the drives it leaves and those it
//	        writes to, the mover's incarnation and the time it began.
//	        Written (Cond: the record's revision) before the first new
//	        shard file exists; the move's commit turns it placed.
//	reaping live, placed, while garbage collection removes the copies the
//	        drives no longer name: a move waits for it to end (or for its
//	        collector to be dead), so a copy being removed is never one a
//	        move is writing.
//
// A ref ID is 32 random hex digits then the partition as 8 hex digits:
// the route of its key (route.go), so that its record goes where the key's
// records go when a partition splits, or, for IDs made before routes,
// the key's base partition. IDs of any other shape (written before ref records existed, or by a data
// store without blocks.IDWriter) have no record and are never collected.
const (
	tagRef       = 'r'
	refRandHex   = 32
	refIDLen     = refRandHex + 8
	refRecFormat = 1

	refIntent  byte = 1
	refLive    byte = 2
	refPlaced  byte = 3
	refMoving  byte = 4
	refReaping byte = 5
)

// newRefID returns a fresh ref ID, drawn from r, for data of the key
// whose route is p.
func newRefID(r io.Reader, p meta.Partition) string {
	var b [refRandHex/2 + 4]byte
	_, _ = io.ReadFull(r, b[:refRandHex/2])
	binary.BigEndian.PutUint32(b[refRandHex/2:], uint32(p))
	return hex.EncodeToString(b[:])
}

// RefPartition returns the route (or, for an older ID, the base
// partition) whose ref record tracks data ID id, and false for an ID this
// package did not issue with a record.
func RefPartition(id string) (meta.Partition, bool) {
	if len(id) != refIDLen {
		return 0, false
	}
	var b [refIDLen / 2]byte
	if _, err := hex.Decode(b[:], []byte(id)); err != nil || hex.EncodeToString(b[:]) != id {
		return 0, false
	}
	return meta.Partition(binary.BigEndian.Uint32(b[refRandHex/2:])), true
}

func refKey(id string) []byte { return append([]byte{tagRef}, id...) }

// refRec is the value of a ref record.
type refRec struct {
	State byte
	Inc   Incarnation // intent, moving (the mover), reaping (the collector)
	Time  int64       // unix ms: the intent was written, the move or the reaping began
	// Drives are where the shards are (placed, moving, reaping): shard i
	// on drive Drives[i]. A live record does not know.
	Drives []string
	// Targets are where a move in flight writes shard i, when it differs
	// from Drives[i] (moving only).
	Targets []string
	// Moved is the unix ms of the last move committed (placed, moving,
	// reaping): readers that read the record before then may still read
	// the copies it left.
	Moved int64
}

// live reports whether r belongs to committed data.
func (r *refRec) live() bool { return r.State >= refLive }

// keeps reports whether shard i on drive d is one r still needs, moves in
// flight included when their mover is not dead.
func (r *refRec) keeps(d string, i int, dead func(Incarnation) bool) bool {
	switch r.State {
	case refLive:
		return true
	case refPlaced, refReaping:
		return i < len(r.Drives) && r.Drives[i] == d
	case refMoving:
		if i < len(r.Drives) && r.Drives[i] == d {
			return true
		}
		return i < len(r.Targets) && r.Targets[i] == d && !dead(r.Inc)
	}
	return false
}

// maxRefDrives bounds the drive lists of a ref record (K+M <= 256).
const maxRefDrives = 256

func (r *refRec) encode() []byte {
	switch r.State {
	case refLive:
		return []byte{refRecFormat, refLive}
	case refIntent:
		b := []byte{refRecFormat, refIntent}
		b = binary.BigEndian.AppendUint64(b, r.Inc.Nonce)
		b = binary.BigEndian.AppendUint64(b, uint64(r.Time))
		return append(b, r.Inc.Node...)
	}
	b := []byte{refRecFormat, r.State}
	b = binary.BigEndian.AppendUint64(b, uint64(r.Moved))
	b = binary.BigEndian.AppendUint64(b, uint64(r.Time))
	b = binary.BigEndian.AppendUint64(b, r.Inc.Nonce)
	b = appendShort(b, r.Inc.Node)
	for _, l := range [][]string{r.Drives, r.Targets} {
		b = binary.BigEndian.AppendUint16(b, uint16(len(l)))
		for _, d := range l {
			b = appendShort(b, d)
		}
	}
	return b
}

// appendShort appends s with a 2-byte length (drive IDs and node IDs are
// far shorter than 64 KiB).
func appendShort(b []byte, s string) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(len(s)))
	return append(b, s...)
}

func decodeRefRec(b []byte) (refRec, error) {
	if len(b) < 2 || b[0] != refRecFormat {
		return refRec{}, fmt.Errorf("ref record: %w", errCorrupt)
	}
	switch b[1] {
	case refLive:
		if len(b) != 2 {
			return refRec{}, fmt.Errorf("ref record: trailing bytes: %w", errCorrupt)
		}
		return refRec{State: refLive}, nil
	case refIntent:
		if len(b) < 18 {
			return refRec{}, fmt.Errorf("ref record: short intent: %w", errCorrupt)
		}
		return refRec{State: refIntent, Inc: Incarnation{
			Nonce: binary.BigEndian.Uint64(b[2:]),
			Node:  string(b[18:]),
		}, Time: int64(binary.BigEndian.Uint64(b[10:]))}, nil
	case refPlaced, refMoving, refReaping:
		d := fixedDec{b: b[2:]}
		r := refRec{State: b[1]}
		r.Moved = int64(d.u64())
		r.Time = int64(d.u64())
		r.Inc.Nonce = d.u64()
		r.Inc.Node = d.short()
		r.Drives = d.list()
		r.Targets = d.list()
		if d.bad || len(d.b) != 0 {
			return refRec{}, fmt.Errorf("ref record: malformed placement: %w", errCorrupt)
		}
		return r, nil
	}
	return refRec{}, fmt.Errorf("ref record: state %d: %w", b[1], errCorrupt)
}

// fixedDec reads the fixed-width fields of a placed ref record.
type fixedDec struct {
	b   []byte
	bad bool
}

func (d *fixedDec) take(n int) []byte {
	if d.bad || len(d.b) < n {
		d.bad = true
		return nil
	}
	v := d.b[:n]
	d.b = d.b[n:]
	return v
}

func (d *fixedDec) u64() uint64 {
	if v := d.take(8); v != nil {
		return binary.BigEndian.Uint64(v)
	}
	return 0
}

func (d *fixedDec) u16() int {
	if v := d.take(2); v != nil {
		return int(binary.BigEndian.Uint16(v))
	}
	return 0
}

func (d *fixedDec) short() string { return string(d.take(d.u16())) }

func (d *fixedDec) list() []string {
	n := d.u16()
	if n > maxRefDrives {
		d.bad = true
	}
	if n == 0 || d.bad {
		return nil
	}
	out := make([]string, 0, min(n, len(d.b)/2))
	for range n {
		out = append(out, d.short())
	}
	return out
}

var liveRefValue = (&refRec{State: refLive}).encode()

// errIntentLost is returned when a write's intent vanished before its
// commit: garbage collection judged its writer dead. Nothing is committed.
var errIntentLost = errors.New("objects: write intent lost")

// writeData stores r for partition p. With a data store that takes the
// ID, it first commits an intent naming this incarnation, so that no
// shard file exists without a record until the write is abandoned. rev is
// the intent's revision (0 without one).
func (s *Service) writeData(ctx context.Context, p meta.Partition, r io.Reader) (ref blocks.Ref, rev uint64, err error) {
	w, ok := s.data.(blocks.IDWriter)
	if !ok {
		ref, err = s.data.Write(ctx, s.placementOf(p), r)
		return ref, 0, err
	}
	id := newRefID(s.cfg.Rand, p)
	in := refRec{State: refIntent, Inc: s.cfg.Incarnation, Time: s.cfg.Now().UnixMilli()}
	k := refKey(id)
	// Registered before the intent can exist, so that garbage collection
	// never finds an intent of this incarnation whose write it does not
	// know to be running.
	s.beginWrite(id)
	rev, err = s.md.Commit(ctx, p, meta.Txn{
		Conds: []meta.Cond{{Key: k, Rev: 0}},
		Puts:  []meta.KV{{Key: k, Value: in.encode()}},
	})
	if err != nil {
		s.endWrite(id)
		return blocks.Ref{}, 0, metaErr("commit write intent", err)
	}
	ref, err = w.WriteID(ctx, s.placementOf(p), id, r)
	if err != nil {
		// The store removed what it could reach; the rest is an orphan
		// without a record once the intent is gone.
		s.dropIntent(ctx, p, id, rev)
		s.endWrite(id)
		return blocks.Ref{}, 0, err
	}
	return ref, rev, nil
}

// dropIntent deletes an intent that is still at rev; false when it is not
// (the write committed, or garbage collection took the intent), or when
// the deletion could not be made.
func (s *Service) dropIntent(ctx context.Context, p meta.Partition, id string, rev uint64) bool {
	k := refKey(id)
	_, err := s.md.Commit(context.WithoutCancel(ctx), p, meta.Txn{
		Conds:   []meta.Cond{{Key: k, Rev: rev}},
		Deletes: [][]byte{k},
	})
	if err != nil && !isConflict(err) {
		s.log.Warn("drop write intent", "ref", id, "err", err)
	}
	return err == nil
}

// abandon gives up data written by writeData and never committed: the
// intent goes first, so that a commit whose answer was lost (the intent
// became live) keeps its data; then the shards. A failure leaves an
// orphan for garbage collection.
func (s *Service) abandon(ctx context.Context, p meta.Partition, ref blocks.Ref, rev uint64) {
	if ref.ID == "" {
		return
	}
	defer s.endWrite(ref.ID)
	if rev != 0 && !s.dropIntent(ctx, p, ref.ID, rev) {
		return
	}
	s.deleteData(ctx, ref)
}

// beginWrite and endWrite bracket a data write of this incarnation, from
// before its intent is committed until its data is named by a committed
// record or abandoned.
func (s *Service) beginWrite(id string) {
	s.writes.Lock()
	if s.writes.m == nil {
		s.writes.m = map[string]struct{}{}
	}
	s.writes.m[id] = struct{}{}
	s.writes.Unlock()
}

func (s *Service) endWrite(id string) {
	s.writes.Lock()
	delete(s.writes.m, id)
	s.writes.Unlock()
}

// writing reports whether this incarnation's write of ref id is running.
func (s *Service) writing(id string) bool {
	s.writes.Lock()
	defer s.writes.Unlock()
	_, ok := s.writes.m[id]
	return ok
}

// claim adds to txn what turns the intent of ref into a live record:
// the commit fails unless the intent is still the writer's.
func claim(txn *meta.Txn, ref blocks.Ref, rev uint64) {
	if rev == 0 || ref.ID == "" {
		return
	}
	k := refKey(ref.ID)
	txn.Conds = append(txn.Conds, meta.Cond{Key: k, Rev: rev})
	txn.Puts = append(txn.Puts, meta.KV{Key: k, Value: liveRefValue})
}

// checkIntent reports errIntentLost when the intent of ref is no longer
// at rev; a commit conditional on it would keep failing.
func (s *Service) checkIntent(ctx context.Context, p meta.Partition, ref blocks.Ref, rev uint64) error {
	if rev == 0 || ref.ID == "" {
		return nil
	}
	it, err := s.md.Get(ctx, p, refKey(ref.ID))
	if errors.Is(err, meta.ErrNotFound) || err == nil && it.Rev != rev {
		return fmt.Errorf("%w: %s", errIntentLost, ref.ID)
	}
	if err != nil {
		return metaErr("read write intent", err)
	}
	return nil
}

// unref adds to txn the deletion of the ref records of refs, whose
// record the same Txn deletes or replaces.
func unref(txn *meta.Txn, refs ...blocks.Ref) {
	for _, r := range refs {
		if _, ok := RefPartition(r.ID); ok {
			txn.Deletes = append(txn.Deletes, refKey(r.ID))
		}
	}
}
