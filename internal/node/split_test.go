package node

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/redoubt-io/redoubt/internal/lincheck"
)

// TestSplitUnderLoad splits a running cluster's 256 metadata partitions
// to 512 and then 1,024 while clients send every request of lincheck's
// mix (PUTs plain and conditional, GETs and DELETEs of versions,
// listings, versioning changes, DeleteBucket and CreateBucket) through
// every node. The history must be linearizable (so no acknowledged
// write is lost or shown stale), every node must follow the split
// layout, and no object data may move: relocation finds nothing to do.
func TestSplitUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("a 3-node cluster of 1,024 metadata partitions")
	}
	rng, seed := testSeed(t, *linSeed, "lin.seed")
	const nodes = 3
	tc := startCluster(t, clusterOptions{nodes: nodes, zones: 3, partitions: 256, raftTick: 20 * time.Millisecond})
	tc.createBucket(0, "lin")
	tc.createBucket(0, "lin2")
	mix := &lincheck.Mix{
		Buckets:  []string{"lin", "lin", "lin2"},
		Churned:  []string{"lin2"},
		Keys:     []string{"a/1", "a/2", "b/3", "b/4", "c/5", "c/6"},
		Prefixes: []string{"", "a/", "b/"},
	}
	// Clients wait up to 10 s. No fault is injected here, so a request
	// slower than the fault tests' 2 s is one the machine's load slowed
	// (other packages' tests run beside this one), and every write given
	// up on is an unknown outcome that multiplies what the checker must
	// search: one run beside the simulation left 102 of 516 unknown, and
	// the checker undecided after 60 s.
	load := startS3Load(t, tc, mix, rng, nodes, 6, 10*time.Second)
	opsNow := load.ops
	// Each split begins once the clients have done some work since the
	// last, and runs while they go on.
	var splits []string
	for i, want := range []int{512, 1024} {
		for n := opsNow(); opsNow() < n+150; {
			time.Sleep(10 * time.Millisecond) // the clients' pace
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		took := time.Now()
		v, err := tc.node(i % nodes).cluster.Split(ctx)
		cancel()
		if err != nil {
			t.Fatalf("split %d through node %d: %v", i+1, i%nodes, err)
		}
		if v.MetaPartitions != want {
			t.Fatalf("split %d: %d metadata partitions, want %d", i+1, v.MetaPartitions, want)
		}
		splits = append(splits, fmt.Sprintf("to %d in %v at %d ops", want, time.Since(took).Round(time.Millisecond), opsNow()))
	}
	for n := opsNow(); opsNow() < n+150; {
		time.Sleep(10 * time.Millisecond)
	}
	history, dropped := load.finish()
	t.Logf("splits: %v", splits)
	t.Logf("%d failed reads or truncated listings left out of the history", dropped)
	t.Logf("answers: %s", answers(history))
	lincheck.Check(t, history, seed)
	for i := range nodes {
		n := tc.node(i)
		if l := n.cluster.Layout(); l == nil || len(l.Groups()) != 1024 {
			t.Errorf("node %d follows a layout of %v metadata partitions", i, l)
		}
		if p := n.repair.reloc.Progress(); p.TotalRefsMoved != 0 || p.TotalBytesMoved != 0 {
			t.Errorf("node %d moved %d refs, %d bytes after splits", i, p.TotalRefsMoved, p.TotalBytesMoved)
		}
	}
}
