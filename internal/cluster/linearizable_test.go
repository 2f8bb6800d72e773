package cluster

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/redoubt-io/redoubt/internal/lincheck"
	"github.com/redoubt-io/redoubt/internal/meta"
	"github.com/redoubt-io/redoubt/internal/placement"
	"github.com/redoubt-io/redoubt/internal/store"
	"github.com/redoubt-io/redoubt/internal/transport"
)

var (
	linSeed     = flag.Uint64("lin.seed", 0, "seed of the linearizability test (0: from the clock)")
	linDuration = flag.Duration("lin.duration", 4*time.Second, "how long the linearizability workload runs")
)

// TestLinearizableUnderFaults runs clients against all nodes of a
// three-node cluster while nodes crash and restart and the network splits,
// and checks the history with porcupine.
func TestLinearizableUnderFaults(t *testing.T) {
	seed := *linSeed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("seed %d (rerun with -lin.seed=%d)", seed, seed)
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))

	tn := newTestNet(t, 3, 3)
	ctx := context.Background()
	for p := range 16 {
		eventually(t, 10*time.Second, "ready", func() error { return put(ctx, tn.nodes[0].Meta(), meta.Partition(p), "warm", "up") })
	}

	// Each node's cluster can be replaced by a restart; clients read the
	// current one under this lock.
	var mu sync.RWMutex
	current := func(i int) *Cluster { mu.RLock(); defer mu.RUnlock(); return tn.nodes[i] }

	keys := []string{"a", "b", "c", "d"}
	start := time.Now()
	var hmu sync.Mutex
	var history []porcupine.Operation
	var counter atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for cl := range 6 {
		wg.Add(1)
		crng := rand.New(rand.NewPCG(seed+uint64(cl), 7))
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				in := lincheck.RandomInput(crng, keys, fmt.Sprintf("v%d", counter.Add(1)))
				c := current(crng.IntN(3))
				call := time.Since(start).Nanoseconds()
				out, keep := kvDo(c.Meta(), in)
				ret := time.Since(start).Nanoseconds()
				if !keep {
					continue
				}
				if out.Unknown {
					ret = lincheck.Pending // may take effect any time after its call
				}
				hmu.Lock()
				history = append(history, porcupine.Operation{ClientId: cl, Input: in, Call: call, Output: out, Return: ret})
				hmu.Unlock()
			}
		}()
	}

	// The fault schedule: every step, one of crash-and-restart, a
	// partition cutting one node off, or healing.
	deadline := time.Now().Add(*linDuration)
	for time.Now().Before(deadline) {
		switch rng.IntN(3) {
		case 0:
			i := rng.IntN(3)
			tn.mem.Kill(tn.ids[i])
			mu.Lock()
			old := tn.nodes[i]
			mu.Unlock()
			old.Close()
			tn.mem.Revive(tn.ids[i])
			c := tn.restart(i, old)
			mu.Lock()
			tn.nodes[i] = c
			mu.Unlock()
		case 1:
			i := rng.IntN(3)
			var rest []transport.NodeID
			for j, id := range tn.ids {
				if j != i {
					rest = append(rest, id)
				}
			}
			tn.mem.Partition([]transport.NodeID{tn.ids[i]}, rest)
		default:
			tn.mem.Heal()
		}
		time.Sleep(time.Duration(100+rng.IntN(300)) * time.Millisecond) // the pace of faults, not a wait for an event
	}
	tn.mem.Heal()
	close(stop)
	wg.Wait()

	lincheck.Check(t, history, seed)
}

// kvDo runs one operation against s; keep is false for a failed read,
// which had no effect and need not be in the history.
func kvDo(s meta.Store, in lincheck.Input) (out lincheck.Output, keep bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	p := meta.Partition(placement.PartitionOf("lin", in.Key, 16))
	key := []byte(in.Key)
	var err error
	switch in.Op {
	case lincheck.Get:
		var it meta.Item
		it, err = s.Get(ctx, p, key)
		switch {
		case err == nil:
			return lincheck.Output{Value: string(it.Value)}, true
		case errors.Is(err, meta.ErrNotFound):
			return lincheck.Output{Err: lincheck.NoSuchKey}, true
		}
		return lincheck.Output{}, false
	case lincheck.Put:
		_, err = s.Commit(ctx, p, meta.Txn{Puts: []meta.KV{{Key: key, Value: []byte(in.Value)}}})
	case lincheck.Delete:
		_, err = s.Commit(ctx, p, meta.Txn{Deletes: [][]byte{key}})
	case lincheck.Create:
		_, err = s.Commit(ctx, p, meta.Txn{Conds: []meta.Cond{{Key: key}}, Puts: []meta.KV{{Key: key, Value: []byte(in.Value)}}})
		if errors.Is(err, meta.ErrConflict) {
			return lincheck.Output{Err: lincheck.PreconditionFailed}, true
		}
	}
	if err != nil {
		return lincheck.Output{Unknown: true}, true
	}
	return lincheck.Output{}, true
}

// restart starts node i again on its drives, as after a crash.
func (tn *testNet) restart(i int, old *Cluster) *Cluster {
	t := tn.t
	t.Helper()
	var paths []string
	for _, d := range old.LocalDrives() {
		paths = append(paths, d.Path())
	}
	drives, err := store.Open(context.Background(), store.DefaultConfig(), paths, nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg := old.cfg
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := Start(ctx, cfg, drives, testLogger(t, fmt.Sprint(i)))
	if err != nil {
		t.Fatalf("restarting node %d: %v", i, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}
