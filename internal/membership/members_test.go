package membership

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redoubt-io/redoubt/internal/testlog"
)

var (
	goodSecret  = []byte("redoubt test cluster secret, 32+ bytes long")
	wrongSecret = []byte("another cluster's secret, also 32+ bytes long")
)

func testConfig(id string, secret []byte, profile string) Config {
	return Config{
		NodeID:   id,
		BindAddr: "127.0.0.1:0",
		Secret:   secret,
		Profile:  profile,
		Meta:     metaFor(id),
	}
}

func metaFor(id string) NodeMeta {
	return NodeMeta{Zone: "zone-" + id, RPCAddr: id + ":7947", S3Addr: id + ":9000", AdminAddr: id + ":9001", Version: "test"}
}

// logSink sends a node's logs to t.Log and keeps them for assertions. It
// goes quiet when the test ends, since memberlist goroutines may log a last
// line after Close returns.
type logSink struct {
	t     testing.TB
	mu    sync.Mutex
	lines []string
	done  bool
}

func newLogSink(t testing.TB) *logSink {
	s := &logSink{t: t}
	// Registered before any node's Close, so it runs after them.
	t.Cleanup(func() { s.mu.Lock(); s.done = true; s.mu.Unlock() })
	return s
}

func (s *logSink) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.done {
		return len(p), nil
	}
	s.lines = append(s.lines, string(p))
	return testlog.Writer(s.t).Write(p)
}

// contains reports whether some line contains every one of subs.
func (s *logSink) contains(subs ...string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
next:
	for _, l := range s.lines {
		for _, sub := range subs {
			if !strings.Contains(l, sub) {
				continue next
			}
		}
		return true
	}
	return false
}

func (s *logSink) logger(id string) *slog.Logger {
	return slog.New(slog.NewTextHandler(s, &slog.HandlerOptions{Level: slog.LevelDebug})).With("node", id)
}

func startNode(t *testing.T, sink *logSink, cfg Config) *Members {
	t.Helper()
	cfg.Logger = sink.logger(cfg.NodeID)
	m, err := Start(t.Context(), cfg)
	if err != nil {
		t.Fatalf("start %s: %v", cfg.NodeID, err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// startCluster starts n nodes n0..n{n-1}, all joining through n0.
func startCluster(t *testing.T, sink *logSink, n int, profile string) []*Members {
	t.Helper()
	nodes := make([]*Members, n)
	for i := range nodes {
		nodes[i] = startNode(t, sink, testConfig(fmt.Sprintf("n%d", i), goodSecret, profile))
	}
	for _, m := range nodes[1:] {
		if got, err := m.Join(t.Context(), []string{nodes[0].LocalAddr()}); err != nil || got != 1 {
			t.Fatalf("join via %s: %d, %v", nodes[0].LocalAddr(), got, err)
		}
	}
	return nodes
}

// waitFor polls cond until it holds or the deadline passes; cond explains
// itself when it does not hold.
func waitFor(t *testing.T, within time.Duration, cond func() (bool, string)) time.Duration {
	t.Helper()
	start := time.Now()
	deadline := start.Add(within)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		ok, why := cond()
		if ok {
			return time.Since(start)
		}
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %s", within, why)
		}
		<-tick.C
	}
}

func stateOf(m *Members, id string) (Member, bool) {
	for _, mem := range m.List() {
		if mem.ID == id {
			return mem, true
		}
	}
	return Member{}, false
}

// allSee reports whether every observer lists id in state want.
func allSee(observers []*Members, id string, want State) func() (bool, string) {
	return func() (bool, string) {
		for i, o := range observers {
			mem, ok := stateOf(o, id)
			if !ok || mem.State != want {
				return false, fmt.Sprintf("observer %d sees %s as %v (listed %v), want %v", i, id, mem.State, ok, want)
			}
		}
		return true, ""
	}
}

func TestJoinFiveThroughOneSeed(t *testing.T) {
	sink := newLogSink(t)
	nodes := startCluster(t, sink, 5, ProfileLocal)
	events, cancel := nodes[0].Subscribe()
	defer cancel()

	waitFor(t, 10*time.Second, func() (bool, string) {
		for i, m := range nodes {
			list := m.List()
			if len(list) != 5 {
				return false, fmt.Sprintf("n%d lists %d members", i, len(list))
			}
			for j, mem := range list {
				id := fmt.Sprintf("n%d", j)
				if mem.ID != id || mem.State != Alive || mem.Meta != metaFor(id) || mem.Since.IsZero() {
					return false, fmt.Sprintf("n%d lists %+v at %d", i, mem, j)
				}
				if mem.Addr != nodes[j].LocalAddr() {
					return false, fmt.Sprintf("n%d lists %s at %s, bound to %s", i, id, mem.Addr, nodes[j].LocalAddr())
				}
			}
		}
		return true, ""
	})

	// Meta changes reach everyone, and subscribers hear of them.
	newMeta := metaFor("n3")
	newMeta.Version = "upgraded"
	if err := nodes[3].UpdateMeta(t.Context(), newMeta); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, func() (bool, string) {
		for i, m := range nodes {
			if mem, _ := stateOf(m, "n3"); mem.Meta != newMeta {
				return false, fmt.Sprintf("n%d sees n3 meta %+v", i, mem.Meta)
			}
		}
		return true, ""
	})
	timeout := time.After(10 * time.Second)
	for {
		select {
		case ev := <-events:
			if ev.Kind == EventUpdate && ev.Member.ID == "n3" && ev.Member.Meta == newMeta {
				return
			}
		case <-timeout:
			t.Fatal("no update event for n3")
		}
	}
}

func TestCrashIsDeadWithinLANBound(t *testing.T) {
	for _, n := range []int{3, 5, 7} {
		t.Run(fmt.Sprintf("%d nodes", n), func(t *testing.T) { testCrashDetection(t, n) })
	}
}

func testCrashDetection(t *testing.T, n int) {
	sink := newLogSink(t)
	nodes := startCluster(t, sink, n, ProfileLAN)
	waitFor(t, 15*time.Second, func() (bool, string) {
		for i := range nodes {
			if ok, why := allSee(nodes, fmt.Sprintf("n%d", i), Alive)(); !ok {
				return false, why
			}
		}
		return true, ""
	})
	events, cancel := nodes[1].Subscribe()
	defer cancel()

	victimID := fmt.Sprintf("n%d", n-1)
	victim, survivors := nodes[n-1], nodes[:n-1]
	if err := victim.Close(); err != nil {
		t.Fatal(err)
	}
	// Poll up to twice the bound so that a slow detection is measured and
	// reported as such rather than cut off.
	took := waitFor(t, 2*LANDetectionBound, allSee(survivors, victimID, Dead))
	t.Logf("crashed node Dead on all %d survivors after %v (documented bound %v)", len(survivors), took, LANDetectionBound)
	if took > LANDetectionBound {
		t.Errorf("detection took %v, above the documented %v", took, LANDetectionBound)
	}
	for ev := range events {
		if ev.Member.ID == victimID && ev.Kind == EventFail {
			if ev.Member.State != Dead {
				t.Fatalf("fail event with state %v", ev.Member.State)
			}
			break
		}
	}
	// Dead members stay listed with their last meta.
	if mem, _ := stateOf(nodes[0], victimID); mem.Meta != metaFor(victimID) {
		t.Fatalf("dead member lost its meta: %+v", mem)
	}
}

func TestLeaveIsLeft(t *testing.T) {
	sink := newLogSink(t)
	nodes := startCluster(t, sink, 3, ProfileLocal)
	waitFor(t, 10*time.Second, allSee(nodes, "n2", Alive))
	events, cancel := nodes[0].Subscribe()
	defer cancel()

	if err := nodes[2].Leave(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	if err := nodes[2].Close(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, allSee(nodes[:2], "n2", Left))
	for ev := range events {
		if ev.Member.ID == "n2" {
			if ev.Kind != EventLeave {
				t.Fatalf("first event about n2 is %v, want leave", ev.Kind)
			}
			break
		}
	}
	if err := nodes[2].Leave(time.Second); !errors.Is(err, ErrClosed) {
		t.Fatalf("Leave after Close: %v, want ErrClosed", err)
	}
}

func TestRestartedNodeComesBack(t *testing.T) {
	sink := newLogSink(t)
	nodes := startCluster(t, sink, 3, ProfileLocal)
	waitFor(t, 10*time.Second, allSee(nodes, "n2", Alive))
	nodes[2].Close()
	waitFor(t, 15*time.Second, allSee(nodes[:2], "n2", Dead))

	// Same ID, new port, as after a restart.
	back := startNode(t, sink, testConfig("n2", goodSecret, ProfileLocal))
	waitFor(t, 15*time.Second, func() (bool, string) {
		if _, err := back.Join(t.Context(), []string{nodes[0].LocalAddr()}); err != nil {
			return false, err.Error()
		}
		return allSee(nodes[:2], "n2", Alive)()
	})
	if mem, _ := stateOf(nodes[1], "n2"); mem.Addr != back.LocalAddr() {
		t.Fatalf("n2 listed at %s, restarted at %s", mem.Addr, back.LocalAddr())
	}
}

func TestWrongSecretCannotJoin(t *testing.T) {
	sink := newLogSink(t)
	nodes := startCluster(t, sink, 3, ProfileLocal)
	seed := nodes[0]

	stranger := startNode(t, sink, testConfig("stranger", wrongSecret, ProfileLocal))
	n, err := stranger.Join(t.Context(), []string{seed.LocalAddr()})
	if err == nil || n != 0 || !errors.Is(err, ErrJoin) {
		t.Fatalf("join with a wrong secret: %d, %v; want 0 and ErrJoin", n, err)
	}
	t.Logf("stranger's join failed as it should: %v", err)
	// Nor can the cluster pull the stranger in.
	if n, err := seed.Join(t.Context(), []string{stranger.LocalAddr()}); err == nil || n != 0 {
		t.Fatalf("joining a stranger: %d, %v", n, err)
	}
	// The seed refused the stranger's stream because it could not decrypt
	// it, and said so.
	waitFor(t, 5*time.Second, func() (bool, string) {
		return sink.contains("node=n0", "level=ERROR", "no installed keys could decrypt"), "no decrypt failure logged by n0"
	})
	// Let gossip run a while (several probe rounds and a full state
	// sync): the stranger must appear nowhere.
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for end := time.Now().Add(3 * time.Second); time.Now().Before(end); <-tick.C {
		for i, m := range nodes {
			if _, ok := stateOf(m, "stranger"); ok {
				t.Fatalf("n%d lists the stranger", i)
			}
		}
		if got := stranger.List(); len(got) != 1 {
			t.Fatalf("stranger lists %d members, want only itself", len(got))
		}
	}
}

func TestSubscribeCancelAndClose(t *testing.T) {
	sink := newLogSink(t)
	m := startNode(t, sink, testConfig("solo", goodSecret, ProfileLocal))
	ch1, cancel1 := m.Subscribe()
	cancel1()
	if _, ok := <-ch1; ok {
		t.Fatal("event after cancel")
	}
	ch2, cancel2 := m.Subscribe()
	defer cancel2()
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if _, ok := <-ch2; ok {
		t.Fatal("channel open after Close")
	}
	ch3, cancel3 := m.Subscribe()
	defer cancel3()
	if _, ok := <-ch3; ok {
		t.Fatal("subscription after Close is open")
	}
	if _, err := m.Join(context.Background(), []string{"127.0.0.1:1"}); !errors.Is(err, ErrClosed) {
		t.Fatalf("Join after Close: %v", err)
	}
	if err := m.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

// A closed Members says so through Done and Probe, and a new one can take
// its place on the same address, which is what its owner does to restart
// gossip without the others having to learn a new address.
func TestProbeDoneAndRestartInPlace(t *testing.T) {
	sink := newLogSink(t)
	nodes := startCluster(t, sink, 2, ProfileLocal)
	waitFor(t, 10*time.Second, allSee(nodes, "n1", Alive))
	old := nodes[1]
	if err := old.Probe(); err != nil {
		t.Fatalf("probe of a running node: %v", err)
	}
	select {
	case <-old.Done():
		t.Fatal("Done closed before Close")
	default:
	}

	if err := old.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-old.Done():
	default:
		t.Fatal("Done open after Close")
	}
	if err := old.Probe(); !errors.Is(err, ErrClosed) {
		t.Fatalf("probe after Close: %v, want ErrClosed", err)
	}

	cfg := testConfig("n1", goodSecret, ProfileLocal)
	cfg.BindAddr = old.LocalAddr()
	back := startNode(t, sink, cfg)
	if back.LocalAddr() != old.LocalAddr() {
		t.Fatalf("restarted on %s, was %s", back.LocalAddr(), old.LocalAddr())
	}
	if _, err := back.Join(t.Context(), []string{nodes[0].LocalAddr()}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, func() (bool, string) {
		if ok, why := allSee([]*Members{nodes[0]}, "n1", Alive)(); !ok {
			return false, why
		}
		return allSee([]*Members{back}, "n0", Alive)()
	})
	if err := back.Probe(); err != nil {
		t.Fatalf("probe of the restarted node: %v", err)
	}
}
