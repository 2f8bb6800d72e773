package clustersim

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"sync"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/redoubt-io/redoubt/internal/lincheck"
	"github.com/redoubt-io/redoubt/internal/meta"
)

// Result is what a run found.
type Result struct {
	Config Config
	// History is every operation the workload completed (or left with
	// an unknown outcome), then the final reads.
	History []porcupine.Operation
	// Start is the state the history begins in.
	Start lincheck.Start
	// Trace fingerprints the run's sequence of events; a seed replayed
	// gives the same trace.
	Trace uint64
	// TraceLines are the trace's lines, with Config.KeepTrace.
	TraceLines []string
	// Steps is the number of events run; Elapsed the simulated time.
	Steps   uint64
	Elapsed time.Duration
	// Err is the first invariant found broken, or nil.
	Err error
	// Goroutines and HeapBytes are the process's, with every node up
	// after the final reads (runtime.NumGoroutine, MemStats.HeapInuse):
	// divided by the nodes, what a node costs.
	Goroutines int
	HeapBytes  uint64
	// ZonesLost counts the times a whole zone went down (Faults.ZoneLoss).
	ZonesLost int
	// MetaPartitions is the metadata partitions of the final layout
	// (more than Config.Partitions once splits were made).
	MetaPartitions int
}

// Run simulates one seed. It must be called inside a testing/synctest
// bubble (synctest.Test), whose fake clock it drives.
func Run(cfg Config) (res Result) {
	s := newSim(cfg)
	res.Config = cfg
	res.Start = lincheck.Start{Missing: []string{churned}}
	start := time.Now()
	defer func() {
		res.Trace, res.Steps, res.Elapsed, res.TraceLines = s.Trace(), s.steps, time.Since(start), s.lines
	}()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	var failMu sync.Mutex
	fail := func(err error) {
		failMu.Lock()
		if res.Err == nil {
			res.Err = err
		}
		failMu.Unlock()
	}
	s.fail = fail
	failed := func() bool {
		failMu.Lock()
		defer failMu.Unlock()
		return res.Err != nil
	}

	nodes := make([]*node, cfg.Nodes)
	for i := range nodes {
		nodes[i] = newNode(s, i)
	}
	defer func() {
		// Stop every node while the event loop still runs: closing waits
		// for operations in flight, which need the network.
		cancel()
		s.net.heal()
		stopped := make(chan struct{})
		go func() { // not spawned: it waits for the spawned ones
			defer close(stopped)
			var wg sync.WaitGroup
			for _, n := range nodes {
				wg.Go(n.stop)
			}
			wg.Wait()
			s.closing.Wait()
			s.tasks.Wait()
		}()
		s.run(time.Now().Add(10*time.Minute), func() bool { return closed(stopped) })
	}()

	// Boot: node 0 bootstraps, the others join through it; the first
	// layout comes once all have joined.
	var booted sync.WaitGroup
	for i, n := range nodes {
		booted.Add(1)
		var join []string
		if i > 0 {
			join = []string{"sim://" + string(nodes[0].id)}
		}
		s.spawn(func() {
			defer booted.Done()
			// Nodes start apart in time, so that their tickers do not
			// fire at one instant.
			s.sleep(time.Duration(i)*1317*time.Microsecond, fmt.Sprintf("boot %d", i))
			if _, err := n.start(ctx, join); err != nil {
				fail(fmt.Errorf("boot: %w", err))
			}
		})
	}
	bootDone := make(chan struct{})
	s.spawn(func() { booted.Wait(); close(bootDone) })
	s.run(time.Now().Add(5*time.Minute), func() bool { return closed(bootDone) })
	if !closed(bootDone) {
		res.Err = errors.New("the cluster did not boot in 5 simulated minutes")
		return res
	}
	if failed() {
		return res
	}

	// The bucket.
	setup := make(chan error, 1)
	s.spawn(func() {
		sctx := withActor(ctx, "setup")
		setup <- retry(sctx, s, func() error { return nodes[0].current().obj.CreateBucket(sctx, bucket) })
	})
	s.run(time.Now().Add(time.Minute), func() bool { return len(setup) > 0 })
	if err := <-setupOrTimeout(setup); err != nil {
		res.Err = fmt.Errorf("create bucket: %w", err)
		return res
	}

	// The workload, and the faults beside it.
	h := &history{}
	w := newWorkload(cfg)
	var work sync.WaitGroup
	for c := 0; c < cfg.Clients; c++ {
		cl := &client{sim: s, id: c, rng: rand.New(rand.NewPCG(cfg.Seed, uint64(1000+c)))}
		work.Add(1)
		s.spawn(func() {
			defer work.Done()
			cl.run(ctx, nodes, cfg.Ops, w, h, fail)
		})
	}
	workDone := make(chan struct{})
	s.spawn(func() { work.Wait(); close(workDone) })
	faults := newFaulter(s, nodes)
	faults.start(ctx, workDone)
	s.run(time.Now().Add(30*time.Minute), func() bool { return closed(workDone) || failed() })
	if !closed(workDone) && !failed() {
		fail(errors.New("the workload did not finish in 30 simulated minutes"))
	}
	faults.stop()
	faults.mu.Lock()
	res.ZonesLost = faults.zonesLost
	faults.mu.Unlock()
	if failed() {
		res.History = h.ops
		return res
	}

	// Heal: every link back and reliable, every node up.
	s.net.quieten()
	healed := faults.restartAll(ctx)
	s.run(time.Now().Add(5*time.Minute), func() bool { return closed(healed) || failed() })
	if !closed(healed) {
		fail(fmt.Errorf("the nodes did not all restart in 5 simulated minutes: %s", faults.restartErrors()))
	}
	if failed() {
		res.History = h.ops
		return res
	}
	// The disks are healed: every drive a fault failed is checked and back
	// in service, as the next health check would have it.
	for _, n := range nodes {
		n.current().data.CheckDrives()
	}

	// Final reads: every acknowledged write must be there, read back key
	// by key and listed.
	final := make(chan struct{})
	s.spawn(func() {
		defer close(final)
		fctx := withActor(ctx, "final")
		var reads []lincheck.Input
		for _, b := range []string{bucket, churned} {
			for _, k := range w.mix.Keys {
				reads = append(reads, lincheck.Input{Op: lincheck.Get, Bucket: b, Key: k})
			}
			reads = append(reads, lincheck.Input{Op: lincheck.List, Bucket: b}, lincheck.Input{Op: lincheck.ListVersions, Bucket: b})
		}
		fc := &client{sim: s, id: cfg.Clients}
		for _, in := range reads {
			var out lincheck.Output
			call := time.Now()
			err := retry(fctx, s, func() error {
				var err error
				out, err = fc.do(fctx, nodes[0].current(), w, in, false)
				return err
			})
			if err != nil {
				fail(fmt.Errorf("final %s: %w", lincheck.Describe(in, out), err))
				return
			}
			h.add(fc.id, in, call, time.Now(), out)
		}
	})
	s.run(time.Now().Add(5*time.Minute), func() bool { return closed(final) })
	if !closed(final) {
		fail(errors.New("the final reads did not finish in 5 simulated minutes"))
	}
	res.History = h.ops
	if failed() {
		return res
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	res.Goroutines, res.HeapBytes = runtime.NumGoroutine(), ms.HeapInuse
	if l := nodes[0].current().cl.Layout(); l != nil {
		res.MetaPartitions = len(l.Groups())
	}
	if err := checkReplicas(s, nodes); err != nil {
		fail(err)
		return res
	}
	if err := checkGarbage(ctx, s, nodes); err != nil {
		fail(err)
		return res
	}
	if err := checkCounts(ctx, s, nodes); err != nil {
		fail(err)
	}
	return res
}

func closed(ch chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

func setupOrTimeout(ch chan error) chan error {
	if len(ch) == 0 {
		out := make(chan error, 1)
		out <- errors.New("timed out")
		return out
	}
	return ch
}

// retry runs fn until it succeeds or fails for good, waiting a second of
// simulated time after each unavailable answer.
func retry(ctx context.Context, s *Sim, fn func() error) error {
	var err error
	for attempt := 0; attempt < 60; attempt++ {
		if err = fn(); err == nil || !errors.Is(err, meta.ErrUnavailable) {
			return err
		}
		name := ""
		if a, ok := ctx.Value(actorKey{}).(*actor); ok {
			name = a.name
		}
		s.sleep(time.Second, fmt.Sprintf("%s retry %d", name, attempt))
	}
	return err
}
