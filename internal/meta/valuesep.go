package meta

import (
	"syscall"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// SeparatedValueBytes is the size from which a standalone node's metadata
// store keeps a value in a blob file beside its tables rather than in
// them. Version records that hold a small object's body inline are past
// it; heads, fences, counters and ref records stay in the tables. A value
// in a blob file is written once by the flush that makes it and then
// stays where it is while compactions rewrite the keys that point to it
// (TestSeparatedValuesStayPut), so a store of small objects no longer
// rewrites their bodies at every level of the LSM: at 10^7 objects of
// 4 KiB that was most of the node's compaction work and, from about
// 5·10^6 objects, more than two cores could keep up with (BENCHMARKS.md
// "Values beside the tables, with the filter").
const SeparatedValueBytes = 1024

// blobReferenceDepth is how many blob files one table's values may be
// spread over before a compaction copies them into new ones. An object
// store's keys are random, so every flush's blob file spans the whole key
// space and soon every table refers to as many blob files as there were
// flushes: at a depth of 100 compactions copied every value again after
// about a hundred flushes. This depth is past the flushes of a store many
// times the size measured (10^7 objects of 4 KiB: some 700 flushes of
// 64 MiB).
const blobReferenceDepth = 10000

// separateValues has opts keep values from SeparatedValueBytes in blob
// files. A point read of such a value reads its key's table and then the
// blob file, so the file cache is sized for the blob files too: the dbs
// databases of the process share a quarter of its open-file limit (Go
// raises the soft limit to the hard one at start), each keeping at least
// Pebble's default of 1,000. The database must be
// at pebble.FormatValueSeparation or later, which FormatNewest is (Pebble
// ratchets an older store to it at open). Values an older binary wrote
// into the tables stay there until a compaction rewrites them.
func separateValues(opts *pebble.Options, dbs int) {
	opts.Experimental.ValueSeparationPolicy = func() pebble.ValueSeparationPolicy {
		return pebble.ValueSeparationPolicy{
			Enabled:               true,
			MinimumSize:           SeparatedValueBytes,
			MaxBlobReferenceDepth: blobReferenceDepth,
			// Objects are overwritten and deleted: once a fifth of a blob
			// file is garbage and it is five minutes old, Pebble copies
			// its live values out and the space comes back.
			RewriteMinimumAge:  5 * time.Minute,
			TargetGarbageRatio: 0.2,
		}
	}
	opts.MaxOpenFiles = openFileBudget(dbs)
}

// openFileBudget is how many files each of dbs Pebble databases may keep
// open.
func openFileBudget(dbs int) int {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 1000
	}
	return int(max(1000, min(lim.Cur/4/uint64(max(dbs, 1)), 1<<16)))
}
