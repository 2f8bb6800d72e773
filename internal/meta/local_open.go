package meta

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"
	pebblevfs "github.com/cockroachdb/pebble/v2/vfs"

	"github.com/redoubt-io/redoubt/internal/vfs"
)

// replicaState is what open learns of one replica before reconciling.
type replicaState struct {
	empty   bool
	id      []byte
	applied uint64
	base    uint64
}

// openReplica opens r's database, creating it if need be. It fails at
// once, never hangs, when the drive is too full to open on
// (TestLocalOpenOnFullDriveFailsFast) or when Pebble fails while it opens
// (TestLocalOpenDoesNotHangWhenPebbleFails).
func (l *Local) openReplica(r *replica, cache *pebble.Cache) error {
	if !l.cfg.testSkipOpenCheck {
		if err := CheckOpenSpace(l.fs, r.path); err != nil {
			return err
		}
	}
	if err := mkdirDurable(l.fs, r.path); err != nil {
		return err
	}
	opts := &pebble.Options{
		FS:           l.fs,
		Cache:        cache,
		MemTableSize: l.cfg.MemTableBytes,
		// NewBlockCache sizes the cache by this.
		MemTableStopWritesThreshold: MemTableStopWrites,
		Logger:                      pebbleLogger{r: r},
		EventListener:               r.eventListener(),
		FormatMajorVersion:          pebble.FormatNewest,
	}
	// Most point reads are of keys that may not exist (the head record of
	// a key being created): a Bloom filter per table answers "not here"
	// without reading a data block. Lower levels inherit L0's policy.
	opts.Levels[0].FilterPolicy = bloom.FilterPolicy(10)
	separateValues(opts, len(l.replicas))
	// Pebble opening on a disk without room retries its first flush
	// forever, or parks in a fatal error: it runs aside, and a failure it
	// reports meanwhile (eventListener, pebbleLogger) ends the wait. The
	// abandoned goroutine stays parked, holding nothing this store uses.
	type opened struct {
		db  *pebble.DB
		err error
	}
	done := make(chan opened, 1)
	r.opening.Store(true)
	go func() {
		db, err := pebble.Open(r.path, opts)
		done <- opened{db, err}
	}()
	var o opened
	select {
	case o = <-done:
	case <-r.failedCh:
		return fmt.Errorf("pebble failed while opening: %w", r.status().Err)
	}
	r.opening.Store(false)
	if o.err != nil {
		return o.err
	}
	fi, err := r.statDir()
	if err != nil {
		_ = closeDB(o.db)
		return err
	}
	r.db, r.info = o.db, fi
	return nil
}

// openSlack is what opening a Pebble database writes besides flushing its
// WALs and rewriting its manifest: a new WAL's first blocks, the OPTIONS
// file, markers, and this store's bookkeeping batch.
const openSlack = 1 << 20

// CheckOpenSpace returns an error wrapping ErrNoSpace, naming dir, its
// free space and the space needed, when the drive holding the Pebble
// database in dir (which need not exist yet) has too little free space to
// open it: room to flush what its WALs hold, to rewrite its manifest, and
// openSlack. A Pebble that runs out of space while opening does not fail:
// it retries its flush forever, or parks in a fatal error, so whoever
// opens one checks first.
func CheckOpenSpace(fsys pebblevfs.FS, dir string) error {
	need := uint64(openSlack)
	names, err := fsys.List(dir)
	missing := errors.Is(err, fs.ErrNotExist)
	if err != nil && !missing {
		return err
	}
	for _, n := range names {
		if !strings.HasSuffix(n, ".log") && !strings.HasPrefix(n, "MANIFEST-") {
			continue
		}
		if fi, err := fsys.Stat(fsys.PathJoin(dir, n)); err == nil {
			need += uint64(fi.Size())
		}
	}
	// The space of the nearest directory that exists: the drive's.
	at := dir
	for missing && fsys.PathDir(at) != at {
		at = fsys.PathDir(at)
		_, err := fsys.Stat(at)
		missing = errors.Is(err, fs.ErrNotExist)
	}
	u, err := fsys.GetDiskUsage(at)
	if err != nil || u.AvailBytes >= need {
		return nil // if the space is unknown, Pebble finds out
	}
	return fmt.Errorf("%s has %s free, opening the metadata there needs at least %s (free space on that drive, then start again): %w",
		dir, vfs.FormatBytes(u.AvailBytes), vfs.FormatBytes(need), ErrNoSpace)
}

// readState reads the bookkeeping keys of r.
func readState(r *replica) (replicaState, error) {
	var st replicaState
	var ver []byte
	get := func(k []byte) ([]byte, error) {
		var out []byte
		found, err := getRaw(r, k, func(v []byte) { out = bytes.Clone(v) })
		if err != nil || !found {
			return nil, err
		}
		return out, nil
	}
	ver, err := get(versionKey)
	if err != nil {
		return st, err
	}
	if ver == nil {
		st.empty = true
		return st, nil
	}
	if v, n := binary.Uvarint(ver); n <= 0 || v != localFormatVersion {
		return st, fmt.Errorf("meta: replica %s has unknown format version %x", r.dir, ver)
	}
	if st.id, err = get(idKey); err != nil {
		return st, err
	}
	for _, kv := range []struct {
		k []byte
		v *uint64
	}{{appliedKey, &st.applied}, {baseKey, &st.base}} {
		b, err := get(kv.k)
		if err != nil {
			return st, err
		}
		if len(b) != 8 {
			return st, fmt.Errorf("meta: replica %s: bad bookkeeping key %q", r.dir, kv.k)
		}
		*kv.v = binary.BigEndian.Uint64(b)
	}
	return st, nil
}

// openAndReconcile opens every replica and makes the healthy ones identical:
// a replica that missed recent commits replays them from the most advanced
// replica's log; one that lags beyond the log, is empty or belongs to another
// store is rebuilt from a copy of it. It returns the sequence of the last
// commit.
func (l *Local) openAndReconcile(cache *pebble.Cache) (uint64, error) {
	states := make([]replicaState, len(l.replicas))
	var openErrs []error
	for i, r := range l.replicas {
		_ = l.fs.RemoveAll(filepath.Join(r.dir, rebuildSubdir))
		if err := l.openReplica(r, cache); err != nil {
			r.fail(fmt.Errorf("open: %w", err))
			openErrs = append(openErrs, err)
			continue
		}
		st, err := readState(r)
		if err != nil {
			// An unknown format is not ours to overwrite.
			return 0, err
		}
		states[i] = st
	}
	if l.readReplica() == nil {
		return 0, fmt.Errorf("meta: open: no replica could be opened: %w: %w", ErrUnavailable, errors.Join(openErrs...))
	}

	// The store's identity is the one most non-empty replicas carry.
	counts := make(map[string]int)
	for i, r := range l.replicas {
		if r.healthy() && !states[i].empty {
			counts[string(states[i].id)]++
		}
	}
	if len(counts) == 0 {
		return 0, l.initialize()
	}
	var id string
	best, tie := 0, false
	for k, n := range counts {
		switch {
		case n > best:
			id, best, tie = k, n, false
		case n == best:
			tie = true
		}
	}
	if tie {
		return 0, fmt.Errorf("meta: open: replicas belong to %d different stores", len(counts))
	}

	src := -1
	for i, r := range l.replicas {
		if r.healthy() && !states[i].empty && string(states[i].id) == id &&
			(src < 0 || states[i].applied > states[src].applied) {
			src = i
		}
	}
	S, M := l.replicas[src], states[src].applied
	for i, r := range l.replicas {
		if i == src || !r.healthy() {
			continue
		}
		st := states[i]
		var err error
		switch {
		case st.empty || string(st.id) != id:
			l.log.Info("rebuilding metadata replica", "dir", r.dir, "from", S.dir, "reason", "new or foreign")
			err = l.rebuild(r, S, cache)
		case st.applied == M:
		case st.applied >= states[src].base && st.applied+l.cfg.LogRing >= M:
			l.log.Info("replaying commits on metadata replica", "dir", r.dir, "from", st.applied, "to", M)
			if err = replay(r, S, st.applied, M, l.ord); err != nil {
				l.log.Warn("replay failed; rebuilding metadata replica", "dir", r.dir, "err", err)
				err = l.rebuild(r, S, cache)
			}
		default:
			l.log.Info("rebuilding metadata replica", "dir", r.dir, "from", S.dir, "reason", "lags beyond log", "applied", st.applied, "source_applied", M)
			err = l.rebuild(r, S, cache)
		}
		if err != nil {
			r.fail(fmt.Errorf("reconcile: %w", err))
		}
	}
	// Every healthy replica now holds the state at M: restart the log.
	for _, r := range l.replicas {
		if !r.healthy() {
			continue
		}
		b := r.db.NewBatch()
		_ = b.DeleteRange([]byte{sysPrefix, 'l'}, []byte{sysPrefix, 'l' + 1}, nil)
		_ = b.Set(baseKey, u64(M), nil)
		if err := r.db.Apply(b, pebble.Sync); err != nil {
			r.fail(fmt.Errorf("reset log: %w", err))
		}
		_ = b.Close()
	}
	if l.readReplica() == nil {
		return 0, l.unavailable("open")
	}
	return M, nil
}

// initialize writes the bookkeeping keys of a new store to every replica.
func (l *Local) initialize() error {
	id := make([]byte, 16)
	if _, err := rand.Read(id); err != nil {
		return err
	}
	for _, r := range l.replicas {
		if !r.healthy() {
			continue
		}
		b := r.db.NewBatch()
		_ = b.Set(versionKey, binary.AppendUvarint(nil, localFormatVersion), nil)
		_ = b.Set(idKey, id, nil)
		_ = b.Set(appliedKey, u64(0), nil)
		_ = b.Set(baseKey, u64(0), nil)
		if err := r.db.Apply(b, pebble.Sync); err != nil {
			r.fail(fmt.Errorf("initialize: %w", err))
		}
		_ = b.Close()
	}
	if l.readReplica() == nil {
		return l.unavailable("initialize")
	}
	return nil
}

// replay brings r from commit from to commit to: for every key that a
// commit in (from, to] of src's log wrote, it copies src's current value, or
// its absence, in one synced batch, and so does it for the key's entry in
// the ordered index if ord covers it, and for the index's mark. r and src
// applied the same commits in the same order up to from, so keys no such
// commit wrote already agree.
func replay(r, src *replica, from, to uint64, ord *orderedIndex) error {
	it, err := src.db.NewIter(&pebble.IterOptions{LowerBound: logKey(from + 1), UpperBound: logKey(to + 1)})
	if err != nil {
		return err
	}
	defer it.Close()
	b := r.db.NewBatch()
	defer b.Close()
	var k []byte
	for ok := it.First(); ok; ok = it.Next() {
		seq := binary.BigEndian.Uint64(it.Key()[2:])
		entry, err := it.ValueAndErr()
		if err != nil {
			return err
		}
		p, keys, err := decodeLogEntry(entry)
		if err != nil {
			return fmt.Errorf("log entry %d: %w", seq, err)
		}
		for _, key := range keys {
			k = appendDataKey(k[:0], p, key)
			if err := copyKey(b, src, k); err != nil {
				return err
			}
			if ord.covers(key) {
				if err := copyKey(b, src, appendIndexKey(k[:0], key)); err != nil {
					return err
				}
			}
		}
	}
	if err := it.Error(); err != nil {
		return err
	}
	if err := copyKey(b, src, indexedKey); err != nil {
		return err
	}
	// Commits that reached no replica leave holes in the sequence; the
	// applied mark still moves to src's.
	_ = b.Set(appliedKey, u64(to), nil)
	return r.db.Apply(b, pebble.Sync)
}

// copyKey sets k in b to src's value of it, or deletes it if src has none.
func copyKey(b *pebble.Batch, src *replica, k []byte) error {
	found, err := getRaw(src, k, func(v []byte) { _ = b.Set(k, v, nil) })
	if err == nil && !found {
		_ = b.Delete(k, nil)
	}
	return err
}

// rebuild replaces r's database with a checkpoint of src's. The copy is
// assembled aside and renamed into place, so a crash leaves either the old
// database or the new one (and a leftover that the next open removes).
func (l *Local) rebuild(r, src *replica, cache *pebble.Cache) error {
	if err := closeDB(r.db); err != nil {
		l.log.Warn("closing replica before rebuild", "dir", r.dir, "err", err)
	}
	r.db = nil
	tmp := filepath.Join(r.dir, rebuildSubdir)
	if err := l.fs.RemoveAll(tmp); err != nil {
		return err
	}
	if err := src.db.Checkpoint(tmp, pebble.WithFlushedWAL()); err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	if err := l.fs.RemoveAll(r.path); err != nil {
		return err
	}
	if err := l.fs.Rename(tmp, r.path); err != nil {
		return err
	}
	if err := syncDir(l.fs, r.dir); err != nil {
		return err
	}
	return l.openReplica(r, cache)
}

// mkdirDurable creates dir and its missing parents, syncing the parent of
// each directory it creates: an entry never synced may vanish in a crash,
// and with it all that Pebble synced inside (TestPebbleOnMemFillsItsDrive).
func mkdirDurable(fsys pebblevfs.FS, dir string) error {
	var made []string
	for d := dir; ; d = fsys.PathDir(d) {
		if _, err := fsys.Stat(d); err == nil {
			break
		}
		made = append(made, d)
		if fsys.PathDir(d) == d {
			break
		}
	}
	if len(made) == 0 {
		return nil
	}
	if err := fsys.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for i := len(made) - 1; i >= 0; i-- {
		if err := syncDir(fsys, fsys.PathDir(made[i])); err != nil {
			return err
		}
	}
	return nil
}

func syncDir(fsys pebblevfs.FS, dir string) error {
	f, err := fsys.OpenDir(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}
