package store

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/redoubt-io/redoubt/internal/vfs"
)

// Errors returned (wrapped) by this package.
var (
	// ErrNotFound: the shard file does not exist on a healthy drive.
	ErrNotFound = errors.New("shard not found")
	// ErrCorrupt: a block or header failed its checksum, or the file is
	// truncated or malformed.
	ErrCorrupt = errors.New("shard corrupt")
	// ErrDriveFailed: the drive is marked failed; no I/O was attempted.
	ErrDriveFailed = errors.New("drive failed")
	// ErrInvalidName: a shard name is not a valid hex ID and shard number.
	ErrInvalidName = errors.New("invalid shard name")
	// ErrFormat: the drives do not form one consistent set.
	ErrFormat = errors.New("drive format mismatch")
	// ErrNoSpace: the drive has no room for the write: the file system is
	// full, or its free space is under Config.Reserve (then the error is
	// a *SpaceError saying how much is free). The drive stays online and
	// goes on serving what it holds. It wraps syscall.ENOSPC, so that a
	// caller tells a full disk from a failed one with one errors.Is,
	// whichever layer ran out of space.
	ErrNoSpace = fmt.Errorf("drive full: %w", syscall.ENOSPC)
)

const (
	markerName = "redoubt-drive.json"
	// markerTmpName is the marker being written, renamed over markerName.
	markerTmpName = markerName + ".tmp"
	tmpDir        = ".tmp"
	shardsDir     = "shards"
	// MarkerFormat is the version of the marker file.
	MarkerFormat = 1
)

// Config tunes shard files. The zero value is not valid; start from
// DefaultConfig.
type Config struct {
	// BlockSize is the bytes covered by one checksum. Smaller blocks make
	// small range reads cheaper; larger ones cut per-block overhead (4 bytes
	// and one CRC call each). 64 KiB keeps overhead at 0.006 % and a random
	// 4 KiB read within 64 KiB of I/O.
	BlockSize int
	// WriteBuffer is how many bytes a Writer gathers before one write(2).
	// Large sequential writes are what disks like; 1 MiB is one data shard
	// of the default chunk.
	WriteBuffer int
	// KeepWrittenCache keeps a committed shard's pages in the page cache.
	// False (the default) evicts them right after the fsync: a shard just
	// written is seldom read soon (hot objects are read back into the cache
	// on first GET), and pages that stay cached push out the metadata
	// store's and fill memory with one-shot data, so every later write must
	// first reclaim memory. Evicted clean pages go straight back to the free
	// lists for the next write; in a VM that returns free memory to its
	// host (free page reporting), writing into never-reused pages costs a
	// host fault per page, which measured 2 to 3 times slower end to end
	// (BENCHMARKS.md).
	KeepWrittenCache bool
	// FS is the file system the drives are on: the OS, or in tests and
	// simulation an in-memory one (vfs.Mem) or a fault-injecting twin.
	FS vfs.FS
	// Reserve is the free space, in bytes, that new shard data leaves on
	// each drive. Create refuses a new shard file while the drive has
	// less free, and a Writer stops once the drive has less than half of
	// it, so that writes already under way cannot take the rest. What is
	// kept serves what must go on when the drive is full: the metadata
	// store's WAL, flushes and compactions, and the commits of deletes
	// that free space. 0, the default here (a node sets its own), lets
	// shard data fill a drive to the last byte.
	Reserve uint64
}

// DefaultConfig returns the configuration described on each field.
func DefaultConfig() Config {
	return Config{BlockSize: 64 << 10, WriteBuffer: 1 << 20, FS: vfs.OS()}
}

// Validate reports whether c can be used.
func (c Config) Validate() error {
	if c.BlockSize < 512 || c.BlockSize > 16<<20 {
		return fmt.Errorf("store: block size %d outside [512, 16 MiB]", c.BlockSize)
	}
	if c.FS == nil {
		return fmt.Errorf("store: no file system")
	}
	if c.WriteBuffer < c.BlockSize {
		return fmt.Errorf("store: write buffer %d smaller than block size %d", c.WriteBuffer, c.BlockSize)
	}
	return nil
}

// Marker is the identity record of a drive, stored as JSON.
type Marker struct {
	Format      int      `json:"format"`
	SetID       string   `json:"set_id"`
	DriveID     string   `json:"drive_id"`
	Slot        int      `json:"slot"`
	Drives      []string `json:"drives"`
	NeedsRepair bool     `json:"needs_repair,omitempty"`
}

// ParseMarker decodes and validates a marker file.
func ParseMarker(b []byte) (Marker, error) {
	var m Marker
	if err := json.Unmarshal(b, &m); err != nil {
		return Marker{}, fmt.Errorf("marker: %w: %w", ErrFormat, err)
	}
	if m.Format != MarkerFormat {
		return Marker{}, fmt.Errorf("marker: %w: format %d, want %d", ErrFormat, m.Format, MarkerFormat)
	}
	if !validID(m.SetID) || !validID(m.DriveID) {
		return Marker{}, fmt.Errorf("marker: %w: bad set or drive ID", ErrFormat)
	}
	if m.Slot < 0 || m.Slot >= len(m.Drives) || m.Drives[m.Slot] != m.DriveID {
		return Marker{}, fmt.Errorf("marker: %w: slot %d does not name drive %s", ErrFormat, m.Slot, m.DriveID)
	}
	for _, id := range m.Drives {
		if !validID(id) {
			return Marker{}, fmt.Errorf("marker: %w: bad drive ID in set", ErrFormat)
		}
	}
	return m, nil
}

// State is the health of a drive.
type State int32

const (
	Online State = iota
	Failed
)

func (s State) String() string {
	if s == Online {
		return "online"
	}
	return "failed"
}

// Stats is a snapshot of a drive's counters.
type Stats struct {
	Path          string
	ID            string
	Slot          int
	State         State
	NeedsRepair   bool
	ShardsRead    uint64
	CorruptBlocks uint64
	IOErrors      uint64
	UsedBytes     uint64 // of the file system holding the drive
	TotalBytes    uint64
	FreeBytes     uint64 // available to this process
	// ReserveBytes is Config.Reserve: new shard data is refused while
	// FreeBytes is below it.
	ReserveBytes uint64
}

// Drive is one drive directory. See the package doc.
type Drive struct {
	cfg    Config
	fs     vfs.FS
	path   string
	id     string
	slot   int
	setID  string
	drives []string
	log    *slog.Logger

	state         atomic.Int32
	needsRepair   atomic.Bool
	shardsRead    atomic.Uint64
	corruptBlocks atomic.Uint64
	ioErrors      atomic.Uint64
	tmpSeq        atomic.Uint64

	mu sync.Mutex // serialises state changes and marker rewrites
}

func (d *Drive) Path() string       { return d.path }
func (d *Drive) ID() string         { return d.id }
func (d *Drive) Slot() int          { return d.slot }
func (d *Drive) SetID() string      { return d.setID }
func (d *Drive) State() State       { return State(d.state.Load()) }
func (d *Drive) NeedsRepair() bool  { return d.needsRepair.Load() }
func (d *Drive) String() string     { return d.path }
func (d *Drive) online() bool       { return d.State() == Online }
func (d *Drive) markerPath() string { return filepath.Join(d.path, markerName) }
func (d *Drive) tmpPath() string    { return filepath.Join(d.path, tmpDir) }
func (d *Drive) countCorrupt(n int) { d.corruptBlocks.Add(uint64(n)) }
func (d *Drive) marker() Marker {
	return Marker{Format: MarkerFormat, SetID: d.setID, DriveID: d.id, Slot: d.slot,
		Drives: d.drives, NeedsRepair: d.needsRepair.Load()}
}

// Stats returns the drive's counters and space.
func (d *Drive) Stats() Stats {
	s := Stats{Path: d.path, ID: d.id, Slot: d.slot, State: d.State(), NeedsRepair: d.NeedsRepair(),
		ShardsRead: d.shardsRead.Load(), CorruptBlocks: d.corruptBlocks.Load(), IOErrors: d.ioErrors.Load(),
		ReserveBytes: d.cfg.Reserve}
	if d.online() {
		if u, err := d.fs.Usage(d.path); err == nil {
			s.TotalBytes, s.UsedBytes, s.FreeBytes = u.Total, u.Used, u.Avail
		}
	}
	return s
}

// Open opens the drives at paths as one set, formatting them on first use
// and adopting empty replacement drives (see the package doc). Drives that
// cannot be read are returned marked failed, as long as at least one drive
// of the set is readable. The order of paths is the order of the result.
func Open(ctx context.Context, cfg Config, paths []string, logger *slog.Logger) ([]*Drive, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if len(paths) == 0 {
		return nil, errors.New("store: no drives")
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	type probe struct {
		marker  Marker
		ok      bool // marker read
		empty   bool // directory exists and is empty
		missing bool // directory absent
		err     error
	}
	paths = append([]string(nil), paths...)
	probes := make([]probe, len(paths))
	var set *Marker
	for i, p := range paths {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		abs, err := cfg.FS.Abs(p)
		if err != nil {
			return nil, fmt.Errorf("store: drive %s: %w", p, err)
		}
		paths[i] = abs
		b, err := vfs.ReadFile(cfg.FS, filepath.Join(abs, markerName))
		switch {
		case err == nil:
			m, err := ParseMarker(b)
			if err != nil {
				return nil, fmt.Errorf("store: drive %s: %w", abs, err)
			}
			probes[i] = probe{marker: m, ok: true}
			if set == nil {
				set = &probes[i].marker
			} else if m.SetID != set.SetID || !equal(m.Drives, set.Drives) {
				return nil, fmt.Errorf("store: drive %s belongs to set %s, %s to %s: %w",
					abs, m.SetID, paths[0], set.SetID, ErrFormat)
			}
		case errors.Is(err, fs.ErrNotExist):
			ents, derr := cfg.FS.ReadDir(abs)
			switch {
			case errors.Is(derr, fs.ErrNotExist):
				probes[i] = probe{missing: true, err: derr}
			case derr != nil:
				probes[i] = probe{err: derr}
			default:
				if !onlyScratch(ents) {
					return nil, fmt.Errorf("store: drive %s is not empty but has no %s: refusing to use it: %w", abs, markerName, ErrFormat)
				}
				probes[i] = probe{empty: true}
			}
		default:
			probes[i] = probe{err: err}
		}
	}

	drives := make([]*Drive, len(paths))
	if set == nil {
		// A new set: every drive must be creatable.
		setID := newID()
		ids := make([]string, len(paths))
		for i := range ids {
			ids[i] = newID()
		}
		for i, p := range paths {
			if probes[i].err != nil && !probes[i].missing {
				return nil, fmt.Errorf("store: format drive %s: %w", p, probes[i].err)
			}
			// Durably: a drive directory lost in a crash would make the
			// next start format a new set (TestDriveCrashAtEveryStep).
			if err := vfs.MkdirAllDurable(cfg.FS, p, 0o755); err != nil {
				return nil, fmt.Errorf("store: format drive %s: %w", p, err)
			}
			d := newDrive(cfg, p, Marker{Format: MarkerFormat, SetID: setID, DriveID: ids[i], Slot: i, Drives: ids}, logger)
			if err := d.writeMarker(); err != nil {
				return nil, fmt.Errorf("store: format drive %s: %w", p, err)
			}
			logger.Info("formatted drive", "path", p, "drive", d.id, "set", setID, "slot", i)
			drives[i] = d
		}
	} else {
		if len(set.Drives) != len(paths) {
			return nil, fmt.Errorf("store: set %s has %d drives, %d configured: %w", set.SetID, len(set.Drives), len(paths), ErrFormat)
		}
		present := map[string]bool{}
		for _, pr := range probes {
			if pr.ok {
				if present[pr.marker.DriveID] {
					return nil, fmt.Errorf("store: drive %s configured twice: %w", pr.marker.DriveID, ErrFormat)
				}
				present[pr.marker.DriveID] = true
			}
		}
		// Absent slots: prefer the slot at the same position.
		var absent []int
		for s, id := range set.Drives {
			if !present[id] {
				absent = append(absent, s)
			}
		}
		take := func(i int) int {
			for j, s := range absent {
				if s == i {
					absent = append(absent[:j], absent[j+1:]...)
					return s
				}
			}
			s := absent[0]
			absent = absent[1:]
			return s
		}
		for i, p := range paths {
			pr := probes[i]
			if pr.ok {
				d := newDrive(cfg, p, pr.marker, logger)
				d.needsRepair.Store(pr.marker.NeedsRepair)
				drives[i] = d
				continue
			}
			slot := take(i)
			m := Marker{Format: MarkerFormat, SetID: set.SetID, DriveID: set.Drives[slot], Slot: slot, Drives: set.Drives, NeedsRepair: true}
			d := newDrive(cfg, p, m, logger)
			drives[i] = d
			if pr.empty {
				d.needsRepair.Store(true)
				if err := d.writeMarker(); err != nil {
					d.fail(err)
					continue
				}
				logger.Warn("adopted empty drive as replacement; it needs repair", "path", p, "drive", d.id, "slot", slot)
				continue
			}
			d.fail(fmt.Errorf("drive unreadable at start: %w", pr.err))
		}
	}
	for _, d := range drives {
		if !d.online() {
			continue
		}
		switch err := d.resetTmp(); {
		case errors.Is(err, syscall.ENOSPC):
			// Full, not failed: it serves what it holds, and Check makes
			// the directory once there is room (TestDriveFullAtOpen).
			d.log.Warn("drive full at start: new shards wait for free space", "err", err)
		case err != nil:
			d.fail(err)
		}
	}
	return drives, nil
}

// onlyScratch reports whether a directory without a marker holds nothing
// but what formatting leaves before its marker is in place: the temp
// directory and the marker's own temp file (a crash while formatting,
// TestDriveCrashAtEveryStep). Such a directory is empty for Open.
func onlyScratch(ents []fs.DirEntry) bool {
	for _, e := range ents {
		if e.Name() != tmpDir && e.Name() != markerTmpName {
			return false
		}
	}
	return true
}

func newDrive(cfg Config, path string, m Marker, logger *slog.Logger) *Drive {
	return &Drive{cfg: cfg, fs: cfg.FS, path: path, id: m.DriveID, slot: m.Slot, setID: m.SetID, drives: m.Drives,
		log: logger.With("drive", m.DriveID, "path", path)}
}

func (d *Drive) resetTmp() error {
	if err := d.fs.RemoveAll(d.tmpPath()); err != nil {
		return err
	}
	return d.fs.Mkdir(d.tmpPath(), 0o755)
}

// writeMarker writes the marker atomically: temp file, fsync, rename, fsync.
func (d *Drive) writeMarker() error {
	b, err := json.MarshalIndent(d.marker(), "", "  ")
	if err != nil {
		return err
	}
	tmp := filepath.Join(d.path, markerTmpName)
	f, err := d.fs.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.Write(append(b, '\n')); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := d.fs.Rename(tmp, d.markerPath()); err != nil {
		return err
	}
	return d.fs.SyncDir(d.path)
}

// ClearNeedsRepair records that the drive holds every shard it should.
func (d *Drive) ClearNeedsRepair() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.needsRepair.Load() {
		return nil
	}
	d.needsRepair.Store(false)
	if err := d.writeMarker(); err != nil {
		d.needsRepair.Store(true)
		return fmt.Errorf("store: drive %s: %w", d.path, err)
	}
	return nil
}

// fail marks the drive failed, logging the first transition only.
func (d *Drive) fail(cause error) {
	if d.state.Swap(int32(Failed)) == int32(Failed) {
		return
	}
	d.log.Error("drive failed; its shards will be served from the others", "err", cause)
}

// Check re-examines a drive: its marker must be readable and name this
// drive, and its temp directory writable. A failed drive that passes comes
// back online; an online one that fails is marked failed. A directory found
// empty (a replaced disk) is re-formatted in place and flagged for repair.
func (d *Drive) Check() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	err := d.checkLocked()
	if err != nil {
		d.fail(err)
		return fmt.Errorf("store: drive %s: %w: %w", d.path, ErrDriveFailed, err)
	}
	if d.state.Swap(int32(Online)) == int32(Failed) {
		d.log.Info("drive back online")
	}
	return nil
}

func (d *Drive) checkLocked() error {
	b, err := vfs.ReadFile(d.fs, d.markerPath())
	if errors.Is(err, fs.ErrNotExist) {
		ents, derr := d.fs.ReadDir(d.path)
		if derr != nil {
			return derr
		}
		if !onlyScratch(ents) {
			return fmt.Errorf("marker missing in a non-empty directory")
		}
		d.needsRepair.Store(true)
		if err := d.writeMarker(); err != nil {
			return err
		}
		if err := d.resetTmp(); err != nil {
			return err
		}
		d.log.Warn("empty drive re-formatted in place; it needs repair")
		return nil
	}
	if err != nil {
		return err
	}
	m, err := ParseMarker(b)
	if err != nil {
		return err
	}
	if m.DriveID != d.id || m.SetID != d.setID {
		return fmt.Errorf("marker names drive %s of set %s: %w", m.DriveID, m.SetID, ErrFormat)
	}
	// A probe written and synced: a drive that reads but cannot persist is
	// not healthy.
	probe := filepath.Join(d.tmpPath(), "probe-"+newID())
	err = d.writeProbe(probe)
	if errors.Is(err, fs.ErrNotExist) {
		if err := d.fs.Mkdir(d.tmpPath(), 0o755); errors.Is(err, syscall.ENOSPC) {
			return nil // full, not failed (TestDriveFullAtOpen); no probe was made
		} else if err != nil {
			return err
		}
		err = d.writeProbe(probe)
	}
	if errors.Is(err, syscall.ENOSPC) {
		err = nil // full, not failed
	}
	if rerr := d.fs.Remove(probe); err == nil && rerr != nil && !errors.Is(rerr, fs.ErrNotExist) {
		err = rerr
	}
	return err
}

func (d *Drive) writeProbe(name string) error {
	f, err := d.fs.OpenFile(name, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	if _, err = f.Write([]byte("ok")); err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// ioError records a failed operation and checks whether the drive is still
// usable; it returns the error to hand back to the caller.
func (d *Drive) ioError(op string, err error) error {
	if errors.Is(err, syscall.ENOSPC) {
		// A full disk is not a failed one: it goes on serving what it
		// holds (TestDriveDiskFull).
		return fmt.Errorf("store: %s on drive %s: %w: %w", op, d.path, ErrNoSpace, err)
	}
	d.ioErrors.Add(1)
	if cerr := d.Check(); cerr != nil {
		return fmt.Errorf("store: %s: %w: %w", op, ErrDriveFailed, err)
	}
	return fmt.Errorf("store: %s on drive %s: %w", op, d.path, err)
}

// notFound distinguishes a missing shard from a vanished drive.
func (d *Drive) notFound(op string, name Name, err error) error {
	if _, serr := d.fs.Stat(d.markerPath()); serr != nil {
		d.ioErrors.Add(1)
		d.fail(fmt.Errorf("marker unreadable: %w", serr))
		return fmt.Errorf("store: %s %s: %w: %w", op, name, ErrDriveFailed, err)
	}
	return fmt.Errorf("store: %s %s on drive %s: %w", op, name, d.path, ErrNotFound)
}

func (d *Drive) usable(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if !d.online() {
		return fmt.Errorf("store: drive %s: %w", d.path, ErrDriveFailed)
	}
	return nil
}

// Remove deletes a shard file. A missing file is not an error.
func (d *Drive) Remove(ctx context.Context, name Name) error {
	if err := d.usable(ctx); err != nil {
		return err
	}
	p, err := d.shardPath(name)
	if err != nil {
		return err
	}
	if err := d.fs.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return d.ioError("remove "+name.String(), err)
	}
	return nil
}

// newID returns 16 random bytes in lower-case hex.
func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on supported platforms
	return hex.EncodeToString(b[:])
}

// NewID returns a fresh random ID suitable for a shard Name.
func NewID() string { return newID() }

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// ReadNote returns the small file name at the drive's root, which another
// component keeps there with WriteNote; an error wrapping fs.ErrNotExist
// if there is none.
func (d *Drive) ReadNote(name string) ([]byte, error) {
	if err := checkNoteName(name); err != nil {
		return nil, err
	}
	if err := d.usable(context.Background()); err != nil {
		return nil, err
	}
	b, err := vfs.ReadFile(d.fs, filepath.Join(d.path, name))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, d.ioError("read "+name, err)
	}
	return b, err
}

// WriteNote replaces the small file name at the drive's root: a crash
// leaves the old content or the new, whole (vfs.WriteFileDurable,
// TestWriteFileDurableSurvivesCrash).
func (d *Drive) WriteNote(name string, data []byte) error {
	if err := checkNoteName(name); err != nil {
		return err
	}
	if err := d.usable(context.Background()); err != nil {
		return err
	}
	if err := vfs.WriteFileDurable(d.fs, filepath.Join(d.path, name), data, 0o644); err != nil {
		return d.ioError("write "+name, err)
	}
	return nil
}

// checkNoteName admits plain names of the form redoubt-*.json other than
// the drive's marker.
func checkNoteName(name string) error {
	if filepath.Base(name) != name || !strings.HasPrefix(name, "redoubt-") || !strings.HasSuffix(name, ".json") || name == markerName {
		return fmt.Errorf("store: %q is not a drive note's name", name)
	}
	return nil
}
