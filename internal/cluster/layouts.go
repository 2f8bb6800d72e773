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
	// The next poll is timed from the end of the last one, not by a
	// ticker: a ticker's tick could fall due at the instant a call of the
	// poll waited out its timeout, and on the simulation's fake clock the
	// Go scheduler would then choose whether one poll or two ran at that
	// instant (TestSimulationReplays, seed 10076216263927335233).
	polls := 0
	for {
		select {
		case <-c.ctx.Done():
			return nil
		case <-stop.Done():
			return stop.Err()
		case <-c.cfg.After.Wait(c.cfg.LayoutPoll, "layout poll"):
		}
		polls++
		// A poll ends with the service too: without a quorum each of its
		// calls waits out its timeout, and a node told to stop would wait
		// for them all (TestClusterMinorityNodeStopsPromptly).
		ctx, cancel := context.WithTimeout(c.ctx, 5*time.Second)
		release := context.AfterFunc(stop, cancel)
		if polls%5 == 1 {
			if nodes, err := c.readNodes(ctx); err == nil {
				c.learnNodes(nodes)
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
		release()
		cancel()
		if err := stop.Err(); err != nil {
			return err
		}
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
	// The System group's voters as the layout names them, for a node
	// outside it to forward to: the ones a join answer gave may be long
	// gone (a node that joined while the cluster was made knows only the
	// first).
	if sys := c.raftIDs(l.SystemNodes()); len(sys) > 0 {
		c.host.SetMembers(meta.System, sys)
	}
	// The partitions that split, to forward to their members, who
	// answer where their keys went; they had their base's nodes.
	tree := placement.SplitTree{Base: uint32(l.Partitions)}
	for d := range l.Depth {
		for _, p := range tree.Level(d) {
			c.host.SetMembers(meta.Partition(p), c.raftIDs(l.GroupNodes(p)))
		}
	}
	for _, p := range l.Groups() {
		voters := c.raftIDs(l.GroupNodes(p))
		part := meta.Partition(p)
		c.host.SetMembers(part, voters)
		if !slices.Contains(voters, c.raftID) || l.Depth > 0 {
			// Groups made by splits are made by the split alone
			// (raftmeta, Splits): one started here would be empty.
			continue
		}
		c.mu.RLock()
		created := c.mu.created[part]
		c.mu.RUnlock()
		if !created {
			c.hostGroup(l, part, voters)
		}
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

// hostGroup starts group part, which layout l gives this node with the
// given voters, if l is the first layout: every node of it starts the
// group with the same voters. A node given a group by a later layout, or
// again after it was removed from it, starts nothing: the group's leader
// adds it (reconcileVoters), and the leader's messages make the node's
// replica, which a snapshot fills. Starting it with the new voters
// instead would make a second group of the same partition. A group with
// state on disk is loaded whatever the list says.
func (c *Cluster) hostGroup(l *layout.Layout, part meta.Partition, voters []uint64) {
	c.mu.RLock()
	created := c.mu.created[part]
	c.mu.RUnlock()
	if l.Version == 1 && !created {
		if err := c.host.EnsureGroup(part, voters); err != nil {
			c.log.Error("cannot host a partition group", "partition", part, "err", err)
			return
		}
	}
	c.mu.Lock()
	c.mu.created[part] = true
	c.mu.Unlock()
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
// One change per poll, new members as learners first (handoverStep), so a
// majority is never put at risk by a batch of changes.
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
	c.reconcileVoters(ctx, g, want, c.newLiveness())
}

// reconcileGroups brings the voters of each group this node leads in line
// with the layout, one change per group and call (handoverStep).
func (c *Cluster) reconcileGroups(ctx context.Context, groups map[meta.Partition]raftmeta.Status) {
	l := c.Layout()
	if l == nil {
		return
	}
	lv := c.newLiveness()
	for _, p := range l.Groups() {
		part := meta.Partition(p)
		g, ok := groups[part]
		if !ok || g.Leader != c.raftID {
			continue
		}
		c.reconcileVoters(ctx, g, c.raftIDs(l.GroupNodes(p)), lv)
	}
}

// reconcileVoters makes one membership change, if any is due, that brings
// group g, which this node leads, closer to voters want (see handoverStep).
func (c *Cluster) reconcileVoters(ctx context.Context, g raftmeta.Status, want []uint64, lv *liveness) {
	p := g.Partition
	if len(want) == 0 {
		return
	}
	pr, err := c.host.Progress(p)
	if err != nil {
		return // no longer the leader
	}
	known := func(id uint64) bool {
		_, ok := c.book.get(id)
		return ok
	}
	ch, ok := handoverStep(pr, c.raftID, want, known, func(id uint64) bool { return lv.dead(ctx, id) })
	if !ok {
		return
	}
	switch ch.op {
	case opAddLearner:
		err = c.host.AddLearner(ctx, p, ch.node)
	case opPromote:
		err = c.host.AddVoter(ctx, p, ch.node)
	case opRemove:
		err = c.host.RemoveVoter(ctx, p, ch.node)
	case opTransfer:
		err = c.host.TransferLeader(p, ch.node)
	}
	if err != nil {
		c.log.Debug("changing a group's members", "partition", p, "change", ch.op, "node", ch.node, "err", err)
		return
	}
	c.log.Debug("changed a group's members", "partition", p, "change", ch.op, "node", ch.node, "why", ch.why)
}

// confOp is a membership change of a Raft group.
type confOp string

const (
	opAddLearner confOp = "add learner"
	opPromote    confOp = "promote"
	opRemove     confOp = "remove"
	opTransfer   confOp = "transfer the lead"
)

// confChange is one membership change, and why it is due.
type confChange struct {
	op   confOp
	node uint64
	why  string
}

// catchUpLag is how far behind the leader's commit index a learner may be
// and still be promoted: a few round trips of appends at full speed. A
// learner that has everything up to its own addition is promoted too.
const catchUpLag = 64

// caughtUp says whether learner m may become a voter without slowing the
// group down: it holds the whole group as of its addition (it installed
// the snapshot and the entries since), or it trails the commit index by
// little.
func caughtUp(m raftmeta.MemberProgress, commit uint64) bool {
	if m.Match == 0 {
		return false
	}
	return m.Match >= m.AddedAt || m.Match+catchUpLag >= commit
}

// quorum is the majority of n voters.
func quorum(n int) int { return n/2 + 1 }

// handoverStep is the next membership change, at most one, that brings a
// group toward voters want, given its progress as its leader self sees
// it; ok is false when there is nothing to do now. known says whether a
// node can be reached (its address is known); dead is asked, only of a
// voter the layout dropped that the leader has not heard from lately,
// whether it is certainly down. The order:
//
//  1. A learner the layout no longer wants is removed: it holds no vote,
//     so this never touches the majority.
//  2. A wanted node that is no member is added as a learner. It gets the
//     group's data (a snapshot, then the log) without a vote, so a new,
//     empty node neither counts towards the majority nor holds commits
//     back while it copies.
//  3. A learner that caught up (caughtUp) and answers is promoted.
//  4. A voter the layout dropped is removed, never the leader itself, and
//     only if the live voters left are a majority of the voters left:
//     the group keeps serving whatever the removed node was. Moreover
//     a live voter is removed only once every wanted node is a voter and
//     the live voters left are at least the layout's voter count, so a
//     change never trades a working copy for one still being made, nor
//     leaves the group with fewer working copies than the layout asks.
//     A dead voter is removed even while a learner waits: it holds no
//     copy anyone can read, and its vote only makes the majority larger,
//     so removing it keeps the live voters as they were and lowers the
//     count needed (3 voters with one dead need 2 of the 2 live; with it
//     removed, 2 of 2, the same; and once the learner is promoted, 2 of
//     3 instead of 3 of 4). A learner that never catches up, a node that
//     died after it was added, thus blocks no removal of dead voters; it
//     blocks only the removal of live ones, until the layout stops
//     wanting it (a layout without it makes step 1 remove it).
//  5. A leader the layout dropped, once the group is otherwise in line,
//     hands the lead to the wanted voter furthest along, which then
//     removes it by step 4: a leader cannot remove itself without
//     leaving the group leaderless for an election timeout.
//
// Liveness comes from the leader's view (MemberProgress.Active), which can
// wrongly read a live node as inactive for a moment but not a node dead
// for longer than an election timeout as active; the majority checks
// count only active voters, so a wrong reading makes them refuse a change
// (retried on the next call), never accept one that loses the majority.
// A voter is removed as dead only if dead confirms it.
func handoverStep(pr raftmeta.Progress, self uint64, want []uint64, known func(uint64) bool, dead func(uint64) bool) (confChange, bool) {
	var voters, learners []raftmeta.MemberProgress
	for _, m := range pr.Members {
		if m.Learner {
			learners = append(learners, m)
		} else {
			voters = append(voters, m)
		}
	}
	liveVoters := 0
	for _, m := range voters {
		if m.Active {
			liveVoters++
		}
	}
	for _, m := range learners {
		if !slices.Contains(want, m.ID) {
			return confChange{opRemove, m.ID, "learner no longer wanted"}, true
		}
	}
	complete := true // every wanted node is a voter
	for _, id := range want {
		if _, ok := pr.Member(id); !ok {
			complete = false
			if known(id) {
				return confChange{opAddLearner, id, "wanted by the layout"}, true
			}
		}
	}
	for _, m := range learners {
		complete = false
		if m.Active && caughtUp(m, pr.Commit) && liveVoters+1 >= quorum(len(voters)+1) {
			return confChange{opPromote, m.ID, "caught up"}, true
		}
	}
	for _, m := range voters {
		if m.ID == self || slices.Contains(want, m.ID) {
			continue
		}
		liveAfter := liveVoters
		if m.Active {
			liveAfter--
		}
		if liveAfter < quorum(len(voters)-1) {
			continue
		}
		if !m.Active && dead(m.ID) {
			return confChange{opRemove, m.ID, "dropped by the layout and dead"}, true
		}
		if complete && liveAfter >= len(want) {
			return confChange{opRemove, m.ID, "dropped by the layout"}, true
		}
	}
	if complete && !slices.Contains(want, self) {
		var to raftmeta.MemberProgress
		for _, m := range voters {
			if m.ID != self && m.Active && slices.Contains(want, m.ID) && m.Match > to.Match {
				to = m
			}
		}
		if to.ID != 0 && to.Match+catchUpLag >= pr.Commit {
			return confChange{opTransfer, to.ID, "the leader is dropped by the layout"}, true
		}
	}
	return confChange{}, false
}

// liveness confirms, for one round of reconciliation, that nodes the Raft
// leaders have not heard from are down: by a connection attempt, made
// once per node and round however many groups ask.
type liveness struct {
	c    *Cluster
	seen map[uint64]bool // node -> dead
}

func (c *Cluster) newLiveness() *liveness { return &liveness{c: c, seen: map[uint64]bool{}} }

func (lv *liveness) dead(ctx context.Context, id uint64) bool {
	if d, ok := lv.seen[id]; ok {
		return d
	}
	d := true
	if p, ok := lv.c.book.get(id); ok {
		d = !lv.c.answers(ctx, string(p.ID))
	}
	lv.seen[id] = d
	return d
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
