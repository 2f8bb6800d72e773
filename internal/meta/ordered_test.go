package meta

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/cockroachdb/pebble/v2"
)

// checkIndexOf requires the closed replica in dir to hold, in its ordered
// index, exactly its data keys under prefixes, with their values, and a
// mark saying the index is current.
func checkIndexOf(t fataler, dir string, prefixes [][]byte) {
	t.Helper()
	db, err := pebble.Open(filepath.Join(dir, pebbleSubdir), &pebble.Options{ReadOnly: true, Logger: pebbleQuiet{}})
	if err != nil {
		t.Fatalf("open %s: %v", dir, err)
	}
	defer db.Close()
	ord := newOrderedIndex(prefixes)
	want := map[string]string{}
	it, err := db.NewIter(&pebble.IterOptions{LowerBound: []byte{dataPrefix}, UpperBound: []byte{dataPrefix + 1}})
	if err != nil {
		t.Fatal(err)
	}
	for ok := it.First(); ok; ok = it.Next() {
		key := it.Key()[dataKeyHeader:]
		if ord.covers(key) {
			p := Partition(binary.BigEndian.Uint32(it.Key()[1:dataKeyHeader]))
			want[string(appendIndexKey(nil, key))] = string(appendIndexValue(nil, p, it.Value()))
		}
	}
	it.Close()
	got := map[string]string{}
	it, err = db.NewIter(&pebble.IterOptions{LowerBound: []byte{indexPrefix}, UpperBound: []byte{indexPrefix + 1}})
	if err != nil {
		t.Fatal(err)
	}
	for ok := it.First(); ok; ok = it.Next() {
		got[string(it.Key())] = string(it.Value())
	}
	it.Close()
	if len(got) != len(want) {
		t.Fatalf("replica %s: %d index entries for %d covered keys", dir, len(got), len(want))
	}
	for k, v := range want {
		if got[k] != v {
			t.Fatalf("replica %s: index entry %q is %x, want %x", dir, k, got[k], v)
		}
	}
	if len(prefixes) == 0 {
		return
	}
	applied, c, err := db.Get(appliedKey)
	if err != nil {
		t.Fatal(err)
	}
	wantMark := ord.markAt(binary.BigEndian.Uint64(applied))
	c.Close()
	mark, c, err := db.Get(indexedKey)
	if err != nil {
		t.Fatalf("replica %s: index mark: %v", dir, err)
	}
	defer c.Close()
	if !bytes.Equal(mark, wantMark) {
		t.Fatalf("replica %s: index mark %x, want %x", dir, mark, wantMark)
	}
}

// TestOrderedIndexRebuiltAfterWritesWithout opens a store with and
// without the index in turn, writing each time. Writes made without it
// (as by an older binary) leave it stale; the next open with it must
// build it again, and an open without it must remove it.
func TestOrderedIndexRebuiltAfterWritesWithout(t *testing.T) {
	ctx := context.Background()
	dirs := tempDirs(t, 2)
	prefixes := [][]byte{[]byte("h")}
	n := 0
	round := func(with bool) {
		t.Helper()
		cfg := DefaultLocalConfig(dirs...)
		cfg.Logger = testLogger(t)
		if with {
			cfg.OrderedPrefixes = prefixes
		}
		l, err := OpenLocal(cfg)
		if err != nil {
			t.Fatal(err)
		}
		for i := range 50 {
			p := Partition(i % 4)
			k := fmt.Sprintf("h%d/%d", p, n)
			txn := Txn{Puts: []KV{{Key: []byte(k), Value: []byte("v")}, {Key: []byte("x" + k), Value: []byte("w")}}}
			if i%7 == 0 && n > 0 {
				txn.Deletes = [][]byte{[]byte(fmt.Sprintf("h%d/%d", p, n-4))}
			}
			mustCommit(t, l, p, txn)
			n++
		}
		if with {
			var got int
			if err := l.ScanOrdered(ctx, []byte("h"), nil, func([]byte, Item) bool { got++; return true }); err != nil {
				t.Fatal(err)
			}
			if got == 0 {
				t.Fatal("ordered scan found nothing")
			}
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		for _, d := range dirs {
			if with {
				checkIndexOf(t, d, prefixes)
			}
		}
	}
	round(true)
	round(false)
	round(true)
	round(false)
	for _, d := range dirs {
		checkIndexOf(t, d, nil) // the index is gone: no entry, whatever the data
	}
	round(true)
}
