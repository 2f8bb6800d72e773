package main

import (
	"fmt"
	"io"
	"net/http"
	"strconv"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/redoubt-io/redoubt/internal/admin"
)

func newLayoutCmd() *cobra.Command {
	addr := "127.0.0.1:3903"
	cmd := &cobra.Command{
		Use:   "layout",
		Short: "Show and change the cluster layout: which drives hold which partitions",
		Long: `The layout maps the cluster's partitions to drives on nodes in zones. It is
versioned and agreed by the cluster's consensus group. Changing it is three
steps: stage edits (add or remove a node, change its zone or capacity), preview
what would move, apply. Any node's admin address will do.`,
	}
	cmd.PersistentFlags().StringVar(&addr, "admin-addr", addr, "any node's admin address")

	show := &cobra.Command{
		Use:   "show",
		Short: "Print the current layout and the staged edits",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var v admin.LayoutView
			if err := adminCall(cmd.Context(), addr, http.MethodGet, "/cluster/layout", nil, &v); err != nil {
				return err
			}
			printLayout(cmd.OutOrStdout(), v)
			return nil
		},
	}

	var zone, drive string
	var capacity uint64
	stage := &cobra.Command{
		Use:   "stage add|remove|zone|capacity NODE",
		Short: "Stage an edit of the layout (applied by `layout apply`)",
		Long: `Stage one edit: "add NODE" places data on a node that has joined the cluster
(--zone and --capacity optional), "remove NODE" takes it out, "zone NODE --zone Z"
moves it to another zone, "capacity NODE --capacity BYTES [--drive ID]" changes
the capacity of its drives. NODE is a node ID or its unique prefix.`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			e := admin.LayoutEdit{Op: args[0], Node: args[1], Zone: zone, Drive: drive, Capacity: capacity}
			var v admin.LayoutView
			if err := adminCall(cmd.Context(), addr, http.MethodPost, "/cluster/layout/stage", e, &v); err != nil {
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
			var p admin.LayoutPreview
			if err := adminCall(cmd.Context(), addr, http.MethodGet, "/cluster/layout/preview", nil, &p); err != nil {
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
	apply := &cobra.Command{
		Use:   "apply",
		Short: "Commit the staged edits as the next layout version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			path := "/cluster/layout/apply"
			if expect != 0 {
				path += "?version=" + strconv.FormatUint(expect, 10)
			}
			var v admin.LayoutView
			if err := adminCall(cmd.Context(), addr, http.MethodPost, path, nil, &v); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "layout v%d applied\n", v.Version)
			printLayout(cmd.OutOrStdout(), v)
			return nil
		},
	}
	apply.Flags().Uint64Var(&expect, "version", 0, "apply only if the result is this version (guards against concurrent changes)")

	revert := &cobra.Command{
		Use:   "revert",
		Short: "Drop the staged edits",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return adminCall(cmd.Context(), addr, http.MethodPost, "/cluster/layout/revert", nil, nil)
		},
	}
	cmd.AddCommand(show, stage, preview, apply, revert)
	return withEnv(cmd)
}

func printLayout(w io.Writer, v admin.LayoutView) {
	fmt.Fprintf(w, "Layout v%d: %s, %d partitions\n", v.Version, v.Policy, v.Partitions)
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
			fmt.Fprintf(w, "  %s %s", e.Op, short(e.Node))
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
