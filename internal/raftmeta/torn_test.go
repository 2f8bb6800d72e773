package raftmeta

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/record"
	"github.com/cockroachdb/pebble/v2/vfs"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/redoubt-io/redoubt/internal/meta"
)

// TestApplyOutlivesItsLogBatch: a crash keeps what was synced and any
// part of what was written since, not a prefix of it (a torn record of
// Pebble's WAL is skipped and the records after it replayed, as
// vfs.MemFS.CrashClone can leave it). A commit that needs no sync writes
// the new commit index in the log batch and the applied index in the
// apply batch; losing only the first must not leave a replica whose
// applied index is beyond its commit, which cannot be loaded and stays
// quarantined for good (cluster simulation seed 17757375522559235133:
// one replica at applied 56, commit 55, for the last 2 simulated
// minutes).
func TestApplyOutlivesItsLogBatch(t *testing.T) {
	const p = meta.Partition(3)
	c := newCluster(t, 1, []meta.Partition{p}, fastConfig)
	c.leader(p)
	keys := commitKeys(t, c.host(1), p, "k", 5)
	if len(keys) != 5 {
		t.Fatalf("%d of 5 commits acknowledged", len(keys))
	}
	applied := c.host(1).group(p).applied.Load()
	c.stop(1)
	dropLastHardStateBatch(t, c.dirs[1], p)

	h := c.start(1)
	eventually(t, 5*time.Second, "replica loaded", func() error {
		for _, st := range h.Groups() {
			if st.Partition != p {
				continue
			}
			if st.Quarantined {
				return errors.New("quarantined")
			}
			if st.Applied < applied {
				return fmt.Errorf("applied %d < %d", st.Applied, applied)
			}
			return nil
		}
		return errors.New("no replica")
	})
	c.leader(p)
	checkKeys(t, h, p, keys)
}

// dropLastHardStateBatch rewrites the WAL of the database in dir without
// the last batch that writes only p's hard state and is followed by one
// that writes p's applied index: that log batch lost, its apply batch
// kept.
func dropLastHardStateBatch(t *testing.T, dir string, p meta.Partition) {
	t.Helper()
	fs := vfs.Default
	path, recs := walRecords(t, dir)
	has := func(data, key []byte) (found bool, count uint32) {
		var b pebble.Batch
		if err := b.SetRepr(data); err != nil {
			return false, 0
		}
		br := b.Reader()
		for {
			_, k, _, ok, err := br.Next()
			if !ok || err != nil {
				break
			}
			found = found || bytes.Equal(k, key)
		}
		return found, b.Count()
	}
	drop := -1
	for i, data := range recs {
		if ok, n := has(data, groupKey(p, kindHard)); ok && n == 1 {
			for _, later := range recs[i+1:] {
				if ok, _ := has(later, groupKey(p, kindApply)); ok {
					drop = i
					break
				}
			}
		}
	}
	if drop < 0 {
		t.Fatalf("no hard state batch followed by an apply batch in %d records of %s", len(recs), path)
	}
	out, err := fs.Create(path+".new", vfs.WriteCategoryUnspecified)
	if err != nil {
		t.Fatal(err)
	}
	w := record.NewWriter(out)
	for i, data := range recs {
		if i == drop {
			continue
		}
		rw, err := w.Next()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := rw.Write(data); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := fs.Rename(path+".new", path); err != nil {
		t.Fatal(err)
	}
	t.Logf("dropped record %d of %d in %s", drop, len(recs), path)
}

// walRecords returns the path of the newest WAL of the database in dir
// and its records, in order.
func walRecords(t *testing.T, dir string) (string, [][]byte) {
	t.Helper()
	fs := vfs.Default
	names, err := fs.List(dir)
	if err != nil {
		t.Fatal(err)
	}
	var wal string
	var num uint64
	for _, name := range names {
		if n, err := strconv.ParseUint(strings.TrimSuffix(name, ".log"), 10, 64); err == nil && strings.HasSuffix(name, ".log") && n >= num {
			wal, num = name, n
		}
	}
	if wal == "" {
		t.Fatal("no WAL")
	}
	path := fs.PathJoin(dir, wal)
	f, err := fs.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	// record.NewReader takes the log's number as an internal type.
	newReader := reflect.ValueOf(record.NewReader)
	rr := newReader.Call([]reflect.Value{reflect.ValueOf(io.Reader(f)), reflect.ValueOf(num).Convert(newReader.Type().In(1))})[0].Interface().(*record.Reader)
	var recs [][]byte
	for {
		r, err := rr.Next()
		if err != nil {
			break
		}
		data, err := io.ReadAll(r)
		if err != nil {
			break
		}
		recs = append(recs, data)
	}
	return path, recs
}

// isSync says whether a WAL record is a sync's (Host.sync): a batch of
// no keys.
func isSync(data []byte) bool {
	var b pebble.Batch
	return b.SetRepr(data) == nil && b.Count() == 0
}

// batchSets returns the keys and values a WAL record's batch sets.
func batchSets(data []byte) (keys, vals [][]byte) {
	var b pebble.Batch
	if err := b.SetRepr(data); err != nil {
		return nil, nil
	}
	br := b.Reader()
	for {
		kind, k, v, ok, err := br.Next()
		if !ok || err != nil {
			return keys, vals
		}
		if kind == pebble.InternalKeyKindSet {
			keys, vals = append(keys, bytes.Clone(k)), append(vals, bytes.Clone(v))
		}
	}
}

// TestAppliedEntriesAreSyncedFirst: a follower cut off while entries are
// committed gets them, with the commit that covers them, in one message
// when the link heals, and appends and applies them in one cycle. The
// entries must be synced before the batch that applies them is written:
// a crash may keep that batch and lose the one before it (cycle). In the
// follower's WAL, between the record that writes an entry and the record
// that applies it, there must be a sync (an empty record).
func TestAppliedEntriesAreSyncedFirst(t *testing.T) {
	const p = meta.Partition(3)
	c := newCluster(t, 3, []meta.Partition{p}, fastConfig)
	l := c.leader(p)
	f := c.another(l)
	c.net.isolate([]uint64{f}, c.ids)
	keys := commitKeys(t, c.host(l), p, "k", 5)
	want := c.host(l).group(p).applied.Load()
	c.net.heal()
	eventually(t, 10*time.Second, "follower caught up", func() error {
		if got := c.host(f).group(p).applied.Load(); got < want {
			return fmt.Errorf("applied %d < %d", got, want)
		}
		return nil
	})
	c.stop(f)
	_, recs := walRecords(t, c.dirs[f])
	wrote := map[uint64]int{} // entry index: record that wrote it
	checked := 0
	for i, data := range recs {
		if isSync(data) {
			continue
		}
		keys, vals := batchSets(data)
		for j, k := range keys {
			for idx := uint64(1); idx <= want; idx++ {
				if bytes.Equal(k, logKey(p, idx)) {
					wrote[idx] = i
				}
			}
			if !bytes.Equal(k, groupKey(p, kindApply)) {
				continue
			}
			applied, _, err := decodeApplyState(vals[j])
			if err != nil {
				t.Fatal(err)
			}
			w, ok := wrote[applied]
			if !ok {
				continue // written before this WAL
			}
			checked++
			if !slices.ContainsFunc(recs[w+1:i], isSync) {
				t.Fatalf("record %d applies entry %d, written by record %d with no sync between", i, applied, w)
			}
		}
	}
	if checked == 0 {
		t.Fatal("no apply of an entry written in the same WAL")
	}
	t.Logf("%d applies checked; keys %v", checked, keys)
}

// TestAppliedBeyondCommitLoads: a replica that a crash left with its
// applied index beyond the commit on disk (as builds before the apply
// batch carried the hard state could) is loaded, its commit raised to
// what it applied, rather than quarantined for good.
func TestAppliedBeyondCommitLoads(t *testing.T) {
	const p = meta.Partition(3)
	c := newCluster(t, 1, []meta.Partition{p}, fastConfig)
	c.leader(p)
	keys := commitKeys(t, c.host(1), p, "k", 5)
	applied := c.host(1).group(p).applied.Load()
	c.stop(1)

	db, err := pebble.Open(c.dirs[1], &pebble.Options{})
	if err != nil {
		t.Fatal(err)
	}
	v, closer, err := db.Get(groupKey(p, kindHard))
	if err != nil {
		t.Fatal(err)
	}
	hs := &raftpb.HardState{}
	err = proto.Unmarshal(v, hs)
	closer.Close()
	if err != nil {
		t.Fatal(err)
	}
	hs.Commit = new(applied - 2)
	raw, err := proto.Marshal(hs)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Set(groupKey(p, kindHard), raw, pebble.Sync); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	h := c.start(1)
	eventually(t, 5*time.Second, "replica loaded", func() error {
		for _, st := range h.Groups() {
			if st.Partition == p && st.Quarantined {
				return errors.New("quarantined")
			}
			if st.Partition == p {
				return nil
			}
		}
		return errors.New("no replica")
	})
	c.leader(p)
	checkKeys(t, h, p, keys)
}

// TestCompactionFollowsDurableApply: compacting a log deletes entries
// that only the applied state then holds. A crash may keep the compaction's
// batch and lose an unsynced apply batch before it, so the apply state
// that covers the compacted entries must be synced first: in the WAL,
// between the record that applies up to an index and the record that
// compacts the log to it, there must be a sync (an empty record).
func TestCompactionFollowsDurableApply(t *testing.T) {
	const p = meta.Partition(3)
	c := newCluster(t, 1, []meta.Partition{p}, func(cfg *Config) {
		fastConfig(cfg)
		// The log is compacted to a quarter of this below the index
		// applied: to the one before it.
		cfg.SnapshotEntries = 4
	})
	c.leader(p)
	// Commits in waves of four at once: the last cycle of a wave applies
	// several entries and appends none, so no sync follows its apply
	// batch in that cycle, and its compaction reaches into that batch.
	var keys []string
	for w := range 10 {
		var wg sync.WaitGroup
		var mu sync.Mutex
		for i := range 4 {
			wg.Go(func() {
				acked := commitKeys(t, c.host(1), p, fmt.Sprintf("w%02d-%d-", w, i), 1)
				mu.Lock()
				keys = append(keys, acked...)
				mu.Unlock()
			})
		}
		wg.Wait()
	}
	if len(keys) != 40 {
		t.Fatalf("%d of 40 commits acknowledged", len(keys))
	}
	c.stop(1)
	_, recs := walRecords(t, c.dirs[1])
	appliedBy := map[uint64]int{} // applied index: record that wrote it
	checked := 0
	for i, data := range recs {
		keys, vals := batchSets(data)
		var base uint64
		compacts := false
		for j, k := range keys {
			switch {
			case bytes.Equal(k, groupKey(p, kindApply)):
				applied, _, err := decodeApplyState(vals[j])
				if err != nil {
					t.Fatal(err)
				}
				appliedBy[applied] = i
			case bytes.Equal(k, groupKey(p, kindBase)):
				to, _, err := decodeBase(vals[j])
				if err != nil {
					t.Fatal(err)
				}
				base, compacts = to, true
			}
		}
		if !compacts || slices.ContainsFunc(keys, func(k []byte) bool { return bytes.Equal(k, groupKey(p, kindApply)) }) {
			continue
		}
		// The first record that applied base or beyond.
		first := -1
		for idx, r := range appliedBy {
			if idx >= base && (first < 0 || r < first) {
				first = r
			}
		}
		if first < 0 {
			continue // applied before this WAL
		}
		checked++
		if !slices.ContainsFunc(recs[first+1:i], isSync) {
			t.Fatalf("record %d compacts the log to %d, applied by record %d with no sync between", i, base, first)
		}
	}
	if checked == 0 {
		t.Fatal("no compaction of entries applied in the same WAL")
	}
	t.Logf("%d compactions checked", checked)
	h := c.start(1)
	c.leader(p)
	checkKeys(t, h, p, keys)
}

// TestAppliedBehindBaseQuarantined: a replica whose log was compacted
// past its applied index (which compact's sync now prevents) lacks the
// entries between in both its log and its state. It is quarantined, not
// loaded into a raft that would panic, and the host's other groups serve.
func TestAppliedBehindBaseQuarantined(t *testing.T) {
	const p, q = meta.Partition(3), meta.Partition(4)
	c := newCluster(t, 1, []meta.Partition{p, q}, fastConfig)
	c.leader(p)
	c.leader(q)
	commitKeys(t, c.host(1), p, "k", 5)
	keys := commitKeys(t, c.host(1), q, "k", 5)
	applied := c.host(1).group(p).applied.Load()
	c.stop(1)

	db, err := pebble.Open(c.dirs[1], &pebble.Options{})
	if err != nil {
		t.Fatal(err)
	}
	b := db.NewBatch()
	b.DeleteRange(logKey(p, 1), logKey(p, applied+3), nil)
	b.Set(groupKey(p, kindBase), encodeBase(applied+2, 1), nil)
	if err := b.Commit(pebble.Sync); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	h := c.start(1)
	eventually(t, 5*time.Second, "replica quarantined", func() error {
		for _, st := range h.Groups() {
			if st.Partition == p && st.Quarantined {
				return nil
			}
		}
		return errors.New("not quarantined")
	})
	c.leader(q)
	checkKeys(t, h, q, keys)
}
