package meta

import (
	"context"
	"errors"
	"testing"
)

func TestMemConditionalCommit(t *testing.T) {
	ctx := context.Background()
	m := NewMem()
	k := []byte("k")
	rev, err := m.Commit(ctx, 1, Txn{Conds: []Cond{{Key: k}}, Puts: []KV{{Key: k, Value: []byte("a")}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Commit(ctx, 1, Txn{Conds: []Cond{{Key: k}}, Puts: []KV{{Key: k, Value: []byte("b")}}}); !errors.Is(err, ErrConflict) {
		t.Fatalf("create over existing key: %v, want ErrConflict", err)
	}
	it, err := m.Get(ctx, 1, k)
	if err != nil || string(it.Value) != "a" || it.Rev != rev {
		t.Fatalf("Get = %q@%d, %v; want a@%d", it.Value, it.Rev, err, rev)
	}
	if _, err := m.Get(ctx, 2, k); !errors.Is(err, ErrNotFound) {
		t.Fatalf("partitions are not separate: %v", err)
	}
	if _, err := m.Commit(ctx, 1, Txn{Conds: []Cond{{Key: k, Rev: rev}}, Deletes: [][]byte{k}}); err != nil {
		t.Fatal(err)
	}
	var n int
	m.Scan(ctx, 1, nil, nil, func([]byte, Item) bool { n++; return true })
	if n != 0 {
		t.Fatalf("%d keys after delete", n)
	}
}
