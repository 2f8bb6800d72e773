package raftmeta

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/redoubt-io/redoubt/internal/meta"
	"github.com/redoubt-io/redoubt/internal/testlog"
)

// memNet connects the hosts of a test: ordered, best-effort links (a
// goroutine each, dropping batches when full) that can be cut per
// direction, and nodes that can be taken down.
type memNet struct {
	ctx context.Context
	mu  struct {
		sync.Mutex
		hosts map[uint64]*Host
		cut   map[[2]uint64]bool
		links map[[2]uint64]chan queued
	}
	wg sync.WaitGroup
	// delay, when set, is the one-way latency of every link and of each
	// way of a forwarded request (nanoseconds), as a real network adds.
	delay atomic.Int64
	// msgs counts the Raft messages sent, over links up or cut.
	msgs atomic.Int64
}

type queued struct {
	at    time.Time
	batch []byte
}

// lag waits until the delay after since has passed.
func (n *memNet) lag(ctx context.Context, since time.Time) error {
	d := time.Duration(n.delay.Load()) - time.Since(since)
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func newMemNet(t testing.TB) *memNet {
	ctx, cancel := context.WithCancel(context.Background())
	n := &memNet{ctx: ctx}
	n.mu.hosts = make(map[uint64]*Host)
	n.mu.cut = make(map[[2]uint64]bool)
	n.mu.links = make(map[[2]uint64]chan queued)
	t.Cleanup(func() { cancel(); n.wg.Wait() })
	return n
}

func (n *memNet) connected(from, to uint64) (*Host, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	h := n.mu.hosts[to]
	return h, h != nil && n.mu.hosts[from] != nil && !n.mu.cut[[2]uint64{from, to}]
}

func (n *memNet) setHost(id uint64, h *Host) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if h == nil {
		delete(n.mu.hosts, id)
	} else {
		n.mu.hosts[id] = h
	}
}

// isolate cuts every link between the nodes of a and those not in a.
func (n *memNet) isolate(a []uint64, all []uint64) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, x := range a {
		for _, y := range all {
			if !slices.Contains(a, y) {
				n.mu.cut[[2]uint64{x, y}] = true
				n.mu.cut[[2]uint64{y, x}] = true
			}
		}
	}
}

func (n *memNet) heal() {
	n.mu.Lock()
	defer n.mu.Unlock()
	clear(n.mu.cut)
}

func (n *memNet) send(from, to uint64, batch []byte) {
	if ms, err := decodeBatch(batch); err == nil {
		n.msgs.Add(int64(len(ms)))
	}
	if _, ok := n.connected(from, to); !ok {
		return
	}
	key := [2]uint64{from, to}
	n.mu.Lock()
	ch, ok := n.mu.links[key]
	if !ok {
		ch = make(chan queued, 1024)
		n.mu.links[key] = ch
		n.wg.Add(1)
		go n.deliver(from, to, ch)
	}
	n.mu.Unlock()
	select {
	case ch <- queued{time.Now(), batch}:
	default: // link full: dropped, as a real network may
	}
}

func (n *memNet) deliver(from, to uint64, ch chan queued) {
	defer n.wg.Done()
	for {
		select {
		case <-n.ctx.Done():
			return
		case q := <-ch:
			if n.lag(n.ctx, q.at) != nil {
				return
			}
			if h, ok := n.connected(from, to); ok {
				_ = h.Step(n.ctx, from, q.batch)
			}
		}
	}
}

type memSender struct {
	n    *memNet
	from uint64
}

func (s memSender) Send(to uint64, batch []byte) { s.n.send(s.from, to, batch) }

type memForwarder struct {
	n    *memNet
	from uint64
}

func (f memForwarder) Forward(ctx context.Context, to uint64, req []byte) ([]byte, error) {
	h, ok := f.n.connected(f.from, to)
	if !ok {
		return nil, fmt.Errorf("node %d unreachable from %d: %w", to, f.from, ErrNotDelivered)
	}
	if err := f.n.lag(ctx, time.Now()); err != nil {
		return nil, err
	}
	resp, err := h.HandleForward(ctx, req)
	if err := f.n.lag(ctx, time.Now()); err != nil {
		return nil, err
	}
	if _, ok := f.n.connected(to, f.from); !ok {
		return nil, fmt.Errorf("reply from %d lost", to) // cut while serving
	}
	return resp, err
}

var (
	_ Sender    = memSender{}
	_ Forwarder = memForwarder{}
)

// cluster is a set of hosts on one memNet, each with its own directory.
type cluster struct {
	t     testing.TB
	net   *memNet
	tweak func(*Config)
	ids   []uint64
	dirs  map[uint64]string
	mu    sync.Mutex
	nodes map[uint64]*testNode
	// groups and their voters, ensured on every start.
	groups map[meta.Partition][]uint64
	// onNew, when set, sees every host before its loop starts.
	onNew func(id uint64, h *Host)
}

type testNode struct {
	h      *Host
	cancel context.CancelFunc
	done   chan error
}

// fastConfig makes elections take 0.2-0.4 s so tests run quickly.
func fastConfig(c *Config) {
	c.TickInterval = 20 * time.Millisecond
	c.ProposalTimeout = 3 * time.Second
}

func newCluster(t testing.TB, n int, parts []meta.Partition, tweak func(*Config)) *cluster {
	return newHookedCluster(t, n, parts, tweak, nil)
}

// newHookedCluster is newCluster with onNew set from the first start.
func newHookedCluster(t testing.TB, n int, parts []meta.Partition, tweak func(*Config), onNew func(uint64, *Host)) *cluster {
	c := &cluster{t: t, net: newMemNet(t), tweak: tweak, dirs: map[uint64]string{}, nodes: map[uint64]*testNode{}, groups: map[meta.Partition][]uint64{}, onNew: onNew}
	for i := range n {
		id := uint64(i + 1)
		c.ids = append(c.ids, id)
		c.dirs[id] = t.TempDir()
	}
	for _, p := range parts {
		c.groups[p] = slices.Clone(c.ids)
	}
	t.Cleanup(func() {
		for _, id := range c.ids {
			c.stop(id)
		}
	})
	for _, id := range c.ids {
		c.start(id)
	}
	return c
}

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(testlog.Writer(t), &slog.HandlerOptions{Level: slog.LevelInfo}))
}

func (c *cluster) config(id uint64) Config {
	cfg := DefaultConfig()
	cfg.NodeID = id
	cfg.Dir = c.dirs[id]
	cfg.Send = memSender{c.net, id}
	cfg.Forward = memForwarder{c.net, id}
	cfg.Logger = testLogger(c.t).With("node", id)
	if c.tweak != nil {
		c.tweak(&cfg)
	}
	return cfg
}

func (c *cluster) start(id uint64) *Host {
	c.t.Helper()
	h, err := New(c.config(id))
	if err != nil {
		c.t.Fatal(err)
	}
	for p, voters := range c.groups {
		if slices.Contains(voters, id) {
			if err := h.EnsureGroup(p, voters); err != nil {
				c.t.Fatal(err)
			}
		} else {
			h.SetMembers(p, voters)
		}
	}
	if c.onNew != nil {
		c.onNew(id, h)
	}
	ctx, cancel := context.WithCancel(context.Background())
	n := &testNode{h: h, cancel: cancel, done: make(chan error, 1)}
	go func() { n.done <- h.Run(ctx) }()
	c.mu.Lock()
	c.nodes[id] = n
	c.mu.Unlock()
	c.net.setHost(id, h)
	return h
}

// stop kills node id: its Run ends, its database closes, the network
// forgets it. What it synced stays in its directory.
func (c *cluster) stop(id uint64) {
	c.mu.Lock()
	n := c.nodes[id]
	delete(c.nodes, id)
	c.mu.Unlock()
	if n == nil {
		return
	}
	c.net.setHost(id, nil)
	n.cancel()
	if err := <-n.done; err != nil {
		c.t.Errorf("node %d: Run: %v", id, err)
	}
	if err := n.h.Close(); err != nil {
		c.t.Errorf("node %d: Close: %v", id, err)
	}
}

func (c *cluster) host(id uint64) *Host {
	c.mu.Lock()
	defer c.mu.Unlock()
	if n := c.nodes[id]; n != nil {
		return n.h
	}
	return nil
}

// leader waits until some live host leads p, and returns its ID.
func (c *cluster) leader(p meta.Partition, among ...uint64) uint64 {
	c.t.Helper()
	if len(among) == 0 {
		among = c.ids
	}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		for _, id := range among {
			if h := c.host(id); h != nil {
				if g := h.group(p); g != nil && g.leader.Load() {
					return id
				}
			}
		}
		poll()
	}
	c.t.Fatalf("no leader of %s among %v", partitionName(p), among)
	return 0
}

// another is the first node of c other than not.
func (c *cluster) another(not uint64) uint64 {
	for _, id := range c.ids {
		if id != not {
			return id
		}
	}
	return 0
}

// poll yields between checks of a condition polled with a deadline.
func poll() { <-time.After(5 * time.Millisecond) }

// eventually polls cond until it holds or d passes.
func eventually(t testing.TB, d time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	var err error
	for time.Now().Before(deadline) {
		if err = cond(); err == nil {
			return
		}
		poll()
	}
	t.Fatalf("%s: still %v after %v", what, err, d)
}

// dump reads a host's local copy of p (no read index: for comparing
// replicas once quiet).
func dump(h *Host, p meta.Partition) (map[string]string, error) {
	out := map[string]string{}
	err := h.scanLocal(p, nil, nil, func(k []byte, it meta.Item) bool {
		out[string(k)] = fmt.Sprintf("%s@%d", it.Value, it.Rev)
		return true
	})
	return out, err
}

// converged waits until every live host holds the same copy of p, and
// returns it.
func (c *cluster) converged(p meta.Partition) map[string]string {
	c.t.Helper()
	var last map[string]string
	eventually(c.t, 10*time.Second, "replicas converge", func() error {
		var first map[string]string
		for i, id := range c.ids {
			h := c.host(id)
			if h == nil || h.group(p) == nil {
				continue
			}
			d, err := dump(h, p)
			if err != nil {
				return err
			}
			if i == 0 || first == nil {
				first = d
				continue
			}
			if fmt.Sprint(d) != fmt.Sprint(first) {
				return fmt.Errorf("node %d differs: %d keys vs %d", id, len(d), len(first))
			}
		}
		last = first
		return nil
	})
	return last
}

func isUnavailable(err error) bool { return errors.Is(err, meta.ErrUnavailable) }

// scanLocal reads this host's copy of the range, whoever leads its group.
func (h *Host) scanLocal(p meta.Partition, start, end []byte, fn func(key []byte, item meta.Item) bool) error {
	if end != nil && bytes.Compare(start, end) >= 0 {
		return nil
	}
	lower, upper := dataBounds(p, start, end)
	it, err := h.db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return err
	}
	defer it.Close()
	return forEachItem(it, fn)
}
