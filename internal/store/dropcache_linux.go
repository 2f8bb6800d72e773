package store

import (
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/redoubt-io/redoubt/internal/vfs"
)

// dropCache asks the kernel to evict f's pages from the page cache. It is
// called only once the file is fsynced, when every page is clean and the
// eviction frees them at once. Files of an FS that does not expose a
// descriptor (the test twins) are left alone.
func dropCache(f vfs.File) {
	sc, ok := f.(interface {
		SyscallConn() (syscall.RawConn, error)
	})
	if !ok {
		return
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return
	}
	_ = rc.Control(func(fd uintptr) {
		_ = unix.Fadvise(int(fd), 0, 0, unix.FADV_DONTNEED) // advisory only
	})
}
