package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/redoubt-io/redoubt/internal/admin"
	"github.com/redoubt-io/redoubt/internal/node"
)

func newStatusCmd() *cobra.Command {
	var af adminFlags
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show a server's drives, and for a cluster its nodes, zones, layout and Raft leaders",
		Long: `Ask any node (its admin address) for the state of the node and of the cluster:
nodes with their zones and liveness, the layout version, the metadata Raft
groups each node hosts and leads, data per drive and the redundancy policy,
and the nodes moving data to a new layout (each alive node is asked; one that
does not answer within a second shows as unknown).

For a cluster it says how many more node and zone losses every object
survives now, from where the stored data's shards are (counted at each layout
change, and again when a status finds the count older than a minute), the
nodes that are down and the metadata Raft groups' voters; and, when that is
less than the policy promises, why and what restores it.

The calls are signed with the root credentials: --access-key and --secret-key,
or the credentials file in --data (by default ./redoubt-data, then the
./redoubt-dev of redoubt dev).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := af.conn(cmd)
			if err != nil {
				return err
			}
			var st admin.Status
			if err := c.call(cmd.Context(), c.addr, http.MethodGet, "/status", nil, &st); err != nil {
				return err
			}
			if asJSON {
				e := json.NewEncoder(cmd.OutOrStdout())
				e.SetIndent("", "  ")
				return e.Encode(st)
			}
			var moves []nodeMove
			if st.Cluster != nil {
				moves = askMoves(cmd.Context(), c, st.Cluster.Nodes, false, statusAskTimeout)
			}
			printStatus(cmd.OutOrStdout(), st, moves)
			return nil
		},
	}
	af.register(cmd.Flags(), "any node's admin address")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the raw JSON status")
	return withEnv(cmd)
}

// statusAskTimeout bounds each node's answer about its data movement, so a
// node that hangs delays status by that much at most.
const statusAskTimeout = time.Second

func printStatus(w io.Writer, st admin.Status, moves []nodeMove) {
	fmt.Fprintf(w, "Redoubt %s, up %.0fs, S3 %s, region %s\n", st.Version, st.UptimeSeconds, st.S3Endpoint, st.Region)
	fmt.Fprintf(w, "Redundancy: %s; %d objects, %s; corrupt blocks found: %d\n", st.Policy, st.Objects, humanBytes(st.Bytes), st.CorruptionsTotal)
	if b := st.Buckets; b != nil && b.Available > 0 {
		more := ""
		if b.Available > len(b.Names) {
			more = fmt.Sprintf(" and %d more", b.Available-len(b.Names))
		}
		fmt.Fprintf(w, "Buckets: %d strong, %d available (%s%s)\n", b.Strong, b.Available, strings.Join(b.Names, ", "), more)
	}
	if len(st.Sites) > 0 {
		fmt.Fprintln(w, "Sites, as this node replicates to them:")
		printSites(w, st.Sites)
	}
	if c := st.Cluster; c != nil {
		fmt.Fprintf(w, "\nCluster: layout v%d, %d partitions, %d staged change(s); answering node %s\n",
			c.LayoutVersion, c.Partitions, c.StagedChanges, short(c.NodeID))
		printRedundancy(w, c.LayoutVersion, c.Redundancy, time.Now())
		if c.System.Member {
			fmt.Fprintf(w, "System group: leader %s, term %d, voters %d\n", short(c.System.Leader), c.System.Term, len(c.System.Voters))
		} else {
			fmt.Fprintln(w, "System group: this node is not one of its voters")
		}
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "NODE\tZONE\tSTATE\tIN LAYOUT\tDRIVES\tCAPACITY\tSLOTS\tGROUPS\tLEADS\tS3")
		for _, n := range c.Nodes {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%v\t%d\t%s\t%d\t%d\t%d\t%s\n", short(n.ID), n.Zone, n.State, n.InLayout,
				n.Drives, humanBytes(int64(n.Capacity)), n.ShardSlots, n.Hosts, n.Leads, s3AddrOf(n))
		}
		tw.Flush()
		printCatchingUp(w, c.Nodes)
		fmt.Fprintf(w, "This node: %d partition groups, leads %d, %d without a leader; metadata commits p50 %.1f ms, p99 %.1f ms\n",
			c.Groups.Hosted, c.Groups.Leading, c.Groups.Leaderless, c.Commits.P50Ms, c.Commits.P99Ms)
		printRaftMessages(w, c.RaftMessages)
		printSnapshots(w, c.Snapshots)
		printAntiEntropy(w, c.AntiEntropy, time.Now())
		printRebalance(w, c.LayoutVersion, moves)
		fmt.Fprintln(w, "\nDrives of every node:")
		tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "NODE\tDRIVE\tSTATE\tUSED\tTOTAL\tCORRUPT BLOCKS")
		for _, n := range c.Nodes {
			if len(n.DriveUsage) == 0 {
				fmt.Fprintf(tw, "%s\t-\tno answer\t\t\t\n", short(n.ID))
			}
			for _, d := range n.DriveUsage {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\n", short(n.ID), short(d.ID), d.State, humanBytes(d.UsedBytes), humanBytes(d.TotalBytes), d.CorruptBlocks)
			}
		}
		tw.Flush()
	} else {
		printLocalDrives(w, st)
	}
	printServices(w, st)
	printScrub(w, st)
}

// printCatchingUp names the nodes whose replicas of metadata groups are
// still catching up, which redundancy counts as lost until they are in.
func printCatchingUp(w io.Writer, nodes []admin.NodeStatus) {
	for _, n := range nodes {
		if len(n.CatchingUp) == 0 {
			continue
		}
		names := n.CatchingUp
		more := ""
		if len(names) > 3 {
			names, more = names[:3], fmt.Sprintf(" and %d more", len(n.CatchingUp)-3)
		}
		fmt.Fprintf(w, "Node %s is catching up in %d metadata group(s): %s%s\n", short(n.ID), len(n.CatchingUp), strings.Join(names, ", "), more)
	}
}

// printRaftMessages says what Raft messages this node did not send, if
// any: a refused one is a group its followers cannot catch up in.
func printRaftMessages(w io.Writer, m admin.RaftMessageStatus) {
	if m == (admin.RaftMessageStatus{}) {
		return
	}
	fmt.Fprintf(w, "Raft messages not sent since start: %d undelivered (peer unreachable), %d dropped on a full queue, %d refused as too large",
		m.Undelivered, m.QueueFull, m.Refused)
	if m.Refused > 0 {
		fmt.Fprint(w, " (a message over the transport's limit; see the log)")
	}
	fmt.Fprintln(w)
}

// printSnapshots says what partition snapshots this node streamed and
// installed, if any.
func printSnapshots(w io.Writer, s admin.SnapshotStatus) {
	if s == (admin.SnapshotStatus{}) {
		return
	}
	fmt.Fprintf(w, "Partition snapshots since start: %d sent (%s), %d failed and retried, %d installed here\n",
		s.Sent, humanBytes(int64(s.BytesSent)), s.Failed, s.Installed)
}

// printAntiEntropy says what the last comparison of available buckets'
// records with the other replicas found, if there was one.
func printAntiEntropy(w io.Writer, a *admin.AntiEntropyStatus, now time.Time) {
	if a == nil {
		return
	}
	fmt.Fprintf(w, "Available buckets' records, last compared %s ago: %d partition-peer pairs, %d differed, %d records fetched, %d sent, %d hints delivered, %d pairs failed\n",
		now.Sub(a.Finished).Round(time.Second), a.Pairs, a.Differed, a.Fetched, a.Sent, a.Hinted, a.Failed)
	if a.ClockRefused > 0 {
		fmt.Fprintf(w, "  WARNING: %d versions refused for a clock ahead of another node's by more than 500 ms: check NTP on every node\n", a.ClockRefused)
	}
}

// printRedundancy says how many more losses every object survives now,
// against the promise, and what stands behind the figure.
func printRedundancy(w io.Writer, layout uint64, r *admin.RedundancyStatus, now time.Time) {
	if r == nil {
		return
	}
	fmt.Fprintf(w, "Redundancy now: %s\n", r.Line())
	switch {
	case r.CountedAt.IsZero():
		fmt.Fprintln(w, "  stored data: not counted yet; the figure covers new writes and metadata")
	case r.Data.Items == 0:
		fmt.Fprintf(w, "  stored data: no object parts outside metadata, counted %s ago\n", etaText(now.Sub(r.CountedAt).Seconds()))
	default:
		fmt.Fprintf(w, "  stored data: %d object parts, counted %s ago, %s\n", r.Data.Items,
			etaText(now.Sub(r.CountedAt).Seconds()), survives(r.Data, "parts"))
	}
	if r.CountError != "" {
		fmt.Fprintf(w, "  last count: %s\n", oneLine(r.CountError))
	}
	fmt.Fprintf(w, "  new writes: %s to layout v%d %s\n", r.Policies[0], layout, survives(r.NewWrites, "partitions"))
	fmt.Fprintf(w, "  metadata: %d Raft groups %s\n", r.Metadata.Items, survives(r.Metadata, "groups"))
	for _, why := range r.Reasons {
		fmt.Fprintf(w, "  why: %s\n", why)
	}
}

// survives says what the items of s survive: "survive 1 node loss (the
// weakest: 7 parts, 21.0 MiB, e.g. ...), no zone loss".
func survives(s admin.SurvivalStatus, items string) string {
	var weakest []string
	switch {
	case s.NodeLosses < 0:
		weakest = append(weakest, fmt.Sprintf("%d %s cannot", s.Weakest, items))
	case s.Weakest == s.Items:
		weakest = append(weakest, "all")
	default:
		weakest = append(weakest, fmt.Sprintf("the weakest: %d %s", s.Weakest, items))
	}
	if s.Bytes > 0 {
		weakest = append(weakest, humanBytes(s.Bytes))
	}
	if s.Example != "" {
		weakest = append(weakest, "e.g. "+s.Example)
	}
	w := strings.Join(weakest, ", ")
	if s.NodeLosses < 0 {
		return fmt.Sprintf("cannot all be read now (%s)", w)
	}
	return fmt.Sprintf("survive %s (%s), %s", lossText(s.NodeLosses, "node"), w, lossText(s.ZoneLosses, "zone"))
}

// lossText is "1 node loss", "2 zone losses" or "no zone loss".
func lossText(n int, what string) string {
	switch {
	case n <= 0:
		return fmt.Sprintf("no %s loss", what)
	case n == 1:
		return fmt.Sprintf("1 %s loss", what)
	}
	return fmt.Sprintf("%d %s losses", n, what)
}

// printLocalDrives is the drive table of a standalone node.
func printLocalDrives(w io.Writer, st admin.Status) {
	fmt.Fprintln(w, "\nDrives of this node:")
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSTATE\tUSED\tTOTAL\tCORRUPT BLOCKS\tPATH")
	for _, d := range st.Drives {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\n", short(d.ID), d.State, humanBytes(d.UsedBytes), humanBytes(d.TotalBytes), d.CorruptBlocks, d.Path)
	}
	tw.Flush()
}

// printServices is the table of the node's supervised services.
func printServices(w io.Writer, st admin.Status) {
	if len(st.Services) > 0 {
		fmt.Fprintln(w, "\nServices of this node:")
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "SERVICE\tSTATE\tSINCE\tRESTARTS\tLAST ERROR")
		for _, s := range st.Services {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\n", s.Name, s.State, s.Since.Local().Format(time.DateTime), s.Restarts, oneLine(s.LastError))
		}
		tw.Flush()
	}
}

// short abbreviates an ID for tables.
func short(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	if id == "" {
		return "-"
	}
	return id
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for v := n / unit; v >= unit; v /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// oneLine keeps a table row on one line: a panic value may span several.
func oneLine(s string) string {
	if s == "" {
		return "-"
	}
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 80 {
		s = s[:77] + "..."
	}
	return s
}

// nodeMove is what one node said of its data movement (its GET /repair).
type nodeMove struct {
	node admin.NodeStatus
	p    node.RepairProgress
	err  error // no answer
}

// moving says whether the node is moving data toward layout version v:
// a pass runs and the node has not yet finished one for v.
func (m nodeMove) moving(v uint64) bool {
	return m.err == nil && m.p.Running && m.p.LayoutVersion < v
}

// settled says whether the node's data is in line with layout version v.
func (m nodeMove) settled(v uint64) bool {
	return m.err == nil && !m.p.Running && m.p.LayoutVersion >= v
}

// askMoves asks the nodes that are not known dead (and, with inLayout,
// that the layout places data on) for their data movement, in parallel,
// each within timeout. The answers are in the order of nodes.
func askMoves(ctx context.Context, c *adminConn, nodes []admin.NodeStatus, inLayout bool, timeout time.Duration) []nodeMove {
	var out []nodeMove
	for _, n := range nodes {
		if n.State == admin.NodeDead || n.State == admin.NodeLeft || (inLayout && !n.InLayout) {
			continue
		}
		out = append(out, nodeMove{node: n})
	}
	var wg sync.WaitGroup
	for i := range out {
		wg.Go(func() {
			m := &out[i]
			addr := adminAddrOf(m.node)
			if addr == "" {
				m.err = fmt.Errorf("node %s advertises no admin address", short(m.node.ID))
				return
			}
			cctx, cancel := context.WithTimeout(ctx, timeout)
			defer cancel()
			m.err = c.call(cctx, addr, http.MethodGet, "/repair", nil, &m.p)
		})
	}
	wg.Wait()
	return out
}

// adminAddrOf is where a node's admin API is reached: the address it
// listens on, with the host of its RPC address when it listens on every
// interface (":3903", "0.0.0.0:3903").
func adminAddrOf(n admin.NodeStatus) string { return reachable(n.AdminAddr, n.RPCAddr) }

// s3AddrOf is where a node's S3 endpoint is reached, as adminAddrOf.
func s3AddrOf(n admin.NodeStatus) string { return reachable(n.S3Addr, n.RPCAddr) }

// reachable is addr, or, when addr's host is a wildcard, addr's port on
// the host of rpc.
func reachable(addr, rpc string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if ip := net.ParseIP(host); host != "" && (ip == nil || !ip.IsUnspecified()) {
		return addr
	}
	if rh, _, err := net.SplitHostPort(rpc); err == nil && rh != "" {
		if ip := net.ParseIP(rh); ip == nil || !ip.IsUnspecified() {
			return net.JoinHostPort(rh, port)
		}
	}
	return net.JoinHostPort("127.0.0.1", port)
}

// rebalance sums up the nodes' data movement toward one layout version.
type rebalance struct {
	version             uint64
	moved, toMove       int64
	eta                 float64 // seconds, the slowest moving node's; 0 unknown
	moving, settled     int
	unknown, failing    int
	nodes               int
	firstErr, firstFail string
}

func sumMoves(v uint64, moves []nodeMove) rebalance {
	r := rebalance{version: v, nodes: len(moves)}
	for _, m := range moves {
		switch {
		case m.err != nil:
			r.unknown++
			if r.firstErr == "" {
				r.firstErr = fmt.Sprintf("%s: %v", short(m.node.ID), m.err)
			}
			continue
		case m.moving(v):
			r.moving++
			r.eta = max(r.eta, m.p.ETASeconds)
		case m.settled(v):
			r.settled++
		default:
			// Not started on v yet, or its last pass left something
			// behind; its figures are of an earlier pass.
			if m.p.LastError != "" {
				r.failing++
				if r.firstFail == "" {
					r.firstFail = fmt.Sprintf("%s: %s", short(m.node.ID), m.p.LastError)
				}
			}
			continue
		}
		r.moved += m.p.BytesMoved
		r.toMove += m.p.BytesToMove
	}
	return r
}

// done says whether every node asked is in line with the version.
func (r rebalance) done() bool { return r.settled == r.nodes }

func (r rebalance) bytes() string {
	return fmt.Sprintf("%s of %s moved", humanBytes(r.moved), humanBytes(r.toMove))
}

// printRebalance shows each node moving data toward layout v, and the
// total; nothing when no node is.
func printRebalance(w io.Writer, v uint64, moves []nodeMove) {
	r := sumMoves(v, moves)
	if r.moving == 0 {
		return
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 4, 1, ' ', 0)
	for _, m := range moves {
		switch {
		case m.err != nil:
			fmt.Fprintf(tw, "node %s:\trebalance unknown (no answer)\n", short(m.node.ID))
		case m.moving(v):
			fmt.Fprintf(tw, "node %s:\trebalance to layout v%d: %s of %s moved, ETA %s\n", short(m.node.ID), v,
				humanBytes(m.p.BytesMoved), humanBytes(m.p.BytesToMove), etaText(m.p.ETASeconds))
		}
	}
	fmt.Fprintf(tw, "total:\trebalance to layout v%d: %s, %d of %d node(s) in line, ETA %s\n", v, r.bytes(), r.settled, r.nodes, etaText(r.eta))
	tw.Flush()
}

// etaText writes an estimate in whole seconds, without zero units ("2m",
// "1h5m", "40s").
func etaText(seconds float64) string {
	if seconds <= 0 {
		return "unknown"
	}
	s := (time.Duration(seconds) * time.Second).Round(time.Second).String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}
