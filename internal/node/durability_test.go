package node

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/redoubt-io/redoubt/internal/blocks"
	"github.com/redoubt-io/redoubt/internal/placement"
)

var (
	durabilitySeed    = flag.Uint64("durability.seed", 0, "seed of the randomized durability test (0: from the clock)")
	durabilityObjects = flag.Int("durability.objects", 0, "objects the durability test writes before its first round (0: 2000, 300 with -short)")
	durabilityRounds  = flag.Int("durability.rounds", 0, "failure rounds of the durability test (0: 3, 2 with -short)")
)

// failureKind is what happens to one node in a round of the durability
// test. Each is one unit of failure: it takes at most one shard of any
// object, since EC 4+2 over six nodes puts one shard of each partition on
// every node.
type failureKind int

const (
	// lost: the node dies for good; it is taken out of the layout, and a
	// new node in its zone, on empty drives, takes its place.
	lost failureKind = iota
	// bounced: the node crashes and comes back on its drives later.
	bounced
	// wiped: one drive of the node loses everything while the node is
	// down (a disk swapped for an empty one); the node comes back at once
	// and a repair pass refills the drive.
	wiped
)

type failure struct {
	kind  failureKind
	node  int
	drive int // wiped: which of the node's data directories
}

func (f failure) String() string {
	switch f.kind {
	case lost:
		return fmt.Sprintf("node %d lost for good", f.node)
	case bounced:
		return fmt.Sprintf("node %d crashed", f.node)
	default:
		return fmt.Sprintf("node %d drive %d wiped", f.node, f.drive)
	}
}

// durabilityRun is the state of one TestClusterDurabilityRandomized run.
type durabilityRun struct {
	t  *testing.T
	tc *testCluster
	// rng draws what the seed replays: the failures, the objects, the
	// reads. via draws the nodes requests go through, among those that
	// are ready, which depends on timing: apart so that it cannot shift
	// the schedule.
	rng, via *rand.Rand
	objs     []storedObject
	// phase says what the test is doing, for the report of a failure.
	phase string
}

// TestClusterDurabilityRandomized is the durability acceptance test: six
// nodes in three zones, EC 4+2, thousands of objects of mixed sizes
// (most stored as shards, some inline, a few over several chunks). Each
// round fails one or two units at random (a node lost for good and
// replaced, a node crashed and restarted, a drive wiped), writes more
// objects while the cluster is degraded, reads some back, then restores
// the cluster: restarts, takes the lost nodes out of the layout, adds
// their replacements, waits until the data is where the layout wants it,
// and runs a repair pass where a drive was wiped. At the end every object
// reads back byte-exact through two different nodes, the listing holds
// exactly the objects written, and a last repair pass finds every shard
// of every object in place.
func TestClusterDurabilityRandomized(t *testing.T) {
	objects, rounds := 2000, 3
	if testing.Short() {
		objects, rounds = 300, 2
	}
	if *durabilityObjects > 0 {
		objects = *durabilityObjects
	}
	if *durabilityRounds > 0 {
		rounds = *durabilityRounds
	}
	rng, seed := testSeed(t, *durabilitySeed, "durability.seed")
	t.Logf("%d objects, %d rounds (replay: -durability.seed=%d -durability.objects=%d -durability.rounds=%d)",
		objects, rounds, seed, objects, rounds)
	ec, err := placement.ParseEC("4+2")
	if err != nil {
		t.Fatal(err)
	}
	d := &durabilityRun{t: t, rng: rng, via: rand.New(rand.NewPCG(seed^0x71a, seed)), phase: "starting the cluster"}
	defer func() {
		if t.Failed() {
			t.Logf("FAILED during %s (seed %d)", d.phase, seed)
		}
	}()
	start := time.Now()
	d.tc = startCluster(t, clusterOptions{nodes: 6, zones: 3, partitions: 16, raftTick: 20 * time.Millisecond, policy: &ec})
	d.tc.createBucket(0, bucketName)

	d.phase = "the first writes"
	d.write("obj", objects, d.tc.up())
	var total int64
	for _, o := range d.objs {
		total += int64(o.size)
	}
	t.Logf("%d objects (%d MiB) written in %v", len(d.objs), total>>20, time.Since(start).Round(time.Millisecond))

	for r := 1; r <= rounds; r++ {
		d.round(r, max(objects/20, 10))
	}

	d.phase = "the final check"
	start = time.Now()
	d.readAll()
	d.checkListing()
	t.Logf("every one of %d objects read back through two nodes, and listed, in %v", len(d.objs), time.Since(start).Round(time.Millisecond))
	start = time.Now()
	via := d.pickUp()
	p := d.repairPass(via)
	if p.Rebuilt > 0 {
		t.Errorf("the final repair pass rebuilt %d shards: redundancy was not whole after the last round", p.Rebuilt)
	}
	t.Logf("final repair pass through node %d: %d refs (%d MiB) checked, %d shards rebuilt, in %v",
		via, p.RefsDone, p.BytesDone>>20, p.Rebuilt, time.Since(start).Round(time.Millisecond))
}

// round fails one or two units, writes while degraded, and restores the
// cluster to full redundancy.
func (d *durabilityRun) round(r, writes int) {
	t, tc := d.t, d.tc
	t.Helper()
	start := time.Now()
	fails := d.pickFailures()
	what := make([]string, len(fails))
	for i, f := range fails {
		what[i] = f.String()
	}
	name := fmt.Sprintf("round %d (%s)", r, strings.Join(what, ", "))
	d.phase = name + ": failing"
	t.Logf("%s", name)

	for _, f := range fails {
		tc.crash(f.node)
	}
	for _, f := range fails {
		if f.kind != wiped {
			continue
		}
		tn := tc.nodes[f.node]
		tc.reap(tn)
		dir := tn.cfg.DataDirs[f.drive]
		if _, err := os.Stat(filepath.Join(dir, "raft")); err == nil {
			// A node that loses its Raft drive refuses to start and is
			// replaced as a lost node (TestClusterNodeLosesItsRaftDrive);
			// here the other drive goes.
			f.drive = (f.drive + 1) % len(tn.cfg.DataDirs)
			dir = tn.cfg.DataDirs[f.drive]
		}
		wipeDir(t, dir)
		t.Logf("%s: node %d drive %s wiped", name, f.node, filepath.Base(dir))
		tc.joinThroughLive(f.node)
		tc.restart(f.node)
	}

	d.phase = name + ": writing while degraded"
	alive := tc.up()
	before := len(d.objs)
	d.write(fmt.Sprintf("round%d", r), writes, alive)
	d.phase = name + ": reading while degraded"
	sample := append(d.sample(min(100, before)), d.objs[before:]...)
	if errs := d.read(sample, alive, 1); len(errs) > 0 {
		t.Fatalf("%s: %d of %d objects unreadable while degraded through nodes %v:\n%s",
			name, len(errs), len(sample), alive, strings.Join(errs[:min(len(errs), 20)], "\n"))
	}
	t.Logf("%s: %d objects written and %d read through nodes %v in %v", name, writes, len(sample), alive,
		time.Since(start).Round(time.Millisecond))

	d.phase = name + ": restoring"
	restoreStart := time.Now()
	restartFirst := d.rng.IntN(2) == 0
	restart := func() {
		for _, f := range fails {
			if f.kind == bounced {
				tc.joinThroughLive(f.node)
				tc.restart(f.node)
			}
		}
	}
	if restartFirst {
		restart()
	}
	var gone []failure
	for _, f := range fails {
		if f.kind == lost {
			gone = append(gone, f)
		}
	}
	var version uint64
	for _, f := range gone {
		version = tc.removeNode(d.pickFollower(), f.node)
		tc.opts.nodes--
		t.Logf("%s: layout %d without node %d", name, version, f.node)
	}
	if len(gone) > 0 && restartFirst && d.rng.IntN(2) == 0 {
		// Sometimes the cluster rebuilds onto the remaining nodes before
		// the replacements come; otherwise the layouts follow each other
		// while relocation is under way. (Not with a node still down:
		// nothing could settle onto its drives.)
		t.Logf("%s: settled on layout %d in %v", name, version, tc.settle(version, 3*time.Minute).Round(time.Millisecond))
	}
	for _, f := range gone {
		tc.joinAddr = tc.memAddr(d.pickFollower())
		added, v := tc.addNode(d.pickFollower(), tc.nodes[f.node].zone)
		version = v
		t.Logf("%s: node %d replaces node %d in %s: layout %d", name, added, f.node, tc.nodes[f.node].zone, version)
	}
	if !restartFirst {
		restart()
	}
	if version == 0 {
		// The newest layout a running node follows: one just restarted
		// may not have loaded any yet.
		for _, i := range tc.up() {
			if l := tc.node(i).cluster.Layout(); l != nil {
				version = max(version, l.Version)
			}
		}
	}
	d.phase = fmt.Sprintf("%s: settling on layout %d", name, version)
	took := tc.settle(version, 3*time.Minute)
	d.checkGroupsHosted()
	d.checkSpread()
	for _, f := range fails {
		if f.kind != wiped {
			continue
		}
		d.phase = fmt.Sprintf("%s: repairing node %d's wiped drive", name, f.node)
		p := d.repairPass(f.node)
		dir := tc.nodes[f.node].cfg.DataDirs[f.drive]
		for _, dr := range tc.node(f.node).drives {
			if dr.Path() == dir && dr.NeedsRepair() {
				t.Fatalf("%s: after a repair pass without failures, drive %s still needs repair", name, dir)
			}
		}
		t.Logf("%s: repair pass through node %d rebuilt %d shards", name, f.node, p.Rebuilt)
	}
	t.Logf("%s: restored (settled in %v) in %v; round took %v", name, took.Round(time.Millisecond),
		time.Since(restoreStart).Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
}

// checkGroupsHosted fails the test if a running node hosts fewer
// partition groups than the layout gives it: the leader may count it as a
// voter while it holds no copy, and the group then survives fewer lost
// nodes than the layout promises.
func (d *durabilityRun) checkGroupsHosted() {
	d.t.Helper()
	for _, i := range d.tc.up() {
		n := d.tc.node(i)
		l := n.cluster.Layout()
		seats := 0
		for p := range l.Partitions {
			if slices.Contains(l.MetaNodes(p), string(d.tc.nodes[i].id)) {
				seats++
			}
		}
		if got := d.tc.clusterStatus(i).Groups.Hosted; got < seats {
			d.t.Errorf("%s: node %d hosts %d partition groups, layout %d gives it %d", d.phase, i, got, l.Version, seats)
		}
	}
}

// checkSpread fails the test if the committed metadata places two shards
// of one object part on one node, or any on a drive outside the layout:
// the next two failures could then take more than M shards of it.
func (d *durabilityRun) checkSpread() {
	d.t.Helper()
	n := d.tc.node(d.pickUp())
	l := n.cluster.Layout()
	var bad []string
	refs := 0
	err := n.objects.ForEachRef(context.Background(), func(r blocks.Ref) error {
		refs++
		nodes := map[string]int{}
		for i, dr := range r.Drives {
			nd, ok := l.NodeOf(dr)
			if !ok {
				bad = append(bad, fmt.Sprintf("%s: shard %d on drive %s, not in layout %d", r.ID, i, dr, l.Version))
				continue
			}
			nodes[nd.ID]++
		}
		for id, c := range nodes {
			if c > 1 && len(l.Nodes) >= len(r.Drives) {
				bad = append(bad, fmt.Sprintf("%s: %d of its %d shards on node %s", r.ID, c, len(r.Drives), id))
			}
		}
		return nil
	})
	if err != nil {
		d.t.Fatalf("%s: listing data refs: %v", d.phase, err)
	}
	if len(bad) > 0 {
		d.t.Errorf("%s: %d problems in the placement of %d data refs under layout %d:\n%s", d.phase, len(bad), refs, l.Version,
			strings.Join(bad[:min(len(bad), 20)], "\n"))
	}
}

// pickFailures chooses one or two failures on distinct running nodes;
// two, the most the policy tolerates, more often than one.
func (d *durabilityRun) pickFailures() []failure {
	up := d.tc.up()
	count := 2
	if d.rng.IntN(3) == 0 {
		count = 1
	}
	var out []failure
	for _, i := range d.rng.Perm(len(up))[:count] {
		f := failure{kind: failureKind(d.rng.IntN(3)), node: up[i]}
		if f.kind == wiped {
			f.drive = d.rng.IntN(len(d.tc.nodes[f.node].cfg.DataDirs))
		}
		out = append(out, f)
	}
	return out
}

// pickUp is a running node, at random.
func (d *durabilityRun) pickUp() int {
	up := d.tc.up()
	return up[d.via.IntN(len(up))]
}

// pickFollower is a running node that follows a layout, at random: one
// just restarted may not have loaded it yet, and cannot stage edits.
func (d *durabilityRun) pickFollower() int {
	var out []int
	for _, i := range d.tc.up() {
		if d.tc.node(i).cluster.Layout() != nil {
			out = append(out, i)
		}
	}
	if len(out) == 0 {
		d.t.Fatalf("%s: no running node follows a layout", d.phase)
	}
	return out[d.via.IntN(len(out))]
}

// objectSize is mostly just over the inline limit, so that most objects
// are stored as shards; some are inline, a few span several chunks.
func (d *durabilityRun) objectSize() int {
	switch x := d.rng.IntN(100); {
	case x < 2:
		return 1<<20 + d.rng.IntN(2<<20)
	case x < 15:
		return 4<<10 + d.rng.IntN(124<<10)
	default:
		return 129<<10 + d.rng.IntN(171<<10)
	}
}

// write puts count new objects named prefix/NNNNN through the nodes of
// via, several at a time, and adds them to d.objs; any failure after the
// retries a client makes on 503 is fatal.
func (d *durabilityRun) write(prefix string, count int, via []int) {
	d.t.Helper()
	objs := make([]storedObject, count)
	for i := range objs {
		objs[i] = storedObject{key: fmt.Sprintf("%s/%05d", prefix, i), seed: d.rng.Uint64(), size: d.objectSize()}
	}
	errs := d.parallel(len(objs), func(i int) error {
		o, node := objs[i], via[i%len(via)]
		cl := d.tc.client(node)
		err := retryUnavailable(30*time.Second, func() error {
			_, err := putBytes(context.Background(), cl, bucketName, o.key, payload(o.seed, o.size))
			return err
		})
		if err != nil {
			return fmt.Errorf("PUT %s (%d bytes) through node %d: %w", o.key, o.size, node, err)
		}
		return nil
	})
	if len(errs) > 0 {
		d.t.Fatalf("%s: %d of %d PUTs failed:\n%s", d.phase, len(errs), count, strings.Join(errs[:min(len(errs), 20)], "\n"))
	}
	d.objs = append(d.objs, objs...)
}

// read GETs each object of objs through copies nodes of via (distinct,
// rotating), retrying 503 as a client would, and returns what failed or
// differed.
func (d *durabilityRun) read(objs []storedObject, via []int, copies int) []string {
	off := d.rng.IntN(len(via))
	return d.parallel(len(objs)*copies, func(j int) error {
		o := objs[j/copies]
		node := via[(off+j/copies+j%copies)%len(via)]
		cl := d.tc.client(node)
		var got []byte
		err := retryUnavailable(30*time.Second, func() error {
			var err error
			got, err = getBytes(context.Background(), cl, bucketName, o.key)
			return err
		})
		switch {
		case err != nil:
			return fmt.Errorf("GET %s (%d bytes) through node %d: %w", o.key, o.size, node, err)
		case !bytes.Equal(got, payload(o.seed, o.size)):
			return fmt.Errorf("GET %s through node %d: %d bytes that differ from the %d written", o.key, node, len(got), o.size)
		}
		return nil
	})
}

// readAll reads every object through two different running nodes.
func (d *durabilityRun) readAll() {
	d.t.Helper()
	up := d.tc.up()
	if errs := d.read(d.objs, up, 2); len(errs) > 0 {
		d.t.Fatalf("%d reads of %d objects (each through two of nodes %v) failed:\n%s",
			len(errs), len(d.objs), up, strings.Join(errs[:min(len(errs), 20)], "\n"))
	}
}

// checkListing lists the bucket through a running node: exactly the
// objects written, each with its size.
func (d *durabilityRun) checkListing() {
	d.t.Helper()
	node := d.pickUp()
	want := make(map[string]int, len(d.objs))
	for _, o := range d.objs {
		want[o.key] = o.size
	}
	var problems []string
	p := s3.NewListObjectsV2Paginator(d.tc.client(node), &s3.ListObjectsV2Input{Bucket: aws.String(bucketName)})
	listed := 0
	for p.HasMorePages() {
		var page *s3.ListObjectsV2Output
		err := retryUnavailable(30*time.Second, func() error {
			var err error
			page, err = p.NextPage(context.Background())
			return err
		})
		if err != nil {
			d.t.Fatalf("listing through node %d after %d keys: %v", node, listed, err)
		}
		for _, o := range page.Contents {
			listed++
			k := aws.ToString(o.Key)
			size, ok := want[k]
			switch {
			case !ok:
				problems = append(problems, fmt.Sprintf("%s listed but never written (or listed twice)", k))
			case aws.ToInt64(o.Size) != int64(size):
				problems = append(problems, fmt.Sprintf("%s listed with %d bytes, %d written", k, aws.ToInt64(o.Size), size))
			}
			delete(want, k)
		}
	}
	for k := range want {
		problems = append(problems, fmt.Sprintf("%s written but not listed", k))
	}
	if len(problems) > 0 {
		slices.Sort(problems)
		d.t.Fatalf("listing through node %d: %d problems:\n%s", node, len(problems), strings.Join(problems[:min(len(problems), 20)], "\n"))
	}
}

// sample is n distinct objects written so far, at random.
func (d *durabilityRun) sample(n int) []storedObject {
	out := make([]storedObject, 0, n)
	for _, i := range d.rng.Perm(len(d.objs))[:n] {
		out = append(out, d.objs[i])
	}
	return out
}

// parallel runs f(0..n-1) on a few goroutines and returns the errors, in
// order of i.
func (d *durabilityRun) parallel(n int, f func(i int) error) []string {
	const workers = 16
	errs := make([]error, n)
	next := make(chan int)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for i := range next {
				errs[i] = f(i)
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	var out []string
	for _, err := range errs {
		if err != nil {
			out = append(out, err.Error())
		}
	}
	return out
}

// repairPass runs a full repair pass on node i and fails the test if any
// ref could not be repaired.
func (d *durabilityRun) repairPass(i int) RepairProgress {
	d.t.Helper()
	n := d.tc.node(i)
	select {
	case <-n.repair.Start(context.Background()):
	case <-time.After(5 * time.Minute):
		d.t.Fatalf("%s: the repair pass on node %d did not end within 5m: %+v", d.phase, i, n.repair.Progress())
	}
	p := n.repair.Progress()
	if p.Failed > 0 || p.RefsDone != p.RefsTotal {
		d.t.Fatalf("%s: repair pass on node %d: %d of %d refs done, %d failed, last error: %s",
			d.phase, i, p.RefsDone, p.RefsTotal, p.Failed, p.LastError)
	}
	return p
}

// wipeDir empties a drive's directory, as a new disk mounted there is.
func wipeDir(t *testing.T, dir string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatalf("wiping %s: %v", dir, err)
	}
	for _, e := range entries {
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			t.Fatalf("wiping %s: %v", dir, err)
		}
	}
}

// memAddr is node i's address on the test network.
func (tc *testCluster) memAddr(i int) string {
	return "mem://" + string(tc.nodes[i].id)
}

// joinThroughLive points node i's join address at a running node: a node
// that restarts without its Raft state joins again, and the node it
// first joined through may be gone.
func (tc *testCluster) joinThroughLive(i int) {
	for _, j := range tc.up() {
		if j != i && tc.node(j).cluster.Layout() != nil {
			tc.nodes[i].cfg.Cluster.Join = []string{tc.memAddr(j)}
			return
		}
	}
}
