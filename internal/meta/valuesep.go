package meta

import (
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// SeparatedValueBytes is the size from which Pebble keeps a value in a
// blob file beside its tables rather than in them. Version records that
// hold an object's body inline (up to 128 KiB) are past it; head records,
// fences, counters and references stay in the tables. Compactions then
// move keys and small values only, so the write amplification of a store
// of small objects no longer grows with the bytes it holds, and the
// tables a listing seeks through stay small enough to cache (BENCHMARKS.md
// "Values beside the tables").
const SeparatedValueBytes = 1024

// SeparateValues has opts keep large values in blob files. Both metadata
// stores use it: a standalone node's replicas and a cluster node's Raft
// state. The database must be at pebble.FormatValueSeparation or later,
// which FormatNewest is; older stores are ratcheted when opened.
func SeparateValues(opts *pebble.Options) {
	opts.Experimental.ValueSeparationPolicy = func() pebble.ValueSeparationPolicy {
		return pebble.ValueSeparationPolicy{
			Enabled:     true,
			MinimumSize: SeparatedValueBytes,
			// How many blob files a table's values may be spread over
			// before a compaction rewrites them into new ones. An object
			// store's keys are random, so every flush's blob file spans
			// the whole key space and every table soon refers to many:
			// at Pebble's tooling default of 10, compactions rewrote
			// values nearly as often as without separation. Measured
			// (4 KiB values under random keys, 2.4 GB, one compaction at
			// a time): no separation 58 s and 6.1 bytes written per byte
			// stored; depth 10, 31 s and 3.9; depth 100, 18 s and 2.5;
			// depth 1,000, 20 s and 2.1 (BENCHMARKS.md "Values beside the
			// tables").
			MaxBlobReferenceDepth: 100,
			// Objects are overwritten and deleted: once a fifth of a blob
			// file is garbage and it is five minutes old, its live values
			// are copied out and the space comes back.
			RewriteMinimumAge:  5 * time.Minute,
			TargetGarbageRatio: 0.2,
		}
	}
}
