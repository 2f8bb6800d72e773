package node

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redoubt-io/redoubt/internal/admin"
	"github.com/redoubt-io/redoubt/internal/blocks"
	"github.com/redoubt-io/redoubt/internal/objects"
	"github.com/redoubt-io/redoubt/internal/store"
)

// ScrubConfig paces the scrubber, which re-reads and verifies every shard
// on this node's drives once per Interval and rebuilds the bad ones.
type ScrubConfig struct {
	// Interval is the longest a full pass may take, and the time from the
	// start of one pass to the start of the next. Each drive is read at
	// its data divided by nine tenths of the interval, so a pass ends in
	// time even after yielding to S3 traffic. Shorter finds rot sooner
	// and costs more disk time. 0 disables scrubbing. 14 days.
	Interval time.Duration
	// MinRate is the least bytes per second a drive is read at, so that a
	// small store is checked within minutes of each pass starting rather
	// than dribbled over the whole interval. 1 MiB/s: a few percent of
	// one disk.
	MinRate int64
	// StartDelay is the wait before the first pass when the drives hold
	// no record of a full pass within the interval, so that a starting
	// node serves before it scrubs. 1 minute.
	StartDelay time.Duration
	// YieldPoll is how often a drive that yields to S3 traffic looks
	// whether the traffic has stopped. 20 ms.
	YieldPoll time.Duration
}

// DefaultScrubConfig returns the defaults stated on each field.
func DefaultScrubConfig() ScrubConfig {
	return ScrubConfig{
		Interval:   14 * 24 * time.Hour,
		MinRate:    1 << 20,
		StartDelay: time.Minute,
		YieldPoll:  20 * time.Millisecond,
	}
}

// Validate reports the first rule c breaks.
func (c ScrubConfig) Validate() error {
	switch {
	case c.Interval < 0:
		return fmt.Errorf("scrub interval %v is negative", c.Interval)
	case c.Interval == 0:
		return nil
	case c.MinRate <= 0:
		return fmt.Errorf("scrub minimum rate %d must be positive", c.MinRate)
	case c.StartDelay < 0:
		return fmt.Errorf("scrub start delay %v is negative", c.StartDelay)
	case c.YieldPoll <= 0:
		return fmt.Errorf("scrub yield poll %v must be positive", c.YieldPoll)
	}
	return nil
}

// upkeep is the node's background care of stored data: the scrubber and
// the count of multipart uploads expired.
type upkeep struct {
	scrub   *scrubber
	expired atomic.Int64
}

// scrubber re-reads every shard on this node's drives. A pass lists, from
// committed metadata, the shards each local drive should hold (so in a
// cluster each node scrubs its own drives, and orphans are garbage
// collection's business), then reads each drive's list in order, one
// shard at a time, all drives in parallel. A corrupt or missing shard is
// rebuilt through blocks.Set.Repair, which needs the whole Ref: that is
// why the pass works from refs rather than from the files on disk.
type scrubber struct {
	cfg     ScrubConfig
	objects *objects.Service
	data    *blocks.Set
	log     *slog.Logger
	// busy reports foreground traffic; a drive ahead of its schedule
	// pauses while it holds.
	busy     func() bool
	inflight atomic.Int64
	// now carries a request for a pass now (Start).
	now chan struct{}

	mu struct {
		sync.Mutex
		st admin.ScrubStatus
	}
}

func newScrubber(cfg ScrubConfig, o *objects.Service, data *blocks.Set, logger *slog.Logger) *scrubber {
	s := &scrubber{cfg: cfg, objects: o, data: data, log: logger, now: make(chan struct{}, 1)}
	s.busy = func() bool { return s.inflight.Load() > 0 }
	s.mu.st.Enabled = cfg.Interval > 0
	s.mu.st.IntervalSeconds = cfg.Interval.Seconds()
	return s
}

// track counts the requests h is serving, for busy.
func (s *scrubber) track(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.inflight.Add(1)
		defer s.inflight.Add(-1)
		h.ServeHTTP(w, r)
	})
}

// Status returns a snapshot of the counters.
func (s *scrubber) Status() admin.ScrubStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.mu.st
}

func (s *scrubber) update(f func(st *admin.ScrubStatus)) {
	s.mu.Lock()
	f(&s.mu.st)
	s.mu.Unlock()
}

// Run scrubs pass after pass, one per interval, until ctx ends; it
// returns nil then. Errors of a pass are logged and counted, not
// returned: the next pass tries again.
func (s *scrubber) Run(ctx context.Context) error {
	if s.cfg.Interval <= 0 {
		return nil
	}
	next := s.firstDue(time.Now())
	for {
		s.update(func(st *admin.ScrubStatus) { st.NextPass = next })
		if !s.waitPass(ctx, next) {
			return nil
		}
		start := time.Now()
		next = start.Add(s.cfg.Interval)
		// Known now: a status read as the pass ends must show it, not
		// the due time of the pass that is ending (TestScrubStartsOnRequest).
		s.update(func(st *admin.ScrubStatus) { st.NextPass = next })
		if !s.pass(ctx, start) {
			// Metadata unavailable (a cluster without a layout yet, a lost
			// quorum): try again soon rather than an interval later.
			next = start.Add(min(s.cfg.Interval, upkeepRetry))
		}
	}
}

// waitPass blocks until t, a Start, or the end of ctx; it reports whether
// a pass should start.
func (s *scrubber) waitPass(ctx context.Context, t time.Time) bool {
	tm := time.NewTimer(time.Until(t))
	defer tm.Stop()
	select {
	case <-tm.C:
		return true
	case <-s.now:
		return ctx.Err() == nil
	case <-ctx.Done():
		return false
	}
}

// Start asks for a pass now, unless one is running (POST /scrub,
// `redoubt scrub`). The next one is then due an interval after it.
func (s *scrubber) Start() {
	if s.Status().Running {
		return
	}
	select {
	case s.now <- struct{}{}:
	default:
	}
}

// scrubNote is the file on each drive that records the node's last full
// pass, so that a restart keeps to the interval instead of reading every
// record and shard again.
const scrubNote = "redoubt-scrub.json"

type scrubNoteRec struct {
	Format   int       `json:"format"`
	Started  time.Time `json:"last_pass_started"`
	Finished time.Time `json:"last_pass_finished"`
}

// firstDue is when the first pass after a start at now is due: an
// interval after the last full pass that every local drive recorded, and
// no sooner than StartDelay; StartDelay from now if a drive recorded
// none (a new or replaced drive, or a pass that never finished), so that
// a node that restarts does not plan a pass again while the interval has
// not passed (TestScrubKeepsItsIntervalAcrossRestarts).
func (s *scrubber) firstDue(now time.Time) time.Time {
	soonest := now.Add(s.cfg.StartDelay)
	var last scrubNoteRec
	for i, d := range s.data.Drives() {
		b, err := d.ReadNote(scrubNote)
		var rec scrubNoteRec
		if err == nil {
			err = json.Unmarshal(b, &rec)
		}
		if err != nil || rec.Format != 1 || rec.Started.IsZero() {
			if !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, store.ErrDriveFailed) {
				s.log.Warn("scrub: the record of the last pass is unreadable; a pass starts soon", "drive", d.Path(), "err", err)
			}
			return soonest
		}
		if i == 0 || rec.Started.Before(last.Started) {
			last = rec
		}
	}
	if last.Started.IsZero() {
		return soonest
	}
	s.update(func(st *admin.ScrubStatus) {
		st.LastPassStarted, st.LastPassFinished = last.Started, last.Finished
	})
	if due := last.Started.Add(s.cfg.Interval); due.After(soonest) {
		return due
	}
	return soonest
}

// noteFull records a full pass on every drive that is online.
func (s *scrubber) noteFull(started, finished time.Time) {
	b, err := json.Marshal(scrubNoteRec{Format: 1, Started: started, Finished: finished})
	if err != nil {
		return
	}
	for _, d := range s.data.Drives() {
		if err := d.WriteNote(scrubNote, b); err != nil && !errors.Is(err, store.ErrDriveFailed) {
			s.log.Warn("scrub: recording the pass", "drive", d.Path(), "err", err)
		}
	}
}

// upkeepRetry is the wait before the scrubber or the multipart expiry
// tries again after the metadata could not be read.
const upkeepRetry = time.Minute

// scrubItem is one shard a local drive should hold.
type scrubItem struct {
	ref   *blocks.Ref
	shard int
	size  int64 // estimated before reading
}

// plan lists the shards of every committed ref on each local drive, by
// drive ID, sorted by ref ID so that a drive's directories are visited in
// order. A ref named twice (a copied part) is listed once. Between
// partitions it yields to foreground traffic while ahead of its schedule
// (planAhead).
func (s *scrubber) plan(ctx context.Context) (map[string][]scrubItem, error) {
	local := map[string]bool{}
	for _, d := range s.data.Drives() {
		local[d.ID()] = true
	}
	seen := map[store.Name]bool{}
	items := map[string][]scrubItem{}
	start := time.Now()
	pause := func(done, total int) error {
		for s.busy() && planAhead(start, s.cfg.Interval, done, total, time.Now()) {
			if !waitUntil(ctx, time.Now().Add(s.cfg.YieldPoll)) {
				break
			}
		}
		return ctx.Err()
	}
	err := s.objects.ForEachRefPaced(ctx, pause, func(ref blocks.Ref) error {
		var r *blocks.Ref
		for i, id := range ref.Drives {
			name := store.Name{ID: ref.ID, Shard: i}
			if !local[id] || seen[name] {
				continue
			}
			seen[name] = true
			if r == nil {
				r = &ref
			}
			items[id] = append(items[id], scrubItem{ref: r, shard: i, size: shardSize(ref)})
		}
		return nil
	})
	for _, list := range items {
		slices.SortFunc(list, func(a, b scrubItem) int {
			return cmp.Or(cmp.Compare(a.ref.ID, b.ref.ID), cmp.Compare(a.shard, b.shard))
		})
	}
	return items, err
}

// planAhead reports whether a pass's listing, begun at start and through
// done of total partitions at now, is ahead of a schedule that lists them
// all in a tenth of the interval: only then may it pause for foreground
// traffic. A listing reads every object's records, which at ten million
// objects is minutes of a drive's and a processor's time; under traffic
// it spreads them over the tenth (TestScrubListingYieldsToTraffic).
func planAhead(start time.Time, interval time.Duration, done, total int, now time.Time) bool {
	if total <= 0 {
		return false
	}
	due := start.Add(time.Duration(float64(interval) / 10 * float64(done) / float64(total)))
	return now.Before(due)
}

// shardSize estimates the bytes of one shard of ref: its share of the
// data, without the padding of the last chunk.
func shardSize(ref blocks.Ref) int64 {
	if ref.Mirror || ref.K <= 1 {
		return ref.Size
	}
	return (ref.Size + int64(ref.K) - 1) / int64(ref.K)
}

// pass scrubs every local drive once. It returns false if the shards to
// check could not be listed.
func (s *scrubber) pass(ctx context.Context, start time.Time) bool {
	s.update(func(st *admin.ScrubStatus) {
		st.Running, st.Planning, st.PassStarted = true, true, start
		st.PassShardsTotal, st.PassShardsChecked = 0, 0
		st.PassBytesTotal, st.PassBytesChecked = 0, 0
	})
	items, err := s.plan(ctx)
	s.update(func(st *admin.ScrubStatus) { st.Planning = false })
	if err != nil {
		s.update(func(st *admin.ScrubStatus) { st.Running = false })
		if ctx.Err() == nil {
			s.log.Warn("scrub: listing the shards to check", "err", err)
			s.update(func(st *admin.ScrubStatus) { st.LastError = err.Error() })
		}
		return false
	}
	s.log.Info("scrub: listed the shards to check", "took", time.Since(start))
	var shards, bytes int64
	for _, list := range items {
		for _, it := range list {
			shards++
			bytes += it.size
		}
	}
	s.update(func(st *admin.ScrubStatus) {
		st.PassShardsTotal, st.PassBytesTotal = shards, bytes
	})
	s.log.Info("scrub pass started", "shards", shards, "bytes", bytes)
	var wg sync.WaitGroup
	var cut atomic.Bool
	for _, d := range s.data.Drives() {
		if list := items[d.ID()]; len(list) > 0 {
			wg.Go(func() {
				if !s.scrubDrive(ctx, d, list, start) {
					cut.Store(true)
				}
			})
		}
	}
	wg.Wait()
	// A pass a failed drive cut short is not a full pass: the drive's
	// shards are repair's once it is back.
	full := ctx.Err() == nil && !cut.Load()
	s.update(func(st *admin.ScrubStatus) {
		st.Running = false
		if full {
			st.Passes++
			st.LastPassStarted, st.LastPassFinished = start, time.Now()
		}
	})
	st := s.Status()
	if full {
		s.noteFull(start, st.LastPassFinished)
		s.log.Info("scrub pass finished", "shards", st.PassShardsChecked, "bytes", st.PassBytesChecked,
			"took", st.LastPassFinished.Sub(start))
	} else if ctx.Err() == nil {
		s.log.Warn("scrub pass ended early", "shards", st.PassShardsChecked, "of", st.PassShardsTotal, "err", st.LastError)
	}
	return true
}

// scrubDrive checks one drive's shards in order, at the drive's pace. It
// reports whether it checked them all.
func (s *scrubber) scrubDrive(ctx context.Context, d *store.Drive, list []scrubItem, start time.Time) bool {
	var total int64
	for _, it := range list {
		total += it.size
	}
	p := newScrubPace(start, s.cfg.Interval, total, s.cfg.MinRate)
	var done int64
	for _, it := range list {
		if !waitUntil(ctx, p.next(done)) || !s.yield(ctx, p, done+it.size) {
			return false
		}
		n, err := s.check(ctx, d, it)
		if n == 0 {
			n = it.size // not read: keep to the schedule planned
		}
		done += n
		if err != nil {
			if ctx.Err() == nil {
				// The drive failed: repair restores it once it is back.
				s.log.Warn("scrub: drive stopped answering; its pass ends here", "drive", d.Path(), "err", err)
				s.update(func(st *admin.ScrubStatus) { st.LastError = err.Error() })
			}
			return false
		}
	}
	return true
}

// yield waits while there is foreground traffic and the drive would still
// have read through byte upTo on schedule. It returns false if ctx ended.
func (s *scrubber) yield(ctx context.Context, p scrubPace, upTo int64) bool {
	for s.busy() && p.ahead(time.Now(), upTo) {
		if !waitUntil(ctx, time.Now().Add(s.cfg.YieldPoll)) {
			return false
		}
	}
	return ctx.Err() == nil
}

// check reads and verifies one shard — that the file is this shard's, of
// the length the ref implies, every block good — and has it rebuilt if it
// is corrupt, misplaced or missing (TestScrubRebuildsBadShards,
// TestScrubRepairsSwappedShardFiles). It returns the bytes read, and an
// error only when the drive can no longer be scrubbed (failed, or ctx
// ended).
func (s *scrubber) check(ctx context.Context, d *store.Drive, it scrubItem) (int64, error) {
	name := store.Name{ID: it.ref.ID, Shard: it.shard}
	read, err := s.data.VerifyShard(ctx, *it.ref, it.shard)
	if ctx.Err() != nil {
		return read, ctx.Err()
	}
	if errors.Is(err, store.ErrDriveFailed) {
		return read, err
	}
	s.update(func(st *admin.ScrubStatus) {
		st.ShardsChecked++
		st.PassShardsChecked++
		st.BytesChecked += read
		st.PassBytesChecked += read
	})
	switch {
	case err == nil:
		return read, nil
	case errors.Is(err, store.ErrMisplaced):
		// Counted as corrupt: the shard's own bytes are not there.
		s.update(func(st *admin.ScrubStatus) { st.CorruptShards++ })
		s.log.Warn("scrub: shard file belongs to another shard", "ref", name.ID, "shard", name.Shard, "drive", d.Path(), "err", err)
	case errors.Is(err, store.ErrCorrupt):
		s.update(func(st *admin.ScrubStatus) { st.CorruptShards++ })
		s.log.Warn("scrub: corrupt shard", "ref", name.ID, "shard", name.Shard, "drive", d.Path(), "err", err)
	case errors.Is(err, store.ErrNotFound):
		// Also what a delete racing the pass looks like; Repair then finds
		// too few shards and the failure is logged, not fatal.
		s.update(func(st *admin.ScrubStatus) { st.MissingShards++ })
		s.log.Warn("scrub: missing shard", "ref", name.ID, "shard", name.Shard, "drive", d.Path())
	default:
		// An I/O error: the drive checks itself; if it is failed the next
		// shard says so. Rebuilding onto a drive that just erred is left
		// to that check and to repair.
		s.update(func(st *admin.ScrubStatus) { st.LastError = err.Error() })
		s.log.Warn("scrub: reading a shard", "ref", name.ID, "shard", name.Shard, "drive", d.Path(), "err", err)
		return read, nil
	}
	rebuilt, rerr := s.data.Repair(ctx, *it.ref)
	if ctx.Err() != nil {
		return read, ctx.Err()
	}
	s.update(func(st *admin.ScrubStatus) {
		st.RepairedShards += int64(rebuilt)
		if rerr != nil {
			st.RepairFailures++
			st.LastError = rerr.Error()
		}
	})
	if rerr != nil {
		s.log.Warn("scrub: rebuilding a bad shard", "ref", name.ID, "shard", name.Shard, "rebuilt", rebuilt, "err", rerr)
	}
	return read, nil
}

// scrubPace is one drive's schedule within a pass: byte b is due at
// start + b/rate, where rate lets the drive finish in nine tenths of the
// interval (or faster, at the floor rate).
type scrubPace struct {
	start    time.Time
	interval time.Duration
	total    int64
	rate     float64 // bytes per second
}

func newScrubPace(start time.Time, interval time.Duration, total, minRate int64) scrubPace {
	rate := float64(minRate)
	if budget := 0.9 * interval.Seconds(); budget > 0 {
		rate = max(rate, float64(total)/budget)
	}
	return scrubPace{start: start, interval: interval, total: total, rate: rate}
}

// next is when the drive may read on, having read done bytes.
func (p scrubPace) next(done int64) time.Time {
	return p.start.Add(time.Duration(float64(done) / p.rate * float64(time.Second)))
}

// ahead reports whether, having read done bytes at now, the drive is ahead
// of the schedule that would end the pass exactly at the interval: only
// then may it pause for foreground traffic without missing the interval.
func (p scrubPace) ahead(now time.Time, done int64) bool {
	if p.total <= 0 {
		return true
	}
	due := p.start.Add(time.Duration(float64(p.interval) * float64(done) / float64(p.total)))
	return now.Before(due)
}

// waitUntil blocks until t or the end of ctx; it reports whether t came.
func waitUntil(ctx context.Context, t time.Time) bool {
	d := time.Until(t)
	if d <= 0 {
		return ctx.Err() == nil
	}
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-tm.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// expireEvery is how often stale multipart uploads are looked for. An
// hour is fine-grained next to an expiry age of days, and one scan of the
// upload records an hour costs nothing.
const expireEvery = time.Hour

// expireUploads aborts the multipart uploads older than
// Config.MultipartExpiry, at once and then every expireEvery, until ctx
// ends; it returns nil then. In a cluster every node does it; the
// conditional abort lets one win per upload.
func (n *Node) expireUploads(ctx context.Context) error {
	age := n.cfg.MultipartExpiry
	if age <= 0 {
		return nil
	}
	log := n.log.With("component", "multipart-expiry")
	for {
		aborted, err := n.objects.ExpireMultipartUploads(ctx, age)
		if ctx.Err() != nil {
			return nil
		}
		n.upkeep.expired.Add(int64(aborted))
		if err != nil {
			log.Warn("aborting stale multipart uploads", "aborted", aborted, "err", err)
		} else if aborted > 0 {
			log.Info("aborted stale multipart uploads", "aborted", aborted, "older_than", age)
		}
		wait := expireEvery
		if err != nil {
			wait = upkeepRetry
		}
		if !waitUntil(ctx, time.Now().Add(wait)) {
			return nil
		}
	}
}
