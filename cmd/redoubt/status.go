package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/redoubt-io/redoubt/internal/admin"
)

func newStatusCmd() *cobra.Command {
	addr := "127.0.0.1:3903"
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show a server's drives, and for a cluster its nodes, zones, layout and Raft leaders",
		Long: `Ask any node (its admin address) for the state of the node and of the cluster:
nodes with their zones and liveness, the layout version, the metadata Raft
groups each node hosts and leads, data per drive and the redundancy policy.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var st admin.Status
			if err := adminCall(cmd.Context(), addr, http.MethodGet, "/status", nil, &st); err != nil {
				return err
			}
			if asJSON {
				e := json.NewEncoder(cmd.OutOrStdout())
				e.SetIndent("", "  ")
				return e.Encode(st)
			}
			printStatus(cmd.OutOrStdout(), st)
			return nil
		},
	}
	cmd.Flags().StringVar(&addr, "admin-addr", addr, "any node's admin address")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the raw JSON status")
	return withEnv(cmd)
}

func printStatus(w io.Writer, st admin.Status) {
	fmt.Fprintf(w, "Redoubt %s, up %.0fs, S3 %s, region %s\n", st.Version, st.UptimeSeconds, st.S3Endpoint, st.Region)
	fmt.Fprintf(w, "Redundancy: %s; %d objects, %s; corrupt blocks found: %d\n", st.Policy, st.Objects, humanBytes(st.Bytes), st.CorruptionsTotal)
	if c := st.Cluster; c != nil {
		fmt.Fprintf(w, "\nCluster: layout v%d, %d partitions, %d staged change(s); answering node %s\n",
			c.LayoutVersion, c.Partitions, c.StagedChanges, short(c.NodeID))
		if c.System.Member {
			fmt.Fprintf(w, "System group: leader %s, term %d, voters %d\n", short(c.System.Leader), c.System.Term, len(c.System.Voters))
		} else {
			fmt.Fprintln(w, "System group: this node is not one of its voters")
		}
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "NODE\tZONE\tSTATE\tIN LAYOUT\tDRIVES\tCAPACITY\tSLOTS\tGROUPS\tLEADS\tS3")
		for _, n := range c.Nodes {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%v\t%d\t%s\t%d\t%d\t%d\t%s\n", short(n.ID), n.Zone, n.State, n.InLayout,
				n.Drives, humanBytes(int64(n.Capacity)), n.ShardSlots, n.Hosts, n.Leads, n.S3Addr)
		}
		tw.Flush()
		fmt.Fprintf(w, "This node: %d partition groups, leads %d, %d without a leader; metadata commits p50 %.1f ms, p99 %.1f ms\n",
			c.Groups.Hosted, c.Groups.Leading, c.Groups.Leaderless, c.Commits.P50Ms, c.Commits.P99Ms)
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
