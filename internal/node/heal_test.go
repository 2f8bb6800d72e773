package node

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/redoubt-io/redoubt/internal/admin"
	"github.com/redoubt-io/redoubt/internal/blocks"
	"github.com/redoubt-io/redoubt/internal/meta"
	"github.com/redoubt-io/redoubt/internal/placement"
	"github.com/redoubt-io/redoubt/internal/store"
)

// removeNode takes node gone out of the layout through node via, as the
// cluster does by itself after the repair grace period (and an operator
// with `layout stage --remove` and `layout apply`), and returns the new
// layout version.
func (tc *testCluster) removeNode(via, gone int) uint64 {
	tc.t.Helper()
	c := tc.node(via).cluster
	var version uint64
	err := retryUnavailable(30*time.Second, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := c.Stage(ctx, admin.LayoutEdit{Op: "remove", Node: string(tc.nodes[gone].id)}); err != nil {
			return err
		}
		v, err := c.Apply(ctx, 0)
		version = v.Version
		return err
	})
	if err != nil {
		tc.t.Fatalf("removing node %d from the layout: %v", gone, err)
	}
	return version
}

// settle waits until every running node follows layout version (or a
// newer one), every partition's Raft group has exactly the voters that
// layout gives it, and no node has data left to move; it returns how
// long that took.
func (tc *testCluster) settle(version uint64, d time.Duration) time.Duration {
	tc.t.Helper()
	start := time.Now()
	var last string
	ok := pollUntil(d, func() bool {
		inLine, led, groups := 0, 0, 0
		for _, i := range tc.up() {
			n := tc.node(i)
			if n == nil {
				continue
			}
			l := n.cluster.Layout()
			if l == nil || l.Version < version {
				last = fmt.Sprintf("node %d does not follow layout %d yet", i, version)
				return false
			}
			groups = len(l.Groups())
			a, b := n.cluster.GroupsInLine()
			inLine, led = inLine+a, led+b
		}
		if led != groups || inLine != led {
			last = fmt.Sprintf("%d of %d partition groups led by running nodes, %d of them with the layout's voters", led, groups, inLine)
			return false
		}
		// Each node's pass moves the partitions it leads: a leadership
		// that moves while the passes run (a restarted node given back
		// its share of leaders) can leave a partition to a node that
		// already passed, so the round counts only if none moved.
		before := tc.leaders()
		for _, i := range tc.up() {
			n := tc.node(i)
			if n == nil {
				continue
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			left := n.repair.reloc.pass(ctx)
			cancel()
			if left {
				p := n.repair.reloc.Progress()
				last = fmt.Sprintf("node %d has data left to move: %d of %d refs moved, %d failed, last error %q", i, p.RefsMoved, p.RefsToMove, p.Failed, p.LastError)
				return false
			}
		}
		if after := tc.leaders(); !maps.Equal(before, after) {
			last = "partition leadership moved during the relocation passes"
			return false
		}
		return true
	})
	if !ok {
		tc.t.Fatalf("not settled within %v: %s", d, last)
	}
	return time.Since(start)
}

// leaders maps each partition to the running node that leads it.
func (tc *testCluster) leaders() map[meta.Partition]int {
	out := map[meta.Partition]int{}
	for _, i := range tc.up() {
		n := tc.node(i)
		if n == nil {
			continue
		}
		l := n.cluster.Layout()
		if l == nil {
			continue
		}
		for _, p := range l.Groups() {
			if n.cluster.Leads(meta.Partition(p)) {
				out[meta.Partition(p)] = i
			}
		}
	}
	return out
}

// refsOn lists the Refs whose shards committed metadata places on any of
// drives.
func (tc *testCluster) refsOn(via int, drives []string) []string {
	tc.t.Helper()
	var out []string
	err := tc.node(via).objects.ForEachRef(context.Background(), func(r blocks.Ref) error {
		for i, d := range r.Drives {
			if slices.Contains(drives, d) {
				out = append(out, fmt.Sprintf("%s shard %d on %s", r.ID, i, d))
			}
		}
		return nil
	})
	if err != nil {
		tc.t.Fatalf("listing refs: %v", err)
	}
	return out
}

// TestClusterRepairsALostNode is the acceptance case of self-healing: six
// nodes in three zones, EC 3+2, data written; one node dies for good and
// is taken out of the layout; once the cluster has rebuilt what it held
// onto the others, two more nodes die, and every object still reads back
// byte-exact. Without the rebuild, objects with a shard on the first node
// would be down to two of five shards.
func TestClusterRepairsALostNode(t *testing.T) {
	rng, _ := testSeed(t, *clusterSeed, "cluster.seed")
	ec, err := placement.ParseEC("3+2")
	if err != nil {
		t.Fatal(err)
	}
	tc := startCluster(t, clusterOptions{nodes: 6, zones: 3, raftTick: 20 * time.Millisecond, policy: &ec})
	all := []int{0, 1, 2, 3, 4, 5}
	tc.createBucket(0, bucketName)
	objs := tc.putObjects("before", 24, all)

	perm := rng.Perm(len(all))
	lost := perm[0]
	alive := without(all, lost)
	l := tc.node(alive[0]).cluster.Layout()
	ln, ok := l.Node(string(tc.nodes[lost].id))
	if !ok {
		t.Fatalf("node %d is not in the layout", lost)
	}
	var lostDrives []string
	for _, d := range ln.Drives {
		lostDrives = append(lostDrives, d.ID)
	}
	before := len(tc.refsOn(alive[0], lostDrives))
	if before == 0 {
		t.Fatalf("no data on node %d to rebuild: the test proves nothing", lost)
	}
	t.Logf("node %d dies for good; %d shards of stored data are on it", lost, before)
	tc.crash(lost)
	start := time.Now()
	version := tc.removeNode(alive[0], lost)
	took := tc.settle(version, 2*time.Minute)
	if left := tc.refsOn(alive[0], lostDrives); len(left) > 0 {
		t.Fatalf("after the repair, %d shards are still placed on the lost node: %v", len(left), left[:min(len(left), 5)])
	}
	t.Logf("layout %d without node %d; its %d shards rebuilt elsewhere in %v (settled in %v)", version, lost, before,
		time.Since(start).Round(time.Millisecond), took.Round(time.Millisecond))
	tc.readAll("one node lost and repaired", objs, alive[:1])

	more := []int{perm[1], perm[2]}
	t.Logf("then nodes %v die", more)
	for _, i := range more {
		tc.crash(i)
	}
	survivors := without(alive, more...)
	tc.readAll(fmt.Sprintf("node %d lost and repaired, then nodes %v down", lost, more), objs, survivors)
}

// TestClusterGrowsWhileServing adds a node to a running cluster: it
// joins, the layout that adds it is applied, the Raft groups take it in
// and the data of the partition slots it takes moves onto it; everything
// written before reads back.
func TestClusterGrowsWhileServing(t *testing.T) {
	// A fixed policy: with the one the cluster's size gives, a fifth node
	// would widen every partition to five drives, and nothing would move.
	ec, err := placement.ParseEC("2+1")
	if err != nil {
		t.Fatal(err)
	}
	tc := startCluster(t, clusterOptions{nodes: 4, zones: 2, raftTick: 20 * time.Millisecond, policy: &ec})
	tc.createBucket(0, bucketName)
	objs := tc.putObjects("before", 24, []int{0, 1, 2, 3})
	added, version := tc.addNode(1, "zone-c")
	t.Logf("node %d added: layout %d, settled in %v", added, version, tc.settle(version, time.Minute).Round(time.Millisecond))
	l := tc.node(added).cluster.Layout()
	ln, _ := l.Node(string(tc.nodes[added].id))
	var drives []string
	for _, d := range ln.Drives {
		drives = append(drives, d.ID)
	}
	if got := tc.refsOn(0, drives); len(got) == 0 {
		t.Errorf("no data moved onto the new node")
	}
	tc.readAll("after the new node took its share", objs, []int{added, 0})
}

// TestClusterReadmitsAReturningNode: a node taken out of the layout while
// it was down comes back with the shards it held, now stale (the cluster
// rebuilt them elsewhere). It is put back by another layout change; its
// stale shards are never served (every record names the new copies) and
// garbage collection removes them; every object reads back exact
// through it.
func TestClusterReadmitsAReturningNode(t *testing.T) {
	ec, err := placement.ParseEC("2+1")
	if err != nil {
		t.Fatal(err)
	}
	tc := startCluster(t, clusterOptions{nodes: 4, zones: 2, raftTick: 20 * time.Millisecond, policy: &ec})
	all := []int{0, 1, 2, 3}
	tc.createBucket(0, bucketName)
	objs := tc.putObjects("before", 18, all)
	const gone = 3
	l := tc.node(0).cluster.Layout()
	ln, _ := l.Node(string(tc.nodes[gone].id))
	var drives []string
	for _, d := range ln.Drives {
		drives = append(drives, d.ID)
	}
	held := len(tc.refsOn(0, drives))
	if held == 0 {
		t.Fatalf("node %d holds no data: the test proves nothing", gone)
	}
	tc.crash(gone)
	tc.settle(tc.removeNode(0, gone), time.Minute)
	if left := tc.refsOn(0, drives); len(left) > 0 {
		t.Fatalf("%d shards still placed on the removed node", len(left))
	}

	tc.restart(gone)
	stale := 0
	for _, d := range tc.node(gone).drives {
		if err := d.Walk(context.Background(), func(store.ShardInfo) error { stale++; return nil }); err != nil {
			t.Fatal(err)
		}
	}
	if stale < held {
		t.Fatalf("the returning node has %d shard files, want at least the %d it held", stale, held)
	}
	// Back in the layout, as the System leader does for a node it took
	// out that is alive again: the node staged its own addition when it
	// joined again.
	c := tc.node(0).cluster
	staged := pollUntil(30*time.Second, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		v, err := c.View(ctx)
		return err == nil && len(v.Staged) > 0
	})
	if !staged {
		t.Fatalf("node %d joined again but its addition was not staged", gone)
	}
	err = retryUnavailable(30*time.Second, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, err := c.Apply(ctx, 0)
		return err
	})
	if err != nil {
		t.Fatalf("re-admitting node %d: %v", gone, err)
	}
	tc.settle(tc.node(0).cluster.Layout().Version, time.Minute)
	tc.readAll("node back in the layout", objs, []int{gone})

	// Its stale shards go at the first collection past the grace. They
	// are seconds old here: MinAge, which only spares reads of writes in
	// flight, would skip them all.
	g := tc.node(gone).gc
	g.cfg.LeftoverGrace, g.cfg.MinAge = 0, 0
	st := g.Pass(context.Background())
	if st.Errors > 0 {
		t.Fatalf("gc on the returning node: %s", st)
	}
	var named, files int
	want := map[string]bool{}
	err = tc.node(0).objects.ForEachRef(context.Background(), func(r blocks.Ref) error {
		for i, d := range r.Drives {
			want[fmt.Sprintf("%s/%d@%s", r.ID, i, d)] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range tc.node(gone).drives {
		err := d.Walk(context.Background(), func(si store.ShardInfo) error {
			files++
			if want[fmt.Sprintf("%s/%d@%s", si.Name.ID, si.Name.Shard, d.ID())] {
				named++
			} else {
				t.Errorf("shard %s on drive %s is named by no record and survived collection", si.Name, d.ID())
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("returning node: %d stale shard files, gc removed %d (%d left by moves); %d files left, all named by records", stale, st.Removed, st.Leftovers, files)
	tc.readAll("after collection", objs, []int{gone, 0})
}
