package raftmeta

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redoubt-io/redoubt/internal/meta"
)

// A snapshot larger than the Sender carries is not sent, and it is
// counted (Stats.Refused): the follower that needs it stays behind in
// that group, visibly. It goes in a batch of its own, so the node's other
// groups keep their heartbeats and appends and the follower catches up
// in them.
func TestSnapshotTooLargeIsRefusedAlone(t *testing.T) {
	c := newCluster(t, 3, []meta.Partition{0, 1}, func(cfg *Config) {
		fastConfig(cfg)
		cfg.SnapshotEntries = 8
		cfg.MaxMessage = 4 << 10
		cfg.MaxBatch = 64 << 10
	})
	l := c.leader(0)
	down := l%3 + 1
	c.converged(0)
	c.converged(1)
	c.stop(down)
	// 100 KiB in group 0, more than a batch may carry; its log is
	// compacted on every live node, so the returning node needs a
	// snapshot of it.
	big := strings.Repeat("x", 1000)
	for i := range 100 {
		k := fmt.Sprintf("big%04d", i)
		if _, err := c.host(c.leader(0)).Commit(context.Background(), 0, meta.Txn{Puts: []meta.KV{{Key: []byte(k), Value: []byte(big)}}}); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, 10*time.Second, "logs compacted", func() error {
		for _, id := range c.ids {
			if id == down {
				continue
			}
			if s := c.host(id).Groups()[0].LogStart; s < 50 {
				return fmt.Errorf("node %d's log of group 0 starts at %d", id, s)
			}
		}
		return nil
	})
	c.start(down)
	eventually(t, 10*time.Second, "the snapshot refused", func() error {
		var n uint64
		for _, id := range c.ids {
			n += c.host(id).Stats().Refused
		}
		if n == 0 {
			return fmt.Errorf("no message refused")
		}
		return nil
	})
	// Group 1 goes on with the returning node in it.
	acked := commitKeys(t, c.host(c.leader(1)), 1, "small", 5)
	got := c.converged(1)
	for _, k := range acked {
		if _, ok := got[k]; !ok {
			t.Fatalf("group 1 lacks %s", k)
		}
	}
	if d, _ := dump(c.host(down), 0); len(d) >= 100 {
		t.Fatalf("the returning node holds %d keys of group 0: the refused snapshot arrived", len(d))
	}
}
