package meta

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bits-and-blooms/bloom/v3"
	"github.com/cockroachdb/pebble/v2"
)

// A presence filter answers most reads of a key that was never written
// without reading the store. It covers the keys under the prefixes of
// LocalConfig.FilterPrefixes (an object's head: every PUT of a new key
// reads it twice, once for its view and once for its commit's condition,
// and each read of an absent key probes every level of the LSM, a cost
// that grows with the store).
//
// What it holds: every covered key that was present in the store when it
// opened, or has been put since. Commit adds the keys it puts before the
// write can be visible; a scan of the store, run once after it opens,
// adds the keys it found there, and the filter answers nothing until that
// scan is done. Deletes add and remove nothing. So once ready, a key the
// filter does not hold was never put since the store opened and was not
// present at open: it is absent, and a read of it may answer so at any
// instant from the check on. A key it holds may or may not be present
// (a Bloom filter's false positives, and deleted keys), and is read.
//
// TestPresenceFilterSeesEveryKey writes under the scan and across a
// restart and fails if a present key is ever answered absent; the
// conformance suite runs with every key covered
// (TestConformanceLocalFiltered).
type presence struct {
	prefixes [][]byte
	ready    atomic.Bool
	parts    sync.Map // Partition to *partFilter
	// answered counts reads answered from the filter (tests, metrics).
	answered atomic.Uint64
	built    chan struct{} // closed when the scan ends, ready or not
	chunk    int           // keys scanned per hold of the close lock
	// scanned holds the keys the scan found in partition scanning so
	// far, added when it leaves that partition (flushScanned); the scan's
	// goroutine only.
	scanning Partition
	scanned  [][]byte
}

func newPresence(prefixes [][]byte) *presence {
	p := &presence{prefixes: prefixes, built: make(chan struct{}), chunk: presenceChunk}
	if len(prefixes) == 0 {
		close(p.built)
	}
	return p
}

// covers reports whether key is under one of the filter's prefixes.
func (ps *presence) covers(key []byte) bool {
	for _, pre := range ps.prefixes {
		if bytes.HasPrefix(key, pre) {
			return true
		}
	}
	return false
}

func (ps *presence) part(p Partition) *partFilter {
	if f, ok := ps.parts.Load(p); ok {
		return f.(*partFilter)
	}
	f, _ := ps.parts.LoadOrStore(p, new(partFilter))
	return f.(*partFilter)
}

// add records that key of partition p may be present.
func (ps *presence) add(p Partition, key []byte) {
	if ps.covers(key) {
		ps.part(p).add(key)
	}
}

// absent reports whether key of p is known to be absent: the filter is
// ready, covers key, and does not hold it.
func (ps *presence) absent(p Partition, key []byte) bool {
	if !ps.ready.Load() || !ps.covers(key) {
		return false
	}
	f, ok := ps.parts.Load(p)
	if ok && f.(*partFilter).mayHold(key) {
		return false
	}
	ps.answered.Add(1)
	return true
}

// A partFilter is one partition's filter: Bloom filters of growing
// capacity (doubling from 1,024, and never smaller than the one before;
// the first after an open is sized for the keys found, addSized), each
// with a false-positive rate 0.8 times the one before (a scalable Bloom
// filter), so that it grows with the partition's keys and
// the chance that an absent key is held stays under 5 × firstFP (1%)
// whatever their number (TestPartFilterFalsePositives).
type partFilter struct {
	mu     sync.RWMutex
	blooms []*bloom.BloomFilter
	n      uint // keys added to the last filter
	limit  uint // its capacity
}

const (
	firstFilterKeys = 1024
	firstFP         = 0.002
	fpRatio         = 0.8
)

func (f *partFilter) mayHold(key []byte) bool {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.mayHoldLocked(key)
}

func (f *partFilter) mayHoldLocked(key []byte) bool {
	for _, b := range f.blooms {
		if b.Test(key) {
			return true
		}
	}
	return false
}

func (f *partFilter) add(key []byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	// A key held already is not added again, so that rewriting the same
	// keys does not grow the filter. Bits are only ever set, so a key
	// held once is held for good.
	if f.mayHoldLocked(key) {
		return
	}
	if f.n == f.limit {
		i := len(f.blooms)
		f.limit = max(firstFilterKeys<<i, f.limit)
		f.blooms = append(f.blooms, bloom.NewWithEstimates(f.limit, firstFP*math.Pow(fpRatio, float64(i))))
		f.n = 0
	}
	f.blooms[len(f.blooms)-1].Add(key)
	f.n++
}

// addSized adds keys, which the store held when it opened, in a filter of
// their own sized for them and a quarter more, which takes the keys added
// after. Sizing from the count, rather than growing by doubling from
// 1,024, keeps the filter near 16 bits a key after a start instead of 20
// to 27 (TestPartFilterSizedAtOpen).
func (f *partFilter) addSized(keys [][]byte) {
	if len(keys) == 0 {
		return
	}
	limit := max(firstFilterKeys, uint(len(keys))+uint(len(keys))/4)
	b := bloom.NewWithEstimates(limit, firstFP)
	for _, k := range keys {
		b.Add(k)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	// After whatever commits added meanwhile: adds go to the last filter.
	f.blooms = append(f.blooms, b)
	f.n, f.limit = uint(len(keys)), limit
}

// bytes returns the memory the filters of every partition take.
func (ps *presence) bytes() uint64 {
	var n uint64
	ps.parts.Range(func(_, v any) bool {
		n += v.(*partFilter).bytes()
		return true
	})
	return n
}

// bytes returns the memory its filters take.
func (f *partFilter) bytes() uint64 {
	f.mu.RLock()
	defer f.mu.RUnlock()
	var n uint64
	for _, b := range f.blooms {
		n += uint64(b.Cap() / 8)
	}
	return n
}

// presenceChunk is how many keys the scan reads under one hold of the
// store's close lock, so that Close waits for a chunk, not the scan.
const presenceChunk = 4096

// fillPresence scans the covered keys of every partition into the filter,
// then makes it ready. It runs once, in the background, after open;
// reads and commits go on meanwhile. A replica that fails under it is
// left for the next; if the store closes or none is healthy, the filter
// stays unready and answers nothing.
func (l *Local) fillPresence() {
	ps := l.pres
	defer close(ps.built)
	start := time.Now()
	var next []byte // Pebble key to resume from; nil: the start
	for pi := 0; pi < len(ps.prefixes); {
		done, resume, err := l.presenceChunk(ps.prefixes[pi], next)
		switch {
		case err == errClosed || err == errNoReplica:
			return
		case err != nil:
			continue // the replica failed: the next one takes over here
		case done:
			pi, next = pi+1, nil
		default:
			next = resume
		}
	}
	var keys uint64
	ps.parts.Range(func(_, v any) bool {
		f := v.(*partFilter)
		f.mu.RLock()
		for _, b := range f.blooms {
			keys += uint64(b.ApproximatedSize())
		}
		f.mu.RUnlock()
		return true
	})
	ps.ready.Store(true)
	l.log.Info("metadata presence filter ready", "keys", keys, "bytes", ps.bytes(), "took", time.Since(start).Round(time.Millisecond))
}

var errNoReplica = fmt.Errorf("meta: no healthy replica")

// underPrefix moves it, positioned on a data key if valid, to the first
// key from there on that lies under prefix within its partition, seeking
// past the rest of each partition, and returns its partition and its key
// within it; ok is false past the last partition.
func underPrefix(it *pebble.Iterator, prefix []byte, valid bool) (p Partition, key []byte, ok bool) {
	for valid {
		k := it.Key()
		if len(k) < dataKeyHeader {
			valid = it.Next()
			continue
		}
		p, key = Partition(binary.BigEndian.Uint32(k[1:dataKeyHeader])), k[dataKeyHeader:]
		switch {
		case bytes.HasPrefix(key, prefix):
			return p, key, true
		case bytes.Compare(key, prefix) < 0:
			valid = it.SeekGE(appendDataKey(nil, p, prefix))
		case p == System:
			return 0, nil, false
		default:
			valid = it.SeekGE(appendDataKey(nil, p+1, prefix))
		}
	}
	return 0, nil, false
}

// presenceChunk adds up to ps.chunk keys under prefix to the filter,
// from Pebble key next on (nil: the first partition). done: every
// partition's keys under prefix were read; else resume is where to go on.
func (l *Local) presenceChunk(prefix, next []byte) (done bool, resume []byte, err error) {
	l.closeMu.RLock()
	defer l.closeMu.RUnlock()
	if l.closed {
		return false, nil, errClosed
	}
	r := l.readReplica()
	if r == nil {
		return false, nil, errNoReplica
	}
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("pebble scan panicked: %v", p)
			readFail(r, err)
		}
	}()
	it, err := r.db.NewIter(&pebble.IterOptions{LowerBound: []byte{dataPrefix}, UpperBound: []byte{dataPrefix + 1}})
	if err != nil {
		readFail(r, err)
		return false, nil, err
	}
	defer it.Close()
	if next == nil {
		next = appendDataKey(nil, 0, prefix)
	}
	ps := l.pres
	valid := it.SeekGE(next)
	for n := 0; ; n++ {
		p, key, ok := underPrefix(it, prefix, valid)
		if !ok {
			break
		}
		if n >= ps.chunk {
			return false, bytes.Clone(it.Key()), nil
		}
		if ps.scanning != p {
			ps.flushScanned()
			ps.scanning = p
		}
		ps.scanned = append(ps.scanned, bytes.Clone(key))
		valid = it.Next()
	}
	if err := it.Error(); err != nil {
		readFail(r, err)
		return false, nil, err
	}
	ps.flushScanned()
	return true, nil, nil
}

// flushScanned adds the keys the scan found in the partition it was in,
// all at once, in a filter sized for them.
func (ps *presence) flushScanned() {
	if len(ps.scanned) > 0 {
		ps.part(ps.scanning).addSized(ps.scanned)
	}
	ps.scanned = nil
}
