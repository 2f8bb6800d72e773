package store

import (
	"fmt"

	"github.com/redoubt-io/redoubt/internal/vfs"
)

// SpaceError is a write refused because a drive's free space is under
// the least it must keep. It wraps ErrNoSpace.
type SpaceError struct {
	Path string
	// Free is the space available when the write was refused; Min is the
	// least the drive keeps free (Config.Reserve, or a part of it for a
	// Writer already under way).
	Free, Min uint64
}

func (e *SpaceError) Error() string {
	return fmt.Sprintf("drive %s: %s free, under the %s it keeps free", e.Path, vfs.FormatBytes(e.Free), vfs.FormatBytes(e.Min))
}

func (e *SpaceError) Unwrap() error { return ErrNoSpace }

// Room returns nil if the drive has at least Config.Reserve bytes free,
// otherwise a *SpaceError. It asks the file system each time (a statfs,
// about a microsecond), so space freed by any means counts at once
// (TestDriveReserve). A drive whose space cannot be read has room: the
// write will find out.
func (d *Drive) Room() error { return d.roomAbove(d.cfg.Reserve) }

// roomAbove returns a *SpaceError if the drive has less than min bytes
// free.
func (d *Drive) roomAbove(min uint64) error {
	if min == 0 {
		return nil
	}
	u, err := d.fs.Usage(d.path)
	if err != nil || u.Avail >= min {
		return nil
	}
	return &SpaceError{Path: d.path, Free: u.Avail, Min: min}
}
