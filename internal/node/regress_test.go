package node

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/redoubt-io/redoubt/internal/blocks"
	"github.com/redoubt-io/redoubt/internal/placement"
)

// A node whose drive with the Raft state (its lowest slot) is replaced by
// an empty one must not come back as the member it was: its groups count
// on the entries it acknowledged and the votes it cast. It refuses to
// start, saying why and what to do, instead of rejoining with an empty
// log (etcd raft would stop the process at the leader's first heartbeat,
// at every restart); the cluster goes on without it.
func TestClusterNodeLosesItsRaftDrive(t *testing.T) {
	tc := startCluster(t, clusterOptions{nodes: 3, zones: 3, raftTick: 20 * time.Millisecond})
	tc.createBucket(0, bucketName)
	objs := tc.putObjects("before", 3, []int{0, 1, 2})
	tc.crash(1)
	tc.reap(tc.nodes[1])
	wiped := false
	for _, dir := range tc.nodes[1].cfg.DataDirs {
		if _, err := os.Stat(filepath.Join(dir, "raft")); err != nil {
			continue
		}
		entries, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
				t.Fatal(err)
			}
		}
		wiped = true
		t.Logf("node 1's drive %s, with its Raft state, replaced by an empty one", dir)
	}
	if !wiped {
		t.Fatal("no drive of node 1 holds Raft state")
	}
	tc.mem.Revive(tc.nodes[1].id)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	n, err := Start(ctx, tc.nodes[1].cfg, tc.nodes[1].log)
	if err == nil {
		n.close()
		t.Fatal("node 1 started without its Raft state")
	}
	if !strings.Contains(err.Error(), "Raft state") || !strings.Contains(err.Error(), "layout stage remove") {
		t.Fatalf("the refusal does not say what happened and what to do: %v", err)
	}
	t.Logf("refused: %v", err)
	tc.readAll("node 1 refused to start", objs, []int{0, 2})
}

// With six nodes the System group has five voters; a new node told to
// join through the sixth gets no System voters in the join answer, keeps
// its placeholder voter (^own raft ID) and fails to start after 60 s:
// "no address known for raft node <^own id>".
func TestClusterJoinThroughANonVoter(t *testing.T) {
	tc := startCluster(t, clusterOptions{nodes: 6, zones: 3, raftTick: 20 * time.Millisecond})
	seed := -1
	for i := range 6 {
		if !tc.clusterStatus(i).System.Member {
			seed = i
		}
	}
	if seed < 0 {
		t.Fatal("every node is a System voter")
	}
	t.Logf("node %d is not a System voter; a new node joins through it", seed)
	tc.joinAddr = "mem://" + string(tc.nodes[seed].id)
	added, v := tc.addNode(seed, "zone-a")
	t.Logf("node %d joined: layout %d", added, v)
}

// With six nodes the System group has five voters. When its leader dies
// the others elect a new one; the sixth node keeps forwarding System
// requests (bucket reads and creates, so nearly every S3 request) to the
// dead leader and answers 503 for as long as it runs.
func TestClusterNonVoterFollowsSystemLeaderChange(t *testing.T) {
	tc := startCluster(t, clusterOptions{nodes: 6, zones: 3, raftTick: 20 * time.Millisecond})
	tc.createBucket(0, bucketName)
	outside, leader := -1, -1
	for i := range 6 {
		st := tc.clusterStatus(i)
		if !st.System.Member {
			outside = i
		}
		for j := range 6 {
			if string(tc.nodes[j].id) == st.System.Leader {
				leader = j
			}
		}
	}
	if outside < 0 || leader < 0 {
		t.Fatalf("no node outside the System group (%d) or no leader (%d)", outside, leader)
	}
	if _, err := putBytes(context.Background(), tc.client(outside), bucketName, "before", payload(1, 10)); err != nil {
		t.Fatal(err)
	}
	t.Logf("System leader: node %d; node %d is not a System voter; node %d dies", leader, outside, leader)
	tc.crash(leader)
	start := time.Now()
	err := retryUnavailable(20*time.Second, func() error {
		_, err := tc.client(outside).CreateBucket(context.Background(), &s3.CreateBucketInput{Bucket: aws.String("after-the-leader")})
		return err
	})
	if err != nil {
		t.Fatalf("CreateBucket through node %d, %v after the System leader died: %v", outside, time.Since(start), err)
	}
}

// Objects written while a node is down have two shards on one node. Once
// the node is back and every node's relocation pass reports nothing left
// (settle), every object must have one shard per node again. Right after
// the restart the others still see the node's drives offline, so
// Relocation finds no target, answers "stays", and the pass counts
// nothing left; the shards spread only at a later pass.
func TestClusterSettledMeansSpread(t *testing.T) {
	ec, err := placement.ParseEC("4+2")
	if err != nil {
		t.Fatal(err)
	}
	tc := startCluster(t, clusterOptions{nodes: 6, zones: 3, raftTick: 20 * time.Millisecond, policy: &ec})
	tc.createBucket(0, bucketName)
	tc.crash(5)
	tc.putObjects("degraded", 12, []int{0, 1, 2, 3, 4})
	tc.restart(5)
	t.Logf("node 5 back; settled in %v", tc.settle(tc.node(0).cluster.Layout().Version, time.Minute))
	l := tc.node(0).cluster.Layout()
	doubled := func() int {
		n := 0
		err := tc.node(0).objects.ForEachRef(context.Background(), func(r blocks.Ref) error {
			nodes := map[string]int{}
			for _, d := range r.Drives {
				nd, _ := l.NodeOf(d)
				if nodes[nd.ID]++; nodes[nd.ID] == 2 {
					n++
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	start := time.Now()
	if first := doubled(); first > 0 {
		ok := pollUntil(90*time.Second, func() bool { return doubled() == 0 })
		t.Errorf("relocation reported nothing left while %d refs had two shards on one node (spread again: %v, %v later)",
			first, ok, time.Since(start).Round(time.Millisecond))
	}
}

// Regression (fixed by rehostGroups): a node that a layout drops from a
// partition group deletes its copy; a later layout that gives it the
// group again must make it host the group again.
func TestClusterRegainsADroppedGroup(t *testing.T) {
	ec, err := placement.ParseEC("4+2")
	if err != nil {
		t.Fatal(err)
	}
	tc := startCluster(t, clusterOptions{nodes: 6, zones: 3, raftTick: 20 * time.Millisecond, policy: &ec})
	tc.createBucket(0, bucketName)
	tc.crash(5)
	v := tc.removeNode(0, 5)
	tc.opts.nodes--
	t.Logf("layout %d of 5 nodes settled in %v", v, tc.settle(v, time.Minute))
	added, v := tc.addNode(0, tc.nodes[5].zone)
	t.Logf("node %d added: layout %d settled in %v", added, v, tc.settle(v, time.Minute))
	tc.crash(added)
	v = tc.removeNode(0, added)
	tc.opts.nodes--
	t.Logf("layout %d of 5 nodes settled in %v", v, tc.settle(v, time.Minute))
	for _, i := range tc.up() {
		l := tc.node(i).cluster.Layout()
		want := 0
		for p := range l.Partitions {
			if slices.Contains(l.MetaNodes(p), string(tc.nodes[i].id)) {
				want++
			}
		}
		if got := tc.clusterStatus(i).Groups.Hosted; got != want {
			t.Errorf("node %d hosts %d partition groups, layout %d gives it %d", i, got, l.Version, want)
		}
	}
}
