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
			// Pebble's own tooling uses 10: deep enough that compactions
			// rarely rewrite values to keep reads of them cheap.
			MaxBlobReferenceDepth: 10,
			// Objects are overwritten and deleted: once a fifth of a blob
			// file is garbage and it is five minutes old, its live values
			// are copied out and the space comes back.
			RewriteMinimumAge:  5 * time.Minute,
			TargetGarbageRatio: 0.2,
		}
	}
}
