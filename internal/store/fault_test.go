package store

import (
	"context"
	"errors"
	"log/slog"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/redoubt-io/redoubt/internal/vfs"
)

// countingHandler counts records at or above Error and forwards all.
type countingHandler struct {
	slog.Handler
	errors *atomic.Int32
}

func (h countingHandler) Handle(ctx context.Context, r slog.Record) error {
	if r.Level >= slog.LevelError {
		h.errors.Add(1)
	}
	return h.Handler.Handle(ctx, r)
}

func (h countingHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return countingHandler{h.Handler.WithAttrs(as), h.errors}
}

func TestIOErrorFailsDriveAndLogsOnce(t *testing.T) {
	faulty := vfs.NewFaulty(vfs.OS())
	cfg := DefaultConfig()
	cfg.FS = faulty
	var errs atomic.Int32
	logger := slog.New(countingHandler{testLogger(t).Handler(), &errs})
	paths := tempPaths(t, 2)
	ds, err := Open(context.Background(), cfg, paths, logger)
	if err != nil {
		t.Fatal(err)
	}
	d := ds[0]
	ctx := context.Background()
	name := Name{ID: NewID()}
	writeShard(t, d, name, []byte("payload"))

	faulty.Fail(paths[0], vfs.OpRead, syscall.EIO)
	for range 5 {
		if _, err := d.OpenShard(ctx, name); !errors.Is(err, ErrDriveFailed) {
			t.Fatalf("read with EIO: %v, want ErrDriveFailed", err)
		}
	}
	if d.State() != Failed {
		t.Fatal("drive not failed")
	}
	if n := errs.Load(); n != 1 {
		t.Fatalf("%d error records, want 1", n)
	}
	if ds[1].State() != Online {
		t.Fatal("the other drive suffered")
	}
	faulty.Heal(paths[0])
	if err := d.Check(); err != nil {
		t.Fatal(err)
	}
	r, err := d.OpenShard(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
}

func TestFsyncFailureFailsDrive(t *testing.T) {
	faulty := vfs.NewFaulty(vfs.OS())
	cfg := DefaultConfig()
	cfg.FS = faulty
	paths := tempPaths(t, 1)
	d := openDrives(t, cfg, paths)[0]
	ctx := context.Background()
	faulty.Fail(paths[0], vfs.OpSync, syscall.EIO)
	name := Name{ID: NewID()}
	w, err := d.Create(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("data"))
	if err := w.Commit(ctx); err == nil {
		t.Fatal("commit succeeded with a failing fsync")
	}
	if d.State() != Failed {
		t.Fatal("drive with failing fsync still online")
	}
	if err := d.Check(); err == nil {
		t.Fatal("check passed while fsync still fails")
	}
	faulty.Heal(paths[0])
	if _, err := d.OpenShard(ctx, name); !errors.Is(err, ErrDriveFailed) {
		t.Fatalf("failed drive served a read: %v", err)
	}
	if err := d.Check(); err != nil {
		t.Fatal(err)
	}
	if _, err := d.OpenShard(ctx, name); !errors.Is(err, ErrNotFound) {
		t.Fatalf("shard whose commit failed: %v, want ErrNotFound", err)
	}
}
