package raftmeta

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/redoubt-io/redoubt/internal/meta"
	"github.com/redoubt-io/redoubt/internal/meta/metatest"
)

func TestConcurrentCreateThroughAllNodes(t *testing.T) {
	c := newCluster(t, 3, []meta.Partition{4}, fastConfig)
	c.leader(4)
	for round := range 5 {
		key := []byte(fmt.Sprint("race", round))
		winners := metatest.CreateRace(t, context.Background(), 4, key, 8, func(g int) meta.Store { return c.host(c.ids[g%3]) })
		if len(winners) != 1 {
			t.Fatalf("round %d: winners %v, want exactly one", round, winners)
		}
		for _, id := range c.ids {
			it, err := c.host(id).Get(context.Background(), 4, key)
			if err != nil || it.Value[0] != byte(winners[0]) {
				t.Fatalf("node %d reads %v, %v; winner %d", id, it.Value, err, winners[0])
			}
		}
	}
}

func TestAddVoterGrowsSystem(t *testing.T) {
	c := newCluster(t, 5, nil, fastConfig)
	// System starts on node 1 alone.
	c.groups[meta.System] = []uint64{1}
	if err := c.host(1).EnsureGroup(meta.System, []uint64{1}); err != nil {
		t.Fatal(err)
	}
	for _, id := range c.ids[1:] {
		c.host(id).SetMembers(meta.System, []uint64{1})
	}
	ctx := context.Background()
	acked := commitKeys(t, c.host(1), meta.System, "one", 5)
	voters := []uint64{1}
	for _, id := range []uint64{2, 3, 4, 5} {
		// The new member starts empty, then is added.
		if err := c.host(id).EnsureGroup(meta.System, voters); err != nil {
			t.Fatal(err)
		}
		if err := c.host(1).AddVoter(ctx, meta.System, id); err != nil {
			t.Fatalf("add voter %d: %v", id, err)
		}
		voters = append(voters, id)
		acked = append(acked, commitKeys(t, c.host(id), meta.System, fmt.Sprint("n", id, "-"), 3)...)
		if len(voters) == 3 || len(voters) == 5 {
			got := c.converged(meta.System)
			if len(got) != len(acked) {
				t.Fatalf("%d voters: %d keys, %d acknowledged", len(voters), len(got), len(acked))
			}
			for _, id := range voters {
				if d, _ := dump(c.host(id), meta.System); len(d) != len(acked) {
					t.Fatalf("voter %d holds %d keys, want %d", id, len(d), len(acked))
				}
			}
		}
	}
	for _, st := range c.host(1).Groups() {
		if st.Partition == meta.System && !slices.Equal(st.Voters, []uint64{1, 2, 3, 4, 5}) {
			t.Fatalf("voters %v", st.Voters)
		}
	}
	// The group survives losing two of five, whichever they are.
	c.stop(1)
	c.stop(2)
	checkKeys(t, c.host(3), meta.System, acked)
	// Removing a voter makes it drop its copy.
	if err := c.host(3).RemoveVoter(ctx, meta.System, 5); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "removed voter drops the group", func() error {
		if c.host(5).group(meta.System) != nil {
			return errors.New("still hosted")
		}
		return nil
	})
}

func TestManyGroupsIdleAndLatency(t *testing.T) {
	if testing.Short() {
		t.Skip("256 groups")
	}
	parts := []meta.Partition{meta.System}
	for p := range 256 {
		parts = append(parts, meta.Partition(p))
	}
	c := newCluster(t, 3, parts, nil)
	for _, p := range parts {
		c.leader(p)
	}
	// Idle: let a few ticks pass; cycles must not write or sync, but for
	// the odd election a loaded machine causes (a vote is a durable write).
	var before []Stats
	for _, id := range c.ids {
		before = append(before, c.host(id).Stats())
	}
	<-time.After(time.Second)
	for i, id := range c.ids {
		s := c.host(id).Stats()
		if s.Writes-before[i].Writes > 5 || s.Syncs-before[i].Syncs > 5 {
			t.Errorf("node %d idle for 1 s with 257 groups: %d writes, %d syncs", id, s.Writes-before[i].Writes, s.Syncs-before[i].Syncs)
		}
		t.Logf("node %d idle for 1 s: %d cycles", id, s.Cycles-before[i].Cycles)
	}
	// Latency: 16 writers of 4 KiB values through the leader of one group.
	l := c.leader(7)
	h := c.host(l)
	val := make([]byte, 4096)
	const writers, per = 16, 40
	lat := make([]time.Duration, 0, writers*per)
	var mu sync.Mutex
	var wg sync.WaitGroup
	start := time.Now()
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range per {
				t0 := time.Now()
				_, err := h.Commit(context.Background(), 7, meta.Txn{Puts: []meta.KV{{Key: []byte(fmt.Sprint(w, "/", i)), Value: val}}})
				d := time.Since(t0)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				lat = append(lat, d)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	total := time.Since(start)
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	if len(lat) > 0 {
		t.Logf("commit latency, 4 KiB, 16 writers, 257 groups: p50 %v p99 %v, %.0f commits/s",
			lat[len(lat)/2], lat[len(lat)*99/100], float64(len(lat))/total.Seconds())
	}
}
