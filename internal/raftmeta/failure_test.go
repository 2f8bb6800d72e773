package raftmeta

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/redoubt-io/redoubt/internal/meta"
	"go.etcd.io/raft/v3/raftpb"
)

// faultSwitch fails one operation of one group, on the hosts it is
// installed on, while it is on; and loading the group again too, as a
// lasting storage error would.
type faultSwitch struct {
	on   atomic.Bool
	op   string
	p    meta.Partition
	hits atomic.Int64
}

func (f *faultSwitch) check(op string, p meta.Partition) error {
	if f.on.Load() && (op == f.op || op == "load") && p == f.p {
		f.hits.Add(1)
		return fmt.Errorf("injected %s failure", op)
	}
	return nil
}

func commitOne(h *Host, p meta.Partition, k string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := h.Commit(ctx, p, meta.Txn{Puts: []meta.KV{{Key: []byte(k), Value: []byte(k)}}})
	return err
}

// TestOneGroupFailingLeavesOthersServing: a node alone in its groups
// fails to compact one group's log (a storage error of that group only).
// That group stops, with its requests failing as unavailable, and is
// counted; the node's loop goes on and its other groups keep serving.
// Once the fault is gone, the group is loaded again after its back-off
// and serves every commit it acknowledged. The same goes for a snapshot
// that cannot be read, which raft would otherwise panic on, and for an
// entry that cannot be applied.
func TestOneGroupFailingLeavesOthersServing(t *testing.T) {
	for _, op := range []string{"compact", "apply", "snapshot"} {
		t.Run(op, func(t *testing.T) {
			f := &faultSwitch{op: op, p: 1}
			c := newHookedCluster(t, 1, []meta.Partition{0, 1, 2}, func(cfg *Config) {
				fastConfig(cfg)
				cfg.SnapshotEntries = 8
				cfg.ProposalTimeout = time.Second
			}, func(_ uint64, h *Host) { h.faults = f.check })
			h := c.host(1)
			for _, p := range []meta.Partition{0, 1, 2} {
				c.leader(p)
			}
			acked := commitKeys(t, h, 1, "before", 12)
			if len(acked) != 12 {
				t.Fatalf("%d of 12 commits acknowledged before the fault", len(acked))
			}
			f.on.Store(true)
			if op == "snapshot" {
				// Raft asks for a snapshot only for a follower that needs
				// one: ask as the event loop's storage would be asked.
				g := h.group(1)
				if _, err := (storage{g.ms, g}).Snapshot(); err == nil {
					t.Fatal("a snapshot was made despite the fault")
				}
				h.markDirty(g)
			}
			eventually(t, 10*time.Second, "the group fails", func() error {
				if op != "snapshot" {
					_ = commitOne(h, 1, fmt.Sprint("during", time.Now().UnixNano()))
				}
				if s := h.Stats(); s.Quarantined != 1 || s.GroupErrors == 0 {
					return fmt.Errorf("stats %+v", s)
				}
				return nil
			})
			if err := commitOne(h, 1, "refused"); !isUnavailable(err) {
				t.Fatalf("commit to the failed group: %v, want ErrUnavailable", err)
			}
			if st, ok := hosts(h, 1); !ok || !st.Quarantined || st.Leader != 0 {
				t.Fatalf("status of the failed group: %+v, listed %v", st, ok)
			}
			// The others serve, and the loop runs on.
			for _, p := range []meta.Partition{0, 2} {
				keys := commitKeys(t, h, p, "others", 20)
				if len(keys) != 20 {
					t.Fatalf("group %d acknowledged %d of 20 while group 1 was failed", p, len(keys))
				}
				checkKeys(t, h, p, keys)
			}
			select {
			case err := <-c.nodes[1].done:
				t.Fatalf("the host's loop stopped: %v", err)
			default:
			}

			f.on.Store(false)
			eventually(t, 10*time.Second, "the group serves again", func() error {
				if err := commitOne(h, 1, "after"); err != nil {
					return err
				}
				if s := h.Stats(); s.Quarantined != 0 {
					return fmt.Errorf("stats %+v", s)
				}
				return nil
			})
			checkKeys(t, h, 1, append(acked, "after"))
			t.Logf("%s failures injected: %d; stats %+v", op, f.hits.Load(), h.Stats())
		})
	}
}

// TestFailedLeaderGroupMovesOn: the leader of a three-node group fails
// to apply it. The group goes on under another leader, commits through
// the failed node are served by the others, and the node catches up once
// it is loaded again.
func TestFailedLeaderGroupMovesOn(t *testing.T) {
	f := &faultSwitch{op: "apply", p: 0}
	var faulty atomic.Uint64
	c := newHookedCluster(t, 3, []meta.Partition{0, 1}, fastConfig, func(id uint64, h *Host) {
		h.faults = func(op string, p meta.Partition) error {
			if id != faulty.Load() {
				return nil
			}
			return f.check(op, p)
		}
	})
	l := c.leader(0)
	faulty.Store(l)
	acked := commitKeys(t, c.host(l), 0, "before", 5)
	f.on.Store(true)
	h := c.host(l)
	eventually(t, 10*time.Second, "the leader's group fails", func() error {
		_ = commitOne(c.host(l), 0, "x")
		if s := h.Stats(); s.Quarantined != 1 {
			return fmt.Errorf("stats %+v", s)
		}
		return nil
	})
	next := c.leader(0, others(c.ids, l)...)
	more := commitKeys(t, h, 0, "through", 10) // forwarded to the others
	if len(more) != 10 {
		t.Fatalf("%d of 10 commits through the failed node acknowledged", len(more))
	}
	acked = append(acked, more...)
	checkKeys(t, c.host(next), 0, acked)
	// Group 1 on the same node is not affected.
	if keys := commitKeys(t, h, 1, "other", 5); len(keys) != 5 {
		t.Fatalf("group 1 acknowledged %d of 5", len(keys))
	}
	f.on.Store(false)
	eventually(t, 10*time.Second, "the failed node catches up", func() error {
		if h.Stats().Quarantined != 0 {
			return errors.New("still quarantined")
		}
		d, err := dump(h, 0)
		if err != nil {
			return err
		}
		for _, k := range acked {
			if _, ok := d[k]; !ok {
				return fmt.Errorf("lacks %s", k)
			}
		}
		return nil
	})
}

// TestUnreadableGroupAtStartLeavesOthersServing: a node restarts with one
// group's stored state damaged. It starts anyway: the damaged group is
// quarantined (and retried, failing again), its requests fail as
// unavailable, its state stays on disk untouched, and the other groups
// serve.
func TestUnreadableGroupAtStartLeavesOthersServing(t *testing.T) {
	c := newCluster(t, 1, []meta.Partition{0, 1, 2}, func(cfg *Config) {
		fastConfig(cfg)
		cfg.ProposalTimeout = time.Second
	})
	for _, p := range []meta.Partition{0, 1, 2} {
		c.leader(p)
		commitKeys(t, c.host(1), p, "before", 3)
	}
	c.stop(1)
	db, err := pebble.Open(c.dirs[1], &pebble.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Set(groupKey(1, kindApply), []byte{applyVersion, 1, 2}, pebble.Sync); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	h := c.start(1)
	if s := h.Stats(); s.Quarantined != 1 || s.GroupErrors == 0 {
		t.Fatalf("stats after the start %+v", s)
	}
	if st, ok := hosts(h, 1); !ok || !st.Quarantined {
		t.Fatalf("the damaged group: %+v, listed %v", st, ok)
	}
	if err := commitOne(h, 1, "refused"); !isUnavailable(err) {
		t.Fatalf("commit to the damaged group: %v, want ErrUnavailable", err)
	}
	for _, p := range []meta.Partition{0, 2} {
		c.leader(p)
		if keys := commitKeys(t, h, p, "after", 3); len(keys) != 3 {
			t.Fatalf("group %d acknowledged %d of 3", p, len(keys))
		}
	}
	// Retried and failing again, it is never replaced or deleted.
	eventually(t, 5*time.Second, "the damaged group is retried", func() error {
		if s := h.Stats(); s.GroupErrors < 2 {
			return fmt.Errorf("stats %+v", s)
		}
		return nil
	})
	if storedKeys(t, h, 1) == 0 || h.Stats().Quarantined != 1 {
		t.Fatalf("the damaged group's state: %d keys, stats %+v", storedKeys(t, h, 1), h.Stats())
	}
}

// A message raft cannot accept (here a heartbeat that says entries past
// the end of the follower's log are committed, as when a follower lost
// what it acknowledged) makes raft panic inside Step: the host stops with
// that error, as with a panic of its own loop, rather than leave the
// panic to the transport's goroutine with the group's lock held, after
// which every message of the group would wait forever.
func TestStepPanicStopsTheHost(t *testing.T) {
	c := newCluster(t, 3, []meta.Partition{0}, fastConfig)
	lead := c.leader(0)
	var follower uint64
	for _, id := range c.ids {
		if id != lead {
			follower = id
			break
		}
	}
	h := c.host(follower)
	c.mu.Lock()
	n := c.nodes[follower]
	c.mu.Unlock()
	// A heartbeat whose commit index is past the follower's log makes
	// raft panic. It must be at the follower's term from the leader it
	// follows, or raft ignores it: an election between reading them and
	// stepping it (the machine is busy, elections are fast here) made
	// this test fail now and then, so it is sent again, as read anew.
	var batch []byte
	stopped := false
	for attempt := 0; attempt < 10 && !stopped; attempt++ {
		g := h.group(0)
		lead := g.lead.Load()
		if lead == 0 || lead == follower {
			lead = c.leader(0)
		}
		hb := &raftpb.Message{Type: raftpb.MsgHeartbeat.Enum(), From: new(lead), To: new(follower),
			Term: new(g.term.Load()), Commit: new(uint64(1 << 40))}
		var err error
		if batch, err = encodeBatch([]groupMsg{{p: 0, msg: hb}}); err != nil {
			t.Fatal(err)
		}
		if err := h.Step(context.Background(), lead, batch); err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-n.done:
			if err == nil || !strings.Contains(err.Error(), "panicked") {
				t.Fatalf("Run ended with %v, want raft's panic", err)
			}
			stopped = true
		case <-time.After(time.Second):
		}
	}
	if !stopped {
		t.Fatal("the host went on after raft panicked in Step")
	}
	c.mu.Lock()
	delete(c.nodes, follower) // stopped: the cleanup must not wait for it
	c.mu.Unlock()
	c.net.setHost(follower, nil)
	defer h.Close()
	// The group's lock was let go: another message is stepped at once.
	stepped := make(chan error, 1)
	go func() { stepped <- h.Step(context.Background(), lead, batch) }()
	select {
	case <-stepped:
	case <-time.After(10 * time.Second):
		t.Fatal("a message after the panic waits on the group's lock")
	}
}
