package meta

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"testing"
)

// BenchmarkLocalCommit measures commits of one 200-byte put from 16
// goroutines, which share fsyncs. The commits/s metric is the figure to
// compare with the object PUT rate the store must sustain.
func BenchmarkLocalCommit(b *testing.B) {
	for _, replicas := range []int{1, 3} {
		for _, size := range []int{200, 4096} {
			b.Run(fmt.Sprintf("replicas=%d/value=%d", replicas, size), func(b *testing.B) {
				l := benchLocal(b, replicas)
				// Incompressible, as object data mostly is.
				value := make([]byte, size)
				rng := rand.New(rand.NewPCG(1, uint64(size)))
				for i := range value {
					value[i] = byte(rng.Uint32())
				}
				var n atomic.Uint64
				b.SetParallelism(8) // 16 goroutines on 2 cores
				b.ResetTimer()
				b.RunParallel(func(pb *testing.PB) {
					ctx := context.Background()
					for pb.Next() {
						i := n.Add(1)
						k := []byte(fmt.Sprintf("bucket/object-%010d", i))
						if _, err := l.Commit(ctx, Partition(i%64), Txn{Conds: []Cond{{Key: k}}, Puts: []KV{{Key: k, Value: value}}}); err != nil {
							b.Error(err)
							return
						}
					}
				})
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "commits/s")
			})
		}
	}
}

func BenchmarkLocalGet(b *testing.B) {
	l := benchLocal(b, 3)
	const keys = 10000
	fillBench(b, l, keys)
	ctx := context.Background()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		k := []byte(fmt.Sprintf("k%06d", i%keys))
		if _, err := l.Get(ctx, 7, k); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkLocalScan measures a listing page: 100 keys from a random start.
func BenchmarkLocalScan(b *testing.B) {
	l := benchLocal(b, 3)
	const keys = 10000
	fillBench(b, l, keys)
	ctx := context.Background()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		start := []byte(fmt.Sprintf("k%06d", (i*7919)%(keys-100)))
		n := 0
		if err := l.Scan(ctx, 7, start, nil, func([]byte, Item) bool { n++; return n < 100 }); err != nil {
			b.Fatal(err)
		}
	}
}

func benchLocal(b *testing.B, replicas int) *Local {
	var dirs []string
	for range replicas {
		dirs = append(dirs, b.TempDir())
	}
	l, err := OpenLocal(DefaultLocalConfig(dirs...))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { l.Close() })
	return l
}

func fillBench(b *testing.B, l *Local, keys int) {
	value := make([]byte, 200)
	for i := 0; i < keys; i += 100 {
		var txn Txn
		for j := i; j < i+100; j++ {
			txn.Puts = append(txn.Puts, KV{Key: []byte(fmt.Sprintf("k%06d", j)), Value: value})
		}
		if _, err := l.Commit(context.Background(), 7, txn); err != nil {
			b.Fatal(err)
		}
	}
}
