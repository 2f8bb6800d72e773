package raftmeta

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/redoubt-io/redoubt/internal/meta"
	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// leaderWatch records, while it runs, which node each host saw leading
// group p in each term, and fails the test if two nodes led one term.
type leaderWatch struct {
	t    *testing.T
	mu   sync.Mutex
	seen map[uint64]uint64 // term -> leader node
	stop chan struct{}
	done chan struct{}
}

func watchLeaders(t *testing.T, c *cluster, p meta.Partition) *leaderWatch {
	w := &leaderWatch{t: t, seen: map[uint64]uint64{}, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		tk := time.NewTicker(time.Millisecond)
		defer tk.Stop()
		for {
			select {
			case <-w.stop:
				return
			case <-tk.C:
			}
			for _, id := range c.ids {
				h := c.host(id)
				if h == nil {
					continue
				}
				g := h.replica(p)
				if g == nil {
					continue
				}
				g.mu.Lock()
				st := g.rn.BasicStatus()
				g.mu.Unlock()
				if st.RaftState != raft.StateLeader {
					continue
				}
				w.mu.Lock()
				if prev, ok := w.seen[st.HardState.GetTerm()]; ok && prev != id {
					w.t.Errorf("two leaders in term %d: nodes %d and %d", st.HardState.GetTerm(), prev, id)
				}
				w.seen[st.HardState.GetTerm()] = id
				w.mu.Unlock()
			}
		}
	}()
	t.Cleanup(w.close)
	return w
}

func (w *leaderWatch) close() {
	select {
	case <-w.stop:
	default:
		close(w.stop)
	}
	<-w.done
}

// TestReplicaIDReuseHole is the scenario of a hole found in review: a
// node's Raft ID was reused when it was added back to a group, and a
// removed group's state, vote included, was deleted on a timer. Node X
// is removed from a group and added back; it appends entries and
// acknowledges them, the leader counting it in a commit quorum; then X's
// links stall for longer than any timer. Had X deleted its state then, a
// later election it voted in, fresh and empty, could elect a leader
// without the committed entries. Now X's second replica is a new one
// (its own Raft ID and generation) and nothing deletes a member's state
// on a timer: X keeps its entries and its vote, the election cannot go
// to the node that lacks them, no term has two leaders, and every
// acknowledged commit is read back.
func TestReplicaIDReuseHole(t *testing.T) {
	c := newCluster(t, 3, []meta.Partition{0}, func(cfg *Config) {
		checkedConfig(cfg)
		cfg.ProposalTimeout = 500 * time.Millisecond
	})
	watchLeaders(t, c, 0)
	ctx := context.Background()
	l := c.leader(0)
	x := c.follower(0, l)
	a := others(others(c.ids, l), x)[0]
	acked := commitKeys(t, c.host(l), 0, "before", 10)
	c.converged(0)

	// X applies its removal, and its replica goes.
	if err := c.host(l).RemoveVoter(ctx, 0, x); err != nil {
		t.Fatal(err)
	}
	hx := c.host(x)
	eventually(t, 5*time.Second, "X deletes its removed replica", func() error {
		if hx.replica(0) != nil {
			return errors.New("still there")
		}
		return nil
	})
	acked = append(acked, commitKeys(t, c.host(l), 0, "between", 10)...)

	// The leader adds X back, as a new replica, which becomes a voter.
	if err := c.host(l).AddLearner(ctx, 0, x); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "X's new replica catches up", func() error {
		if d, _ := dump(hx, 0); len(d) != len(acked) {
			return fmt.Errorf("%d keys of %d", len(d), len(acked))
		}
		return nil
	})
	if err := c.host(l).AddVoter(ctx, 0, x); err != nil {
		t.Fatal(err)
	}
	st, _ := hosts(hx, 0)
	if st.Replica == x || st.Generation == 0 {
		t.Fatalf("X's replica after it was added back: %d generation %d, its first was %d generation 0", st.Replica, st.Generation, x)
	}

	// A is cut off: X's acknowledgements make the commit quorum.
	c.net.isolate([]uint64{a}, c.ids)
	quorum := commitKeys(t, c.host(l), 0, "quorum", 10)
	if len(quorum) != 10 {
		t.Fatalf("%d of 10 commits acknowledged by the leader and X", len(quorum))
	}
	acked = append(acked, quorum...)
	eventually(t, 5*time.Second, "X holds the quorum's entries", func() error {
		if d, _ := dump(hx, 0); len(d) != len(acked) {
			return fmt.Errorf("%d keys of %d", len(d), len(acked))
		}
		return nil
	})

	// X's links stall. Time passes: X hears from no leader, grows
	// suspicious, asks and gets no answer, many times over. It keeps its
	// replica, entries and vote all along.
	c.net.isolate([]uint64{x}, c.ids)
	before := storedKeys(t, hx, 0)
	eventually(t, 10*time.Second, "X's replica grows suspicious", func() error {
		if g := hx.replica(0); g == nil || !hx.suspect(g) {
			return errors.New("not yet")
		}
		return nil
	})
	for range 3 {
		if err := hx.checkReplica(ctx, 0); !isUnavailable(err) {
			t.Fatalf("a check without the group's leader: %v, want ErrUnavailable", err)
		}
	}
	if hx.replica(0) == nil || storedKeys(t, hx, 0) < before {
		t.Fatalf("X's replica lost state while cut off: %d keys of %d stored", storedKeys(t, hx, 0), before)
	}

	// The leader dies; X and A meet again. Only X can lead: A lacks the
	// quorum's entries, and X does not vote for it.
	c.stop(l)
	c.net.heal()
	if got := c.leader(0, x, a); got != x {
		t.Fatalf("node %d leads without the entries X acknowledged", got)
	}
	acked = append(acked, commitKeys(t, c.host(a), 0, "after", 5)...)
	checkKeys(t, c.host(a), 0, acked)

	c.start(l)
	want := c.converged(0)
	if len(want) != len(acked) {
		t.Fatalf("%d keys, %d acknowledged", len(want), len(acked))
	}
	checkKeys(t, c.host(l), 0, acked)
}

// TestRemovedAndReaddedRepeatedly: a node removed from a group and added
// back, over and over, gets a new replica each time, with an ID and a
// generation never seen before in the group; each time it catches up,
// and the group loses nothing.
func TestRemovedAndReaddedRepeatedly(t *testing.T) {
	c := newCluster(t, 3, []meta.Partition{0}, checkedConfig)
	ctx := context.Background()
	l := c.leader(0)
	x := c.follower(0, l)
	hx := c.host(x)
	acked := commitKeys(t, c.host(l), 0, "start", 5)
	ids := map[uint64]bool{}
	var lastGen uint64
	for round := range 5 {
		st, _ := hosts(hx, 0)
		if ids[st.Replica] || (round > 0 && st.Generation <= lastGen) {
			t.Fatalf("round %d: replica %d generation %d; seen %v, last generation %d", round, st.Replica, st.Generation, ids, lastGen)
		}
		ids[st.Replica], lastGen = true, st.Generation
		lead := c.host(c.leader(0))
		if err := lead.RemoveVoter(ctx, 0, x); err != nil {
			t.Fatal(err)
		}
		eventually(t, 5*time.Second, "the replica is deleted", func() error {
			if hx.replica(0) != nil {
				return errors.New("still there")
			}
			return nil
		})
		acked = append(acked, commitKeys(t, hx, 0, fmt.Sprintf("out%d-", round), 3)...)
		if err := lead.AddLearner(ctx, 0, x); err != nil {
			t.Fatal(err)
		}
		eventually(t, 10*time.Second, "the new replica catches up", func() error {
			if d, _ := dump(hx, 0); len(d) != len(acked) {
				return fmt.Errorf("%d keys of %d", len(d), len(acked))
			}
			return nil
		})
		if err := lead.AddVoter(ctx, 0, x); err != nil {
			t.Fatal(err)
		}
		acked = append(acked, commitKeys(t, hx, 0, fmt.Sprintf("in%d-", round), 3)...)
	}
	if len(acked) != 5+5*6 {
		t.Fatalf("%d of %d commits acknowledged", len(acked), 5+5*6)
	}
	got := c.converged(0)
	if len(got) != len(acked) {
		t.Fatalf("replicas hold %d keys, %d acknowledged", len(got), len(acked))
	}
	if s := hx.Stats(); s.Deleted != 5 {
		t.Fatalf("stats %+v, want 5 replicas deleted", s)
	}
}

// TestReaddedWhileDownComesBackWithOldState: a node down while it is
// removed and added back restarts with its old replica, which is no
// member any more. The leader's messages name the new replica: the node
// replaces the old one, and a snapshot brings the new one up to date
// (the leader's log no longer holds what it missed).
func TestReaddedWhileDownComesBackWithOldState(t *testing.T) {
	c := newCluster(t, 3, []meta.Partition{0}, func(cfg *Config) {
		checkedConfig(cfg)
		cfg.SnapshotEntries = 16
	})
	ctx := context.Background()
	l := c.leader(0)
	x := c.follower(0, l)
	acked := commitKeys(t, c.host(l), 0, "before", 10)
	c.converged(0)
	c.stop(x)
	lead := c.host(l)
	if err := lead.RemoveVoter(ctx, 0, x); err != nil {
		t.Fatal(err)
	}
	acked = append(acked, commitKeys(t, lead, 0, "removed", 10)...)
	if err := lead.AddLearner(ctx, 0, x); err != nil {
		t.Fatal(err)
	}
	acked = append(acked, commitKeys(t, lead, 0, "added", 40)...)
	if st, _ := hosts(lead, 0); st.LogStart <= 20 {
		t.Fatalf("the leader's log starts at %d: it kept what the node missed", st.LogStart)
	}

	hx := c.start(x)
	if st, ok := hosts(hx, 0); !ok || st.Replica != x || st.Generation != 0 {
		t.Fatalf("restarted with %+v (listed %v), want its old replica %d", st, ok, x)
	}
	eventually(t, 10*time.Second, "the new replica replaces the old and catches up", func() error {
		st, ok := hosts(hx, 0)
		if !ok || st.Generation == 0 || !slices.Contains(st.Learners, x) {
			return fmt.Errorf("listed %v, status %+v", ok, st)
		}
		if d, _ := dump(hx, 0); len(d) != len(acked) {
			return fmt.Errorf("%d keys of %d", len(d), len(acked))
		}
		return nil
	})
	if got := hx.tomb(0); got == 0 {
		t.Fatal("no tombstone for the old replica")
	}
	if err := c.host(c.leader(0)).AddVoter(ctx, 0, x); err != nil {
		t.Fatal(err)
	}
	acked = append(acked, commitKeys(t, hx, 0, "back", 5)...)
	want := c.converged(0)
	if len(want) != len(acked) {
		t.Fatalf("%d keys, %d acknowledged", len(want), len(acked))
	}
	checkKeys(t, hx, 0, acked)
}

// TestReplicaSetAdmits: the checks every replica makes, alike, when it
// applies a configuration change.
func TestReplicaSetAdmits(t *testing.T) {
	cs := &raftpb.ConfState{Voters: []uint64{10, 20, 30}}
	set := initialSet(cs.Voters)
	add := func(id, node, gen uint64, learner bool) (*raftpb.ConfState, *replicaSet, error) {
		typ := raftpb.ConfChangeType_ConfChangeAddNode
		if learner {
			typ = raftpb.ConfChangeType_ConfChangeAddLearnerNode
		}
		cc := &raftpb.ConfChangeV2{Changes: []*raftpb.ConfChangeSingle{{Type: new(typ), NodeId: new(id)}}}
		return nextConf(cs, set, cc, encodeConfContext(1, 1, replica{id: id, node: node, gen: gen}))
	}
	remove := func(id uint64) (*raftpb.ConfState, *replicaSet, error) {
		cc := &raftpb.ConfChangeV2{Changes: []*raftpb.ConfChangeSingle{{Type: new(raftpb.ConfChangeType_ConfChangeRemoveNode), NodeId: new(id)}}}
		return nextConf(cs, set, cc, nil)
	}
	r, err := set.alloc(40)
	if err != nil || r.id != 31 || r.gen != 1 {
		t.Fatalf("first allocation %+v, %v; want ID 31 generation 1", r, err)
	}
	for _, tc := range []struct {
		name          string
		id, node, gen uint64
	}{
		{"a member's ID for another node", 20, 40, 1},
		{"an ID below the floor", 25, 40, 1},
		{"generation 0", 31, 40, 0},
		{"a node with a replica", 31, 20, 1},
		{"node 0", 31, 0, 1},
	} {
		if _, _, err := add(tc.id, tc.node, tc.gen, true); err == nil {
			t.Errorf("%s admitted", tc.name)
		}
	}
	// Remove 30, add node 40, remove it, add it again: every ID and
	// generation is new, and 30 never comes back.
	cs, set, err = remove(30)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := add(30, 40, 1, true); err == nil {
		t.Fatal("the ID of a removed initial voter admitted again")
	}
	seen := map[uint64]bool{10: true, 20: true, 30: true}
	var gens []uint64
	for range 3 {
		r, err := set.alloc(40)
		if err != nil || seen[r.id] {
			t.Fatalf("allocation %+v, %v; IDs given %v", r, err, seen)
		}
		seen[r.id] = true
		gens = append(gens, r.gen)
		if cs, set, err = add(r.id, 40, r.gen, true); err != nil {
			t.Fatal(err)
		}
		if got, ok := set.ofNode(40); !ok || got != r || !slices.Contains(cs.GetLearners(), r.id) {
			t.Fatalf("after adding %+v: %v, %v", r, set, cs)
		}
		if _, _, err := add(r.id+1, 40, r.gen+1, false); err == nil {
			t.Fatal("a second replica of node 40 admitted")
		}
		if cs, set, err = remove(r.id); err != nil {
			t.Fatal(err)
		}
	}
	if !slices.IsSorted(gens) || gens[0] == gens[1] || gens[1] == gens[2] {
		t.Fatalf("generations %v", gens)
	}
	// A change raft would panic on is refused instead.
	cs2, set2 := &raftpb.ConfState{Voters: []uint64{10}}, initialSet([]uint64{10})
	cc := &raftpb.ConfChangeV2{Changes: []*raftpb.ConfChangeSingle{{Type: new(raftpb.ConfChangeType_ConfChangeRemoveNode), NodeId: new(uint64(10))}}}
	if _, _, err := nextConf(cs2, set2, cc, nil); err == nil {
		t.Fatal("removing the last voter admitted")
	}
}

// TestStaleMessagesMakeNoReplica: a message to a replica older than the
// one a host has, or than its tombstone, is dropped and makes nothing; a
// message to a newer one replaces the replica.
func TestStaleMessagesMakeNoReplica(t *testing.T) {
	c := newCluster(t, 1, []meta.Partition{0}, fastConfig)
	h := c.host(1)
	c.leader(0)
	send := func(p meta.Partition, to, gen uint64) {
		t.Helper()
		raw, err := encodeBatch([]groupMsg{{p: p, fromGen: 5, toGen: gen, msg: &raftpb.Message{
			Type: new(raftpb.MsgHeartbeat), To: new(to), From: new(uint64(99)), Term: new(uint64(1)),
		}}})
		if err != nil {
			t.Fatal(err)
		}
		if err := h.Step(context.Background(), 2, raw); err != nil {
			t.Fatal(err)
		}
	}
	settled := func(what string, cond func() bool) {
		t.Helper()
		eventually(t, 5*time.Second, what, func() error {
			if h.pending() || !cond() {
				return errors.New("not yet")
			}
			return nil
		})
	}
	// Group 7 is unknown here, without a tombstone: a message makes it.
	send(7, 40, 3)
	settled("replica 40 of group 7 is made", func() bool { g := h.replica(7); return g != nil && g.self.id == 40 })
	// Older generations, of a replica there or gone, make nothing.
	send(7, 39, 2)
	send(7, 7, 0)
	settled("nothing changes", func() bool { return h.replica(7).self.id == 40 })
	if got := h.tomb(7); got != 3 {
		t.Fatalf("tombstone %d, want 3", got)
	}
	// A newer one replaces it.
	send(7, 41, 4)
	settled("replica 41 replaces replica 40", func() bool { g := h.replica(7); return g != nil && g.self.id == 41 })
	// A generation-0 replica is the node's own ID or nothing.
	send(8, 99, 0)
	settled("no replica of group 8", func() bool { return h.replica(8) == nil })
	// The group this node leads is untouched by a stale message.
	send(0, 1, 0)
	send(0, 50, 0)
	if g := h.group(0); g == nil || !g.leader.Load() {
		t.Fatal("the led group was disturbed")
	}
}

// TestGroupsFromBeforeReplicaIDsLoad: a data directory written before
// replicas had IDs of their own (group record and apply state of version
// 1) loads as generation-0 replicas named by their nodes, keeps every
// item, and takes membership changes: a node removed and added back gets
// a new ID, above every member's.
func TestGroupsFromBeforeReplicaIDsLoad(t *testing.T) {
	c := newCluster(t, 3, []meta.Partition{0}, checkedConfig)
	acked := commitKeys(t, c.host(c.leader(0)), 0, "old", 10)
	c.converged(0)
	for _, id := range c.ids {
		c.stop(id)
	}
	for _, id := range c.ids {
		db, err := pebble.Open(c.dirs[id], &pebble.Options{})
		if err != nil {
			t.Fatal(err)
		}
		v, closer, err := db.Get(groupKey(0, kindApply))
		if err != nil {
			t.Fatal(err)
		}
		applied, cs, err := decodeApplyState(v)
		closer.Close()
		if err != nil {
			t.Fatal(err)
		}
		raw, err := proto.Marshal(cs)
		if err != nil {
			t.Fatal(err)
		}
		legacy := binary.BigEndian.AppendUint64([]byte{formatVersion}, applied)
		b := db.NewBatch()
		b.Set(groupKey(0, kindApply), append(legacy, raw...), nil)
		b.Set(groupRecordKey(0), []byte{formatVersion}, nil)
		if err := b.Commit(pebble.Sync); err != nil {
			t.Fatal(err)
		}
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range c.ids {
		h := c.start(id)
		if st, ok := hosts(h, 0); !ok || st.Replica != id || st.Generation != 0 || !slices.Equal(st.Voters, c.ids) {
			t.Fatalf("node %d loads %+v (listed %v)", id, st, ok)
		}
	}
	l := c.leader(0)
	acked = append(acked, commitKeys(t, c.host(l), 0, "new", 5)...)
	x := c.follower(0, l)
	ctx := context.Background()
	if err := c.host(l).RemoveVoter(ctx, 0, x); err != nil {
		t.Fatal(err)
	}
	if err := c.host(l).AddVoter(ctx, 0, x); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "the node added back catches up", func() error {
		st, ok := hosts(c.host(x), 0)
		if !ok || st.Generation != 1 || st.Replica <= slices.Max(c.ids) {
			return fmt.Errorf("listed %v, status %+v", ok, st)
		}
		if d, _ := dump(c.host(x), 0); len(d) != len(acked) {
			return fmt.Errorf("%d keys of %d", len(d), len(acked))
		}
		return nil
	})
	acked = append(acked, commitKeys(t, c.host(x), 0, "after", 5)...)
	checkKeys(t, c.host(x), 0, acked)
}
