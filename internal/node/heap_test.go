package node

import (
	"math"
	"runtime"
	"runtime/debug"
	"testing"
)

// The limit leaves the heap outside the caches the headroom the collector's
// default would, and the caches none: a node whose live heap is mostly
// cache is limited well below twice its live heap, and a node holding
// buffers for requests gets headroom for them.
func TestHeapLimitFor(t *testing.T) {
	const MiB = 1 << 20
	for _, c := range []struct {
		live, cache, other, want int64
	}{
		{live: 230 * MiB, cache: 192 * MiB, other: 20 * MiB, want: (230 + 128 + 20) * MiB},    // caches full, little else: the floor
		{live: 100 * MiB, cache: 192 * MiB, other: 10 * MiB, want: (100 + 128 + 10) * MiB},    // caches filling
		{live: 2000 * MiB, cache: 192 * MiB, other: 20 * MiB, want: (2000 + 1808 + 20) * MiB}, // request buffers: their own headroom
		{live: 300 * MiB, cache: 0, other: 0, want: 600 * MiB},                                // no caches: GOGC=100's goal
	} {
		if got := heapLimitFor(c.live, c.cache, c.other); got != c.want {
			t.Errorf("heapLimitFor(%d MiB live, %d MiB cache, %d MiB other) = %d MiB; want %d MiB",
				c.live/MiB, c.cache/MiB, c.other/MiB, got/MiB, c.want/MiB)
		}
		if g := heapLimitFor(c.live, c.cache, c.other); g > 2*c.live+c.other+heapFloor {
			t.Errorf("limit %d MiB is above what the collector's default allows", g/MiB)
		}
	}
}

// A node sets a memory limit while it runs, keeps it after collections,
// and lifts it when the last node closes.
func TestHeapGovernorSetsAndReleases(t *testing.T) {
	before := debug.SetMemoryLimit(-1)
	defer debug.SetMemoryLimit(before)
	release1 := addGoverned(192 << 20)
	release2 := addGoverned(192 << 20)
	limit := debug.SetMemoryLimit(-1)
	if limit == math.MaxInt64 || limit <= 0 {
		t.Fatalf("no memory limit set while nodes run (%d)", limit)
	}
	// A test process's live heap is far below the caches' 384 MiB: the
	// limit is that heap plus the floor, not twice the caches.
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	if limit < heapFloor || limit > heapFloor+2*int64(ms.Sys) {
		t.Fatalf("memory limit %d MiB with %d MiB mapped; want the floor (%d MiB) over the live heap", limit>>20, ms.Sys>>20, heapFloor>>20)
	}
	runtime.GC()
	runtime.GC() // the sentinel's finalizer runs after a collection that freed it; not awaited
	if l := debug.SetMemoryLimit(-1); l == math.MaxInt64 {
		t.Fatal("memory limit lifted by a collection while nodes run")
	}
	release1()
	release1() // twice is once
	if l := debug.SetMemoryLimit(-1); l == before {
		t.Fatal("memory limit lifted while a node still runs")
	}
	release2()
	if l := debug.SetMemoryLimit(-1); l != before {
		t.Fatalf("memory limit %d after the last node closed; want %d as before", l, before)
	}
}
