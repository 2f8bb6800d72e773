package cluster

import (
	"slices"

	"github.com/redoubt-io/redoubt/internal/layout"
	"github.com/redoubt-io/redoubt/internal/meta"
)

// Leads reports whether this node leads partition p's Raft group now.
func (c *Cluster) Leads(p meta.Partition) bool {
	g, ok := c.group(p)
	return ok && g.Leader != 0 && g.Leader == c.raftID
}

// Leaderless reports whether the layout this node follows gives it a seat
// in partition p's group, and it hosts the group and knows no leader of
// it now. A group the layout no longer gives this node does not count: a
// node that the leader never took in (a layout that gave it the group was
// followed by one that does not) or removed without its hearing of it
// keeps an empty or stale copy that never learns a leader, while the
// layout's members of the group, which host it too, tell whether it has
// one.
func (c *Cluster) Leaderless(p meta.Partition) bool {
	g, ok := c.group(p)
	if !ok || g.Leader != 0 {
		return false
	}
	l := c.Layout()
	return l != nil && slices.Contains(l.GroupNodes(uint32(p)), string(c.nodeID))
}

// Relocation says where the shards of a stored object part of data key k
// (placement.DataKey), with ID id and shard i on drives[i], belong under layout l, moving as
// few as it can, and false when they should stay where they are:
//
//   - a shard on a drive that is no longer in the layout moves (repair
//     around a removed drive or node); so does one sharing a node with
//     another shard of the part, when a drive on a node of its own is free;
//   - a shard on a drive the layout does not give k's data partition moves to
//     one it does that the part does not use yet (rebalance), on a node
//     that holds no other shard of the part (its own node is one), and
//     stays when there is none (TestSplitThenRebalanceSpreadsData);
//   - shards on drives the layout keeps stay, even when the drive is down
//     for now: it is back, or its node is routed around by a layout change
//     after the repair grace period, and then it moves.
//
// Targets are drives that are online now, on distinct nodes where the
// layout has enough of them, in Place's order (the partition's drives,
// then the others, nodes not used yet first). A shard that has no target
// stays until a later pass; blocked reports such a shard, one that should
// move but whose every possible drive is offline now (a node just back,
// not seen up yet): the part is not where it belongs, whether or not its
// other shards move, and a later pass must try again.
func (c *Cluster) Relocation(l *layout.Layout, k uint32, id string, drives []string) (_ []string, move, blocked bool) {
	if l == nil || len(drives) == 0 {
		return nil, false, false
	}
	home := l.DataDrives(k)
	nodeOf := func(d string) (string, bool) {
		nd, ok := l.NodeOf(d)
		return nd.ID, ok
	}
	online := func(d string) bool {
		dr, ok := c.Drive(d)
		return ok && dr.Online()
	}
	out := slices.Clone(drives)
	// Nodes holding a shard that stays, with how many.
	nodes := map[string]int{}
	used := map[string]bool{}
	var gone, away []int // shards off the layout; shards off the partition's drives
	for i, d := range drives {
		nd, in := nodeOf(d)
		switch {
		case !in:
			gone = append(gone, i)
			continue
		case !slices.Contains(home, d):
			away = append(away, i)
		}
		nodes[nd]++
		used[d] = true
	}
	// A node holding two shards gives one up, when it can.
	for i, d := range drives {
		if nd, in := nodeOf(d); in && nodes[nd] > 1 && !slices.Contains(away, i) {
			away = append(away, i)
		}
	}
	candidates := c.placeIn(l, k, id)
	pick := func(i int, homeOnly, freshNode bool) bool {
		for _, d := range candidates {
			if used[d] || homeOnly && !slices.Contains(home, d) {
				continue
			}
			nd, _ := nodeOf(d)
			// Shard i itself does not crowd its own node: another
			// drive of that node is as fresh for it as one elsewhere.
			self := 0
			if old, in := nodeOf(out[i]); in && used[out[i]] && old == nd {
				self = 1
			}
			if freshNode && nodes[nd]-self > 0 {
				continue
			}
			if !online(d) {
				blocked = true
				continue
			}
			if old, in := nodeOf(out[i]); in && used[out[i]] {
				nodes[old]--
				delete(used, out[i])
			}
			out[i] = d
			used[d] = true
			nodes[nd]++
			return true
		}
		return false
	}
	stuck := false
	for _, i := range gone {
		blocked = false
		if !pick(i, false, true) && !pick(i, false, false) {
			stuck = true
		}
	}
	for _, i := range away {
		nd, _ := nodeOf(drives[i])
		// Stay on a node of its own unless the partition has a drive for
		// it; leave a shared node for any node of its own.
		blocked = false
		if nodes[nd] > 1 {
			if !pick(i, true, true) && !pick(i, false, true) && blocked {
				stuck = true
			}
		} else if !pick(i, true, true) && blocked {
			stuck = true
		}
	}
	if slices.Equal(out, drives) {
		return nil, false, stuck
	}
	return out, true, stuck
}

// placeIn is Place for layout l.
func (c *Cluster) placeIn(l *layout.Layout, p uint32, id string) []string {
	if cur := c.Layout(); cur == l {
		return c.Place(p, id)
	}
	// Place reads the current layout; a plan for another one keeps its
	// own partition drives first and every other drive after.
	out := slices.Clone(l.DataDrives(p))
	for _, nd := range l.Nodes {
		for _, d := range nd.Drives {
			if !slices.Contains(out, d.ID) {
				out = append(out, d.ID)
			}
		}
	}
	return out
}

// GroupsInLine counts, of the groups this node leads, those whose voters
// are exactly the layout's choice, and all it leads. A layout change is
// complete for metadata when, over all nodes, the two agree and every
// partition has a leader.
func (c *Cluster) GroupsInLine() (inLine, led int) {
	l := c.Layout()
	if l == nil {
		return 0, 0
	}
	for p, g := range c.groups() {
		if p == meta.System || g.Leader != c.raftID {
			continue
		}
		led++
		want := c.raftIDs(l.GroupNodes(uint32(p)))
		if len(want) == len(g.Voters) && len(g.Learners) == 0 && !slices.ContainsFunc(want, func(id uint64) bool { return !slices.Contains(g.Voters, id) }) {
			inLine++
		}
	}
	return inLine, led
}
