package raftmeta

import (
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redoubt-io/redoubt/internal/meta"
)

// splitCluster is four hosts: 1-3 are the voters of group 0, 4 only
// knows them.
func splitCluster(t *testing.T) *cluster {
	c := newCluster(t, 4, nil, fastConfig)
	voters := []uint64{1, 2, 3}
	c.groups[0] = voters
	for _, id := range c.ids {
		if id <= 3 {
			if err := c.host(id).EnsureGroup(0, voters); err != nil {
				t.Fatal(err)
			}
		} else {
			c.host(id).SetMembers(0, voters)
		}
	}
	return c
}

// TestSplitThroughAnyHost: a split asked of any host, even one outside
// the group, splits it; the group then answers meta.ErrMoved to every
// request, and its children, which hold all its items, are served
// through every host, among them one that never knew their members.
func TestSplitThroughAnyHost(t *testing.T) {
	c := splitCluster(t)
	ctx := context.Background()
	h4 := c.host(4)
	for i := range 50 {
		if _, err := h4.Commit(ctx, 0, meta.Txn{Puts: []meta.KV{{Key: fmt.Appendf(nil, "k%02d", i), Value: []byte("v")}}}); err != nil {
			t.Fatal(err)
		}
	}
	into := [2]meta.Partition{1000, 1001}
	if err := h4.Split(ctx, 0, into); err != nil {
		t.Fatalf("split: %v", err)
	}
	if err := c.host(2).Split(ctx, 0, into); err != nil {
		t.Fatalf("the same split again: %v", err)
	}
	if err := c.host(3).Split(ctx, 0, [2]meta.Partition{2000, 2001}); !errors.Is(err, meta.ErrMoved) {
		t.Fatalf("another split of a split group: %v, want ErrMoved", err)
	}
	for _, id := range c.ids {
		h := c.host(id)
		if _, err := h.Commit(ctx, 0, meta.Txn{Puts: []meta.KV{{Key: []byte("late"), Value: []byte("x")}}}); !errors.Is(err, meta.ErrMoved) {
			t.Fatalf("commit to the split group through node %d: %v, want ErrMoved", id, err)
		}
		if _, err := h.Get(ctx, 0, []byte("k01")); !errors.Is(err, meta.ErrMoved) {
			t.Fatalf("read of the split group through node %d: %v, want ErrMoved", id, err)
		}
	}
	for _, p := range into {
		n := 0
		if err := h4.Scan(ctx, p, nil, nil, func([]byte, meta.Item) bool { n++; return true }); err != nil {
			t.Fatalf("scan of child %d through node 4: %v", p, err)
		}
		if n != 50 {
			t.Fatalf("child %d holds %d items, want 50", p, n)
		}
		if _, err := h4.Commit(ctx, p, meta.Txn{Puts: []meta.KV{{Key: []byte("new"), Value: []byte(fmt.Sprint(p))}}}); err != nil {
			t.Fatalf("commit to child %d through node 4: %v", p, err)
		}
	}
	// A restarted member keeps the children and serves them.
	c.stop(2)
	c.start(2)
	for _, p := range into {
		it, err := c.host(2).Get(ctx, p, []byte("new"))
		if err != nil || string(it.Value) != fmt.Sprint(p) {
			t.Fatalf("child %d through restarted node 2: %q, %v", p, it.Value, err)
		}
	}
	for id := uint64(1); id <= 3; id++ {
		if s := c.host(id).Stats(); id != 2 && s.Splits != 1 {
			t.Errorf("node %d: Stats.Splits %d, want 1", id, s.Splits)
		}
	}
}

// TestSplitLosesNoAcknowledgedWrite: writers commit to a group through
// every host while it splits; a writer told meta.ErrMoved writes to the
// child its key belongs to. Every acknowledged write is then in that
// child.
func TestSplitLosesNoAcknowledgedWrite(t *testing.T) {
	c := splitCluster(t)
	ctx := context.Background()
	into := [2]meta.Partition{1000, 1001}
	childOf := func(key []byte) meta.Partition { return into[crc32.ChecksumIEEE(key)%2] }
	var (
		mu    sync.Mutex
		acked = map[string]meta.Partition{}
		moved atomic.Int64
		total atomic.Int64
		wg    sync.WaitGroup
	)
	const writers, each = 4, 60
	start := make(chan struct{})
	for w := range writers {
		h := c.host(uint64(w%4 + 1))
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			split := false
			for i := range each {
				key := fmt.Appendf(nil, "w%d-%03d", w, i)
				p := meta.Partition(0)
				if split {
					p = childOf(key)
				}
				_, err := h.Commit(ctx, p, meta.Txn{Puts: []meta.KV{{Key: key, Value: key}}})
				if errors.Is(err, meta.ErrMoved) {
					moved.Add(1)
					split, p = true, childOf(key)
					_, err = h.Commit(ctx, p, meta.Txn{Puts: []meta.KV{{Key: key, Value: key}}})
				}
				if err != nil {
					continue // not acknowledged: may or may not be there
				}
				mu.Lock()
				acked[string(key)] = p
				mu.Unlock()
				total.Add(1)
			}
		}()
	}
	close(start)
	for total.Load() < writers*each/3 {
		poll()
	}
	if err := c.host(3).Split(ctx, 0, into); err != nil {
		t.Fatalf("split: %v", err)
	}
	wg.Wait()
	if moved.Load() == 0 {
		t.Fatal("no writer met the split")
	}
	for key, p := range acked {
		want := childOf([]byte(key))
		if p != 0 && p != want {
			t.Fatalf("%s acknowledged by %d", key, p)
		}
		it, err := c.host(4).Get(ctx, want, []byte(key))
		if err != nil || string(it.Value) != key {
			t.Fatalf("acknowledged %s (by group %d) not in child %d: %q, %v", key, p, want, it.Value, err)
		}
	}
	t.Logf("%d writes acknowledged, %d met the split", len(acked), moved.Load())
}

// parity sends an item to the child its key's last byte's parity names,
// and items whose key starts with "*" to both.
type parity struct{}

func (parity) Split(parent meta.Partition, into [2]meta.Partition,
	scan func(fn func(key []byte, it meta.Item) error) error,
	emit func(child int, key []byte, it meta.Item) error) error {
	return scan(func(key []byte, it meta.Item) error {
		if len(key) > 0 && key[0] == '*' {
			if err := emit(0, key, it); err != nil {
				return err
			}
			return emit(1, key, it)
		}
		return emit(int(key[len(key)-1]%2), key, it)
	})
}

// TestSplitterDividesItems: with a Config.Splitter, each child holds the
// items the splitter gave it, with their revisions.
func TestSplitterDividesItems(t *testing.T) {
	c := newCluster(t, 3, []meta.Partition{0}, func(cfg *Config) { fastConfig(cfg); cfg.Splitter = parity{} })
	ctx := context.Background()
	h := c.host(1)
	revs := map[string]uint64{}
	for _, k := range []string{"a0", "a1", "b2", "b3", "*shared"} {
		rev, err := h.Commit(ctx, 0, meta.Txn{Puts: []meta.KV{{Key: []byte(k), Value: []byte(k)}}})
		if err != nil {
			t.Fatal(err)
		}
		revs[k] = rev
	}
	into := [2]meta.Partition{20, 21}
	if err := h.Split(ctx, 0, into); err != nil {
		t.Fatal(err)
	}
	want := [2]string{"*shared a0 b2", "*shared a1 b3"}
	for i, p := range into {
		for _, id := range c.ids {
			var got []string
			eventually(t, 10*time.Second, "child made", func() error {
				got = nil
				err := c.host(id).scanLocal(p, nil, nil, func(k []byte, it meta.Item) bool {
					if it.Rev != revs[string(k)] {
						t.Errorf("node %d child %d: %s at revision %d, was %d", id, p, k, it.Rev, revs[string(k)])
					}
					got = append(got, string(k))
					return true
				})
				if err == nil && len(got) == 0 {
					return errors.New("empty")
				}
				return err
			})
			if s := strings.Join(got, " "); s != want[i] {
				t.Errorf("node %d child %d holds %q, want %q", id, p, s, want[i])
			}
		}
	}
}

// TestStaleParentWaitsForGrandchildren: a host's stale replica of a
// group that split may go once the host keeps the split's items. When a
// child split again here, its replica is gone and only its split record
// remains: the items are kept if the groups it split into hold that
// split's index, and not before (simulation seed 6990802425692535423 with
// -sim.quiesce waited for good on such a child).
func TestStaleParentWaitsForGrandchildren(t *testing.T) {
	c := newCluster(t, 1, []meta.Partition{17, 25}, fastConfig)
	h := c.host(c.ids[0])
	c.leader(17)
	c.leader(25)
	h.mu.Lock()
	h.mu.splits[9] = &splitRec{into: [2]meta.Partition{17, 25}, index: 1000}
	h.mu.Unlock()
	if h.keeps(9, 900, 0) {
		t.Fatal("a split child's items counted as kept while the groups it split into are behind its split")
	}
	if h.keeps(4, 900, 0) {
		t.Fatal("a group with neither a replica nor a split record counted as kept")
	}
	for _, p := range []meta.Partition{17, 25} {
		h.replica(p).applied.Store(1000)
	}
	if !h.keeps(9, 900, 0) {
		t.Fatal("a child that split here after the index, into groups holding its split, not counted as kept")
	}
	if h.keeps(9, 1001, 0) {
		t.Fatal("a child that split before the index counted as keeping it")
	}
}
