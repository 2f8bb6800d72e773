package cluster

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/redoubt-io/redoubt/internal/admin"
	"github.com/redoubt-io/redoubt/internal/meta"
	"github.com/redoubt-io/redoubt/internal/store"
	"github.com/redoubt-io/redoubt/internal/testlog"
	"github.com/redoubt-io/redoubt/internal/transport"
)

// testNet is an in-process cluster on an in-memory network.
type testNet struct {
	t     *testing.T
	mem   *transport.MemNetwork
	nodes []*Cluster
	ids   []transport.NodeID
}

func testLogger(t testing.TB, name string) *slog.Logger {
	return slog.New(slog.NewTextHandler(testlog.Writer(t), &slog.HandlerOptions{Level: slog.LevelWarn})).With("node", name)
}

func testConfig(zone string, expect int) Config {
	return Config{
		Zone: zone, Secret: []byte("0123456789abcdef0123456789abcdef"),
		BootstrapExpect: expect, Partitions: 16, MetaReplicas: 3,
		LayoutPoll: 20 * time.Millisecond, RaftTick: 10 * time.Millisecond, NoGossip: true,
	}
}

// newTestNet starts n nodes in zones round-robin; node 0 bootstraps and
// waits for all n before the first layout.
func newTestNet(t *testing.T, n, zones int) *testNet {
	t.Helper()
	tn := &testNet{t: t, mem: transport.NewMemNetwork()}
	for i := range n {
		tn.add(fmt.Sprintf("zone-%d", i%zones), n)
	}
	for _, c := range tn.nodes {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		if _, err := c.WaitLayout(ctx); err != nil {
			t.Fatalf("node %s: %v", c.ID(), err)
		}
		cancel()
	}
	return tn
}

// add starts one more node that joins via node 0.
func (tn *testNet) add(zone string, expect int) *Cluster {
	return tn.addWith(zone, expect, func(*Config) {})
}

// addWith is add with edit applied to the node's config.
func (tn *testNet) addWith(zone string, expect int, edit func(*Config)) *Cluster {
	t := tn.t
	t.Helper()
	idn, err := transport.NewIdentity(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ep := tn.mem.Node(idn.ID())
	base := t.TempDir()
	dirs := []string{filepath.Join(base, "d1"), filepath.Join(base, "d2")}
	drives, err := store.Open(context.Background(), store.DefaultConfig(), dirs, nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(zone, expect)
	cfg.Net = ep
	if len(tn.nodes) > 0 {
		cfg.Join = []string{tn.nodes[0].net.Addr()}
	}
	edit(&cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := Start(ctx, cfg, drives, testLogger(t, fmt.Sprint(len(tn.nodes))))
	if err != nil {
		t.Fatalf("starting node %d: %v", len(tn.nodes), err)
	}
	t.Cleanup(func() { c.Close() })
	tn.nodes = append(tn.nodes, c)
	tn.ids = append(tn.ids, idn.ID())
	return c
}

// eventually polls cond until it holds or d passes.
func eventually(t *testing.T, d time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v: %v", what, d, err)
		}
		time.Sleep(10 * time.Millisecond) // polling a condition, not waiting for an event
	}
}

func put(ctx context.Context, s meta.Store, p meta.Partition, k, v string) error {
	_, err := s.Commit(ctx, p, meta.Txn{Puts: []meta.KV{{Key: []byte(k), Value: []byte(v)}}})
	return err
}

func TestBootstrapThreeNodes(t *testing.T) {
	tn := newTestNet(t, 3, 3)
	l := tn.nodes[0].Layout()
	if l.Version != 1 || len(l.Nodes) != 3 {
		t.Fatalf("layout v%d with %d nodes, want v1 with 3", l.Version, len(l.Nodes))
	}
	if got := l.Policy.String(); got != ClusterPolicy(3, 6).String() {
		t.Errorf("policy %s, want %s", got, ClusterPolicy(3, 6))
	}
	// Every node writes to every partition; every node reads it all.
	ctx := context.Background()
	for i, c := range tn.nodes {
		for p := range l.Partitions {
			eventually(t, 10*time.Second, "commit", func() error {
				return put(ctx, c.Meta(), meta.Partition(p), fmt.Sprintf("k%d", i), fmt.Sprintf("v%d-%d", i, p))
			})
		}
	}
	for _, c := range tn.nodes {
		for p := range l.Partitions {
			for i := range tn.nodes {
				it, err := c.Meta().Get(ctx, meta.Partition(p), []byte(fmt.Sprintf("k%d", i)))
				if err != nil || string(it.Value) != fmt.Sprintf("v%d-%d", i, p) {
					t.Fatalf("node %s partition %d key k%d: %q, %v", c.ID(), p, i, it.Value, err)
				}
			}
		}
	}
	st := tn.nodes[1].Status(ctx)
	if st.LayoutVersion != 1 || len(st.Nodes) != 3 || st.System.Leader == "" {
		t.Errorf("status: %+v", st)
	}
	for _, n := range st.Nodes {
		if !n.InLayout || n.State != admin.NodeAlive {
			t.Errorf("node %s: in layout %v, state %s", n.ID, n.InLayout, n.State)
		}
	}
}

func TestLeaderLossAndMinority(t *testing.T) {
	tn := newTestNet(t, 3, 3)
	ctx := context.Background()
	const p = meta.Partition(3)
	eventually(t, 10*time.Second, "first commit", func() error { return put(ctx, tn.nodes[0].Meta(), p, "a", "1") })
	var leader int = -1
	for i, c := range tn.nodes {
		if c.isLeader(p) {
			leader = i
		}
	}
	if leader < 0 {
		t.Fatal("no node leads the partition")
	}
	tn.mem.Kill(tn.ids[leader])
	other := tn.nodes[(leader+1)%3]
	start := time.Now()
	eventually(t, 5*time.Second, "commit after the leader died", func() error { return put(ctx, other.Meta(), p, "b", "2") })
	t.Logf("new leader served a commit %v after the old one died", time.Since(start).Round(time.Millisecond))
	it, err := other.Meta().Get(ctx, p, []byte("a"))
	if err != nil || string(it.Value) != "1" {
		t.Fatalf("acknowledged write lost: %q, %v", it.Value, err)
	}

	// Cut the survivors apart: each side is a minority of the group.
	tn.mem.Revive(tn.ids[leader])
	alone := tn.nodes[(leader+2)%3]
	tn.mem.Partition([]transport.NodeID{tn.ids[(leader+2)%3]}, []transport.NodeID{tn.ids[leader], tn.ids[(leader+1)%3]})
	cctx, cancel := context.WithTimeout(ctx, 8*time.Second)
	err = put(cctx, alone.Meta(), p, "c", "minority")
	cancel()
	if !errors.Is(err, meta.ErrUnavailable) && !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("a minority commit: %v, want unavailable", err)
	}
	tn.mem.Heal()
	eventually(t, 10*time.Second, "agreement after healing", func() error {
		for _, c := range tn.nodes {
			it, err := c.Meta().Get(ctx, p, []byte("b"))
			if err != nil || !bytes.Equal(it.Value, []byte("2")) {
				return fmt.Errorf("node %s: %q %v", c.ID(), it.Value, err)
			}
		}
		return nil
	})
}

func TestAddNodeByLayoutChange(t *testing.T) {
	tn := newTestNet(t, 3, 3)
	ctx := context.Background()
	for p := range 16 {
		eventually(t, 10*time.Second, "commit", func() error { return put(ctx, tn.nodes[0].Meta(), meta.Partition(p), "before", "x") })
	}
	c4 := tn.add("zone-0", 3)
	// Joining stages the node; apply makes it part of the layout.
	var view admin.LayoutView
	eventually(t, 10*time.Second, "the new node is staged", func() error {
		var err error
		view, err = tn.nodes[1].View(ctx)
		if err == nil && len(view.Staged) == 0 {
			err = errors.New("nothing staged")
		}
		return err
	})
	prev, err := tn.nodes[2].Preview(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if prev.To.Version != 2 || prev.Fraction <= 0 || prev.Fraction > 0.5 {
		t.Errorf("preview: v%d, %.2f of slots move", prev.To.Version, prev.Fraction)
	}
	if _, err := tn.nodes[1].Apply(ctx, 2); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "every node follows v2 and the groups match it", func() error {
		for _, c := range append(tn.nodes, c4) {
			l := c.Layout()
			if l == nil || l.Version != 2 {
				return fmt.Errorf("node %s not at v2", c.ID())
			}
		}
		l := c4.Layout()
		for p := range l.Partitions {
			want := c4.raftIDs(l.MetaNodes(p))
			for _, c := range tn.nodes {
				if !c.isLeader(meta.Partition(p)) {
					continue
				}
				g, _ := c.group(meta.Partition(p))
				if len(g.Voters) != len(want) {
					return fmt.Errorf("partition %d voters %v, want %v", p, g.Voters, want)
				}
			}
		}
		return nil
	})
	for p := range 16 {
		it, err := c4.Meta().Get(ctx, meta.Partition(p), []byte("before"))
		if err != nil || string(it.Value) != "x" {
			t.Fatalf("partition %d after the change: %q %v", p, it.Value, err)
		}
	}
}

func TestLatencyQuantiles(t *testing.T) {
	var l latencies
	for i := 1; i <= 100; i++ {
		l.observe(time.Duration(i) * time.Millisecond)
	}
	p50, n := l.quantile(0.5)
	p99, _ := l.quantile(0.99)
	if n != 100 || p50 < 50*time.Millisecond || p50 > 60*time.Millisecond || p99 < 99*time.Millisecond || p99 > 120*time.Millisecond {
		t.Errorf("p50 %v p99 %v of %d", p50, p99, n)
	}
}

func (c *Cluster) isLeader(p meta.Partition) bool {
	g, ok := c.group(p)
	return ok && g.Leader == c.raftID
}
