package meta

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"
	pebblevfs "github.com/cockroachdb/pebble/v2/vfs"
)

// Local is a Store kept in Pebble on the drives of one node, mirrored on
// each of them. See the package documentation for its guarantees.
type Local struct {
	cfg      LocalConfig
	log      *slog.Logger
	fs       pebblevfs.FS
	cache    *pebble.Cache
	replicas []*replica
	reclaim  reclaimer

	// stripes serialize the check and apply of commits per partition.
	stripes [64]sync.Mutex
	// hot holds each partition's HotKeys (Partition to *HotKeys).
	hot sync.Map
	// pres answers reads of covered keys that were never written.
	pres *presence
	// ord is the ordered index's configuration (ordered.go).
	ord *orderedIndex

	// closeMu is held shared by every operation and exclusively by Close.
	closeMu sync.RWMutex
	closed  bool

	// order is held to give a commit its sequence number and queue it to
	// every replica, so all replicas apply commits in the same order. It
	// is never held across an fsync or a wait for a replica.
	order struct {
		sync.Mutex
		seq uint64
		buf []byte
	}

	// testSkip, when set, leaves replica i out of a commit without failing
	// it, as a crash between replicas would. Tests only.
	testSkip func(replica int) bool
}

var _ Store = (*Local)(nil)

// applyQueueDepth is the number of batches that may wait for one replica's
// applier; a commit that finds the queue full waits up to ReplicaTimeout.
const applyQueueDepth = 1024

// revGap is how far the revision sequence jumps at each open. A commit is
// visible to readers once applied, shortly before it is synced; one lost in
// a crash must not have its revision reused for another value.
const revGap = 1 << 32

// CacheCapacity is the most memory the store's block cache and memtables
// take together.
func (l *Local) CacheCapacity() int64 { return l.cache.MaxSize() }

// OpenLocal opens, or creates, the replicas in cfg.Dirs, brings them to the
// same state and returns the store. Replicas that cannot be opened are
// marked failed; it is an error if none can.
func OpenLocal(cfg LocalConfig) (*Local, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	l := &Local{cfg: cfg, log: log, fs: PebbleFS(cfg.FS), pres: newPresence(cfg.FilterPrefixes), ord: newOrderedIndex(cfg.OrderedPrefixes)}
	cache := NewBlockCache(cfg.CacheBytes, cfg.MemTableBytes, len(cfg.Dirs))
	l.cache = cache
	for i, d := range cfg.Dirs {
		l.replicas = append(l.replicas, newReplica(i, l.fs, d, log))
	}
	seq, err := l.openAndReconcile(cache)
	if err == nil {
		l.checkIndex(seq)
		if l.readReplica() == nil {
			err = l.unavailable("open")
		}
	}
	if err != nil {
		l.closeReplicas()
		cache.Unref()
		return nil, err
	}
	l.order.seq = seq + revGap
	for _, r := range l.replicas {
		if r.healthy() {
			r.start(applyQueueDepth)
		}
	}
	l.reclaim.start(l)
	if len(cfg.FilterPrefixes) > 0 {
		go l.fillPresence()
	}
	return l, nil
}

// Status reports the state of each replica, in the order of cfg.Dirs.
func (l *Local) Status() []ReplicaStatus {
	out := make([]ReplicaStatus, len(l.replicas))
	for i, r := range l.replicas {
		out[i] = r.status()
	}
	return out
}

// errClosed is returned by operations on a closed Local. It wraps
// ErrUnavailable: to a caller, a closing store is one that cannot serve.
var errClosed = fmt.Errorf("meta: store closed: %w", ErrUnavailable)

func (l *Local) unavailable(op string) error {
	return fmt.Errorf("meta: %s: no healthy metadata replica: %w", op, ErrUnavailable)
}

// readReplica returns the first healthy replica, or nil.
func (l *Local) readReplica() *replica {
	for _, r := range l.replicas {
		if r.healthy() {
			return r
		}
	}
	return nil
}

// readFail fails r after a read error that is not the key's absence.
func readFail(r *replica, err error) {
	r.fail(fmt.Errorf("read: %w", err))
}

// getRaw reads the stored value of a data key on r; found is false for an
// absent key. A panic or error from Pebble fails r and returns err.
func getRaw(r *replica, key []byte, fn func(val []byte)) (found bool, err error) {
	return getFrom(r.db, key, fn)
}

// getFrom is getRaw on any Pebble reader: the database or a snapshot of it.
func getFrom(rd pebble.Reader, key []byte, fn func(val []byte)) (found bool, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("pebble get panicked: %v", p)
		}
	}()
	v, c, err := rd.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	defer c.Close()
	fn(v)
	return true, nil
}

func decodeItem(v []byte) (rev uint64, val []byte, err error) {
	if len(v) < 8 {
		return 0, nil, fmt.Errorf("meta: stored value of %d bytes has no revision", len(v))
	}
	return binary.BigEndian.Uint64(v), v[8:], nil
}

func (l *Local) Get(ctx context.Context, p Partition, key []byte) (Item, error) {
	if err := ctx.Err(); err != nil {
		return Item{}, err
	}
	l.closeMu.RLock()
	defer l.closeMu.RUnlock()
	if l.closed {
		return Item{}, errClosed
	}
	if l.pres.absent(p, key) {
		return Item{}, ErrNotFound
	}
	k := appendDataKey(nil, p, key)
	for {
		r := l.readReplica()
		if r == nil {
			return Item{}, l.unavailable("get")
		}
		var it Item
		var derr error
		found, err := getRaw(r, k, func(v []byte) {
			var val []byte
			it.Rev, val, derr = decodeItem(v)
			it.Value = bytes.Clone(val)
			if it.Value == nil {
				it.Value = []byte{}
			}
		})
		if err != nil {
			readFail(r, err)
			continue
		}
		if derr != nil {
			return Item{}, derr
		}
		if !found {
			return Item{}, ErrNotFound
		}
		return it, nil
	}
}

var _ ManyGetter = (*Local)(nil)

// GetMany implements ManyGetter: the reads are answered from one Pebble
// snapshot of the first healthy replica (one Get needs none), and Hot
// reads from memory where they can be (HotKeys). Local is always
// current: at is 0.
func (l *Local) GetMany(ctx context.Context, p Partition, reads []Read, _ ReadOptions) ([]Item, uint64, error) {
	if err := ctx.Err(); err != nil {
		return nil, 0, err
	}
	out := make([]Item, len(reads))
	err := l.hotKeys(p).Read(reads, out, func(which []int) error { return l.readCold(ctx, p, reads, which, out) })
	if err != nil {
		return nil, 0, err
	}
	return out, 0, nil
}

// readCold answers reads[i] for each i of which into out[i], from one view:
// a Get when there is one key to read, else a snapshot.
func (l *Local) readCold(ctx context.Context, p Partition, reads []Read, which []int, out []Item) error {
	switch {
	case len(which) == 0:
		return nil
	case len(which) == 1 && !reads[which[0]].First:
		it, err := l.Get(ctx, p, reads[which[0]].Key)
		if errors.Is(err, ErrNotFound) {
			it, err = Item{}, nil
		}
		out[which[0]] = it
		return err
	}
	l.closeMu.RLock()
	defer l.closeMu.RUnlock()
	if l.closed {
		return errClosed
	}
	for {
		r := l.readReplica()
		if r == nil {
			return l.unavailable("get")
		}
		snap := r.db.NewSnapshot()
		var rerr error
		for _, i := range which {
			// Absent now, so absent in the snapshot, which is older.
			if rd := reads[i]; !rd.First && l.pres.absent(p, rd.Key) {
				out[i] = Item{}
				continue
			}
			if out[i], rerr = readOne(snap, p, reads[i]); rerr != nil {
				break
			}
		}
		snap.Close()
		var ce *corruptItemError
		if errors.As(rerr, &ce) {
			return ce.err
		}
		if rerr != nil {
			readFail(r, rerr)
			continue
		}
		return nil
	}
}

// hotKeys returns the HotKeys of partition p.
func (l *Local) hotKeys(p Partition) *HotKeys {
	if h, ok := l.hot.Load(p); ok {
		return h.(*HotKeys)
	}
	h, _ := l.hot.LoadOrStore(p, new(HotKeys))
	return h.(*HotKeys)
}

// corruptItemError is a stored value that does not decode: the data's
// fault, not the replica's.
type corruptItemError struct{ err error }

func (c *corruptItemError) Error() string { return c.err.Error() }

// readOne answers one Read from snap; an absent item is the zero Item.
func readOne(snap *pebble.Snapshot, p Partition, rd Read) (it Item, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("pebble read panicked: %v", r)
		}
	}()
	decode := func(k, v []byte) error {
		rev, val, derr := decodeItem(v)
		if derr != nil {
			return &corruptItemError{derr}
		}
		it = Item{Rev: rev, Value: bytes.Clone(val)}
		if it.Value == nil {
			it.Value = []byte{}
		}
		if rd.First {
			it.Key = bytes.Clone(k)
		}
		return nil
	}
	if !rd.First {
		var derr error
		if _, gerr := getFrom(snap, appendDataKey(nil, p, rd.Key), func(v []byte) { derr = decode(nil, v) }); gerr != nil {
			return Item{}, gerr
		}
		return it, derr
	}
	lower, upper := partitionBounds(p, rd.Key, PrefixEnd(rd.Key))
	iter, err := snap.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return Item{}, err
	}
	defer iter.Close()
	if iter.First() {
		v, verr := iter.ValueAndErr()
		if verr != nil {
			return Item{}, verr
		}
		if err := decode(iter.Key()[dataKeyHeader:], v); err != nil {
			return Item{}, err
		}
	}
	return it, iter.Error()
}

// Scan calls fn with key and item.Value valid only until fn returns; they
// point into Pebble's buffers. fn may call other methods of l.
func (l *Local) Scan(ctx context.Context, p Partition, start, end []byte, fn func(key []byte, item Item) bool) error {
	lower, upper := partitionBounds(p, start, end)
	return l.scanBounds(ctx, lower, upper, dataKeyHeader, 0, fn)
}

// scanBounds calls fn for the Pebble keys in [lower, upper), with their
// first keyHdr bytes cut and the first valHdr bytes of their values
// skipped before the item's revision and value. On a replica failure the
// scan resumes on the next replica after the last key it delivered.
func (l *Local) scanBounds(ctx context.Context, lower, upper []byte, keyHdr, valHdr int, fn func(key []byte, item Item) bool) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	l.closeMu.RLock()
	defer l.closeMu.RUnlock()
	if l.closed {
		return errClosed
	}
	if bytes.Compare(lower, upper) >= 0 {
		return nil
	}
	for {
		r := l.readReplica()
		if r == nil {
			return l.unavailable("scan")
		}
		next, done, err := scanReplica(r, lower, upper, keyHdr, valHdr, fn)
		if err == nil {
			return nil
		}
		if done {
			return err
		}
		readFail(r, err)
		if next != nil {
			lower = next
		}
	}
}

// scanReplica iterates [lower, upper) on r for scanBounds. On a Pebble
// error it returns the key to resume from (nil if nothing was delivered);
// done reports an error that is not the replica's fault.
func scanReplica(r *replica, lower, upper []byte, keyHdr, valHdr int, fn func(key []byte, item Item) bool) (next []byte, done bool, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("pebble scan panicked: %v", p)
		}
	}()
	it, err := r.db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return nil, false, err
	}
	defer it.Close()
	var last []byte
	for ok := it.First(); ok; ok = it.Next() {
		v, err := it.ValueAndErr()
		if err != nil {
			break
		}
		k := it.Key()
		if len(v) < valHdr {
			return nil, true, fmt.Errorf("meta: value of %q: %d bytes", k, len(v))
		}
		rev, val, err := decodeItem(v[valHdr:])
		if err != nil {
			return nil, true, err
		}
		last = append(last[:0], k...)
		if !fn(k[keyHdr:], Item{Value: val, Rev: rev}) {
			return nil, false, nil
		}
	}
	if err := it.Error(); err != nil {
		if last != nil {
			return append(last, 0), false, err
		}
		return nil, false, err
	}
	return nil, false, nil
}

func (l *Local) stripe(p Partition) *sync.Mutex {
	return &l.stripes[uint32(p)%uint32(len(l.stripes))]
}

func (l *Local) Commit(ctx context.Context, p Partition, txn Txn) (uint64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	l.closeMu.RLock()
	defer l.closeMu.RUnlock()
	if l.closed {
		return 0, errClosed
	}
	low, err := l.checkRoom()
	if err != nil {
		return 0, err
	}
	mu := l.stripe(p)
	mu.Lock()
	locked := true
	defer func() {
		if locked {
			mu.Unlock()
		}
	}()
	if err := l.checkConds(p, txn.Conds); err != nil {
		return 0, err
	}
	// Every earlier commit to p is applied on every replica (see below):
	// any replica has the counters' current values.
	txn, err = ResolveAdds(txn, func(key []byte) ([]byte, error) { return l.currentValue(p, key) })
	if err != nil {
		return 0, err
	}

	// The write is visible on a replica once it applies it: HotKeys
	// must know of it from before then until every replica has.
	hk := l.hotKeys(p)
	hk.BeginWrite(TxnKeys(&txn))
	for _, kv := range txn.Puts {
		l.pres.add(p, kv.Key)
	}
	seq, reqs, err := l.enqueue(p, &txn)
	if err != nil {
		hk.EndWrite()
		return 0, err
	}
	deadline := time.NewTimer(l.cfg.ReplicaTimeout)
	defer deadline.Stop()
	expired := false
	// Wait for the batch to be applied, and so visible, on every replica
	// before the next commit to p checks its conditions.
	for i, req := range reqs {
		if req == nil {
			continue
		}
		if err := l.wait(l.replicas[i], req.applied, deadline, &expired); err != nil {
			reqs[i] = nil
		}
	}
	hk.EndWrite()
	mu.Unlock()
	locked = false
	// Then wait for the syncs without the lock, so that concurrent commits
	// share them.
	ok := 0
	for i, req := range reqs {
		if req == nil {
			continue
		}
		if err := l.wait(l.replicas[i], req.synced, deadline, &expired); err == nil {
			ok++
		}
	}
	if ok == 0 {
		return 0, l.unavailable("commit")
	}
	if low && len(txn.Deletes) > len(txn.Puts) {
		l.reclaim.poke()
	}
	return seq, nil
}

// wait waits for one replica's answer. A replica that fails meanwhile, or
// does not answer before the deadline, is failed and yields an error.
func (l *Local) wait(r *replica, ch chan error, deadline *time.Timer, expired *bool) error {
	if *expired {
		select {
		case err := <-ch:
			return err
		default:
			r.fail(errors.New("timed out"))
			return errReplicaFailed
		}
	}
	select {
	case err := <-ch:
		return err
	case <-r.failedCh:
		// The answer may have been sent just before the failure.
		select {
		case err := <-ch:
			return err
		default:
			return errReplicaFailed
		}
	case <-deadline.C:
		*expired = true
		select {
		case err := <-ch:
			return err
		default:
			r.fail(fmt.Errorf("no answer within %v", l.cfg.ReplicaTimeout))
			return errReplicaFailed
		}
	}
}

// checkConds checks conds on a healthy replica. The caller holds the
// partition's stripe, so every earlier commit to the partition is applied
// on every healthy replica.
func (l *Local) checkConds(p Partition, conds []Cond) error {
	var k []byte
	hk := l.hotKeys(p)
retry:
	for {
		r := l.readReplica()
		if r == nil {
			return l.unavailable("commit")
		}
		for _, c := range conds {
			// A key HotKeys holds (a bucket's fence, on every write)
			// needs no read: every write to p runs under the stripe lock
			// the caller holds, and forgets the keys it writes before it
			// is visible, so a held item is the key's item now
			// (TestCommitCondsOnHotKeysSeeEveryWrite).
			if rev, ok := hk.Rev(c.Key); ok {
				if rev != c.Rev {
					return ErrConflict
				}
				continue
			}
			// So does a key the presence filter knows to be absent: puts
			// to p are made under the same lock.
			if c.Rev == 0 && l.pres.absent(p, c.Key) {
				continue
			}
			k = appendDataKey(k[:0], p, c.Key)
			var rev uint64
			var derr error
			_, err := getRaw(r, k, func(v []byte) { rev, _, derr = decodeItem(v) })
			if err != nil {
				readFail(r, err)
				continue retry
			}
			if derr != nil {
				return derr
			}
			if rev != c.Rev {
				return ErrConflict
			}
		}
		return nil
	}
}

// currentValue reads key's value in p from a readable replica; nil is
// absent.
func (l *Local) currentValue(p Partition, key []byte) ([]byte, error) {
	k := appendDataKey(nil, p, key)
	for {
		r := l.readReplica()
		if r == nil {
			return nil, l.unavailable("commit")
		}
		var val []byte
		var derr error
		_, err := getRaw(r, k, func(v []byte) {
			var rest []byte
			_, rest, derr = decodeItem(v)
			val = bytes.Clone(rest)
		})
		if err != nil {
			readFail(r, err)
			continue
		}
		return val, derr
	}
}

// enqueue gives txn the next sequence number and queues its batch to every
// healthy replica. reqs[i] is nil for a replica left out.
func (l *Local) enqueue(p Partition, txn *Txn) (uint64, []*applyReq, error) {
	l.order.Lock()
	defer l.order.Unlock()
	l.order.seq++
	seq := l.order.seq
	l.order.buf = encodeLogEntry(l.order.buf[:0], p, txn)
	reqs := make([]*applyReq, len(l.replicas))
	n := 0
	var timer *time.Timer
	for i, r := range l.replicas {
		if !r.healthy() || (l.testSkip != nil && l.testSkip(i)) {
			continue
		}
		b := r.db.NewBatch()
		l.fillBatch(b, p, txn, seq, l.order.buf)
		req := &applyReq{b: b, applied: make(chan error, 1), synced: make(chan error, 1)}
		select {
		case r.queue <- req:
		default:
			if timer == nil {
				timer = time.NewTimer(l.cfg.ReplicaTimeout)
				defer timer.Stop()
			}
			select {
			case r.queue <- req:
			case <-r.failedCh:
				continue
			case <-timer.C:
				r.fail(errors.New("apply queue full"))
				continue
			}
		}
		reqs[i] = req
		n++
	}
	if n == 0 {
		return 0, nil, l.unavailable("commit")
	}
	return seq, reqs, nil
}

// fillBatch writes the effects of commit seq on partition p to b: deletes,
// then puts (so a key both deleted and put ends up put), each with its
// entry in the ordered index if it has one, its log entry, the trim of the
// entry that falls out of the ring, and the applied mark.
func (l *Local) fillBatch(b *pebble.Batch, p Partition, txn *Txn, seq uint64, entry []byte) {
	var k, v, iv []byte
	for _, d := range txn.Deletes {
		k = appendDataKey(k[:0], p, d)
		_ = b.Delete(k, nil)
		if l.ord.covers(d) {
			k = appendIndexKey(k[:0], d)
			_ = b.Delete(k, nil)
		}
	}
	for _, kv := range txn.Puts {
		k = appendDataKey(k[:0], p, kv.Key)
		v = binary.BigEndian.AppendUint64(v[:0], seq)
		v = append(v, kv.Value...)
		_ = b.Set(k, v, nil)
		if l.ord.covers(kv.Key) {
			k = appendIndexKey(k[:0], kv.Key)
			iv = appendIndexValue(iv[:0], p, v)
			_ = b.Set(k, iv, nil)
		}
	}
	_ = b.Set(logKey(seq), entry, nil)
	if ring := l.cfg.LogRing; seq > ring {
		_ = b.Delete(logKey(seq-ring), nil)
	}
	_ = b.Set(appliedKey, u64(seq), nil)
	if l.ord.on() {
		_ = b.Set(indexedKey, l.ord.markAt(seq), nil)
	}
}

// Close waits for operations in progress, then closes every replica. It
// does not wait more than ReplicaTimeout for a failed one.
func (l *Local) Close() error {
	l.closeMu.Lock()
	defer l.closeMu.Unlock()
	if l.closed {
		return nil
	}
	l.closed = true
	l.reclaim.stop()
	l.order.Lock()
	for _, r := range l.replicas {
		if r.queue != nil {
			close(r.queue)
		}
	}
	l.order.Unlock()
	err := l.closeReplicas()
	l.cache.Unref()
	return err
}

// failedCloseWait bounds how long Close waits for the database of a failed
// replica to close: a goroutine parked inside Pebble may hold it forever.
const failedCloseWait = time.Second

// closeReplicas closes every open replica database. A failed replica's close
// runs aside and is abandoned after failedCloseWait.
func (l *Local) closeReplicas() error {
	var errs []error
	for _, r := range l.replicas {
		if r.db == nil {
			continue
		}
		db := r.db
		if r.healthy() {
			if r.exited != nil {
				// Every request was answered or timed out before Close
				// got closeMu, so the syncer drains promptly.
				<-r.exited
			}
			r.db = nil
			if err := closeDB(db); err != nil {
				errs = append(errs, fmt.Errorf("meta: close replica %s: %w", r.dir, err))
			}
			continue
		}
		r.db = nil
		done := make(chan struct{})
		go func() {
			defer close(done)
			if err := closeDB(db); err != nil {
				l.log.Warn("closing failed metadata replica", "dir", r.dir, "err", err)
			}
		}()
		t := time.NewTimer(failedCloseWait)
		select {
		case <-done:
		case <-t.C:
			l.log.Warn("abandoned close of failed metadata replica", "dir", r.dir)
		}
		t.Stop()
	}
	return errors.Join(errs...)
}

func closeDB(db io.Closer) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("pebble close panicked: %v", p)
		}
	}()
	return db.Close()
}
