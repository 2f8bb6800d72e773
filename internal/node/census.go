package node

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/redoubt-io/redoubt/internal/admin"
	"github.com/redoubt-io/redoubt/internal/blocks"
	"github.com/redoubt-io/redoubt/internal/cluster"
	"github.com/redoubt-io/redoubt/internal/layout"
	"github.com/redoubt-io/redoubt/internal/objects"
	"github.com/redoubt-io/redoubt/internal/placement"
)

// census counts where a cluster's stored data is (cluster.Census), for
// the redundancy figures of /status. How many more losses every object
// survives depends on its parts as stored: coded by the policy of their
// day and placed by the layout of their day, which the layout followed
// now does not tell. EC 4+2 parts stored on six nodes keep six shards
// when the cluster is down to five, even though new writes are then EC
// 3+2.
//
// A count reads the record of every object part in the cluster through
// this node (objects.ForEachRef), so it is made when it may have changed
// and someone looks: at each new layout, and when status finds the last
// count older than censusMaxAge or older than this node's latest data
// moves. Status never waits for a count; it shows the last one and when
// it was made.
type census struct {
	objects *objects.Service
	cluster *cluster.Cluster
	// judge is the redundancy the cluster has with a count; the count's
	// loop logs when the promise breaks or is restored.
	judge func(ctx context.Context, c *cluster.Census) *admin.RedundancyStatus
	log   *slog.Logger
	wake  chan struct{}

	mu struct {
		sync.Mutex
		last *cluster.Census
		err  error // of the last attempt, nil once a count succeeds
		// moved is the relocation total the last count was asked after.
		moved int64
		// logged is the figure last logged, for logging changes only.
		logged string
	}
}

const (
	// censusMaxAge bounds the age of the count status shows while it is
	// polled: data written or moved by other nodes since is seen then.
	censusMaxAge = time.Minute
	// censusRetry is how soon a count that failed (a partition without a
	// leader for a moment) is tried again.
	censusRetry = 5 * time.Second
)

func newCensus(o *objects.Service, c *cluster.Cluster, judge func(context.Context, *cluster.Census) *admin.RedundancyStatus, log *slog.Logger) *census {
	return &census{objects: o, cluster: c, judge: judge, log: log, wake: make(chan struct{}, 1)}
}

// Run counts on every kick until ctx ends, retrying a count that failed.
func (c *census) Run(ctx context.Context) error {
	retry := time.NewTimer(time.Hour)
	retry.Stop()
	defer retry.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-c.wake:
		case <-retry.C:
		}
		if err := c.count(ctx); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			c.log.Debug("counting stored data for the redundancy status", "err", err)
			retry.Reset(censusRetry)
		}
	}
}

// kick asks for a count soon; it never blocks.
func (c *census) kick() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// followLayout is an OnLayout hook: data moves after a new layout.
func (c *census) followLayout(*layout.Layout) { c.kick() }

// count counts the stored data now and keeps the result.
func (c *census) count(ctx context.Context) error {
	l := c.cluster.Layout()
	if l == nil {
		return nil
	}
	cn := cluster.NewCensus(time.Now(), l.Version)
	err := c.objects.ForEachRef(ctx, func(r blocks.Ref) error {
		cn.Add(placement.Policy{K: r.K, M: r.M, Mirror: r.Mirror}, r.Size, r.Drives)
		return nil
	})
	c.mu.Lock()
	c.mu.err = err
	if err == nil {
		c.mu.last = cn
	}
	c.mu.Unlock()
	if err == nil && c.judge != nil {
		c.report(c.judge(ctx, cn))
	}
	return err
}

// report logs the redundancy when it changes: a warning while the
// cluster survives less than its policies promise.
func (c *census) report(r *admin.RedundancyStatus) {
	if r == nil {
		return
	}
	line := r.Line()
	c.mu.Lock()
	changed := line != c.mu.logged
	c.mu.logged = line
	c.mu.Unlock()
	// Nodes down and drives failed are failures in progress, logged
	// where they are found, and often brief (a node starting or
	// restarting); a layout or data that cannot keep the promise with
	// everything up is what an operator must hear of.
	failing := len(r.Down) > 0 || len(r.FailedDrives) > 0
	switch {
	case !changed:
	case !r.Kept && !failing:
		c.log.Warn("redundancy below the policy's promise", "survives", line, "why", strings.Join(r.Reasons, "; "))
	case !r.Kept:
		c.log.Info("redundancy below the policy's promise while nodes or drives are down", "survives", line, "why", strings.Join(r.Reasons, "; "))
	default:
		c.log.Info("redundancy as the policy promises", "survives", line)
	}
}

// last returns the newest count (nil before the first) and the error of
// the attempts since, if they failed.
func (c *census) last() (*cluster.Census, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.mu.last, c.mu.err
}

// freshen asks for a count when the last one is older than censusMaxAge,
// was made under a layout older than version, or before this node's data
// moves reached moved (the relocator's running total).
func (c *census) freshen(version uint64, moved int64) {
	c.mu.Lock()
	last := c.mu.last
	stale := last == nil || time.Since(last.At) > censusMaxAge || last.Layout < version || moved != c.mu.moved
	c.mu.moved = moved
	c.mu.Unlock()
	if stale {
		c.kick()
	}
}
