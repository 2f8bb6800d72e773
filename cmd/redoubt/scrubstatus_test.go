package main

import (
	"strings"
	"testing"
	"time"

	"github.com/redoubt-io/redoubt/internal/admin"
)

func TestPrintScrub(t *testing.T) {
	start := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name string
		st   admin.Status
		want []string
	}{
		{"disabled", admin.Status{ExpiredUploads: 3}, []string{"Scrub: disabled", "aborted since start: 3"}},
		{"first pass", admin.Status{Scrub: admin.ScrubStatus{
			Enabled: true, IntervalSeconds: 3600, Running: true, PassStarted: start,
			PassShardsTotal: 10, PassShardsChecked: 5, PassBytesTotal: 1000, PassBytesChecked: 250,
			ShardsChecked: 5, BytesChecked: 250, CorruptShards: 1, RepairedShards: 1,
		}}, []string{"a pass every 1h0m0s", "5 shards (250 B) checked", "1 corrupt", "1 rebuilt", "5 of 10 shards, 25.0%", "no full pass yet"}},
		{"between passes", admin.Status{Scrub: admin.ScrubStatus{
			Enabled: true, IntervalSeconds: 60, Passes: 2, LastPassStarted: start, LastPassFinished: start.Add(90 * time.Second),
			LastError: "drive gone",
		}}, []string{"last full pass", "(1m30s)", "last error: drive gone"}},
	} {
		var b strings.Builder
		printScrub(&b, tc.st)
		for _, w := range tc.want {
			if !strings.Contains(b.String(), w) {
				t.Errorf("%s: output lacks %q:\n%s", tc.name, w, b.String())
			}
		}
	}
}
