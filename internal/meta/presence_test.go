package meta

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"

	"pgregory.net/rapid"
)

// Every key added is held, however far the filter grows, and keys never
// added are mostly not.
func TestPartFilterHoldsEveryKeyAdded(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		n := rapid.IntRange(0, 20_000).Draw(t, "keys")
		seed := rapid.Uint64().Draw(t, "seed")
		rng := rand.New(rand.NewPCG(seed, 0))
		var f partFilter
		keys := make([][]byte, n)
		for i := range keys {
			keys[i] = fmt.Appendf(nil, "k%x", rng.Uint64())
			f.add(keys[i])
			if rapid.IntRange(0, 9).Draw(t, "again") == 0 {
				f.add(keys[rng.IntN(i+1)]) // rewritten keys do not grow it
			}
		}
		for _, k := range keys {
			if !f.mayHold(k) {
				t.Fatalf("added key %q not held", k)
			}
		}
	})
}

func TestPartFilterFalsePositives(t *testing.T) {
	var f partFilter
	const n = 100_000
	for i := range n {
		f.add(fmt.Appendf(nil, "in/%d", i))
	}
	held := outHeld(&f, n)
	// The scalable filter promises under 5 × firstFP.
	if rate := float64(held) / n; rate > 5*firstFP {
		t.Errorf("%.2f%% of absent keys held, want under %.1f%%", 100*rate, 500*firstFP)
	}
	// Just past a doubling, the newest filter is half empty: at 100,000
	// keys, 20 bits a key.
	if b := f.bytes(); b > n*24/8 {
		t.Errorf("%d bytes for %d keys, want at most 24 bits a key", b, n)
	}
	t.Logf("%d keys: %d bytes, %d of %d absent keys held", n, f.bytes(), held, n)
}

// outHeld returns how many of n keys never added f holds.
func outHeld(f *partFilter, n int) int {
	held := 0
	for i := range n {
		if f.mayHold(fmt.Appendf(nil, "out/%d", i)) {
			held++
		}
	}
	return held
}

// The keys a store held at open go into one filter sized for them: about
// 16 bits a key rather than the 20 to 27 of a filter grown by doubling,
// as false-positive-free for them and as sparing of absent keys; keys
// added after fill its spare quarter, then the doubling chain.
func TestPartFilterSizedAtOpen(t *testing.T) {
	var f partFilter
	const n = 100_000
	// Commits before the scan reaches the partition.
	for i := range 100 {
		f.add(fmt.Appendf(nil, "early/%d", i))
	}
	var keys [][]byte
	for i := range n {
		keys = append(keys, fmt.Appendf(nil, "in/%d", i))
	}
	f.addSized(keys)
	if b := f.bytes(); b > n*17/8 {
		t.Errorf("%d bytes for %d keys, want at most 17 bits a key", b, n)
	}
	for i := range n / 2 {
		f.add(fmt.Appendf(nil, "later/%d", i))
	}
	for _, k := range keys {
		if !f.mayHold(k) {
			t.Fatalf("key %q not held", k)
		}
	}
	for i := range 100 {
		if !f.mayHold(fmt.Appendf(nil, "early/%d", i)) {
			t.Fatalf("early key %d not held", i)
		}
	}
	for i := range n / 2 {
		if !f.mayHold(fmt.Appendf(nil, "later/%d", i)) {
			t.Fatalf("later key %d not held", i)
		}
	}
	held := outHeld(&f, n)
	if rate := float64(held) / n; rate > 5*firstFP {
		t.Errorf("%.2f%% of absent keys held, want under %.1f%%", 100*rate, 500*firstFP)
	}
	t.Logf("%d keys at open, %d after: %d bytes, %d of %d absent keys held", n, n/2, f.bytes(), held, n)
}

// openFiltered opens a Local over dirs whose filter covers keys under
// "h/", scanning chunk keys at a time.
func openFiltered(t *testing.T, chunk int, dirs ...string) *Local {
	t.Helper()
	cfg := DefaultLocalConfig(dirs...)
	cfg.Logger = testLogger(t)
	cfg.FilterPrefixes = [][]byte{[]byte("h/")}
	l, err := OpenLocal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	l.pres.chunk = chunk
	return l
}

// TestPresenceFilterSeesEveryKey writes keys, restarts, and goes on
// writing and deleting while the filter is built from the store. Every
// key present afterwards must read as present, and a commit that expects
// it absent must conflict; most absent keys must be answered by the
// filter. It fails if the filter misses a key at open, one written under
// its scan, or one put by a commit.
func TestPresenceFilterSeesEveryKey(t *testing.T) {
	ctx := context.Background()
	dirs := []string{t.TempDir(), t.TempDir()}
	const parts = 8
	present := map[string]Partition{}
	put := func(l *Local, p Partition, key string) {
		t.Helper()
		txn := Txn{Puts: []KV{{Key: []byte(key), Value: []byte("v")}, {Key: []byte("v/" + key), Value: []byte("x")}}}
		if _, err := l.Commit(ctx, p, txn); err != nil {
			t.Fatal(err)
		}
	}
	l := openFiltered(t, 64, dirs...)
	for i := range 3000 {
		k := fmt.Sprintf("h/old/%d", i)
		p := Partition(i % parts)
		put(l, p, k)
		present[k] = p
	}
	put(l, System, "h/system")
	present["h/system"] = System
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}

	// Reopen with a small scan chunk, so the scan and the writes below
	// interleave.
	l = openFiltered(t, 16, dirs...)
	defer l.Close()
	var mu sync.Mutex
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 500 {
				k := fmt.Sprintf("h/new/%d/%d", w, i)
				p := Partition((i + w) % parts)
				txn := Txn{Puts: []KV{{Key: []byte(k), Value: []byte("v")}}}
				if _, err := l.Commit(ctx, p, txn); err != nil {
					t.Error(err)
					return
				}
				// Delete an old key now and then: a deleted key is read
				// as absent whatever the filter holds.
				old := fmt.Sprintf("h/old/%d", w*500+i)
				mu.Lock()
				present[k] = p
				if i%5 == 0 {
					if _, err := l.Commit(ctx, present[old], Txn{Deletes: [][]byte{[]byte(old)}}); err != nil {
						t.Error(err)
					}
					delete(present, old)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	<-l.pres.built
	if !l.pres.ready.Load() {
		t.Fatal("filter not ready after its scan")
	}
	for k, p := range present {
		if _, err := l.Get(ctx, p, []byte(k)); err != nil {
			t.Fatalf("Get %q in %d: %v", k, p, err)
		}
		_, err := l.Commit(ctx, p, Txn{Conds: []Cond{{Key: []byte(k)}}, Puts: []KV{{Key: []byte(k), Value: []byte("w")}}})
		if !errors.Is(err, ErrConflict) {
			t.Fatalf("commit expecting %q absent: %v, want a conflict", k, err)
		}
	}
	before := l.pres.answered.Load()
	const absent = 1000
	for i := range absent {
		p := Partition(i % parts)
		k := []byte(fmt.Sprintf("h/none/%d", i))
		if _, err := l.Get(ctx, p, k); !errors.Is(err, ErrNotFound) {
			t.Fatalf("Get absent %q: %v", k, err)
		}
		items, _, err := l.GetMany(ctx, p, []Read{Get(k), Get([]byte("h/old/2999"))}, ReadOptions{})
		if err != nil || items[0].Rev != 0 {
			t.Fatalf("GetMany absent %q: %+v, %v", k, items, err)
		}
	}
	if got := l.pres.answered.Load() - before; got < 2*absent*9/10 {
		t.Errorf("filter answered %d of %d reads of absent keys, want most", got, 2*absent)
	}
	// A key outside the prefixes is never answered by the filter.
	if l.pres.absent(0, []byte("v/none")) {
		t.Error("a key the filter does not cover answered absent")
	}
}
