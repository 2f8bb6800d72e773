package raftmeta

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redoubt-io/redoubt/internal/meta"
)

var randomSeed = flag.Uint64("raftmeta.seed", 0, "seed of TestRandomFaults (0: from the clock)")

// TestRandomFaults runs random commits through random nodes while nodes
// die, restart and get cut off. At the end every replica must be
// identical and every acknowledged commit present.
func TestRandomFaults(t *testing.T) {
	seed := *randomSeed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("seed %d (rerun with -raftmeta.seed=%d)", seed, seed)
	rng := rand.New(rand.NewPCG(seed, seed))
	parts := []meta.Partition{0, meta.System}
	c := newCluster(t, 3, parts, func(cfg *Config) {
		fastConfig(cfg)
		cfg.ProposalTimeout = time.Second
		cfg.SnapshotEntries = 30
	})
	down := map[uint64]bool{}
	type ack struct {
		p    meta.Partition
		k, v string
	}
	var mu sync.Mutex
	var acked []ack
	created := map[string]string{} // shared keys: the acknowledged creator's value
	steps := 25
	if testing.Short() {
		steps = 10
	}
	seq := 0
	for step := range steps {
		switch r := rng.IntN(10); {
		case r < 2 && len(down) == 0:
			id := c.ids[rng.IntN(3)]
			t.Logf("step %d: kill %d", step, id)
			c.stop(id)
			down[id] = true
		case r < 4 && len(down) > 0:
			for id := range down {
				t.Logf("step %d: restart %d", step, id)
				c.start(id)
				delete(down, id)
				break
			}
		case r < 5:
			id := c.ids[rng.IntN(3)]
			t.Logf("step %d: isolate %d", step, id)
			c.net.isolate([]uint64{id}, c.ids)
		case r < 6:
			t.Logf("step %d: heal", step)
			c.net.heal()
		}
		// A burst of commits from every live node.
		var wg sync.WaitGroup
		for i := range 6 {
			id := c.ids[rng.IntN(3)]
			h := c.host(id)
			if h == nil {
				continue
			}
			p := parts[rng.IntN(2)]
			seq++
			unique := rng.IntN(3) > 0
			k := fmt.Sprintf("u%05d", seq)
			if !unique {
				k = fmt.Sprintf("shared%02d", rng.IntN(10))
			}
			v := fmt.Sprintf("%d/%d/%d", step, i, id)
			wg.Add(1)
			go func() {
				defer wg.Done()
				txn := meta.Txn{Puts: []meta.KV{{Key: []byte(k), Value: []byte(v)}}}
				if !unique {
					txn.Conds = []meta.Cond{{Key: []byte(k)}}
				}
				_, err := h.Commit(context.Background(), p, txn)
				switch {
				case err == nil:
					mu.Lock()
					acked = append(acked, ack{p, k, v})
					if !unique {
						key := fmt.Sprint(p, "/", k)
						if prev, ok := created[key]; ok {
							t.Errorf("%s created twice: %s and %s", key, prev, v)
						}
						created[key] = v
					}
					mu.Unlock()
				case errors.Is(err, meta.ErrConflict) && !unique:
				case errors.Is(err, meta.ErrUnavailable), errors.Is(err, ErrClosed):
				default:
					t.Errorf("commit %s via %d: %v", k, id, err)
				}
			}()
		}
		wg.Wait()
	}
	c.net.heal()
	for id := range down {
		c.start(id)
	}
	for _, p := range parts {
		c.leader(p)
		got := c.converged(p)
		for _, a := range acked {
			if a.p != p {
				continue
			}
			v, ok := got[a.k]
			if !ok {
				t.Fatalf("acknowledged %s/%s missing", partitionName(p), a.k)
			}
			if val, _, _ := strings.Cut(v, "@"); val != a.v {
				t.Fatalf("acknowledged %s/%s = %s, holds %s", partitionName(p), a.k, a.v, v)
			}
		}
	}
	t.Logf("%d commits acknowledged of %d", len(acked), seq)
}
