package cluster

import (
	"context"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/zeebo/xxh3"

	"github.com/redoubt-io/redoubt/internal/layout"
	"github.com/redoubt-io/redoubt/internal/shardrpc"
	"github.com/redoubt-io/redoubt/internal/store"
)

// Drive returns the drive with the given ID, local or on another node, as
// far as the layouts this node has seen know it.
func (c *Cluster) Drive(id string) (shardrpc.Drive, bool) {
	for _, d := range c.local {
		if d.ID() == id {
			return shardrpc.LocalDrive{D: d}, true
		}
	}
	c.mu.RLock()
	r, ok := c.mu.remote[id]
	c.mu.RUnlock()
	if ok {
		return r, true
	}
	// A drive of a node that left the layout: its shards may still be
	// referenced, so reach it by the node records.
	for _, n := range c.knownNodes() {
		for _, d := range n.Drives {
			if d.ID == id && n.ID != c.ID() {
				return c.remoteDrive(n.ID, id), true
			}
		}
	}
	return nil, false
}

func (c *Cluster) remoteDrive(node, id string) *shardrpc.RemoteDrive {
	c.mu.Lock()
	defer c.mu.Unlock()
	if r, ok := c.mu.remote[id]; ok {
		return r
	}
	r := shardrpc.NewRemoteDrive(shardCaller{net: c.net, book: c.book}, node, id, shardrpc.DefaultClientConfig())
	c.mu.remote[id] = r
	return r
}

// refreshRemotes makes a RemoteDrive for every drive of l on another node.
func (c *Cluster) refreshRemotes(l *layout.Layout) {
	for _, n := range l.Nodes {
		if n.ID == c.ID() {
			continue
		}
		for _, d := range n.Drives {
			c.remoteDrive(n.ID, d.ID)
		}
	}
}

// Place returns the drives to write a new object part of partition p to,
// in order: the layout's drives for p first, then every other drive of the
// layout, those on nodes not yet used first, so that a write can go around
// drives that are down while keeping its shards on distinct nodes where it
// can.
func (c *Cluster) Place(p uint32, id string) []string {
	l := c.Layout()
	if l == nil {
		return nil
	}
	first := l.Drives(int(p))
	out := slices.Clone(first)
	used := map[string]bool{}
	for _, d := range first {
		if n, ok := l.NodeOf(d); ok {
			used[n.ID] = true
		}
	}
	var fresh, rest []string
	start := xxh3.HashString(id)
	for i := range l.Nodes {
		n := l.Nodes[(int(start%uint64(len(l.Nodes)))+i)%len(l.Nodes)]
		for _, d := range n.Drives {
			if slices.Contains(first, d.ID) {
				continue
			}
			if used[n.ID] {
				rest = append(rest, d.ID)
			} else {
				fresh = append(fresh, d.ID)
			}
		}
	}
	return append(append(out, fresh...), rest...)
}

// refreshDrives asks the nodes of remote drives marked offline for their
// state, in parallel, so that drives of a node that came back are used
// again without waiting for a read to try them.
func (c *Cluster) refreshDrives(ctx context.Context) {
	c.mu.RLock()
	var offline []*shardrpc.RemoteDrive
	for _, r := range c.mu.remote {
		if !r.Online() {
			offline = append(offline, r)
		}
	}
	c.mu.RUnlock()
	// In the drives' order, not the map's: the refreshes start together,
	// and the simulation replays a seed only if they start in one order
	// (TestSimulationReplays).
	slices.SortFunc(offline, func(a, b *shardrpc.RemoteDrive) int { return strings.Compare(a.ID(), b.ID()) })
	var wg sync.WaitGroup
	for _, r := range offline {
		wg.Go(func() {
			cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			defer cancel()
			_ = r.Refresh(cctx)
		})
	}
	wg.Wait()
}

// LocalDrives are this node's own drives.
func (c *Cluster) LocalDrives() []*store.Drive { return c.local }
