package meta

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
)

// TestHotKeysInterleavings runs one write of a key, one reader that fills
// the key from the store, and one reader that uses what is held, in every
// order of their steps, and checks that a reader never keeps an item that
// is not the key's in its view, and that what is held at the end is the
// key's item.
func TestHotKeysInterleavings(t *testing.T) {
	key := []byte("fence")
	keys := func(yield func([]byte) bool) { yield(key) }
	// Steps: w = writer, f = filler, r = reader.
	steps := []byte("wwwfffrrrr")
	orders := 0
	permute(steps, func(order []byte) {
		orders++
		var h HotKeys
		store := Item{Value: []byte("v1"), Rev: 1} // the key's item as readers see it
		h.Fill(h.Token(), key, store)              // held from an earlier read
		var (
			wi, fi, ri int
			ftok, rtok HotToken
			fread      Item
			rgot       Item
			rhit       bool
			rview      Item
		)
		for _, s := range order {
			switch s {
			case 'w':
				switch wi {
				case 0:
					h.BeginWrite(keys)
				case 1:
					store = Item{Value: []byte("v2"), Rev: 2} // visible
				case 2:
					h.EndWrite()
				}
				wi++
			case 'f':
				switch fi {
				case 0:
					ftok = h.Token()
				case 1:
					fread = store
				case 2:
					h.Fill(ftok, key, fread)
				}
				fi++
			case 'r':
				switch ri {
				case 0:
					rtok = h.Token()
				case 1:
					rgot, rhit = h.Get(key)
				case 2:
					rview = store // the rest of the reader's view
				case 3:
					if rhit && h.Unchanged(rtok) && string(rgot.Value) != string(rview.Value) {
						t.Fatalf("order %s: reader kept %q, its view has %q", order, rgot.Value, rview.Value)
					}
				}
				ri++
			}
		}
		tok := h.Token()
		if it, ok := h.Get(key); ok && h.Unchanged(tok) && string(it.Value) != string(store.Value) {
			t.Fatalf("order %s: %q held after all, the key is %q", order, it.Value, store.Value)
		}
	})
	if want := 4200; orders != want { // 10!/(3!3!4!)
		t.Fatalf("%d orders, want %d", orders, want)
	}
}

// permute calls fn with every distinct order of steps.
func permute(steps []byte, fn func([]byte)) {
	s := slices.Clone(steps)
	slices.Sort(s)
	for {
		fn(s)
		// next permutation in lexicographic order
		i := len(s) - 2
		for i >= 0 && s[i] >= s[i+1] {
			i--
		}
		if i < 0 {
			return
		}
		j := len(s) - 1
		for s[j] <= s[i] {
			j--
		}
		s[i], s[j] = s[j], s[i]
		slices.Reverse(s[i+1:])
	}
}

// TestHotKeysBounded: a HotKeys holds at most maxHotKeys keys, and the
// newest fill is among them.
func TestHotKeysBounded(t *testing.T) {
	var h HotKeys
	for i := range 3 * maxHotKeys {
		k := []byte(fmt.Sprintf("k%d", i))
		h.Fill(h.Token(), k, Item{Value: k, Rev: uint64(i + 1)})
		if _, ok := h.Get(k); !ok {
			t.Fatalf("key %s not held just after its fill", k)
		}
		if n := len(*h.items.Load()); n > maxHotKeys {
			t.Fatalf("%d keys held", n)
		}
	}
}

// TestHotKeysValueIsTheCallers: changing a returned value changes nothing
// held.
func TestHotKeysValueIsTheCallers(t *testing.T) {
	var h HotKeys
	h.Fill(h.Token(), []byte("k"), Item{Value: []byte("abc"), Rev: 1})
	it, _ := h.Get([]byte("k"))
	it.Value[0] = 'x'
	if it, _ := h.Get([]byte("k")); string(it.Value) != "abc" {
		t.Fatalf("held %q", it.Value)
	}
}

// A commit's conditions on a key that HotKeys holds are checked against
// the held item, without a read: every write to the key, whoever makes
// it, must be seen. The fence is read hot (filling HotKeys), changed by a
// commit, read hot again, changed by a delete: a condition on any
// revision but the current one conflicts, and one on the current passes.
func TestCommitCondsOnHotKeysSeeEveryWrite(t *testing.T) {
	l, err := OpenLocal(DefaultLocalConfig(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ctx := context.Background()
	const p = Partition(3)
	fence, other := []byte("fence"), []byte("other")
	fill := func() uint64 {
		t.Helper()
		for range 2 { // the first read fills, the second is answered from memory
			items, _, err := l.GetMany(ctx, p, []Read{GetHot(fence)}, ReadOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if rev, ok := l.hotKeys(p).Rev(fence); !ok || rev != items[0].Rev {
				t.Fatalf("HotKeys holds rev %d (%v); the fence is at %d", rev, ok, items[0].Rev)
			}
		}
		rev, _ := l.hotKeys(p).Rev(fence)
		return rev
	}
	commit := func(conds []Cond, txn Txn) error {
		txn.Conds = conds
		_, err := l.Commit(ctx, p, txn)
		return err
	}
	r0 := fill() // absent: 0
	if err := commit([]Cond{{Key: fence, Rev: r0}}, Txn{Puts: []KV{{Key: fence, Value: []byte("v1")}}}); err != nil {
		t.Fatal(err)
	}
	if err := commit([]Cond{{Key: fence, Rev: r0}}, Txn{Puts: []KV{{Key: other, Value: []byte("x")}}}); !errors.Is(err, ErrConflict) {
		t.Fatalf("condition on the fence's old revision after a write: %v, want a conflict", err)
	}
	r1 := fill()
	if r1 == r0 {
		t.Fatal("the fence's revision did not change")
	}
	if err := commit([]Cond{{Key: fence, Rev: r1}}, Txn{Deletes: [][]byte{fence}}); err != nil {
		t.Fatal(err)
	}
	if err := commit([]Cond{{Key: fence, Rev: r1}}, Txn{Puts: []KV{{Key: other, Value: []byte("y")}}}); !errors.Is(err, ErrConflict) {
		t.Fatalf("condition on a deleted fence's revision: %v, want a conflict", err)
	}
	if err := commit([]Cond{{Key: fence, Rev: fill()}}, Txn{Puts: []KV{{Key: other, Value: []byte("z")}}}); err != nil {
		t.Fatalf("condition on the current (absent) fence: %v", err)
	}
}
