package meta

import (
	"context"
	"fmt"
	"time"

	"github.com/redoubt-io/redoubt/internal/vfs"
)

// checkRoom returns an error wrapping ErrNoSpace if a healthy replica's
// drive has less than MinFree bytes free, and reports whether one is
// near its reserve (less than twice Reserve free). It asks the file system at every commit (a statfs,
// about a microsecond against a commit's fsync), so a commit refused for
// lack of space is followed by one that succeeds as soon as space is
// freed, by any means (TestLocalMinFree). A drive whose space cannot be
// read passes: the write finds out.
func (l *Local) checkRoom() (low bool, err error) {
	if l.cfg.MinFree == 0 && l.cfg.Reserve == 0 {
		return false, nil
	}
	for _, r := range l.replicas {
		if !r.healthy() {
			continue
		}
		u, err := l.fs.GetDiskUsage(r.dir)
		if err != nil {
			continue
		}
		if u.AvailBytes < l.cfg.MinFree {
			return true, fmt.Errorf("meta: commit: replica %s: %s free, under the %s kept for the metadata store: %w",
				r.dir, vfs.FormatBytes(u.AvailBytes), vfs.FormatBytes(l.cfg.MinFree), ErrNoSpace)
		}
		low = low || u.AvailBytes < 2*l.cfg.Reserve
	}
	return low, nil
}

// reclaimer compacts the replicas after commits deleted keys while a
// drive was near its reserve, so that the space of what they deleted is
// freed now rather than when Pebble's own compactions reach it (see
// LocalConfig.Reserve). One goroutine, owned by the Local, started at open
// and stopped by Close; pokes that come while it compacts are coalesced
// into one more pass.
type reclaimer struct {
	wake   chan struct{}
	cancel context.CancelFunc
	done   chan struct{}
}

// reclaimSettle is how long the reclaimer lets deletes gather after the
// first one before it compacts: a client deleting many objects one by one
// gets one compaction, not one per delete. A compaction rewrites the whole
// replica, so the wait is also at least reclaimDuty times the last pass:
// deletes that keep coming cost at most a tenth of the disk's time.
const (
	reclaimSettle = 200 * time.Millisecond
	reclaimDuty   = 9
)

func (rc *reclaimer) start(l *Local) {
	if l.cfg.Reserve == 0 {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	rc.wake, rc.cancel, rc.done = make(chan struct{}, 1), cancel, make(chan struct{})
	go func() {
		defer close(rc.done)
		var last time.Duration
		for {
			select {
			case <-ctx.Done():
				return
			case <-rc.wake:
			}
			t := time.NewTimer(max(reclaimSettle, reclaimDuty*last))
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
			start := time.Now()
			if l.reclaimPass(ctx) {
				last = time.Since(start)
			}
		}
	}()
}

// poke asks for a pass after a commit that deleted keys. It never blocks.
func (rc *reclaimer) poke() {
	if rc.wake == nil {
		return
	}
	select {
	case rc.wake <- struct{}{}:
	default:
	}
}

// stop ends the goroutine, abandoning a compaction not yet started, and
// waits for it.
func (rc *reclaimer) stop() {
	if rc.cancel == nil {
		return
	}
	rc.cancel()
	<-rc.done
}

// reclaimPass compacts every healthy replica, and says whether it
// compacted any.
func (l *Local) reclaimPass(ctx context.Context) (compacted bool) {
	for _, r := range l.replicas {
		if !r.healthy() || ctx.Err() != nil {
			continue
		}
		before, _ := l.fs.GetDiskUsage(r.dir)
		start := time.Now()
		if err := compactAll(ctx, r); err != nil {
			if ctx.Err() == nil {
				r.log.Warn("compacting metadata to free the space of deleted keys", "err", err)
			}
			continue
		}
		compacted = true
		after, _ := l.fs.GetDiskUsage(r.dir)
		r.log.Info("compacted metadata to free the space of deleted keys",
			"free_before", vfs.FormatBytes(before.AvailBytes), "free_after", vfs.FormatBytes(after.AvailBytes), "took", time.Since(start))
	}
	return compacted
}

// compactAll compacts r's whole key space. Pebble panics where it cannot
// make a new WAL for the flush that starts a compaction; that fails the
// replica, not the process.
func compactAll(ctx context.Context, r *replica) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("pebble compaction panicked: %v", p)
			r.fail(err)
		}
	}()
	return r.db.Compact(ctx, []byte{sysPrefix}, []byte{dataPrefix + 1}, true)
}
