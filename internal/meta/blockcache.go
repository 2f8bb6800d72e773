package meta

import "github.com/cockroachdb/pebble/v2"

// MemTableStopWrites is how many memtables a Pebble database of Redoubt's
// may hold before writes wait for a flush (Pebble's default, set
// explicitly because NewBlockCache counts on it).
const MemTableStopWrites = 2

// NewBlockCache returns a Pebble block cache that keeps blockBytes for
// blocks while dbs databases, each with memtables of memTableBytes, use
// it. Pebble charges every memtable's size to the block cache it is
// given: a cache the size of one memtable holds no block at all once that
// memtable has grown, and every read of a table then goes to the file
// (TestBlockCacheHoldsBlocksWithFullMemtables). The charge is accounting,
// not memory, so the cache is made larger by what the memtables can take.
func NewBlockCache(blockBytes int64, memTableBytes uint64, dbs int) *pebble.Cache {
	return pebble.NewCache(CacheCapacity(blockBytes, memTableBytes, dbs))
}

// CacheCapacity is the size of the cache NewBlockCache makes: the most
// memory the blocks and memtables of dbs databases take together.
func CacheCapacity(blockBytes int64, memTableBytes uint64, dbs int) int64 {
	return blockBytes + int64(dbs)*MemTableStopWrites*int64(memTableBytes)
}
