package metatest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/redoubt-io/redoubt/internal/meta"
)

// Run checks the meta.Store contract on the stores newStore makes. newStore
// returns a fresh, empty Store that lives until its test ends; it is called
// once per subtest.
func Run(t *testing.T, newStore func(t *testing.T) meta.Store) {
	ctx := context.Background()
	put := func(k, v string) meta.KV { return meta.KV{Key: []byte(k), Value: []byte(v)} }

	t.Run("ConditionalCommit", func(t *testing.T) {
		s := newStore(t)
		k := []byte("k")
		rev, err := s.Commit(ctx, 1, meta.Txn{Conds: []meta.Cond{{Key: k}}, Puts: []meta.KV{put("k", "a")}})
		if err != nil {
			t.Fatal(err)
		}
		if rev == 0 {
			t.Fatal("revision 0")
		}
		if _, err := s.Commit(ctx, 1, meta.Txn{Conds: []meta.Cond{{Key: k}}, Puts: []meta.KV{put("k", "b")}}); !errors.Is(err, meta.ErrConflict) {
			t.Fatalf("create over existing key: %v, want meta.ErrConflict", err)
		}
		if _, err := s.Commit(ctx, 1, meta.Txn{Conds: []meta.Cond{{Key: k, Rev: rev + 1}}, Puts: []meta.KV{put("k", "b")}}); !errors.Is(err, meta.ErrConflict) {
			t.Fatalf("wrong revision: %v, want meta.ErrConflict", err)
		}
		it, err := s.Get(ctx, 1, k)
		if err != nil || string(it.Value) != "a" || it.Rev != rev {
			t.Fatalf("Get = %q@%d, %v; want a@%d", it.Value, it.Rev, err, rev)
		}
		if _, err := s.Get(ctx, 2, k); !errors.Is(err, meta.ErrNotFound) {
			t.Fatalf("partitions are not separate: %v", err)
		}
		rev2, err := s.Commit(ctx, 1, meta.Txn{Conds: []meta.Cond{{Key: k, Rev: rev}}, Deletes: [][]byte{k}})
		if err != nil {
			t.Fatal(err)
		}
		if rev2 <= rev {
			t.Fatalf("revision went from %d to %d", rev, rev2)
		}
		if _, err := s.Get(ctx, 1, k); !errors.Is(err, meta.ErrNotFound) {
			t.Fatalf("Get after delete: %v", err)
		}
		if n := count(t, s, 1, nil, nil); n != 0 {
			t.Fatalf("%d keys after delete", n)
		}
	})

	t.Run("AtomicTxn", func(t *testing.T) {
		s := newStore(t)
		r1, err := s.Commit(ctx, 3, meta.Txn{Puts: []meta.KV{put("a", "1"), put("b", "1")}})
		if err != nil {
			t.Fatal(err)
		}
		// One failed condition among several: nothing applies.
		_, err = s.Commit(ctx, 3, meta.Txn{
			Conds:   []meta.Cond{{Key: []byte("a"), Rev: r1}, {Key: []byte("b"), Rev: r1 + 7}},
			Puts:    []meta.KV{put("a", "2"), put("c", "2")},
			Deletes: [][]byte{[]byte("b")},
		})
		if !errors.Is(err, meta.ErrConflict) {
			t.Fatalf("got %v, want meta.ErrConflict", err)
		}
		want := map[string]string{"a": "1", "b": "1"}
		checkContents(t, s, 3, want)
		// All conditions hold: everything applies at one revision.
		r2, err := s.Commit(ctx, 3, meta.Txn{
			Conds:   []meta.Cond{{Key: []byte("a"), Rev: r1}, {Key: []byte("b"), Rev: r1}, {Key: []byte("c")}},
			Puts:    []meta.KV{put("a", "2"), put("c", "2")},
			Deletes: [][]byte{[]byte("b"), []byte("absent")},
		})
		if err != nil {
			t.Fatal(err)
		}
		checkContents(t, s, 3, map[string]string{"a": "2", "c": "2"})
		for _, k := range []string{"a", "c"} {
			if it, _ := s.Get(ctx, 3, []byte(k)); it.Rev != r2 {
				t.Fatalf("%s at rev %d, want %d", k, it.Rev, r2)
			}
		}
		// A key both deleted and put ends up put; the last put wins.
		if _, err := s.Commit(ctx, 3, meta.Txn{Deletes: [][]byte{[]byte("a")}, Puts: []meta.KV{put("a", "3"), put("a", "4")}}); err != nil {
			t.Fatal(err)
		}
		if it, _ := s.Get(ctx, 3, []byte("a")); string(it.Value) != "4" {
			t.Fatalf("a = %q, want 4", it.Value)
		}
	})

	t.Run("EmptyValuesAndKeys", func(t *testing.T) {
		s := newStore(t)
		if _, err := s.Commit(ctx, 0, meta.Txn{Puts: []meta.KV{{Key: []byte{}, Value: nil}, {Key: []byte("x"), Value: []byte{}}}}); err != nil {
			t.Fatal(err)
		}
		for _, k := range []string{"", "x"} {
			it, err := s.Get(ctx, 0, []byte(k))
			if err != nil || len(it.Value) != 0 {
				t.Fatalf("Get(%q) = %q, %v", k, it.Value, err)
			}
		}
		if n := count(t, s, 0, nil, nil); n != 2 {
			t.Fatalf("scan found %d keys, want 2", n)
		}
	})

	t.Run("ScanRangesAndPartitions", func(t *testing.T) {
		s := newStore(t)
		for _, p := range []meta.Partition{0, 1, 2, meta.System - 1, meta.System} {
			var puts []meta.KV
			for i := range 20 {
				puts = append(puts, put(fmt.Sprintf("k%02d", i), fmt.Sprintf("%d/%d", p, i)))
			}
			if _, err := s.Commit(ctx, p, meta.Txn{Puts: puts}); err != nil {
				t.Fatal(err)
			}
		}
		for _, p := range []meta.Partition{0, 1, 2, meta.System - 1, meta.System} {
			if n := count(t, s, p, nil, nil); n != 20 {
				t.Fatalf("partition %d: %d keys, want 20", p, n)
			}
			if n := count(t, s, p, []byte("k05"), []byte("k10")); n != 5 {
				t.Fatalf("partition %d [k05,k10): %d keys, want 5", p, n)
			}
			if n := count(t, s, p, []byte("k195"), nil); n != 0 {
				t.Fatalf("partition %d [k195,): %d keys, want 0", p, n)
			}
			if n := count(t, s, p, []byte("k10"), []byte("k05")); n != 0 {
				t.Fatalf("partition %d inverted range: %d keys", p, n)
			}
			var prev []byte
			err := s.Scan(ctx, p, nil, nil, func(k []byte, it meta.Item) bool {
				if prev != nil && bytes.Compare(prev, k) >= 0 {
					t.Fatalf("keys out of order: %q then %q", prev, k)
				}
				if want := fmt.Sprintf("%d/", p); !bytes.HasPrefix(it.Value, []byte(want)) {
					t.Fatalf("partition %d key %q holds %q", p, k, it.Value)
				}
				prev = bytes.Clone(k)
				return true
			})
			if err != nil {
				t.Fatal(err)
			}
		}
		// fn returning false stops the scan.
		n := 0
		if err := s.Scan(ctx, 1, nil, nil, func([]byte, meta.Item) bool { n++; return n < 3 }); err != nil || n != 3 {
			t.Fatalf("stopped scan saw %d keys, %v", n, err)
		}
		// fn may call back into the store.
		err := s.Scan(ctx, 2, nil, []byte("k03"), func(k []byte, it meta.Item) bool {
			if _, err := s.Commit(ctx, 2, meta.Txn{Conds: []meta.Cond{{Key: k, Rev: it.Rev}}, Deletes: [][]byte{bytes.Clone(k)}}); err != nil {
				t.Fatalf("commit from scan: %v", err)
			}
			return true
		})
		if err != nil {
			t.Fatal(err)
		}
		if n := count(t, s, 2, nil, nil); n != 17 {
			t.Fatalf("%d keys left, want 17", n)
		}
	})

	t.Run("ScanRangesMatchesScan", func(t *testing.T) {
		s := newStore(t)
		parts := []meta.Partition{0, 1, 2, 7, meta.System}
		for _, p := range parts {
			var puts []meta.KV
			for i := range 10 {
				puts = append(puts, put(fmt.Sprintf("k%02d", i), fmt.Sprintf("%d/%d", p, i)))
			}
			if _, err := s.Commit(ctx, p, meta.Txn{Puts: puts}); err != nil {
				t.Fatal(err)
			}
		}
		ranges := []meta.Range{
			{P: 0}, {P: 1, Start: []byte("k03"), End: []byte("k06")}, {P: 2, Start: []byte("k08")},
			{P: 3}, {P: 7, Start: []byte("k05"), End: []byte("k02")}, {P: meta.System, End: []byte("k01")},
			{P: 1, Start: []byte("k09")},
		}
		type kv struct {
			i    int
			k, v string
		}
		var want, got []kv
		for i, r := range ranges {
			s.Scan(ctx, r.P, r.Start, r.End, func(k []byte, it meta.Item) bool {
				want = append(want, kv{i, string(k), string(it.Value)})
				return true
			})
		}
		stopAt := map[int]int{0: 4} // range 0 ends early after 4 keys
		seen := map[int]int{}
		err := meta.ScanRanges(ctx, s, ranges, func(i int, k []byte, it meta.Item) bool {
			got = append(got, kv{i, string(k), string(it.Value)})
			seen[i]++
			return stopAt[i] == 0 || seen[i] < stopAt[i]
		})
		if err != nil {
			t.Fatal(err)
		}
		// Range 0 stopped after 4 keys; drop the rest of it from want.
		var trimmed []kv
		n0 := 0
		for _, w := range want {
			if w.i == 0 {
				if n0++; n0 > 4 {
					continue
				}
			}
			trimmed = append(trimmed, w)
		}
		if fmt.Sprint(got) != fmt.Sprint(trimmed) {
			t.Fatalf("meta.ScanRanges = %v\nwant %v", got, trimmed)
		}
	})

	t.Run("GetMany", func(t *testing.T) {
		s := newStore(t)
		rev, err := s.Commit(ctx, 3, meta.Txn{Puts: []meta.KV{put("a", "1"), put("c", "")}})
		if err != nil {
			t.Fatal(err)
		}
		keys := []meta.Read{meta.Get([]byte("a")), meta.Get([]byte("b")), meta.Get([]byte("c"))}
		items, at, err := meta.GetMany(ctx, s, 3, keys, meta.ReadOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if len(items) != 3 || string(items[0].Value) != "1" || items[0].Rev != rev ||
			items[1].Rev != 0 || items[1].Value != nil || items[2].Rev != rev || items[2].Value == nil || len(items[2].Value) != 0 {
			t.Fatalf("GetMany = %+v", items)
		}
		// A read after a linearizable one sees at least what it saw.
		again, _, err := meta.GetMany(ctx, s, 3, keys, meta.ReadOptions{After: at})
		if err != nil || fmt.Sprint(again) != fmt.Sprint(items) {
			t.Fatalf("GetMany after %d = %+v, %v; want %+v", at, again, err, items)
		}
		// A stale read may lag: each item is what was committed or older
		// (here: absent), never something else.
		stale, _, err := meta.GetMany(ctx, s, 3, keys, meta.ReadOptions{Stale: true})
		if err != nil || len(stale) != 3 {
			t.Fatalf("stale GetMany = %+v, %v", stale, err)
		}
		for i, it := range stale {
			if it.Rev != 0 && (it.Rev != items[i].Rev || !bytes.Equal(it.Value, items[i].Value)) {
				t.Fatalf("stale GetMany item %d = %+v, want %+v or absent", i, it, items[i])
			}
		}
		// A First read finds the first key under a prefix.
		if _, err := s.Commit(ctx, 3, meta.Txn{Puts: []meta.KV{put("p/2", "two"), put("p/1", "one"), put("q", "x")}}); err != nil {
			t.Fatal(err)
		}
		first, _, err := meta.GetMany(ctx, s, 3, []meta.Read{{Key: []byte("p/"), First: true}, {Key: []byte("r"), First: true}, meta.Get([]byte("p/2"))}, meta.ReadOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if string(first[0].Key) != "p/1" || string(first[0].Value) != "one" || first[1].Rev != 0 || first[1].Key != nil || string(first[2].Value) != "two" {
			t.Fatalf("GetMany with First reads = %+v", first)
		}
	})

	t.Run("GetReturnsCopy", func(t *testing.T) {
		s := newStore(t)
		v := []byte("value")
		if _, err := s.Commit(ctx, 1, meta.Txn{Puts: []meta.KV{{Key: []byte("k"), Value: v}}}); err != nil {
			t.Fatal(err)
		}
		v[0] = 'X' // the store must not alias the caller's buffer
		it, _ := s.Get(ctx, 1, []byte("k"))
		it.Value[1] = 'Y'
		it2, _ := s.Get(ctx, 1, []byte("k"))
		if string(it2.Value) != "value" {
			t.Fatalf("stored value changed to %q", it2.Value)
		}
	})

	t.Run("RevisionsIncrease", func(t *testing.T) {
		s := newStore(t)
		last := make(map[meta.Partition]uint64)
		for i := range 50 {
			p := meta.Partition(i % 3)
			rev, err := s.Commit(ctx, p, meta.Txn{Puts: []meta.KV{put("k", "v")}})
			if err != nil {
				t.Fatal(err)
			}
			if rev <= last[p] {
				t.Fatalf("revision %d after %d in partition %d", rev, last[p], p)
			}
			last[p] = rev
		}
	})

	t.Run("ConcurrentCreateOneWins", func(t *testing.T) {
		s := newStore(t)
		const n = 16
		for round := range 5 {
			key := []byte(fmt.Sprintf("race%d", round))
			winners := CreateRace(t, ctx, 4, key, n, func(int) meta.Store { return s })
			if len(winners) != 1 {
				t.Fatalf("round %d: %d winners, want 1", round, len(winners))
			}
			it, err := s.Get(ctx, 4, key)
			if err != nil || len(it.Value) != 1 || int(it.Value[0]) != winners[0] {
				t.Fatalf("round %d: stored %v, %v; winner %d", round, it.Value, err, winners[0])
			}
		}
	})

	t.Run("ConcurrentIncrements", func(t *testing.T) {
		// Read-modify-write with a revision condition, retried on conflict:
		// no increment is lost.
		s := newStore(t)
		const goroutines, per = 8, 25
		key := []byte("ctr")
		var wg sync.WaitGroup
		for range goroutines {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < per; {
					it, err := s.Get(ctx, 5, key)
					var v byte
					var rev uint64
					if err == nil {
						v, rev = it.Value[0], it.Rev
					} else if !errors.Is(err, meta.ErrNotFound) {
						t.Error(err)
						return
					}
					_, err = s.Commit(ctx, 5, meta.Txn{Conds: []meta.Cond{{Key: key, Rev: rev}}, Puts: []meta.KV{{Key: key, Value: []byte{v + 1}}}})
					if errors.Is(err, meta.ErrConflict) {
						continue
					}
					if err != nil {
						t.Error(err)
						return
					}
					i++
				}
			}()
		}
		wg.Wait()
		it, err := s.Get(ctx, 5, key)
		if err != nil || int(it.Value[0]) != goroutines*per {
			t.Fatalf("counter = %v, %v; want %d", it.Value, err, goroutines*per)
		}
	})

	t.Run("AddsCommute", func(t *testing.T) {
		// Adds to one counter need no condition and never conflict: every
		// commit counts, whatever the interleaving; an Add follows the
		// txn's own Put of the key; a conditional txn that fails adds
		// nothing; a value that is no counter refuses the txn whole.
		s := newStore(t)
		const goroutines, per = 8, 25
		key := []byte("count")
		var wg sync.WaitGroup
		for g := range goroutines {
			wg.Go(func() {
				for i := range per {
					k := fmt.Appendf(nil, "obj-%d-%d", g, i)
					_, err := s.Commit(ctx, 5, meta.Txn{Puts: []meta.KV{{Key: k, Value: []byte("v")}},
						Adds: []meta.Add{{Key: key, Delta: []int64{1, int64(i)}}}})
					if err != nil {
						t.Error(err)
						return
					}
				}
			})
		}
		wg.Wait()
		counters := func(k []byte) []int64 {
			t.Helper()
			it, err := s.Get(ctx, 5, k)
			if err != nil {
				t.Fatal(err)
			}
			c, err := meta.DecodeCounters(it.Value)
			if err != nil {
				t.Fatal(err)
			}
			return c
		}
		want := []int64{goroutines * per, goroutines * per * (per - 1) / 2}
		if got := counters(key); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("counters %v, want %v", got, want)
		}
		// A failed condition adds nothing.
		if _, err := s.Commit(ctx, 5, meta.Txn{Conds: []meta.Cond{{Key: []byte("absent"), Rev: 99}},
			Adds: []meta.Add{{Key: key, Delta: []int64{1000}}}}); !errors.Is(err, meta.ErrConflict) {
			t.Fatalf("conditional add: %v, want ErrConflict", err)
		}
		if got := counters(key); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("after a failed condition: counters %v, want %v", got, want)
		}
		// A Put and an Add of one key in one txn: the Add follows.
		if _, err := s.Commit(ctx, 5, meta.Txn{Puts: []meta.KV{{Key: key, Value: meta.EncodeCounters([]int64{10})}},
			Adds: []meta.Add{{Key: key, Delta: []int64{5, 1}}, {Key: key, Delta: []int64{1}}}}); err != nil {
			t.Fatal(err)
		}
		if got := counters(key); fmt.Sprint(got) != "[16 1]" {
			t.Fatalf("put then adds: counters %v, want [16 1]", got)
		}
		// A value that is no counter refuses the txn, and nothing of it
		// is applied.
		if _, err := s.Commit(ctx, 5, meta.Txn{Puts: []meta.KV{{Key: []byte("plain"), Value: []byte("text")}}}); err != nil {
			t.Fatal(err)
		}
		_, err := s.Commit(ctx, 5, meta.Txn{Puts: []meta.KV{{Key: []byte("side"), Value: []byte("x")}},
			Adds: []meta.Add{{Key: []byte("plain"), Delta: []int64{1}}}})
		if !errors.Is(err, meta.ErrCorrupt) {
			t.Fatalf("add to a non-counter: %v, want ErrCorrupt", err)
		}
		if _, err := s.Get(ctx, 5, []byte("side")); !errors.Is(err, meta.ErrNotFound) {
			t.Fatalf("the refused txn's put is there: %v", err)
		}
	})

	// A Hot read is of the same view as the others of its GetMany, and as
	// fresh: two keys always written together read alike, and a write is
	// seen by the reads after it (meta.HotKeys). A store without HotKeys
	// passes trivially.
	t.Run("HotReadsAreOneView", func(t *testing.T) {
		s := newStore(t)
		const p = meta.Partition(5)
		hot, cold := []byte("hot"), []byte("cold")
		reads := []meta.Read{meta.GetHot(hot), meta.Get(cold)}
		var writers, readers sync.WaitGroup
		done := make(chan struct{})
		errs := make(chan error, 16)
		for w := range 3 {
			writers.Add(1)
			go func() {
				defer writers.Done()
				for i := range 40 {
					txn := meta.Txn{Puts: []meta.KV{put("hot", fmt.Sprintf("%d-%d", w, i)), put("cold", fmt.Sprintf("%d-%d", w, i))}}
					if w == 0 && i%4 == 3 {
						txn = meta.Txn{Deletes: [][]byte{hot, cold}}
					}
					rev, err := s.Commit(ctx, p, txn)
					if err != nil {
						errs <- err
						return
					}
					items, _, err := meta.GetMany(ctx, s, p, reads[:1], meta.ReadOptions{})
					if err != nil {
						errs <- err
						return
					}
					// Absent: writer 0 may have deleted it since.
					if items[0].Rev < rev && items[0].Rev != 0 {
						errs <- fmt.Errorf("a Hot read after a commit at %d reads revision %d", rev, items[0].Rev)
						return
					}
				}
			}()
		}
		for r := range 3 {
			readers.Add(1)
			go func() {
				defer readers.Done()
				for n := 0; ; n++ {
					select {
					case <-done:
						return
					default:
					}
					items, _, err := meta.GetMany(ctx, s, p, reads, meta.ReadOptions{Stale: r == 0 && n%2 == 0})
					if err != nil {
						errs <- err
						return
					}
					if h, c := items[0], items[1]; h.Rev != c.Rev || !bytes.Equal(h.Value, c.Value) {
						errs <- fmt.Errorf("one view read %q@%d and %q@%d", h.Value, h.Rev, c.Value, c.Rev)
						return
					}
				}
			}()
		}
		writers.Wait()
		close(done)
		readers.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		// A held key that is deleted, then written again, reads so.
		for _, txn := range []meta.Txn{{Deletes: [][]byte{hot, cold}}, {Puts: []meta.KV{put("hot", "again"), put("cold", "again")}}} {
			rev, err := s.Commit(ctx, p, txn)
			if err != nil {
				t.Fatal(err)
			}
			items, _, err := meta.GetMany(ctx, s, p, reads, meta.ReadOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if want := len(txn.Puts) > 0; (items[0].Rev == rev) != want || (items[0].Rev == 0) == want || (want && string(items[0].Value) != "again") {
				t.Fatalf("after a commit at %d (puts %v): Hot read %q@%d", rev, want, items[0].Value, items[0].Rev)
			}
		}
	})

	t.Run("CanceledContext", func(t *testing.T) {
		s := newStore(t)
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		if _, err := s.Commit(cctx, 1, meta.Txn{Puts: []meta.KV{put("k", "v")}}); !errors.Is(err, context.Canceled) {
			t.Fatalf("Commit: %v", err)
		}
		if _, err := s.Get(cctx, 1, []byte("k")); !errors.Is(err, context.Canceled) {
			t.Fatalf("Get: %v", err)
		}
		if err := s.Scan(cctx, 1, nil, nil, func([]byte, meta.Item) bool { return true }); !errors.Is(err, context.Canceled) {
			t.Fatalf("Scan: %v", err)
		}
		if _, err := s.Get(ctx, 1, []byte("k")); !errors.Is(err, meta.ErrNotFound) {
			t.Fatalf("canceled commit applied: %v", err)
		}
	})
}

func count(t *testing.T, s meta.Store, p meta.Partition, start, end []byte) int {
	t.Helper()
	n := 0
	if err := s.Scan(context.Background(), p, start, end, func([]byte, meta.Item) bool { n++; return true }); err != nil {
		t.Fatal(err)
	}
	return n
}

func checkContents(t *testing.T, s meta.Store, p meta.Partition, want map[string]string) {
	t.Helper()
	got := make(map[string]string)
	if err := s.Scan(context.Background(), p, nil, nil, func(k []byte, it meta.Item) bool {
		got[string(k)] = string(it.Value)
		return true
	}); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("partition %d holds %v, want %v", p, got, want)
	}
}

// CreateRace has n goroutines create key in partition p at once, the g-th
// through storeOf(g) with the value byte(g), and returns the goroutines
// whose create succeeded; any error other than ErrConflict fails t. The
// contract says exactly one must win.
func CreateRace(t testing.TB, ctx context.Context, p meta.Partition, key []byte, n int, storeOf func(g int) meta.Store) []int {
	t.Helper()
	var wg sync.WaitGroup
	wins := make(chan int, n)
	errs := make(chan error, n)
	for g := range n {
		wg.Go(func() {
			_, err := storeOf(g).Commit(ctx, p, meta.Txn{Conds: []meta.Cond{{Key: key}}, Puts: []meta.KV{{Key: key, Value: []byte{byte(g)}}}})
			switch {
			case err == nil:
				wins <- g
			case !errors.Is(err, meta.ErrConflict):
				errs <- err
			}
		})
	}
	wg.Wait()
	close(wins)
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	var winners []int
	for g := range wins {
		winners = append(winners, g)
	}
	return winners
}
