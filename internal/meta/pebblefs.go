package meta

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"syscall"

	pebblevfs "github.com/cockroachdb/pebble/v2/vfs"

	"github.com/redoubt-io/redoubt/internal/vfs"
)

// PebbleFS returns the file system Pebble should use to keep its files
// on fsys: Pebble's own for the operating system's (it knows file
// descriptors, preallocation and read-ahead), otherwise an adapter. With
// a vfs.Mem, Pebble's files share each mounted disk's capacity with
// whatever else is stored there, so a test fills a drive as a node would
// (TestPebbleOnMemFillsItsDrive).
//
// The adapter has no hard links (Pebble copies instead) and its locks
// hold within the returned FS only, as if each PebbleFS were a process.
func PebbleFS(fsys vfs.FS) pebblevfs.FS {
	if fsys == nil || fsys == vfs.OS() {
		return pebblevfs.Default
	}
	return &pebbleFS{fs: fsys, locks: map[string]bool{}}
}

type pebbleFS struct {
	fs vfs.FS

	mu    sync.Mutex
	locks map[string]bool // guarded by mu
}

var _ pebblevfs.FS = (*pebbleFS)(nil)

// Create gives a new file even where one exists, as Pebble requires: the
// old one's open handles keep the old content.
func (p *pebbleFS) Create(name string, _ pebblevfs.DiskWriteCategory) (pebblevfs.File, error) {
	if err := p.fs.Remove(name); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	return p.open(name, os.O_RDWR|os.O_CREATE|os.O_EXCL)
}

func (p *pebbleFS) Link(oldname, newname string) error {
	return &os.LinkError{Op: "link", Old: oldname, New: newname, Err: errors.ErrUnsupported}
}

func (p *pebbleFS) Open(name string, opts ...pebblevfs.OpenOption) (pebblevfs.File, error) {
	f, err := p.open(name, os.O_RDONLY)
	if err != nil {
		return nil, err
	}
	for _, o := range opts {
		o.Apply(f)
	}
	return f, nil
}

func (p *pebbleFS) OpenReadWrite(name string, _ pebblevfs.DiskWriteCategory, opts ...pebblevfs.OpenOption) (pebblevfs.File, error) {
	f, err := p.open(name, os.O_RDWR|os.O_CREATE)
	if err != nil {
		return nil, err
	}
	for _, o := range opts {
		o.Apply(f)
	}
	return f, nil
}

func (p *pebbleFS) OpenDir(name string) (pebblevfs.File, error) { return p.open(name, os.O_RDONLY) }

func (p *pebbleFS) open(name string, flag int) (pebblevfs.File, error) {
	f, err := p.fs.OpenFile(name, flag, 0o644)
	if err != nil {
		return nil, err
	}
	return pebbleFile{f}, nil
}

func (p *pebbleFS) Remove(name string) error                    { return p.fs.Remove(name) }
func (p *pebbleFS) RemoveAll(name string) error                 { return p.fs.RemoveAll(name) }
func (p *pebbleFS) Rename(oldname, newname string) error        { return p.fs.Rename(oldname, newname) }
func (p *pebbleFS) MkdirAll(dir string, perm os.FileMode) error { return p.fs.MkdirAll(dir, perm) }
func (p *pebbleFS) PathBase(path string) string                 { return filepath.Base(path) }
func (p *pebbleFS) PathJoin(elem ...string) string              { return filepath.Join(elem...) }
func (p *pebbleFS) PathDir(path string) string                  { return filepath.Dir(path) }
func (p *pebbleFS) Unwrap() pebblevfs.FS                        { return nil }

func (p *pebbleFS) ReuseForWrite(oldname, newname string, _ pebblevfs.DiskWriteCategory) (pebblevfs.File, error) {
	if err := p.fs.Rename(oldname, newname); err != nil {
		return nil, err
	}
	return p.open(newname, os.O_RDWR)
}

func (p *pebbleFS) Lock(name string) (io.Closer, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.locks[name] {
		return nil, &fs.PathError{Op: "lock", Path: name, Err: syscall.EAGAIN}
	}
	if err := vfs.WriteFile(p.fs, name, nil, 0o644); err != nil {
		return nil, err
	}
	p.locks[name] = true
	return &pebbleLock{p: p, name: name}, nil
}

type pebbleLock struct {
	p    *pebbleFS
	name string
	once sync.Once
}

func (l *pebbleLock) Close() error {
	l.once.Do(func() {
		l.p.mu.Lock()
		delete(l.p.locks, l.name)
		l.p.mu.Unlock()
	})
	return nil
}

func (p *pebbleFS) List(dir string) ([]string, error) {
	ents, err := p.fs.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	names := make([]string, len(ents))
	for i, e := range ents {
		names[i] = e.Name()
	}
	return names, nil
}

func (p *pebbleFS) Stat(name string) (pebblevfs.FileInfo, error) {
	fi, err := p.fs.Stat(name)
	if err != nil {
		return nil, err
	}
	return pebbleInfo{fi}, nil
}

func (p *pebbleFS) GetDiskUsage(path string) (pebblevfs.DiskUsage, error) {
	u, err := p.fs.Usage(path)
	if err != nil {
		return pebblevfs.DiskUsage{}, err
	}
	return pebblevfs.DiskUsage{AvailBytes: u.Avail, TotalBytes: u.Total, UsedBytes: u.Used}, nil
}

// pebbleFile is a vfs.File with the calls Pebble adds: hints it may
// ignore, and syncs that are all full syncs.
type pebbleFile struct{ vfs.File }

func (f pebbleFile) Preallocate(off, n int64) error { return nil }
func (f pebbleFile) SyncTo(int64) (bool, error)     { return true, f.Sync() }
func (f pebbleFile) SyncData() error                { return f.Sync() }
func (f pebbleFile) Prefetch(off, n int64) error    { return nil }
func (f pebbleFile) Fd() uintptr                    { return pebblevfs.InvalidFd }

func (f pebbleFile) Stat() (pebblevfs.FileInfo, error) {
	fi, err := f.File.Stat()
	if err != nil {
		return nil, err
	}
	return pebbleInfo{fi}, nil
}

// pebbleInfo is a FileInfo on no particular device.
type pebbleInfo struct{ fs.FileInfo }

func (pebbleInfo) DeviceID() pebblevfs.DeviceID { return pebblevfs.DeviceID{} }
