package node

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/redoubt-io/redoubt/internal/admin"
	"github.com/redoubt-io/redoubt/internal/blocks"
)

// TestClusterStatesWhatALostNodeCosts: six nodes in three zones with the
// default policy, EC 4+2. One node dies for good and the layout drops it;
// what it held is rebuilt on the five others, so every EC 4+2 part keeps
// six shards on five nodes, two of them on one node (new writes are coded
// EC 3+2). /status must then say that every object survives exactly one
// more node loss where the policy promises two, and that adding a node
// restores it. The test holds the statement to what happens: after the
// worst further loss (the node holding two shards of the most parts)
// every object still reads and status says no more loss is survivable;
// after one more loss, chosen to take a third shard of some parts,
// exactly the objects of those parts cannot be read, as status says.
func TestClusterStatesWhatALostNodeCosts(t *testing.T) {
	rng, _ := testSeed(t, *clusterSeed, "cluster.seed")
	tc := startCluster(t, clusterOptions{nodes: 6, zones: 3, raftTick: 20 * time.Millisecond})
	all := []int{0, 1, 2, 3, 4, 5}
	if p := tc.node(0).cluster.Layout().Policy.String(); p != "EC 4+2" {
		t.Fatalf("six nodes have policy %s, want EC 4+2", p)
	}
	tc.createBucket(0, bucketName)
	objs := tc.putObjects("before", 24, all)

	r := tc.redundancy(0, "all six nodes up", func(r *admin.RedundancyStatus) bool { return r.NodeLosses == 2 })
	if !r.Kept || r.ZoneLosses != 1 || r.Data.NodeLosses != 2 || r.Data.Items == 0 {
		t.Fatalf("six nodes up: %s; %+v", r.Line(), r)
	}

	lost := all[rng.IntN(len(all))]
	alive := without(all, lost)
	t.Logf("node %d dies for good", lost)
	tc.crash(lost)
	tc.settle(tc.removeNode(alive[0], lost), 2*time.Minute)
	objs = append(objs, tc.putObjects("after", 6, alive)...)
	// New writes are coded for the five nodes left, one shard a node.
	recoded := 0
	for _, p := range tc.partsByNode(alive[0]) {
		if p.k == 3 && p.m == 2 {
			recoded++
			for i, n := range p.shards {
				if n > 1 {
					t.Errorf("an EC 3+2 part written after the loss has %d shards on node %d", n, i)
				}
			}
		}
	}
	if recoded == 0 {
		t.Fatalf("no part written after the loss is coded EC 3+2")
	}

	// Rebuilt means the metadata too: the groups that lost a voter have a
	// new one, which counts as lost until it has caught up.
	r = tc.redundancy(alive[0], "one node lost and its data rebuilt", func(r *admin.RedundancyStatus) bool {
		return r.Data.Items > 0 && r.Moving == 0 && r.CatchingUp == 0 && r.CountedAt.After(time.Now().Add(-10*time.Second))
	})
	t.Logf("status after the rebuild: %s", r.Line())
	switch {
	case r.NodeLosses != 1 || r.Data.NodeLosses != 1:
		t.Errorf("survives %d more node losses (stored data %d), want 1", r.NodeLosses, r.Data.NodeLosses)
	case r.NewWrites.NodeLosses != 2 || r.Metadata.NodeLosses != 2:
		t.Errorf("new writes survive %d node losses and metadata %d, want 2 and 2", r.NewWrites.NodeLosses, r.Metadata.NodeLosses)
	case r.Kept || r.PromisedNodeLosses != 2 || !slices.Equal(r.Policies, []string{"EC 3+2", "EC 4+2"}):
		t.Errorf("promise kept %v, %d node losses promised by %v; want not kept, 2 by EC 3+2 and EC 4+2", r.Kept, r.PromisedNodeLosses, r.Policies)
	}
	if line := r.Line(); !strings.HasPrefix(line, "survives 1 more node loss, ") || !strings.HasSuffix(line, "promise 2 node losses, 1 zone loss: add 1 node to restore it") {
		t.Errorf("status line %q", line)
	}
	if t.Failed() {
		t.FailNow()
	}

	// The worst next loss: the node holding two shards of the most parts.
	parts := tc.partsByNode(alive[0])
	worst, most := -1, 0
	for _, i := range alive {
		n := 0
		for _, p := range parts {
			if p.shards[i] > 1 {
				n++
			}
		}
		if n > most {
			worst, most = i, n
		}
	}
	if worst < 0 {
		t.Fatalf("no node holds two shards of a part: the test proves nothing")
	}
	t.Logf("node %d, which holds two shards of %d of the %d parts, dies too", worst, most, len(parts))
	tc.crash(worst)
	alive = without(alive, worst)
	tc.readAll(fmt.Sprintf("nodes %d and %d lost", lost, worst), objs, alive[:1])
	// Wait for the loss itself: a replica still catching up also reads
	// as no loss to spare, before the death is noticed.
	r = tc.redundancy(alive[0], "one more node down", func(r *admin.RedundancyStatus) bool {
		return r.NodeLosses == 0 && slices.Contains(r.Down, string(tc.nodes[worst].id))
	})
	if !slices.Contains(r.Down, string(tc.nodes[worst].id)) {
		t.Errorf("status does not list node %d as down: %v", worst, r.Down)
	}

	// One more: the node whose loss takes a third shard of the most parts.
	next, lostParts := -1, 0
	for _, i := range alive[1:] {
		n := 0
		for _, p := range parts {
			if p.shards[worst]+p.shards[i] > p.m {
				n++
			}
		}
		if n > lostParts {
			next, lostParts = i, n
		}
	}
	if next < 0 {
		t.Fatalf("no further loss takes a third shard of a part: the statement is not tight")
	}
	tc.crash(next)
	alive = without(alive, next)
	t.Logf("node %d dies as well: %d parts are down to %d shards", next, lostParts, 3)
	r = tc.redundancy(alive[0], "a third node down", func(r *admin.RedundancyStatus) bool { return r.NodeLosses < 0 })
	if r.Data.NodeLosses != -1 || r.Data.Weakest != int64(lostParts) || !strings.HasPrefix(r.Line(), "some objects cannot be read now") {
		t.Errorf("status with parts lost: %s; stored data %+v, want %d parts that cannot be read", r.Line(), r.Data, lostParts)
	}
	unreadable := 0
	for _, o := range objs {
		err := retryUnavailable(10*time.Second, func() error {
			_, err := tc.client(alive[0]).HeadObject(context.Background(), &s3.HeadObjectInput{Bucket: aws.String(bucketName), Key: aws.String(o.key)})
			return err
		})
		if err != nil {
			t.Fatalf("HEAD %s with nodes %d, %d and %d down: %v", o.key, lost, worst, next, err)
		}
		if _, err := getBytes(context.Background(), tc.client(alive[0]), bucketName, o.key); err != nil {
			unreadable++
		}
	}
	if unreadable != lostParts {
		t.Errorf("%d objects cannot be read, want the %d whose parts lost a third shard", unreadable, lostParts)
	}
}

// redundancy counts the stored data on node i now and returns its
// redundancy status once ok holds (the status asks every node for its
// drives, and caches their answers for a few seconds).
func (tc *testCluster) redundancy(i int, what string, ok func(*admin.RedundancyStatus) bool) *admin.RedundancyStatus {
	tc.t.Helper()
	n := tc.node(i)
	var r *admin.RedundancyStatus
	if !pollUntil(30*time.Second, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := n.census.count(ctx); err != nil {
			return false
		}
		r = n.Status(ctx).Cluster.Redundancy
		return r != nil && ok(r)
	}) {
		if r == nil {
			tc.t.Fatalf("%s: node %d shows no redundancy status", what, i)
		}
		tc.t.Fatalf("%s: node %d's status: %s; %+v", what, i, r.Line(), r)
	}
	return r
}

// storedPart is where one stored object part's shards are, by node index.
type storedPart struct {
	k, m   int
	shards map[int]int
}

// partsByNode lists every stored part as node via sees it, with its shards
// counted by node index.
func (tc *testCluster) partsByNode(via int) []storedPart {
	tc.t.Helper()
	l := tc.node(via).cluster.Layout()
	index := map[string]int{}
	for i, tn := range tc.nodes {
		index[string(tn.id)] = i
	}
	var out []storedPart
	err := tc.node(via).objects.ForEachRef(context.Background(), func(r blocks.Ref) error {
		p := storedPart{k: r.K, m: r.M, shards: map[int]int{}}
		for _, d := range r.Drives {
			n, ok := l.NodeOf(d)
			if !ok {
				return fmt.Errorf("ref %s names drive %s, which is not in the layout", r.ID, d)
			}
			p.shards[index[n.ID]]++
		}
		out = append(out, p)
		return nil
	})
	if err != nil {
		tc.t.Fatalf("listing parts: %v", err)
	}
	return out
}
