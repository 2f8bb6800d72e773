package node

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redoubt-io/redoubt/internal/blocks"
)

// readRepair rebuilds, at once, the shards that reads found missing or
// corrupt: a GET that had to reconstruct around a bad shard still answers
// right, and the data path remembers the Ref (blocks.Set.NeedsRepair); this
// service takes those Refs and repairs them, so damage a reader met is not
// left for the next scrub. A Ref whose repair fails (its drive or node is
// down) is tried again later, a bounded number of times.
type readRepair struct {
	data *blocks.Set
	log  *slog.Logger
	wake chan struct{}

	mu      sync.Mutex
	retries map[string]retryRef

	repaired, rebuilt, failed atomic.Int64
}

type retryRef struct {
	ref      blocks.Ref
	attempts int
	next     time.Time
}

const (
	readRepairRetry    = 30 * time.Second
	readRepairAttempts = 10
)

func newReadRepair(data *blocks.Set, log *slog.Logger) *readRepair {
	return &readRepair{data: data, log: log, wake: make(chan struct{}, 1), retries: map[string]retryRef{}}
}

// note is blocks.Config.OnNeedsRepair: it must not block.
func (r *readRepair) note(blocks.Ref) {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// Run repairs what reads report until ctx ends.
func (r *readRepair) Run(ctx context.Context) error {
	t := time.NewTicker(readRepairRetry)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-r.wake:
		case <-t.C:
		}
		r.pass(ctx)
	}
}

func (r *readRepair) pass(ctx context.Context) {
	now := time.Now()
	refs := r.data.NeedsRepair()
	r.mu.Lock()
	for id, rr := range r.retries {
		if !now.Before(rr.next) {
			refs = append(refs, rr.ref)
			delete(r.retries, id)
		}
	}
	r.mu.Unlock()
	for _, ref := range refs {
		if ctx.Err() != nil {
			return
		}
		n, err := r.data.Repair(ctx, ref)
		if err == nil {
			r.repaired.Add(1)
			r.rebuilt.Add(int64(n))
			if n > 0 {
				r.log.Info("repaired shards a read found bad", "ref", ref.ID, "shards", n)
			}
			continue
		}
		r.mu.Lock()
		rr := r.retries[ref.ID]
		rr.ref, rr.attempts, rr.next = ref, rr.attempts+1, now.Add(readRepairRetry)
		if rr.attempts < readRepairAttempts {
			r.retries[ref.ID] = rr
		} else {
			r.failed.Add(1)
			r.log.Warn("gave up repairing shards a read found bad; the next scrub or repair pass will try again", "ref", ref.ID, "err", err)
		}
		r.mu.Unlock()
	}
}

// pending counts Refs waiting for a retry.
func (r *readRepair) pending() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.retries)
}
