package transport

import (
	"context"
	"log/slog"
	"slices"
	"testing"
	"time"
)

func benchPair(b *testing.B) (*Net, *Net) {
	cfg := func() Config {
		c := DefaultConfig()
		c.Identity = newIdentity(b)
		c.Secret = testSecret
		c.Logger = slog.New(slog.DiscardHandler)
		return c
	}
	a, s := start(b, cfg()), start(b, cfg())
	s.Handle("echo", echo)
	return a, s
}

// BenchmarkCall4KiB measures one caller's round trips of a 4 KiB request
// and answer over loopback; it reports the median latency.
func BenchmarkCall4KiB(b *testing.B) {
	a, s := benchPair(b)
	req := make([]byte, 4<<10)
	ctx := context.Background()
	if _, err := a.Call(ctx, peerOf(s), "echo", req); err != nil {
		b.Fatal(err)
	}
	lat := make([]time.Duration, 0, b.N)
	b.SetBytes(int64(2 * len(req)))
	b.ResetTimer()
	for b.Loop() {
		t0 := time.Now()
		if _, err := a.Call(ctx, peerOf(s), "echo", req); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(t0))
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
	b.ReportMetric(float64(len(lat))/b.Elapsed().Seconds(), "calls/s")
}

// BenchmarkCall4KiBParallel shares one connection among many callers, the
// way Raft groups and shard I/O share a peer's connection.
func BenchmarkCall4KiBParallel(b *testing.B) {
	a, s := benchPair(b)
	req := make([]byte, 4<<10)
	ctx := context.Background()
	if _, err := a.Call(ctx, peerOf(s), "echo", req); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(2 * len(req)))
	b.SetParallelism(16)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := a.Call(ctx, peerOf(s), "echo", req); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "calls/s")
}
