package node

import (
	"math"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
)

// The Go collector lets the heap grow to twice what the last collection
// found live (GOGC=100) before it collects again. Most of a node's live
// heap, in a build without cgo (the release binary and the container
// image), is the metadata store's block cache and memtables: Pebble
// allocates them on the Go heap when it cannot call malloc. That memory
// is reused, not garbage, and the default doubles it anyway: some 190 MiB
// of resident memory a node holds for nothing, and which followed the
// collector's peaks as the store grew (BENCHMARKS.md "The heap's
// headroom").
//
// So a node sets a soft memory limit (debug.SetMemoryLimit) after every
// collection: what is live, plus headroom equal to what is live outside
// the caches (what GOGC=100 would give a heap without them), at least
// heapFloor, plus what the runtime holds beside the heap. Memory that
// requests hold (upload and download buffers) is outside the caches, so
// the headroom grows with it and a busy node is not made to collect
// continuously. The collector's own goal still applies: the limit only
// ever lowers it. A GOMEMLIMIT or GOGC=off set by the operator is left
// alone, and a build with cgo, whose caches are off the Go heap, needs
// none of this.
//
// TestHeapLimitFor states the formula; TestHeapGovernorSetsAndReleases
// that a node sets the limit while it runs and lifts it when it closes.

// heapFloor is the least headroom the governor leaves.
const heapFloor = 128 << 20

// heapLimitFor returns the memory limit for a heap of live bytes of which
// caches are at most cache bytes, when the runtime holds other bytes
// beside the heap.
func heapLimitFor(live, cache, other int64) int64 {
	return live + max(live-cache, heapFloor) + other
}

// heapGovernor is the process's one governor: every node that starts adds
// its caches' capacity, and takes it away when it closes; with none left
// the limit is lifted.
var heapGovernor struct {
	mu     sync.Mutex
	cache  int64 // capacity of the caches of the nodes running
	nodes  int
	armed  bool // a collection's sentinel is waiting to be finalized
	before int64
}

// governHeap adds cache bytes of caches on the Go heap to the governor's
// and returns the func that takes them away. It does nothing where the
// caches are not on the Go heap or the operator chose the limit.
func governHeap(cache int64) (release func()) {
	if !cachesOnGoHeap || os.Getenv("GOMEMLIMIT") != "" || os.Getenv("GOGC") == "off" || cache <= 0 {
		return func() {}
	}
	return addGoverned(cache)
}

// addGoverned is governHeap without its conditions.
func addGoverned(cache int64) (release func()) {
	g := &heapGovernor
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.nodes == 0 {
		g.before = debug.SetMemoryLimit(-1)
	}
	g.nodes++
	g.cache += cache
	if !g.armed {
		g.armed = true
		armSentinel()
	}
	setHeapLimitLocked()
	var once sync.Once
	return func() {
		once.Do(func() {
			g.mu.Lock()
			defer g.mu.Unlock()
			g.nodes--
			g.cache -= cache
			if g.nodes == 0 {
				debug.SetMemoryLimit(g.before)
			}
		})
	}
}

// armSentinel makes an object whose finalizer runs after the next
// collection that finds it unreachable: it sets the limit for what that
// collection found live, and arms the next one while a node runs.
func armSentinel() {
	s := new([16]byte)
	runtime.SetFinalizer(s, func(*[16]byte) {
		g := &heapGovernor
		g.mu.Lock()
		defer g.mu.Unlock()
		if g.nodes == 0 {
			g.armed = false
			return
		}
		setHeapLimitLocked()
		armSentinel()
	})
}

var heapSamples = []metrics.Sample{
	{Name: "/gc/heap/live:bytes"},
	{Name: "/memory/classes/total:bytes"},
	{Name: "/memory/classes/heap/objects:bytes"},
	{Name: "/memory/classes/heap/unused:bytes"},
	{Name: "/memory/classes/heap/free:bytes"},
	{Name: "/memory/classes/heap/released:bytes"},
}

// setHeapLimitLocked sets the limit for the heap the last collection
// found live; heapGovernor.mu is held.
func setHeapLimitLocked() {
	metrics.Read(heapSamples)
	v := func(i int) int64 {
		if heapSamples[i].Value.Kind() != metrics.KindUint64 {
			return 0
		}
		return int64(min(heapSamples[i].Value.Uint64(), math.MaxInt64))
	}
	live := v(0)
	other := v(1) - v(2) - v(3) - v(4) - v(5) // stacks, the runtime's own structures
	debug.SetMemoryLimit(heapLimitFor(live, heapGovernor.cache, max(other, 0)))
}
