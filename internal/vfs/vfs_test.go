package vfs

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

func TestFaultyInjectsAndHeals(t *testing.T) {
	dir := t.TempDir()
	f := NewFaulty(OS())
	sub := filepath.Join(dir, "drive")
	if err := f.MkdirAll(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	name := filepath.Join(sub, "a")
	if err := WriteFile(f, name, []byte("hello"), 0o644); err != nil {
		t.Fatal(err)
	}
	fl, err := f.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer fl.Close()
	f.Fail(sub, OpRead, syscall.EIO)
	if _, err := fl.ReadAt(make([]byte, 1), 0); !errors.Is(err, syscall.EIO) {
		t.Fatalf("read on an open file: %v, want EIO", err)
	}
	if _, err := ReadFile(f, name); !errors.Is(err, syscall.EIO) {
		t.Fatalf("ReadFile: %v", err)
	}
	if _, err := f.Stat(name); err != nil {
		t.Fatalf("stat is not a read: %v", err)
	}
	if _, err := ReadFile(f, filepath.Join(dir, "drive2")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("a sibling with a common prefix is affected: %v", err)
	}
	f.Heal(sub)
	b, err := ReadFile(f, name)
	if err != nil || string(b) != "hello" {
		t.Fatalf("after heal: %q, %v", b, err)
	}
	u, err := OS().Usage(dir)
	if err != nil || u.Total == 0 {
		t.Fatalf("usage %+v, %v", u, err)
	}
	if _, err := OS().Open(filepath.Join(dir, "none")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing file: %v", err)
	}
}
