package store

import (
	"bytes"
	"context"
	"errors"
	"path"
	"syscall"
	"testing"

	"github.com/redoubt-io/redoubt/internal/vfs"
)

// A drive keeps its reserve free of shard data: new shard files are
// refused once the drive has less than Config.Reserve free, a writer
// already under way stops at half of it, and both failures are ErrNoSpace
// (hence ENOSPC), never a failed drive. Space freed by any means counts
// at once.
func TestDriveReserve(t *testing.T) {
	ctx := context.Background()
	const capacity, reserve = 400_000, 100_000
	mem := vfs.NewMem(vfs.MemConfig{})
	if err := mem.Mount("/disks/0", capacity); err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.BlockSize = 4096
	cfg.WriteBuffer = 8192
	cfg.Reserve = reserve
	cfg.FS = mem
	d := openDrives(t, cfg, []string{"/disks/0"})[0]
	free := func() uint64 { return d.Stats().FreeBytes }

	// Fill with 20 kB shards until a new one is refused.
	data := bytes.Repeat([]byte("k"), 20_000)
	var kept []Name
	var err error
	for {
		var w *Writer
		name := Name{ID: NewID()}
		if w, err = d.Create(ctx, name); err != nil {
			break
		}
		if _, err = w.Write(data); err != nil {
			w.Abort()
			break
		}
		if err = w.Commit(ctx); err != nil {
			break
		}
		kept = append(kept, name)
	}
	var se *SpaceError
	if !errors.As(err, &se) || !errors.Is(err, ErrNoSpace) || !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("create on a drive under its reserve: %v, want a *SpaceError, ErrNoSpace and ENOSPC", err)
	}
	if se.Min != reserve || se.Free >= reserve || se.Free != free() || se.Path != d.Path() {
		t.Fatalf("refusal %+v with %d free, want the reserve %d and the free space", se, free(), reserve)
	}
	t.Logf("%d shards stored, then: %v", len(kept), err)
	if st := d.Stats(); st.State != Online || st.IOErrors != 0 || st.ReserveBytes != reserve {
		t.Fatalf("stats after the refusal: %+v, want online, no I/O error, the reserve", st)
	}
	if err := d.Room(); !errors.Is(err, ErrNoSpace) {
		t.Fatalf("Room under the reserve: %v", err)
	}
	for _, n := range kept {
		if got, err := readShard(ctx, d, n); err != nil || !bytes.Equal(got, data) {
			t.Fatalf("read %s under the reserve: %d bytes, %v", n, len(got), err)
		}
	}

	// A writer that started with room stops at half the reserve, never
	// below it by more than one buffer.
	if err := d.Remove(ctx, kept[0]); err != nil {
		t.Fatal(err)
	}
	kept = kept[1:]
	if err := d.Room(); err != nil {
		t.Fatalf("room after a delete: %v", err)
	}
	w, err := d.Create(ctx, Name{ID: NewID()})
	if err != nil {
		t.Fatal(err)
	}
	for err == nil {
		_, err = w.Write(data)
	}
	w.Abort()
	if !errors.As(err, &se) || se.Min != reserve/2 {
		t.Fatalf("long write: %v, want a *SpaceError at half the reserve", err)
	}
	buffer := uint64(cfg.WriteBuffer/cfg.BlockSize) * uint64(cfg.BlockSize+crcSize)
	if se.Free+buffer < reserve/2 {
		t.Fatalf("long write stopped with %d free, below half the reserve %d by more than a buffer", se.Free, reserve)
	}
	t.Logf("long write: %v", err)

	// Space freed outside the store counts at once.
	filler := path.Join(d.Path(), "filler")
	if err := vfs.WriteFile(mem, filler, make([]byte, free()), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, n := range kept {
		if err := d.Remove(ctx, n); err != nil {
			t.Fatalf("delete on a full drive: %v", err)
		}
	}
	if err := d.Check(); err != nil || d.State() != Online {
		t.Fatalf("check: %v, state %v", err, d.State())
	}
	if err := mem.Remove(filler); err != nil {
		t.Fatal(err)
	}
	writeShard(t, d, Name{ID: NewID()}, data)
}

// A real ENOSPC, below any reserve, is ErrNoSpace too.
func TestDriveDiskFullIsNoSpace(t *testing.T) {
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
	w, err := d.Create(ctx, Name{ID: NewID()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err = w.Write(make([]byte, 50_000)); err == nil {
		err = w.Commit(ctx)
	} else {
		w.Abort()
	}
	if !errors.Is(err, ErrNoSpace) || !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("write past the end of the disk: %v, want ErrNoSpace", err)
	}
}

// A drive found full at start (its temp directory cannot be made) is
// full, not failed: it serves what it holds, passes its check, and takes
// new shards once there is room.
func TestDriveFullAtOpen(t *testing.T) {
	ctx := context.Background()
	mem := vfs.NewMem(vfs.MemConfig{})
	if err := mem.Mount("/disks/0", 1<<20); err != nil {
		t.Fatal(err)
	}
	faulty := vfs.NewFaulty(mem)
	cfg := DefaultConfig()
	cfg.FS = faulty
	d := openDrives(t, cfg, []string{"/disks/0"})[0]
	kept := Name{ID: NewID()}
	data := bytes.Repeat([]byte("k"), 10_000)
	writeShard(t, d, kept, data)

	// The temp directory is gone and cannot be made again: the disk is
	// full (a directory costs a block on most file systems).
	if err := mem.RemoveAll("/disks/0/.tmp"); err != nil {
		t.Fatal(err)
	}
	faulty.Fail("/disks/0/.tmp", vfs.OpMeta, syscall.ENOSPC)
	d = openDrives(t, cfg, []string{"/disks/0"})[0]
	if d.State() != Online {
		t.Fatal("a drive full at start is marked failed")
	}
	if err := d.Check(); err != nil {
		t.Fatalf("check of a drive full at start: %v", err)
	}
	if got, err := readShard(ctx, d, kept); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read: %d bytes, %v", len(got), err)
	}
	faulty.Heal("/disks/0/.tmp")
	if err := d.Check(); err != nil {
		t.Fatal(err)
	}
	writeShard(t, d, Name{ID: NewID()}, data)
}
