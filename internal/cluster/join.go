package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/redoubt-io/redoubt/internal/vfs"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/redoubt-io/redoubt/internal/membership"
	"github.com/redoubt-io/redoubt/internal/meta"
	"github.com/redoubt-io/redoubt/internal/transport"
)

// joinResponse is what a member answers a joining node: the nodes it knows
// and the voters of the System group, so the new node can reach them.
type joinResponse struct {
	Format       int        `json:"format"`
	Nodes        []NodeInfo `json:"nodes"`
	SystemVoters []uint64   `json:"system_voters"`
}

// joinOrBootstrap makes this node part of the System group: from its own
// Raft state after a restart, by creating the cluster (no --join), or by
// asking a member to admit it.
func (c *Cluster) joinOrBootstrap(ctx context.Context) error {
	// A placeholder voter list for a group this node joins: EnsureGroup
	// starts nothing for it. The real members come from the join answer
	// (SetMembers), and the group's leader adds this node, whose replica
	// its messages make.
	notSelf := []uint64{^c.raftID}
	switch {
	case c.restarted:
		voters := notSelf
		if len(c.cfg.Join) == 0 {
			voters = []uint64{c.raftID}
		}
		if err := c.host.EnsureGroup(meta.System, voters); err != nil {
			return fmt.Errorf("restarting the system group: %w", err)
		}
		c.log.Info("rejoined the cluster from local state", "node", c.ID())
		if len(c.cfg.Join) > 0 {
			// Tell the others where this node is now, in case its
			// addresses changed; they know it already otherwise.
			go c.askJoin(c.ctx)
		}
	case len(c.cfg.Join) == 0:
		if err := c.host.EnsureGroup(meta.System, []uint64{c.raftID}); err != nil {
			return fmt.Errorf("creating the system group: %w", err)
		}
		c.log.Info("created a new cluster", "node", c.ID())
	default:
		if err := c.host.EnsureGroup(meta.System, notSelf); err != nil {
			return fmt.Errorf("preparing the system group: %w", err)
		}
		jctx, cancel := context.WithTimeout(ctx, 60*time.Second)
		defer cancel()
		if err := c.askJoin(jctx); err != nil {
			return err
		}
	}
	c.mu.Lock()
	c.mu.created[meta.System] = true
	c.mu.Unlock()
	if c.restarted {
		// The own record again, for new addresses or drives; in the
		// background, since a restarted node must serve what it can even
		// while the System group has no majority.
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			if err := c.putSelf(c.ctx); err != nil && c.ctx.Err() == nil {
				c.log.Warn("could not update this node's record", "err", err)
			}
		}()
		return nil
	}
	return c.putSelf(ctx)
}

// askJoin asks the seeds, in turn and until one admits this node or ctx
// ends, to add it to the cluster.
func (c *Cluster) askJoin(ctx context.Context) error {
	var last error
	for attempt := 0; ; attempt++ {
		for _, seed := range c.cfg.Join {
			cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			resp, err := c.net.Call(cctx, transport.Peer{Addr: seed}, svcJoin, encodeNode(c.self))
			cancel()
			if err != nil {
				if errors.Is(err, transport.ErrRefused) {
					return fmt.Errorf("joining via %s: refused; is the cluster secret the same on both nodes? %w", seed, err)
				}
				last = fmt.Errorf("joining via %s: %w", seed, err)
				continue
			}
			var jr joinResponse
			if err := json.Unmarshal(resp, &jr); err != nil || jr.Format != recordFormat {
				last = fmt.Errorf("joining via %s: bad answer", seed)
				continue
			}
			c.learnNodes(slices.DeleteFunc(jr.Nodes, func(n NodeInfo) bool { return n.validate() != nil }))
			if len(jr.SystemVoters) > 0 {
				c.host.SetMembers(meta.System, jr.SystemVoters)
			}
			c.log.Info("joined the cluster", "via", seed, "nodes", len(jr.Nodes))
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("could not join the cluster: %w (last: %v)", ctx.Err(), last)
		case <-c.cfg.After.Wait(time.Duration(min(attempt+1, 10))*200*time.Millisecond, "join retry"):
		}
	}
}

// handleJoin admits a node: it records the node in the System partition
// and answers with the nodes it knows. The System leader then makes the
// node a voter if the group is short of five (see reconcileSystem), and a
// node that is not in the layout is staged for addition.
func (c *Cluster) handleJoin(ctx context.Context, from transport.NodeID, req []byte) ([]byte, error) {
	info, err := decodeNode(req)
	if err != nil {
		return nil, err
	}
	if info.ID != string(from) {
		return nil, fmt.Errorf("node %s asked to join as %s", from, info.ID)
	}
	if info.RaftID != RaftID(from) {
		return nil, fmt.Errorf("node %s gave raft ID %x, want %x", from, info.RaftID, RaftID(from))
	}
	c.book.set(from, info.RPCAddr)
	if err := c.putNode(ctx, info); err != nil {
		return nil, fmt.Errorf("recording node %s: %w", info.ID, err)
	}
	if l := c.Layout(); l != nil && !inLayout(l, info.ID) {
		if err := c.stageIfAbsent(ctx, StageEdit{Op: "add", Node: info.ID, Zone: info.Zone}); err != nil {
			c.log.Warn("could not stage the new node", "node", info.ID, "err", err)
		}
	}
	c.log.Info("node joined", "node", info.ID, "zone", info.Zone, "rpc", info.RPCAddr)
	nodes, err := c.readNodes(ctx)
	if err != nil {
		return nil, err
	}
	// This node's own record may not be committed yet (a node joining the
	// moment the cluster is made), and the new node must be able to reach
	// it whatever the records say.
	if !slices.ContainsFunc(nodes, func(n NodeInfo) bool { return n.ID == c.self.ID }) {
		nodes = append(nodes, c.self)
	}
	jr := joinResponse{Format: recordFormat, Nodes: nodes}
	if g, ok := c.group(meta.System); ok {
		jr.SystemVoters = g.Voters
	}
	if len(jr.SystemVoters) == 0 {
		// This node is not a System voter (a cluster of more than five):
		// the layout names them, and the new node forwards System
		// requests to them.
		if l := c.Layout(); l != nil {
			jr.SystemVoters = c.raftIDs(l.SystemNodes())
		}
	}
	return json.Marshal(jr)
}

// putSelf records this node, retrying while the System group elects a
// leader.
func (c *Cluster) putSelf(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	for {
		err := c.putNode(ctx, c.self)
		if err == nil {
			return nil
		}
		if !errors.Is(err, meta.ErrUnavailable) || ctx.Err() != nil {
			return fmt.Errorf("recording this node in the cluster: %w", err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("recording this node in the cluster: %w", err)
		case <-c.cfg.After.Wait(100*time.Millisecond, "record retry"):
		}
	}
}

func (c *Cluster) putNode(ctx context.Context, info NodeInfo) error {
	_, err := c.store.Commit(ctx, meta.System, meta.Txn{Puts: []meta.KV{{Key: nodeKey(info.ID), Value: encodeNode(info)}}})
	return err
}

// readNodes returns every node record, sorted by ID.
func (c *Cluster) readNodes(ctx context.Context) ([]NodeInfo, error) {
	var out []NodeInfo
	start := []byte(nodeKeyPrefix)
	end := []byte(nodeKeyPrefix[:len(nodeKeyPrefix)-1] + "0") // '/'+1
	err := c.store.Scan(ctx, meta.System, start, end, func(_ []byte, it meta.Item) bool {
		if n, err := decodeNode(it.Value); err == nil {
			out = append(out, n)
		}
		return true
	})
	return out, err
}

// learnNodes updates the address book and the node table, and keeps the
// table on disk when it changed: a restarted node must reach its peers
// before it can read their records from the System group.
func (c *Cluster) learnNodes(nodes []NodeInfo) {
	c.mu.Lock()
	changed := false
	for _, n := range nodes {
		c.book.set(transport.NodeID(n.ID), n.RPCAddr)
		if old, ok := c.mu.nodes[n.ID]; !ok || !reflect.DeepEqual(old, n) {
			changed = true
		}
		c.mu.nodes[n.ID] = n
	}
	c.mu.Unlock()
	if changed && c.peersFile != "" {
		c.savePeers()
	}
}

// savePeers writes the node table to disk, durably: a node restarted
// after a crash finds its peers in it while no System leader can tell it
// (TestKnownNodesSurviveACrash). One save at a time, each
// of the table as it is then, so an older table never replaces a newer.
func (c *Cluster) savePeers() {
	c.peersMu.Lock()
	defer c.peersMu.Unlock()
	c.mu.RLock()
	all := make([]NodeInfo, 0, len(c.mu.nodes))
	for _, n := range c.mu.nodes {
		all = append(all, n)
	}
	c.mu.RUnlock()
	if err := savePeers(c.cfg.FS, c.peersFile, all); err != nil {
		c.log.Warn("could not save the known nodes", "err", err)
	}
}

// learnFromGossip takes the RPC addresses that gossip members announce.
func (c *Cluster) learnFromGossip(g *membership.Members) {
	if g == nil {
		return
	}
	for _, m := range g.List() {
		if m.Meta.RPCAddr != "" {
			c.book.set(transport.NodeID(m.ID), m.Meta.RPCAddr)
		}
	}
}

// peersFormat versions the known-nodes file.
type peersFile struct {
	Format int        `json:"format"`
	Nodes  []NodeInfo `json:"nodes"`
}

func savePeers(fs vfs.FS, path string, nodes []NodeInfo) error {
	slices.SortFunc(nodes, func(a, b NodeInfo) int { return strings.Compare(a.ID, b.ID) })
	b, err := json.Marshal(peersFile{Format: recordFormat, Nodes: nodes})
	if err != nil {
		return err
	}
	return vfs.WriteFileDurable(fs, path, b, 0o600)
}

// loadPeers reads what savePeers wrote; a missing or damaged file is an
// empty list (the node then relies on --join and gossip).
func loadPeers(fs vfs.FS, path string) []NodeInfo {
	b, err := vfs.ReadFile(fs, path)
	if err != nil {
		return nil
	}
	var pf peersFile
	if json.Unmarshal(b, &pf) != nil || pf.Format != recordFormat {
		return nil
	}
	out := pf.Nodes[:0]
	for _, n := range pf.Nodes {
		if n.validate() == nil {
			out = append(out, n)
		}
	}
	return out
}

// joinGossip joins g to the gossip of the nodes known so far.
func (c *Cluster) joinGossip(ctx context.Context, g *membership.Members) {
	if g == nil {
		return
	}
	c.mu.RLock()
	var seeds []string
	for _, n := range c.mu.nodes {
		if n.ID != c.ID() && n.GossipAdr != "" {
			seeds = append(seeds, n.GossipAdr)
		}
	}
	c.mu.RUnlock()
	slices.Sort(seeds)
	if len(seeds) == 0 {
		return
	}
	// No overall deadline: each seed takes at most gossip's TCP timeout,
	// and a deadline would skip the live seeds behind a dead one.
	if _, err := g.Join(ctx, seeds); err != nil && !errors.Is(err, membership.ErrClosed) {
		c.log.Warn("gossip join failed; the gossip service will try again", "err", err)
	}
}
