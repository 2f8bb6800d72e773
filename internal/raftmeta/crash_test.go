package raftmeta

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/redoubt-io/redoubt/internal/meta"
)

// TestCrashKeepsAcknowledgedCommits: every node of a group loses power at
// once, each keeping only what it had synced plus a random part of the
// rest; after they restart, every commit that was acknowledged before the
// crash is there. Nodes apply committed entries, and answer, before their
// own log writes are synced: this shows that is safe.
func TestCrashKeepsAcknowledgedCommits(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, seed>>1))
	var mu sync.Mutex
	fss := map[uint64]*vfs.MemFS{1: vfs.NewCrashableMem(), 2: vfs.NewCrashableMem(), 3: vfs.NewCrashableMem()}
	const p = meta.Partition(7)
	c := newCluster(t, 3, []meta.Partition{p}, func(cfg *Config) {
		fastConfig(cfg)
		mu.Lock()
		cfg.FS = fss[cfg.NodeID]
		mu.Unlock()
	})

	acked := map[string]bool{}
	for round := range 3 {
		c.leader(p)
		before := len(acked)
		// Writers through every node, until the crash.
		ctx, stop := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		var ackMu sync.Mutex
		for w := range 6 {
			via := c.ids[w%3]
			wg.Go(func() {
				for i := 0; ctx.Err() == nil; i++ {
					h := c.host(via)
					k := fmt.Sprintf("r%d-w%d-%d", round, w, i)
					cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
					_, err := h.Commit(cctx, p, meta.Txn{Puts: []meta.KV{{Key: []byte(k), Value: []byte(k)}}})
					cancel()
					if err == nil {
						ackMu.Lock()
						acked[k] = true
						ackMu.Unlock()
					}
				}
			})
		}
		// Let some commits through, then crash all three at once: what
		// was acknowledged so far must survive.
		eventually(t, 20*time.Second, "commits acknowledged", func() error {
			ackMu.Lock()
			defer ackMu.Unlock()
			if len(acked) < before+200 {
				return fmt.Errorf("%d acknowledged this round", len(acked)-before)
			}
			return nil
		})
		ackMu.Lock()
		want := make([]string, 0, len(acked))
		for k := range acked {
			want = append(want, k)
		}
		ackMu.Unlock()
		mu.Lock()
		for _, id := range c.ids {
			fss[id] = fss[id].CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: rng.IntN(101), RNG: rng})
		}
		mu.Unlock()
		stop()
		wg.Wait()
		for _, id := range c.ids {
			c.stop(id) // closes the old file systems; the clones are what restarts
		}
		ackMu.Lock()
		clear(acked)
		for _, k := range want {
			acked[k] = true
		}
		ackMu.Unlock()
		for _, id := range c.ids {
			c.start(id)
		}
		c.leader(p)
		h := c.host(c.ids[rng.IntN(3)])
		for _, k := range want {
			var it meta.Item
			err := errors.New("not read")
			for try := 0; try < 50 && err != nil; try++ {
				gctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
				it, err = h.Get(gctx, p, []byte(k))
				cancel()
				if isUnavailable(err) {
					poll()
					continue
				}
				break
			}
			if err != nil {
				t.Fatalf("round %d: acknowledged key %s after the crash: %v (seed %d)", round, k, err, seed)
			}
			if string(it.Value) != k {
				t.Fatalf("round %d: acknowledged key %s reads %q after the crash (seed %d)", round, k, it.Value, seed)
			}
		}
		t.Logf("round %d: %d acknowledged commits all survived", round, len(want))
	}
}
