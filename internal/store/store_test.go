package store

import (
	"bytes"
	"context"
	"errors"
	"github.com/redoubt-io/redoubt/internal/testlog"
	"io"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(testlog.Writer(t), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func seeded(t testing.TB) *rand.Rand {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	return rand.New(rand.NewPCG(seed, seed))
}

func openDrives(t testing.TB, cfg Config, paths []string) []*Drive {
	t.Helper()
	ds, err := Open(context.Background(), cfg, paths, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	return ds
}

func tempPaths(t testing.TB, n int) []string {
	root := t.TempDir()
	ps := make([]string, n)
	for i := range ps {
		ps[i] = filepath.Join(root, "d"+string(rune('0'+i)))
	}
	return ps
}

func writeShard(t testing.TB, d *Drive, name Name, data []byte) {
	t.Helper()
	ctx := context.Background()
	w, err := d.Create(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	// Uneven writes exercise block boundaries.
	for p := data; len(p) > 0; {
		n := min(len(p), 1+len(p)%7777)
		if _, err := w.Write(p[:n]); err != nil {
			t.Fatal(err)
		}
		p = p[n:]
	}
	if err := w.Commit(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestFormatAndReopen(t *testing.T) {
	paths := tempPaths(t, 4)
	ds := openDrives(t, DefaultConfig(), paths)
	ids := map[string]bool{}
	for i, d := range ds {
		if d.Slot() != i || d.State() != Online || d.NeedsRepair() {
			t.Fatalf("drive %d: slot %d state %v repair %v", i, d.Slot(), d.State(), d.NeedsRepair())
		}
		ids[d.ID()] = true
	}
	if len(ids) != 4 {
		t.Fatal("drive IDs not distinct")
	}
	// A leftover temp file is removed at start.
	stale := filepath.Join(paths[0], tmpDir, "stale")
	if err := os.WriteFile(stale, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	again := openDrives(t, DefaultConfig(), paths)
	for i := range ds {
		if again[i].ID() != ds[i].ID() || again[i].SetID() != ds[0].SetID() {
			t.Fatalf("drive %d changed identity on reopen", i)
		}
	}
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Fatalf("stale temp file survived start: %v", err)
	}
	// Drives listed in another order keep their identity.
	rev := []string{paths[3], paths[2], paths[1], paths[0]}
	ro := openDrives(t, DefaultConfig(), rev)
	if ro[0].ID() != ds[3].ID() {
		t.Fatal("reordered drive lost its identity")
	}
}

func TestReplacementDrive(t *testing.T) {
	paths := tempPaths(t, 4)
	ds := openDrives(t, DefaultConfig(), paths)
	if err := os.RemoveAll(paths[2]); err != nil {
		t.Fatal(err)
	}
	// Missing directory: failed, keeps its ID.
	ds2 := openDrives(t, DefaultConfig(), paths)
	if ds2[2].State() != Failed || ds2[2].ID() != ds[2].ID() {
		t.Fatalf("missing drive: state %v id %s", ds2[2].State(), ds2[2].ID())
	}
	// Empty directory: adopted as slot 2 with the old ID, needs repair.
	if err := os.Mkdir(paths[2], 0o755); err != nil {
		t.Fatal(err)
	}
	ds3 := openDrives(t, DefaultConfig(), paths)
	if d := ds3[2]; d.State() != Online || d.ID() != ds[2].ID() || d.Slot() != 2 || !d.NeedsRepair() {
		t.Fatalf("replacement: state %v id %s slot %d repair %v", d.State(), d.ID(), d.Slot(), d.NeedsRepair())
	}
	// The flag survives a restart until cleared.
	ds4 := openDrives(t, DefaultConfig(), paths)
	if !ds4[2].NeedsRepair() {
		t.Fatal("needs-repair flag lost on restart")
	}
	if err := ds4[2].ClearNeedsRepair(); err != nil {
		t.Fatal(err)
	}
	if openDrives(t, DefaultConfig(), paths)[2].NeedsRepair() {
		t.Fatal("needs-repair flag not cleared")
	}
}

func TestOpenRefusesForeignData(t *testing.T) {
	paths := tempPaths(t, 2)
	openDrives(t, DefaultConfig(), paths)
	os.Remove(filepath.Join(paths[1], markerName))
	os.WriteFile(filepath.Join(paths[1], "someone-elses-file"), []byte("x"), 0o644)
	if _, err := Open(context.Background(), DefaultConfig(), paths, testLogger(t)); !errors.Is(err, ErrFormat) {
		t.Fatalf("non-empty unmarked drive: got %v, want ErrFormat", err)
	}
	other := tempPaths(t, 2)
	openDrives(t, DefaultConfig(), other)
	if _, err := Open(context.Background(), DefaultConfig(), []string{paths[0], other[0]}, testLogger(t)); !errors.Is(err, ErrFormat) {
		t.Fatalf("mixed sets: got %v, want ErrFormat", err)
	}
}

func TestShardRoundTrip(t *testing.T) {
	rng := seeded(t)
	cfg := DefaultConfig()
	cfg.BlockSize = 4096
	cfg.WriteBuffer = 3 * 4096
	d := openDrives(t, cfg, tempPaths(t, 1))[0]
	ctx := context.Background()
	for _, size := range []int{0, 1, 4095, 4096, 4097, 3 * 4096, 3*4096 + 5, 100_000} {
		data := make([]byte, size)
		for i := range data {
			data[i] = byte(rng.Uint32())
		}
		name := Name{ID: NewID(), Shard: size % 256}
		writeShard(t, d, name, data)
		r, err := d.OpenShard(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		if r.Size() != int64(size) {
			t.Fatalf("size %d, want %d", r.Size(), size)
		}
		all, err := io.ReadAll(io.NewSectionReader(r, 0, r.Size()))
		if err != nil || !bytes.Equal(all, data) {
			t.Fatalf("size %d: full read differs (err %v)", size, err)
		}
		for range 50 {
			if size == 0 {
				break
			}
			off := rng.IntN(size)
			n := rng.IntN(size - off + 1)
			p := make([]byte, n)
			got, err := r.ReadAt(p, int64(off))
			if err != nil && !(errors.Is(err, io.EOF) && off+n == size) {
				t.Fatalf("ReadAt(%d, %d): %v", n, off, err)
			}
			if got != n || !bytes.Equal(p, data[off:off+n]) {
				t.Fatalf("ReadAt(%d, %d) = %d bytes, differ", n, off, got)
			}
		}
		if _, err := r.Verify(ctx); err != nil {
			t.Fatal(err)
		}
		r.Close()
	}
	if s := d.Stats(); s.ShardsRead != 8 || s.TotalBytes == 0 {
		t.Fatalf("stats %+v", s)
	}
}

// Every single flipped byte anywhere in a shard file is caught.
func TestEveryFlippedByteDetected(t *testing.T) {
	cfg := DefaultConfig()
	cfg.BlockSize = 512
	cfg.WriteBuffer = 1024
	d := openDrives(t, cfg, tempPaths(t, 1))[0]
	ctx := context.Background()
	data := bytes.Repeat([]byte("redoubt!"), 200) // 1600 bytes: 4 blocks, last short
	name := Name{ID: NewID(), Shard: 1}
	writeShard(t, d, name, data)
	path, _ := d.shardPath(name)
	orig, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for i := range orig {
		mut := bytes.Clone(orig)
		mut[i] ^= 0x5a
		if err := os.WriteFile(path, mut, 0o644); err != nil {
			t.Fatal(err)
		}
		r, err := d.OpenShard(ctx, name)
		if err == nil {
			_, err = r.ReadAt(make([]byte, len(data)), 0)
			r.Close()
		}
		if !errors.Is(err, ErrCorrupt) {
			t.Fatalf("flipped byte %d of %d: got %v, want ErrCorrupt", i, len(orig), err)
		}
	}
	// Truncation too.
	if err := os.WriteFile(path, orig[:len(orig)-1], 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := d.OpenShard(ctx, name); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("truncated: got %v", err)
	}
	if d.Stats().CorruptBlocks == 0 {
		t.Fatal("corruption not counted")
	}
	if d.State() != Online {
		t.Fatal("corruption must not fail the drive")
	}
}

func TestNotFoundAndNames(t *testing.T) {
	d := openDrives(t, DefaultConfig(), tempPaths(t, 1))[0]
	ctx := context.Background()
	if _, err := d.OpenShard(ctx, Name{ID: NewID()}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("got %v, want ErrNotFound", err)
	}
	for _, n := range []Name{{ID: "../../etc/passwd"}, {ID: "ABCDEF0123"}, {ID: "abc"}, {ID: NewID(), Shard: 256}, {ID: NewID(), Shard: -1}, {ID: "0123456789/abcdef"}} {
		if _, err := d.Create(ctx, n); !errors.Is(err, ErrInvalidName) {
			t.Errorf("Create(%q) = %v, want ErrInvalidName", n, err)
		}
		if _, err := d.OpenShard(ctx, n); !errors.Is(err, ErrInvalidName) {
			t.Errorf("OpenShard(%q) = %v, want ErrInvalidName", n, err)
		}
	}
	name := Name{ID: NewID(), Shard: 3}
	writeShard(t, d, name, []byte("x"))
	if err := d.Remove(ctx, name); err != nil {
		t.Fatal(err)
	}
	if err := d.Remove(ctx, name); err != nil {
		t.Fatalf("second remove: %v", err)
	}
}

func TestUncommittedInvisible(t *testing.T) {
	d := openDrives(t, DefaultConfig(), tempPaths(t, 1))[0]
	ctx := context.Background()
	name := Name{ID: NewID()}
	w, err := d.Create(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("pending"))
	if _, err := d.OpenShard(ctx, name); !errors.Is(err, ErrNotFound) {
		t.Fatalf("uncommitted shard visible: %v", err)
	}
	w.Abort()
	ents, _ := os.ReadDir(d.tmpPath())
	if len(ents) != 0 {
		t.Fatalf("abort left %d temp files", len(ents))
	}
}

func TestDriveVanishesAndReturns(t *testing.T) {
	paths := tempPaths(t, 2)
	ds := openDrives(t, DefaultConfig(), paths)
	d := ds[0]
	ctx := context.Background()
	name := Name{ID: NewID()}
	writeShard(t, d, name, []byte("hello"))
	hidden := paths[0] + ".away"
	if err := os.Rename(paths[0], hidden); err != nil {
		t.Fatal(err)
	}
	if _, err := d.OpenShard(ctx, name); !errors.Is(err, ErrDriveFailed) {
		t.Fatalf("read on vanished drive: %v, want ErrDriveFailed", err)
	}
	if d.State() != Failed {
		t.Fatal("drive not marked failed")
	}
	if _, err := d.Create(ctx, Name{ID: NewID()}); !errors.Is(err, ErrDriveFailed) {
		t.Fatalf("create on failed drive: %v", err)
	}
	if err := d.Check(); err == nil {
		t.Fatal("check passed on a vanished drive")
	}
	if err := os.Rename(hidden, paths[0]); err != nil {
		t.Fatal(err)
	}
	if err := d.Check(); err != nil || d.State() != Online {
		t.Fatalf("drive did not come back: %v", err)
	}
	r, err := d.OpenShard(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
	if d.Stats().IOErrors == 0 {
		t.Fatal("I/O errors not counted")
	}
}

func FuzzDecodeHeader(f *testing.F) {
	for _, h := range []Header{
		{Version: 2, Algorithm: 1, BlockSize: 65536, DataLen: 12345, ID: NewID(), Shard: 3},
		{Version: 2, Algorithm: 1, BlockSize: 512, DataLen: 0, ID: "0123abcd", Shard: 255},
		{Version: 1, Algorithm: 1, BlockSize: 65536, DataLen: 12345},
	} {
		b := make([]byte, h.Size())
		h.encode(b)
		f.Add(b)
	}
	f.Add([]byte("RDBSHARD"))
	f.Add([]byte("RDBSHARD\x02\x00"))
	f.Fuzz(func(t *testing.T, in []byte) {
		h, err := DecodeHeader(in)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error %v is not ErrCorrupt", err)
			}
			return
		}
		if h.Version == ShardFormat && (Name{ID: h.ID, Shard: h.Shard}).Validate() != nil {
			t.Fatalf("accepted a header naming an invalid shard %q.%d", h.ID, h.Shard)
		}
		out := make([]byte, h.Size())
		h.encode(out)
		if !bytes.Equal(out, in[:h.Size()]) {
			t.Fatal("header does not re-encode to its input")
		}
	})
}

func FuzzParseMarker(f *testing.F) {
	f.Add([]byte(`{"format":1,"set_id":"0123456789abcdef","drive_id":"aaaaaaaaaaaaaaaa","slot":0,"drives":["aaaaaaaaaaaaaaaa"]}`))
	f.Add([]byte(`{"format":1,"slot":-1}`))
	f.Fuzz(func(t *testing.T, in []byte) {
		m, err := ParseMarker(in)
		if err != nil {
			return
		}
		if m.Slot < 0 || m.Slot >= len(m.Drives) || !validID(m.DriveID) {
			t.Fatalf("accepted bad marker %+v", m)
		}
	})
}

// A note is kept at the drive's root under a name of its own, across a
// reopen; names that could reach elsewhere, or the marker, are refused.
func TestDriveNotes(t *testing.T) {
	paths := tempPaths(t, 1)
	d := openDrives(t, DefaultConfig(), paths)[0]
	if _, err := d.ReadNote("redoubt-scrub.json"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("no note yet: %v", err)
	}
	if err := d.WriteNote("redoubt-scrub.json", []byte(`{"a":1}`)); err != nil {
		t.Fatal(err)
	}
	again := openDrives(t, DefaultConfig(), paths)[0]
	if b, err := again.ReadNote("redoubt-scrub.json"); err != nil || string(b) != `{"a":1}` {
		t.Fatalf("after a reopen: %q, %v", b, err)
	}
	for _, bad := range []string{"../redoubt-x.json", "redoubt-drive.json", "shards", "x.json", "redoubt-x", "a/redoubt-x.json"} {
		if err := d.WriteNote(bad, nil); err == nil {
			t.Errorf("note %q written", bad)
		}
		if _, err := d.ReadNote(bad); err == nil {
			t.Errorf("note %q read", bad)
		}
	}
}
