package objects

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/redoubt-io/redoubt/internal/meta"
)

// The PUT and GET benchmarks measure the object layer on the single-node
// metadata store (meta.Local, three replicas on temporary directories) with
// 4 KiB objects, stored inline as a single node stores them. Besides the
// wall time they report cpu-ns/op, the process's CPU time per operation:
// on a machine shared with other work it moves far less than ns/op, so
// compare two trees by it (BENCHMARKS.md).

func benchService(b *testing.B) *Service {
	b.Helper()
	l, err := meta.OpenLocal(meta.DefaultLocalConfig(b.TempDir(), b.TempDir(), b.TempDir()))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { l.Close() })
	s, err := New(DefaultConfig(), l, newMemBlocks(), nil)
	if err != nil {
		b.Fatal(err)
	}
	if err := s.CreateBucket(context.Background(), "bench"); err != nil {
		b.Fatal(err)
	}
	return s
}

// processCPU is the CPU time (user and system) this process has used.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// runParallel runs op from 16 goroutines, as 16 clients in flight do,
// and reports the CPU time per call.
func runParallel(b *testing.B, op func(i uint64) error) {
	var n atomic.Uint64
	b.SetParallelism(8)
	cpu0 := processCPU(b)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := op(n.Add(1)); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	b.ReportMetric(float64(processCPU(b)-cpu0)/float64(b.N), "cpu-ns/op")
}

func BenchmarkPutObject4K(b *testing.B) {
	s := benchService(b)
	body := bytes.Repeat([]byte{7}, 4096)
	ctx := context.Background()
	runParallel(b, func(i uint64) error {
		_, err := s.PutObject(ctx, "bench", fmt.Sprintf("obj/%09d", i), bytes.NewReader(body), int64(len(body)), PutOptions{})
		return err
	})
}

func BenchmarkGetObject4K(b *testing.B) {
	s := benchService(b)
	body := bytes.Repeat([]byte{7}, 4096)
	ctx := context.Background()
	const objects = 1000
	for i := range objects {
		if _, err := s.PutObject(ctx, "bench", fmt.Sprintf("obj/%09d", i), bytes.NewReader(body), int64(len(body)), PutOptions{}); err != nil {
			b.Fatal(err)
		}
	}
	runParallel(b, func(i uint64) error {
		_, rc, err := s.GetObject(ctx, "bench", fmt.Sprintf("obj/%09d", i%objects), GetOptions{})
		if err != nil {
			return err
		}
		n, err := io.Copy(io.Discard, rc)
		rc.Close()
		if err == nil && n != int64(len(body)) {
			err = fmt.Errorf("read %d bytes, want %d", n, len(body))
		}
		return err
	})
}
