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

// Place returns the drives to write a new object part of data key k
// (placement.DataKey) to, in order: the drives of its data partition
// first, then every other drive of the
// layout, those on nodes not yet used first, so that a write can go around
// drives that are down while keeping its shards on distinct nodes where it
// can.
//
// It costs what the list holds, not a search of the layout per drive: the
// node of each drive comes from an index made once per layout
// (BenchmarkPlace).
func (c *Cluster) Place(k uint32, id string) []string {
	l := c.Layout()
	if l == nil || len(l.Nodes) == 0 {
		return nil
	}
	ix := c.placeIndexOf(l)
	first := l.DataDrives(k)
	out := make([]string, 0, ix.drives+len(first))
	out = append(out, first...)
	used := make([]bool, len(l.Nodes))
	for _, d := range first {
		if ni, ok := ix.nodeOf[d]; ok {
			used[ni] = true
		}
	}
	start := int(xxh3.HashString(id) % uint64(len(l.Nodes)))
	// The drives of nodes not used yet, then the others of used nodes.
	for _, fresh := range []bool{true, false} {
		for i := range l.Nodes {
			ni := (start + i) % len(l.Nodes)
			if used[ni] == fresh {
				continue
			}
			for _, d := range l.Nodes[ni].Drives {
				if !fresh && slices.Contains(first, d.ID) {
					continue
				}
				out = append(out, d.ID)
			}
		}
	}
	return out
}

// placeIndex is what Place needs of a layout, made once per layout.
type placeIndex struct {
	l      *layout.Layout
	nodeOf map[string]int // drive ID: index of its node in l.Nodes
	drives int
}

// placeIndexOf returns the place index of l, making it if l is new.
func (c *Cluster) placeIndexOf(l *layout.Layout) *placeIndex {
	if ix := c.placeIx.Load(); ix != nil && ix.l == l {
		return ix
	}
	ix := &placeIndex{l: l, nodeOf: map[string]int{}}
	for ni, n := range l.Nodes {
		for _, d := range n.Drives {
			ix.nodeOf[d.ID] = ni
			ix.drives++
		}
	}
	c.placeIx.Store(ix)
	return ix
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
