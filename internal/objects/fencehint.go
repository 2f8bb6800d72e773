package objects

import (
	"sync"

	"github.com/redoubt-io/redoubt/internal/meta"
)

// fenceHints remembers, per bucket incarnation and partition, the newest
// fence this node has read. The first round of a commit may take its
// view from a replica that lags (readView with meta.ReadOptions.Stale);
// a remembered fence is such a view, one read earlier, and saves reading
// the fence on every PUT. It is safe for the same reason the lagging
// replica is: the commit is conditional on the fence's revision, so a
// fence that moved since costs a conflict and a linearizable round, never
// a write under the old configuration (TestFenceHintOutdatedCostsAConflict).
// A hint is never used for an answer given without a commit.
type fenceHints struct {
	mu sync.RWMutex
	m  map[fenceHintKey]fenceHint
}

type fenceHintKey struct {
	id bucketID
	p  meta.Partition
}

type fenceHint struct {
	f   fenceRec
	rev uint64
}

// maxFenceHints bounds the memory: at about 100 bytes an entry, 16384
// hints cover 64 buckets written in all of 256 partitions. When full,
// the hints are dropped and relearned, a read each.
const maxFenceHints = 1 << 14

func (h *fenceHints) get(id bucketID, p meta.Partition) (fenceHint, bool) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	e, ok := h.m[fenceHintKey{id, p}]
	return e, ok
}

// learn records a fence read at rev, unless a newer one is known: reads
// answered by lagging replicas must not take a hint back in time.
func (h *fenceHints) learn(id bucketID, p meta.Partition, f fenceRec, rev uint64) {
	// Most reads find the fence they already know: they share the lock.
	if e, ok := h.get(id, p); ok && e.rev >= rev {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	k := fenceHintKey{id, p}
	if e, ok := h.m[k]; ok && e.rev >= rev {
		return
	}
	if h.m == nil || len(h.m) >= maxFenceHints {
		h.m = make(map[fenceHintKey]fenceHint)
	}
	h.m[k] = fenceHint{f: f, rev: rev}
}
