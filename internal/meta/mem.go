package meta

import (
	"bytes"
	"context"
	"sort"
	"strings"
	"sync"
)

// Mem is an in-memory Store: the twin used by tests of the layers above,
// and the executable statement of the Store contract. It keeps nothing
// across restarts.
type Mem struct {
	mu struct {
		sync.Mutex
		parts map[Partition]*memPart
	}
}

type memPart struct {
	rev  uint64
	keys []string // sorted
	vals map[string]Item
}

var _ Store = (*Mem)(nil)

// NewMem returns an empty in-memory store.
func NewMem() *Mem {
	m := &Mem{}
	m.mu.parts = make(map[Partition]*memPart)
	return m
}

func (m *Mem) partLocked(p Partition) *memPart {
	mp := m.mu.parts[p]
	if mp == nil {
		mp = &memPart{vals: make(map[string]Item)}
		m.mu.parts[p] = mp
	}
	return mp
}

func (m *Mem) Get(ctx context.Context, p Partition, key []byte) (Item, error) {
	if err := ctx.Err(); err != nil {
		return Item{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	it, ok := m.partLocked(p).vals[string(key)]
	if !ok {
		return Item{}, ErrNotFound
	}
	return Item{Value: bytes.Clone(it.Value), Rev: it.Rev}, nil
}

func (m *Mem) Scan(ctx context.Context, p Partition, start, end []byte, fn func(key []byte, item Item) bool) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	// Copy a batch at a time under the lock, so that fn may call back into
	// the store and a scan that stops early copies little.
	const batch = 64
	from := string(start)
	inclusive := true
	for {
		m.mu.Lock()
		mp := m.partLocked(p)
		i := sort.SearchStrings(mp.keys, from)
		if !inclusive && i < len(mp.keys) && mp.keys[i] == from {
			i++
		}
		ks := make([]string, 0, batch)
		vs := make([]Item, 0, batch)
		for ; i < len(mp.keys) && len(ks) < batch; i++ {
			k := mp.keys[i]
			if end != nil && k >= string(end) {
				break
			}
			ks = append(ks, k)
			vs = append(vs, mp.vals[k])
		}
		m.mu.Unlock()
		for i, k := range ks {
			if !fn([]byte(k), Item{Value: bytes.Clone(vs[i].Value), Rev: vs[i].Rev}) {
				return nil
			}
		}
		if len(ks) < batch {
			return nil
		}
		from, inclusive = ks[len(ks)-1], false
	}
}

func (m *Mem) Commit(ctx context.Context, p Partition, txn Txn) (uint64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	mp := m.partLocked(p)
	for _, c := range txn.Conds {
		if mp.vals[string(c.Key)].Rev != c.Rev {
			return 0, ErrConflict
		}
	}
	txn, err := ResolveAdds(txn, func(k []byte) ([]byte, error) {
		if it, ok := mp.vals[string(k)]; ok {
			return it.Value, nil
		}
		return nil, nil
	})
	if err != nil {
		return 0, err
	}
	mp.rev++
	for _, k := range txn.Deletes {
		if _, ok := mp.vals[string(k)]; ok {
			delete(mp.vals, string(k))
			i := sort.SearchStrings(mp.keys, string(k))
			mp.keys = append(mp.keys[:i], mp.keys[i+1:]...)
		}
	}
	for _, kv := range txn.Puts {
		k := string(kv.Key)
		if _, ok := mp.vals[k]; !ok {
			i := sort.SearchStrings(mp.keys, k)
			mp.keys = append(mp.keys, "")
			copy(mp.keys[i+1:], mp.keys[i:])
			mp.keys[i] = k
		}
		mp.vals[k] = Item{Value: bytes.Clone(kv.Value), Rev: mp.rev}
	}
	return mp.rev, nil
}

var _ ManyGetter = (*Mem)(nil)

// GetMany implements ManyGetter: every read under one hold of the lock,
// so one view. Mem is always current: at is 0.
func (m *Mem) GetMany(ctx context.Context, p Partition, reads []Read, _ ReadOptions) ([]Item, uint64, error) {
	if err := ctx.Err(); err != nil {
		return nil, 0, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	mp := m.partLocked(p)
	out := make([]Item, len(reads))
	for i, r := range reads {
		k := string(r.Key)
		if r.First {
			j := sort.SearchStrings(mp.keys, k)
			if j == len(mp.keys) || !strings.HasPrefix(mp.keys[j], k) {
				continue
			}
			k = mp.keys[j]
		}
		if it, ok := mp.vals[k]; ok {
			out[i] = Item{Value: bytes.Clone(it.Value), Rev: it.Rev}
			if r.First {
				out[i].Key = []byte(k)
			}
		}
	}
	return out, 0, nil
}
