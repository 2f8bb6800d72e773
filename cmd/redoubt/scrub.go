package main

import (
	"fmt"
	"net/http"
	"time"

	"github.com/spf13/cobra"

	"github.com/redoubt-io/redoubt/internal/admin"
)

func newScrubCmd() *cobra.Command {
	var af adminFlags
	var noWait bool
	cmd := &cobra.Command{
		Use:   "scrub",
		Short: "Re-read and verify every shard on a node's drives now",
		Long: `Ask a running server to start a scrub pass now rather than when it is due
(--scrub-interval after the last one): every shard on its drives is read and
verified, and the corrupt or missing ones rebuilt. A pass that is running is
waited for instead. Shows progress until the pass ends, unless --no-wait;
the next pass is then due an interval after this one. The calls are signed
with the root credentials: --access-key and --secret-key, or the credentials
file in --data (by default ./redoubt-data).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := af.conn(cmd)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			asked := time.Now()
			var st admin.ScrubStatus
			if err := c.call(ctx, c.addr, http.MethodPost, "/scrub", nil, &st); err != nil {
				return err
			}
			if !st.Enabled {
				return fmt.Errorf("scrubbing is disabled on this node (--scrub-interval 0)")
			}
			out := cmd.OutOrStdout()
			if noWait {
				fmt.Fprintln(out, "scrub pass started")
				return nil
			}
			// The pass to wait for: the one running, or the one that
			// starts after the request.
			since := asked
			if st.Running {
				since = st.PassStarted
			}
			waiting := func(st admin.ScrubStatus) bool { return st.Running || st.PassStarted.Before(since) }
			line := func(st admin.ScrubStatus) string {
				if !st.Running && st.PassStarted.Before(since) {
					return "scrub: waiting for the pass to start"
				}
				return scrubLine(st)
			}
			if err := follow(ctx, c, "/scrub", cmd.ErrOrStderr(), &st, waiting, line); err != nil {
				return err
			}
			if !st.LastPassStarted.Equal(st.PassStarted) {
				return fmt.Errorf("scrub pass ended early: %s", st.LastError)
			}
			fmt.Fprintf(out, "scrub finished: %d shards (%s) checked in %s; since the node started %d corrupt, %d missing, %d rebuilt, %d repairs failed\n",
				st.PassShardsChecked, humanBytes(st.PassBytesChecked), st.LastPassFinished.Sub(st.LastPassStarted).Round(time.Millisecond),
				st.CorruptShards, st.MissingShards, st.RepairedShards, st.RepairFailures)
			return nil
		},
	}
	af.register(cmd.Flags(), "the server's admin address")
	cmd.Flags().BoolVar(&noWait, "no-wait", false, "start the pass and return at once")
	return withEnv(cmd)
}

// scrubLine is one line of a running pass's progress.
func scrubLine(st admin.ScrubStatus) string {
	if st.Planning {
		return "scrub: listing the shards to check"
	}
	pct := 100.0
	if st.PassBytesTotal > 0 {
		pct = min(100, 100*float64(st.PassBytesChecked)/float64(st.PassBytesTotal))
	}
	return fmt.Sprintf("scrub: %d of %d shards, %s of %s (%.1f%%)", st.PassShardsChecked, st.PassShardsTotal,
		humanBytes(st.PassBytesChecked), humanBytes(st.PassBytesTotal), pct)
}
