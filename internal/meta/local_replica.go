package meta

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/cockroachdb/pebble/v2"
	pebblevfs "github.com/cockroachdb/pebble/v2/vfs"
)

// ReplicaState is the health of one replica of a Local store.
type ReplicaState int

const (
	// ReplicaHealthy replicas receive every commit and serve reads.
	ReplicaHealthy ReplicaState = iota
	// ReplicaFailed replicas are left out until the store is reopened.
	ReplicaFailed
)

func (s ReplicaState) String() string {
	switch s {
	case ReplicaHealthy:
		return "healthy"
	case ReplicaFailed:
		return "failed"
	}
	return fmt.Sprintf("ReplicaState(%d)", int(s))
}

// ReplicaStatus describes one replica of a Local store.
type ReplicaStatus struct {
	Dir   string
	State ReplicaState
	// Err is the error that failed the replica, or nil.
	Err error
}

// errReplicaFailed is what a request to an already failed replica gets.
var errReplicaFailed = errors.New("meta: replica failed")

// pebbleSubdir is the directory of the Pebble database inside a replica dir,
// and rebuildSubdir where a rebuilt copy is assembled before it replaces it.
const (
	pebbleSubdir  = "pebble"
	rebuildSubdir = "pebble.rebuild"
)

// replica is one Pebble database on one drive. Batches reach it through
// queue in commit order: the applier goroutine applies them without waiting
// for the WAL sync and hands them to the syncer goroutine, which waits for
// the sync. Commit order is therefore the same on every replica, and what a
// crash leaves of a replica is a prefix of that order.
type replica struct {
	idx  int
	dir  string
	path string
	log  *slog.Logger

	fs   pebblevfs.FS
	db   *pebble.DB
	info os.FileInfo // identity of path, to notice it vanishing

	// opening is set while Pebble opens the database: a background error
	// then is fatal to the open (see openReplica).
	opening atomic.Bool
	// quietUntil rate-limits the log of Pebble's retried background
	// errors for lack of space (unix nanoseconds).
	quietUntil atomic.Int64

	queue  chan *applyReq
	syncQ  chan *applyReq
	exited chan struct{} // closed when the syncer has drained

	failed atomic.Bool
	// stalls counts Pebble's write stalls since open (EngineStats).
	stalls atomic.Int64
	// testNoPresenceCheck lets tests reach Pebble's own failure paths.
	testNoPresenceCheck bool
	// failedCh is closed when the replica fails, so that waiters need not
	// wait for a timeout.
	failedCh chan struct{}
	mu       struct {
		sync.Mutex
		err error
	}
}

type applyReq struct {
	b       *pebble.Batch
	applied chan error // buffered 1
	synced  chan error // buffered 1
}

func newReplica(idx int, fs pebblevfs.FS, dir string, log *slog.Logger) *replica {
	return &replica{
		idx:      idx,
		fs:       fs,
		dir:      dir,
		path:     fs.PathJoin(dir, pebbleSubdir),
		log:      log.With("replica", idx, "dir", dir),
		failedCh: make(chan struct{}),
	}
}

// fail marks r failed with err; only the first failure is kept and logged.
func (r *replica) fail(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.mu.err != nil {
		return
	}
	r.mu.err = err
	r.failed.Store(true)
	close(r.failedCh)
	r.log.Error("metadata replica failed; it is left out until restart", "err", err)
}

func (r *replica) status() ReplicaStatus {
	r.mu.Lock()
	defer r.mu.Unlock()
	st := ReplicaStatus{Dir: r.dir, State: ReplicaHealthy, Err: r.mu.err}
	if r.mu.err != nil {
		st.State = ReplicaFailed
	}
	return st
}

func (r *replica) healthy() bool { return !r.failed.Load() }

// checkPresent fails r if its database directory vanished or was replaced:
// Pebble keeps writing to files it has open even after they are unlinked,
// so it would not notice by itself.
func (r *replica) checkPresent() bool {
	if r.testNoPresenceCheck {
		return true
	}
	fi, err := r.statDir()
	if err == nil && !sameFile(fi, r.info) {
		err = errors.New("directory replaced")
	}
	if err != nil {
		r.fail(fmt.Errorf("replica dir vanished: %w", err))
		return false
	}
	return true
}

// statDir returns what identifies r's database directory: the
// operating system's FileInfo, whose inode tells a replaced directory
// from the same one.
func (r *replica) statDir() (os.FileInfo, error) {
	if r.fs == pebblevfs.Default {
		return os.Stat(r.path)
	}
	return r.fs.Stat(r.path)
}

// sameFile reports whether a and b, from statDir, are one directory. On a
// file system without inodes (vfs.Mem) only presence can be told.
func sameFile(a, b os.FileInfo) bool {
	if a.Sys() == nil || b.Sys() == nil {
		return true
	}
	return os.SameFile(a, b)
}

// start launches the applier and syncer goroutines. They exit when queue is
// closed, after answering every request in it.
func (r *replica) start(depth int) {
	r.queue = make(chan *applyReq, depth)
	r.syncQ = make(chan *applyReq, depth)
	r.exited = make(chan struct{})
	go r.applier()
	go r.syncer()
}

func (r *replica) applier() {
	defer close(r.syncQ)
	for req := range r.queue {
		// Checking the directory first also keeps Pebble from trying, and
		// failing fatally, to create files in a directory that is gone.
		if !r.healthy() || !r.checkPresent() {
			req.applied <- errReplicaFailed
			continue
		}
		if err := r.apply(req.b); err != nil {
			r.fail(err)
			req.applied <- err
			continue
		}
		req.applied <- nil
		r.syncQ <- req
	}
}

// apply applies b without waiting for its sync. Pebble panics when it cannot
// create a new WAL (a vanished directory); that fails the replica instead of
// the process. The database is not used again after that.
func (r *replica) apply(b *pebble.Batch) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("pebble apply panicked: %v", p)
		}
	}()
	return r.db.ApplyNoSyncWait(b, pebble.Sync)
}

func (r *replica) syncer() {
	defer close(r.exited)
	for req := range r.syncQ {
		err := req.b.SyncWait()
		if err == nil && !r.checkPresent() {
			err = errReplicaFailed
		}
		if err != nil {
			r.fail(err)
			req.synced <- err
			continue
		}
		_ = req.b.Close()
		req.synced <- nil
	}
}

// pebbleLogger routes Pebble's messages to slog. A fatal message fails the
// replica and parks the calling goroutine for good: Pebble would otherwise
// exit the process, and letting the goroutine continue past a fatal error
// could crash it. The replica is never used again, so nothing waits on the
// parked goroutine without a timeout.
type pebbleLogger struct{ r *replica }

func (l pebbleLogger) Infof(format string, args ...any) {
	l.r.log.Debug(fmt.Sprintf(format, args...), "source", "pebble")
}

func (l pebbleLogger) Errorf(format string, args ...any) {
	l.r.log.Warn(fmt.Sprintf(format, args...), "source", "pebble")
}

func (l pebbleLogger) Fatalf(format string, args ...any) {
	l.r.fail(fmt.Errorf("pebble fatal: %s", fmt.Sprintf(format, args...)))
	select {}
}

func (r *replica) eventListener() *pebble.EventListener {
	return &pebble.EventListener{
		BackgroundError: func(err error) {
			switch {
			case r.opening.Load():
				// Pebble's open waits for its flush, which it retries at
				// once and forever: fail the open and park this goroutine
				// so that the retries stop (see openReplica).
				r.fail(fmt.Errorf("pebble background error while opening: %w", err))
				select {}
			case errors.Is(err, syscall.ENOSPC):
				// A flush or compaction that found no room is retried by
				// Pebble, and succeeds once space is back; what it would
				// have written is still in the WAL or the old tables.
				r.noSpace(err)
			default:
				r.fail(fmt.Errorf("pebble background error: %w", err))
			}
		},
		DiskSlow: func(info pebble.DiskSlowInfo) {
			r.log.Warn("slow metadata disk", "info", info.String())
		},
		WriteStallBegin: func(info pebble.WriteStallBeginInfo) {
			r.stalls.Add(1)
			r.log.Warn("metadata writes stalled", "reason", info.Reason)
		},
	}
}

// noSpaceLogEvery and noSpacePause pace Pebble's retries of a flush or
// compaction that found the disk full: Pebble retries at once, and without
// a pause a full disk is a busy loop of failed writes and log lines, some
// twenty thousand a second (TestLocalFlushOnFullDiskIsRetried).
const (
	noSpaceLogEvery = time.Minute
	noSpacePause    = 100 * time.Millisecond
)

// noSpace notes a background flush or compaction of r that failed for
// lack of space. It runs in Pebble's goroutine, often under the
// database's lock: the pause holds back writers, which have no room to
// write anyway, not readers of existing tables.
func (r *replica) noSpace(err error) {
	now := time.Now().UnixNano()
	if last := r.quietUntil.Load(); now >= last && r.quietUntil.CompareAndSwap(last, now+int64(noSpaceLogEvery)) {
		r.log.Warn("metadata drive full: Pebble cannot flush or compact; it retries until space is freed", "err", err)
	}
	time.Sleep(noSpacePause)
}
