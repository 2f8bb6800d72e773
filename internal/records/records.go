// Package records keeps, on one node, the records of the available
// buckets' keys that the node replicates, and brings two replicas'
// records together (Sync). An available bucket's key is a vset.State: a
// set of versions and a set of removed version IDs. Each version and each
// removal is a record, immutable once written, so a replica's copy of a
// partition is a set of records and two replicas converge by copying each
// other the records they lack, found by comparing merkle trees.
//
// Contract:
//
//  1. Put adds records and returns once they are durable (synced;
//     TestPutSurvivesACrash). A
//     record already held is not written again. Two versions of one ID
//     in one key are one record: the replica keeps the one whose encoding
//     sorts last, as vset.State.Add does, so replicas agree whatever came
//     first.
//  2. Get returns the State of a key: every record Put for it, on this
//     node, merged.
//  3. Each partition's records are summarised by a merkle.Tree whose
//     record hashes cover the record's key and content: equal sets of
//     records have equal trees. The trees are rebuilt from the records
//     when the store opens, so they always describe what is durable.
//  4. Sync makes two stores hold the union of their records of a
//     partition, exchanging only the records of the leaves whose digests
//     differ (TestSyncConverges). Records are never deleted by it.
package records

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"
	pebblevfs "github.com/cockroachdb/pebble/v2/vfs"
	"github.com/zeebo/blake3"

	"github.com/redoubt-io/redoubt/internal/merkle"
	"github.com/redoubt-io/redoubt/internal/meta"
	"github.com/redoubt-io/redoubt/internal/vset"
)

// Partition names a partition of the key space, as meta.Partition does.
type Partition uint32

// SiteFlag marks the partitions of buckets replicated to other sites
// (objects.BucketConfig.Replicate): partition p|SiteFlag holds the
// records of base partition p's keys in those buckets, on p's replicas,
// so that two sites compare and copy the records they share and no
// other. Base partitions stay far below it.
const SiteFlag = 1 << 30

// SitePartition is the partition of base partition p's keys in buckets
// replicated to other sites.
func SitePartition(p uint32) Partition { return Partition(p | SiteFlag) }

// DataFlag marks the partitions of a site's own notes about data another
// site wrote (package objects, sitedata.go): kept by base partition p's
// replicas in partition p|DataFlag, synced within the site, never sent
// to another (SiteRequest refuses them).
const DataFlag = 1 << 29

// DataPartition is base partition p's partition of notes about data.
func DataPartition(p uint32) Partition { return Partition(p | DataFlag) }

// Base is the base partition whose replicas keep partition p's records.
func (p Partition) Base() uint32 { return uint32(p) &^ (SiteFlag | DataFlag) }

// Levels is the depth of every partition's tree: 4,096 leaves.
const Levels = 3

// A Record is one version of a key, or the removal of one.
type Record struct {
	Key []byte
	// Version is the version this record holds, unless Removal.
	Version vset.Version
	// Removal: the record says that version Version.ID is removed; the
	// rest of Version is unused.
	Removal bool
}

// ErrCorrupt is returned (wrapped) for a stored record that does not
// decode.
var ErrCorrupt = errors.New("records: corrupt record")

// Keys in the store:
//
//	'k' p(4) esc(key) 0x00 0x01 id(vset.IDLen) kind(1)  -> version encoding, or empty for a removal
//	'h' p(4) hash(16)                                   -> the 'k' key of the record
//
// esc writes each 0x00 of the key as 0x00 0xFF, so the key ends at the
// first 0x00 0x01 and a partition's records are in the order of their
// keys' bytes (a range of keys is a range of the store: Scan). kind is 0
// for a version, 1 for a removal. The hash index orders a partition's
// records by hash, so a leaf's records are one range.
const (
	tagRecord = 'k'
	tagHash   = 'h'
)

const (
	kindVersion = 0
	kindRemoval = 1
)

// keyPrefix is what every stored record of key starts with, and nothing
// else does.
func keyPrefix(p Partition, key []byte) []byte {
	return append(keyStart(p, key), 0x00, 0x01)
}

// keyStart is the escaped key without its end: the least stored key of
// any key from key on.
func keyStart(p Partition, key []byte) []byte {
	b := append(make([]byte, 0, 5+len(key)+2+vset.IDLen+1), tagRecord)
	b = binary.BigEndian.AppendUint32(b, uint32(p))
	for _, c := range key {
		if c == 0 {
			b = append(b, 0x00, 0xFF)
			continue
		}
		b = append(b, c)
	}
	return b
}

// splitKey returns the key a stored record's key (after 'k' p) holds and
// the rest (the ID and kind).
func splitKey(rest []byte) (key, tail []byte, ok bool) {
	key = make([]byte, 0, len(rest))
	for i := 0; i < len(rest); i++ {
		if rest[i] != 0 {
			key = append(key, rest[i])
			continue
		}
		if i+1 == len(rest) {
			return nil, nil, false
		}
		switch rest[i+1] {
		case 0xFF:
			key = append(key, 0)
			i++
		case 0x01:
			return key, rest[i+2:], true
		default:
			return nil, nil, false
		}
	}
	return nil, nil, false
}

func recordKey(p Partition, r *Record) []byte {
	b := r.Version.ID.AppendBinary(keyPrefix(p, r.Key))
	if r.Removal {
		return append(b, kindRemoval)
	}
	return append(b, kindVersion)
}

func (r *Record) value() []byte {
	if r.Removal {
		return nil
	}
	return r.Version.Encode()
}

// hashOf names a stored record: BLAKE3 of its key and value, cut to
// merkle.Size bytes.
func hashOf(k, v []byte) merkle.Hash {
	h := blake3.New()
	var n [binary.MaxVarintLen64]byte
	h.Write(n[:binary.PutUvarint(n[:], uint64(len(k)))])
	h.Write(k)
	h.Write(v)
	var out merkle.Hash
	copy(out[:], h.Sum(nil))
	return out
}

func hashKey(p Partition, h merkle.Hash) []byte {
	return append(binary.BigEndian.AppendUint32([]byte{tagHash}, uint32(p)), h[:]...)
}

// leafBounds are the hash index's keys of leaf i of partition p.
func leafBounds(p Partition, i int) (lower, upper []byte) {
	var lo, hi merkle.Hash
	// A leaf is a prefix of 4·Levels bits: 12 bits, a byte and a half.
	bits := uint32(i) << (32 - 4*Levels)
	binary.BigEndian.PutUint32(lo[:4], bits)
	binary.BigEndian.PutUint32(hi[:4], bits+(1<<(32-4*Levels)))
	lower = hashKey(p, lo)
	if i == 1<<(4*Levels)-1 {
		return lower, binary.BigEndian.AppendUint32([]byte{tagHash}, uint32(p)+1)
	}
	return lower, hashKey(p, hi)
}

// Store is one node's records. Safe for concurrent use.
type Store struct {
	db *pebble.DB
	// mu orders Puts: a record's check, write and tree update are one
	// step, so a record is counted in its tree once.
	mu    sync.Mutex
	trees map[Partition]*merkle.Tree
	// life: reads and writes hold it shared, Close exclusively, so that
	// a call still under way when the node stops (a replicated write's
	// last copies) ends before the database closes, and one after gets
	// ErrClosed instead of a crash.
	life   sync.RWMutex
	closed bool
	// now, when set, is the clock Sync refuses versions ahead of.
	now func() time.Time
}

// RefuseAhead makes Sync leave with the peer the versions stamped more
// than MaxOffset ahead of now(), as Serve refuses them from writers; it
// returns ErrClockAhead then. Call it before the store is used.
func (s *Store) RefuseAhead(now func() time.Time) { s.now = now }

// ErrClosed is returned by a Store's calls after Close.
var ErrClosed = errors.New("records: store closed")

func (s *Store) enter() error {
	s.life.RLock()
	if s.closed {
		s.life.RUnlock()
		return ErrClosed
	}
	return nil
}

func (s *Store) leave() { s.life.RUnlock() }

// Open opens, or creates, the store in dir on fs (nil: the operating
// system's), and rebuilds the partitions' trees from what it holds.
// Pebble's messages go to log (nil: nowhere), its routine ones at Debug.
func Open(dir string, fs pebblevfs.FS, log *slog.Logger) (*Store, error) {
	if fs == nil {
		fs = pebblevfs.Default
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	db, err := pebble.Open(dir, &pebble.Options{FS: fs, Logger: meta.PebbleLogger{L: log}})
	if err != nil {
		return nil, fmt.Errorf("records: open %s: %w", dir, err)
	}
	s := &Store{db: db, trees: map[Partition]*merkle.Tree{}}
	if err := s.rebuild(); err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

// Close closes the store.
func (s *Store) Close() error {
	s.life.Lock()
	defer s.life.Unlock()
	if s.closed {
		return ErrClosed
	}
	s.closed = true
	return s.db.Close()
}

func (s *Store) rebuild() error {
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: []byte{tagHash}, UpperBound: []byte{tagHash + 1}})
	if err != nil {
		return err
	}
	defer it.Close()
	for it.First(); it.Valid(); it.Next() {
		k := it.Key()
		if len(k) != 5+merkle.Size {
			return fmt.Errorf("%w: hash index key of %d bytes", ErrCorrupt, len(k))
		}
		var h merkle.Hash
		copy(h[:], k[5:])
		s.treeLocked(Partition(binary.BigEndian.Uint32(k[1:5]))).Toggle(h)
	}
	return it.Error()
}

func (s *Store) treeLocked(p Partition) *merkle.Tree {
	t, ok := s.trees[p]
	if !ok {
		t, _ = merkle.New(Levels) // Levels is valid
		s.trees[p] = t
	}
	return t
}

// Put adds recs to partition p, durably; added counts the records that
// were new.
func (s *Store) Put(p Partition, recs []Record) (added int, err error) {
	if err := s.enter(); err != nil {
		return 0, err
	}
	defer s.leave()
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.db.NewBatch()
	defer b.Close()
	type toggle struct{ out, in merkle.Hash }
	var toggles []toggle
	// Of two records of one key in recs, the one whose value sorts last.
	pick := map[string]int{}
	for i := range recs {
		k := string(recordKey(p, &recs[i]))
		if j, ok := pick[k]; !ok || bytes.Compare(recs[i].value(), recs[j].value()) > 0 {
			pick[k] = i
		}
	}
	for i := range recs {
		r := &recs[i]
		k, v := recordKey(p, r), r.value()
		if pick[string(k)] != i {
			continue
		}
		old, closer, err := s.db.Get(k)
		switch {
		case errors.Is(err, pebble.ErrNotFound):
		case err != nil:
			return 0, fmt.Errorf("records: read: %w", err)
		default:
			keep := bytes.Compare(old, v) >= 0
			oldHash := hashOf(k, old)
			closer.Close()
			if keep {
				continue
			}
			// Two versions of one ID: the one that sorts last stays.
			b.Delete(hashKey(p, oldHash), nil)
			toggles = append(toggles, toggle{out: oldHash})
			added--
		}
		h := hashOf(k, v)
		b.Set(k, v, nil)
		b.Set(hashKey(p, h), k, nil)
		toggles = append(toggles, toggle{in: h})
		added++
	}
	if b.Empty() {
		return 0, nil
	}
	if err := b.Commit(pebble.Sync); err != nil {
		return 0, fmt.Errorf("records: write: %w", err)
	}
	t := s.treeLocked(p)
	for _, tg := range toggles {
		if tg.out != (merkle.Hash{}) {
			t.Toggle(tg.out)
		}
		if tg.in != (merkle.Hash{}) {
			t.Toggle(tg.in)
		}
	}
	return max(added, 0), nil
}

// Get returns the state of key in partition p.
func (s *Store) Get(p Partition, key []byte) (vset.State, error) {
	recs, err := s.Records(p, key)
	if err != nil {
		return vset.State{}, err
	}
	return StateOf(recs), nil
}

// Records returns the records of key in partition p, in key order.
func (s *Store) Records(p Partition, key []byte) ([]Record, error) {
	if err := s.enter(); err != nil {
		return nil, err
	}
	defer s.leave()
	// The key's end follows it, so every stored key that starts with
	// pre is one of this key's records.
	pre := keyPrefix(p, key)
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: pre, UpperBound: meta.PrefixEnd(pre)})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	var out []Record
	for it.First(); it.Valid(); it.Next() {
		k := it.Key()
		if len(k) != len(pre)+vset.IDLen+1 {
			return nil, fmt.Errorf("%w: key %x", ErrCorrupt, k)
		}
		r, err := decodeRecord(k[len(pre):], it.Value())
		if err != nil {
			return nil, err
		}
		r.Key = bytes.Clone(key)
		out = append(out, r)
	}
	return out, it.Error()
}

// StateOf merges records of one key into its state.
func StateOf(recs []Record) vset.State {
	var st vset.State
	for i := range recs {
		if recs[i].Removal {
			st.Remove(recs[i].Version.ID)
		} else {
			st.Add(recs[i].Version)
		}
	}
	return st
}

// decodeRecord decodes a record from the tail of its key (ID and kind)
// and its value; Key is left empty.
func decodeRecord(tail, v []byte) (Record, error) {
	id, err := vset.IDFromBinary(tail[:vset.IDLen])
	if err != nil {
		return Record{}, fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
	switch tail[vset.IDLen] {
	case kindRemoval:
		return Record{Removal: true, Version: vset.Version{ID: id}}, nil
	case kindVersion:
		ver, err := vset.DecodeVersion(v)
		if err != nil || ver.ID != id {
			return Record{}, fmt.Errorf("%w: version %s: %v", ErrCorrupt, id, err)
		}
		return Record{Version: ver}, nil
	}
	return Record{}, fmt.Errorf("%w: kind %d", ErrCorrupt, tail[vset.IDLen])
}

// Root is the digest of partition p's records.
func (s *Store) Root(p Partition) merkle.Hash {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.treeLocked(p).Root()
}

// Children answers a peer's merkle.Diff about partition p.
func (s *Store) Children(p Partition, l int, parents []int) ([]merkle.Hash, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.treeLocked(p).Children(l, parents)
}

// Leaves returns the records of partition p in the given leaves of its
// tree.
func (s *Store) Leaves(p Partition, leaves []int) ([]Record, error) {
	if err := s.enter(); err != nil {
		return nil, err
	}
	defer s.leave()
	var out []Record
	for _, i := range leaves {
		if i < 0 || i >= 1<<(4*Levels) {
			return nil, fmt.Errorf("records: leaf %d of %d", i, 1<<(4*Levels))
		}
		lower, upper := leafBounds(p, i)
		it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
		if err != nil {
			return nil, err
		}
		for it.First(); it.Valid(); it.Next() {
			k := it.Value()
			v, closer, err := s.db.Get(k)
			if err != nil {
				it.Close()
				return nil, fmt.Errorf("records: hash index names %x: %w", k, err)
			}
			r, err := recordOfKey(p, k, v)
			closer.Close()
			if err != nil {
				it.Close()
				return nil, err
			}
			out = append(out, r)
		}
		if err := it.Close(); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// recordOfKey decodes the record stored at k of partition p.
func recordOfKey(p Partition, k, v []byte) (Record, error) {
	pre := binary.BigEndian.AppendUint32([]byte{tagRecord}, uint32(p))
	if !bytes.HasPrefix(k, pre) {
		return Record{}, fmt.Errorf("%w: key %x outside partition %d", ErrCorrupt, k, p)
	}
	key, tail, ok := splitKey(k[len(pre):])
	if !ok || len(tail) != vset.IDLen+1 {
		return Record{}, fmt.Errorf("%w: key %x", ErrCorrupt, k)
	}
	r, err := decodeRecord(tail, v)
	if err != nil {
		return Record{}, err
	}
	r.Key = key
	return r, nil
}

// AsPeer is s as Sync reaches a peer, in the same process.
func AsPeer(s *Store) Peer { return localPeer{s} }

type localPeer struct{ *Store }

func (l localPeer) Root(p Partition) (merkle.Hash, error) { return l.Store.Root(p), nil }

// Peer is another replica's store of a partition, as Sync reaches it:
// typically over the network.
type Peer interface {
	Replica
	Root(p Partition) (merkle.Hash, error)
	Children(p Partition, l int, parents []int) ([]merkle.Hash, error)
	Leaves(p Partition, leaves []int) ([]Record, error)
}

// SyncStats says what a Sync exchanged.
type SyncStats struct {
	Leaves        int // leaves whose digests differed
	Fetched, Sent int // records copied from the peer, and to it
	// Got are the records of the differing leaves the peer held, which
	// this store now holds.
	Got []Record
}

// Sync brings s and peer to the union of their records of partition p:
// it finds the leaves whose digests differ and copies each side the
// records of those leaves that it lacks. Records written meanwhile may
// be left for the next Sync.
func Sync(s *Store, peer Peer, p Partition) (SyncStats, error) {
	var st SyncStats
	root, err := peer.Root(p)
	if err != nil {
		return st, err
	}
	// A copy, so that Puts go on while the peer is asked; what they add
	// meanwhile is found by the next Sync.
	s.mu.Lock()
	t := s.treeLocked(p).Clone()
	s.mu.Unlock()
	leaves, err := merkle.Diff(t, root, func(l int, parents []int) ([]merkle.Hash, error) {
		return peer.Children(p, l, parents)
	})
	if err != nil || len(leaves) == 0 {
		return st, err
	}
	st.Leaves = len(leaves)
	theirs, err := peer.Leaves(p, leaves)
	if err != nil {
		return st, err
	}
	ours, err := s.Leaves(p, leaves)
	if err != nil {
		return st, err
	}
	var ahead error
	if s.now != nil {
		theirs, ahead = splitAhead(theirs, s.now())
	}
	if st.Fetched, err = s.Put(p, theirs); err != nil {
		return st, err
	}
	st.Got = theirs
	if st.Sent, err = peer.Put(p, ours); err != nil {
		return st, err
	}
	// Versions stamped ahead of this node's clock stay with the peer
	// until the clock passes them: the next Sync brings them.
	return st, ahead
}

// ScanBytes is about the most one Scan returns: the records of a key
// are never split, so it may return one key's more.
const ScanBytes = 4 << 20

// Scan returns the records of the keys of partition p from from (inclusive)
// to to (exclusive; nil: the partition's end), in key order, of at most
// limit keys, every record of each; more says whether keys beyond those
// remain in the range. It stops at a key's end once the records passed
// ScanBytes, so that one answer stays bounded.
func (s *Store) Scan(p Partition, from, to []byte, limit int) (recs []Record, more bool, err error) {
	if err := s.enter(); err != nil {
		return nil, false, err
	}
	defer s.leave()
	lower := keyStart(p, from)
	upper := binary.BigEndian.AppendUint32([]byte{tagRecord}, uint32(p)+1)
	if to != nil {
		upper = keyStart(p, to)
	}
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return nil, false, err
	}
	defer it.Close()
	keys, size := 0, 0
	var last []byte
	for it.First(); it.Valid(); it.Next() {
		r, err := recordOfKey(p, it.Key(), it.Value())
		if err != nil {
			return nil, false, err
		}
		if last == nil || !bytes.Equal(r.Key, last) {
			if keys == limit || size >= ScanBytes {
				return recs, true, nil
			}
			keys++
			last = r.Key
		}
		size += len(it.Key()) + len(it.Value())
		recs = append(recs, r)
	}
	return recs, false, it.Error()
}

// Partitions returns the partitions this store holds records of.
func (s *Store) Partitions() []Partition {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Partition
	for p, t := range s.trees {
		if t.Root() != (merkle.Hash{}) {
			out = append(out, p)
		}
	}
	slices.Sort(out)
	return out
}

// Delete removes from partition p each of recs that it holds as given (a
// version whose stored encoding differs stays), durably. It is for
// records kept for a while on another's behalf (hints, package cluster):
// a replica's records are never deleted.
func (s *Store) Delete(p Partition, recs []Record) error {
	if err := s.enter(); err != nil {
		return err
	}
	defer s.leave()
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.db.NewBatch()
	defer b.Close()
	var gone []merkle.Hash
	done := map[string]bool{}
	for i := range recs {
		k, v := recordKey(p, &recs[i]), recs[i].value()
		if done[string(k)] {
			continue
		}
		old, closer, err := s.db.Get(k)
		if errors.Is(err, pebble.ErrNotFound) {
			continue
		}
		if err != nil {
			return fmt.Errorf("records: read: %w", err)
		}
		same := bytes.Equal(old, v)
		closer.Close()
		if !same {
			continue
		}
		h := hashOf(k, v)
		b.Delete(k, nil)
		b.Delete(hashKey(p, h), nil)
		gone = append(gone, h)
		done[string(k)] = true
	}
	if b.Empty() {
		return nil
	}
	if err := b.Commit(pebble.Sync); err != nil {
		return fmt.Errorf("records: delete: %w", err)
	}
	t := s.treeLocked(p)
	for _, h := range gone {
		t.Toggle(h)
	}
	return nil
}
