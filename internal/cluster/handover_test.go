package cluster

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redoubt-io/redoubt/internal/admin"
	"github.com/redoubt-io/redoubt/internal/layout"
	"github.com/redoubt-io/redoubt/internal/meta"
	"github.com/redoubt-io/redoubt/internal/placement"
	"github.com/redoubt-io/redoubt/internal/raftmeta"
	"github.com/redoubt-io/redoubt/internal/transport"
)

// consistently checks cond over d, failing at the first time it does not
// hold: for properties that must stay true while something else runs.
func consistently(t *testing.T, d time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if err := cond(); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(10 * time.Millisecond) // spacing the checks, not waiting for an event
	}
}

// groupWatch samples, until stopped, every group as its leader sees it,
// and checks that the leader always has a majority of live voters behind
// it. It records, per partition, the order in which watched nodes were
// first seen as learner and as voter.
type groupWatch struct {
	t     *testing.T
	nodes func() []*Cluster
	down  func(raftID uint64) bool // nodes the test cut off or killed

	mu struct {
		sync.Mutex
		learnerFirst map[[2]uint64]bool // (partition, node) -> seen learner before voter
		voterSeen    map[[2]uint64]bool
		samples      int
	}
	stop chan struct{}
	done chan struct{}
}

func watchGroups(t *testing.T, nodes func() []*Cluster, down func(uint64) bool) *groupWatch {
	w := &groupWatch{t: t, nodes: nodes, down: down, stop: make(chan struct{}), done: make(chan struct{})}
	w.mu.learnerFirst = map[[2]uint64]bool{}
	w.mu.voterSeen = map[[2]uint64]bool{}
	go w.run()
	t.Cleanup(w.close)
	return w
}

func (w *groupWatch) close() {
	select {
	case <-w.stop:
	default:
		close(w.stop)
	}
	<-w.done
}

func (w *groupWatch) run() {
	defer close(w.done)
	for {
		select {
		case <-w.stop:
			return
		case <-time.After(2 * time.Millisecond):
		}
		for _, c := range w.nodes() {
			for _, g := range c.host.Groups() {
				if g.Leader != c.raftID {
					continue
				}
				live := 0
				for _, v := range g.Voters {
					if !w.down(v) {
						live++
					}
				}
				if live < quorum(len(g.Voters)) {
					w.t.Errorf("partition %d led by %s: %d live of voters %v, no majority", g.Partition, c.ID(), live, g.Voters)
				}
				w.mu.Lock()
				w.mu.samples++
				for _, id := range g.Learners {
					k := [2]uint64{uint64(g.Partition), id}
					if !w.mu.voterSeen[k] {
						w.mu.learnerFirst[k] = true
					}
				}
				for _, id := range g.Voters {
					w.mu.voterSeen[[2]uint64{uint64(g.Partition), id}] = true
				}
				w.mu.Unlock()
			}
		}
	}
}

// becameVoterVia says whether node was seen as a learner of partition p
// before it was seen as its voter, and whether it was seen as a voter.
func (w *groupWatch) becameVoterVia(p meta.Partition, node uint64) (learnerFirst, voter bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	k := [2]uint64{uint64(p), node}
	return w.mu.learnerFirst[k], w.mu.voterSeen[k]
}

// writer runs clients that commit to every partition in turn through one
// node until stopped. It counts the commits served and failed, and the
// longest time during which no client had a commit served: a group that
// changes leader may hold one commit back (a proposal the old leader
// accepted but could not commit fails after its timeout), but the others
// go on.
type writer struct {
	mu struct {
		sync.Mutex
		ok, failed int
		lastOK     time.Time
		gap        time.Duration
		badErr     error // a failure other than unavailability
	}
	stop chan struct{}
	wg   sync.WaitGroup
}

func startWriter(t *testing.T, s meta.Store, partitions int) *writer {
	w := &writer{stop: make(chan struct{})}
	w.mu.lastOK = time.Now()
	for c := range 4 {
		w.wg.Go(func() {
			for i := c; ; i++ {
				select {
				case <-w.stop:
					return
				default:
				}
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				err := put(ctx, s, meta.Partition(i%partitions), fmt.Sprint("during", c), fmt.Sprint(i))
				cancel()
				now := time.Now()
				w.mu.Lock()
				if err != nil {
					w.mu.failed++
					if !errors.Is(err, meta.ErrUnavailable) && w.mu.badErr == nil {
						w.mu.badErr = err
					}
				} else {
					w.mu.ok++
					w.mu.gap = max(w.mu.gap, now.Sub(w.mu.lastOK))
					w.mu.lastOK = now
				}
				w.mu.Unlock()
			}
		})
	}
	t.Cleanup(w.close)
	return w
}

func (w *writer) close() {
	select {
	case <-w.stop:
	default:
		close(w.stop)
	}
	w.wg.Wait()
}

// check stops the clients and fails t unless commits were served all
// along: no second without one, and failures only for unavailability
// and rare.
func (w *writer) check(t *testing.T) {
	t.Helper()
	w.close()
	w.mu.Lock()
	defer w.mu.Unlock()
	t.Logf("commits during the change: %d served, %d failed, longest without one %v", w.mu.ok, w.mu.failed, w.mu.gap.Round(time.Millisecond))
	if w.mu.badErr != nil {
		t.Errorf("a commit failed: %v", w.mu.badErr)
	}
	if w.mu.ok == 0 || w.mu.gap > time.Second || w.mu.failed*50 > w.mu.ok {
		t.Errorf("commits not served throughout the change: %d served, %d failed, %v without one", w.mu.ok, w.mu.failed, w.mu.gap)
	}
}

// leaderStatus is group p as its leader among nodes sees it.
func leaderStatus(nodes []*Cluster, p meta.Partition) (raftmeta.Status, error) {
	for _, c := range nodes {
		if g, ok := c.group(p); ok && g.Leader == c.raftID {
			return g, nil
		}
	}
	return raftmeta.Status{}, fmt.Errorf("partition %d: no leader", p)
}

// matchesLayout checks that every group's leader among nodes has exactly
// the layout's voters and no learner.
func matchesLayout(nodes []*Cluster, l *layout.Layout) error {
	for p := range l.Partitions {
		g, err := leaderStatus(nodes, meta.Partition(p))
		if err != nil {
			return err
		}
		want := nodes[0].raftIDs(l.MetaNodes(p))
		slices.Sort(want)
		if !slices.Equal(g.Voters, want) || len(g.Learners) > 0 {
			return fmt.Errorf("partition %d: voters %v learners %v, want voters %v", p, g.Voters, g.Learners, want)
		}
	}
	return nil
}

func stageAndApply(t *testing.T, c *Cluster, version uint64, edits ...admin.LayoutEdit) *layout.Layout {
	t.Helper()
	ctx := context.Background()
	for _, e := range edits {
		if _, err := c.Stage(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.Apply(ctx, version); err != nil {
		t.Fatal(err)
	}
	l, _, err := c.readLayout(ctx)
	if err != nil || l == nil || l.Version != version {
		t.Fatalf("layout after apply: %v, %v", l, err)
	}
	return l
}

// fixedPolicy keeps the data policy at 2+1 whatever the node count, so a
// fourth node takes over some of the three shards of each partition, and
// with them some partitions' Raft groups.
func fixedPolicy(cfg *Config) { cfg.Policy = &placement.Policy{K: 2, M: 1} }

// newFixedNet starts three nodes in three zones under fixedPolicy.
func newFixedNet(t *testing.T) *testNet {
	tn := &testNet{t: t, mem: transport.NewMemNetwork()}
	for i := range 3 {
		tn.addWith(fmt.Sprintf("zone-%d", i), 3, fixedPolicy)
	}
	for _, c := range tn.nodes {
		eventually(t, 20*time.Second, "the first layout", func() error {
			if c.Layout() == nil {
				return errors.New("no layout")
			}
			return nil
		})
	}
	return tn
}

func TestHandoverThroughLearners(t *testing.T) {
	tn := newFixedNet(t)
	ctx := context.Background()
	for p := range 16 {
		eventually(t, 10*time.Second, "commit", func() error { return put(ctx, tn.nodes[0].Meta(), meta.Partition(p), "before", "x") })
	}
	old := slices.Clone(tn.nodes)
	// A fourth zone: groups spread over zones first, so a node in a zone
	// they have would take few over.
	c4 := tn.addWith("zone-3", 3, fixedPolicy)
	id4 := c4.raftID
	eventually(t, 10*time.Second, "the new node is staged", func() error {
		v, err := old[1].View(ctx)
		if err == nil && len(v.Staged) == 0 {
			err = errors.New("nothing staged")
		}
		return err
	})

	// The new node is cut off, so it cannot catch up: it must stay a
	// learner, and the voters it replaces must stay.
	var isolated atomic.Bool
	isolated.Store(true)
	tn.mem.Partition([]transport.NodeID{tn.ids[3]})
	watch := watchGroups(t, func() []*Cluster { return tn.nodes }, func(id uint64) bool { return id == id4 && isolated.Load() })
	w := startWriter(t, old[0].Meta(), 16)

	l := stageAndApply(t, old[1], 2)
	var gained []meta.Partition
	for p := range l.Partitions {
		if slices.Contains(l.MetaNodes(p), c4.ID()) {
			gained = append(gained, meta.Partition(p))
		}
	}
	if len(gained) == 0 {
		t.Fatal("the new layout gives the new node no group")
	}
	t.Logf("the new node joins %d of %d groups", len(gained), l.Partitions)
	// waitingLearner checks the groups that have a leader now (a group
	// may be between leaders for a moment on a loaded machine).
	waitingLearner := func(needLeader bool) func() error {
		return func() error {
			for _, p := range gained {
				g, err := leaderStatus(old, p)
				if err != nil {
					if needLeader {
						return err
					}
					continue
				}
				if !slices.Contains(g.Learners, id4) || slices.Contains(g.Voters, id4) || len(g.Voters) != 3 {
					return fmt.Errorf("partition %d: voters %v learners %v, want the new node a learner beside 3 voters", p, g.Voters, g.Learners)
				}
			}
			return nil
		}
	}
	eventually(t, 20*time.Second, "the new node is a learner of its groups", waitingLearner(true))
	// Several rounds of reconciliation: still a learner, nothing removed.
	consistently(t, 500*time.Millisecond, "a learner that cannot catch up", waitingLearner(false))

	isolated.Store(false)
	tn.mem.Heal()
	eventually(t, 30*time.Second, "the groups match the layout", func() error { return matchesLayout(tn.nodes, l) })
	w.check(t)
	watch.close()

	for _, p := range gained {
		if learnerFirst, voter := watch.becameVoterVia(p, id4); !learnerFirst || !voter {
			t.Errorf("partition %d: new node seen as learner first %v, as voter %v", p, learnerFirst, voter)
		}
	}
	for p := range 16 {
		it, err := c4.host.GetStale(ctx, meta.Partition(p), []byte("before"))
		if g, ok := c4.group(meta.Partition(p)); ok && slices.Contains(g.Voters, id4) && (err != nil || string(it.Value) != "x") {
			t.Errorf("partition %d on the new node: %q, %v", p, it.Value, err)
		}
	}
}

func TestHandoverRemovesDeadVoterWhileLearnerWaits(t *testing.T) {
	tn := newTestNet(t, 4, 4)
	ctx := context.Background()
	for p := range 16 {
		eventually(t, 10*time.Second, "commit", func() error { return put(ctx, tn.nodes[0].Meta(), meta.Partition(p), "before", "x") })
	}
	c5 := tn.add("zone-0", 4)
	id5 := c5.raftID
	// Node 3 dies and the layout replaces it with node 5, which is cut
	// off and cannot catch up.
	dead := tn.nodes[3]
	tn.mem.Kill(tn.ids[3])
	tn.mem.Partition([]transport.NodeID{tn.ids[4]})
	var isolated atomic.Bool
	isolated.Store(true)
	live := []*Cluster{tn.nodes[0], tn.nodes[1], tn.nodes[2], c5}
	watch := watchGroups(t, func() []*Cluster { return live }, func(id uint64) bool {
		return id == dead.raftID || (id == id5 && isolated.Load())
	})
	l := stageAndApply(t, tn.nodes[0], 2, admin.LayoutEdit{Op: "remove", Node: dead.ID()})
	if inLayout(l, dead.ID()) || !inLayout(l, c5.ID()) {
		t.Fatalf("layout v2 does not swap the dead node for the new one")
	}

	eventually(t, 30*time.Second, "the dead voter is gone and the new node waits as a learner", func() error {
		for p := range l.Partitions {
			g, err := leaderStatus(live, meta.Partition(p))
			if err != nil {
				return err
			}
			want := tn.nodes[0].raftIDs(l.MetaNodes(p))
			if slices.Contains(g.Voters, dead.raftID) {
				return fmt.Errorf("partition %d: dead node still a voter: %v", p, g.Voters)
			}
			if slices.Contains(g.Voters, id5) {
				return fmt.Errorf("partition %d: the cut-off node was promoted", p)
			}
			if slices.Contains(want, id5) && !slices.Contains(g.Learners, id5) {
				return fmt.Errorf("partition %d: the new node is not a learner: %v", p, g.Learners)
			}
			// Live voters the layout drops stay until the learner is in.
			for _, v := range want {
				if v != id5 && !slices.Contains(g.Voters, v) {
					return fmt.Errorf("partition %d: wanted voter %x missing from %v", p, v, g.Voters)
				}
			}
			if len(g.Voters) < 2 {
				return fmt.Errorf("partition %d: voters %v", p, g.Voters)
			}
		}
		return nil
	})
	eventually(t, 10*time.Second, "commits go on without the dead node", func() error {
		for p := range 16 {
			if err := put(ctx, tn.nodes[p%3].Meta(), meta.Partition(p), "after", "y"); err != nil {
				return err
			}
		}
		return nil
	})

	isolated.Store(false)
	tn.mem.Heal()
	eventually(t, 30*time.Second, "the groups match the layout", func() error { return matchesLayout(live, l) })
	watch.close()
	for p := range l.Partitions {
		if !slices.Contains(l.MetaNodes(p), c5.ID()) {
			continue
		}
		if learnerFirst, voter := watch.becameVoterVia(meta.Partition(p), id5); !learnerFirst || !voter {
			t.Errorf("partition %d: new node seen as learner first %v, as voter %v", p, learnerFirst, voter)
		}
	}
}

func TestHandoverBackToNodesThatLeft(t *testing.T) {
	tn := newFixedNet(t)
	ctx := context.Background()
	for p := range 16 {
		eventually(t, 10*time.Second, "commit", func() error { return put(ctx, tn.nodes[0].Meta(), meta.Partition(p), "before", "x") })
	}
	c4 := tn.addWith("zone-3", 3, fixedPolicy)
	l2 := stageAndApply(t, tn.nodes[1], 2)
	eventually(t, 30*time.Second, "the groups match layout v2", func() error { return matchesLayout(tn.nodes, l2) })
	left := 0
	for p := range l2.Partitions {
		if slices.Contains(l2.MetaNodes(p), c4.ID()) {
			left++
		}
	}
	t.Logf("old nodes left %d groups for the new one", left)

	// Taking the new node out again gives the old nodes back the groups
	// they left (and deleted their copies of): they start them afresh.
	watch := watchGroups(t, func() []*Cluster { return tn.nodes }, func(uint64) bool { return false })
	l3 := stageAndApply(t, tn.nodes[1], 3, admin.LayoutEdit{Op: "remove", Node: c4.ID()})
	eventually(t, 30*time.Second, "the groups match layout v3", func() error { return matchesLayout(tn.nodes, l3) })
	watch.close()
	for p := range 16 {
		for _, c := range tn.nodes[:3] {
			it, err := c.host.GetStale(ctx, meta.Partition(p), []byte("before"))
			if err != nil || string(it.Value) != "x" {
				t.Fatalf("partition %d on node %s: %q, %v", p, c.ID(), it.Value, err)
			}
		}
	}
}

func TestHandoverStep(t *testing.T) {
	m := func(id uint64, learner, active bool, match, added uint64) raftmeta.MemberProgress {
		return raftmeta.MemberProgress{ID: id, Learner: learner, Active: active, Match: match, AddedAt: added}
	}
	all := func(uint64) bool { return true }
	none := func(uint64) bool { return false }
	tests := []struct {
		name    string
		members []raftmeta.MemberProgress
		want    []uint64
		known   func(uint64) bool
		dead    func(uint64) bool
		step    confChange
	}{
		{"in line", []raftmeta.MemberProgress{m(1, false, true, 100, 0), m(2, false, true, 100, 0), m(3, false, true, 100, 0)},
			[]uint64{1, 2, 3}, all, none, confChange{}},
		{"a new node comes as a learner", []raftmeta.MemberProgress{m(1, false, true, 100, 0), m(2, false, true, 100, 0), m(3, false, true, 100, 0)},
			[]uint64{1, 2, 4}, all, none, confChange{op: opAddLearner, node: 4}},
		{"not before its address is known", []raftmeta.MemberProgress{m(1, false, true, 100, 0), m(2, false, true, 100, 0), m(3, false, true, 100, 0)},
			[]uint64{1, 2, 4}, none, none, confChange{}},
		{"a learner behind waits, the voter it replaces stays", []raftmeta.MemberProgress{m(1, false, true, 100, 0), m(2, false, true, 100, 0), m(3, false, true, 100, 0), m(4, true, true, 0, 90)},
			[]uint64{1, 2, 4}, all, none, confChange{}},
		{"a learner with its snapshot is promoted", []raftmeta.MemberProgress{m(1, false, true, 900, 0), m(2, false, true, 900, 0), m(3, false, true, 900, 0), m(4, true, true, 95, 90)},
			[]uint64{1, 2, 4}, all, none, confChange{op: opPromote, node: 4}},
		{"a learner near the commit index is promoted", []raftmeta.MemberProgress{m(1, false, true, 100, 0), m(2, false, true, 100, 0), m(3, false, true, 100, 0), m(4, true, true, 80, 90)},
			[]uint64{1, 2, 4}, all, none, confChange{op: opPromote, node: 4}},
		{"a silent learner is not promoted", []raftmeta.MemberProgress{m(1, false, true, 100, 0), m(2, false, true, 100, 0), m(3, false, true, 100, 0), m(4, true, false, 100, 90)},
			[]uint64{1, 2, 4}, all, none, confChange{}},
		{"then the dropped voter goes", []raftmeta.MemberProgress{m(1, false, true, 100, 0), m(2, false, true, 100, 0), m(3, false, true, 100, 0), m(4, false, true, 100, 0)},
			[]uint64{1, 2, 4}, all, none, confChange{op: opRemove, node: 3}},
		{"a dropped leader hands the lead over", []raftmeta.MemberProgress{m(1, false, true, 100, 0), m(2, false, true, 90, 0), m(3, false, true, 99, 0), m(4, false, true, 98, 0)},
			[]uint64{2, 3, 4}, all, none, confChange{op: opTransfer, node: 3}},
		{"once the others are in line", []raftmeta.MemberProgress{m(1, false, true, 100, 0), m(2, false, true, 90, 0), m(3, false, true, 99, 0), m(4, true, true, 0, 98)},
			[]uint64{2, 3, 4}, all, none, confChange{}},
		{"a dead dropped voter goes while the learner waits", []raftmeta.MemberProgress{m(1, false, true, 100, 0), m(2, false, true, 100, 0), m(3, false, false, 50, 0), m(4, true, true, 0, 90)},
			[]uint64{1, 2, 4}, all, all, confChange{op: opRemove, node: 3}},
		{"not if it answers after all", []raftmeta.MemberProgress{m(1, false, true, 100, 0), m(2, false, true, 100, 0), m(3, false, false, 50, 0), m(4, true, true, 0, 90)},
			[]uint64{1, 2, 4}, all, none, confChange{}},
		{"nor if the live voters left are no majority", []raftmeta.MemberProgress{m(1, false, true, 100, 0), m(2, false, false, 100, 0), m(3, false, false, 50, 0), m(4, true, true, 0, 90)},
			[]uint64{1, 2, 4}, all, all, confChange{}},
		{"a live dropped voter stays while a wanted voter is down", []raftmeta.MemberProgress{m(1, false, true, 100, 0), m(2, false, true, 100, 0), m(3, false, true, 100, 0), m(4, false, false, 100, 0)},
			[]uint64{1, 2, 4}, all, all, confChange{}},
		{"a learner no longer wanted goes first", []raftmeta.MemberProgress{m(1, false, true, 100, 0), m(2, false, true, 100, 0), m(3, false, true, 100, 0), m(4, true, true, 0, 90)},
			[]uint64{1, 2, 5}, all, none, confChange{op: opRemove, node: 4}},
		{"shrinking keeps the layout's count of live voters", []raftmeta.MemberProgress{m(1, false, true, 100, 0), m(2, false, true, 100, 0), m(3, false, true, 100, 0), m(4, false, true, 100, 0), m(5, false, true, 100, 0)},
			[]uint64{1, 2, 3}, all, none, confChange{op: opRemove, node: 4}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			pr := raftmeta.Progress{Commit: 100, LogStart: 10, Members: tc.members}
			got, ok := handoverStep(pr, 1, tc.want, tc.known, tc.dead)
			if ok != (tc.step.op != "") || got.op != tc.step.op || got.node != tc.step.node {
				t.Errorf("step %q %d (ok %v), want %q %d", got.op, got.node, ok, tc.step.op, tc.step.node)
			}
		})
	}
}
