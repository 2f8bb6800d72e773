package meta

import (
	"bytes"
	"sync"
	"sync/atomic"
)

// HotKeys keeps in memory the items of a few keys that are read far more
// often than they are written (a bucket's fence in each partition, read by
// every GET), so that a store answers a Read with Hot set without a read
// of its own, from the same view as the rest of a GetMany.
//
// The store brackets every write to the keys a HotKeys covers with
// BeginWrite, before the write can become visible, and EndWrite, once it
// is. A reader takes a HotToken before its view, looks keys up (Get), and
// keeps what it found only if Unchanged(token) holds after: then no write
// was under way at any time from the token to the check, so the cached
// item is the key's item throughout, in the reader's view too. A reader
// that read a key from its view may Fill it under the same condition.
//
// Why a cached item is never older than the key: a write deletes the keys
// it writes as it counts itself started (BeginWrite), before it can be
// visible, and a fill stores its item only if no write started since its
// token was taken while none was under way; both hold mu, so a write that
// starts after a fill deletes its item. The tests are
// TestHotKeysInterleavings (every order of one write, one fill and one
// reader) and metatest's HotReadsAreOneView (each store, under concurrent
// writes).
type HotKeys struct {
	started, finished atomic.Uint64
	items             atomic.Pointer[map[string]Item] // copied on change
	mu                sync.Mutex                      // held to change items or started
}

// maxHotKeys bounds the keys one HotKeys holds; past it a fill replaces an
// arbitrary one.
const maxHotKeys = 64

// A HotToken is what a reader knew of the writes before its view.
type HotToken struct {
	started uint64
	calm    bool // no write was under way
}

// Token returns the token of a view about to be taken.
func (h *HotKeys) Token() HotToken {
	s := h.started.Load()
	return HotToken{started: s, calm: h.finished.Load() == s}
}

// Unchanged reports whether no write was under way from t until now.
func (h *HotKeys) Unchanged(t HotToken) bool {
	return t.calm && h.started.Load() == t.started
}

// Get returns key's item, if it is held; the value is the caller's.
func (h *HotKeys) Get(key []byte) (Item, bool) {
	m := h.items.Load()
	if m == nil {
		return Item{}, false
	}
	it, ok := (*m)[string(key)]
	if ok {
		it.Value = bytes.Clone(it.Value)
	}
	return it, ok
}

// Rev returns the revision of key's item, if it is held. A held item is
// the key's item whenever no write to it is under way: one that starts
// forgets it first.
func (h *HotKeys) Rev(key []byte) (uint64, bool) {
	m := h.items.Load()
	if m == nil {
		return 0, false
	}
	it, ok := (*m)[string(key)]
	return it.Rev, ok
}

// Read answers reads into out, all from one view: the Hot ones from
// memory where it holds them, the rest through cold, which must answer
// reads[i] into out[i] for each i of which from one view of the store's
// own. If a write was under way meanwhile, every read goes through cold
// again. The Hot reads that went through cold are then held.
func (h *HotKeys) Read(reads []Read, out []Item, cold func(which []int) error) error {
	t := h.Token()
	which := make([]int, 0, len(reads))
	for i, rd := range reads {
		if rd.Hot && !rd.First && t.calm {
			if it, ok := h.Get(rd.Key); ok {
				out[i] = it
				continue
			}
		}
		which = append(which, i)
	}
	if err := cold(which); err != nil {
		return err
	}
	if len(which) < len(reads) && !h.Unchanged(t) {
		which = which[:0]
		for i := range reads {
			which = append(which, i)
		}
		if err := cold(which); err != nil {
			return err
		}
	}
	for _, i := range which {
		if rd := reads[i]; rd.Hot && !rd.First {
			h.Fill(t, rd.Key, out[i])
		}
	}
	return nil
}

// Fill stores it as key's item, read from a view taken after t, unless a
// write was under way since t. An absent key (Rev 0) is held too.
func (h *HotKeys) Fill(t HotToken, key []byte, it Item) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.Unchanged(t) {
		return
	}
	k := string(key)
	old := h.items.Load()
	next := make(map[string]Item, 1)
	if old != nil {
		next = make(map[string]Item, len(*old)+1)
		for ek, ev := range *old {
			if len(next) == maxHotKeys-1 && ek != k {
				break // full: an arbitrary key makes room
			}
			next[ek] = ev
		}
	}
	next[k] = Item{Value: bytes.Clone(it.Value), Rev: it.Rev}
	h.items.Store(&next)
}

// BeginWrite counts a write that is about to become visible and forgets
// the keys it writes; keys nil means every key (a replica replaced or
// deleted). EndWrite must follow once the write is visible, or has failed.
func (h *HotKeys) BeginWrite(keys func(yield func([]byte) bool)) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.started.Add(1)
	m := h.items.Load()
	switch {
	case m == nil || len(*m) == 0:
	case keys == nil:
		h.items.Store(nil)
	default:
		h.removeLocked(keys)
	}
}

// EndWrite counts a write begun with BeginWrite as over.
func (h *HotKeys) EndWrite() { h.finished.Add(1) }

// removeLocked drops keys from the held items. h.mu is held.
func (h *HotKeys) removeLocked(keys func(yield func([]byte) bool)) {
	m := h.items.Load()
	if m == nil {
		return
	}
	var next map[string]Item
	for k := range keys {
		if _, ok := (*m)[string(k)]; !ok {
			continue
		}
		if next == nil {
			next = make(map[string]Item, len(*m))
			for ek, ev := range *m {
				next[ek] = ev
			}
		}
		delete(next, string(k))
	}
	if next != nil {
		h.items.Store(&next)
	}
}

// TxnKeys yields the keys txn writes, for BeginWrite.
func TxnKeys(txn *Txn) func(yield func([]byte) bool) {
	return func(yield func([]byte) bool) {
		for _, k := range txn.Deletes {
			if !yield(k) {
				return
			}
		}
		for _, kv := range txn.Puts {
			if !yield(kv.Key) {
				return
			}
		}
		for _, a := range txn.Adds {
			if !yield(a.Key) {
				return
			}
		}
	}
}
