package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/redoubt-io/redoubt/internal/admin"
)

func newLayoutCmd() *cobra.Command {
	var af adminFlags
	cmd := &cobra.Command{
		Use:   "layout",
		Short: "Show and change the cluster layout: which drives hold which partitions",
		Long: `The layout maps the cluster's partitions to drives on nodes in zones. It is
versioned and agreed by the cluster's consensus group. Changing it is three
steps: stage edits (add or remove a node, change its zone or capacity), preview
what would move, apply. Any node's admin address will do. The calls are signed
with the root credentials: --access-key and --secret-key, or the credentials
file in --data (by default ./redoubt-data, then ./redoubt-dev).`,
	}
	af.register(cmd.PersistentFlags(), "any node's admin address")
	annotateEnv(cmd.PersistentFlags())

	show := &cobra.Command{
		Use:   "show",
		Short: "Print the current layout and the staged edits",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := af.conn(cmd)
			if err != nil {
				return err
			}
			var v admin.LayoutView
			if err := c.call(cmd.Context(), c.addr, http.MethodGet, "/cluster/layout", nil, &v); err != nil {
				return err
			}
			printLayout(cmd.OutOrStdout(), v)
			return nil
		},
	}

	var zone, drive string
	var capacity uint64
	stage := &cobra.Command{
		Use:   "stage add|remove|zone|capacity NODE | stage rebalance",
		Short: "Stage an edit of the layout (applied by `layout apply`)",
		Long: `Stage one edit: "add NODE" places data on a node that has joined the cluster
(--zone and --capacity optional), "remove NODE" takes it out, "zone NODE --zone Z"
moves it to another zone, "capacity NODE --capacity BYTES [--drive ID]" changes
the capacity of its drives. NODE is a node ID or its unique prefix.
"rebalance" names no node: it recomputes the placement of the nodes as they
are, which after "layout split" places the halves of each data partition apart
so that many drives share the data evenly.`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) == 1 && args[0] == "rebalance" {
				return nil
			}
			if len(args) > 0 && args[0] == "rebalance" {
				return errors.New("rebalance names no node")
			}
			return cobra.ExactArgs(2)(cmd, args)
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := af.conn(cmd)
			if err != nil {
				return err
			}
			e := admin.LayoutEdit{Op: args[0], Zone: zone, Drive: drive, Capacity: capacity}
			if len(args) > 1 {
				e.Node = args[1]
			}
			var v admin.LayoutView
			if err := c.call(cmd.Context(), c.addr, http.MethodPost, "/cluster/layout/stage", e, &v); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "staged; %d edit(s) wait for `redoubt layout preview` and `redoubt layout apply`\n", len(v.Staged))
			return nil
		},
	}
	stage.Flags().StringVar(&zone, "zone", "", "zone of the node")
	stage.Flags().StringVar(&drive, "drive", "", "one drive of the node, for capacity")
	stage.Flags().Uint64Var(&capacity, "capacity", 0, "capacity in bytes")

	preview := &cobra.Command{
		Use:   "preview",
		Short: "Show what applying the staged edits would move",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := af.conn(cmd)
			if err != nil {
				return err
			}
			var p admin.LayoutPreview
			if err := c.call(cmd.Context(), c.addr, http.MethodGet, "/cluster/layout/preview", nil, &p); err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			printLayout(w, p.To)
			fmt.Fprintf(w, "\nv%d -> v%d: %d of %d shard slots move (%.1f%%), in %d partitions",
				p.From.Version, p.To.Version, p.MovedSlots, p.TotalSlots, 100*p.Fraction, p.PartitionsChanged)
			if p.BytesToMove > 0 {
				fmt.Fprintf(w, "; about %s of data", humanBytes(p.BytesToMove))
			}
			fmt.Fprintln(w)
			fmt.Fprintln(w, "New objects follow the new layout at once; objects already stored stay readable where they are.")
			return nil
		},
	}

	var expect uint64
	var wait bool
	var timeout time.Duration
	apply := &cobra.Command{
		Use:   "apply",
		Short: "Commit the staged edits as the next layout version",
		Long: `Commit the staged edits as the next layout version. Every node then moves the
data the new layout places elsewhere, by itself. With --wait, show that movement
(bytes moved of bytes to move over all nodes, as a progress line on stderr)
until every live node of the layout is in line with the new version, then a
summary; dead nodes are skipped. Ctrl-C or --timeout stop the waiting, not the
movement.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if timeout != 0 && !wait {
				return errors.New("--timeout bounds --wait; give both or neither")
			}
			if timeout < 0 {
				return errors.New("--timeout must not be negative")
			}
			c, err := af.conn(cmd)
			if err != nil {
				return err
			}
			path := "/cluster/layout/apply"
			if expect != 0 {
				path += "?version=" + strconv.FormatUint(expect, 10)
			}
			var v admin.LayoutView
			if err := c.call(cmd.Context(), c.addr, http.MethodPost, path, nil, &v); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "layout v%d applied\n", v.Version)
			printLayout(cmd.OutOrStdout(), v)
			if !wait {
				return nil
			}
			ctx := cmd.Context()
			if timeout > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, timeout)
				defer cancel()
			}
			return waitRebalance(ctx, c, v.Version, rebalancePoll, cmd.ErrOrStderr(), cmd.OutOrStdout())
		},
	}
	apply.Flags().Uint64Var(&expect, "version", 0, "apply only if the result is this version (guards against concurrent changes)")
	apply.Flags().BoolVar(&wait, "wait", false, "show the data movement until every live node is in line with the new layout")
	apply.Flags().DurationVar(&timeout, "timeout", 0, "with --wait, give up waiting after this long (0: no limit)")

	revert := &cobra.Command{
		Use:   "revert",
		Short: "Drop the staged edits",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := af.conn(cmd)
			if err != nil {
				return err
			}
			return c.call(cmd.Context(), c.addr, http.MethodPost, "/cluster/layout/revert", nil, nil)
		},
	}
	split := &cobra.Command{
		Use:   "split",
		Short: "Split every partition in two, online; no data moves",
		Long: `Split doubles the cluster's metadata partitions while it serves: each
partition's Raft group splits into two whose replicas are made on the same nodes
from the copies they hold, and the layout's next version names them. The data
partitions (the units of placement, up to 65,536) split with them, each half on
its parent's drives. Requests go on throughout; object data stays where it is.
Split when partitions grow large, when more nodes should share the metadata
load, or when many drives share few partitions unevenly: then "layout stage
rebalance" and "layout apply" place the halves apart. Running it again after a
failure finishes the split.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := af.conn(cmd)
			if err != nil {
				return err
			}
			var before admin.LayoutView
			if err := c.call(cmd.Context(), c.addr, http.MethodGet, "/cluster/layout", nil, &before); err != nil {
				return err
			}
			var v admin.LayoutView
			if err := c.call(cmd.Context(), c.addr, http.MethodPost, "/cluster/layout/split", nil, &v); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "split: %d metadata partitions, now %d, and %d data partitions (layout v%d); no data moved\n",
				before.MetaPartitions, v.MetaPartitions, v.DataPartitions, v.Version)
			if v.Fullest > 1.05 {
				fmt.Fprintf(cmd.OutOrStdout(), "the fullest drive holds %.2fx its share: `redoubt layout stage rebalance` and `redoubt layout apply` even it out\n", v.Fullest)
			}
			return nil
		},
	}
	cmd.AddCommand(show, stage, preview, apply, revert, split)
	return withEnv(cmd)
}

func printLayout(w io.Writer, v admin.LayoutView) {
	fmt.Fprintf(w, "Layout v%d: %s, %d partitions", v.Version, v.Policy, v.Partitions)
	if v.MetaPartitions > v.Partitions {
		fmt.Fprintf(w, ", split into %d metadata and %d data partitions", v.MetaPartitions, v.DataPartitions)
	}
	if v.Fullest > 0 {
		fmt.Fprintf(w, "; fullest drive %.2fx its share", v.Fullest)
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tZONE\tDRIVES\tCAPACITY\tSLOTS\tRPC")
	for _, n := range v.Nodes {
		var c uint64
		for _, d := range n.Drives {
			c += d.Capacity
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%d\t%s\n", short(n.ID), n.Zone, len(n.Drives), humanBytes(int64(c)), n.Slots, n.Addr)
	}
	tw.Flush()
	if len(v.Staged) > 0 {
		fmt.Fprintln(w, "Staged:")
		for _, e := range v.Staged {
			fmt.Fprintf(w, "  %s", e.Op)
			if e.Node != "" {
				fmt.Fprintf(w, " %s", short(e.Node))
			}
			if e.Zone != "" {
				fmt.Fprintf(w, " zone=%s", e.Zone)
			}
			if e.Capacity != 0 {
				fmt.Fprintf(w, " capacity=%s", humanBytes(int64(e.Capacity)))
			}
			fmt.Fprintln(w)
		}
	}
}

// rebalancePoll is how often --wait asks the nodes for their progress.
const rebalancePoll = time.Second

// rebalanceAskTimeout bounds each node's answer while waiting: a node that
// does not answer in time is shown as unknown and asked again.
const rebalanceAskTimeout = 2 * time.Second

// waitRebalance follows the data movement to layout version v until every
// node the layout places data on and that is not known dead reports a
// finished pass for v (GET /repair: running false, layout_version >= v).
// The node list comes from c.addr's GET /status, asked again each round, so
// a node that dies meanwhile stops being waited for. It draws a progress
// line on progress every interval and, when done, prints a summary on
// out; it returns an error when ctx ends first.
func waitRebalance(ctx context.Context, c *adminConn, v uint64, interval time.Duration, progress, out io.Writer) error {
	addr := c.addr
	start := time.Now()
	var r rebalance
	var skipped int
	tally := movedTally{}
	state := "asking " + addr + " for the cluster's nodes"
	detail := state
	drawn := false
	for {
		var st admin.Status
		err := c.call(ctx, addr, http.MethodGet, "/status", nil, &st)
		switch {
		case ctx.Err() != nil:
		case err != nil:
			state = fmt.Sprintf("no status from %s: %s", addr, oneLine(err.Error()))
			detail = state
		case st.Cluster == nil:
			return fmt.Errorf("the node at %s is not part of a cluster", addr)
		case st.Cluster.LayoutVersion < v:
			state = fmt.Sprintf("waiting for %s to follow layout v%d (at v%d)", addr, v, st.Cluster.LayoutVersion)
			detail = state
		default:
			skipped = 0
			for _, n := range st.Cluster.Nodes {
				if n.InLayout && (n.State == admin.NodeDead || n.State == admin.NodeLeft) {
					skipped++
				}
			}
			moves := askMoves(ctx, c, st.Cluster.Nodes, true, rebalanceAskTimeout)
			if ctx.Err() != nil {
				break
			}
			r = sumMoves(v, moves)
			tally.observe(v, moves)
			state, detail = r.line(), r.detail()
			if r.done() {
				fmt.Fprintf(progress, "\r%s\033[K\n", state)
				fmt.Fprintf(out, "data in line with layout v%d on %d node(s): %s moved in %s",
					v, r.nodes, humanBytes(tally.total()), time.Since(start).Round(time.Second))
				if skipped > 0 {
					fmt.Fprintf(out, "; %d dead node(s) skipped", skipped)
				}
				fmt.Fprintln(out)
				return nil
			}
		}
		if ctx.Err() == nil {
			fmt.Fprintf(progress, "\r%s\033[K", state)
			drawn = true
		}
		t := time.NewTimer(interval)
		select {
		case <-ctx.Done():
			t.Stop()
			if drawn {
				fmt.Fprintln(progress)
			}
			why := "interrupted"
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				why = fmt.Sprintf("gave up after %s", time.Since(start).Round(time.Second))
			}
			return fmt.Errorf("%s waiting for the data to move to layout v%d (%s); the nodes go on moving it, see `redoubt status`: %w",
				why, v, detail, ctx.Err())
		case <-t.C:
		}
	}
}

// line is the progress line of --wait: a bar and detail.
func (r rebalance) line() string {
	pct := 100.0
	if r.toMove > 0 {
		pct = 100 * float64(r.moved) / float64(r.toMove)
	} else if !r.done() {
		pct = 0
	}
	const width = 30
	fill := min(int(pct/100*width), width)
	return fmt.Sprintf("[%s%s] %5.1f%% %s", strings.Repeat("#", fill), strings.Repeat(".", width-fill), pct, r.detail())
}

// detail is where the movement stands, in words.
func (r rebalance) detail() string {
	var b strings.Builder
	fmt.Fprintf(&b, "layout v%d: %s, %d of %d node(s) in line", r.version, r.bytes(), r.settled, r.nodes)
	if r.moving > 0 {
		fmt.Fprintf(&b, ", ETA %s", etaText(r.eta))
	}
	if r.unknown > 0 {
		fmt.Fprintf(&b, "; %d not answering (%s)", r.unknown, oneLine(r.firstErr))
	}
	if r.failing > 0 {
		fmt.Fprintf(&b, "; %d retrying after an error (%s)", r.failing, oneLine(r.firstFail))
	}
	return b.String()
}

// movedTally adds up, per node, the bytes moved toward one layout version
// over every pass seen while waiting: a pass that left something behind is
// followed by one that moves only the rest, so the last pass's figures
// alone would understate the movement.
type movedTally map[string]struct{ base, moved int64 }

// observe takes one round of answers. A node's count since its start
// (relocation.total_bytes_moved) less what its pass had moved when first
// seen working on v is the node's base; what it counts beyond that was
// moved for v. Nodes that give no such count contribute their current
// pass.
func (t movedTally) observe(v uint64, moves []nodeMove) {
	for _, m := range moves {
		if !m.moving(v) && !m.settled(v) {
			continue
		}
		id := m.node.ID
		rp := m.p.Relocation
		if rp == nil {
			t[id] = struct{ base, moved int64 }{0, m.p.BytesMoved}
			continue
		}
		e, ok := t[id]
		if !ok || rp.TotalBytesMoved < e.base {
			// First seen, or restarted since (its count began again).
			e.base = rp.TotalBytesMoved - m.p.BytesMoved
		}
		e.moved = rp.TotalBytesMoved - e.base
		t[id] = e
	}
}

func (t movedTally) total() int64 {
	var n int64
	for _, e := range t {
		n += e.moved
	}
	return n
}
