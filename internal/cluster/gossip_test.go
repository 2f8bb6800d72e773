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

	"github.com/thejerf/suture/v4"

	"github.com/redoubt-io/redoubt/internal/admin"
	"github.com/redoubt-io/redoubt/internal/membership"
	"github.com/redoubt-io/redoubt/internal/transport"
)

// testSupervisor runs services under suture, as a node does: a service
// that panics or fails is restarted, one that returns nil is done.
type testSupervisor struct {
	sup *suture.Supervisor
	mu  sync.Mutex
	// panicked lists the services that panicked, in order.
	panicked []string
}

func newTestSupervisor(t *testing.T) *testSupervisor {
	ts := &testSupervisor{}
	ts.sup = suture.New("test", suture.Spec{EventHook: func(e suture.Event) {
		if p, ok := e.(suture.EventServicePanic); ok {
			ts.mu.Lock()
			ts.panicked = append(ts.panicked, p.ServiceName)
			ts.mu.Unlock()
		}
	}})
	ctx, cancel := context.WithCancel(context.Background())
	done := ts.sup.ServeBackground(ctx)
	t.Cleanup(func() { cancel(); <-done })
	return ts
}

func (ts *testSupervisor) supervise(name string, run func(context.Context) error) {
	ts.sup.Add(testService{name, run})
}

func (ts *testSupervisor) panics() []string {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return slices.Clone(ts.panicked)
}

type testService struct {
	name string
	run  func(context.Context) error
}

func (s testService) String() string { return s.name }

func (s testService) Serve(ctx context.Context) error {
	err := s.run(ctx)
	if err == nil || ctx.Err() != nil {
		return suture.ErrDoNotRestart
	}
	return err
}

// startGossipNodes starts n nodes that gossip on 127.0.0.1, under sup
// when it is not nil, and waits until each lists every other as alive.
func startGossipNodes(t *testing.T, n int, sup *testSupervisor) *testNet {
	t.Helper()
	tn := &testNet{t: t, mem: transport.NewMemNetwork()}
	for i := range n {
		tn.addWith(fmt.Sprintf("zone-%d", i), n, func(c *Config) {
			c.NoGossip = false
			c.GossipAddr = "127.0.0.1:0"
			if sup != nil {
				c.Supervise = sup.supervise
			}
		})
	}
	eventually(t, 20*time.Second, "gossip among all nodes", func() error {
		for _, c := range tn.nodes {
			for _, o := range tn.nodes {
				if err := gossipLists(c.members(), o.ID(), ""); err != nil {
					return fmt.Errorf("node %s: %w", c.ID(), err)
				}
			}
		}
		return nil
	})
	return tn
}

// gossipLists checks that m lists node id as alive, at addr unless empty.
func gossipLists(m *membership.Members, id, addr string) error {
	if m == nil {
		return errors.New("no gossip")
	}
	for _, mem := range m.List() {
		if mem.ID != id {
			continue
		}
		if mem.State != membership.Alive {
			return fmt.Errorf("%s is %v", id, mem.State)
		}
		if addr != "" && mem.Addr != addr {
			return fmt.Errorf("%s listed at %s, want %s", id, mem.Addr, addr)
		}
		return nil
	}
	return fmt.Errorf("%s not listed", id)
}

// gossipBack checks that node i runs a gossip instance other than old, on
// old's address, that it has found the others again and that they list
// it as alive there.
func gossipBack(tn *testNet, i int, old *membership.Members) error {
	c := tn.nodes[i]
	cur := c.members()
	switch {
	case cur == old:
		return errors.New("still the old gossip instance")
	case cur.LocalAddr() != old.LocalAddr():
		return fmt.Errorf("new gossip instance on %s, was %s", cur.LocalAddr(), old.LocalAddr())
	}
	if err := cur.Probe(); err != nil {
		return err
	}
	for j, o := range tn.nodes {
		if j == i {
			continue
		}
		if err := gossipLists(cur, o.ID(), ""); err != nil {
			return fmt.Errorf("restarted node: %w", err)
		}
		if err := gossipLists(o.members(), c.ID(), old.LocalAddr()); err != nil {
			return fmt.Errorf("node %s: %w", o.ID(), err)
		}
	}
	return nil
}

// stayAlive checks, for as long as the others would take to find a
// silent node dead, that every node keeps listing node i as alive.
func stayAlive(t *testing.T, tn *testNet, i int) {
	t.Helper()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for end := time.Now().Add(membership.LANDetectionBound); time.Now().Before(end); <-tick.C {
		for j, o := range tn.nodes {
			if j == i {
				continue
			}
			if err := gossipLists(o.members(), tn.nodes[i].ID(), ""); err != nil {
				t.Fatalf("node %s: %v", o.ID(), err)
			}
		}
	}
}

// A gossip instance closed behind the node's back is replaced, on the same
// address, and the node stays a live member for the others.
func TestGossipInstanceClosedIsReplaced(t *testing.T) {
	for _, supervised := range []bool{false, true} {
		t.Run(fmt.Sprintf("supervised=%v", supervised), func(t *testing.T) {
			var sup *testSupervisor
			if supervised {
				sup = newTestSupervisor(t)
			}
			tn := startGossipNodes(t, 3, sup)
			victim := 2
			old := tn.nodes[victim].members()
			if err := old.Close(); err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			eventually(t, 10*time.Second, "gossip back on the same address", func() error {
				return gossipBack(tn, victim, old)
			})
			t.Logf("gossip back after %v", time.Since(start))
			stayAlive(t, tn, victim)

			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			for _, n := range tn.nodes[victim].Status(ctx).Nodes {
				if n.State != admin.NodeAlive {
					t.Errorf("restarted node's status shows %s %s", n.ID, n.State)
				}
			}
		})
	}
}

// A gossip service that panics is run again by its supervisor, with a new
// gossip instance, and gossip works after it.
func TestGossipServicePanicIsRestarted(t *testing.T) {
	var target atomic.Pointer[Cluster]
	var fired atomic.Bool
	gossipUpkeepHook = func(c *Cluster) {
		if target.Load() == c && fired.CompareAndSwap(false, true) {
			panic("injected gossip upkeep failure")
		}
	}
	t.Cleanup(func() { gossipUpkeepHook = nil })
	sup := newTestSupervisor(t)
	tn := startGossipNodes(t, 3, sup)

	victim := 1
	old := tn.nodes[victim].members()
	target.Store(tn.nodes[victim])
	eventually(t, 10*time.Second, "the gossip service panicked and came back", func() error {
		if !slices.Contains(sup.panics(), "gossip") {
			return errors.New("no panic yet")
		}
		return gossipBack(tn, victim, old)
	})
	if runs := tn.nodes[victim].gossip.runs.Load(); runs != 2 {
		t.Errorf("gossip service ran %d times, want 2", runs)
	}
	if got := sup.panics(); len(got) != 1 {
		t.Errorf("panics %v, want the one injected", got)
	}
	stayAlive(t, tn, victim)
}

// addrOnly is a transport that only knows its address.
type addrOnly struct {
	transport.Caller
	addr string
}

func (a addrOnly) Addr() string { return a.addr }

// TestGossipAdvertisedAddress: a wildcard gossip address (listen on every
// interface, as in a container) is advertised with the host of the RPC
// address, which other nodes can dial; any other is advertised as given.
func TestGossipAdvertisedAddress(t *testing.T) {
	c := &Cluster{net: addrOnly{addr: "10.1.2.3:3901"}}
	for bind, want := range map[string]string{
		"0.0.0.0:3902":   "10.1.2.3:3902",
		"[::]:3902":      "10.1.2.3:3902",
		":3902":          "10.1.2.3:3902",
		"10.9.9.9:4000":  "10.9.9.9:4000",
		"node-a:3902":    "node-a:3902",
		"0.0.0.0:0":      "",
		"not an address": "",
	} {
		if got := c.gossipAdvertised(bind); got != want {
			t.Errorf("gossip bound to %q is advertised as %q, want %q", bind, got, want)
		}
	}
}
