package main

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/redoubt-io/redoubt/internal/admin"
)

// TestStatusStatesRedundancy: what /status says of the losses a cluster
// survives reaches the operator as one plain line and the figures behind
// it, through the JSON a node answers.
func TestStatusStatesRedundancy(t *testing.T) {
	now := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	short := admin.RedundancyStatus{
		NodeLosses: 1, ZoneLosses: 0, Zones: 3, Policies: []string{"EC 3+2", "EC 4+2"},
		PromisedNodeLosses: 2, PromisedBy: []string{"EC 3+2", "EC 4+2"}, PromisedZoneLosses: 1,
		Data: admin.SurvivalStatus{NodeLosses: 1, ZoneLosses: 0, Items: 200, Weakest: 48, Bytes: 48 << 20,
			Example: "EC 4+2, 6 shards: 2 on node n2, 1 on each of 4 other nodes"},
		NewWrites: admin.SurvivalStatus{NodeLosses: 2, ZoneLosses: 1, Items: 256, Weakest: 256},
		Metadata:  admin.SurvivalStatus{NodeLosses: 2, ZoneLosses: 1, Items: 257, Weakest: 257},
		CountedAt: now.Add(-40 * time.Second),
		Reasons:   []string{"EC 4+2 writes 6 shards per chunk and the layout has 5 nodes: a node holds 2 shards of a part"},
		Advice:    "add 1 node to restore it",
	}
	kept := admin.RedundancyStatus{
		NodeLosses: 2, ZoneLosses: 1, Zones: 3, Policies: []string{"EC 4+2"}, PromisedNodeLosses: 2, PromisedBy: []string{"EC 4+2"}, PromisedZoneLosses: 1, Kept: true,
		NewWrites: admin.SurvivalStatus{NodeLosses: 2, ZoneLosses: 1, Items: 256, Weakest: 256},
		Metadata:  admin.SurvivalStatus{NodeLosses: 2, ZoneLosses: 1, Items: 257, Weakest: 257},
	}
	lost := short
	lost.NodeLosses, lost.ZoneLosses = -1, -1
	lost.Data.NodeLosses, lost.Data.ZoneLosses, lost.Data.Weakest = -1, -1, 10
	lost.Advice = "add 1 node, and bring the down nodes back to restore it"
	downgraded := admin.RedundancyStatus{
		NodeLosses: 1, ZoneLosses: 1, Zones: 3, Policies: []string{"EC 2+1", "EC 3+2"},
		PromisedNodeLosses: 2, PromisedBy: []string{"EC 3+2"}, PromisedZoneLosses: 1,
		Data:      admin.SurvivalStatus{NodeLosses: 1, ZoneLosses: 1, Items: 10, Weakest: 10},
		NewWrites: admin.SurvivalStatus{NodeLosses: 1, ZoneLosses: 1, Items: 256, Weakest: 256},
		Metadata:  admin.SurvivalStatus{NodeLosses: 1, ZoneLosses: 1, Items: 257, Weakest: 257},
		CountedAt: now, Reasons: []string{"new writes are coded EC 2+1, which survives 1 node loss"},
		Advice: "add 2 nodes to restore it",
	}
	for _, tc := range []struct {
		name string
		r    admin.RedundancyStatus
		want []string
	}{
		{"below the promise", short, []string{
			"Redundancy now: survives 1 more node loss, 0 zone losses; the policies EC 3+2 and EC 4+2 promise 2 node losses, 1 zone loss: add 1 node to restore it\n",
			"  stored data: 200 object parts, counted 40s ago, survive 1 node loss (the weakest: 48 parts, 48.0 MiB, e.g. EC 4+2, 6 shards: 2 on node n2, 1 on each of 4 other nodes), no zone loss\n",
			"  new writes: EC 3+2 to layout v7 survive 2 node losses (all), 1 zone loss\n",
			"  metadata: 257 Raft groups survive 2 node losses (all), 1 zone loss\n",
			"  why: EC 4+2 writes 6 shards per chunk and the layout has 5 nodes: a node holds 2 shards of a part\n",
		}},
		{"new writes coded for fewer nodes", downgraded, []string{
			"Redundancy now: survives 1 more node loss, 1 zone loss; the policy EC 3+2 promises 2 node losses, 1 zone loss: add 2 nodes to restore it\n",
			"  new writes: EC 2+1 to layout v7 survive 1 node loss (all), 1 zone loss\n",
			"  why: new writes are coded EC 2+1, which survives 1 node loss\n",
		}},
		{"as promised, before the first count", kept, []string{
			"Redundancy now: survives 2 more node losses, 1 zone loss, as the policy EC 4+2 promises\n",
			"  stored data: not counted yet; the figure covers new writes and metadata\n",
		}},
		{"some objects lost now", lost, []string{
			"Redundancy now: some objects cannot be read now; the policies EC 3+2 and EC 4+2 promise 2 node losses, 1 zone loss: add 1 node, and bring the down nodes back to restore it\n",
			"stored data: 200 object parts, counted 40s ago, cannot all be read now (10 parts cannot, 48.0 MiB,",
		}},
	} {
		st := admin.Status{Version: "test", Cluster: &admin.ClusterStatus{NodeID: "n1", LayoutVersion: 7, Redundancy: &tc.r}}
		b, err := json.Marshal(st)
		if err != nil {
			t.Fatal(err)
		}
		var got admin.Status
		if err := json.Unmarshal(b, &got); err != nil {
			t.Fatal(err)
		}
		var out strings.Builder
		printRedundancy(&out, got.Cluster.LayoutVersion, got.Cluster.Redundancy, now)
		for _, w := range tc.want {
			if !strings.Contains(out.String(), w) {
				t.Errorf("%s: output lacks %q:\n%s", tc.name, w, out.String())
			}
		}
	}
}

// TestStatusSaysRaftMessagesNotSent: messages a node could not send reach
// the operator as one line, with what a refused one means; none, no line.
func TestStatusSaysRaftMessagesNotSent(t *testing.T) {
	var b strings.Builder
	printRaftMessages(&b, admin.RaftMessageStatus{})
	if b.Len() != 0 {
		t.Errorf("nothing dropped printed %q", b.String())
	}
	printRaftMessages(&b, admin.RaftMessageStatus{Undelivered: 12, QueueFull: 3, Refused: 2})
	want := "Raft messages not sent since start: 12 undelivered (peer unreachable), 3 dropped on a full queue, 2 refused as too large (a message over the transport's limit; see the log)\n"
	if b.String() != want {
		t.Errorf("got %q\nwant %q", b.String(), want)
	}
	var st admin.ClusterStatus
	if err := json.Unmarshal([]byte(`{"raft_messages":{"refused":1,"queue_full":2,"undelivered":3}}`), &st); err != nil {
		t.Fatal(err)
	}
	if st.RaftMessages != (admin.RaftMessageStatus{Refused: 1, QueueFull: 2, Undelivered: 3}) {
		t.Errorf("/status JSON decoded to %+v", st.RaftMessages)
	}
}

// TestStatusSaysSnapshots: the partition snapshots a node streamed and
// installed reach the operator as one line; none, no line.
func TestStatusSaysSnapshots(t *testing.T) {
	var b strings.Builder
	printSnapshots(&b, admin.SnapshotStatus{})
	if b.Len() != 0 {
		t.Errorf("no snapshot printed %q", b.String())
	}
	printSnapshots(&b, admin.SnapshotStatus{Sent: 3, BytesSent: 3 << 30, Failed: 1, Installed: 2})
	want := "Partition snapshots since start: 3 sent (3.0 GiB), 1 failed and retried, 2 installed here\n"
	if b.String() != want {
		t.Errorf("got %q\nwant %q", b.String(), want)
	}
}

// TestStatusSaysAntiEntropy: the last comparison of available buckets'
// records reaches the operator as one line, read from /status's JSON;
// before the first, no line.
func TestStatusSaysAntiEntropy(t *testing.T) {
	var b strings.Builder
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	printAntiEntropy(&b, nil, now)
	if b.Len() != 0 {
		t.Errorf("no pass printed %q", b.String())
	}
	var st admin.ClusterStatus
	if err := json.Unmarshal([]byte(`{"anti_entropy":{"finished":"2026-12-07T11:59:48Z","pairs":512,"differed":2,"failed":1,"fetched":30,"sent":4}}`), &st); err != nil {
		t.Fatal(err)
	}
	printAntiEntropy(&b, st.AntiEntropy, now)
	want := "Available buckets' records, last compared 12s ago: 512 partition-peer pairs, 2 differed, 30 records fetched, 4 sent, 0 hints delivered, 1 pairs failed\n"
	if b.String() != want {
		t.Errorf("got %q\nwant %q", b.String(), want)
	}
}

// TestStatusSaysReplicasCatchingUp: a node whose metadata replicas are
// still catching up is named, with a few of its groups; none, no line.
func TestStatusSaysReplicasCatchingUp(t *testing.T) {
	var b strings.Builder
	printCatchingUp(&b, []admin.NodeStatus{{ID: "n1"}})
	if b.Len() != 0 {
		t.Errorf("nothing catching up printed %q", b.String())
	}
	printCatchingUp(&b, []admin.NodeStatus{{ID: "n1"}, {ID: "n4", CatchingUp: []string{"partition 0", "partition 2", "partition 5", "partition 9", "the System group"}}})
	want := "Node n4 is catching up in 5 metadata group(s): partition 0, partition 2, partition 5 and 2 more\n"
	if b.String() != want {
		t.Errorf("got %q\nwant %q", b.String(), want)
	}
}

// TestStatusSaysAvailableBuckets: the available buckets are counted and
// named, a few of them; a clock refused is a warning; with only strong
// buckets, no line.
func TestStatusSaysAvailableBuckets(t *testing.T) {
	var st admin.Status
	if err := json.Unmarshal([]byte(`{"policy":"EC 2+1","buckets":{"strong":3,"available":0}}`), &st); err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	printStatus(&b, st, nil)
	if strings.Contains(b.String(), "Buckets:") {
		t.Errorf("strong buckets only, yet:\n%s", b.String())
	}
	st.Buckets = &admin.BucketCounts{Strong: 3, Available: 22, Names: []string{"logs", "shop"}}
	b.Reset()
	printStatus(&b, st, nil)
	if want := "Buckets: 3 strong, 22 available (logs, shop and 20 more)\n"; !strings.Contains(b.String(), want) {
		t.Errorf("got\n%s\nwant a line %q", b.String(), want)
	}
	b.Reset()
	printAntiEntropy(&b, &admin.AntiEntropyStatus{ClockRefused: 4}, time.Now())
	if !strings.Contains(b.String(), "WARNING: 4 versions refused for a clock ahead") {
		t.Errorf("clock refusals: %q", b.String())
	}
}
