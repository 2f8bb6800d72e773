package cluster

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/redoubt-io/redoubt/internal/admin"
	"github.com/redoubt-io/redoubt/internal/membership"
	"github.com/redoubt-io/redoubt/internal/meta"
	"github.com/redoubt-io/redoubt/internal/shardrpc"
	"github.com/redoubt-io/redoubt/internal/store"
)

// RaftMessages counts the Raft messages this node could not send.
func (c *Cluster) RaftMessages() admin.RaftMessageStatus {
	return admin.RaftMessageStatus{
		Refused:     c.host.Stats().Refused,
		QueueFull:   c.sender.queueFull.Load(),
		Undelivered: c.sender.undelivered.Load(),
	}
}

// QuiescedGroups counts the partition groups of this node that are idle
// and do not tick (raftmeta, Quiescence).
func (c *Cluster) QuiescedGroups() int { return c.host.Quiesced() }

// Snapshots counts the partition snapshots this node streamed and
// installed.
func (c *Cluster) Snapshots() admin.SnapshotStatus {
	s := c.host.Stats()
	return admin.SnapshotStatus{Sent: s.SnapshotsSent, BytesSent: s.SnapshotBytesSent, Failed: s.SnapshotsFailed, Installed: s.SnapshotsInstalled}
}

// EngineStats is what the database of this node's Raft groups reports of
// its compactions and caches.
func (c *Cluster) EngineStats() meta.EngineStats { return c.host.EngineStats() }

// Status is what this node knows of the cluster, for /status.
func (c *Cluster) Status(ctx context.Context) admin.ClusterStatus {
	st := admin.ClusterStatus{NodeID: c.ID(), Partitions: c.cfg.Partitions}
	p50, n := c.store.commits.quantile(0.5)
	p99, _ := c.store.commits.quantile(0.99)
	st.Commits = admin.LatencyStatus{Count: n, P50Ms: float64(p50.Microseconds()) / 1000, P99Ms: float64(p99.Microseconds()) / 1000}
	st.RaftMessages = c.RaftMessages()
	st.Snapshots = c.Snapshots()
	st.AntiEntropy = c.lastSync.Load()
	l := c.Layout()
	if l != nil {
		st.LayoutVersion = l.Version
		st.Partitions = l.Partitions
	}
	if edits, _, err := c.readStaged(ctx); err == nil {
		st.StagedChanges = len(edits)
	}
	name := c.raftNames()
	groups := c.groups()
	if g, ok := groups[meta.System]; ok {
		st.System = admin.GroupStatus{Member: slices.Contains(g.Voters, c.raftID), Leader: name(g.Leader), Term: g.Term, Applied: g.Applied}
		for _, v := range g.Voters {
			st.System.Voters = append(st.System.Voters, name(v))
		}
	}

	// Per node: the groups it hosts by the layout, and leads as far as
	// this node sees (its own groups exactly; others by their leaders).
	hosts := map[string]int{}
	leads := map[string]int{}
	if l != nil {
		for _, p := range l.Groups() {
			for _, n := range l.GroupNodes(p) {
				hosts[n]++
			}
			g, ok := groups[meta.Partition(p)]
			if !ok {
				continue
			}
			st.Groups.Hosted++
			switch {
			case g.Leader == 0:
				st.Groups.Leaderless++
			case g.Leader == c.raftID:
				st.Groups.Leading++
			}
			if g.Leader != 0 {
				leads[name(g.Leader)]++
			}
		}
	}
	alive := map[string]membership.State{}
	gossip := c.members()
	if gossip != nil {
		for _, m := range gossip.List() {
			alive[m.ID] = m.State
		}
	}
	slots := map[string]int{}
	if l != nil {
		for _, part := range l.Parts {
			for _, d := range part {
				if n, ok := l.NodeOf(d); ok {
					slots[n.ID]++
				}
			}
		}
	}
	reports := c.askNodes(ctx)
	var catchUps [][]catchUp
	for _, r := range reports {
		catchUps = append(catchUps, r.catchingUp)
	}
	catchingUp := catchingUpByNode(catchUps, name)
	for _, n := range c.knownNodes() {
		ns := admin.NodeStatus{DriveUsage: reports[n.ID].drives, CatchingUp: catchingUp[n.ID], ID: n.ID, Zone: n.Zone, RPCAddr: n.RPCAddr, S3Addr: n.S3Addr, AdminAddr: n.AdminAddr,
			Drives: len(n.Drives), Hosts: hosts[n.ID], Leads: leads[n.ID], ShardSlots: slots[n.ID]}
		for _, d := range n.Drives {
			ns.Capacity += d.Capacity
		}
		if l != nil {
			if ln, ok := l.Node(n.ID); ok {
				ns.InLayout = true
				ns.Zone = ln.Zone
			}
		}
		switch s, ok := alive[n.ID]; {
		case n.ID == c.ID() || gossip == nil:
			ns.State = admin.NodeAlive
		case !ok:
			ns.State = admin.NodeDead
		case s == membership.Alive:
			ns.State = admin.NodeAlive
		case s == membership.Suspect:
			ns.State = admin.NodeSuspect
		case s == membership.Left:
			ns.State = admin.NodeLeft
		default:
			ns.State = admin.NodeDead
		}
		st.Nodes = append(st.Nodes, ns)
	}
	return st
}

// raftNames returns a function that names a Raft ID by its node's ID
// ("raft:ID" for one no known node has, "" for 0).
func (c *Cluster) raftNames() func(uint64) string {
	byRaft := map[uint64]string{}
	for _, n := range c.knownNodes() {
		byRaft[n.RaftID] = n.ID
	}
	return func(id uint64) string {
		if id == 0 {
			return ""
		}
		if n, ok := byRaft[id]; ok {
			return n
		}
		return fmt.Sprintf("raft:%x", id)
	}
}

// Redundancy is how many more node and zone losses every object survives
// now (Survival), judged from the layout this node follows, the liveness
// and drive states in st (this node's Status), the replicas the groups'
// leaders report catching up (also in st), the Raft groups this node is a
// voter of and knows a leader of, and census, the stored data as last
// counted (nil before a count). It is nil before the first layout.
//
// A layout node counts as down when gossip says it is dead or gone, or
// when it did not answer for its drives just now: the figure must not
// count on a node that may be gone.
func (c *Cluster) Redundancy(st admin.ClusterStatus, census *Census) *admin.RedundancyStatus {
	l := c.Layout()
	if l == nil {
		return nil
	}
	f := Facts{Layout: l, Down: map[string]bool{}, FailedDrives: map[string]bool{}, Census: census, CatchingUp: map[string][]string{}}
	known := map[string]admin.NodeStatus{}
	for _, n := range st.Nodes {
		known[n.ID] = n
		if len(n.CatchingUp) > 0 {
			f.CatchingUp[n.ID] = n.CatchingUp
		}
	}
	for _, n := range l.Nodes {
		ns, ok := known[n.ID]
		if !ok || ns.State == admin.NodeDead || ns.State == admin.NodeLeft || n.ID != c.ID() && len(ns.DriveUsage) == 0 {
			f.Down[n.ID] = true
		}
		for _, d := range ns.DriveUsage {
			if d.State != admin.DriveOK {
				f.FailedDrives[d.ID] = true
			}
		}
	}
	name := c.raftNames()
	for p, g := range c.groups() {
		if g.Leader == 0 || !slices.Contains(g.Voters, c.raftID) {
			continue
		}
		gv := GroupVoters{Name: groupName(p)}
		for _, v := range g.Voters {
			gv.Voters = append(gv.Voters, name(v))
		}
		f.Groups = append(f.Groups, gv)
	}
	r := Survival(f)
	return &r
}

// nodeReport is what a node answered for status: its drives (nil when
// it did not answer) and the replicas catching up in the groups it leads.
type nodeReport struct {
	drives     []admin.DriveStatus
	catchingUp []catchUp
}

// askNodes asks every known node, in parallel and briefly, for the state
// and usage of its drives and for the replicas catching up in the groups
// it leads (its own directly).
//
// The answer is kept for nodeReportTTL: status pages are polled (redoubt
// dev polls every node every second), and each poll asking every other
// node would cost N² calls a second for figures that change slowly.
func (c *Cluster) askNodes(ctx context.Context) map[string]nodeReport {
	c.usage.Lock()
	defer c.usage.Unlock()
	if c.usage.m != nil && time.Since(c.usage.at) < nodeReportTTL {
		return c.usage.m
	}
	c.usage.m, c.usage.at = c.askNodesNow(ctx), time.Now()
	return c.usage.m
}

const nodeReportTTL = 5 * time.Second

func (c *Cluster) askNodesNow(ctx context.Context) map[string]nodeReport {
	nodes := c.knownNodes()
	out := make(map[string]nodeReport, len(nodes))
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, n := range nodes {
		wg.Go(func() {
			var r nodeReport
			var stats []store.Stats
			if n.ID == c.ID() {
				for _, d := range c.local {
					stats = append(stats, d.Stats())
				}
				r.catchingUp = c.catchingUp()
			} else {
				cctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
				defer cancel()
				var err error
				if stats, err = shardrpc.DriveStates(cctx, shardCaller{net: c.net, book: c.book}, n.ID); err != nil {
					return
				}
				// A node of an earlier version does not answer this; the
				// groups it leads are then judged by their voters alone.
				r.catchingUp, _ = c.askCatchingUp(cctx, n.ID)
			}
			r.drives = make([]admin.DriveStatus, 0, len(stats))
			for _, s := range stats {
				st := admin.DriveOK
				switch {
				case s.State != store.Online:
					st = admin.DriveFailed
				case s.NeedsRepair:
					st = admin.DriveNeedsRepair
				}
				r.drives = append(r.drives, admin.DriveStatus{ID: s.ID, Path: s.Path, State: st, UsedBytes: int64(s.UsedBytes),
					TotalBytes: int64(s.TotalBytes), FreeBytes: int64(s.FreeBytes), ShardsRead: int64(s.ShardsRead),
					CorruptBlocks: int64(s.CorruptBlocks), IOErrors: int64(s.IOErrors)})
			}
			mu.Lock()
			out[n.ID] = r
			mu.Unlock()
		})
	}
	wg.Wait()
	return out
}
