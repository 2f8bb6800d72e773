package node

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/redoubt-io/redoubt/internal/blocks"
	"github.com/redoubt-io/redoubt/internal/cluster"
	"github.com/redoubt-io/redoubt/internal/layout"
	"github.com/redoubt-io/redoubt/internal/meta"
	"github.com/redoubt-io/redoubt/internal/objects"
)

// relocator brings a cluster node's data in line with the layout: after
// every layout change, and again every relocateRetry while anything is
// left, it moves the data of the partitions this node leads to the drives
// the layout gives them (objects.Service.Relocate with the cluster's
// Relocation plan): shards on drives that left the layout are rebuilt
// elsewhere from the survivors, and shards off their partition's drives
// move there. Each node moves what it leads, so the work is spread over
// the cluster and every move is made once.
type relocator struct {
	objects *objects.Service
	cluster *cluster.Cluster
	limit   *rate.Limiter // nil: no limit
	log     *slog.Logger
	wake    chan struct{}
	passing sync.Mutex // one pass at a time: Run's and a repair pass's

	mu struct {
		sync.Mutex
		p RelocationProgress
	}
}

// RelocationProgress is the state of the current or last relocation pass,
// part of RepairProgress.
type RelocationProgress struct {
	Running bool `json:"running"`
	// Layout is the layout version the current pass works toward;
	// Settled the one the last pass that left nothing behind brought the
	// data in line with (0 before any).
	Layout      uint64    `json:"layout_working"`
	Settled     uint64    `json:"layout_version"`
	Started     time.Time `json:"started,omitzero"`
	Finished    time.Time `json:"finished,omitzero"`
	RefsToMove  int64     `json:"refs_to_move"`
	RefsMoved   int64     `json:"refs_moved"`
	BytesToMove int64     `json:"bytes_to_move"`
	BytesMoved  int64     `json:"bytes_moved"`
	Failed      int64     `json:"refs_failed"`
	// Left counts partitions or Refs a pass could not settle (no leader
	// known, another mover busy, a move failed): a pass follows soon.
	Left      int64  `json:"left"`
	LastError string `json:"last_error,omitempty"`
	Passes    int64  `json:"passes"`
	// TotalRefsMoved and TotalBytesMoved count every pass since start.
	TotalRefsMoved  int64 `json:"total_refs_moved"`
	TotalBytesMoved int64 `json:"total_bytes_moved"`
}

// relocateRetry is how soon a pass follows one that left something, and
// how often an idle node checks anyway (leadership moves between nodes).
const (
	relocateRetry = 10 * time.Second
	relocateIdle  = time.Minute
	// relocateWorkers partitions are moved at once: sources and targets
	// are spread over the cluster, so parallel moves use many drives.
	relocateWorkers = 4
)

func newRelocator(o *objects.Service, c *cluster.Cluster, bytesPerSec int64, log *slog.Logger) *relocator {
	r := &relocator{objects: o, cluster: c, log: log, wake: make(chan struct{}, 1)}
	r.limit = newRepairLimiter(bytesPerSec)
	return r
}

// newRepairLimiter paces rebuilds at bytesPerSec; 0 or less: no limit.
func newRepairLimiter(bytesPerSec int64) *rate.Limiter {
	if bytesPerSec <= 0 {
		return nil
	}
	// A burst of a quarter second (at least 1 MiB) lets one shard of a
	// chunk go at once without letting a backlog go in a rush.
	return rate.NewLimiter(rate.Limit(bytesPerSec), int(max(bytesPerSec/4, 1<<20)))
}

// waitBytes waits until n bytes may be rebuilt.
func waitBytes(ctx context.Context, l *rate.Limiter, n int64) error {
	if l == nil {
		return nil
	}
	for n > 0 {
		step := min(n, int64(l.Burst()))
		if err := l.WaitN(ctx, int(step)); err != nil {
			return err
		}
		n -= step
	}
	return nil
}

// kick asks for a pass soon; it never blocks.
func (r *relocator) kick() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// Progress returns a snapshot of the current or last pass.
func (r *relocator) Progress() RelocationProgress {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.mu.p
}

// Run makes passes until ctx ends: at once on a kick (a new layout), soon
// after a pass that left something, and every relocateIdle otherwise.
func (r *relocator) Run(ctx context.Context) error {
	t := time.NewTimer(relocateIdle)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-r.wake:
		case <-t.C:
		}
		left := r.pass(ctx)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		next := relocateIdle
		if left {
			next = relocateRetry
		}
		t.Reset(next)
	}
}

// pass moves the data of the partitions this node leads; it reports
// whether anything was left for a later pass.
func (r *relocator) pass(ctx context.Context) bool {
	r.passing.Lock()
	defer r.passing.Unlock()
	l := r.cluster.Layout()
	if l == nil {
		return false
	}
	var mine []meta.Partition
	var left int64
	for _, p := range l.Groups() {
		switch part := meta.Partition(p); {
		case r.cluster.Leads(part):
			mine = append(mine, part)
		case r.cluster.Leaderless(part):
			// No one may be moving it: whoever leads it next does, and
			// this member checks again soon.
			left++
		}
	}
	r.update(func(p *RelocationProgress) {
		*p = RelocationProgress{Running: true, Layout: l.Version, Settled: p.Settled, Started: time.Now(), Passes: p.Passes + 1,
			TotalRefsMoved: p.TotalRefsMoved, TotalBytesMoved: p.TotalBytesMoved}
	})
	plan := func(p meta.Partition, ref blocks.Ref) ([]string, bool) {
		to, move, _ := r.cluster.Relocation(l, objects.DataKeyOf(l.Partitions, p, ref.ID), ref.ID, ref.Drives)
		return to, move
	}
	// A part that should move but whose only targets are offline (a node
	// just back, not yet seen up) is not in place: the pass is not done.
	// That holds too for a part that moves some shards now and has others
	// waiting for such a target.
	var blocked atomic.Int64
	countBlocked := func(p meta.Partition, ref blocks.Ref) ([]string, bool) {
		to, move, stuck := r.cluster.Relocation(l, objects.DataKeyOf(l.Partitions, p, ref.ID), ref.ID, ref.Drives)
		if stuck {
			blocked.Add(1)
		}
		return to, move
	}
	// Count first, so that progress has totals.
	var errs []error
	for _, p := range mine {
		st, err := r.objects.Relocate(ctx, p, objects.RelocateOptions{Plan: countBlocked, DryRun: true})
		if err != nil {
			errs = append(errs, err)
			left++
			continue
		}
		r.update(func(pr *RelocationProgress) { pr.RefsToMove += st.Refs; pr.BytesToMove += st.Bytes })
	}
	work := make(chan meta.Partition)
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range relocateWorkers {
		wg.Go(func() {
			for p := range work {
				st, err := r.objects.Relocate(ctx, p, objects.RelocateOptions{
					Plan:   plan,
					Before: func(ctx context.Context, n int64) error { return waitBytes(ctx, r.limit, n) },
					After: func(ref blocks.Ref, n int64, err error) {
						r.update(func(pr *RelocationProgress) {
							if err != nil {
								pr.Failed++
								pr.LastError = err.Error()
								return
							}
							pr.RefsMoved++
							pr.BytesMoved += n
							pr.TotalRefsMoved++
							pr.TotalBytesMoved += n
						})
					},
				})
				mu.Lock()
				left += st.Busy + st.Failed
				if err != nil && ctx.Err() == nil {
					errs = append(errs, err)
					left++
				}
				mu.Unlock()
			}
		})
	}
	for _, p := range mine {
		if ctx.Err() != nil {
			break
		}
		work <- p
	}
	close(work)
	wg.Wait()
	err := errors.Join(errs...)
	left += blocked.Load()
	r.update(func(p *RelocationProgress) {
		p.Running = false
		p.Finished = time.Now()
		p.Left = left
		if err != nil {
			p.LastError = err.Error()
		}
		if left == 0 && ctx.Err() == nil {
			p.Settled = l.Version
		}
	})
	pr := r.Progress()
	if pr.RefsToMove > 0 || err != nil {
		r.log.Info("relocation pass finished", "layout", l.Version, "moved", pr.RefsMoved, "bytes", pr.BytesMoved,
			"failed", pr.Failed, "left", left, "took", pr.Finished.Sub(pr.Started).Round(time.Millisecond), "err", err)
	}
	return left > 0
}

func (r *relocator) update(f func(p *RelocationProgress)) {
	r.mu.Lock()
	f(&r.mu.p)
	r.mu.Unlock()
}

// followLayout is an OnLayout hook: a new layout starts a pass.
func (r *relocator) followLayout(*layout.Layout) { r.kick() }
