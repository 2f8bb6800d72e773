package main

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/redoubt-io/redoubt/internal/admin"
	"github.com/redoubt-io/redoubt/internal/node"
)

func newRepairCmd() *cobra.Command {
	var af adminFlags
	var noWait bool
	cmd := &cobra.Command{
		Use:   "repair",
		Short: "Check every shard and rebuild what is missing or corrupt",
		Long: `Ask a running server to check every shard that its metadata refers to
and rebuild the missing or corrupt ones from the surviving shards, for example
onto a replaced, empty drive. Shows progress until the pass ends, unless
--no-wait. The exit status is non-zero if anything could not be repaired.
The calls are signed with the root credentials: --access-key and --secret-key,
or the credentials file in --data (by default ./redoubt-data).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := af.conn(cmd)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			var p node.RepairProgress
			if err := c.call(ctx, c.addr, http.MethodPost, "/repair", nil, &p); err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if noWait {
				fmt.Fprintln(out, "repair pass started")
				return nil
			}
			running := func(p node.RepairProgress) bool { return p.Running }
			if err := follow(ctx, c, "/repair", cmd.ErrOrStderr(), &p, running, repairLine); err != nil {
				return err
			}
			fmt.Fprintf(out, "repair finished: %d refs checked, %d shards rebuilt, %d failed, in %s\n",
				p.RefsDone, p.Rebuilt, p.Failed, p.Finished.Sub(p.Started).Round(time.Millisecond))
			if p.LastError != "" {
				return fmt.Errorf("repair incomplete: %s", p.LastError)
			}
			return nil
		},
	}
	af.register(cmd.Flags(), "the server's admin address")
	cmd.Flags().BoolVar(&noWait, "no-wait", false, "start the pass and return at once")
	cmd.AddCommand(newRepairStatusCmd())
	return withEnv(cmd)
}

func newRepairStatusCmd() *cobra.Command {
	var af adminFlags
	var watch bool
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show what is degraded and what is being rebuilt",
		Long: `Show the node's degraded state (failed drives, drives waiting for a refill,
shards that reads or the scrubber found bad and their repair) and the progress
of a running repair pass: bytes done and left and an estimated time. --watch
redraws it as a progress bar every second until Ctrl-C.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := af.conn(cmd)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			out := cmd.OutOrStdout()
			for {
				var st admin.Status
				if err := c.call(ctx, c.addr, http.MethodGet, "/status", nil, &st); err != nil {
					return err
				}
				var p node.RepairProgress
				if err := c.call(ctx, c.addr, http.MethodGet, "/repair", nil, &p); err != nil {
					return err
				}
				if !watch {
					printRepairStatus(out, st, p)
					return nil
				}
				fmt.Fprintf(cmd.ErrOrStderr(), "\r%s| %s\033[K", repairLine(p), degradedLine(st))
				select {
				case <-ctx.Done():
					fmt.Fprintln(cmd.ErrOrStderr())
					return nil
				case <-time.After(time.Second):
				}
			}
		},
	}
	af.register(cmd.Flags(), "the server's admin address")
	cmd.Flags().BoolVar(&watch, "watch", false, "redraw as a progress bar every second")
	return withEnv(cmd)
}

// degradedLine sums up what is degraded on the node.
func degradedLine(st admin.Status) string {
	failed, refill := 0, 0
	for _, d := range st.Drives {
		switch d.State {
		case admin.DriveFailed:
			failed++
		case admin.DriveNeedsRepair:
			refill++
		}
	}
	return fmt.Sprintf("%d failed drive(s), %d to refill, %d read repair(s) pending, %d corrupt shard(s) found by scrub",
		failed, refill, st.Repair.ReadRepairsPending, st.Scrub.CorruptShards)
}

func printRepairStatus(w io.Writer, st admin.Status, p node.RepairProgress) {
	fmt.Fprintf(w, "Degraded: %s\n", degradedLine(st))
	for _, d := range st.Drives {
		if d.State != admin.DriveOK {
			fmt.Fprintf(w, "  drive %s (%s): %s\n", short(d.ID), d.Path, d.State)
		}
	}
	fmt.Fprintf(w, "Read repairs: %d done (%d shards rebuilt), %d pending, %d left to the scrubber\n",
		st.Repair.ReadRepairs, st.Repair.ReadRepairShards, st.Repair.ReadRepairsPending, st.Repair.ReadRepairsAbandoned)
	if r := st.Repair.Relocation; r != nil {
		switch {
		case r.Running:
			eta := ""
			if r.ETASeconds > 0 {
				eta = fmt.Sprintf(", about %s to go", (time.Duration(r.ETASeconds) * time.Second).String())
			}
			fmt.Fprintf(w, "Moving data to layout v%d: %d of %d refs, %s of %s%s\n", r.Layout, r.RefsMoved, r.RefsToMove,
				humanBytes(r.BytesMoved), humanBytes(r.BytesToMove), eta)
		case r.SettledLayout == r.Layout && r.Layout != 0:
			fmt.Fprintf(w, "Data in line with layout v%d (%s moved since start)\n", r.Layout, humanBytes(r.TotalBytesMoved))
		default:
			fmt.Fprintf(w, "Data not yet in line with layout v%d: %d refs failed to move (%s); retrying\n", r.Layout, r.Failed, r.LastError)
		}
	}
	switch {
	case p.Running && p.Relocation != nil && p.Relocation.Running && p.BytesTotal == 0:
		// Only moving: shown above.
	case p.Running:
		left := max(p.BytesTotal-p.BytesDone, 0)
		eta := "unknown"
		if p.ETASeconds > 0 {
			eta = (time.Duration(p.ETASeconds) * time.Second).String()
		}
		fmt.Fprintf(w, "Repair pass running: %s\n  %s done, %s left, about %s to go\n", repairLine(p),
			humanBytes(p.BytesDone), humanBytes(left), eta)
	case !p.Finished.IsZero():
		fmt.Fprintf(w, "Last repair pass: %s, %d refs checked, %d shards rebuilt, %d failed\n",
			p.Finished.Format(time.RFC3339), p.RefsDone, p.Rebuilt, p.Failed)
	default:
		fmt.Fprintln(w, "No repair pass has run since the server started (redoubt repair starts one).")
	}
}

func repairLine(p node.RepairProgress) string {
	if r := p.Relocation; r != nil && r.Running && p.BytesTotal == 0 {
		pct := 100.0
		if r.BytesToMove > 0 {
			pct = 100 * float64(r.BytesMoved) / float64(r.BytesToMove)
		}
		const width = 30
		fill := min(int(pct/100*width), width)
		return fmt.Sprintf("[%s%s] %5.1f%% moving to layout v%d: %d/%d refs, %s/%s ",
			strings.Repeat("#", fill), strings.Repeat(".", width-fill), pct, r.Layout, r.RefsMoved, r.RefsToMove,
			humanBytes(r.BytesMoved), humanBytes(r.BytesToMove))
	}
	pct := 100.0
	if p.BytesTotal > 0 {
		pct = 100 * float64(p.BytesDone) / float64(p.BytesTotal)
	}
	const width = 30
	fill := int(pct / 100 * width)
	eta := ""
	if p.Running && p.ETASeconds > 0 {
		eta = fmt.Sprintf(" eta %s", (time.Duration(p.ETASeconds) * time.Second).String())
	}
	return fmt.Sprintf("[%s%s] %5.1f%% %d/%d refs, %d rebuilt%s ",
		strings.Repeat("#", fill), strings.Repeat(".", width-fill), pct, p.RefsDone, p.RefsTotal, p.Rebuilt, eta)
}
