package node

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/redoubt-io/redoubt/internal/admin"
	"github.com/redoubt-io/redoubt/internal/objects"
	"github.com/redoubt-io/redoubt/internal/store"
)

// GCConfig paces garbage collection of orphan shards on this node's
// drives (see objects.Service.CollectGarbage for why a pass is safe).
type GCConfig struct {
	// Interval between passes; 0 turns collection off. A pass lists every
	// shard file of the local drives and reads one metadata record per
	// ref found: shorter frees space sooner at that cost.
	Interval time.Duration
	// MinAge skips shard files younger than this, which are nearly all
	// writes in flight; it saves reads, never decides safety.
	MinAge time.Duration
	// LeftoverGrace keeps the copies a relocation moved data away from for
	// this long: a GET that read the version record before the move, or
	// from a replica that had not applied it yet, still reads them.
	LeftoverGrace time.Duration
}

// DefaultGCConfig runs a pass an hour (orphans come only from crashes and
// failed deletes, so they are few), skips files younger than a minute, and
// keeps moved data's old copies for an hour, far longer than a replica
// lags or a download of a superseded record lasts.
func DefaultGCConfig() GCConfig {
	return GCConfig{Interval: time.Hour, MinAge: time.Minute, LeftoverGrace: time.Hour}
}

// Validate reports the first rule c breaks.
func (c GCConfig) Validate() error {
	if c.Interval < 0 || c.MinAge < 0 || c.LeftoverGrace < 0 {
		return fmt.Errorf("node: gc interval %v and min age %v must not be negative", c.Interval, c.MinAge)
	}
	return nil
}

// collector runs garbage collection passes and keeps their totals.
type collector struct {
	cfg     GCConfig
	objects *objects.Service
	drives  []*store.Drive
	log     *slog.Logger

	mu struct {
		sync.Mutex
		st admin.GCStatus
	}
}

func newCollector(cfg GCConfig, o *objects.Service, drives []*store.Drive, log *slog.Logger) *collector {
	return &collector{cfg: cfg, objects: o, drives: drives, log: log}
}

// Run makes a pass every Interval until ctx ends.
func (c *collector) Run(ctx context.Context) error {
	if c.cfg.Interval <= 0 {
		<-ctx.Done()
		return ctx.Err()
	}
	t := time.NewTicker(c.cfg.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
			c.Pass(ctx)
		}
	}
}

// Pass runs one pass now and adds its counts to the totals.
func (c *collector) Pass(ctx context.Context) objects.GCStats {
	started := time.Now()
	drives := make([]objects.GCDrive, len(c.drives))
	for i, d := range c.drives {
		drives[i] = d
	}
	st, err := c.objects.CollectGarbage(ctx, drives, objects.GCOptions{MinAge: c.cfg.MinAge, LeftoverGrace: c.cfg.LeftoverGrace})
	level := slog.LevelInfo
	if err != nil {
		level = slog.LevelWarn
	}
	c.log.Log(ctx, level, "gc pass", "scanned", st.Scanned, "removed", st.Removed, "bytes_freed", st.BytesFreed,
		"in_flight", st.InFlight, "intents_swept", st.IntentsSwept, "errors", st.Errors, "err", err,
		"took", time.Since(started))
	c.mu.Lock()
	defer c.mu.Unlock()
	s := &c.mu.st
	s.Passes++
	s.ShardsScanned += st.Scanned
	s.OrphansRemoved += st.Removed
	s.BytesFreed += st.BytesFreed
	s.IntentsSwept += st.IntentsSwept
	s.LastPassStarted, s.LastPassFinished = started, time.Now()
	s.LastPassScanned, s.LastPassRemoved = st.Scanned, st.Removed
	s.LastPassError = ""
	if err != nil {
		s.LastPassError = err.Error()
	}
	return st
}

// Status returns the totals since start and the last pass.
func (c *collector) Status() admin.GCStatus {
	c.mu.Lock()
	defer c.mu.Unlock()
	st := c.mu.st
	st.IntervalSeconds = c.cfg.Interval.Seconds()
	return st
}

// writerID names this node in write intents: its cluster ID, or on a
// standalone node its drive set's ID, which outlives restarts as the
// node does.
func (n *Node) writerID() string {
	if n.cluster != nil {
		return n.cluster.ID()
	}
	if len(n.drives) > 0 {
		return n.drives[0].SetID()
	}
	return ""
}
