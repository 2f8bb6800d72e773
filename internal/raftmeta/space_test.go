package raftmeta

import (
	"errors"
	"strings"
	"syscall"
	"testing"

	"github.com/redoubt-io/redoubt/internal/meta"
	"github.com/redoubt-io/redoubt/internal/vfs"
)

// A host on a drive without room to open its database fails at once,
// naming the directory, instead of leaving Pebble to retry its first
// flush forever.
func TestNewOnFullDriveFailsFast(t *testing.T) {
	mem := vfs.NewMem(vfs.MemConfig{})
	if err := mem.Mount("/disks/0", 4<<20); err != nil {
		t.Fatal(err)
	}
	if err := vfs.WriteFile(mem, "/disks/0/ballast", make([]byte, 4<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.NodeID = 1
	cfg.Dir = "/disks/0/raft"
	cfg.FS = meta.PebbleFS(mem)
	cfg.Send = memSender{}
	cfg.Forward = memForwarder{}
	cfg.Logger = testLogger(t)
	h, err := New(cfg)
	if err == nil {
		h.Close()
		t.Fatal("opened on a full drive")
	}
	if !errors.Is(err, syscall.ENOSPC) || !strings.Contains(err.Error(), cfg.Dir) {
		t.Fatalf("New on a full drive: %v, want no space naming %s", err, cfg.Dir)
	}
	t.Log(err)
}
