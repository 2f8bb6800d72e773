package cluster

import (
	"context"
	"flag"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redoubt-io/redoubt/internal/hlc"
	"github.com/redoubt-io/redoubt/internal/records"
	"github.com/redoubt-io/redoubt/internal/transport"
	"github.com/redoubt-io/redoubt/internal/vset"
)

// recordsNet starts n nodes in n zones that keep available buckets'
// records, with edit applied to each configuration, and waits for their
// layout. Their own anti-entropy passes come once an hour: the tests'
// passes are their own (retries of failed pairs still come every second).
func recordsNet(t *testing.T, n int, edit func(*Config)) *testNet {
	t.Helper()
	tn := &testNet{t: t, mem: transport.NewMemNetwork()}
	for i := range n {
		tn.addWith(fmt.Sprintf("zone-%d", i), n, func(c *Config) {
			c.AntiEntropy = time.Hour
			if edit != nil {
				edit(c)
			}
		})
	}
	for _, c := range tn.nodes {
		wctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
		if _, err := c.WaitLayout(wctx); err != nil {
			t.Fatal(err)
		}
		cancel()
	}
	return tn
}

// TestAntiEntropyCopiesRecords: records one node holds reach every other
// replica of their partition in one anti-entropy pass, through the
// nodes' transport; a replica cut off is counted as failed and gets them
// at the first pass after the heal.
func TestAntiEntropyCopiesRecords(t *testing.T) {
	tn := recordsNet(t, 3, nil)
	ctx := t.Context()
	g := tn.nodes[0].Layout().Groups()[0]
	if n := len(tn.nodes[0].Layout().GroupNodes(g)); n != 3 {
		t.Fatalf("group %d has %d replicas, want 3", g, n)
	}
	var recs []records.Record
	for i := range 20 {
		recs = append(recs, records.Record{Key: fmt.Appendf(nil, "key-%d", i),
			Version: vset.Version{ID: vset.ID{TS: hlc.Timestamp{Wall: int64(i + 1)}, Node: 1}, Body: []byte("v")}})
	}
	if _, err := tn.nodes[0].Records().Put(records.Partition(g), recs); err != nil {
		t.Fatal(err)
	}
	tn.mem.Disconnect(tn.ids[0], tn.ids[2])
	st := tn.nodes[0].SyncRecords(ctx)
	if st.Failed == 0 || st.Sent < len(recs) {
		t.Fatalf("pass with node 2 cut off: %+v; want node 2 failed and node 1 sent %d records", st, len(recs))
	}
	has := func(i int) bool {
		s, err := tn.nodes[i].Records().Get(records.Partition(g), []byte("key-7"))
		return err == nil && len(s.IDs()) == 1
	}
	if !has(1) || has(2) {
		t.Fatalf("after the cut pass: node 1 has the records %v, node 2 %v; want true, false", has(1), has(2))
	}
	tn.mem.Connect(tn.ids[0], tn.ids[2])
	if st := tn.nodes[2].SyncRecords(ctx); st.Fetched < len(recs) || st.Failed != 0 {
		t.Fatalf("node 2's pass after the heal: %+v", st)
	}
	if !has(2) {
		t.Fatal("node 2 lacks the records after its pass")
	}
	for i, c := range tn.nodes {
		if r := c.Records().Root(records.Partition(g)); r != tn.nodes[0].Records().Root(records.Partition(g)) {
			t.Errorf("node %d's tree of group %d differs from node 0's", i, g)
		}
	}
}

// TestHintsDeliveredAfterHeal: a node cut off from every replica of a
// partition keeps a write as a hint, reads it back, and hands it to the
// replicas within one retry after the heal, then drops it.
func TestHintsDeliveredAfterHeal(t *testing.T) {
	tn := recordsNet(t, 4, func(c *Config) { c.MetaReplicas = 3 })
	ctx := t.Context()
	// A partition node 0 does not replicate.
	l := tn.nodes[0].Layout()
	p := uint32(0)
	for ; p < uint32(l.Partitions); p++ {
		if !slices.Contains(l.MetaNodes(int(p)), tn.nodes[0].ID()) {
			break
		}
	}
	if p == uint32(l.Partitions) {
		t.Fatal("node 0 replicates every partition")
	}
	for _, id := range tn.ids[1:] {
		tn.mem.Disconnect(tn.ids[0], id)
	}
	rec := records.Record{Key: []byte("cart"), Version: vset.Version{ID: vset.ID{TS: hlc.Timestamp{Wall: 1}, Node: 9}, Body: []byte("v")}}
	rs := tn.nodes[0].RecordReplicas(ctx, p)
	if len(rs.Replicas) != 3 || rs.Own == nil {
		t.Fatalf("record set of a partition node 0 does not replicate: %d replicas, own hints %v", len(rs.Replicas), rs.Own != nil)
	}
	if n, _ := records.Write(rs.Replicas, records.Partition(p), []records.Record{rec}, 2, 100*time.Millisecond); n != 0 {
		t.Fatalf("%d replicas took a write from a node cut off from all", n)
	}
	if n, err := records.Write(rs.Hints, records.Partition(p), []records.Record{rec}, 2, 100*time.Millisecond); n != 1 || err != nil {
		t.Fatalf("hints: %d copies, %v; want node 0's own", n, err)
	}
	got, _, err := records.Read([]records.Replica{rs.Own}, records.Partition(p), rec.Key, time.Second, nil)
	if err != nil || len(got) != 1 {
		t.Fatalf("node 0 reads its hinted write: %v %v", got, err)
	}
	if st := tn.nodes[0].RetryRecords(ctx); st.Hinted != 0 {
		t.Fatalf("hints delivered while cut off: %+v", st)
	}
	for _, id := range tn.ids[1:] {
		tn.mem.Connect(tn.ids[0], id)
	}
	if st := tn.nodes[0].RetryRecords(ctx); st.Hinted != 1 {
		t.Fatalf("retry after the heal delivered %d hints, want 1", st.Hinted)
	}
	for _, c := range tn.nodes {
		if !slices.Contains(l.MetaNodes(int(p)), c.ID()) {
			continue
		}
		if st, err := c.Records().Get(records.Partition(p), rec.Key); err != nil || len(st.IDs()) != 1 {
			t.Fatalf("replica %s lacks the hinted write: %v", c.ID(), err)
		}
	}
	if parts := tn.nodes[0].Records().Partitions(); len(parts) != 0 {
		t.Fatalf("node 0 still holds records of partitions %v after delivering its hints", parts)
	}
}

var convergeKeys = flag.String("antientropy.keys", "1000", "differing keys TestConvergenceAfterHeal brings over, comma-separated (BENCHMARKS.md ran 1000,10000,100000)")

// TestConvergenceAfterHeal: a replica cut off while the others took
// writes of N keys (spread over every partition) holds them all after its
// first anti-entropy pass once the cut heals (the others' retries, which
// noted what it missed, run meanwhile); the pass's time, by N, is the
// convergence figure of BENCHMARKS.md.
func TestConvergenceAfterHeal(t *testing.T) {
	for _, f := range strings.Split(*convergeKeys, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n <= 0 {
			t.Fatalf("-antientropy.keys: %q", f)
		}
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			tn := recordsNet(t, 3, nil)
			ctx := t.Context()
			tn.mem.Disconnect(tn.ids[0], tn.ids[2])
			tn.mem.Disconnect(tn.ids[1], tn.ids[2])
			parts := uint32(tn.nodes[0].Layout().Partitions)
			byPart := map[uint32][]records.Record{}
			for i := range n {
				key := fmt.Appendf(nil, "bucket-id/key-%07d", i)
				p := uint32(i) % parts
				byPart[p] = append(byPart[p], records.Record{Key: key,
					Version: vset.Version{ID: vset.ID{TS: hlc.Timestamp{Wall: int64(i + 1)}, Node: 7}, Body: make([]byte, 300)}})
			}
			for p, recs := range byPart {
				rs := tn.nodes[0].RecordReplicas(ctx, p)
				for len(recs) > 0 {
					batch := recs[:min(len(recs), 1000)]
					recs = recs[len(batch):]
					if copies, err := records.Write(rs.Replicas, records.Partition(p), batch, 3, time.Second); err != nil || copies != 2 {
						t.Fatalf("write across the cut: %d copies, %v; want 2", copies, err)
					}
				}
			}
			tn.mem.Connect(tn.ids[0], tn.ids[2])
			tn.mem.Connect(tn.ids[1], tn.ids[2])
			// Node 2's pass, and the retries of the two others, which
			// noted the writes node 2 missed, run at once, as they would.
			start := time.Now()
			if st := tn.nodes[2].SyncRecords(ctx); st.Failed != 0 {
				t.Fatalf("pass after the heal: %+v", st)
			}
			took := time.Since(start)
			for p := range parts {
				if tn.nodes[2].Records().Root(records.Partition(p)) != tn.nodes[0].Records().Root(records.Partition(p)) {
					t.Fatalf("partition %d differs after the pass", p)
				}
			}
			t.Logf("%d differing keys over %d partitions: converged in one pass of %v (%.1f µs a key)",
				n, parts, took.Round(time.Millisecond), float64(took.Microseconds())/float64(n))
		})
	}
}
