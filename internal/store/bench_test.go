package store

import (
	"context"
	"hash/crc32"
	"io"
	"testing"

	"github.com/zeebo/blake3"
	"github.com/zeebo/xxh3"
)

// The checksum is chosen by these figures; see the package doc.
func BenchmarkChecksum64KiB(b *testing.B) {
	block := make([]byte, 64<<10)
	for i := range block {
		block[i] = byte(i * 7)
	}
	b.Run("crc32c", func(b *testing.B) {
		b.SetBytes(int64(len(block)))
		for b.Loop() {
			crc32.Checksum(block, castagnoli)
		}
	})
	b.Run("xxh3", func(b *testing.B) {
		b.SetBytes(int64(len(block)))
		for b.Loop() {
			xxh3.Hash(block)
		}
	})
	b.Run("blake3", func(b *testing.B) {
		b.SetBytes(int64(len(block)))
		for b.Loop() {
			blake3.Sum256(block)
		}
	})
}

func BenchmarkShardWrite16MiB(b *testing.B) {
	d := openDrives(b, DefaultConfig(), tempPaths(b, 1))[0]
	data := make([]byte, 1<<20)
	ctx := context.Background()
	b.SetBytes(16 << 20)
	for b.Loop() {
		w, err := d.Create(ctx, Name{ID: NewID()})
		if err != nil {
			b.Fatal(err)
		}
		for range 16 {
			w.Write(data)
		}
		if err := w.Commit(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkShardRead16MiB(b *testing.B) {
	d := openDrives(b, DefaultConfig(), tempPaths(b, 1))[0]
	data := make([]byte, 1<<20)
	ctx := context.Background()
	name := Name{ID: NewID()}
	w, _ := d.Create(ctx, name)
	for range 16 {
		w.Write(data)
	}
	if err := w.Commit(ctx); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(16 << 20)
	for b.Loop() {
		r, err := d.OpenShard(ctx, name)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := io.CopyBuffer(io.Discard, io.NewSectionReader(r, 0, r.Size()), data); err != nil {
			b.Fatal(err)
		}
		r.Close()
	}
}
