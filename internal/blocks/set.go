package blocks

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/zeebo/xxh3"

	"github.com/redoubt-io/redoubt/internal/clock"
	"github.com/redoubt-io/redoubt/internal/erasure"
	"github.com/redoubt-io/redoubt/internal/placement"
	"github.com/redoubt-io/redoubt/internal/shardrpc"
	"github.com/redoubt-io/redoubt/internal/store"
)

// Errors of Set, in addition to ErrBadRef.
var (
	// ErrQuorum: a Write could not make enough shards durable.
	ErrQuorum = errors.New("write quorum not reached")
	// ErrUnreadable: fewer than K shards of a chunk could be read; the data
	// is unavailable (drives down) or lost.
	ErrUnreadable = errors.New("too few shards readable")
	// ErrRange: Open was asked for bytes outside the data.
	ErrRange = errors.New("range outside data")
)

// Config tunes a Set. Start from DefaultConfig.
type Config struct {
	// Policy is the redundancy of data written from now on (SetPolicy
	// changes it later); data already written keeps the policy recorded in
	// its Ref.
	Policy placement.Policy
	// Resolve finds a drive by ID, on this node or another, for the shards
	// a Ref names and the candidates Place returns. The local drives given
	// to New are found without it. Nil: only the local drives exist, and a
	// shard on any other drive counts as missing.
	Resolve func(id string) (shardrpc.Drive, bool)
	// Place returns the candidate drives, by ID and in order of
	// preference, for the shards of a new Ref id in partition p. A Write
	// takes the first K+M distinct ones that are online, so Place should
	// list spare drives after the preferred ones for writes to go on while
	// drives or nodes are down. Nil: a rotation over the local drives that
	// starts at a hash of the Ref ID, whatever the partition.
	Place func(p uint32, id string) []string
	// ChunkSize is the bytes of each data shard per chunk, so a chunk
	// (stripe) holds K*ChunkSize object bytes. Larger chunks mean larger
	// sequential I/O and fewer calls; smaller ones mean less memory per
	// request and less read amplification for small ranges. 1 MiB.
	ChunkSize int
	// CreateWait bounds how long a Write waits for a drive to open a
	// shard before it turns to the next spare: a drive believed online
	// whose node is cut off since its last health check answers no call,
	// and would hold the write until the request's deadline. 0: no bound.
	// 3 s.
	CreateWait time.Duration
	// WriteAhead is how many coded stripes may wait for slow drives while
	// the next one is read. A Write holds at most WriteAhead+2 stripes:
	// memory per Write is about (WriteAhead+2)*(K+M)*ChunkSize. 2.
	WriteAhead int
	// ReadAhead is how many chunks a reader decodes ahead of its consumer. 2.
	ReadAhead int
	// BufferBytes bounds the bytes of buffers that Writes and readers
	// hold at once, half for each (budget.go): a Write takes what its
	// stripes in flight and its shard writers may hold before it starts, a
	// reader its read-ahead when it opens. So memory does not grow with
	// the number of large requests in flight: past the bound they wait
	// (TestBufferBytesBoundLargeWrites). 0: no bound.
	BufferBytes int64
	// WriterBytes is the memory each shard writer of a Write holds while
	// it is open (a local drive's write buffer, store.Config.WriteBuffer),
	// counted in the Write's buffers. 1 MiB.
	WriterBytes int
	// BufferWait is how long a Write or an Open waits for its buffers
	// before it fails with ErrBusy. 0: as long as its context lasts. 10 s.
	BufferWait time.Duration
	// MaxRepairBacklog bounds the refs remembered as needing repair; more
	// are counted and dropped (a scrub finds them again). 10000.
	MaxRepairBacklog int
	// OnNeedsRepair, if set, is called once per Open that found a missing or
	// corrupt shard, from the reading goroutine; it must not block.
	OnNeedsRepair func(Ref)
	// HealthInterval is how often Run re-checks the drives, counted from
	// the end of the last check. 30 s.
	HealthInterval time.Duration
	// After makes Run's waits; nil uses time's timers. A simulation
	// passes its own, so that the checks are events of its queue.
	After clock.After
}

// DefaultConfig returns the defaults described on each field, with policy.
func DefaultConfig(policy placement.Policy) Config {
	return Config{Policy: policy, ChunkSize: 1 << 20, WriteAhead: 2, ReadAhead: 2, CreateWait: 3 * time.Second,
		MaxRepairBacklog: 10000, HealthInterval: 30 * time.Second, BufferWait: 10 * time.Second, WriterBytes: 1 << 20}
}

// Validate reports whether c can be used.
func (c Config) Validate() error {
	if err := c.Policy.Validate(); err != nil {
		return fmt.Errorf("blocks: %w", err)
	}
	switch {
	case c.ChunkSize < 4<<10 || c.ChunkSize > 64<<20:
		return fmt.Errorf("blocks: chunk size %d outside [4 KiB, 64 MiB]", c.ChunkSize)
	case c.WriteAhead < 1 || c.ReadAhead < 1:
		return fmt.Errorf("blocks: write-ahead %d and read-ahead %d must be positive", c.WriteAhead, c.ReadAhead)
	case c.MaxRepairBacklog < 0:
		return fmt.Errorf("blocks: negative repair backlog")
	case c.HealthInterval <= 0:
		return fmt.Errorf("blocks: health interval %v must be positive", c.HealthInterval)
	case c.BufferBytes < 0 || c.BufferWait < 0 || c.WriterBytes < 0:
		return fmt.Errorf("blocks: buffer bytes %d, writer bytes %d and buffer wait %v must not be negative", c.BufferBytes, c.WriterBytes, c.BufferWait)
	}
	return nil
}

// DriveStatus is what the admin status page shows of one drive.
type DriveStatus = store.Stats

// Set stores data over drives of this node and, through Config.Resolve
// and Config.Place, of others. See the package doc.
type Set struct {
	cfg    Config
	drives []*store.Drive // this node's, for health and status
	local  map[string]shardrpc.Drive
	log    *slog.Logger
	policy atomic.Pointer[placement.Policy]

	coders sync.Map // placement.Policy -> erasure.Coder
	bufs   sync.Pool

	writeBudget, readBudget *budget
	// bufsOut is the bytes of buffers handed out by getBuf and not yet
	// back: what the budgets bound, counted where the memory is.
	bufsOut, bufsPeak atomic.Int64

	corruptShards atomic.Uint64
	repairDropped atomic.Uint64

	// unanswered holds the drives whose Create went unanswered past
	// CreateWait, with when: writes skip them for suspectFor, so that a
	// node cut off costs one wait, not one per write.
	unanswered sync.Map // drive ID -> time.Time

	mu struct {
		sync.Mutex
		repair map[string]Ref
	}
}

var _ Store = (*Set)(nil)
var _ IDWriter = (*Set)(nil)

// New returns a Set over drives, this node's drives, which must all belong
// to one store set. Without Config.Place they must be enough for the
// policy; with it the policy is checked against the candidates of each
// Write instead, as the drives are the cluster's.
func New(cfg Config, drives []*store.Drive, logger *slog.Logger) (*Set, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if n := cfg.Policy.Shards(); cfg.Place == nil && n > len(drives) {
		return nil, fmt.Errorf("blocks: policy %v needs %d drives, have %d", cfg.Policy, n, len(drives))
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	s := &Set{cfg: cfg, drives: drives, local: map[string]shardrpc.Drive{}, log: logger,
		writeBudget: newBudget(cfg.BufferBytes / 2), readBudget: newBudget(cfg.BufferBytes - cfg.BufferBytes/2)}
	for _, d := range drives {
		if _, dup := s.local[d.ID()]; dup {
			return nil, fmt.Errorf("blocks: drive %s given twice", d.ID())
		}
		s.local[d.ID()] = shardrpc.LocalDrive{D: d}
	}
	s.mu.repair = map[string]Ref{}
	if _, err := s.coder(cfg.Policy.K, cfg.Policy.M, cfg.Policy.Mirror); err != nil {
		return nil, err
	}
	pol := cfg.Policy
	s.policy.Store(&pol)
	return s, nil
}

// Drives returns this node's drives, in configuration order.
func (s *Set) Drives() []*store.Drive { return s.drives }

// Policy returns the redundancy of writes started now.
func (s *Set) Policy() placement.Policy { return *s.policy.Load() }

// SetPolicy makes p the redundancy of writes started from now on; writes
// under way and data written keep theirs. A policy that cannot be used —
// invalid, or needing more drives than this node has when there is no
// Config.Place — is logged and ignored, keeping the current one.
func (s *Set) SetPolicy(p placement.Policy) {
	if err := p.Validate(); err != nil {
		s.log.Error("ignoring an invalid redundancy policy", "policy", p, "err", err)
		return
	}
	if s.cfg.Place == nil && p.Shards() > len(s.drives) {
		s.log.Error("ignoring a redundancy policy this node's drives cannot hold",
			"policy", p, "shards", p.Shards(), "drives", len(s.drives))
		return
	}
	if _, err := s.coder(p.K, p.M, p.Mirror); err != nil {
		s.log.Error("ignoring a redundancy policy", "policy", p, "err", err)
		return
	}
	if old := s.policy.Swap(&p); *old != p {
		s.log.Info("redundancy policy changed", "from", *old, "to", p)
	}
}

// drive finds a drive by ID: this node's first, then through Resolve.
func (s *Set) drive(id string) (shardrpc.Drive, bool) {
	if d, ok := s.local[id]; ok {
		return d, true
	}
	if s.cfg.Resolve == nil {
		return nil, false
	}
	d, ok := s.cfg.Resolve(id)
	if !ok || d == nil {
		return nil, false
	}
	return d, true
}

func (s *Set) coder(k, m int, mirror bool) (erasure.Coder, error) {
	key := placement.Policy{K: k, M: m, Mirror: mirror}
	if c, ok := s.coders.Load(key); ok {
		return c.(erasure.Coder), nil
	}
	var c erasure.Coder
	var err error
	if mirror || k+m == 1 {
		c, err = erasure.NewMirror(k + m)
	} else {
		c, err = erasure.New(k, m)
	}
	if err != nil {
		return nil, fmt.Errorf("blocks: %w", err)
	}
	s.coders.Store(key, c)
	return c, nil
}

func (s *Set) getBuf(n int) *[]byte {
	out := s.bufsOut.Add(int64(n))
	for p := s.bufsPeak.Load(); out > p && !s.bufsPeak.CompareAndSwap(p, out); p = s.bufsPeak.Load() {
	}
	if v, ok := s.bufs.Get().(*[]byte); ok && cap(*v) >= n {
		*v = (*v)[:n]
		return v
	}
	b := make([]byte, n)
	return &b
}

func (s *Set) putBuf(b *[]byte) {
	s.bufsOut.Add(-int64(len(*b)))
	s.bufs.Put(b)
}

// pick chooses the drive of each shard of a new ref in partition p: the
// first online drives of the candidates (Config.Place, or a rotation over
// the local drives starting at a hash of the ID to spread load); the
// online candidates after them, up to maxSpares(shards), are the spares, in
// order. While at least quorum candidates are online but fewer than
// shards, the rest of the shards go to offline candidates: the Ref names
// them, the write counts them as failed, and repair fills them once they
// are back. Fewer than quorum online candidates, or fewer than shards in
// all, is ErrQuorum. It looks at the candidates only until it has its
// targets and spares, so a write to a large cluster costs what it uses,
// not every drive the placement lists (BenchmarkPick).
func (s *Set) pick(p uint32, id string, shards, quorum int) (targets, spares []shardrpc.Drive, err error) {
	cands := s.candidateDrives(p, id, shards)
	return pickFrom(cands, p, shards, quorum)
}

// candidates are the IDs of the drives a new ref of partition p may go
// to, in order of preference: Config.Place's, or every local drive.
func (s *Set) candidates(p uint32, id string) []string {
	if s.cfg.Place != nil {
		return s.cfg.Place(p, id)
	}
	out := make([]string, 0, len(s.drives))
	for _, d := range s.drives {
		out = append(out, d.ID())
	}
	return out
}

// candidateDrives yields the drives pick chooses from.
func (s *Set) candidateDrives(p uint32, id string, shards int) func(yield func(shardrpc.Drive) bool) {
	return func(yield func(shardrpc.Drive) bool) {
		if s.cfg.Place == nil {
			n := len(s.drives)
			start := int(xxh3.HashString(id) % uint64(n))
			for j := range n {
				if !yield(s.local[s.drives[(start+j)%n].ID()]) {
					return
				}
			}
			return
		}
		ids := s.cfg.Place(p, id)
		seen := make(map[string]bool, 2*shards)
		for _, did := range ids {
			if seen[did] {
				continue
			}
			seen[did] = true
			if d, ok := s.drive(did); ok && !yield(d) {
				return
			}
		}
	}
}

func pickFrom(cands func(yield func(shardrpc.Drive) bool), p uint32, shards, quorum int) (targets, spares []shardrpc.Drive, err error) {
	out := make([]shardrpc.Drive, 0, shards)
	var offline []shardrpc.Drive
	n := 0
	for d := range cands {
		n++
		if len(out) == shards {
			if d.Online() {
				if spares = append(spares, d); len(spares) == maxSpares(shards) {
					break
				}
			}
			continue
		}
		if !d.Online() {
			offline = append(offline, d)
			continue
		}
		out = append(out, d)
	}
	if len(out) == shards {
		return out, spares, nil
	}
	if len(out) < quorum {
		return nil, nil, fmt.Errorf("%w: %d of %d candidate drives online for partition %d, need %d",
			ErrQuorum, len(out), n, p, quorum)
	}
	if len(out)+len(offline) < shards {
		return nil, nil, fmt.Errorf("%w: %d candidate drives for partition %d, need %d",
			ErrQuorum, n, p, shards)
	}
	return append(out, offline[:shards-len(out)]...), nil, nil
}

// maxSpares bounds the spares of a write of shards shards: enough to
// replace every target three times over (openSinks takes one per target
// whose drive fails to create its shard).
func maxSpares(shards int) int { return 3 * shards }

// geometry of a Ref's chunks.
type geometry struct {
	stripe    int64 // object bytes per full chunk
	shardFull int64 // shard bytes of a full chunk
	chunks    int64
	coder     erasure.Coder
}

func (s *Set) geometry(ref Ref) (geometry, error) {
	if err := ref.validate(); err != nil {
		return geometry{}, err
	}
	c, err := s.coder(ref.K, ref.M, ref.Mirror)
	if err != nil {
		return geometry{}, err
	}
	if ref.ChunkSize > 1<<30 {
		return geometry{}, fmt.Errorf("%w: chunk size %d", ErrBadRef, ref.ChunkSize)
	}
	return geometry{
		stripe:    ref.ChunkSize,
		shardFull: int64(c.ShardSize(int(ref.ChunkSize))),
		chunks:    (ref.Size + ref.ChunkSize - 1) / ref.ChunkSize,
		coder:     c,
	}, nil
}

func (g geometry) chunkLen(size, c int64) int64 { return min(g.stripe, size-c*g.stripe) }

func (g geometry) shardLen(size int64) int64 {
	if g.chunks == 0 {
		return 0
	}
	return (g.chunks-1)*g.shardFull + int64(g.coder.ShardSize(int(g.chunkLen(size, g.chunks-1))))
}

// noteRepair records that ref has a bad shard.
func (s *Set) noteRepair(ref Ref) {
	s.mu.Lock()
	_, known := s.mu.repair[ref.ID]
	if !known {
		if len(s.mu.repair) < s.cfg.MaxRepairBacklog {
			s.mu.repair[ref.ID] = ref
		} else {
			s.repairDropped.Add(1)
		}
	}
	s.mu.Unlock()
	if s.cfg.OnNeedsRepair != nil {
		s.cfg.OnNeedsRepair(ref)
	}
}

// NeedsRepair returns the refs reads found missing or corrupt shards in,
// and forgets them: the caller is expected to Repair each.
func (s *Set) NeedsRepair() []Ref {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Ref, 0, len(s.mu.repair))
	for _, r := range s.mu.repair {
		out = append(out, r)
	}
	clear(s.mu.repair)
	return out
}

// CorruptShards is how many corrupt shards reads and repairs have found.
func (s *Set) CorruptShards() uint64 { return s.corruptShards.Load() }

// Status reports every drive, in configuration order.
func (s *Set) Status() []DriveStatus {
	out := make([]DriveStatus, len(s.drives))
	for i, d := range s.drives {
		out[i] = d.Stats()
	}
	return out
}

// CheckDrives re-checks every drive now, bringing recovered ones back.
func (s *Set) CheckDrives() {
	for _, d := range s.drives {
		_ = d.Check() // state changes are logged by the drive
	}
}

// Run checks the drives every HealthInterval until ctx is done.
func (s *Set) Run(ctx context.Context) error {
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-s.cfg.After.Wait(s.cfg.HealthInterval, "drive health"):
			s.CheckDrives()
		}
	}
}

// Delete removes ref's shards from every drive it can reach. Shards on
// failed or unknown drives stay behind as orphans for garbage collection.
func (s *Set) Delete(ctx context.Context, ref Ref) error {
	if err := ref.validate(); err != nil {
		return err
	}
	errs := make([]error, len(ref.Drives))
	var wg sync.WaitGroup
	for i, id := range ref.Drives {
		d, ok := s.drive(id)
		if !ok {
			continue
		}
		// In parallel: remote drives cost a round trip each.
		wg.Go(func() {
			err := d.Remove(ctx, store.Name{ID: ref.ID, Shard: i})
			if err != nil && !errors.Is(err, store.ErrDriveFailed) {
				errs[i] = err
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}
