package store

import (
	"bytes"
	"context"
	"io"
	"os"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// residentPages counts the pages of the file at path held in the page
// cache, and its total pages.
func residentPages(t *testing.T, path string) (resident, total int) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	m, err := unix.Mmap(int(f.Fd()), 0, int(fi.Size()), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(m)
	page := os.Getpagesize()
	vec := make([]byte, (len(m)+page-1)/page)
	_, _, errno := unix.Syscall(unix.SYS_MINCORE, uintptr(unsafe.Pointer(&m[0])), uintptr(len(m)), uintptr(unsafe.Pointer(&vec[0])))
	if errno != 0 {
		t.Fatal(errno)
	}
	for _, v := range vec {
		if v&1 != 0 {
			resident++
		}
	}
	return resident, len(vec)
}

// A committed shard leaves the page cache unless the drive keeps written
// pages, and reads back whole either way.
func TestCommitDropsWrittenPages(t *testing.T) {
	root := t.TempDir()
	var st unix.Statfs_t
	if err := unix.Statfs(root, &st); err != nil {
		t.Fatal(err)
	}
	if st.Type == unix.TMPFS_MAGIC || st.Type == unix.RAMFS_MAGIC {
		t.Skip("a memory file system has no page cache to leave")
	}
	data := make([]byte, 4<<20+123)
	rng := seeded(t)
	for i := range data {
		data[i] = byte(rng.Uint32())
	}
	for _, keep := range []bool{false, true} {
		cfg := DefaultConfig()
		cfg.KeepWrittenCache = keep
		d := openDrives(t, cfg, tempPaths(t, 1))[0]
		name := Name{ID: NewID(), Shard: 1}
		writeShard(t, d, name, data)
		path, err := d.shardPath(name)
		if err != nil {
			t.Fatal(err)
		}
		resident, total := residentPages(t, path)
		t.Logf("keep %v: %d of %d pages cached after commit", keep, resident, total)
		if keep && resident < total/2 {
			t.Errorf("keep: %d of %d pages cached, want them kept", resident, total)
		}
		if !keep && resident > total/8 {
			t.Errorf("drop: %d of %d pages still cached", resident, total)
		}
		r, err := d.OpenShard(context.Background(), name)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(io.NewSectionReader(r, 0, r.Size()))
		r.Close()
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("keep %v: read back %d bytes, err %v", keep, len(got), err)
		}
	}
}
