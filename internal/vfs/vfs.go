package vfs

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// File is an open file.
type File interface {
	io.Reader
	io.ReaderAt
	io.Writer
	io.WriterAt
	io.Closer
	Sync() error
	Stat() (fs.FileInfo, error)
	// StartWriteback hints that [off, off+n) may be written to disk now,
	// without waiting; it never fails visibly.
	StartWriteback(off, n int64)
}

// Usage is the space of the file system holding a path.
type Usage struct {
	Total, Used, Avail uint64
}

// FS is the file system interface of the storage layer.
type FS interface {
	Open(name string) (File, error)
	OpenFile(name string, flag int, perm fs.FileMode) (File, error)
	Remove(name string) error
	RemoveAll(name string) error
	Rename(oldname, newname string) error
	Mkdir(name string, perm fs.FileMode) error
	MkdirAll(name string, perm fs.FileMode) error
	ReadDir(name string) ([]fs.DirEntry, error)
	Stat(name string) (fs.FileInfo, error)
	// SyncDir makes the entries of a directory durable.
	SyncDir(name string) error
	Usage(name string) (Usage, error)
	// Abs returns an absolute form of name, resolved against the file
	// system's working directory (the process's for OS, "/" for Mem).
	Abs(name string) (string, error)
}

// ReadFile reads a whole file through fsys.
func ReadFile(fsys FS, name string) ([]byte, error) {
	f, err := fsys.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(f)
}

// WriteFile writes data to a file through fsys, truncating it, without
// syncing.
func WriteFile(fsys FS, name string, data []byte, perm fs.FileMode) error {
	f, err := fsys.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, perm)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// WriteFileDurable replaces name with data so that a crash leaves either
// the old file or the new one, whole, and the new one once it returns: it
// writes a temporary file beside name, syncs it, renames it over name and
// syncs the directory (TestWriteFileDurableSurvivesCrash).
func WriteFileDurable(fsys FS, name string, data []byte, perm fs.FileMode) error {
	tmp := name + ".tmp"
	f, err := fsys.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, perm)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = fsys.Rename(tmp, name)
	}
	if err == nil {
		return fsys.SyncDir(filepath.Dir(name))
	}
	_ = fsys.Remove(tmp)
	return err
}

// MkdirAllDurable creates name and any missing parents, syncing the parent
// of each directory it creates, so that the whole path survives a crash
// (TestMkdirAllDurableSurvivesCrash). Directories that exist already are
// left as they are.
func MkdirAllDurable(fsys FS, name string, perm fs.FileMode) error {
	abs, err := fsys.Abs(name)
	if err != nil {
		return err
	}
	var missing []string
	for dir := abs; ; dir = filepath.Dir(dir) {
		fi, err := fsys.Stat(dir)
		if err == nil {
			if !fi.IsDir() {
				return &fs.PathError{Op: "mkdir", Path: dir, Err: syscall.ENOTDIR}
			}
			break
		}
		if !errors.Is(err, fs.ErrNotExist) || dir == filepath.Dir(dir) {
			return err
		}
		missing = append(missing, dir)
	}
	for i := len(missing) - 1; i >= 0; i-- {
		dir := missing[i]
		if err := fsys.Mkdir(dir, perm); err != nil && !errors.Is(err, fs.ErrExist) {
			return err
		}
		if err := fsys.SyncDir(filepath.Dir(dir)); err != nil {
			return err
		}
	}
	return nil
}

// OS returns the operating system's file system.
func OS() FS { return osFS{} }

type osFS struct{}

type osFile struct{ *os.File }

func (f osFile) StartWriteback(off, n int64) { startWriteback(f.File, off, n) }

func (osFS) Open(name string) (File, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	return osFile{f}, nil
}

func (osFS) OpenFile(name string, flag int, perm fs.FileMode) (File, error) {
	f, err := os.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return osFile{f}, nil
}

func (osFS) Remove(name string) error                     { return os.Remove(name) }
func (osFS) RemoveAll(name string) error                  { return os.RemoveAll(name) }
func (osFS) Rename(o, n string) error                     { return os.Rename(o, n) }
func (osFS) Mkdir(name string, perm fs.FileMode) error    { return os.Mkdir(name, perm) }
func (osFS) MkdirAll(name string, perm fs.FileMode) error { return os.MkdirAll(name, perm) }
func (osFS) ReadDir(name string) ([]fs.DirEntry, error)   { return os.ReadDir(name) }
func (osFS) Stat(name string) (fs.FileInfo, error)        { return os.Stat(name) }
func (osFS) Abs(name string) (string, error)              { return filepath.Abs(name) }

func (osFS) SyncDir(name string) error {
	f, err := os.Open(name)
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

func (osFS) Usage(name string) (Usage, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(filepath.Clean(name), &st); err != nil {
		return Usage{}, &fs.PathError{Op: "statfs", Path: name, Err: err}
	}
	bs := uint64(st.Bsize)
	return Usage{Total: st.Blocks * bs, Used: (st.Blocks - st.Bfree) * bs, Avail: st.Bavail * bs}, nil
}
