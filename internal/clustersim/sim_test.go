package clustersim

import (
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"testing/cryptotest"
	"testing/synctest"
	"time"

	"github.com/redoubt-io/redoubt/internal/lincheck"
	"github.com/redoubt-io/redoubt/internal/testlog"
)

var (
	seedFlag    = flag.Uint64("sim.seed", 0, "run only this seed (replays a failure)")
	seedsFlag   = flag.Int("sim.seeds", 160, "seeds TestSimulation runs (TestSimulationLayout a quarter as many, TestSimulationSplits a sixteenth; -short: 8 at most)")
	soakFlag    = flag.Duration("sim.soak", 0, "TestSimulationSoak runs seeds for this long (0: skip)")
	logFlag     = flag.Bool("sim.log", false, "send the nodes' logs to the test log")
	replaysFlag = flag.Int("sim.replays", 3, "seeds TestSimulationReplays runs twice")
	quiesceFlag = flag.Bool("sim.quiesce", true, "run the seeds with idle Raft groups quiescing (raftmeta Config.Quiesce), as nodes do; -sim.quiesce=false turns it off")
	tracesFlag  = flag.String("sim.traces", "", "TestSimulationReplays writes the two traces of a seed whose runs differ to this directory")
)

// runSeed runs one seed in its own bubble, with crypto/rand drawn from
// the seed too (Raft's election timeouts use it), and checks the history.
func runSeed(t *testing.T, cfg Config) Result {
	t.Helper()
	// One processor: goroutines that wake at one instant then run one
	// after another in the runtime's queue order, not in parallel.
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	var res Result
	// A watchdog outside the bubble: a run whose events stop while its
	// goroutines cannot all wait (one blocked on a lock forever) would
	// hang the test; it fails with every goroutine's stack instead.
	var progress atomic.Uint64
	cfg.Progress = &progress
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		last, still := uint64(0), 0
		for {
			select {
			case <-stop:
				return
			case <-time.After(10 * time.Second):
			}
			if p := progress.Load(); p != last {
				last, still = p, 0
				continue
			}
			if still++; still >= 12 {
				debug.SetTraceback("all")
				panic(fmt.Sprintf("seed %d: no event for 2 minutes: the simulation is stuck\n%s", cfg.Seed, cfg))
			}
		}
	}()
	t.Run("", func(t *testing.T) {
		cryptotest.SetGlobalRandom(t, cfg.Seed)
		if *logFlag {
			cfg.Log = testlog.Writer(t)
		}
		synctest.Test(t, func(t *testing.T) { res = Run(cfg) })
	})
	return res
}

func check(t *testing.T, res Result) {
	t.Helper()
	if res.Err != nil {
		t.Fatalf("%v\n%s\nreplay: go test ./internal/clustersim -run TestSimulation -sim.seed=%d", res.Err, res.Config, res.Config.Seed)
	}
	t.Logf("%s\nreplay: go test ./internal/clustersim -run TestSimulation -sim.seed=%d", res.Config, res.Config.Seed)
	lincheck.CheckFrom(t, res.Start, res.History, res.Config.Seed)
}

func seeds(t *testing.T, n int) []uint64 {
	if *seedFlag != 0 {
		return []uint64{*seedFlag}
	}
	if testing.Short() {
		n = min(n, 8)
	}
	base := rand.Uint64()
	t.Logf("seeds from %d", base)
	out := make([]uint64, n)
	for i := range out {
		out[i] = base + uint64(i)
	}
	return out
}

// TestSimulation runs a few seeds of the whole cluster under a swarm of
// faults and checks each run's history and invariants.
func TestSimulation(t *testing.T) {
	for _, seed := range seeds(t, *seedsFlag) {
		cfg := Swarm(DefaultConfig(seed))
		cfg.Quiesce = *quiesceFlag
		start := time.Now()
		res := runSeed(t, cfg)
		t.Logf("%s: %d ops, %d events, %v simulated in %v", cfg, len(res.History), res.Steps, res.Elapsed.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
		check(t, res)
	}
}

// found are seeds that once failed, each through a cause since removed;
// TestSimulationFound runs them every time (unless -sim.seed picks one).
var found = []uint64{
	// A leader removed from its group while cut off stayed quiesced as
	// leader of its old term for as long as it heard its old voters'
	// nodes, and was never asked whether it was still a member
	// (raftmeta, stayQuiesced): "group 11: replicas did not catch up".
	12910215829516860799,
}

func TestSimulationFound(t *testing.T) {
	if testing.Short() || *seedFlag != 0 {
		t.Skip("-short, or -sim.seed picked one seed")
	}
	for _, seed := range found {
		cfg := Swarm(DefaultConfig(seed))
		cfg.Quiesce = true
		check(t, runSeed(t, cfg))
	}
}

// TestSimulationReplays runs seeds twice: each must run the same events
// in the same order (the trace) and give the same history.
// replayed are seeds that once ran two ways, each through a cause since
// removed; every TestSimulationReplays runs them (unless -sim.seed picks
// one seed). A divergence shows in some of a seed's pairs of runs only:
// with the layout poll's ticker put back, this test failed 1 time in 6,
// and 0 times in 13 without it.
var replayed = []uint64{
	10076216263927335233, // the layout poll's ticker (cluster.watchLayout)
	11813951673815376795, // a proposal's timeout due with its caller's (raftmeta.withTimeout)
	7505514420942706425,  // a shard create's bound on a runtime timer, and spares taken in goroutine order (blocks)
}

func TestSimulationReplays(t *testing.T) {
	list := seeds(t, *replaysFlag)
	if *seedFlag == 0 {
		list = slices.Concat(replayed, list)
	}
	for _, seed := range list {
		cfg := Swarm(DefaultConfig(seed))
		cfg.Quiesce = *quiesceFlag
		cfg.KeepTrace = true
		a, b := runSeed(t, cfg), runSeed(t, cfg)
		a.TraceLines, b.TraceLines = normalize(a.TraceLines), normalize(b.TraceLines)
		if a.Trace != b.Trace || len(a.History) != len(b.History) {
			for i := range min(len(a.TraceLines), len(b.TraceLines)) {
				if a.TraceLines[i] != b.TraceLines[i] {
					t.Logf("first difference at event %d:", i)
					for j := max(0, i-8); j < min(i+8, len(a.TraceLines), len(b.TraceLines)); j++ {
						t.Logf("  %s    |    %s", a.TraceLines[j], b.TraceLines[j])
					}
					break
				}
			}
			if *tracesFlag != "" {
				for i, r := range []Result{a, b} {
					name := filepath.Join(*tracesFlag, fmt.Sprintf("%d.%c.trace", seed, 'a'+i))
					if err := os.WriteFile(name, []byte(strings.Join(r.TraceLines, "\n")+"\n"), 0o644); err != nil {
						t.Error(err)
					}
				}
			}
			t.Errorf("%s: two runs differ: trace %x, %d ops, %d events; then %x, %d ops, %d events",
				cfg, a.Trace, len(a.History), a.Steps, b.Trace, len(b.History), b.Steps)
		}
	}
}

// normalize sorts each run of "sent" lines (logged as goroutines send,
// in no fixed order) so that traces compare by what was sent.
func normalize(lines []string) []string {
	out := slices.Clone(lines)
	for i := 0; i < len(out); {
		j := i
		for j < len(out) && strings.Contains(out[j], "   sent ") {
			j++
		}
		if j > i {
			slices.Sort(out[i:j])
			i = j
		} else {
			i++
		}
	}
	return out
}

// TestSimulationLayout runs seeds whose swarm always includes layout
// changes and relocation, the faults where Raft replicas come and go.
func TestSimulationLayout(t *testing.T) {
	for _, seed := range seeds(t, max(1, *seedsFlag/4)) {
		cfg := Swarm(DefaultConfig(seed))
		cfg.Quiesce = *quiesceFlag
		cfg.Faults.Layout = true
		cfg.Nodes = 5
		start := time.Now()
		res := runSeed(t, cfg)
		t.Logf("%s: %d ops, %d events, %v simulated in %v", cfg, len(res.History), res.Steps, res.Elapsed.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
		check(t, res)
	}
}

// TestSimulationSplits runs seeds whose swarm always includes splits:
// every metadata partition splits twice while clients write, read and
// list, and the history must stay linearizable, every acknowledged write
// readable, replicas identical, counters exact and no data lost or
// leaked (the checks of every run).
func TestSimulationSplits(t *testing.T) {
	split := 0
	for _, seed := range seeds(t, max(1, *seedsFlag/16)) {
		cfg := Swarm(DefaultConfig(seed))
		cfg.Quiesce = *quiesceFlag
		cfg.Faults.Splits = true
		start := time.Now()
		res := runSeed(t, cfg)
		t.Logf("%s: %d ops, %d events, %v simulated in %v, %d metadata partitions at the end", cfg, len(res.History), res.Steps,
			res.Elapsed.Round(time.Millisecond), time.Since(start).Round(time.Millisecond), res.MetaPartitions)
		check(t, res)
		if res.MetaPartitions > cfg.Partitions {
			split++
		}
	}
	if split == 0 {
		t.Errorf("no seed split its partitions")
	}
}

// TestSimulationSoak runs random seeds for -sim.soak and reports seeds
// per second; the first failing seed ends it (scripts/sim-soak).
func TestSimulationSoak(t *testing.T) {
	if *soakFlag <= 0 {
		t.Skip("set -sim.soak to soak")
	}
	start := time.Now()
	n := 0
	var simulated time.Duration
	for seed := rand.Uint64(); time.Since(start) < *soakFlag; seed++ {
		cfg := Swarm(DefaultConfig(seed))
		cfg.Quiesce = *quiesceFlag
		res := runSeed(t, cfg)
		check(t, res)
		n++
		simulated += res.Elapsed
		if n%50 == 0 {
			t.Logf("%d seeds in %v (%.2f seeds/s, %v simulated)", n, time.Since(start).Round(time.Second), float64(n)/time.Since(start).Seconds(), simulated.Round(time.Second))
		}
	}
	t.Logf("%d seeds in %v: %.2f seeds/s, %v simulated, none failed", n, time.Since(start).Round(time.Second), float64(n)/time.Since(start).Seconds(), simulated.Round(time.Second))
}
