package raftmeta

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/redoubt-io/redoubt/internal/meta"
)

// quiesceParts is the groups of the quiescence tests.
func quiesceParts(n int) []meta.Partition {
	out := make([]meta.Partition, n)
	for i := range out {
		out[i] = meta.Partition(i)
	}
	return out
}

// allQuiesced waits until every live host of c has every group of parts
// quiesced.
func allQuiesced(t *testing.T, c *cluster, parts []meta.Partition, live ...uint64) {
	t.Helper()
	if len(live) == 0 {
		live = c.ids
	}
	eventually(t, 10*time.Second, "idle groups quiesced", func() error {
		for _, id := range live {
			if q := c.host(id).Quiesced(); q != len(parts) {
				return fmt.Errorf("node %d: %d of %d groups quiesced", id, q, len(parts))
			}
		}
		return nil
	})
}

// writeAll commits n keys to every group of parts through its leader,
// and returns those acknowledged of group of.
func writeAll(t *testing.T, c *cluster, parts []meta.Partition, n int, of meta.Partition) []string {
	t.Helper()
	var acked []string
	for _, p := range parts {
		k := commitKeys(t, c.host(c.leader(p)), p, "k", n)
		if p == of {
			acked = k
		}
	}
	return acked
}

// TestIdleGroupsQuiesce: 64 idle groups on three nodes stop ticking once
// their writes are done, and then cost next to no Raft message (only each
// node's one liveness batch per peer and tick): under 1% of what ticking
// groups send. Not 0: on wall-clock ticks a scheduler stall (seen under
// -race) can make a peer look silent for an election timeout, and a
// follower wakes and runs a pre-vote round (8 messages once). A write to
// one of them wakes it, commits, and it quiesces again.
func TestIdleGroupsQuiesce(t *testing.T) {
	parts := quiesceParts(64)
	c := newCluster(t, 3, parts, quiesceConfig)
	acked := writeAll(t, c, parts, 2, 7)
	allQuiesced(t, c, parts)
	before := c.net.msgs.Load()
	time.Sleep(50 * fastTick) // what idle groups cost over 50 ticks
	idle := c.net.msgs.Load() - before
	t.Logf("Raft messages over 50 ticks of 64 idle groups on 3 nodes: %d (a heartbeat and its answer each tick: %d)", idle, 50*64*2*2)
	if ticking := int64(50 * 64 * 2 * 2); idle*100 >= ticking {
		t.Fatalf("%d Raft messages sent by quiesced groups over 50 ticks, ticking ones send %d", idle, ticking)
	}
	l := c.leader(7)
	got := commitKeys(t, c.host(l), 7, "again", 3)
	if len(got) != 3 {
		t.Fatalf("%d of 3 commits to a quiesced group acknowledged", len(got))
	}
	checkKeys(t, c.host(l), 7, append(acked, got...))
	allQuiesced(t, c, parts)
}

// TestQuiescedGroupFailsOver: the leader of quiesced groups is cut off
// from the others. With no request sent, its followers notice its node's
// silence and elect new leaders among themselves, which serve; once the
// link heals the old leader follows them, and every acknowledged write
// is on every replica.
func TestQuiescedGroupFailsOver(t *testing.T) {
	parts := quiesceParts(8)
	c := newCluster(t, 3, parts, quiesceConfig)
	acked := writeAll(t, c, parts, 2, 0)
	allQuiesced(t, c, parts)
	old := c.leader(0)
	var others []uint64
	for _, id := range c.ids {
		if id != old {
			others = append(others, id)
		}
	}
	c.net.isolate([]uint64{old}, c.ids)
	start := time.Now()
	for _, p := range parts {
		if l := c.leader(p, others...); l == old {
			t.Fatalf("group %d still led by the cut-off node", p)
		}
	}
	t.Logf("all 8 quiesced groups elected leaders away from the cut-off node in %v (election timeout %v)",
		time.Since(start).Round(time.Millisecond), time.Duration(DefaultConfig().ElectionTicks)*fastTick)
	l := c.leader(0, others...)
	acked = append(acked, commitKeys(t, c.host(l), 0, "after", 2)...)
	c.net.heal()
	c.converged(0)
	for _, id := range c.ids {
		checkKeys(t, c.host(id), 0, acked)
	}
}

// TestQuiescedFollowerWakesToForward: a request through a follower of a
// quiesced group whose leader's node went away is served once the
// followers elect; the request itself wakes the follower it came to.
func TestQuiescedFollowerWakesToForward(t *testing.T) {
	parts := quiesceParts(4)
	c := newCluster(t, 3, parts, quiesceConfig)
	writeAll(t, c, parts, 1, 2)
	allQuiesced(t, c, parts)
	old := c.leader(2)
	c.stop(old)
	via := c.another(old)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.host(via).Commit(ctx, 2, meta.Txn{Puts: []meta.KV{{Key: []byte("after"), Value: []byte("v")}}}); err != nil {
		t.Fatalf("commit through a follower after the leader's node stopped: %v", err)
	}
}

// quiesceConfig is fastConfig with quiescence on.
func quiesceConfig(c *Config) {
	fastConfig(c)
	c.Quiesce = true
}

// fastTick is fastConfig's tick.
const fastTick = 20 * time.Millisecond
