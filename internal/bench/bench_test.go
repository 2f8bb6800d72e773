package bench

import (
	"fmt"
	"log/slog"
	"net/http/httptest"
	"os"
	"testing"
	"time"
)

// BenchmarkGenerator measures how fast the generator can drive the
// in-process fake server, which bounds what a run can report on this
// machine. Run with -benchtime 1x; each iteration is a 2 s run. With
// REDOUBT_BENCH_ENDPOINT set (and REDOUBT_BENCH_ACCESS_KEY,
// REDOUBT_BENCH_SECRET_KEY if it checks signatures) it drives that
// endpoint instead, so a profile shows the generator alone.
func BenchmarkGenerator(b *testing.B) {
	for _, tc := range []struct {
		op       Op
		size     int64
		checksum ChecksumMode
		unsigned bool
	}{
		{OpPut, 4 << 10, ChecksumWhenSupported, false},
		{OpPut, 4 << 10, ChecksumWhenRequired, true},
		{OpGet, 4 << 10, ChecksumWhenSupported, false},
		{OpPut, 1 << 20, ChecksumWhenSupported, false},
		{OpPut, 1 << 20, ChecksumWhenRequired, true},
		{OpGet, 1 << 20, ChecksumWhenSupported, false},
	} {
		name := fmt.Sprintf("%s/%s/%s/unsigned=%v", tc.op, FormatSize(tc.size), tc.checksum, tc.unsigned)
		b.Run(name, func(b *testing.B) {
			cfg := DefaultConfig()
			cfg.AccessKey, cfg.SecretKey = "bench", "bench-secret"
			if ep := os.Getenv("REDOUBT_BENCH_ENDPOINT"); ep != "" {
				cfg.Endpoint = ep
				if ak := os.Getenv("REDOUBT_BENCH_ACCESS_KEY"); ak != "" {
					cfg.AccessKey, cfg.SecretKey = ak, os.Getenv("REDOUBT_BENCH_SECRET_KEY")
				}
			} else {
				srv := httptest.NewServer(newFakeS3(nil))
				defer srv.Close()
				cfg.Endpoint = srv.URL
			}
			cfg.Op, cfg.ObjectSize, cfg.Checksum, cfg.UnsignedPayload = tc.op, tc.size, tc.checksum, tc.unsigned
			cfg.Concurrency = 16
			cfg.Objects = 64
			cfg.Duration = 2 * time.Second
			cfg.Logger = slog.New(slog.DiscardHandler)
			var res Result
			for b.Loop() {
				var err error
				if res, err = Run(b.Context(), cfg, nil); err != nil || res.Total.Errors > 0 {
					b.Fatalf("run: %v, errors %v", err, res.Errors)
				}
			}
			b.ReportMetric(res.Total.OpsPerSec, "ops/s")
			b.ReportMetric(res.Total.MiBPerSec, "MiB/s")
			b.ReportMetric(float64(res.Total.Latency.P50.Microseconds()), "p50-µs")
		})
	}
}
