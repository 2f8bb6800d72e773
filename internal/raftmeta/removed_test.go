package raftmeta

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/redoubt-io/redoubt/internal/meta"
)

// withGrace is fastConfig with Config.RemovedGrace set to d.
func withGrace(d time.Duration) func(*Config) {
	return func(c *Config) {
		fastConfig(c)
		c.RemovedGrace = d
	}
}

// follower returns a member of p's group other than its leader l.
func (c *cluster) follower(p meta.Partition, l uint64) uint64 {
	for _, id := range c.groups[p] {
		if id != l {
			return id
		}
	}
	c.t.Fatalf("group %s has no member but its leader %d", partitionName(p), l)
	return 0
}

func others(ids []uint64, not uint64) []uint64 {
	return slices.DeleteFunc(slices.Clone(ids), func(id uint64) bool { return id == not })
}

// hosts reports whether Groups lists p, as the cluster layer sees it.
func hosts(h *Host, p meta.Partition) (Status, bool) {
	for _, st := range h.Groups() {
		if st.Partition == p {
			return st, true
		}
	}
	return Status{}, false
}

// storedKeys counts the keys of group p in h's Pebble: its record, log,
// state and items.
func storedKeys(t *testing.T, h *Host, p meta.Partition) int {
	t.Helper()
	n := 0
	if _, closer, err := h.db.Get(groupRecordKey(p)); err == nil {
		closer.Close()
		n++
	} else if !errors.Is(err, pebble.ErrNotFound) {
		t.Fatal(err)
	}
	lower, upper := groupBounds(p)
	it, err := h.db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		t.Fatal(err)
	}
	for ok := it.First(); ok; ok = it.Next() {
		n++
	}
	if err := it.Close(); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestReaddedWhileDisconnected: a member is removed from a group and added
// back while it is cut off. Reconnected, it receives both changes at once
// and must keep its copy through its own old removal, while the layer
// above keeps asking it to host the group as a layout would: it catches
// up, and reads and commits through it see everything.
func TestReaddedWhileDisconnected(t *testing.T) {
	c := newCluster(t, 3, []meta.Partition{0}, withGrace(time.Minute))
	ctx := context.Background()
	l := c.leader(0)
	out := c.follower(0, l)
	acked := commitKeys(t, c.host(l), 0, "before", 20)
	c.converged(0)

	c.net.isolate([]uint64{out}, c.ids)
	acked = append(acked, commitKeys(t, c.host(l), 0, "cut", 20)...)
	if err := c.host(l).RemoveVoter(ctx, 0, out); err != nil {
		t.Fatal(err)
	}
	acked = append(acked, commitKeys(t, c.host(l), 0, "removed", 20)...)
	if err := c.host(l).AddLearner(ctx, 0, out); err != nil {
		t.Fatal(err)
	}
	acked = append(acked, commitKeys(t, c.host(l), 0, "added", 20)...)

	c.net.heal()
	h := c.host(out)
	rest := others(c.groups[0], out)
	eventually(t, 10*time.Second, "the returning node catches up as a learner", func() error {
		if _, ok := hosts(h, 0); !ok {
			// As the cluster layer does for a group its layout gives the
			// node and that it does not see hosted.
			if err := h.EnsureGroup(0, rest); err != nil {
				return err
			}
		}
		st, ok := hosts(h, 0)
		if !ok || !slices.Contains(st.Learners, out) {
			return fmt.Errorf("hosted %v, status %+v", ok, st)
		}
		d, err := dump(h, 0)
		if err != nil {
			return err
		}
		if len(d) != len(acked) {
			return fmt.Errorf("%d keys of %d", len(d), len(acked))
		}
		return nil
	})
	// Its copy holds every key, and at the revision the others have.
	want := c.converged(0)
	if d, _ := dump(h, 0); fmt.Sprint(d) != fmt.Sprint(want) {
		t.Fatalf("the returning node holds %d keys, the others %d, or at other revisions", len(d), len(want))
	}

	// A voter again, it commits and reads like any member.
	if err := c.host(c.leader(0)).AddVoter(ctx, 0, out); err != nil {
		t.Fatal(err)
	}
	acked = append(acked, commitKeys(t, h, 0, "back", 10)...)
	if len(acked) != 90 {
		t.Fatalf("%d of 90 commits acknowledged", len(acked))
	}
	checkKeys(t, h, 0, acked)
	for _, id := range c.ids {
		if st, ok := hosts(c.host(id), 0); !ok || !slices.Equal(st.Voters, c.ids) {
			t.Fatalf("node %d: hosted %v, voters %v; want %v", id, ok, st.Voters, c.ids)
		}
	}
}

// TestReaddedWithinTheGrace: a connected member that applied its removal
// stops counting as a host of the group at once, requests through it go
// to the members, and it keeps its copy: added back, it resumes from it.
func TestReaddedWithinTheGrace(t *testing.T) {
	c := newCluster(t, 3, []meta.Partition{0}, withGrace(time.Minute))
	ctx := context.Background()
	l := c.leader(0)
	out := c.follower(0, l)
	acked := commitKeys(t, c.host(l), 0, "before", 20)
	c.converged(0)
	if err := c.host(l).RemoveVoter(ctx, 0, out); err != nil {
		t.Fatal(err)
	}
	h := c.host(out)
	eventually(t, 5*time.Second, "the removed node stops hosting the group", func() error {
		if _, ok := hosts(h, 0); ok {
			return errors.New("still listed")
		}
		return nil
	})
	if h.replica(0) == nil || storedKeys(t, h, 0) == 0 {
		t.Fatal("the removed node deleted its copy before its grace ended")
	}
	if _, err := h.Progress(0); !errors.Is(err, ErrNoGroup) {
		t.Fatalf("progress at the removed node: %v, want ErrNoGroup", err)
	}
	// Served by the members, as for a node outside the group.
	acked = append(acked, commitKeys(t, h, 0, "through", 10)...)
	if len(acked) != 30 {
		t.Fatalf("%d of 30 commits acknowledged", len(acked))
	}
	checkKeys(t, h, 0, acked)

	if err := c.host(c.leader(0)).AddLearner(ctx, 0, out); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "the node added back catches up", func() error {
		st, ok := hosts(h, 0)
		if !ok || !slices.Contains(st.Learners, out) {
			return fmt.Errorf("hosted %v, status %+v", ok, st)
		}
		if d, _ := dump(h, 0); len(d) != len(acked) {
			return fmt.Errorf("%d keys of %d", len(d), len(acked))
		}
		return nil
	})
}

// TestRemovedForGoodDropsAfterTheGrace: a node removed from a group keeps
// its copy for the grace, restarting gives it a new grace, and then its
// copy is deleted. The remaining members go on.
func TestRemovedForGoodDropsAfterTheGrace(t *testing.T) {
	const grace = 2 * time.Second
	c := newCluster(t, 3, []meta.Partition{0}, withGrace(grace))
	ctx := context.Background()
	l := c.leader(0)
	out := c.follower(0, l)
	acked := commitKeys(t, c.host(l), 0, "before", 20)
	c.converged(0)
	if err := c.host(l).RemoveVoter(ctx, 0, out); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "the removed node stops hosting the group", func() error {
		if _, ok := hosts(c.host(out), 0); ok {
			return errors.New("still listed")
		}
		return nil
	})

	// Restarted within its grace, it loads the group as removed, with a
	// new grace; the start asks it to host the group again, which keeps
	// the copy as it is.
	c.stop(out)
	start := time.Now()
	h := c.start(out)
	if _, ok := hosts(h, 0); ok || h.replica(0) == nil {
		t.Fatalf("restarted after its removal: listed %v, copy %v; want a copy not listed", ok, h.replica(0) != nil)
	}
	if d, err := dump(h, 0); err != nil || len(d) != len(acked) {
		t.Fatalf("restarted after its removal: %d keys of %d, %v", len(d), len(acked), err)
	}

	eventually(t, grace+10*time.Second, "the removed node deletes its copy", func() error {
		if n := storedKeys(t, h, 0); n > 0 || h.replica(0) != nil {
			return fmt.Errorf("%d keys stored", n)
		}
		return nil
	})
	if d := time.Since(start); d < grace {
		t.Fatalf("copy deleted %v after the restart, before the grace of %v", d, grace)
	}
	if d, err := dump(h, 0); err != nil || len(d) != 0 {
		t.Fatalf("after the grace the removed node reads %d items, %v", len(d), err)
	}

	// The group goes on without it, and requests through it still work.
	acked = append(acked, commitKeys(t, h, 0, "after", 10)...)
	if len(acked) != 30 {
		t.Fatalf("%d of 30 commits acknowledged", len(acked))
	}
	checkKeys(t, h, 0, acked)
	for _, id := range others(c.ids, out) {
		if st, ok := hosts(c.host(id), 0); !ok || slices.Contains(st.Voters, out) {
			t.Fatalf("node %d: hosted %v, voters %v", id, ok, st.Voters)
		}
	}
}

// TestRemovedLeaderStepsDown: a leader that applies its own removal stops
// leading at once, though it keeps its copy for the grace; the others
// elect a leader among themselves.
func TestRemovedLeaderStepsDown(t *testing.T) {
	c := newCluster(t, 3, []meta.Partition{0}, withGrace(time.Minute))
	ctx := context.Background()
	l := c.leader(0)
	acked := commitKeys(t, c.host(l), 0, "before", 10)
	if err := c.host(l).RemoveVoter(ctx, 0, l); err != nil {
		t.Fatal(err)
	}
	rest := others(c.ids, l)
	next := c.leader(0, rest...)
	if _, ok := hosts(c.host(l), 0); ok {
		t.Fatalf("node %d still hosts the group it removed itself from", l)
	}
	acked = append(acked, commitKeys(t, c.host(next), 0, "after", 10)...)
	if len(acked) != 20 {
		t.Fatalf("%d of 20 commits acknowledged", len(acked))
	}
	checkKeys(t, c.host(l), 0, acked)
}
