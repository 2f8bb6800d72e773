package store

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"math/rand/v2"
	"path"
	"slices"
	"syscall"
	"testing"

	"github.com/redoubt-io/redoubt/internal/vfs"
)

// stepFS calls after once every call that changes a file system has
// returned, so a test can take a crash image at each step.
type stepFS struct {
	vfs.FS
	after func(op string)
}

func (s *stepFS) OpenFile(name string, flag int, perm fs.FileMode) (vfs.File, error) {
	f, err := s.FS.OpenFile(name, flag, perm)
	s.after("open " + name)
	if err != nil {
		return nil, err
	}
	return &stepFile{File: f, fs: s}, nil
}

func (s *stepFS) Remove(name string) error { defer s.after("remove " + name); return s.FS.Remove(name) }
func (s *stepFS) RemoveAll(name string) error {
	defer s.after("removeall " + name)
	return s.FS.RemoveAll(name)
}
func (s *stepFS) Rename(o, n string) error { defer s.after("rename " + n); return s.FS.Rename(o, n) }
func (s *stepFS) Mkdir(name string, perm fs.FileMode) error {
	defer s.after("mkdir " + name)
	return s.FS.Mkdir(name, perm)
}
func (s *stepFS) MkdirAll(name string, perm fs.FileMode) error {
	defer s.after("mkdirall " + name)
	return s.FS.MkdirAll(name, perm)
}
func (s *stepFS) SyncDir(name string) error {
	defer s.after("syncdir " + name)
	return s.FS.SyncDir(name)
}

type stepFile struct {
	vfs.File
	fs *stepFS
}

func (f *stepFile) Write(p []byte) (int, error) { defer f.fs.after("write"); return f.File.Write(p) }
func (f *stepFile) WriteAt(p []byte, off int64) (int, error) {
	defer f.fs.after("writeat")
	return f.File.WriteAt(p, off)
}
func (f *stepFile) Sync() error { defer f.fs.after("sync"); return f.File.Sync() }

var seedFlag = flag.Uint64("seed", 0, "replay the crash tests with this seed")

// image is the state a crash at one step leaves, and what the test knew
// then.
type image struct {
	step      string
	fs        *vfs.Mem
	formatted bool         // Open had returned
	committed map[Name]int // shard -> version whose Commit had returned nil
}

// A node's drives on Mem crash at every step of formatting, writing,
// replacing and removing shards, both with only the durable state kept and
// with random parts of the rest. Every crash image opens as the same set;
// a shard whose Commit returned is read back exact (or as a newer version
// whose Commit had begun); any other shard is absent, a version written
// whole, or detected as corrupt: never served with other bytes.
func TestDriveCrashAtEveryStep(t *testing.T) {
	seed := *seedFlag
	if seed == 0 {
		seed = rand.Uint64()
	}
	t.Logf("seed %d (replay with -seed)", seed)
	rng := rand.New(rand.NewPCG(seed, seed))
	ctx := context.Background()
	mem := vfs.NewMem(vfs.MemConfig{})
	var images []image
	committed := map[Name]int{}
	versions := map[Name][][]byte{} // every version written, in order
	formatted := false
	step := &stepFS{FS: mem}
	step.after = func(op string) {
		images = append(images,
			image{op, mem.Crash(), formatted, maps.Clone(committed)},
			image{op + " (torn)", mem.CrashClone(rng), formatted, maps.Clone(committed)})
	}
	cfg := DefaultConfig()
	cfg.BlockSize = 512
	cfg.WriteBuffer = 1024
	cfg.FS = step
	// Plain directories, created by Open, as `redoubt dev` has them.
	paths := []string{"/srv/redoubt/d0", "/srv/redoubt/d1"}
	ds := openDrives(t, cfg, paths)
	formatted = true
	write := func(d *Drive, name Name, commit bool) {
		t.Helper()
		data := make([]byte, rng.IntN(3000))
		for i := range data {
			data[i] = byte(rng.Uint32())
		}
		versions[name] = append(versions[name], data)
		w, err := d.Create(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		for p := data; len(p) > 0; {
			n := min(len(p), 1+rng.IntN(700))
			if _, err := w.Write(p[:n]); err != nil {
				t.Fatal(err)
			}
			p = p[n:]
		}
		if !commit {
			return // in flight when the power goes
		}
		if err := w.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		committed[name] = len(versions[name]) - 1
	}
	var names []Name
	for i := range 6 {
		names = append(names, Name{ID: rngID(rng), Shard: i})
		write(ds[i%2], names[i], true)
	}
	// A shard replaced by a new version, one removed, one never committed.
	write(ds[0], names[0], true)
	delete(committed, names[1]) // from the moment Remove begins
	if err := ds[1].Remove(ctx, names[1]); err != nil {
		t.Fatal(err)
	}
	write(ds[0], Name{ID: rngID(rng), Shard: 9}, false)

	counts := map[string]int{}
	for _, im := range images {
		fail := func(format string, args ...any) {
			t.Helper()
			t.Fatalf("seed %d, crash after %q: %s", seed, im.step, fmt.Sprintf(format, args...))
		}
		reopened, err := Open(ctx, Config{BlockSize: 512, WriteBuffer: 1024, FS: im.fs}, paths, testLogger(t))
		if err != nil {
			fail("reopen: %v", err)
		}
		if !im.formatted {
			counts["crashed while formatting, reopened"]++
			continue
		}
		for i, d := range reopened {
			if d.State() != Online || d.NeedsRepair() || d.ID() != ds[i].ID() || d.SetID() != ds[i].SetID() {
				fail("drive %d is %v (needs repair: %v) with ID %s of set %s, was %s of %s",
					i, d.State(), d.NeedsRepair(), d.ID(), d.SetID(), ds[i].ID(), ds[i].SetID())
			}
			if es, err := im.fs.ReadDir(path.Join(d.Path(), tmpDir)); err != nil || len(es) != 0 {
				fail("%s not emptied at start: %d entries, %v", tmpDir, len(es), err)
			}
			err := d.Walk(ctx, func(si ShardInfo) error {
				if _, ok := versions[si.Name]; !ok || !si.Modified.Equal(vfs.MemEpoch) {
					return fmt.Errorf("walk found %s modified %v", si.Name, si.Modified)
				}
				return nil
			})
			if err != nil {
				fail("%v", err)
			}
		}
		for name, vs := range versions {
			found := false
			for _, d := range reopened {
				got, err := readShard(ctx, d, name)
				v := slices.IndexFunc(vs, func(b []byte) bool { return bytes.Equal(b, got) })
				c, isCommitted := im.committed[name]
				switch {
				case err == nil && isCommitted && v >= c:
					found = true
					counts["committed, read back"]++
				case err == nil && !isCommitted && v >= 0:
					// Made durable before its Commit returned, or a
					// removal undone.
					counts["not committed, read back whole"]++
				case errors.Is(err, ErrNotFound):
					counts["absent"]++
				case errors.Is(err, ErrCorrupt) && !isCommitted:
					counts["not committed, detected as corrupt"]++
				default:
					fail("shard %s on %s: %d bytes (version %d), %v; committed version %d (%v)",
						name, d.Path(), len(got), v, err, c, isCommitted)
				}
			}
			if _, isCommitted := im.committed[name]; isCommitted && !found {
				fail("committed shard %s lost", name)
			}
		}
	}
	t.Logf("%d crash images; shards on each drive: %v", len(images), counts)
}

// rngID is a shard ID drawn from rng, so that a seed replays the same
// names, hence the same directory order.
func rngID(rng *rand.Rand) string {
	return fmt.Sprintf("%016x%016x", rng.Uint64(), rng.Uint64())
}

// readShard reads a whole shard, verifying every block.
func readShard(ctx context.Context, d *Drive, name Name) ([]byte, error) {
	r, err := d.OpenShard(ctx, name)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	if _, err := r.Verify(ctx); err != nil {
		return nil, err
	}
	return io.ReadAll(io.NewSectionReader(r, 0, r.Size()))
}

// A shard file whose writer skipped the fsync (the store never does: the
// planted fault of this test) is torn by a crash; every read of it after
// the crash is the whole shard or ErrCorrupt.
func TestTornShardDetected(t *testing.T) {
	ctx := context.Background()
	seed := *seedFlag
	if seed == 0 {
		seed = rand.Uint64()
	}
	t.Logf("seed %d (replay with -seed)", seed)
	rng := rand.New(rand.NewPCG(seed, seed))
	mem := vfs.NewMem(vfs.MemConfig{})
	cfg := DefaultConfig()
	cfg.BlockSize = 512
	cfg.WriteBuffer = 1024
	cfg.FS = mem
	paths := []string{"/disks/0"}
	d := openDrives(t, cfg, paths)[0]
	data := make([]byte, 6000)
	for i := range data {
		data[i] = byte(rng.Uint32())
	}
	good := Name{ID: rngID(rng)}
	writeShard(t, d, good, data)
	// Another shard of the same bytes, written again in place: named
	// durably, but its data never synced.
	torn := Name{ID: rngID(rng)}
	writeShard(t, d, torn, data)
	tornPath, _ := d.shardPath(torn)
	file, err := vfs.ReadFile(mem, tornPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := mem.Remove(tornPath); err != nil {
		t.Fatal(err)
	}
	if err := mem.SyncDir(path.Dir(tornPath)); err != nil {
		t.Fatal(err)
	}
	if err := vfs.WriteFile(mem, tornPath, file, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := mem.SyncDir(path.Dir(tornPath)); err != nil {
		t.Fatal(err)
	}
	counts := map[string]int{}
	for i := range 200 {
		img := mem.CrashClone(rng)
		if i == 0 {
			img = mem.Crash()
		}
		cfg.FS = img
		d := openDrives(t, cfg, paths)[0]
		got, err := readShard(ctx, d, torn)
		switch {
		case err == nil && bytes.Equal(got, data):
			counts["whole"]++
		case errors.Is(err, ErrCorrupt):
			counts["corrupt"]++
		default:
			t.Fatalf("crash %d: torn shard read as %d bytes, %v", i, len(got), err)
		}
		if got, err := readShard(ctx, d, good); err != nil || !bytes.Equal(got, data) {
			t.Fatalf("crash %d: committed shard read as %d bytes, %v", i, len(got), err)
		}
	}
	if counts["whole"] == 0 || counts["corrupt"] == 0 {
		t.Fatalf("outcomes %v: want both whole and detected", counts)
	}
	t.Logf("200 crashes: %v", counts)
}

// A full disk fails the write that does not fit with ENOSPC, gives the
// space of the aborted file back, and stays online: it goes on serving
// what it holds and passes its health check.
func TestDriveDiskFull(t *testing.T) {
	ctx := context.Background()
	mem := vfs.NewMem(vfs.MemConfig{})
	if err := mem.Mount("/disks/0", 40_000); err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.BlockSize = 4096
	cfg.WriteBuffer = 8192
	cfg.FS = mem
	d := openDrives(t, cfg, []string{"/disks/0"})[0]
	kept := Name{ID: NewID()}
	data := bytes.Repeat([]byte("k"), 10_000)
	writeShard(t, d, kept, data)
	before := d.Stats()
	if before.TotalBytes != 40_000 || before.UsedBytes+before.FreeBytes != 40_000 || before.UsedBytes < 10_000 {
		t.Fatalf("stats %+v", before)
	}

	w, err := d.Create(ctx, Name{ID: NewID()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err = w.Write(make([]byte, 50_000)); err == nil {
		err = w.Commit(ctx)
	} else {
		w.Abort()
	}
	if !errors.Is(err, syscall.ENOSPC) || errors.Is(err, ErrDriveFailed) {
		t.Fatalf("write past the end of the disk: %v, want ENOSPC and not ErrDriveFailed", err)
	}
	after := d.Stats()
	if after.State != Online || after.IOErrors != 0 || after.UsedBytes != before.UsedBytes {
		t.Fatalf("after a failed write: %+v, want online, no I/O error, %d bytes used", after, before.UsedBytes)
	}

	// Full to the last byte, the drive still reads and passes its check.
	filler := path.Join(d.Path(), "filler")
	if err := vfs.WriteFile(mem, filler, make([]byte, after.FreeBytes), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := d.Check(); err != nil {
		t.Fatalf("check of a full drive: %v", err)
	}
	if got, err := readShard(ctx, d, kept); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read from a full drive: %d bytes, %v", len(got), err)
	}
	if _, err := d.Create(ctx, Name{ID: NewID()}); err != nil {
		t.Fatalf("create on a full drive (an empty file): %v", err)
	}
	// Space freed is space to write in.
	if err := mem.Remove(filler); err != nil {
		t.Fatal(err)
	}
	writeShard(t, d, Name{ID: NewID()}, data)
}

// What a simulated drive costs per shard written, against
// BenchmarkShardWrite16MiB on the real disk.
func BenchmarkShardWriteMem16MiB(b *testing.B) {
	mem := vfs.NewMem(vfs.MemConfig{})
	cfg := DefaultConfig()
	cfg.FS = mem
	d := openDrives(b, cfg, []string{"/disks/0"})[0]
	data := make([]byte, 1<<20)
	ctx := context.Background()
	b.SetBytes(16 << 20)
	for b.Loop() {
		name := Name{ID: NewID()}
		w, err := d.Create(ctx, name)
		if err != nil {
			b.Fatal(err)
		}
		for range 16 {
			w.Write(data)
		}
		if err := w.Commit(ctx); err != nil {
			b.Fatal(err)
		}
		if err := d.Remove(ctx, name); err != nil {
			b.Fatal(err)
		}
		mem.Flush() // else the removed file stays, for crash images

	}
}
