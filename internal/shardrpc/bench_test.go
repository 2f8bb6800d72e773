package shardrpc

import (
	"context"
	"math/rand/v2"
	"testing"

	"github.com/redoubt-io/redoubt/internal/store"
)

// The fake caller copies each message once each way, as a transport does;
// the figures are the cost of this package plus the store, without network.

func benchWrite(b *testing.B, d Drive) {
	ctx := context.Background()
	data := randomBytes(rand.New(rand.NewPCG(1, 2)), 8<<20)
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		name := store.Name{ID: store.NewID(), Shard: 0}
		w, err := d.Create(ctx, name)
		if err != nil {
			b.Fatal(err)
		}
		for p := data; len(p) > 0; p = p[1<<20:] {
			if _, err := w.Write(p[:1<<20]); err != nil {
				b.Fatal(err)
			}
		}
		if err := w.Commit(ctx); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if err := d.Remove(ctx, name); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
}

func BenchmarkRemoteWrite(b *testing.B) {
	f := newFixture(b, 1, DefaultServerConfig())
	benchWrite(b, f.remote[0])
}

func BenchmarkLocalWrite(b *testing.B) {
	f := newFixture(b, 1, DefaultServerConfig())
	benchWrite(b, LocalDrive{f.drives[0]})
}

func benchRead(b *testing.B, size int) {
	f := newFixture(b, 1, DefaultServerConfig())
	ctx := context.Background()
	name := store.Name{ID: store.NewID(), Shard: 0}
	writeRemote(b, f.remote[0], name, randomBytes(rand.New(rand.NewPCG(1, 2)), 8<<20), 1<<20)
	for _, c := range []struct {
		name string
		d    Drive
	}{{"remote", f.remote[0]}, {"local", LocalDrive{f.drives[0]}}} {
		b.Run(c.name, func(b *testing.B) {
			r, err := c.d.OpenShard(ctx, name)
			if err != nil {
				b.Fatal(err)
			}
			defer r.Close()
			p := make([]byte, size)
			b.SetBytes(int64(size))
			i := 0
			for b.Loop() {
				off := int64(i*size) % (8<<20 - int64(size))
				if _, err := r.ReadAt(p, off); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
	// What the server does per read call: open, read, close.
	b.Run("local-open-per-read", func(b *testing.B) {
		p := make([]byte, size)
		b.SetBytes(int64(size))
		i := 0
		for b.Loop() {
			r, err := f.drives[0].OpenShard(ctx, name)
			if err != nil {
				b.Fatal(err)
			}
			off := int64(i*size) % (8<<20 - int64(size))
			if _, err := r.ReadAt(p, off); err != nil {
				b.Fatal(err)
			}
			r.Close()
			i++
		}
	})
}

func BenchmarkRead1MiB(b *testing.B) { benchRead(b, 1<<20) }

// BenchmarkRead4KiB shows the cost of opening the shard per remote call
// against a local reader kept open.
func BenchmarkRead4KiB(b *testing.B) { benchRead(b, 4<<10) }
