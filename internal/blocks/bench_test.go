package blocks

import (
	"bytes"
	"context"
	"io"
	"math/rand/v2"
	"testing"

	"github.com/redoubt-io/redoubt/internal/placement"
	"github.com/redoubt-io/redoubt/internal/store"
)

func benchEnv(b *testing.B) *env {
	e := newEnv(b, 4, placement.Policy{K: 2, M: 2})
	e.cfg.ChunkSize = 1 << 20
	e.scfg = store.DefaultConfig()
	e.reopen()
	return e
}

func benchData(n int) []byte {
	rng := rand.New(rand.NewPCG(1, 2))
	return randBytes(rng, n)
}

func BenchmarkWrite64MiB(b *testing.B) {
	e := benchEnv(b)
	data := benchData(64 << 20)
	ctx := context.Background()
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	for b.Loop() {
		ref, err := e.set.Write(ctx, 0, bytes.NewReader(data))
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		e.set.Delete(ctx, ref)
		b.StartTimer()
	}
}

func BenchmarkOpen64MiB(b *testing.B)         { benchOpen(b, 64<<20, false) }
func BenchmarkOpen64MiBDegraded(b *testing.B) { benchOpen(b, 64<<20, true) }

// benchOpen writes size bytes once, then reads them back whole per
// iteration; degraded first loses the drive of data shard 0, so that every
// chunk is reconstructed.
func benchOpen(b *testing.B, size int, degraded bool) {
	e := benchEnv(b)
	data := benchData(size)
	ctx := context.Background()
	ref, err := e.set.Write(ctx, 0, bytes.NewReader(data))
	if err != nil {
		b.Fatal(err)
	}
	if degraded {
		if err := e.set.Delete(ctx, Ref{ID: ref.ID, K: 1, M: 0, Mirror: true, ChunkSize: 1, Drives: ref.Drives[:1]}); err != nil {
			b.Fatal(err)
		}
	}
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		rc, err := e.set.Open(ctx, ref, 0, -1)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := io.Copy(io.Discard, rc); err != nil {
			b.Fatal(err)
		}
		rc.Close()
	}
}

func BenchmarkWrite4KiB(b *testing.B) {
	e := benchEnv(b)
	data := benchData(4 << 10)
	ctx := context.Background()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := e.set.Write(ctx, 0, bytes.NewReader(data)); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkOpen4KiB(b *testing.B) { benchOpen(b, 4<<10, false) }

func BenchmarkOpenRange4KiBOf64MiB(b *testing.B) {
	e := benchEnv(b)
	data := benchData(64 << 20)
	ctx := context.Background()
	ref, err := e.set.Write(ctx, 0, bytes.NewReader(data))
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(4 << 10)
	off := int64(0)
	for b.Loop() {
		rc, err := e.set.Open(ctx, ref, off, 4<<10)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := io.Copy(io.Discard, rc); err != nil {
			b.Fatal(err)
		}
		rc.Close()
		off = (off + 12345*4096) % (60 << 20)
	}
}
