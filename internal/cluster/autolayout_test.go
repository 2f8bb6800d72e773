package cluster

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/redoubt-io/redoubt/internal/meta"
	"github.com/redoubt-io/redoubt/internal/transport"
)

// A node dead longer than the grace period is taken out of the layout, so
// that every partition's Raft group gets a full set of voters again from
// the survivors; when it comes back it is put back in.
func TestDeadNodeRoutedAroundAndReadmitted(t *testing.T) {
	tn := &testNet{t: t, mem: transport.NewMemNetwork()}
	for i := range 4 {
		tn.addWith(fmt.Sprintf("zone-%d", i%3), 4, func(c *Config) {
			c.NoGossip = false
			c.GossipAddr = "127.0.0.1:0"
			c.RepairAfter = time.Second
		})
	}
	ctx := context.Background()
	for _, c := range tn.nodes {
		wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		if _, err := c.WaitLayout(wctx); err != nil {
			t.Fatal(err)
		}
		cancel()
	}
	for p := range 16 {
		eventually(t, 10*time.Second, "commit", func() error { return put(ctx, tn.nodes[0].Meta(), meta.Partition(p), "k", "v") })
	}
	victim := 3
	gone := tn.nodes[victim].ID()
	old := tn.nodes[victim]
	tn.mem.Kill(tn.ids[victim])
	old.Close()

	eventually(t, 30*time.Second, "a layout without the dead node, groups at full strength", func() error {
		l := tn.nodes[0].Layout()
		if l == nil || inLayout(l, gone) {
			return fmt.Errorf("layout v%d still has the dead node", l.Version)
		}
		for p := range l.Partitions {
			want := tn.nodes[0].raftIDs(l.MetaNodes(p))
			for i, c := range tn.nodes {
				if i == victim {
					continue
				}
				g, ok := c.group(meta.Partition(p))
				if !ok || g.Leader != c.raftID {
					continue
				}
				if len(g.Voters) != len(want) || slices.Contains(g.Voters, RaftID(tn.ids[victim])) {
					return fmt.Errorf("partition %d voters %v, want %v", p, g.Voters, want)
				}
			}
		}
		return nil
	})
	for p := range 16 {
		it, err := tn.nodes[1].Meta().Get(ctx, meta.Partition(p), []byte("k"))
		if err != nil || string(it.Value) != "v" {
			t.Fatalf("partition %d after the change: %q %v", p, it.Value, err)
		}
	}

	tn.mem.Revive(tn.ids[victim])
	back := tn.restart(victim, old)
	tn.nodes[victim] = back
	eventually(t, 30*time.Second, "the node back in the layout", func() error {
		if l := tn.nodes[0].Layout(); l == nil || !inLayout(l, gone) {
			return fmt.Errorf("not back yet")
		}
		return nil
	})
}
