package clustersim

import (
	"testing"
	"time"
)

// TestFiftyNodes runs 50 nodes in 5 zones in one process: they join
// through one, take a layout, serve a workload through every node while
// whole zones are lost and come back, and then every acknowledged write
// reads back and every replica of a partition is identical (check). It
// reports what a node costs in goroutines and heap.
func TestFiftyNodes(t *testing.T) {
	if testing.Short() {
		t.Skip("a minute of CPU")
	}
	cfg := DefaultConfig(50)
	cfg.Nodes, cfg.Zones, cfg.Partitions = 50, 5, 64
	cfg.Clients, cfg.Ops = 8, 60
	cfg.Faults.ZoneLoss = true
	start := time.Now()
	res := runSeed(t, cfg)
	t.Logf("%s: %d ops, %d events, %v simulated in %v", cfg, len(res.History), res.Steps, res.Elapsed.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
	check(t, res)
	if res.ZonesLost == 0 {
		t.Fatal("no zone was lost during the workload")
	}
	t.Logf("%d zone losses; per node, all up: %d goroutines, %.1f MiB of heap in use", res.ZonesLost, res.Goroutines/cfg.Nodes, float64(res.HeapBytes)/float64(cfg.Nodes)/(1<<20))
}
