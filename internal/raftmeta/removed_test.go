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

// checkedConfig is fastConfig with replicas that heard from no leader
// asking often whether they are still members.
func checkedConfig(c *Config) {
	fastConfig(c)
	c.ReplicaCheckInterval = 50 * time.Millisecond
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

// storedKeys counts the keys of h's replica of group p in its Pebble: its
// record, log, state and items (not its tombstone).
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
// back while it is cut off. Reconnected, it hears from the leader about
// its new replica, never about the removal of its old one: it replaces
// the old replica with the new, which a snapshot fills, while the layer
// above keeps asking it to host the group as a layout would. Reads and
// commits through it then see everything.
func TestReaddedWhileDisconnected(t *testing.T) {
	c := newCluster(t, 3, []meta.Partition{0}, checkedConfig)
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

// TestRemovedReplicaIsDeleted: a connected member that applies its
// removal deletes its replica at once, leaving a tombstone; requests
// through the node go to the members. Added back, the node gets a new
// replica (a new Raft ID, a later generation), filled by a snapshot. A
// restart makes neither the old replica come back nor the node bootstrap
// the group again, though its start still names it an initial voter.
func TestRemovedReplicaIsDeleted(t *testing.T) {
	c := newCluster(t, 3, []meta.Partition{0}, checkedConfig)
	ctx := context.Background()
	l := c.leader(0)
	out := c.follower(0, l)
	acked := commitKeys(t, c.host(l), 0, "before", 20)
	c.converged(0)
	first, _ := hosts(c.host(out), 0)
	if first.Replica != out || first.Generation != 0 {
		t.Fatalf("initial replica %d generation %d, want %d and 0", first.Replica, first.Generation, out)
	}
	if err := c.host(l).RemoveVoter(ctx, 0, out); err != nil {
		t.Fatal(err)
	}
	h := c.host(out)
	eventually(t, 5*time.Second, "the removed node deletes its replica", func() error {
		if n := storedKeys(t, h, 0); n > 0 || h.replica(0) != nil {
			return fmt.Errorf("%d keys stored", n)
		}
		return nil
	})
	if got := h.tomb(0); got != 1 {
		t.Fatalf("tombstone %d, want generation 1", got)
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

	// A restart keeps it out: the tombstone stays, and the group is not
	// bootstrapped again although the start names the node a voter.
	c.stop(out)
	h = c.start(out)
	if h.replica(0) != nil || storedKeys(t, h, 0) > 0 {
		t.Fatal("the removed replica came back after a restart")
	}

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
	st, _ := hosts(h, 0)
	if st.Replica == first.Replica || st.Generation != 1 {
		t.Fatalf("replica added back: %d generation %d; the first was %d generation 0", st.Replica, st.Generation, first.Replica)
	}
	if err := c.host(c.leader(0)).AddVoter(ctx, 0, out); err != nil {
		t.Fatal(err)
	}
	acked = append(acked, commitKeys(t, h, 0, "back", 10)...)
	checkKeys(t, h, 0, acked)
	for _, id := range c.ids {
		if st, ok := hosts(c.host(id), 0); !ok || !slices.Equal(st.Voters, c.ids) {
			t.Fatalf("node %d: hosted %v, voters %v; want %v", id, ok, st.Voters, c.ids)
		}
	}
}

// TestRemovedWhileCutOffDeletedOnTheLeadersWord: a member cut off while
// it is removed never hears of its removal (the leader stops sending to
// it). It asks the leader whether it is still a member once it has heard
// from no leader for a while, and deletes its replica on the leader's
// confirmed answer, not before: while it cannot reach the group it keeps
// everything.
func TestRemovedWhileCutOffDeletedOnTheLeadersWord(t *testing.T) {
	c := newCluster(t, 3, []meta.Partition{0}, checkedConfig)
	ctx := context.Background()
	l := c.leader(0)
	out := c.follower(0, l)
	commitKeys(t, c.host(l), 0, "before", 10)
	c.converged(0)
	c.net.isolate([]uint64{out}, c.ids)
	if err := c.host(l).RemoveVoter(ctx, 0, out); err != nil {
		t.Fatal(err)
	}
	h := c.host(out)
	// Cut off, its checks get no answer: it keeps its replica, however
	// long it waits (many check intervals and election timeouts here).
	eventually(t, 10*time.Second, "the cut-off replica grows suspicious", func() error {
		if !h.suspect(h.replica(0)) {
			return errors.New("not yet")
		}
		return nil
	})
	for range 4 {
		if err := h.checkReplica(ctx, 0); !isUnavailable(err) {
			t.Fatalf("a check without the group's leader: %v, want ErrUnavailable", err)
		}
	}
	if h.replica(0) == nil || storedKeys(t, h, 0) == 0 {
		t.Fatal("the cut-off replica was deleted without its leader's word")
	}
	c.net.heal()
	eventually(t, 10*time.Second, "the removed replica is deleted once the leader says so", func() error {
		if n := storedKeys(t, h, 0); n > 0 || h.replica(0) != nil {
			return fmt.Errorf("%d keys stored", n)
		}
		return nil
	})
	if s := h.Stats(); s.Deleted != 1 {
		t.Fatalf("stats %+v, want one replica deleted", s)
	}
	// The members were never in doubt.
	for _, id := range others(c.ids, out) {
		if st, ok := hosts(c.host(id), 0); !ok || slices.Contains(st.Voters, out) {
			t.Fatalf("node %d: hosted %v, voters %v", id, ok, st.Voters)
		}
	}
}

// TestRemovedLeaderStepsDown: a leader that applies its own removal stops
// leading at once and deletes its replica; the others elect a leader
// among themselves.
func TestRemovedLeaderStepsDown(t *testing.T) {
	c := newCluster(t, 3, []meta.Partition{0}, checkedConfig)
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
