package store

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// bindEnv is one drive with small blocks and three shards of equal data:
// A.0, A.1 (same ref, other index) and B.0 (another ref, same index).
// Equal data means that only the binding of a file to its name can tell
// them apart.
type bindEnv struct {
	d       *Drive
	data    []byte
	a0, a1  Name
	b0      Name
	nblocks int
}

func newBindEnv(t *testing.T) *bindEnv {
	cfg := DefaultConfig()
	cfg.BlockSize = 512
	cfg.WriteBuffer = 1024
	e := &bindEnv{d: openDrives(t, cfg, tempPaths(t, 1))[0]}
	// Four blocks of the same bytes, the last one short.
	e.data = bytes.Repeat([]byte("redoubt "), 3*512/8+40)
	e.nblocks = 4
	a, b := NewID(), NewID()
	e.a0, e.a1, e.b0 = Name{ID: a, Shard: 0}, Name{ID: a, Shard: 1}, Name{ID: b, Shard: 0}
	for _, n := range []Name{e.a0, e.a1, e.b0} {
		writeShard(t, e.d, n, e.data)
	}
	return e
}

func (e *bindEnv) path(t *testing.T, n Name) string {
	p, err := e.d.shardPath(n)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func (e *bindEnv) file(t *testing.T, n Name) []byte {
	b, err := os.ReadFile(e.path(t, n))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func (e *bindEnv) put(t *testing.T, n Name, b []byte) {
	if err := os.WriteFile(e.path(t, n), b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// readAll opens n and reads it whole, then verifies it.
func (e *bindEnv) readAll(n Name) ([]byte, error) {
	ctx := context.Background()
	r, err := e.d.OpenShard(ctx, n)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	got, err := io.ReadAll(io.NewSectionReader(r, 0, r.Size()))
	if err != nil {
		return got, err
	}
	_, err = r.Verify(ctx)
	return got, err
}

// A well-formed file of another shard under this shard's name — the
// other index of the same ref, or the same index of another ref — is
// refused when opened, with an error that says whose it is.
func TestMisplacedFileRefusedOnOpen(t *testing.T) {
	e := newBindEnv(t)
	for _, from := range []Name{e.a1, e.b0} {
		t.Run(from.String(), func(t *testing.T) {
			orig := e.file(t, e.a0)
			defer e.put(t, e.a0, orig)
			e.put(t, e.a0, e.file(t, from))
			before := e.d.Stats().CorruptBlocks
			_, err := e.d.OpenShard(context.Background(), e.a0)
			if !errors.Is(err, ErrMisplaced) || !errors.Is(err, ErrCorrupt) {
				t.Fatalf("open %s holding %s: %v, want ErrMisplaced and ErrCorrupt", e.a0, from, err)
			}
			var me *MisplacedError
			if !errors.As(err, &me) || me.Want != e.a0 || me.Found != from || me.Drive != e.d.Path() {
				t.Fatalf("error %v: want a MisplacedError from %s to %s", err, from, e.a0)
			}
			if e.d.Stats().CorruptBlocks == before {
				t.Error("misplaced file not counted as corruption")
			}
			if e.d.State() != Online {
				t.Error("a misplaced file must not fail the drive")
			}
		})
	}
	if got, err := e.readAll(e.a0); err != nil || !bytes.Equal(got, e.data) {
		t.Fatalf("restored file: %v", err)
	}
}

// A block copied from another file at the same position, or from another
// position of the same file, fails its checksum although its bytes are
// the same bytes: the checksum binds ref ID, shard index and block number.
func TestBlockFromElsewhereFails(t *testing.T) {
	e := newBindEnv(t)
	per := 512 + crcSize
	blk := func(b []byte, i int) []byte { return b[HeaderSize+i*per : HeaderSize+(i+1)*per] }
	orig := e.file(t, e.a0)
	cases := map[string]func() []byte{
		"same block of another ref": func() []byte {
			out := bytes.Clone(orig)
			copy(blk(out, 1), blk(e.file(t, e.b0), 1))
			return out
		},
		"same block of another shard index": func() []byte {
			out := bytes.Clone(orig)
			copy(blk(out, 1), blk(e.file(t, e.a1), 1))
			return out
		},
		"another block of the same file": func() []byte {
			out := bytes.Clone(orig)
			copy(blk(out, 1), blk(orig, 2))
			return out
		},
	}
	for what, mutate := range cases {
		t.Run(what, func(t *testing.T) {
			mut := mutate()
			if bytes.Equal(mut, orig) {
				t.Fatal("test bug: the copied block is byte-identical, checksum included")
			}
			e.put(t, e.a0, mut)
			defer e.put(t, e.a0, orig)
			r, err := e.d.OpenShard(context.Background(), e.a0)
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			if _, err := r.ReadAt(make([]byte, 512), 0); err != nil {
				t.Fatalf("block 0, untouched: %v", err)
			}
			if _, err := r.ReadAt(make([]byte, 512), 512); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("block 1: got %v, want ErrCorrupt", err)
			}
			if bad, err := r.Verify(context.Background()); bad != 1 || !errors.Is(err, ErrCorrupt) {
				t.Fatalf("verify: %d bad blocks, %v; want 1", bad, err)
			}
		})
	}
}

// Rewriting the header of another shard's file to name this shard does
// not make its blocks pass: every block fails.
func TestRewrittenHeaderFailsEveryBlock(t *testing.T) {
	e := newBindEnv(t)
	for _, from := range []Name{e.a1, e.b0} {
		t.Run(from.String(), func(t *testing.T) {
			f := e.file(t, from)
			h, err := DecodeHeader(f)
			if err != nil {
				t.Fatal(err)
			}
			h.ID, h.Shard = e.a0.ID, e.a0.Shard
			h.encode(f)
			orig := e.file(t, e.a0)
			defer e.put(t, e.a0, orig)
			e.put(t, e.a0, f)
			r, err := e.d.OpenShard(context.Background(), e.a0)
			if err != nil {
				t.Fatalf("the rewritten header should pass, the blocks not: %v", err)
			}
			defer r.Close()
			if bad, err := r.Verify(context.Background()); bad != e.nblocks || !errors.Is(err, ErrCorrupt) {
				t.Fatalf("verify: %d of %d blocks bad, %v", bad, e.nblocks, err)
			}
			if _, err := r.ReadAt(make([]byte, 10), 1000); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("read: %v, want ErrCorrupt", err)
			}
		})
	}
}

// A file cut short, at a block boundary or inside a block, is corrupt.
func TestTruncatedShardFile(t *testing.T) {
	e := newBindEnv(t)
	orig := e.file(t, e.a0)
	per := 512 + crcSize
	for _, size := range []int{0, 10, HeaderSize - 1, HeaderSize, HeaderSize + per, HeaderSize + per + 7, len(orig) - 1} {
		e.put(t, e.a0, orig[:size])
		if _, err := e.readAll(e.a0); !errors.Is(err, ErrCorrupt) {
			t.Errorf("cut to %d of %d bytes: %v, want ErrCorrupt", size, len(orig), err)
		}
	}
}

// legacyData is the content of testdata/v1-*.2, a shard file written by
// the format 1 writer (block size 512).
func legacyData() []byte {
	b := make([]byte, 1300)
	for i := range b {
		b[i] = byte(i*31 + i/7)
	}
	return b
}

const legacyID = "0123456789abcdef0123456789abcdef"

// Shard files of format 1, written before files were bound to their
// shard, are read and verified block by block as before. What they cannot
// show is whose shard they are: under another name they are accepted.
func TestLegacyShardStillReadable(t *testing.T) {
	fixture, err := os.ReadFile(filepath.Join("testdata", "v1-"+legacyID+".2"))
	if err != nil {
		t.Fatal(err)
	}
	e := newBindEnv(t)
	install := func(n Name, b []byte) {
		t.Helper()
		if err := e.d.mkdirs(n); err != nil {
			t.Fatal(err)
		}
		e.put(t, n, b)
	}
	name := Name{ID: legacyID, Shard: 2}
	install(name, fixture)
	got, err := e.readAll(name)
	if err != nil || !bytes.Equal(got, legacyData()) {
		t.Fatalf("format 1 shard: %d bytes, %v", len(got), err)
	}
	r, err := e.d.OpenShard(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	if h := r.Header(); h.Version != 1 || h.ID != "" || h.Size() != 32 {
		t.Errorf("header %+v", h)
	}
	r.Close()

	t.Run("blocks still checked", func(t *testing.T) {
		for _, off := range []int{40, 32 + 516 + 3, len(fixture) - 2} {
			bad := bytes.Clone(fixture)
			bad[off] ^= 0x10
			install(name, bad)
			if _, err := e.readAll(name); !errors.Is(err, ErrCorrupt) {
				t.Errorf("byte %d flipped: %v, want ErrCorrupt", off, err)
			}
		}
		install(name, fixture[:len(fixture)-1])
		if _, err := e.readAll(name); !errors.Is(err, ErrCorrupt) {
			t.Errorf("truncated: %v", err)
		}
		install(name, fixture)
	})
	t.Run("whose shard it is cannot be checked", func(t *testing.T) {
		other := Name{ID: legacyID, Shard: 3}
		install(other, fixture)
		if got, err := e.readAll(other); err != nil || !bytes.Equal(got, legacyData()) {
			t.Errorf("format 1 file under another name: %v", err)
		}
	})
	t.Run("a new write of the name is format 2", func(t *testing.T) {
		writeShard(t, e.d, name, legacyData())
		r, err := e.d.OpenShard(context.Background(), name)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		if h := r.Header(); h.Version != ShardFormat || h.ID != legacyID || h.Shard != 2 {
			t.Errorf("rewritten header %+v", h)
		}
	})
}

// Per-block checksums under each format, for the cost of the binding.
func BenchmarkBlockSum64KiB(b *testing.B) {
	block := make([]byte, 64<<10)
	for i := range block {
		block[i] = byte(i * 7)
	}
	for _, c := range []struct {
		name string
		seed uint32
	}{{"format1", 0}, {"format2", bindSeed(Name{ID: NewID() + "00000001", Shard: 5})}} {
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(int64(len(block)))
			var idx int64
			for b.Loop() {
				blockSum(c.seed, idx, block)
				idx++
			}
		})
	}
	// What format 2 adds once per file opened or written.
	b.Run("seed", func(b *testing.B) {
		n := Name{ID: NewID() + "00000001", Shard: 5}
		for b.Loop() {
			bindSeed(n)
		}
	})
}
