package meta

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/redoubt-io/redoubt/internal/vfs"
)

// LocalConfig configures a Local store.
type LocalConfig struct {
	// Dirs holds one directory per drive, 1 to 3 of them; each holds a full
	// replica of the metadata. More replicas survive more drive losses; each
	// one costs a write and an fsync per commit (fsyncs run in parallel).
	Dirs []string
	// Logger receives replica failures and Pebble's own messages. Nil
	// discards them.
	Logger *slog.Logger
	// CacheBytes is the block cache shared by all replicas. Reads go to one
	// replica at a time, so one cache serves them all.
	CacheBytes int64
	// MemTableBytes is the size of each replica's memtable. Larger tables
	// absorb more writes between flushes but take longer to replay from the
	// WAL at open and hold more memory (up to twice this per replica).
	MemTableBytes uint64
	// ReplicaTimeout bounds how long a commit waits for one replica to
	// apply and sync a batch. A replica that takes longer is marked failed,
	// so a hung drive delays commits by at most this much once. It must
	// exceed the worst fsync latency of a healthy but busy drive.
	ReplicaTimeout time.Duration
	// LogRing is the number of recent commits whose keys each replica keeps
	// in its log, so that a replica that missed some of them at a crash can
	// be brought up to date at open by copying those keys from a replica
	// that has them. A replica that lags further is rebuilt by copying a
	// healthy one whole. It costs up to LogRing times the keys of a commit
	// of disk per replica.
	LogRing uint64
	// FS is the file system the replicas are on. Nil means the operating
	// system's; tests and simulation give a vfs.Mem, whose mounted disks
	// fill up like real ones (see PebbleFS).
	FS vfs.FS
	// MinFree is the free space, in bytes, below which a replica's drive
	// takes no more commits: Commit fails with ErrNoSpace and changes
	// nothing, and succeeds again as soon as space is freed. What is left
	// belongs to Pebble, which must flush memtables and compact to go on,
	// and which, once a write of its own fails for lack of space, stops
	// for good (until restart). At least 2 × MemTableBytes, so that a
	// full memtable can always be flushed; 0 turns the check off.
	MinFree uint64
	// Reserve is the free space, in bytes, a replica's drive is meant to
	// keep (the node refuses new objects below it). While the drive has
	// less than twice that, a commit that deletes more keys than it puts
	// (one that shrinks the store, not one that replaces records) is
	// followed by a compaction of the replicas, so that the space of what
	// was deleted comes back at once: Pebble would otherwise keep deleted
	// values on disk until its own compactions reach them, which a store
	// that no longer grows may never do (TestLocalDeletesFreeSpace).
	// Twice: a store refused at its reserve is often just above it by the
	// time the deletes come. 0: no such compactions.
	Reserve uint64
	// FilterPrefixes names the keys, by prefix, that a filter in memory
	// tracks, so that most reads of such a key that was never written are
	// answered without reading the store (see presence). It costs about 3
	// bytes of memory per key covered (20 to 25 bits measured), and one
	// scan of them after open.
	// Nil: no filter.
	FilterPrefixes [][]byte
	// OrderedPrefixes names the keys, by prefix, that are also kept in one
	// order across partitions (ordered.go), so that ScanOrdered reads a
	// range of them in one pass. Each must live in one partition at a
	// time. It costs a second copy of each key and value covered, and, the
	// first time a store opens with other prefixes than before, one pass
	// over their keys to build it. Nil: no such index.
	OrderedPrefixes [][]byte

	// testSkipOpenCheck lets tests reach Pebble's own failures at open.
	testSkipOpenCheck bool
}

// DefaultLocalConfig returns a configuration for dirs with defaults sized
// for one node's object metadata with small objects stored inline.
func DefaultLocalConfig(dirs ...string) LocalConfig {
	return LocalConfig{
		Dirs: dirs,
		// 64 MiB keeps the hot part of listings and bucket records cached
		// without competing with the page cache that serves shard reads.
		CacheBytes: 64 << 20,
		// 64 MiB: about 15,000 inline 4 KiB objects per flush. Each flush
		// of keys that hash over the whole key space overlaps all of the
		// next level, so fewer, larger flushes rewrite less. Against
		// 16 MiB: a quarter fewer bytes compacted for the same writes,
		// 5% more small PUTs, and about 200 MiB more resident memory
		// (BENCHMARKS.md, "Larger memtables"); a restart, which replays
		// the WAL, stayed under 2 s at 10^7 objects.
		MemTableBytes: 64 << 20,
		// A healthy drive under load rarely takes more than a few seconds to
		// fsync; a dead one may never answer.
		ReplicaTimeout: 20 * time.Second,
		// Replicas differ at a crash only by commits in flight, far fewer
		// than 1024; the ring holds keys only, so it costs little disk.
		LogRing: 1024,
		// Twice the memtable: a memtable being flushed and a full one
		// waiting always fit.
		MinFree: 2 * (64 << 20),
	}
}

// maxLocalReplicas is the most replicas a Local store keeps: one per drive
// up to three, which survives the loss of any two drives.
const maxLocalReplicas = 3

// Validate reports whether c can be used.
func (c LocalConfig) Validate() error {
	if len(c.Dirs) < 1 || len(c.Dirs) > maxLocalReplicas {
		return fmt.Errorf("meta: %d replica dirs, want 1 to %d", len(c.Dirs), maxLocalReplicas)
	}
	seen := make(map[string]bool)
	for _, d := range c.Dirs {
		if d == "" {
			return errors.New("meta: empty replica dir")
		}
		if seen[d] {
			return fmt.Errorf("meta: replica dir %q given twice", d)
		}
		seen[d] = true
	}
	if c.CacheBytes < 0 {
		return fmt.Errorf("meta: negative cache size %d", c.CacheBytes)
	}
	if c.MemTableBytes < 1<<20 {
		return fmt.Errorf("meta: memtable size %d below 1 MiB", c.MemTableBytes)
	}
	if c.ReplicaTimeout <= 0 {
		return fmt.Errorf("meta: replica timeout %v must be positive", c.ReplicaTimeout)
	}
	if c.LogRing < 16 {
		return fmt.Errorf("meta: log ring %d below 16", c.LogRing)
	}
	if c.MinFree != 0 && c.MinFree < 2*c.MemTableBytes {
		return fmt.Errorf("meta: minimum free space %d below twice the memtable size %d", c.MinFree, c.MemTableBytes)
	}
	if c.Reserve != 0 && c.Reserve < c.MinFree {
		return fmt.Errorf("meta: reserve %d below the minimum free space %d", c.Reserve, c.MinFree)
	}
	return nil
}
