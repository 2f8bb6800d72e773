package cluster

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/redoubt-io/redoubt/internal/hlc"
	"github.com/redoubt-io/redoubt/internal/records"
	"github.com/redoubt-io/redoubt/internal/transport"
	"github.com/redoubt-io/redoubt/internal/vset"
)

// TestAntiEntropyCopiesRecords: records one node holds reach every other
// replica of their partition in one anti-entropy pass, through the
// nodes' transport; a replica cut off is counted as failed and gets them
// at the first pass after the heal.
func TestAntiEntropyCopiesRecords(t *testing.T) {
	tn := &testNet{t: t, mem: transport.NewMemNetwork()}
	for i := range 3 {
		// An hour: the passes below are the test's own, not the loop's.
		tn.addWith(fmt.Sprintf("zone-%d", i), 3, func(c *Config) { c.AntiEntropy = time.Hour })
	}
	ctx := t.Context()
	for _, c := range tn.nodes {
		wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		if _, err := c.WaitLayout(wctx); err != nil {
			t.Fatal(err)
		}
		cancel()
	}
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
