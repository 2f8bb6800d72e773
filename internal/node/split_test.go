package node

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/redoubt-io/redoubt/internal/admin"
	"github.com/redoubt-io/redoubt/internal/blocks"
	"github.com/redoubt-io/redoubt/internal/lincheck"
	"github.com/redoubt-io/redoubt/internal/lincheck/s3load"
	"github.com/redoubt-io/redoubt/internal/objects"
	"github.com/redoubt-io/redoubt/internal/placement"
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
	opsNow := load.Ops
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
	history, dropped := load.Finish()
	t.Logf("splits: %v", splits)
	t.Logf("%d failed reads or truncated listings left out of the history", dropped)
	t.Logf("answers: %s", s3load.Answers(history))
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

// TestSplitThenRebalanceSpreadsData: five partitions of EC 2+1 over six
// drives leave some drives with three slots and others with two (the
// fullest at 1.2x its share). Two splits make 20 data partitions and
// move no stored data; a rebalance then evens the drives out (within
// 1.05x) and relocation moves the data it places elsewhere, here from
// one drive of a node to another of the same node, since each node
// holds one shard of every part. Every
// object, written before the splits and after the rebalance, reads back
// byte-exact through every node, and every stored part sits on the
// drives its key's data partition names.
func TestSplitThenRebalanceSpreadsData(t *testing.T) {
	if testing.Short() {
		t.Skip("a 3-node cluster split and rebalanced")
	}
	policy := placement.Policy{K: 2, M: 1}
	tc := startCluster(t, clusterOptions{nodes: 3, zones: 3, partitions: 5, raftTick: 20 * time.Millisecond, policy: &policy})
	tc.createBucket(0, bucketName)
	all := []int{0, 1, 2}
	objs := tc.putObjects("before", 24, all)
	c := tc.node(0).cluster
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	v, err := c.View(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if v.Fullest <= 1.05 {
		t.Fatalf("test bug: the fullest drive holds %.3fx its share before any split", v.Fullest)
	}
	before := v.Fullest
	for _, want := range []int{10, 20} {
		if v, err = c.Split(ctx); err != nil {
			t.Fatal(err)
		}
		if v.DataPartitions != want || v.Fullest != before {
			t.Fatalf("split: %d data partitions, fullest drive %.3fx its share; want %d and %.3fx", v.DataPartitions, v.Fullest, want, before)
		}
	}
	tc.settle(v.Version, time.Minute)
	for i := range 3 {
		if p := tc.node(i).repair.reloc.Progress(); p.TotalRefsMoved != 0 {
			t.Fatalf("node %d moved %d parts after the splits alone", i, p.TotalRefsMoved)
		}
	}
	if _, err := c.Stage(ctx, admin.LayoutEdit{Op: "rebalance"}); err != nil {
		t.Fatal(err)
	}
	if v, err = c.Apply(ctx, 0); err != nil {
		t.Fatal(err)
	}
	if v.Fullest > 1.05 {
		t.Fatalf("after the rebalance the fullest drive holds %.3fx its share", v.Fullest)
	}
	took := tc.settle(v.Version, 2*time.Minute)
	var moved int64
	for i := range 3 {
		moved += tc.node(i).repair.reloc.Progress().TotalRefsMoved
	}
	t.Logf("fullest drive %.3fx its share before, %.3fx after; %d parts moved, settled in %v", before, v.Fullest, moved, took.Round(time.Millisecond))
	if moved == 0 {
		t.Fatal("the rebalance moved no stored part")
	}
	objs = append(objs, tc.putObjects("after", 12, all)...)
	tc.readAll("after the rebalance", objs, all)
	l := c.Layout()
	err = tc.node(0).objects.ForEachRef(context.Background(), func(r blocks.Ref) error {
		home := l.DataDrives(objects.DataKeyOf(l.Partitions, 0, r.ID))
		if !sameSet(home, r.Drives) {
			return fmt.Errorf("part %s on %v, its data partition on %v", r.ID, r.Drives, home)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func sameSet(a, b []string) bool {
	return len(a) == len(b) && !slices.ContainsFunc(a, func(s string) bool { return !slices.Contains(b, s) })
}
