package main

import (
	"fmt"
	"io"
	"time"

	"github.com/redoubt-io/redoubt/internal/admin"
)

// printScrub is the scrubber's and the multipart expiry's part of the
// status: whether the node's shards are being checked, what was found and
// rebuilt, and when a full pass last ended.
func printScrub(w io.Writer, st admin.Status) {
	s := st.Scrub
	fmt.Fprintln(w)
	if !s.Enabled {
		fmt.Fprintln(w, "Scrub: disabled")
	} else {
		interval := time.Duration(s.IntervalSeconds * float64(time.Second))
		fmt.Fprintf(w, "Scrub: a pass every %s; %d shards (%s) checked since start, %d corrupt, %d missing, %d rebuilt, %d repairs failed\n",
			interval, s.ShardsChecked, humanBytes(s.BytesChecked), s.CorruptShards, s.MissingShards, s.RepairedShards, s.RepairFailures)
		if s.Running {
			pct := 100.0
			if s.PassBytesTotal > 0 {
				pct = min(100, 100*float64(s.PassBytesChecked)/float64(s.PassBytesTotal))
			}
			if s.Planning {
				fmt.Fprintf(w, "  pass running since %s: listing the shards to check\n", s.PassStarted.Local().Format(time.DateTime))
			} else {
				fmt.Fprintf(w, "  pass running since %s: %d of %d shards, %.1f%%\n",
					s.PassStarted.Local().Format(time.DateTime), s.PassShardsChecked, s.PassShardsTotal, pct)
			}
		}
		if s.LastPassFinished.IsZero() {
			fmt.Fprintln(w, "  no full pass yet")
		} else {
			fmt.Fprintf(w, "  last full pass %s .. %s (%s)\n", s.LastPassStarted.Local().Format(time.DateTime),
				s.LastPassFinished.Local().Format(time.DateTime), s.LastPassFinished.Sub(s.LastPassStarted).Round(time.Second))
		}
		if !s.Running && !s.NextPass.IsZero() {
			fmt.Fprintf(w, "  next pass due %s\n", s.NextPass.Local().Format(time.DateTime))
		}
		if s.LastError != "" {
			fmt.Fprintf(w, "  last error: %s\n", s.LastError)
		}
	}
	fmt.Fprintf(w, "Stale multipart uploads aborted since start: %d\n", st.ExpiredUploads)
}
