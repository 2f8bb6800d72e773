package vfs

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"
)

// DefaultMemCapacity is the capacity of a Mem whose MemConfig leaves it
// zero: large enough that no test fills it by accident, small enough that
// sums of many drives stay far from overflowing a uint64.
const DefaultMemCapacity = 1 << 40

// MemEpoch is the modification time a Mem stamps when it has no clock.
var MemEpoch = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

// MemConfig configures a Mem. The zero value is valid.
type MemConfig struct {
	// Capacity is the bytes of file data the root volume holds (see
	// Mem.Mount for more volumes). A write that would pass it fails with
	// an error wrapping syscall.ENOSPC. Zero means DefaultMemCapacity.
	Capacity uint64
	// Clock stamps modification times. Nil means MemEpoch always: a Mem
	// never reads the wall clock, so a simulation stays a function of its
	// seed.
	Clock func() time.Time
}

// Mem is an in-memory FS that can crash: one machine's file systems, for
// tests and whole-cluster simulation. It keeps, besides the current state,
// what a power cut would leave (see CrashClone), and charges file data to
// volumes of fixed capacity so that a full disk fails writes with ENOSPC
// (TestMemDiskFull).
//
// Semantics follow Linux and package os for the calls the storage layer
// makes (TestMemMatchesOS): Open; OpenFile with O_RDONLY, O_WRONLY,
// O_RDWR, O_CREATE, O_EXCL, O_TRUNC, O_APPEND and O_SYNC (other flags fail
// with errors.ErrUnsupported); Rename replacing a file but, as os.Rename,
// never a directory (EEXIST); Remove of a file or an empty directory;
// ReadDir sorted by name. Errors are *fs.PathError (*os.LinkError for
// Rename) around the syscall.Errno Linux returns, so both
// errors.Is(err, fs.ErrNotExist) and errors.Is(err, syscall.ENOENT) hold.
// An open file keeps working after its name is removed or replaced; its
// space is freed once it is both unlinked and closed (TestMemDiskFull).
//
// Differences from a real file system: paths are slash-separated and
// relative ones are resolved against "/"; there are no symbolic links,
// hard links, owners or umask; holes in files are stored (and charged) as
// zeros; directories cost no space.
//
// Safe for concurrent use (TestMemConcurrent): one mutex serialises every
// call, which also makes each call atomic with respect to CrashClone.
type Mem struct {
	clock func() time.Time
	mu    struct {
		sync.Mutex
		root *memNode
	}
}

// volume is one disk: the space of the files below its mount point.
type volume struct {
	capacity uint64
	used     uint64 // bytes of file data of nodes still linked or open
}

func (v *volume) avail() uint64 {
	if v.used >= v.capacity {
		return 0
	}
	return v.capacity - v.used
}

// memNode is a file or a directory (an inode). Every field is guarded by
// the owning Mem's mu.
type memNode struct {
	vol   *volume // the volume holding the node (for a mount point, the mounted one)
	mode  fs.FileMode
	mtime time.Time

	// Files. synced is the content as of the last Sync; it is never
	// changed in place (its capacity is cut to its length), so data may
	// share its array until a write lands below len(synced).
	data   []byte
	synced []byte
	dirty  bool // written since the last Sync
	links  int  // directory entries naming the node
	opens  int  // open handles

	// Directories. durable is the set of entries as of the last SyncDir.
	children map[string]*memNode
	durable  map[string]*memNode
	mount    bool // the root of a volume other than its parent's
}

func (n *memNode) isDir() bool { return n.mode.IsDir() }

// releaseIfUnused frees a file's space once nothing names it and nothing
// has it open. The content stays: a crash image may bring a name back.
// Nothing can change the node afterwards, so this runs once.
func (n *memNode) releaseIfUnused() {
	if n.isDir() || n.links > 0 || n.opens > 0 {
		return
	}
	n.vol.used -= uint64(len(n.data))
}

// sharesSynced reports whether data and synced are one array, which a
// write below len(synced) must not change.
func (n *memNode) sharesSynced() bool {
	return len(n.synced) > 0 && len(n.data) > 0 && &n.data[0] == &n.synced[0]
}

// NewMem returns an empty Mem: a root directory on a volume of
// cfg.Capacity bytes, all of it durable.
func NewMem(cfg MemConfig) *Mem {
	if cfg.Capacity == 0 {
		cfg.Capacity = DefaultMemCapacity
	}
	m := &Mem{clock: cfg.Clock}
	if m.clock == nil {
		m.clock = func() time.Time { return MemEpoch }
	}
	m.mu.root = m.newDir(&volume{capacity: cfg.Capacity}, 0o755)
	return m
}

func (m *Mem) newDir(v *volume, perm fs.FileMode) *memNode {
	return &memNode{vol: v, mode: fs.ModeDir | perm&fs.ModePerm, mtime: m.clock(),
		children: map[string]*memNode{}, durable: map[string]*memNode{}}
}

func (m *Mem) newFile(v *volume, perm fs.FileMode) *memNode {
	return &memNode{vol: v, mode: perm & fs.ModePerm, mtime: m.clock()}
}

// Mount attaches an empty disk of capacity bytes at dir, as an operator
// mounts one disk per drive: files below dir are charged to it, Usage of
// any path below reports it, and Rename across it fails with EXDEV
// (TestMemMountedDisks). dir and its missing parents are created; dir must
// be empty and not already a mount point. The mount point and its parents
// are durable at once (a mount outlives a crash), what is written below it
// is not (TestMemCrashKeepsOnlyDurable).
func (m *Mem) Mount(dir string, capacity uint64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	parts, err := memParts(dir)
	if err == nil && len(parts) == 0 {
		err = syscall.EBUSY
	}
	if err != nil {
		return &fs.PathError{Op: "mount", Path: dir, Err: err}
	}
	n := m.mu.root
	for _, p := range parts {
		c, ok := n.children[p]
		if !ok {
			c = m.newDir(n.vol, 0o755)
			c.links = 1
			n.children[p] = c
		}
		if !c.isDir() {
			return &fs.PathError{Op: "mount", Path: dir, Err: syscall.ENOTDIR}
		}
		n.durable[p] = c
		n = c
	}
	switch {
	case n.mount:
		return &fs.PathError{Op: "mount", Path: dir, Err: syscall.EBUSY}
	case len(n.children) > 0:
		return &fs.PathError{Op: "mount", Path: dir, Err: syscall.ENOTEMPTY}
	}
	n.mount = true
	n.vol = &volume{capacity: capacity}
	n.durable = map[string]*memNode{} // what the directory held before is hidden for good
	return nil
}

// memParts splits a cleaned name into its elements; "/" has none.
func memParts(name string) ([]string, error) {
	if name == "" {
		return nil, syscall.ENOENT
	}
	p := path.Clean("/" + filepath.ToSlash(name))
	if p == "/" {
		return nil, nil
	}
	return strings.Split(p[1:], "/"), nil
}

// lookupLocked returns the node at parts.
func (m *Mem) lookupLocked(parts []string) (*memNode, error) {
	n := m.mu.root
	for _, p := range parts {
		if !n.isDir() {
			return nil, syscall.ENOTDIR
		}
		c, ok := n.children[p]
		if !ok {
			return nil, syscall.ENOENT
		}
		n = c
	}
	return n, nil
}

// parentLocked returns the directory holding the entry at parts (not the
// root) and the entry's name.
func (m *Mem) parentLocked(parts []string) (*memNode, string, error) {
	dir, err := m.lookupLocked(parts[:len(parts)-1])
	if err != nil {
		return nil, "", err
	}
	if !dir.isDir() {
		return nil, "", syscall.ENOTDIR
	}
	return dir, parts[len(parts)-1], nil
}

func (m *Mem) link(dir *memNode, name string, n *memNode) {
	dir.children[name] = n
	dir.mtime = m.clock()
	n.links++
}

func (m *Mem) unlink(dir *memNode, name string) {
	n := dir.children[name]
	delete(dir.children, name)
	dir.mtime = m.clock()
	n.links--
	n.releaseIfUnused()
}

// Abs returns name resolved against "/", the working directory of a Mem.
func (m *Mem) Abs(name string) (string, error) {
	return path.Clean("/" + filepath.ToSlash(name)), nil
}

func (m *Mem) Open(name string) (File, error) { return m.OpenFile(name, os.O_RDONLY, 0) }

const memFlags = os.O_RDONLY | os.O_WRONLY | os.O_RDWR | os.O_CREATE | os.O_EXCL | os.O_TRUNC | os.O_APPEND | os.O_SYNC

func (m *Mem) OpenFile(name string, flag int, perm fs.FileMode) (File, error) {
	if flag&^memFlags != 0 {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fmt.Errorf("flags %#x: %w", flag&^memFlags, errors.ErrUnsupported)}
	}
	acc := flag & (os.O_RDONLY | os.O_WRONLY | os.O_RDWR)
	f := &memFile{m: m, name: name, read: acc != os.O_WRONLY, write: acc != os.O_RDONLY,
		append: flag&os.O_APPEND != 0, sync: flag&os.O_SYNC != 0}
	m.mu.Lock()
	defer m.mu.Unlock()
	n, err := m.openLocked(name, flag, perm, f.write)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: name, Err: err}
	}
	n.opens++
	f.n = n
	return f, nil
}

func (m *Mem) openLocked(name string, flag int, perm fs.FileMode, write bool) (*memNode, error) {
	parts, err := memParts(name)
	if err != nil {
		return nil, err
	}
	var n *memNode
	if len(parts) == 0 {
		n = m.mu.root
	} else {
		dir, base, err := m.parentLocked(parts)
		if err != nil {
			return nil, err
		}
		n = dir.children[base]
		switch {
		case n == nil && flag&os.O_CREATE == 0:
			return nil, syscall.ENOENT
		case n == nil:
			n = m.newFile(dir.vol, perm)
			m.link(dir, base, n)
		case flag&(os.O_CREATE|os.O_EXCL) == os.O_CREATE|os.O_EXCL:
			return nil, syscall.EEXIST
		}
	}
	if n.isDir() {
		if write || flag&os.O_CREATE != 0 {
			return nil, syscall.EISDIR
		}
		return n, nil
	}
	if flag&os.O_TRUNC != 0 && len(n.data) > 0 {
		m.truncateLocked(n)
	}
	return n, nil
}

func (m *Mem) truncateLocked(n *memNode) {
	n.vol.used -= uint64(len(n.data))
	n.data = nil
	n.dirty = true
	n.mtime = m.clock()
}

func (m *Mem) Remove(name string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.removeLocked(name); err != nil {
		return &fs.PathError{Op: "remove", Path: name, Err: err}
	}
	return nil
}

func (m *Mem) removeLocked(name string) error {
	parts, err := memParts(name)
	if err != nil {
		return err
	}
	if len(parts) == 0 {
		return syscall.EBUSY
	}
	dir, base, err := m.parentLocked(parts)
	if err != nil {
		return err
	}
	n, ok := dir.children[base]
	switch {
	case !ok:
		return syscall.ENOENT
	case n.mount:
		return syscall.EBUSY
	case n.isDir() && len(n.children) > 0:
		return syscall.ENOTEMPTY
	}
	m.unlink(dir, base)
	return nil
}

// RemoveAll removes name and everything below it, as os.RemoveAll: a
// missing name is not an error. Below a mount point it empties the
// volume, then fails with EBUSY for the mount point itself.
func (m *Mem) RemoveAll(name string) error {
	if name == "" {
		return nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	parts, _ := memParts(name)
	if len(parts) == 0 {
		m.clearLocked(m.mu.root)
		return &fs.PathError{Op: "removeall", Path: name, Err: syscall.EBUSY}
	}
	dir, base, err := m.parentLocked(parts)
	if errors.Is(err, syscall.ENOENT) {
		return nil
	}
	if err != nil {
		return &fs.PathError{Op: "removeall", Path: name, Err: err}
	}
	n, ok := dir.children[base]
	if !ok {
		return nil
	}
	if n.isDir() {
		m.clearLocked(n)
	}
	if n.mount {
		return &fs.PathError{Op: "removeall", Path: name, Err: syscall.EBUSY}
	}
	m.unlink(dir, base)
	return nil
}

// clearLocked removes every entry below dir, depth first.
func (m *Mem) clearLocked(dir *memNode) {
	for name, c := range dir.children {
		if c.isDir() {
			m.clearLocked(c)
		}
		if !c.mount {
			m.unlink(dir, name)
		}
	}
}

func (m *Mem) Rename(oldname, newname string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.renameLocked(oldname, newname); err != nil {
		return &os.LinkError{Op: "rename", Old: oldname, New: newname, Err: err}
	}
	return nil
}

func (m *Mem) renameLocked(oldname, newname string) error {
	op, err := memParts(oldname)
	if err != nil {
		return err
	}
	np, err := memParts(newname)
	if err != nil {
		return err
	}
	// os.Rename never replaces a directory: it answers EEXIST, unless the
	// old name is bad too.
	if t, err := m.lookupLocked(np); err == nil && t.isDir() {
		if _, err := m.lookupLocked(op); err != nil {
			return err
		}
		return syscall.EEXIST
	}
	if len(op) == 0 {
		return syscall.EBUSY
	}
	// Both parents are looked up before either entry, as Linux does.
	odir, obase, err := m.parentLocked(op)
	if err != nil {
		return err
	}
	ndir, nbase, err := m.parentLocked(np)
	if err != nil {
		return err
	}
	n, ok := odir.children[obase]
	if !ok {
		return syscall.ENOENT
	}
	target := ndir.children[nbase]
	switch {
	case target == n:
		return nil // the same entry, or two names of one file
	case n.mount:
		return syscall.EBUSY
	case ndir.vol != n.vol:
		return syscall.EXDEV
	case n.isDir() && len(np) > len(op) && slices.Equal(np[:len(op)], op):
		return syscall.EINVAL // into itself
	case target == nil:
	case n.isDir():
		return syscall.ENOTDIR // target is a file
	}
	if target != nil {
		m.unlink(ndir, nbase)
	}
	m.link(ndir, nbase, n)
	m.unlink(odir, obase)
	return nil
}

func (m *Mem) Mkdir(name string, perm fs.FileMode) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.mkdirLocked(name, perm); err != nil {
		return &fs.PathError{Op: "mkdir", Path: name, Err: err}
	}
	return nil
}

func (m *Mem) mkdirLocked(name string, perm fs.FileMode) error {
	parts, err := memParts(name)
	if err != nil {
		return err
	}
	if len(parts) == 0 {
		return syscall.EEXIST
	}
	dir, base, err := m.parentLocked(parts)
	if err != nil {
		return err
	}
	if _, ok := dir.children[base]; ok {
		return syscall.EEXIST
	}
	m.link(dir, base, m.newDir(dir.vol, perm))
	return nil
}

func (m *Mem) MkdirAll(name string, perm fs.FileMode) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	parts, err := memParts(name)
	if err != nil {
		return &fs.PathError{Op: "mkdir", Path: name, Err: err}
	}
	n := m.mu.root
	for _, p := range parts {
		c, ok := n.children[p]
		if !ok {
			c = m.newDir(n.vol, perm)
			m.link(n, p, c)
		}
		if !c.isDir() {
			return &fs.PathError{Op: "mkdir", Path: name, Err: syscall.ENOTDIR}
		}
		n = c
	}
	return nil
}

func (m *Mem) ReadDir(name string) ([]fs.DirEntry, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	n, err := m.resolveLocked(name)
	if err == nil && !n.isDir() {
		err = syscall.ENOTDIR
	}
	if err != nil {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: err}
	}
	names := slices.Sorted(maps.Keys(n.children))
	es := make([]fs.DirEntry, len(names))
	for i, e := range names {
		es[i] = fs.FileInfoToDirEntry(n.children[e].info(e))
	}
	return es, nil
}

func (m *Mem) resolveLocked(name string) (*memNode, error) {
	parts, err := memParts(name)
	if err != nil {
		return nil, err
	}
	return m.lookupLocked(parts)
}

func (m *Mem) Stat(name string) (fs.FileInfo, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	n, err := m.resolveLocked(name)
	if err != nil {
		return nil, &fs.PathError{Op: "stat", Path: name, Err: err}
	}
	return n.info(path.Base(path.Clean("/" + filepath.ToSlash(name)))), nil
}

// SyncDir makes the entries of a directory durable: the names it holds now
// survive a crash, pointing at the files they name now (whose data is
// durable only as far as they were synced). Given a file, it syncs the
// file, as fsync on any descriptor does.
func (m *Mem) SyncDir(name string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	n, err := m.resolveLocked(name)
	if err != nil {
		return &fs.PathError{Op: "sync", Path: name, Err: err}
	}
	n.syncLocked()
	return nil
}

func (n *memNode) syncLocked() {
	if n.isDir() {
		n.durable = maps.Clone(n.children)
		return
	}
	if n.dirty {
		n.synced = n.data[:len(n.data):len(n.data)]
		n.dirty = false
	}
}

// Usage reports the volume holding name.
func (m *Mem) Usage(name string) (Usage, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	n, err := m.resolveLocked(name)
	if err != nil {
		return Usage{}, &fs.PathError{Op: "statfs", Path: name, Err: err}
	}
	return Usage{Total: n.vol.capacity, Used: n.vol.used, Avail: n.vol.avail()}, nil
}

func (n *memNode) info(name string) memInfo {
	return memInfo{name: name, size: int64(len(n.data)), mode: n.mode, mtime: n.mtime}
}

type memInfo struct {
	name  string
	size  int64
	mode  fs.FileMode
	mtime time.Time
}

func (i memInfo) Name() string       { return i.name }
func (i memInfo) Size() int64        { return i.size }
func (i memInfo) Mode() fs.FileMode  { return i.mode }
func (i memInfo) ModTime() time.Time { return i.mtime }
func (i memInfo) IsDir() bool        { return i.mode.IsDir() }
func (i memInfo) Sys() any           { return nil }

// memFile is an open file or directory of a Mem.
type memFile struct {
	m                         *Mem
	n                         *memNode
	name                      string // as opened
	read, write, append, sync bool

	pos    int64 // guarded by m.mu, like closed
	closed bool
}

// errWriteAtInAppendMode is os.File's answer to WriteAt with O_APPEND.
var errWriteAtInAppendMode = errors.New("invalid use of WriteAt on file opened with O_APPEND")

// usableLocked checks that f may do an operation; allowed is whether the
// access mode permits it.
func (f *memFile) usableLocked(op string, allowed bool) error {
	switch {
	case f.closed:
		return &fs.PathError{Op: op, Path: f.name, Err: os.ErrClosed}
	case !allowed:
		return &fs.PathError{Op: op, Path: f.name, Err: syscall.EBADF}
	case op == "read" && f.n.isDir():
		return &fs.PathError{Op: op, Path: f.name, Err: syscall.EISDIR}
	}
	return nil
}

func (f *memFile) Read(p []byte) (int, error) {
	f.m.mu.Lock()
	defer f.m.mu.Unlock()
	if len(p) == 0 && !f.closed {
		return 0, nil // as os.File: no system call is made
	}
	if err := f.usableLocked("read", f.read); err != nil {
		return 0, err
	}
	if f.pos >= int64(len(f.n.data)) {
		return 0, io.EOF
	}
	k := copy(p, f.n.data[f.pos:])
	f.pos += int64(k)
	return k, nil
}

func (f *memFile) ReadAt(p []byte, off int64) (int, error) {
	f.m.mu.Lock()
	defer f.m.mu.Unlock()
	// The checks come in os.File's order: an empty read succeeds even on
	// a closed file.
	if off < 0 {
		return 0, &fs.PathError{Op: "readat", Path: f.name, Err: errors.New("negative offset")}
	}
	if len(p) == 0 {
		return 0, nil
	}
	if err := f.usableLocked("read", f.read); err != nil {
		return 0, err
	}
	if off >= int64(len(f.n.data)) {
		return 0, io.EOF
	}
	k := copy(p, f.n.data[off:])
	if k < len(p) {
		return k, io.EOF
	}
	return k, nil
}

func (f *memFile) Write(p []byte) (int, error) {
	f.m.mu.Lock()
	defer f.m.mu.Unlock()
	if err := f.usableLocked("write", f.write); err != nil {
		return 0, err
	}
	off := f.pos
	if f.append {
		off = int64(len(f.n.data))
	}
	k, err := f.writeLocked(p, off)
	f.pos = off + int64(k)
	return k, err
}

func (f *memFile) WriteAt(p []byte, off int64) (int, error) {
	f.m.mu.Lock()
	defer f.m.mu.Unlock()
	// In os.File's order, as for ReadAt.
	if f.append {
		return 0, &fs.PathError{Op: "writeat", Path: f.name, Err: errWriteAtInAppendMode}
	}
	if off < 0 {
		return 0, &fs.PathError{Op: "writeat", Path: f.name, Err: errors.New("negative offset")}
	}
	if len(p) == 0 {
		return 0, nil
	}
	if err := f.usableLocked("write", f.write); err != nil {
		return 0, err
	}
	return f.writeLocked(p, off)
}

// writeLocked writes p at off, as much as the volume has room for: a write
// that does not fit writes the bytes that do and fails with ENOSPC, as a
// short write(2) followed by a failing one does.
func (f *memFile) writeLocked(p []byte, off int64) (int, error) {
	n := f.n
	var err error
	size := int64(len(n.data))
	if end := off + int64(len(p)); end > size {
		if room := size + int64(n.vol.avail()) - off; int64(len(p)) > room {
			p = p[:max(0, room)]
			err = &fs.PathError{Op: "write", Path: f.name, Err: syscall.ENOSPC}
		}
	}
	if len(p) == 0 {
		return 0, err
	}
	if off < int64(len(n.synced)) && n.sharesSynced() {
		n.data = slices.Clone(n.data)
	}
	if end := off + int64(len(p)); end > size {
		if end > int64(cap(n.data)) {
			// Doubling keeps a file written in many pieces at a linear cost.
			grown := make([]byte, size, max(end, 2*int64(cap(n.data))))
			copy(grown, n.data)
			n.data = grown
		}
		n.data = n.data[:end]
		clear(n.data[size:max(size, off)]) // a hole reads as zeros
		n.vol.used += uint64(end - size)
	}
	copy(n.data[off:], p)
	n.dirty = true
	n.mtime = f.m.clock()
	if f.sync {
		n.syncLocked()
	}
	return len(p), err
}

func (f *memFile) Sync() error {
	f.m.mu.Lock()
	defer f.m.mu.Unlock()
	if err := f.usableLocked("sync", true); err != nil {
		return err
	}
	f.n.syncLocked()
	return nil
}

func (f *memFile) Stat() (fs.FileInfo, error) {
	f.m.mu.Lock()
	defer f.m.mu.Unlock()
	if err := f.usableLocked("stat", true); err != nil {
		return nil, err
	}
	return f.n.info(path.Base(path.Clean("/" + filepath.ToSlash(f.name)))), nil
}

func (f *memFile) Close() error {
	f.m.mu.Lock()
	defer f.m.mu.Unlock()
	if err := f.usableLocked("close", true); err != nil {
		return err
	}
	f.closed = true
	f.n.opens--
	f.n.releaseIfUnused()
	if f.n.opens == 0 && f.n.links > 0 && cap(f.n.data)-len(f.n.data) > len(f.n.data)/4 {
		f.n.trim()
	}
	return nil
}

// trim gives back the room that doubling left at the end of a file's
// array, once nobody writes to it: simulated disks hold a lot of data.
func (n *memNode) trim() {
	shared := n.sharesSynced()
	n.data = slices.Clone(n.data)
	if shared {
		// synced is a prefix of data, never written in place.
		n.synced = n.data[:len(n.synced):len(n.synced)]
	}
}

// StartWriteback does nothing: it is a hint, and data becomes durable only
// by Sync.
func (f *memFile) StartWriteback(off, n int64) {}

var (
	_ FS   = (*Mem)(nil)
	_ File = (*memFile)(nil)
)
