package meta

import (
	"context"
	"fmt"
	"testing"
)

// Reads of flushed tables are served from the block cache, however full
// the memtables have grown: Pebble charges memtables to the cache, and a
// cache no larger than they are held no block (every read went to the
// file, four times the CPU of a cached one).
func TestBlockCacheHoldsBlocksWithFullMemtables(t *testing.T) {
	cfg := DefaultLocalConfig(t.TempDir(), t.TempDir(), t.TempDir())
	cfg.CacheBytes = 1 << 20
	cfg.MemTableBytes = 1 << 20
	l, err := OpenLocal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ctx := context.Background()
	value := make([]byte, 1024)
	const keys = 4000 // 4 MiB: every memtable fills and flushes
	for i := 0; i < keys; i += 100 {
		var txn Txn
		for j := i; j < i+100; j++ {
			txn.Puts = append(txn.Puts, KV{Key: []byte(fmt.Sprintf("k%06d", j)), Value: value})
		}
		if _, err := l.Commit(ctx, 7, txn); err != nil {
			t.Fatal(err)
		}
	}
	for _, r := range l.replicas {
		if err := r.db.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	read := func() {
		for i := range 200 {
			if _, err := l.Get(ctx, 7, []byte(fmt.Sprintf("k%06d", i))); err != nil {
				t.Fatal(err)
			}
		}
	}
	read() // the first reads load the blocks
	m0 := l.replicas[0].db.Metrics().BlockCache
	read()
	m1 := l.replicas[0].db.Metrics().BlockCache
	hits, misses := m1.Hits-m0.Hits, m1.Misses-m0.Misses
	if hits == 0 || misses*10 > hits {
		t.Fatalf("reading 200 keys again: %d block cache hits, %d misses (cache holds %d bytes); want nearly all hits", hits, misses, m1.Size)
	}
}
