package raftmeta

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/redoubt-io/redoubt/internal/meta"
)

// A host cut off from its groups' quorums answers their requests with
// ErrUnavailable within about an election timeout, not at the end of the
// proposal timeout: the leader's proposal already waiting when the cut
// came, a follower's forward to the leader it can no longer reach, and
// every request after them at once. The majority side goes on.
func TestCutOffRefusesQuickly(t *testing.T) {
	parts := []meta.Partition{0, 1}
	c := newCluster(t, 3, parts, func(cfg *Config) {
		fastConfig(cfg)
		cfg.Quiesce = true
		cfg.ProposalTimeout = 10 * time.Second
	})
	l := c.leader(0)
	commitKeys(t, c.host(l), 0, "base", 3)
	election := time.Duration(c.config(l).ElectionTicks) * c.config(l).TickInterval
	bound := 3 * election // the verdict comes after one election timeout of silence

	commit := func(id uint64, p meta.Partition, key string) (time.Duration, error) {
		start := time.Now()
		_, err := c.host(id).Commit(context.Background(), p, meta.Txn{Puts: []meta.KV{{Key: []byte(key), Value: []byte("x")}}})
		return time.Since(start), err
	}
	refused := func(what string, took time.Duration, err error) {
		t.Helper()
		if !isUnavailable(err) || !strings.Contains(err.Error(), "cut off") {
			t.Fatalf("%s: %v, want ErrUnavailable for being cut off", what, err)
		}
		if took > bound {
			t.Fatalf("%s: refused after %v, want within %v", what, took, bound)
		}
	}

	// The leader alone: the proposal it accepts waits for a quorum that
	// cannot answer.
	c.net.isolate([]uint64{l}, c.ids)
	took, err := commit(l, 0, "minority")
	refused("the isolated leader's commit", took, err)
	took, err = commit(l, 0, "minority2")
	refused("the next commit", took, err)
	start := time.Now()
	_, err = c.host(l).Get(context.Background(), 0, []byte("base0000"))
	refused("a read", time.Since(start), err)

	var maj []uint64
	for _, id := range c.ids {
		if id != l {
			maj = append(maj, id)
		}
	}
	if acked := commitKeys(t, c.host(maj[0]), 0, "majority", 3); len(acked) != 3 {
		t.Fatalf("majority acknowledged %d of 3", len(acked))
	}
	c.net.heal()
	c.converged(0)

	// A follower alone forwards to a leader it cannot reach.
	l = c.leader(1)
	f := maj[0]
	if f == l {
		f = maj[1]
	}
	c.net.isolate([]uint64{f}, c.ids)
	took, err = commit(f, 1, "cut-follower")
	refused("the isolated follower's commit", took, err)
	c.net.heal()
	got := c.converged(0)
	for k := range got {
		if strings.HasPrefix(k, "minority") {
			t.Fatalf("the minority's commit %s was applied", k)
		}
	}
}
