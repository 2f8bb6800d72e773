package vfs

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// put writes data to a new or truncated file, syncing it if asked.
func put(t testing.TB, fsys FS, name, data string, sync bool) {
	t.Helper()
	f, err := fsys.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	must(t, err)
	_, err = f.Write([]byte(data))
	must(t, err)
	if sync {
		must(t, f.Sync())
	}
	must(t, f.Close())
}

// appendTo appends data to a file without syncing it.
func appendTo(t testing.TB, fsys FS, name, data string) {
	t.Helper()
	f, err := fsys.OpenFile(name, os.O_WRONLY|os.O_APPEND, 0)
	must(t, err)
	_, err = f.Write([]byte(data))
	must(t, err)
	must(t, f.Close())
}

var seedFlag = flag.Uint64("seed", 0, "replay the randomized tests with this seed")

// seeded returns a random source, logging its seed; -seed replays one.
func seeded(t testing.TB) (uint64, *rand.Rand) {
	seed := *seedFlag
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("seed %d (replay with -seed)", seed)
	return seed, rand.New(rand.NewPCG(seed, seed))
}

// Each case acts on a Mem whose /d is a durable, empty directory, and
// lists what Crash leaves below /d.
func TestMemCrashKeepsOnlyDurable(t *testing.T) {
	for _, tc := range []struct {
		name string
		act  func(t *testing.T, m *Mem)
		want string
	}{
		{"file synced, directory not", func(t *testing.T, m *Mem) {
			put(t, m, "/d/f", "data", true)
		}, ""},
		{"directory synced, file not", func(t *testing.T, m *Mem) {
			put(t, m, "/d/f", "data", false)
			must(t, m.SyncDir("/d"))
		}, `f ""`},
		{"both synced", func(t *testing.T, m *Mem) {
			put(t, m, "/d/f", "data", true)
			must(t, m.SyncDir("/d"))
		}, `f "data"`},
		{"appended after the sync", func(t *testing.T, m *Mem) {
			put(t, m, "/d/f", "data", true)
			must(t, m.SyncDir("/d"))
			appendTo(t, m, "/d/f", "more")
		}, `f "data"`},
		{"written with O_SYNC", func(t *testing.T, m *Mem) {
			f, err := m.OpenFile("/d/f", os.O_WRONLY|os.O_CREATE|os.O_SYNC, 0o644)
			must(t, err)
			_, err = f.Write([]byte("data"))
			must(t, err)
			must(t, f.Close())
			must(t, m.SyncDir("/d"))
		}, `f "data"`},
		{"truncated and rewritten after the sync", func(t *testing.T, m *Mem) {
			put(t, m, "/d/f", "old data", true)
			must(t, m.SyncDir("/d"))
			put(t, m, "/d/f", "new", false)
		}, `f "old data"`},
		{"removed, directory not synced", func(t *testing.T, m *Mem) {
			put(t, m, "/d/f", "data", true)
			must(t, m.SyncDir("/d"))
			must(t, m.Remove("/d/f"))
		}, `f "data"`},
		{"removed, directory synced", func(t *testing.T, m *Mem) {
			put(t, m, "/d/f", "data", true)
			must(t, m.SyncDir("/d"))
			must(t, m.Remove("/d/f"))
			must(t, m.SyncDir("/d"))
		}, ""},
		{"renamed in one directory, synced", func(t *testing.T, m *Mem) {
			put(t, m, "/d/f.tmp", "data", true)
			must(t, m.SyncDir("/d"))
			put(t, m, "/d/g", "replaced", true)
			must(t, m.Rename("/d/f.tmp", "/d/g"))
			must(t, m.SyncDir("/d"))
		}, `g "data"`},
		{"renamed in one directory, not synced", func(t *testing.T, m *Mem) {
			put(t, m, "/d/f.tmp", "data", true)
			must(t, m.SyncDir("/d"))
			must(t, m.Rename("/d/f.tmp", "/d/g"))
		}, `f.tmp "data"`},
		{"renamed across directories, only the target synced", func(t *testing.T, m *Mem) {
			must(t, m.Mkdir("/d/a", 0o755))
			must(t, m.Mkdir("/d/b", 0o755))
			must(t, m.SyncDir("/d"))
			put(t, m, "/d/a/f", "data", true)
			must(t, m.SyncDir("/d/a"))
			must(t, m.Rename("/d/a/f", "/d/b/f"))
			must(t, m.SyncDir("/d/b"))
		}, "a/\na/f \"data\"\nb/\nb/f \"data\""},
		{"renamed across directories, only the source synced", func(t *testing.T, m *Mem) {
			must(t, m.Mkdir("/d/a", 0o755))
			must(t, m.Mkdir("/d/b", 0o755))
			must(t, m.SyncDir("/d"))
			put(t, m, "/d/a/f", "data", true)
			must(t, m.SyncDir("/d/a"))
			must(t, m.Rename("/d/a/f", "/d/b/f"))
			must(t, m.SyncDir("/d/a"))
		}, "a/\nb/"},
		{"directory synced, its parent not", func(t *testing.T, m *Mem) {
			must(t, m.Mkdir("/d/a", 0o755))
			put(t, m, "/d/a/f", "data", true)
			must(t, m.SyncDir("/d/a"))
		}, ""},
		{"tree removed, parent not synced", func(t *testing.T, m *Mem) {
			must(t, m.MkdirAll("/d/a/b", 0o755))
			put(t, m, "/d/a/b/f", "data", true)
			for _, dir := range []string{"/d", "/d/a", "/d/a/b"} {
				must(t, m.SyncDir(dir))
			}
			must(t, m.RemoveAll("/d/a"))
			must(t, m.Mkdir("/d/a", 0o755)) // a new, empty one
		}, "a/\na/b/\na/b/f \"data\""},
		{"directories swapped into a cycle of durable entries", func(t *testing.T, m *Mem) {
			// /d/a/b moves up to /d/b, then /d/a moves into it; each
			// directory synced at a different moment, so the durable
			// entries say a holds b and b holds a.
			must(t, m.MkdirAll("/d/a/b", 0o755))
			must(t, m.SyncDir("/d"))
			must(t, m.SyncDir("/d/a"))
			must(t, m.Rename("/d/a/b", "/d/b"))
			must(t, m.SyncDir("/d"))
			must(t, m.Rename("/d/a", "/d/b/a"))
			must(t, m.SyncDir("/d/b"))
		}, "a/\na/b/"}, // b is met first inside a, so its own entry goes
		{"mount point never synced", func(t *testing.T, m *Mem) {
			must(t, m.Mount("/d/disk/0", 1<<20))
			put(t, m, "/d/disk/0/f", "data", true)
		}, "disk/\ndisk/0/"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := NewMem(MemConfig{})
			must(t, m.Mkdir("/d", 0o755))
			must(t, m.SyncDir("/"))
			tc.act(t, m)
			before := dump(t, m, "/")
			got := strings.TrimSpace(dump(t, m.Crash(), "/d"))
			if got != tc.want {
				t.Errorf("after the crash:\n%s\nwant:\n%s", got, tc.want)
			}
			if after := dump(t, m, "/"); after != before {
				t.Errorf("the crash changed the file system it was taken of:\n%s\nwas:\n%s", after, before)
			}
		})
	}
}

// After Flush, a crash loses nothing.
func TestMemFlush(t *testing.T) {
	m := NewMem(MemConfig{})
	must(t, m.MkdirAll("/a/b", 0o755))
	put(t, m, "/a/b/f", "data", false)
	put(t, m, "/gone", "x", true)
	must(t, m.SyncDir("/"))
	must(t, m.Remove("/gone"))
	m.Flush()
	if want, got := dump(t, m, "/"), dump(t, m.Crash(), "/"); got != want {
		t.Fatalf("after Flush, a crash leaves\n%s\nwant\n%s", got, want)
	}
}

// A file that ends up with two names after a crash is one file: space is
// counted once and freed when the last name goes.
func TestMemCrashTwoNamesOneFile(t *testing.T) {
	m := NewMem(MemConfig{Capacity: 100})
	must(t, m.MkdirAll("/a", 0o755))
	must(t, m.Mkdir("/b", 0o755))
	must(t, m.SyncDir("/"))
	put(t, m, "/a/f", "0123456789", true)
	must(t, m.SyncDir("/a"))
	must(t, m.Rename("/a/f", "/b/f"))
	must(t, m.SyncDir("/b"))
	c := m.Crash()
	if u, _ := c.Usage("/"); u.Used != 10 {
		t.Fatalf("used %d, want 10 (one file of 10 bytes)", u.Used)
	}
	must(t, c.Remove("/a/f"))
	if u, _ := c.Usage("/"); u.Used != 10 {
		t.Fatalf("used %d after removing one name, want 10", u.Used)
	}
	must(t, c.Remove("/b/f"))
	if u, _ := c.Usage("/"); u.Used != 0 || u.Avail != 100 {
		t.Fatalf("usage %+v after removing both names", u)
	}
}

// With an rng, a crash keeps what was durable and some of the rest, within
// the limits CrashClone documents; over many seeds, each kind of partial
// outcome shows up.
func TestMemCrashCloneTearsUnsyncedData(t *testing.T) {
	_, rng := seeded(t)
	page := CrashPageSize
	old := bytes.Repeat([]byte("o"), 2*page+1000) // pages 0 and 1 full, page 2 short
	m := NewMem(MemConfig{})
	f, err := m.OpenFile("/f", os.O_RDWR|os.O_CREATE, 0o644)
	must(t, err)
	_, err = f.Write(old)
	must(t, err)
	must(t, f.Sync())
	put(t, m, "/g", "gone?", false)
	must(t, m.SyncDir("/"))
	put(t, m, "/h", "here?", true)
	// Unsynced: page 0 and page 2 overwritten, 5000 bytes appended.
	_, err = f.WriteAt(bytes.Repeat([]byte("N"), 10), 100)
	must(t, err)
	_, err = f.WriteAt(bytes.Repeat([]byte("N"), 10), int64(2*page+5))
	must(t, err)
	tail := bytes.Repeat([]byte("t"), 5000)
	_, err = f.WriteAt(tail, int64(len(old)))
	must(t, err)
	cur := append(bytes.Clone(old), tail...)
	copy(cur[100:], "NNNNNNNNNN")
	copy(cur[2*page+5:], "NNNNNNNNNN")

	seen := map[string]bool{}
	for range 300 {
		c := m.CrashClone(rng)
		got, err := ReadFile(c, "/f")
		must(t, err)
		if len(got) < len(old) || len(got) > len(cur) {
			t.Fatalf("length %d outside [%d, %d]", len(got), len(old), len(cur))
		}
		switch {
		case len(got) == len(old):
			seen["tail lost"] = true
		case len(got) == len(cur):
			seen["tail kept"] = true
		default:
			seen["tail torn"] = true
		}
		for p := 0; p < len(old); p += page {
			e := min(p+page, len(old))
			switch {
			case bytes.Equal(got[p:e], old[p:e]):
				seen[fmt.Sprintf("page %d old", p/page)] = true
			case bytes.Equal(got[p:e], cur[p:e]):
				seen[fmt.Sprintf("page %d new", p/page)] = true
			default:
				t.Fatalf("page %d is neither the old nor the new content", p/page)
			}
		}
		if !bytes.Equal(got[len(old):], cur[len(old):len(got)]) {
			t.Fatal("the kept tail is not a prefix of what was appended")
		}
		// /g: durable name, data never synced; /h: the other way round.
		g, err := ReadFile(c, "/g")
		must(t, err)
		if !strings.HasPrefix("gone?", string(g)) {
			t.Fatalf("a file never synced holds %q", g)
		}
		seen[fmt.Sprintf("unsynced file of %d bytes", len(g))] = true
		switch h, err := ReadFile(c, "/h"); {
		case err == nil && string(h) == "here?":
			seen["unsynced name kept"] = true
		case errors.Is(err, fs.ErrNotExist):
			seen["unsynced name lost"] = true
		default:
			t.Fatalf("a synced file under an unsynced name: %q, %v", h, err)
		}
		u, err := c.Usage("/")
		must(t, err)
		var want uint64
		for _, name := range []string{"/f", "/g", "/h"} {
			if fi, err := c.Stat(name); err == nil {
				want += uint64(fi.Size())
			}
		}
		if u.Used != want || u.Used+u.Avail != u.Total {
			t.Fatalf("usage %+v, want %d used", u, want)
		}
	}
	for _, k := range []string{"tail lost", "tail kept", "tail torn", "page 0 old", "page 0 new",
		"page 2 old", "page 2 new", "unsynced file of 0 bytes", "unsynced file of 3 bytes", "unsynced file of 5 bytes",
		"unsynced name kept", "unsynced name lost"} {
		if !seen[k] {
			t.Errorf("in 300 crashes, never %s", k)
		}
	}
	if seen["page 1 new"] {
		t.Error("a page never written changed")
	}
	// The file truncated and rewritten shorter keeps either length.
	m2 := NewMem(MemConfig{})
	put(t, m2, "/f", "long old content", true)
	must(t, m2.SyncDir("/"))
	put(t, m2, "/f", "new", false)
	lens := map[int]bool{}
	for range 50 {
		b, err := ReadFile(m2.CrashClone(rng), "/f")
		must(t, err)
		lens[len(b)] = true
	}
	if len(lens) != 2 || !lens[3] || !lens[16] {
		t.Errorf("lengths after a crash of a truncated file: %v, want 3 and 16", lens)
	}
}

// A seed gives the same crash image every time.
func TestMemCrashCloneDeterministic(t *testing.T) {
	seed, rng := seeded(t)
	m := NewMem(MemConfig{})
	for i := range 20 {
		dir := fmt.Sprintf("/d%d", rng.IntN(4))
		must(t, m.MkdirAll(dir, 0o755))
		put(t, m, fmt.Sprintf("%s/f%d", dir, i), strings.Repeat("x", rng.IntN(3*CrashPageSize)), rng.IntN(2) == 0)
		if rng.IntN(3) == 0 {
			must(t, m.SyncDir(dir))
		}
		if rng.IntN(3) == 0 {
			must(t, m.SyncDir("/"))
		}
	}
	images := map[string]bool{}
	for s := range uint64(20) {
		a := dump(t, m.CrashClone(rand.New(rand.NewPCG(seed, s))), "/")
		b := dump(t, m.CrashClone(rand.New(rand.NewPCG(seed, s))), "/")
		if a != b {
			t.Fatalf("seed %d, %d: two crash images differ:\n%s\n%s", seed, s, a, b)
		}
		images[a] = true
	}
	if len(images) < 2 {
		t.Fatal("20 seeds gave one crash image: the rng is not used")
	}
}

// A file written in pieces, its array grown and then trimmed on Close,
// keeps its content and its synced content.
func TestMemFileWrittenInPieces(t *testing.T) {
	m := NewMem(MemConfig{})
	var want []byte
	f, err := m.OpenFile("/f", os.O_WRONLY|os.O_CREATE, 0o644)
	must(t, err)
	for i := range 3 {
		piece := bytes.Repeat([]byte{byte('a' + i)}, 5000)
		_, err := f.Write(piece)
		must(t, err)
		want = append(want, piece...)
	}
	must(t, f.Sync())
	must(t, f.Close())
	must(t, m.SyncDir("/"))
	appendTo(t, m, "/f", "unsynced")
	for _, c := range []struct {
		fs   FS
		want []byte
	}{{m, append(bytes.Clone(want), "unsynced"...)}, {m.Crash(), want}} {
		got, err := ReadFile(c.fs, "/f")
		if err != nil || !bytes.Equal(got, c.want) {
			t.Fatalf("read %d bytes (%v), want %d", len(got), err, len(c.want))
		}
	}
}

// A crash image and the file system it was taken of share no state: each
// goes on alone.
func TestMemCrashImageIndependent(t *testing.T) {
	m := NewMem(MemConfig{})
	f, err := m.OpenFile("/f", os.O_RDWR|os.O_CREATE, 0o644)
	must(t, err)
	_, err = f.Write([]byte("synced"))
	must(t, err)
	must(t, f.Sync())
	must(t, m.SyncDir("/"))
	c := m.Crash()
	_, err = f.Write([]byte(" and later")) // may land in the array the image shares
	must(t, err)
	appendTo(t, c, "/f", "+image")
	_, err = f.WriteAt([]byte("S"), 0)
	must(t, err)
	must(t, f.Close())
	if b, _ := ReadFile(m, "/f"); string(b) != "Synced and later" {
		t.Fatalf("original holds %q", b)
	}
	if b, _ := ReadFile(c, "/f"); string(b) != "synced+image" {
		t.Fatalf("image holds %q", b)
	}
	if b, _ := ReadFile(m.Crash(), "/f"); string(b) != "synced" {
		t.Fatalf("a second crash image holds %q", b)
	}
}

func TestMemDiskFull(t *testing.T) {
	m := NewMem(MemConfig{Capacity: 100})
	usage := func(want uint64) {
		t.Helper()
		u, err := m.Usage("/")
		must(t, err)
		if u.Total != 100 || u.Used != want || u.Avail != 100-want {
			t.Fatalf("usage %+v, want %d of 100 used", u, want)
		}
	}
	put(t, m, "/a", strings.Repeat("a", 60), true)
	usage(60)
	f, err := m.OpenFile("/b", os.O_WRONLY|os.O_CREATE, 0o644)
	must(t, err)
	n, err := f.Write(bytes.Repeat([]byte("b"), 50))
	if n != 40 || !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("write of 50 bytes with 40 free: %d, %v; want 40 and ENOSPC", n, err)
	}
	var pe *fs.PathError
	if !errors.As(err, &pe) || pe.Path != "/b" {
		t.Fatalf("error %v does not name the file", err)
	}
	usage(100)
	if n, err := f.Write([]byte("b")); n != 0 || !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("write on a full disk: %d, %v", n, err)
	}
	if _, err := f.WriteAt([]byte("B"), 0); err != nil {
		t.Fatalf("an overwrite needs no space: %v", err)
	}
	if _, err := m.OpenFile("/c", os.O_WRONLY|os.O_CREATE, 0o644); err != nil {
		t.Fatalf("an empty file needs no space: %v", err)
	}
	// A removed file's space comes back when its last handle closes.
	must(t, m.Remove("/b"))
	usage(100)
	must(t, f.Close())
	usage(60)
	// Truncation frees space.
	put(t, m, "/a", "a", false)
	usage(1)
	// Stat and the crash image agree with Usage.
	put(t, m, "/a", strings.Repeat("a", 30), true)
	must(t, m.SyncDir("/"))
	put(t, m, "/b", strings.Repeat("b", 50), false) // lost in the crash
	usage(80)
	c := m.Crash()
	if u, _ := c.Usage("/"); u.Used != 30 || u.Avail != 70 {
		t.Fatalf("crash image usage %+v, want 30 used", u)
	}
}

// Each mounted disk has its own space; a full one leaves the others
// writable, and nothing moves across disks.
func TestMemMountedDisks(t *testing.T) {
	m := NewMem(MemConfig{Capacity: 1000})
	must(t, m.Mount("/mnt/d1", 10))
	must(t, m.Mount("/mnt/d2", 20))
	put(t, m, "/mnt/d1/a", strings.Repeat("a", 10), false)
	if err := WriteFile(m, "/mnt/d1/b", []byte("b"), 0o644); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("write to a full disk: %v", err)
	}
	put(t, m, "/mnt/d2/a", strings.Repeat("a", 20), false)
	put(t, m, "/root-file", "r", false)
	for _, c := range []struct {
		path       string
		total, use uint64
	}{{"/mnt/d1", 10, 10}, {"/mnt/d1/a", 10, 10}, {"/mnt/d2", 20, 20}, {"/mnt", 1000, 1}, {"/", 1000, 1}} {
		u, err := m.Usage(c.path)
		must(t, err)
		if u.Total != c.total || u.Used != c.use {
			t.Errorf("usage of %s: %+v, want %d of %d", c.path, u, c.use, c.total)
		}
	}
	if err := m.Rename("/mnt/d1/a", "/mnt/d2/x"); !errors.Is(err, syscall.EXDEV) {
		t.Errorf("rename across disks: %v, want EXDEV", err)
	}
	for _, err := range []error{m.Remove("/mnt/d1"), m.Rename("/mnt/d1", "/mnt/d3"), m.RemoveAll("/mnt/d2")} {
		if !errors.Is(err, syscall.EBUSY) {
			t.Errorf("removing or renaming a mount point: %v, want EBUSY", err)
		}
	}
	if es, _ := m.ReadDir("/mnt/d2"); len(es) != 0 {
		t.Errorf("RemoveAll of a mount point left %d entries", len(es))
	}
	if u, _ := m.Usage("/mnt/d2"); u.Used != 0 {
		t.Errorf("emptied disk still uses %d bytes", u.Used)
	}
	if err := m.Mount("/mnt/d1", 5); !errors.Is(err, syscall.EBUSY) {
		t.Errorf("mounting twice: %v", err)
	}
	if err := m.Mount("/root-file/x", 5); !errors.Is(err, syscall.ENOTDIR) {
		t.Errorf("mounting below a file: %v", err)
	}
	c := m.Crash()
	if u, _ := c.Usage("/mnt/d1"); u.Total != 10 || u.Used != 0 {
		t.Errorf("crash image of a disk: %+v", u)
	}
}

// Faults injected by Faulty reach a caller of a Mem as they do one of the
// operating system.
func TestFaultyOverMem(t *testing.T) {
	m := NewMem(MemConfig{})
	f := NewFaulty(m)
	must(t, f.MkdirAll("/drive", 0o755))
	put(t, f, "/drive/a", "hello", true)
	f.Fail("/drive", OpSync, syscall.EIO)
	fl, err := f.OpenFile("/drive/b", os.O_WRONLY|os.O_CREATE, 0o644)
	must(t, err)
	_, err = fl.Write([]byte("x"))
	must(t, err)
	if err := fl.Sync(); !errors.Is(err, syscall.EIO) {
		t.Fatalf("sync: %v, want EIO", err)
	}
	must(t, fl.Close())
	if err := f.SyncDir("/drive"); !errors.Is(err, syscall.EIO) {
		t.Fatalf("syncdir: %v, want EIO", err)
	}
	f.Heal("/drive")
	if abs, err := f.Abs("drive"); err != nil || abs != "/drive" {
		t.Fatalf("Abs through Faulty: %q, %v", abs, err)
	}
	if b, err := ReadFile(f, "/drive/a"); err != nil || string(b) != "hello" {
		t.Fatalf("after heal: %q, %v", b, err)
	}
}

func TestMemClock(t *testing.T) {
	m := NewMem(MemConfig{})
	put(t, m, "/a", "x", false)
	if fi, _ := m.Stat("/a"); !fi.ModTime().Equal(MemEpoch) {
		t.Fatalf("mtime %v without a clock, want %v", fi.ModTime(), MemEpoch)
	}
	now := MemEpoch
	m = NewMem(MemConfig{Clock: func() time.Time { return now }})
	put(t, m, "/a", "x", false)
	now = now.Add(time.Hour)
	appendTo(t, m, "/a", "y")
	es, err := m.ReadDir("/")
	must(t, err)
	fi, err := es[0].Info()
	must(t, err)
	if !fi.ModTime().Equal(now) || fi.Size() != 2 || fi.Name() != "a" || fi.Mode().Perm() != 0o644 {
		t.Fatalf("info %v %d %q %v, want a of 2 bytes modified at %v", fi.ModTime(), fi.Size(), fi.Name(), fi.Mode(), now)
	}
}

func TestMemUnsupportedFlag(t *testing.T) {
	m := NewMem(MemConfig{})
	if _, err := m.OpenFile("/a", os.O_CREATE|os.O_WRONLY|syscall.O_DIRECT, 0o644); !errors.Is(err, errors.ErrUnsupported) {
		t.Fatalf("O_DIRECT: %v, want ErrUnsupported", err)
	}
}

// Concurrent callers of one Mem, a crash taken meanwhile included, are
// safe (run with -race) and each sees its own files whole.
func TestMemConcurrent(t *testing.T) {
	m := NewMem(MemConfig{})
	must(t, m.Mkdir("/d", 0o755))
	must(t, m.SyncDir("/"))
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 50 {
				name := fmt.Sprintf("/d/g%d-%d", g, i)
				data := strings.Repeat(string(rune('a'+g)), 100+i)
				put(t, m, name, data, true)
				if err := m.SyncDir("/d"); err != nil {
					t.Error(err)
				}
				f, err := m.Open(name)
				if err != nil {
					t.Error(err)
					return
				}
				var inner sync.WaitGroup
				for range 2 {
					inner.Go(func() {
						b := make([]byte, len(data))
						if n, err := f.ReadAt(b, 0); n != len(data) || string(b) != data {
							t.Errorf("%s: read %d bytes, %v", name, n, err)
						}
					})
				}
				inner.Wait()
				f.Close()
				if i%2 == 0 {
					if err := m.Remove(name); err != nil {
						t.Error(err)
					}
				}
			}
		})
	}
	wg.Go(func() {
		for range 20 {
			c := m.Crash()
			es, err := c.ReadDir("/d")
			if err != nil {
				t.Error(err)
				return
			}
			for _, e := range es {
				// Another goroutine's SyncDir may have made the name
				// durable before the data: empty, or whole.
				var g, i int
				fmt.Sscanf(e.Name(), "g%d-%d", &g, &i)
				b, err := ReadFile(c, filepath.Join("/d", e.Name()))
				if err != nil || len(b) != 0 && string(b) != strings.Repeat(string(rune('a'+g)), 100+i) {
					t.Errorf("crash image: %s holds %q (%v), want nothing or all that was synced", e.Name(), b, err)
				}
			}
		}
	})
	wg.Wait()
	es, err := m.ReadDir("/d")
	must(t, err)
	if len(es) != 4*25 {
		t.Fatalf("%d files left, want 100", len(es))
	}
}

func TestMkdirAllDurableSurvivesCrash(t *testing.T) {
	m := NewMem(MemConfig{})
	must(t, m.MkdirAll("/a", 0o755))
	must(t, m.SyncDir("/"))
	must(t, MkdirAllDurable(m, "/a/b/c/d", 0o755))
	must(t, m.MkdirAll("/a/x/y", 0o755))
	got := dump(t, m.Crash(), "/")
	if want := "a/\na/b/\na/b/c/\na/b/c/d/\n"; got != want {
		t.Fatalf("after a crash:\n%s\nwant:\n%s", got, want)
	}
	put(t, m, "/a/file", "", false)
	if err := MkdirAllDurable(m, "/a/file/x", 0o755); !errors.Is(err, syscall.ENOTDIR) {
		t.Fatalf("below a file: %v, want ENOTDIR", err)
	}
	// The same on the operating system.
	dir := filepath.Join(t.TempDir(), "p", "q")
	must(t, MkdirAllDurable(OS(), dir, 0o755))
	must(t, MkdirAllDurable(OS(), dir, 0o755))
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		t.Fatalf("on the OS: %v", err)
	}
}

func TestWriteFileDurableSurvivesCrash(t *testing.T) {
	m := NewMem(MemConfig{})
	must(t, MkdirAllDurable(m, "/a", 0o755))
	must(t, WriteFileDurable(m, "/a/f", []byte("first"), 0o600))
	if b, err := ReadFile(m.Crash(), "/a/f"); err != nil || string(b) != "first" {
		t.Fatalf("after a crash: %q, %v; want the file written", b, err)
	}
	must(t, WriteFileDurable(m, "/a/f", []byte("second"), 0o600))
	c := m.Crash()
	if b, err := ReadFile(c, "/a/f"); err != nil || string(b) != "second" {
		t.Fatalf("after a crash: %q, %v; want the file replaced", b, err)
	}
	if _, err := c.Stat("/a/f.tmp"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the temporary file outlived the write: %v", err)
	}
}
