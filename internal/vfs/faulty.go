package vfs

import (
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"
	"sync"
)

// Op is a set of file system operations a fault applies to.
type Op uint32

const (
	OpOpen  Op = 1 << iota // Open, OpenFile
	OpRead                 // Read, ReadAt, ReadDir
	OpWrite                // Write, WriteAt
	OpSync                 // Sync, SyncDir
	OpMeta                 // Remove, RemoveAll, Rename, Mkdir, MkdirAll
	OpStat                 // Stat, Usage
	OpAll   Op = 1<<iota - 1
)

// Faulty wraps an FS and fails chosen operations on chosen paths. Faults
// apply to files opened before they were set as well. Safe for concurrent
// use.
type Faulty struct {
	base FS
	mu   struct {
		sync.Mutex
		faults map[string]fault // by path prefix
	}
}

type fault struct {
	ops Op
	err error
}

// NewFaulty returns a Faulty over base with no faults.
func NewFaulty(base FS) *Faulty {
	f := &Faulty{base: base}
	f.mu.faults = map[string]fault{}
	return f
}

// Fail makes ops on prefix (a file or a directory and all below it) fail
// with an error wrapping err.
func (f *Faulty) Fail(prefix string, ops Op, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.mu.faults[filepath.Clean(prefix)] = fault{ops: ops, err: err}
}

// Heal removes the fault set on prefix.
func (f *Faulty) Heal(prefix string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.mu.faults, filepath.Clean(prefix))
}

func (f *Faulty) check(op Op, opName, name string) error {
	name = filepath.Clean(name)
	f.mu.Lock()
	defer f.mu.Unlock()
	for p, ft := range f.mu.faults {
		if ft.ops&op == 0 {
			continue
		}
		if name == p || strings.HasPrefix(name, p+string(filepath.Separator)) {
			return &fs.PathError{Op: opName, Path: name, Err: fmt.Errorf("injected fault: %w", ft.err)}
		}
	}
	return nil
}

func (f *Faulty) Open(name string) (File, error) {
	if err := f.check(OpOpen, "open", name); err != nil {
		return nil, err
	}
	fl, err := f.base.Open(name)
	if err != nil {
		return nil, err
	}
	return &faultyFile{File: fl, fs: f, name: name}, nil
}

func (f *Faulty) OpenFile(name string, flag int, perm fs.FileMode) (File, error) {
	if err := f.check(OpOpen, "open", name); err != nil {
		return nil, err
	}
	fl, err := f.base.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return &faultyFile{File: fl, fs: f, name: name}, nil
}

func (f *Faulty) Remove(name string) error {
	if err := f.check(OpMeta, "remove", name); err != nil {
		return err
	}
	return f.base.Remove(name)
}

func (f *Faulty) RemoveAll(name string) error {
	if err := f.check(OpMeta, "removeall", name); err != nil {
		return err
	}
	return f.base.RemoveAll(name)
}

func (f *Faulty) Rename(o, n string) error {
	if err := f.check(OpMeta, "rename", o); err != nil {
		return err
	}
	if err := f.check(OpMeta, "rename", n); err != nil {
		return err
	}
	return f.base.Rename(o, n)
}

func (f *Faulty) Mkdir(name string, perm fs.FileMode) error {
	if err := f.check(OpMeta, "mkdir", name); err != nil {
		return err
	}
	return f.base.Mkdir(name, perm)
}

func (f *Faulty) MkdirAll(name string, perm fs.FileMode) error {
	if err := f.check(OpMeta, "mkdir", name); err != nil {
		return err
	}
	return f.base.MkdirAll(name, perm)
}

func (f *Faulty) ReadDir(name string) ([]fs.DirEntry, error) {
	if err := f.check(OpRead, "readdir", name); err != nil {
		return nil, err
	}
	return f.base.ReadDir(name)
}

func (f *Faulty) Stat(name string) (fs.FileInfo, error) {
	if err := f.check(OpStat, "stat", name); err != nil {
		return nil, err
	}
	return f.base.Stat(name)
}

func (f *Faulty) SyncDir(name string) error {
	if err := f.check(OpSync, "sync", name); err != nil {
		return err
	}
	return f.base.SyncDir(name)
}

func (f *Faulty) Usage(name string) (Usage, error) {
	if err := f.check(OpStat, "statfs", name); err != nil {
		return Usage{}, err
	}
	return f.base.Usage(name)
}

// Abs is not I/O: no fault applies.
func (f *Faulty) Abs(name string) (string, error) { return f.base.Abs(name) }

type faultyFile struct {
	File
	fs   *Faulty
	name string
}

func (f *faultyFile) Read(p []byte) (int, error) {
	if err := f.fs.check(OpRead, "read", f.name); err != nil {
		return 0, err
	}
	return f.File.Read(p)
}

func (f *faultyFile) ReadAt(p []byte, off int64) (int, error) {
	if err := f.fs.check(OpRead, "read", f.name); err != nil {
		return 0, err
	}
	return f.File.ReadAt(p, off)
}

func (f *faultyFile) Write(p []byte) (int, error) {
	if err := f.fs.check(OpWrite, "write", f.name); err != nil {
		return 0, err
	}
	return f.File.Write(p)
}

func (f *faultyFile) WriteAt(p []byte, off int64) (int, error) {
	if err := f.fs.check(OpWrite, "write", f.name); err != nil {
		return 0, err
	}
	return f.File.WriteAt(p, off)
}

func (f *faultyFile) Sync() error {
	if err := f.fs.check(OpSync, "sync", f.name); err != nil {
		return err
	}
	return f.File.Sync()
}

func (f *faultyFile) Stat() (fs.FileInfo, error) {
	if err := f.fs.check(OpStat, "stat", f.name); err != nil {
		return nil, err
	}
	return f.File.Stat()
}

var (
	_ FS   = osFS{}
	_ FS   = (*Faulty)(nil)
	_ File = osFile{}
	_ File = (*faultyFile)(nil)
)
