package cluster

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/redoubt-io/redoubt/internal/layout"
	"github.com/redoubt-io/redoubt/internal/meta"
	"github.com/redoubt-io/redoubt/internal/placement"
	"github.com/redoubt-io/redoubt/internal/raftmeta"
	"github.com/redoubt-io/redoubt/internal/transport"
)

// ErrNoLayout is returned by layout operations before the first layout.
var ErrNoLayout = errors.New("the cluster has no layout yet")

// ErrStage is wrapped by Stage and Apply errors that the operator's input
// caused (an unknown node, nothing staged, a stale version).
var ErrStage = errors.New("layout change refused")

// Layout returns the newest layout this node follows, or nil before the
// first one.
func (c *Cluster) Layout() *layout.Layout {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.mu.layout
}

// WaitLayout returns the layout once there is one.
func (c *Cluster) WaitLayout(ctx context.Context) (*layout.Layout, error) {
	select {
	case <-c.layoutReady:
		return c.Layout(), nil
	case <-ctx.Done():
		return nil, fmt.Errorf("waiting for the first layout: %w", ctx.Err())
	}
}

// OnLayout registers fn to run (on the layout watcher's goroutine) with
// every new layout, and at once with the current one if there is one.
func (c *Cluster) OnLayout(fn func(*layout.Layout)) {
	c.mu.Lock()
	c.onLayout = append(c.onLayout, fn)
	l := c.mu.layout
	c.mu.Unlock()
	if l != nil {
		fn(l)
	}
}

// ClusterPolicy is the redundancy a cluster of n nodes uses unless told
// otherwise: it spreads shards over distinct nodes and survives the loss of
// one node from three nodes up and of two from four up. A single node
// follows its drive count.
func ClusterPolicy(nodes, drives int) placement.Policy {
	switch {
	case nodes <= 1:
		return placement.DefaultPolicy(drives)
	case nodes == 2:
		return placement.Policy{K: 1, M: 1, Mirror: true}
	case nodes == 3:
		return placement.Policy{K: 2, M: 1}
	case nodes == 4:
		return placement.Policy{K: 2, M: 2}
	case nodes == 5:
		return placement.Policy{K: 3, M: 2}
	}
	return placement.Policy{K: 4, M: 2}
}

// MetaReplicas is the voter count of each partition's Raft group: asked
// for, or else enough that the metadata survives as many lost nodes as the
// data policy does (2M+1 voters lose M), at least 3 and at most 5; never
// more than the nodes.
func MetaReplicas(asked int, p placement.Policy, nodes int) int {
	r := asked
	if r == 0 {
		r = min(max(3, 2*p.Tolerates()+1), 5)
	}
	return max(1, min(r, nodes))
}

func (c *Cluster) layoutConfig(nodes []layout.Node, prev *layout.Layout) layout.Config {
	drives := 0
	for _, n := range nodes {
		drives += len(n.Drives)
	}
	lc := layout.Config{Partitions: c.cfg.Partitions}
	if prev != nil {
		lc.Partitions = prev.Partitions
	}
	if c.cfg.Policy != nil {
		lc.Policy = *c.cfg.Policy
	} else {
		lc.Policy = ClusterPolicy(len(nodes), drives)
	}
	lc.MetaReplicas = MetaReplicas(c.cfg.MetaReplicas, lc.Policy, len(nodes))
	return lc
}

func toLayoutNode(n NodeInfo) layout.Node {
	ln := layout.Node{ID: n.ID, Zone: n.Zone, Addr: n.RPCAddr, S3Addr: n.S3Addr}
	for _, d := range n.Drives {
		ln.Drives = append(ln.Drives, layout.Drive{ID: d.ID, Capacity: d.Capacity})
	}
	return ln
}

func inLayout(l *layout.Layout, id string) bool {
	_, ok := l.Node(id)
	return ok
}

// watchLayout follows the layout and, on the System leader, does the
// cluster's housekeeping: the first layout, the System group's voters.
// Every node also brings the groups it leads in line with the layout.
func (c *Cluster) watchLayout(stop context.Context) error {
	t := time.NewTicker(c.cfg.LayoutPoll)
	defer t.Stop()
	polls := 0
	for {
		select {
		case <-c.ctx.Done():
			return nil
		case <-stop.Done():
			return stop.Err()
		case <-t.C:
		}
		polls++
		ctx, cancel := context.WithTimeout(c.ctx, 5*time.Second)
		if polls%5 == 1 {
			c.learnFromGossip()
			if nodes, err := c.readNodes(ctx); err == nil {
				c.learnNodes(nodes)
			}
			if c.gossip != nil && len(c.gossip.List()) < len(c.knownNodes()) {
				c.joinGossip(ctx)
			}
			if c.refreshing.CompareAndSwap(false, true) {
				c.wg.Add(1)
				go func() {
					defer c.wg.Done()
					defer c.refreshing.Store(false)
					c.refreshDrives(c.ctx)
				}()
			}
		}
		if err := c.pollLayout(ctx); err != nil && !errors.Is(err, meta.ErrUnavailable) && c.ctx.Err() == nil {
			c.log.Debug("layout poll", "err", err)
		}
		groups := c.groups()
		if g, ok := groups[meta.System]; ok && g.Leader == c.raftID {
			c.bootstrapLayout(ctx)
			c.reconcileSystem(ctx, g)
			if polls%5 == 2 {
				c.autoLayout(ctx)
			}
		}
		if polls%5 == 0 {
			c.reconcileGroups(ctx, groups)
		}
		cancel()
	}
}

func (c *Cluster) knownNodes() []NodeInfo {
	c.mu.RLock()
	defer c.mu.RUnlock()
	out := make([]NodeInfo, 0, len(c.mu.nodes))
	for _, n := range c.mu.nodes {
		out = append(out, n)
	}
	slices.SortFunc(out, func(a, b NodeInfo) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// readLayout returns the committed layout and its revision (nil, 0 when
// there is none).
func (c *Cluster) readLayout(ctx context.Context) (*layout.Layout, uint64, error) {
	it, err := c.store.Get(ctx, meta.System, []byte(layoutKey))
	if errors.Is(err, meta.ErrNotFound) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, err
	}
	l := new(layout.Layout)
	if err := l.UnmarshalBinary(it.Value); err != nil {
		return nil, 0, fmt.Errorf("stored layout: %w", err)
	}
	return l, it.Rev, nil
}

func (c *Cluster) pollLayout(ctx context.Context) error {
	l, _, err := c.readLayout(ctx)
	if err != nil || l == nil {
		return err
	}
	if cur := c.Layout(); cur != nil && cur.Version >= l.Version {
		return nil
	}
	c.applyLayout(l)
	return nil
}

// applyLayout makes this node follow l: it hosts the groups l gives it,
// routes to the others, and learns the drives of every node.
func (c *Cluster) applyLayout(l *layout.Layout) {
	for _, n := range l.Nodes {
		c.book.set(transport.NodeID(n.ID), n.Addr)
	}
	for p := range l.Partitions {
		voters := c.raftIDs(l.MetaNodes(p))
		part := meta.Partition(p)
		c.host.SetMembers(part, voters)
		if !slices.Contains(voters, c.raftID) {
			continue
		}
		c.mu.RLock()
		created := c.mu.created[part]
		c.mu.RUnlock()
		if created {
			continue
		}
		// The first layout creates every group with the same voters on
		// each of them. A node given a group later starts it empty (a
		// voter list without itself): the group's leader adds it and
		// sends it the data. Bootstrapping it with the new voters instead
		// would give it a first log entry that differs from the group's.
		// A group with state on disk is loaded whatever the list says.
		initial := voters
		if l.Version > 1 {
			initial = slices.DeleteFunc(slices.Clone(voters), func(v uint64) bool { return v == c.raftID })
			if len(initial) == 0 {
				initial = []uint64{^c.raftID}
			}
		}
		if err := c.host.EnsureGroup(part, initial); err != nil {
			c.log.Error("cannot host a partition group", "partition", p, "err", err)
			continue
		}
		c.mu.Lock()
		c.mu.created[part] = true
		c.mu.Unlock()
	}
	c.mu.Lock()
	c.mu.layout = l
	fns := slices.Clone(c.onLayout)
	c.mu.Unlock()
	c.refreshRemotes(l)
	for _, fn := range fns {
		fn(l)
	}
	c.readyOnce.Do(func() { close(c.layoutReady) })
	c.log.Info("following layout", "version", l.Version, "nodes", len(l.Nodes), "policy", l.Policy.String())
}

func (c *Cluster) raftIDs(nodes []string) []uint64 {
	out := make([]uint64, len(nodes))
	for i, n := range nodes {
		out[i] = RaftID(transport.NodeID(n))
	}
	return out
}

// bootstrapLayout commits the first layout once enough nodes have joined.
func (c *Cluster) bootstrapLayout(ctx context.Context) {
	if c.Layout() != nil {
		return
	}
	cur, _, err := c.readLayout(ctx)
	if err != nil || cur != nil {
		return
	}
	nodes, err := c.readNodes(ctx)
	if err != nil || len(nodes) < c.cfg.BootstrapExpect {
		return
	}
	var lnodes []layout.Node
	for _, n := range nodes {
		lnodes = append(lnodes, toLayoutNode(n))
	}
	l, err := layout.Compute(nil, lnodes, c.layoutConfig(lnodes, nil))
	if err != nil {
		c.log.Error("cannot lay out the cluster", "nodes", len(nodes), "err", err)
		return
	}
	b, err := l.MarshalBinary()
	if err != nil {
		return
	}
	_, err = c.store.Commit(ctx, meta.System, meta.Txn{
		Conds: []meta.Cond{{Key: []byte(layoutKey), Rev: 0}},
		Puts:  []meta.KV{{Key: []byte(layoutKey), Value: b}},
	})
	if err == nil {
		c.log.Info("committed the first layout", "nodes", len(nodes), "policy", l.Policy.String(), "partitions", l.Partitions)
	}
}

// reconcileSystem keeps the System group at up to five voters: the
// layout's choice once there is a layout, else the first nodes to join.
// One change per poll, additions before removals, so a majority is never
// put at risk by a batch of changes.
func (c *Cluster) reconcileSystem(ctx context.Context, g raftmeta.Status) {
	var want []uint64
	if l := c.Layout(); l != nil {
		want = c.raftIDs(l.SystemNodes())
	} else {
		for _, n := range c.knownNodes() {
			if len(want) < 5 {
				want = append(want, n.RaftID)
			}
		}
	}
	if !slices.Contains(want, c.raftID) && len(want) > 0 {
		// The leader stays until last; another voter takes over after.
		want = append(want, c.raftID)
	}
	c.reconcileVoters(ctx, g, want)
}

// reconcileGroups brings the voters of each group this node leads in line
// with the layout.
func (c *Cluster) reconcileGroups(ctx context.Context, groups map[meta.Partition]raftmeta.Status) {
	l := c.Layout()
	if l == nil {
		return
	}
	for p := range l.Partitions {
		part := meta.Partition(p)
		g, ok := groups[part]
		if !ok || g.Leader != c.raftID {
			continue
		}
		c.reconcileVoters(ctx, g, c.raftIDs(l.MetaNodes(p)))
	}
}

func (c *Cluster) reconcileVoters(ctx context.Context, g raftmeta.Status, want []uint64) {
	p := g.Partition
	if len(want) == 0 {
		return
	}
	for _, id := range want {
		if !slices.Contains(g.Voters, id) {
			if _, known := c.book.get(id); !known {
				return
			}
			if err := c.host.AddVoter(ctx, p, id); err != nil {
				c.log.Debug("adding a voter", "partition", p, "voter", id, "err", err)
			}
			return
		}
	}
	for _, id := range g.Voters {
		if !slices.Contains(want, id) && id != c.raftID {
			if err := c.host.RemoveVoter(ctx, p, id); err != nil {
				c.log.Debug("removing a voter", "partition", p, "voter", id, "err", err)
			}
			return
		}
	}
}

// groups is this node's Raft groups by partition.
func (c *Cluster) groups() map[meta.Partition]raftmeta.Status {
	out := map[meta.Partition]raftmeta.Status{}
	for _, g := range c.host.Groups() {
		out[g.Partition] = g
	}
	return out
}

func (c *Cluster) group(p meta.Partition) (raftmeta.Status, bool) {
	g, ok := c.groups()[p]
	return g, ok
}
