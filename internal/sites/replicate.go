package sites

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redoubt-io/redoubt/internal/admin"
	"github.com/redoubt-io/redoubt/internal/merkle"
	"github.com/redoubt-io/redoubt/internal/objects"
	"github.com/redoubt-io/redoubt/internal/records"
)

// The requests a site makes of another, on its admin API, signed with
// the other's root credentials (admin.Client):
//
//	POST /sites/exchange  Exchange -> Exchange   the replicated buckets, each side adopting the other's
//	POST /sites/roots     Roots -> Roots         the root digests of partitions (records.SitePartition)
//	POST /sites/records   RecordsCall -> RecordsCall  a records request (records.SiteRequest), answered by a replica

// Exchange is both the request and the answer of /sites/exchange.
type Exchange struct {
	// Partitions is the sender's partition count: sites must agree on
	// it, since a key's partition is the same on both.
	Partitions int                  `json:"partitions"`
	Buckets    []objects.SiteBucket `json:"buckets"`
	// Refused, in an answer, names the sender's buckets the answerer
	// could not adopt, and why.
	Refused []string `json:"refused,omitempty"`
}

// Roots asks for, and answers with, partitions' root digests.
type Roots struct {
	Partitions []uint32 `json:"partitions"`
	Roots      [][]byte `json:"roots,omitempty"`
}

// RecordsCall carries a records request, and its answer.
type RecordsCall struct {
	Request []byte `json:"request,omitempty"`
	Answer  []byte `json:"answer,omitempty"`
}

// Local is this cluster as the replicator needs it (*cluster.Cluster).
type Local interface {
	Records() *records.Store
	// SitePrimaries are the base partitions whose Syncs this node runs.
	SitePrimaries() []uint32
	// SpreadRecords hands records a Sync brought to this node to the
	// partition's other replicas soon.
	SpreadRecords(q records.Partition)
}

// Buckets are this cluster's replicated buckets (*objects.Service).
type Buckets interface {
	SiteBuckets(ctx context.Context) ([]objects.SiteBucket, error)
	AdoptBucket(ctx context.Context, b objects.SiteBucket) error
	// CopySiteData copies the other sites' data that versions among
	// recs (of partition q) name and this site lacks.
	CopySiteData(ctx context.Context, q records.Partition, recs []records.Record) (int, error)
}

// Config configures a Replicator.
type Config struct {
	Registry   Registry
	Local      Local
	Buckets    Buckets
	Partitions func() int // this cluster's partition count, 0 while unknown
	// Every is how often each site is compared (default 1 s).
	Every time.Duration
	// Region is the region requests to other sites are signed for.
	Region string
	HTTP   *http.Client
	Log    *slog.Logger
}

// Replicator runs this node's share of the Syncs with every linked site.
type Replicator struct {
	cfg    Config
	copies chan copyJob
	copied atomic.Int64
	mu     sync.Mutex
	st     map[string]*siteState
	// sites is the last list read, kept for when the metadata majority
	// is out of reach.
	sites []Site
}

type siteState struct {
	site     Site
	started  time.Time
	synced   map[uint32]time.Time // base partition -> in step as of
	behind   int
	lastPass time.Time
	lastErr  string
	refused  []string
	fetched  int64
	sent     int64
	exchange time.Time
}

// New returns a Replicator.
func New(cfg Config) *Replicator {
	if cfg.Every == 0 {
		cfg.Every = time.Second
	}
	if cfg.HTTP == nil {
		cfg.HTTP = &http.Client{Timeout: time.Minute}
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	return &Replicator{cfg: cfg, st: map[string]*siteState{}, copies: make(chan copyJob, copyQueue)}
}

// copyJob is records another site brought, whose data to copy.
type copyJob struct {
	q    records.Partition
	recs []records.Record
}

// copyQueue bounds the batches of records waiting for their data to be
// copied; past it, a batch is left to the sweep (sweepEvery) or to the
// first read of its versions.
const copyQueue = 256

// sweepEvery is how often a node looks through the partitions it syncs
// for other sites' data it has no copy of (a copy that failed, or was
// dropped from a full queue).
const sweepEvery = 10 * time.Minute

// Brought queues the copy of the data that recs, records of partition q
// another site brought, name. It does not wait.
func (r *Replicator) Brought(q records.Partition, recs []records.Record) {
	if len(recs) == 0 {
		return
	}
	select {
	case r.copies <- copyJob{q, recs}:
	default:
	}
}

// copyData copies the data of the queued records, and sweeps every
// sweepEvery, until ctx ends.
func (r *Replicator) copyData(ctx context.Context) {
	sweep := time.NewTicker(sweepEvery)
	defer sweep.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case j := <-r.copies:
			n, err := r.cfg.Buckets.CopySiteData(ctx, j.q, j.recs)
			r.copied.Add(int64(n))
			if err != nil {
				r.cfg.Log.Warn("copying another site's data: left to the next sweep or the first read", "partition", j.q.Base(), "err", err)
			}
		case <-sweep.C:
			r.Sweep(ctx)
		}
	}
}

// Sweep copies the other sites' data that the versions of the partitions
// this node syncs name and this site lacks.
func (r *Replicator) Sweep(ctx context.Context) {
	store := r.cfg.Local.Records()
	if store == nil {
		return
	}
	for _, p := range r.cfg.Local.SitePrimaries() {
		q := records.SitePartition(p)
		from := []byte{}
		for ctx.Err() == nil {
			recs, more, err := store.Scan(q, from, nil, 1000)
			if err != nil || len(recs) == 0 {
				break
			}
			n, err := r.cfg.Buckets.CopySiteData(ctx, q, recs)
			r.copied.Add(int64(n))
			if err != nil {
				r.cfg.Log.Warn("sweep: copying another site's data", "partition", p, "err", err)
			}
			if !more {
				break
			}
			from = append(recs[len(recs)-1].Key, 0)
		}
	}
}

// exchangeEvery is how often the replicated buckets are exchanged.
const exchangeEvery = 5 * time.Second

// askTimeout bounds the small requests of a pass (the exchange, the
// roots), and syncTimeout one partition's Sync: a link that went dead
// holds a pass up by that much at most, not by the HTTP client's bound.
const (
	askTimeout  = 5 * time.Second
	syncTimeout = time.Minute
)

// syncWorkers bounds the partitions one site's pass Syncs at once.
const syncWorkers = 4

// Run passes over every site every Config.Every until ctx ends.
func (r *Replicator) Run(ctx context.Context) error {
	go r.copyData(ctx)
	t := time.NewTicker(r.cfg.Every)
	defer t.Stop()
	for {
		r.Pass(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Pass compares this node's partitions with every linked site once, and
// copies what differs.
func (r *Replicator) Pass(ctx context.Context) {
	sites, err := r.cfg.Registry.List(ctx)
	r.mu.Lock()
	if err != nil {
		sites = r.sites
	} else {
		r.sites = sites
	}
	live := map[string]bool{}
	for _, s := range sites {
		live[s.Name] = true
		if st, ok := r.st[s.Name]; !ok || st.site != s {
			r.st[s.Name] = &siteState{site: s, started: time.Now(), synced: map[uint32]time.Time{}}
		}
	}
	for name := range r.st {
		if !live[name] {
			delete(r.st, name)
		}
	}
	r.mu.Unlock()
	for _, s := range sites {
		r.passSite(ctx, s)
	}
}

// client reaches site s.
func (r *Replicator) client(s Site) *admin.Client {
	return &admin.Client{AccessKey: s.AccessKey, SecretKey: s.SecretKey, Region: r.cfg.Region, HTTP: r.cfg.HTTP}
}

func (r *Replicator) state(name string) *siteState {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.st[name]
}

func (r *Replicator) passSite(ctx context.Context, s Site) {
	start := time.Now()
	st := r.state(s.Name)
	if st == nil {
		return
	}
	c := r.client(s)
	err := r.exchange(ctx, c, s, st, start)
	var behind int
	var fetched, sent int
	if err == nil {
		behind, fetched, sent, err = r.syncPartitions(ctx, c, s, st, start)
	} else {
		behind = len(r.cfg.Local.SitePrimaries())
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	st.lastPass = start
	st.behind = behind
	st.fetched += int64(fetched)
	st.sent += int64(sent)
	if err != nil {
		if st.lastErr == "" {
			r.cfg.Log.Warn("site not in step", "site", s.Name, "err", err)
		}
		st.lastErr = err.Error()
	} else {
		st.lastErr = ""
	}
	if fetched+sent > 0 {
		r.cfg.Log.Info("site replication", "site", s.Name, "fetched", fetched, "sent", sent, "took", time.Since(start).Round(time.Millisecond))
	}
}

// exchange sends this site's replicated buckets to s and adopts s's, at
// most every exchangeEvery.
func (r *Replicator) exchange(ctx context.Context, c *admin.Client, s Site, st *siteState, now time.Time) error {
	r.mu.Lock()
	due := now.Sub(st.exchange) >= exchangeEvery
	r.mu.Unlock()
	if !due {
		return nil
	}
	mine, err := r.cfg.Buckets.SiteBuckets(ctx)
	if err != nil {
		return fmt.Errorf("listing the replicated buckets: %w", err)
	}
	var theirs Exchange
	ctx, cancel := context.WithTimeout(ctx, askTimeout)
	defer cancel()
	if err := c.Call(ctx, s.Endpoint, http.MethodPost, "/sites/exchange",
		Exchange{Partitions: r.cfg.Partitions(), Buckets: mine}, &theirs); err != nil {
		return fmt.Errorf("site %s: %w", s.Name, err)
	}
	if theirs.Partitions != r.cfg.Partitions() {
		return fmt.Errorf("site %s has %d partitions and this one %d: sites must have the same count", s.Name, theirs.Partitions, r.cfg.Partitions())
	}
	var refused []string
	for _, why := range Adopt(ctx, r.cfg.Buckets, theirs.Buckets) {
		refused = append(refused, "here: "+why)
	}
	for _, why := range theirs.Refused {
		refused = append(refused, "on "+s.Name+": "+why)
	}
	r.mu.Lock()
	st.exchange = now
	st.refused = refused
	r.mu.Unlock()
	return nil
}

// Adopt creates the buckets of bs this site lacks, and returns why it
// could not for those it could not.
func Adopt(ctx context.Context, b Buckets, bs []objects.SiteBucket) []string {
	var refused []string
	for _, sb := range bs {
		if err := b.AdoptBucket(ctx, sb); err != nil {
			refused = append(refused, fmt.Sprintf("bucket %s not replicated: %v", sb.Name, err))
		}
	}
	return refused
}

// syncPartitions compares the roots of this node's partitions with s's
// and Syncs those that differ. It returns how many could not be brought
// in step, and the records copied each way.
func (r *Replicator) syncPartitions(ctx context.Context, c *admin.Client, s Site, st *siteState, start time.Time) (behind, fetched, sent int, err error) {
	store := r.cfg.Local.Records()
	parts := r.cfg.Local.SitePrimaries()
	if store == nil || len(parts) == 0 {
		return 0, 0, 0, nil
	}
	var theirs Roots
	actx, cancel := context.WithTimeout(ctx, askTimeout)
	defer cancel()
	if err := c.Call(actx, s.Endpoint, http.MethodPost, "/sites/roots", Roots{Partitions: parts}, &theirs); err != nil {
		return len(parts), 0, 0, fmt.Errorf("site %s: roots: %w", s.Name, err)
	}
	if len(theirs.Roots) != len(parts) {
		return len(parts), 0, 0, fmt.Errorf("site %s: %d roots for %d partitions", s.Name, len(theirs.Roots), len(parts))
	}
	var todo []uint32
	var inStep []uint32
	for i, p := range parts {
		if root := store.Root(records.SitePartition(p)); slices.Equal(root[:], theirs.Roots[i]) {
			inStep = append(inStep, p)
		} else {
			todo = append(todo, p)
		}
	}
	var mu sync.Mutex
	var errs []error
	work := make(chan uint32)
	var wg sync.WaitGroup
	for range min(syncWorkers, len(todo)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for p := range work {
				q := records.SitePartition(p)
				sctx, cancel := context.WithTimeout(ctx, syncTimeout)
				peer := records.PeerOver(func(req []byte) ([]byte, error) {
					var out RecordsCall
					if err := c.Call(sctx, s.Endpoint, http.MethodPost, "/sites/records", RecordsCall{Request: req}, &out); err != nil {
						return nil, err
					}
					return out.Answer, nil
				})
				ss, err := records.Sync(store, peer, q)
				cancel()
				if ss.Fetched > 0 {
					r.cfg.Local.SpreadRecords(q)
					r.Brought(q, ss.Got)
				}
				mu.Lock()
				fetched += ss.Fetched
				sent += ss.Sent
				if err != nil {
					behind++
					errs = append(errs, fmt.Errorf("partition %d: %w", p, err))
				} else {
					inStep = append(inStep, p)
				}
				mu.Unlock()
			}
		}()
	}
	for _, p := range todo {
		if ctx.Err() != nil {
			break
		}
		work <- p
	}
	close(work)
	wg.Wait()
	r.mu.Lock()
	mine := map[uint32]bool{}
	for _, p := range parts {
		mine[p] = true
	}
	for p := range st.synced {
		if !mine[p] {
			delete(st.synced, p) // another node syncs it now
		}
	}
	for _, p := range inStep {
		st.synced[p] = start
	}
	r.mu.Unlock()
	if len(errs) > 0 {
		return behind, fetched, sent, fmt.Errorf("site %s: %d partitions not in step: %w", s.Name, len(errs), errors.Join(errs[:min(3, len(errs))]...))
	}
	return behind, fetched, sent, nil
}

// Status is what this node knows of each linked site.
func (r *Replicator) Status() []admin.SiteStatus {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := time.Now()
	parts := r.cfg.Local.SitePrimaries()
	out := make([]admin.SiteStatus, 0, len(r.st))
	for _, st := range r.st {
		ss := admin.SiteStatus{Name: st.site.Name, Endpoint: st.site.Endpoint, Partitions: len(parts),
			Behind: st.behind, LastError: st.lastErr, Refused: st.refused,
			RecordsFetched: st.fetched, RecordsSent: st.sent, DataCopied: r.copied.Load(), CopiesQueued: len(r.copies)}
		if !st.lastPass.IsZero() {
			ss.LastPass = st.lastPass
		}
		oldest := now
		for _, p := range parts {
			at, ok := st.synced[p]
			if !ok {
				at = st.started
			}
			if at.Before(oldest) {
				oldest = at
			}
		}
		ss.LagSeconds = now.Sub(oldest).Seconds()
		out = append(out, ss)
	}
	slices.SortFunc(out, func(a, b admin.SiteStatus) int {
		if a.Name < b.Name {
			return -1
		}
		if a.Name > b.Name {
			return 1
		}
		return 0
	})
	return out
}

// ServeRoots answers a Roots request with this cluster's roots, read
// through call (the records request of one partition, as /sites/records
// answers it).
func ServeRoots(ctx context.Context, in Roots, call func(ctx context.Context, req []byte) ([]byte, error)) (Roots, error) {
	const maxParts = 1 << 16
	if len(in.Partitions) > maxParts {
		return Roots{}, fmt.Errorf("%w: %d partitions in one request", records.ErrInvalidRequest, len(in.Partitions))
	}
	out := Roots{Partitions: in.Partitions, Roots: make([][]byte, len(in.Partitions))}
	var wg sync.WaitGroup
	errs := make([]error, len(in.Partitions))
	sem := make(chan struct{}, 16)
	for i, p := range in.Partitions {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			b, err := call(ctx, records.RootRequest(records.SitePartition(p)))
			if err == nil && len(b) != merkle.Size {
				err = fmt.Errorf("%w: root of %d bytes", records.ErrInvalidRequest, len(b))
			}
			out.Roots[i], errs[i] = b, err
		}()
	}
	wg.Wait()
	return out, errors.Join(errs...)
}
