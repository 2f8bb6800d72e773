package meta

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/redoubt-io/redoubt/internal/vfs"
)

// noise returns n bytes that Pebble's compression cannot shrink, the same
// at every run.
func noise(n int) []byte {
	b := make([]byte, n)
	rand.NewChaCha8([32]byte{}).Read(b)
	return b
}

// memDrives returns a vfs.Mem with one disk of capacity bytes mounted at
// /disks/i for each i < n, and the replica directories on them.
func memDrives(t *testing.T, n int, capacity uint64) (*vfs.Mem, []string) {
	t.Helper()
	mem := vfs.NewMem(vfs.MemConfig{})
	var dirs []string
	for i := range n {
		disk := fmt.Sprintf("/disks/%d", i)
		if err := mem.Mount(disk, capacity); err != nil {
			t.Fatal(err)
		}
		dirs = append(dirs, path.Join(disk, "meta"))
	}
	return mem, dirs
}

// memConfig is a configuration for small simulated drives.
func memConfig(t *testing.T, mem *vfs.Mem, dirs []string) LocalConfig {
	cfg := DefaultLocalConfig(dirs...)
	cfg.FS = mem
	cfg.Logger = testLogger(t)
	cfg.MemTableBytes = 1 << 20
	cfg.CacheBytes = 1 << 20
	cfg.MinFree = 2 << 20
	return cfg
}

func free(t *testing.T, mem *vfs.Mem, dir string) uint64 {
	t.Helper()
	u, err := mem.Usage(dir)
	if err != nil {
		t.Fatal(err)
	}
	return u.Avail
}

// fillDisk writes a file taking all but leave bytes of the disk holding
// dir, as another program filling the disk would, and returns its name.
func fillDisk(t *testing.T, mem *vfs.Mem, dir string, leave uint64) string {
	t.Helper()
	name := path.Join(path.Dir(dir), "ballast")
	if f := free(t, mem, dir); f > leave {
		if err := vfs.WriteFile(mem, name, make([]byte, f-leave), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return name
}

// Pebble on a vfs.Mem keeps its files on the mounted disk, charged to its
// capacity, and what it synced survives a crash of the machine.
func TestPebbleOnMemFillsItsDrive(t *testing.T) {
	ctx := context.Background()
	mem, dirs := memDrives(t, 2, 256<<20)
	before := free(t, mem, path.Dir(dirs[0]))
	l, err := OpenLocal(memConfig(t, mem, dirs))
	if err != nil {
		t.Fatal(err)
	}
	value := noise(64 << 10)
	for i := range 100 {
		mustCommit(t, l, Partition(i%4), Txn{Puts: []KV{{Key: []byte(fmt.Sprint("k", i)), Value: value}}})
	}
	for _, d := range dirs {
		if used := before - free(t, mem, d); used < 100*64<<10 {
			t.Errorf("drive of %s: %d bytes used after 6.4 MB of values", d, used)
		}
	}
	crashed := mem.Crash()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	cfg := memConfig(t, crashed, dirs)
	l, err = OpenLocal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	checkAllHealthy(t, l)
	for i := range 100 {
		it, err := l.Get(ctx, Partition(i%4), []byte(fmt.Sprint("k", i)))
		if err != nil || !bytes.Equal(it.Value, value) {
			t.Fatalf("k%d after a crash: %d bytes, %v", i, len(it.Value), err)
		}
	}
}

// A replica's drive under MinFree takes no commit: Commit fails with
// ErrNoSpace and nothing else changes: the replicas stay healthy (Pebble
// itself never ran out of space), reads go on, and commits succeed again
// as soon as space is freed, without a reopen.
func TestLocalMinFree(t *testing.T) {
	ctx := context.Background()
	mem, dirs := memDrives(t, 2, 64<<20)
	cfg := memConfig(t, mem, dirs)
	cfg.MinFree = 4 << 20
	l, err := OpenLocal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	// Another program takes most of the second drive.
	ballast := fillDisk(t, mem, dirs[1], 12<<20)

	value := noise(32 << 10)
	var n int
	for n = 0; ; n++ {
		_, err = l.Commit(ctx, 0, Txn{Puts: []KV{{Key: []byte(fmt.Sprint("k", n)), Value: value}}})
		if err != nil {
			break
		}
		if n > 10_000 {
			t.Fatal("the drive never filled")
		}
	}
	if !errors.Is(err, ErrNoSpace) || !errors.Is(err, syscall.ENOSPC) || !strings.Contains(err.Error(), dirs[1]) {
		t.Fatalf("commit on a full drive: %v, want ErrNoSpace naming %s", err, dirs[1])
	}
	t.Logf("%d commits, then: %v", n, err)
	checkAllHealthy(t, l)
	// A delete is a commit too, refused alike. Pebble may still give
	// space back (a flush or compaction that was under way deletes what
	// it replaced), and a commit that finds MinFree free again is right
	// to go through: fill the drive again each time that happens.
	var fillers []string
	for attempt := 0; ; attempt++ {
		name := path.Join(path.Dir(dirs[1]), fmt.Sprint("more-ballast-", attempt))
		if f := free(t, mem, dirs[1]); f > 256<<10 {
			// Pebble may be writing too: a filler that finds the drive
			// full has done its job.
			if err := vfs.WriteFile(mem, name, make([]byte, f-256<<10), 0o644); err != nil && !errors.Is(err, syscall.ENOSPC) {
				t.Fatal(err)
			}
			fillers = append(fillers, name)
		}
		before := free(t, mem, dirs[1])
		_, err := l.Commit(ctx, 0, Txn{Deletes: [][]byte{[]byte("no-such-key")}})
		if errors.Is(err, ErrNoSpace) {
			break
		}
		if after := free(t, mem, dirs[1]); err != nil || before < cfg.MinFree && after < cfg.MinFree || attempt == 3 {
			t.Fatalf("delete under MinFree (%d bytes free, then %d): %v, want ErrNoSpace", before, after, err)
		}
	}
	for i := range n {
		if it, err := l.Get(ctx, 0, []byte(fmt.Sprint("k", i))); err != nil || !bytes.Equal(it.Value, value) {
			t.Fatalf("get k%d on a full drive: %v", i, err)
		}
	}
	count := 0
	if err := l.Scan(ctx, 0, nil, nil, func([]byte, Item) bool { count++; return true }); err != nil || count != n {
		t.Fatalf("scan on a full drive: %d keys, %v; want %d", count, err, n)
	}

	if err := mem.Remove(ballast); err != nil {
		t.Fatal(err)
	}
	for _, name := range fillers {
		if err := mem.Remove(name); err != nil && !errors.Is(err, fs.ErrNotExist) {
			t.Fatal(err)
		}
	}
	mustCommit(t, l, 0, putTxn("after", "space freed"))
	checkAllHealthy(t, l)
}

// Deleting keys on a replica whose drive is under Reserve gives their
// space back soon after, without waiting for Pebble's own compactions.
func TestLocalDeletesFreeSpace(t *testing.T) {
	ctx := context.Background()
	mem, dirs := memDrives(t, 1, 96<<20)
	cfg := memConfig(t, mem, dirs)
	cfg.Reserve = 40 << 20
	l, err := OpenLocal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	start := free(t, mem, dirs[0])
	// Random, so that Pebble's compression does not shrink them.
	value := noise(100 << 10)
	var keys [][]byte
	for free(t, mem, dirs[0]) >= cfg.Reserve {
		k := []byte(fmt.Sprint("k", len(keys)))
		mustCommit(t, l, Partition(len(keys)%8), Txn{Puts: []KV{{Key: k, Value: value}}})
		keys = append(keys, k)
	}
	low := free(t, mem, dirs[0])
	t.Logf("%d values of 100 KiB: %d MiB free of %d", len(keys), low>>20, start>>20)
	for i, k := range keys {
		mustCommit(t, l, Partition(i%8), Txn{Deletes: [][]byte{k}})
	}
	// Within the deadline, most of what the values took is free again.
	want := low + (start-low)*3/4
	if !pollUntil(10*time.Second, func() bool { return free(t, mem, dirs[0]) >= want }) {
		ents, _ := mem.ReadDir(path.Join(dirs[0], "pebble"))
		for _, e := range ents {
			fi, _ := e.Info()
			t.Logf("%s %d", e.Name(), fi.Size())
		}
		t.Fatalf("%d MiB free 10 s after deleting everything, want at least %d", free(t, mem, dirs[0])>>20, want>>20)
	}
	t.Logf("after the deletes: %d MiB free", free(t, mem, dirs[0])>>20)
	if _, err := l.Get(ctx, 0, keys[0]); !errors.Is(err, ErrNotFound) {
		t.Fatalf("deleted key: %v", err)
	}
}

// pollUntil calls cond every 10 ms until it holds or d passes.
func pollUntil(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond) // polling a condition, not waiting for an event
	}
	return true
}

// openWithin opens cfg, failing the test if that takes longer than d:
// what is under test is that an open never hangs.
func openWithin(t *testing.T, cfg LocalConfig, d time.Duration) (*Local, error, time.Duration) {
	t.Helper()
	type res struct {
		l   *Local
		err error
	}
	start := time.Now()
	ch := make(chan res, 1)
	go func() {
		l, err := OpenLocal(cfg)
		ch <- res{l, err}
	}()
	select {
	case r := <-ch:
		return r.l, r.err, time.Since(start)
	case <-time.After(d):
		t.Fatalf("OpenLocal still running after %v", d)
		return nil, nil, 0
	}
}

// A store whose drives are full fails to open at once, naming the drive
// and the space it needs; with one drive full of two, it opens without
// that replica.
func TestLocalOpenOnFullDriveFailsFast(t *testing.T) {
	ctx := context.Background()
	mem, dirs := memDrives(t, 2, 64<<20)
	cfg := memConfig(t, mem, dirs)
	l, err := OpenLocal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		mustCommit(t, l, 0, putTxn(fmt.Sprint("k", i), "v"))
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}

	fillDisk(t, mem, dirs[1], 0)
	l, err, took := openWithin(t, cfg, 10*time.Second)
	if err != nil {
		t.Fatalf("open with one drive of two full: %v", err)
	}
	st := l.Status()
	if st[0].State != ReplicaHealthy || st[1].State != ReplicaFailed || !errors.Is(st[1].Err, ErrNoSpace) {
		t.Fatalf("status with one drive full: %+v", st)
	}
	t.Logf("opened in %v without the full replica: %v", took, st[1].Err)
	if it, err := l.Get(ctx, 0, []byte("k3")); err != nil || string(it.Value) != "v" {
		t.Fatalf("get: %v", err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}

	fillDisk(t, mem, dirs[0], 0)
	l, err, took = openWithin(t, cfg, 10*time.Second)
	if err == nil {
		l.Close()
		t.Fatal("opened with every drive full")
	}
	if !errors.Is(err, ErrNoSpace) || !strings.Contains(err.Error(), dirs[0]) || !strings.Contains(err.Error(), "needs at least") {
		t.Fatalf("open with every drive full: %v, want ErrNoSpace naming %s and the space needed", err, dirs[0])
	}
	t.Logf("refused in %v: %v", took, err)
}

// A Pebble that runs out of space while it opens (here: the check before
// it is skipped) retries its first flush forever and never returns from
// Open; the store's open fails instead, in bounded time.
func TestLocalOpenDoesNotHangWhenPebbleFails(t *testing.T) {
	mem, dirs := memDrives(t, 1, 64<<20)
	cfg := memConfig(t, mem, dirs)
	cfg.MemTableBytes = 8 << 20 // the values stay in the WAL, to be flushed at open
	cfg.MinFree = 0
	l, err := OpenLocal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	value := noise(64 << 10)
	for i := range 64 {
		mustCommit(t, l, 0, Txn{Puts: []KV{{Key: []byte(fmt.Sprint("k", i)), Value: value}}})
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	fillDisk(t, mem, dirs[0], 64<<10)
	cfg.testSkipOpenCheck = true
	l, err, took := openWithin(t, cfg, 20*time.Second)
	if err == nil {
		l.Close()
		t.Fatal("opened on a drive without room for its WAL's flush")
	}
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("open: %v, want ErrUnavailable", err)
	}
	t.Logf("failed in %v: %v", took, err)
}

// A new store on a full drive is refused the same way, before any of its
// directories is made.
func TestLocalCreateOnFullDriveFailsFast(t *testing.T) {
	mem, dirs := memDrives(t, 1, 16<<20)
	if err := vfs.WriteFile(mem, "/disks/0/ballast", make([]byte, 16<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	l, err, _ := openWithin(t, memConfig(t, mem, dirs), 10*time.Second)
	if err == nil {
		l.Close()
		t.Fatal("created on a full drive")
	}
	if !errors.Is(err, ErrNoSpace) || !strings.Contains(err.Error(), "needs at least") {
		t.Fatalf("create on a full drive: %v", err)
	}
	if _, err := mem.Stat(dirs[0]); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("replica directory made on a full drive: %v", err)
	}
}

// fullForTables is a file system on which new Pebble tables cannot be
// created while full is set, as on a disk whose last room the WAL took.
type fullForTables struct {
	vfs.FS
	full     atomic.Bool
	refusals atomic.Int64
}

func (f *fullForTables) OpenFile(name string, flag int, perm fs.FileMode) (vfs.File, error) {
	if f.full.Load() && strings.HasSuffix(name, ".sst") && flag&os.O_CREATE != 0 {
		f.refusals.Add(1)
		return nil, &fs.PathError{Op: "open", Path: name, Err: syscall.ENOSPC}
	}
	return f.FS.OpenFile(name, flag, perm)
}

// A flush that finds no room is Pebble's to retry, paced: the replica is
// not failed, reads go on, and once there is room the flush goes through
// and nothing was lost.
func TestLocalFlushOnFullDiskIsRetried(t *testing.T) {
	ctx := context.Background()
	mem, dirs := memDrives(t, 1, 64<<20)
	fsys := &fullForTables{FS: mem}
	cfg := memConfig(t, mem, dirs)
	cfg.FS = fsys
	l, err := OpenLocal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		mustCommit(t, l, 0, putTxn(fmt.Sprint("k", i), "v"))
	}
	fsys.full.Store(true)
	if _, err := l.replicas[0].db.AsyncFlush(); err != nil {
		t.Fatal(err)
	}
	if !pollUntil(5*time.Second, func() bool { return fsys.refusals.Load() >= 3 }) {
		t.Fatalf("Pebble tried to flush %d times in 5 s", fsys.refusals.Load())
	}
	// Retried, but not in a busy loop.
	time.Sleep(time.Second) // measuring a rate over a wall-clock second
	if n := fsys.refusals.Load(); n > 30 {
		t.Fatalf("%d flush attempts in about a second on a full disk: a busy loop", n)
	}
	checkAllHealthy(t, l)
	if it, err := l.Get(ctx, 0, []byte("k3")); err != nil || string(it.Value) != "v" {
		t.Fatalf("get while the disk is full: %v", err)
	}
	fsys.full.Store(false)
	mustCommit(t, l, 0, putTxn("after", "v"))
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	cfg.FS = mem
	l, err = OpenLocal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	for _, k := range []string{"k0", "k9", "after"} {
		if it, err := l.Get(ctx, 0, []byte(k)); err != nil || string(it.Value) != "v" {
			t.Fatalf("%s after the disk had room again: %v", k, err)
		}
	}
}
