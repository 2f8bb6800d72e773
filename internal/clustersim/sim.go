package clustersim

import (
	"cmp"
	"container/heap"
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing/synctest"
	"time"

	"github.com/zeebo/xxh3"
)

// Config is one simulated run.
type Config struct {
	// Seed decides everything the simulation decides: the workload, the
	// faults and their timing, every packet's fate, the order of events
	// at one instant.
	Seed uint64
	// Nodes is the size of the cluster (3 to 7 in the swarm; 50 in
	// TestFiftyNodes).
	Nodes int
	// Zones spreads the nodes over this many zones.
	Zones int
	// Partitions is the number of object partitions: few, so that keys
	// meet in one.
	Partitions int
	// Clients issue the workload, each one operation at a time.
	Clients int
	// Ops is the number of operations each client issues.
	Ops int
	// Keys is the number of object keys the workload writes.
	Keys int
	// InlineMax is the objects layer's inline limit: small, so that most
	// bodies go through the data path.
	InlineMax int
	// Faults says which faults the run injects, and how often.
	Faults Faults
	// Log receives the nodes' logs (nil: discarded).
	Log io.Writer
	// LogLevel filters them.
	LogLevel slog.Level
	// KeepTrace keeps the trace's lines (Result.TraceLines), to find
	// where two runs of one seed part.
	KeepTrace bool
	// Progress, when set, counts the events run, for a watchdog outside
	// the simulation's bubble (see runSeed).
	Progress *atomic.Uint64
	// Quiesce lets idle Raft groups stop ticking (raftmeta, Quiescence),
	// as nodes do; the tests set it from -sim.quiesce (default on).
	Quiesce bool
}

// Faults switches fault classes on and sets their rates. Swarm draws a
// mix per seed, as swarm testing does: a run with fewer kinds of fault
// reaches states that a run with every kind at once rarely does.
type Faults struct {
	// Drop is the probability that a packet is lost.
	Drop float64
	// Duplicate is the probability that a Raft batch arrives twice.
	Duplicate float64
	// Slow is the probability that a packet takes up to 200 ms.
	Slow float64
	// Reorder is the probability that a packet takes up to 20 ms more,
	// passing later ones.
	Reorder float64
	// Partitions splits the network now and then, for seconds, sometimes
	// one way only.
	Partitions bool
	// Crashes kills nodes and restarts them from what their disks kept
	// (unsynced writes lost, torn).
	Crashes bool
	// ClockSkew gives each node's wall clock an offset of up to seconds,
	// and jumps.
	ClockSkew bool
	// Disks fail reads or writes with EIO for a while, or fill up (a
	// filler file takes all but a sliver of a drive, synced, so that it
	// outlives a crash) and are emptied again.
	Disks bool
	// Background runs garbage collection and relocation passes on every
	// node during the workload.
	Background bool
	// Layout takes nodes out of the layout and puts them back during the
	// run (every group they were in gets new voters, data moves), with
	// relocation passes moving data to the new layout.
	Layout bool
	// ZoneLoss crashes every node of one zone at once, now and then, and
	// restarts them seconds later.
	ZoneLoss bool
	// Splits splits every metadata partition while the workload runs,
	// twice (cluster.Split), through a node drawn at random.
	Splits bool
}

// DefaultConfig is a small cluster and a short workload.
func DefaultConfig(seed uint64) Config {
	return Config{Seed: seed, Nodes: 3, Zones: 3, Partitions: 4, Clients: 4, Ops: 40, Keys: 4, InlineMax: 64}
}

// Swarm returns cfg with a fault mix drawn from its seed.
func Swarm(cfg Config) Config {
	r := rand.New(rand.NewPCG(cfg.Seed, 0x5eed))
	on := func(p float64) bool { return r.Float64() < p }
	f := &cfg.Faults
	if on(0.6) {
		f.Drop = []float64{0.001, 0.01, 0.05}[r.IntN(3)]
	}
	if on(0.4) {
		f.Duplicate = 0.02
	}
	if on(0.4) {
		f.Slow = 0.01
	}
	if on(0.4) {
		f.Reorder = 0.05
	}
	f.Partitions = on(0.5)
	f.Crashes = on(0.5)
	f.ClockSkew = on(0.5)
	f.Background = on(0.5)
	f.Layout = on(0.4)
	f.Disks = on(0.4)
	cfg.Nodes = 3 + 2*r.IntN(2) // 3 or 5
	// Drawn last, so that the draws above, and what a seed ran before
	// splits existed, stay as they were.
	f.Splits = on(0.4)
	return cfg
}

func (c Config) String() string {
	f := c.Faults
	zones := ""
	if f.ZoneLoss {
		zones = fmt.Sprintf(" zone loss (%d zones)", c.Zones)
	}
	return fmt.Sprintf("seed %d: %d nodes, %d partitions, %d clients x %d ops; drop %.3f dup %.2f slow %.2f reorder %.2f partitions %v crashes %v skew %v background %v layout %v disks %v splits %v%s",
		c.Seed, c.Nodes, c.Partitions, c.Clients, c.Ops, f.Drop, f.Duplicate, f.Slow, f.Reorder, f.Partitions, f.Crashes, f.ClockSkew, f.Background, f.Layout, f.Disks, f.Splits, zones)
}

// Sim is one run: the nodes, the network, the event queue, the actors.
// Everything runs inside one testing/synctest bubble, so time is the
// bubble's fake clock and advances only when every goroutine waits.
type Sim struct {
	cfg Config
	log *slog.Logger
	// rng is the scheduler's: only the goroutine running the event loop
	// draws from it.
	rng *rand.Rand
	net *network

	mu    sync.Mutex
	queue eventQueue
	seq   uint64
	wake  chan struct{}
	// gated are the actors stopped after a metadata call, waiting for
	// the scheduler to let them go on (see gate).
	gated []*gated
	// trace fingerprints the run: the order of executed events and
	// released actors. Two runs of one seed must end with one trace.
	trace *xxh3.Hasher
	lines []string
	steps uint64
	// closing counts incarnations still winding down after a crash.
	closing sync.WaitGroup
	// tasks counts the goroutines the run started (spawn), which must all
	// end before its bubble may.
	tasks sync.WaitGroup
	// fail records a broken invariant found by a part of the run (set by
	// Run).
	fail func(error)
}

type event struct {
	at   time.Time
	key  uint64
	seq  uint64 // ties of identical keys: in scheduling order
	what string
	run  func()
}

type eventQueue []*event

func (q eventQueue) Len() int { return len(q) }
func (q eventQueue) Less(i, j int) bool {
	a, b := q[i], q[j]
	if !a.at.Equal(b.at) {
		return a.at.Before(b.at)
	}
	if a.key != b.key {
		return a.key < b.key
	}
	return a.seq < b.seq
}
func (q eventQueue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *eventQueue) Push(x any)   { *q = append(*q, x.(*event)) }
func (q *eventQueue) Pop() any {
	old := *q
	e := old[len(old)-1]
	*q = old[:len(old)-1]
	return e
}

// gated is an actor waiting at a gate, after the call named what.
type gated struct {
	actor   string
	what    string
	seq     uint64
	release chan struct{}
}

// newSim makes a Sim; it must run inside a synctest bubble.
func newSim(cfg Config) *Sim {
	s := &Sim{cfg: cfg, rng: rand.New(rand.NewPCG(cfg.Seed, 0x51a)), wake: make(chan struct{}, 1), trace: xxh3.New()}
	var h slog.Handler = slog.DiscardHandler
	if cfg.Log != nil {
		h = slog.NewTextHandler(cfg.Log, &slog.HandlerOptions{Level: cfg.LogLevel})
	}
	s.log = slog.New(h)
	s.net = newNetwork(s)
	return s
}

// schedule runs fn on the event loop after d, ordered among events of
// the same instant by key. Safe from any goroutine.
func (s *Sim) schedule(d time.Duration, key uint64, what string, fn func()) {
	s.mu.Lock()
	s.seq++
	heap.Push(&s.queue, &event{at: time.Now().Add(d), key: key, seq: s.seq, what: what, run: fn})
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// actorKey tags the context of an actor's operations.
type actorKey struct{}

// actor is a goroutine of the workload or of background work, whose
// steps the scheduler orders (see gate).
type actor struct {
	name string
	seq  uint64
}

func withActor(ctx context.Context, name string) context.Context {
	return context.WithValue(ctx, actorKey{}, &actor{name: name})
}

// gate stops the actor of ctx, if any, until the event loop lets it go
// on. Metadata calls pass it when they return: one Raft cycle may answer
// many actors at once, and letting them all run together would make the
// order of what they do next (their next requests, the random IDs they
// draw) the Go scheduler's choice; the event loop lets them go one at a
// time, in an order drawn from the seed.
func (s *Sim) gate(ctx context.Context, what string) {
	a, ok := ctx.Value(actorKey{}).(*actor)
	if !ok {
		return
	}
	g := &gated{actor: a.name, what: what, release: make(chan struct{})}
	s.mu.Lock()
	a.seq++
	g.seq = a.seq
	s.gated = append(s.gated, g)
	s.mu.Unlock()
	<-g.release
}

// takeGated removes and returns one gated actor, drawn from the seed
// among those waiting in a canonical order; nil if none.
func (s *Sim) takeGated() *gated {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.gated) == 0 {
		return nil
	}
	// By actor and call; the sequence number (the order an actor's
	// goroutines reached the gate in, which the Go scheduler decides when
	// they run in parallel) only between identical calls.
	slices.SortFunc(s.gated, func(a, b *gated) int {
		return cmp.Or(strings.Compare(a.actor, b.actor), strings.Compare(a.what, b.what), cmp.Compare(a.seq, b.seq))
	})
	i := s.rng.IntN(len(s.gated))
	g := s.gated[i]
	s.gated = slices.Delete(s.gated, i, i+1)
	return g
}

// step runs the event loop until stop returns true (checked whenever
// everything waits) or until the fake clock reaches deadline.
func (s *Sim) run(deadline time.Time, stop func() bool) {
	for {
		synctest.Wait()
		if g := s.takeGated(); g != nil {
			s.traceLine(fmt.Sprintf("%d release %s %s", time.Now().UnixNano(), g.actor, g.what))
			close(g.release)
			continue
		}
		if stop != nil && stop() {
			return
		}
		now := time.Now()
		s.mu.Lock()
		var next *event
		if len(s.queue) > 0 {
			next = s.queue[0]
		}
		if next != nil && !next.at.After(now) {
			heap.Pop(&s.queue)
		}
		s.mu.Unlock()
		switch {
		case next != nil && !next.at.After(now):
			s.steps++
			if s.cfg.Progress != nil {
				s.cfg.Progress.Add(1)
			}
			s.traceLine(fmt.Sprintf("%d %s %x", next.at.UnixNano(), next.what, next.key))
			next.run()
		case !now.Before(deadline):
			return
		default:
			until := deadline
			if next != nil && next.at.Before(until) {
				until = next.at
			}
			t := time.NewTimer(until.Sub(now))
			select {
			case <-t.C:
			case <-s.wake:
				t.Stop()
			}
		}
	}
}

// after runs fn on the event loop after d; key names the event among
// those of the same instant.
func (s *Sim) after(d time.Duration, key string, fn func()) {
	s.schedule(d, hashString(s.cfg.Seed, key), key, fn)
}

// sleep blocks the calling actor for d of simulated time.
func (s *Sim) sleep(d time.Duration, key string) {
	ch := make(chan struct{})
	s.after(d, key, func() { close(ch) })
	<-ch
}

func (s *Sim) traceLine(l string) {
	s.trace.WriteString(l)
	s.trace.WriteString("\n")
	if s.cfg.KeepTrace {
		s.mu.Lock()
		s.lines = append(s.lines, l)
		s.mu.Unlock()
	}
}

// spawn runs fn on a goroutine the run waits for before it ends.
func (s *Sim) spawn(fn func()) { s.tasks.Go(fn) }

// Trace is the fingerprint of the events run so far.
func (s *Sim) Trace() uint64 { return s.trace.Sum64() }
