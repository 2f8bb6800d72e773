package meta

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"testing"
)

// openSeparated opens a one-replica store with the smallest memtables.
func openSeparated(t *testing.T) *Local {
	t.Helper()
	cfg := DefaultLocalConfig(t.TempDir())
	cfg.MemTableBytes = 1 << 20
	l, err := OpenLocal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// Values from SeparatedValueBytes on live in blob files beside the
// tables, and smaller ones in the tables: a flushed store of large values
// keeps its tables small (what compactions rewrite), and every value
// reads back whole.
func TestLargeValuesLiveBesideTables(t *testing.T) {
	l := openSeparated(t)
	ctx := context.Background()
	large := make([]byte, 4096)
	_, _ = rand.Read(large)
	small := make([]byte, 100)
	const keys = 1000
	for i := 0; i < keys; i += 100 {
		var txn Txn
		for j := i; j < i+100; j++ {
			txn.Puts = append(txn.Puts,
				KV{Key: []byte(fmt.Sprintf("big%06d", j)), Value: large},
				KV{Key: []byte(fmt.Sprintf("small%06d", j)), Value: small})
		}
		if _, err := l.Commit(ctx, 7, txn); err != nil {
			t.Fatal(err)
		}
	}
	db := l.replicas[0].db
	if err := db.Flush(); err != nil {
		t.Fatal(err)
	}
	m := db.Metrics()
	if m.BlobFiles.ReferencedValueSize < keys*uint64(len(large)) {
		t.Errorf("blob files hold %d bytes of values; want the %d of the large ones", m.BlobFiles.ReferencedValueSize, keys*len(large))
	}
	if m.BlobFiles.ReferencedValueSize >= keys*uint64(len(large)+len(small)) {
		t.Errorf("blob files hold %d bytes of values: small values went there too", m.BlobFiles.ReferencedValueSize)
	}
	if tables := m.Total().TablesSize; tables > keys*int64(len(large))/4 {
		t.Errorf("tables hold %d bytes for %d keys of %d-byte values: the values are in them", tables, keys, len(large))
	}
	for _, k := range []string{"big000000", "big000999", "small000500"} {
		it, err := l.Get(ctx, 7, []byte(k))
		if err != nil {
			t.Fatal(err)
		}
		want := large
		if k[0] == 's' {
			want = small
		}
		if !bytes.Equal(it.Value, want) {
			t.Fatalf("%s read back %d bytes, not what was written", k, len(it.Value))
		}
	}
}

// A separated value is written once, by its flush: compactions move the
// keys that point to it and leave it where it is, however many flushes'
// blob files the keys of one table point into. Random keys, as an object
// store's are, spread every flush's blob file over the whole key space,
// so a full compaction of 300 flushes makes tables that point into all
// 300: with Pebble's reference depth of 10, or the 100 tried before,
// that compaction copies every value again.
func TestSeparatedValuesStayPut(t *testing.T) {
	l := openSeparated(t)
	ctx := context.Background()
	db := l.replicas[0].db
	const flushes, perFlush = 300, 8
	value := make([]byte, 2048)
	want := map[string][]byte{}
	for f := 0; f < flushes; f++ {
		var txn Txn
		for range perFlush {
			k := make([]byte, 8)
			_, _ = rand.Read(k)
			v := bytes.Clone(value)
			_, _ = rand.Read(v)
			txn.Puts = append(txn.Puts, KV{Key: k, Value: v})
			want[string(k)] = v
		}
		if _, err := l.Commit(ctx, 7, txn); err != nil {
			t.Fatal(err)
		}
		if err := db.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Compact(ctx, []byte{0}, bytes.Repeat([]byte{0xff}, 16), false); err != nil {
		t.Fatal(err)
	}
	m := db.Metrics()
	flushed := m.Total().BlobBytesFlushed
	if flushed < flushes*perFlush*uint64(len(value)) {
		t.Fatalf("flushes wrote %d bytes to blob files for %d values of %d bytes: the values are not beside the tables", flushed, flushes*perFlush, len(value))
	}
	// Pebble counts a flush's blob bytes as level 0's compacted bytes too:
	// the copies are what compactions into levels 1 to 6 wrote.
	var copied uint64
	for _, lm := range m.Levels[1:] {
		copied += lm.BlobBytesCompacted
	}
	if copied != 0 || m.BlobFiles.LiveCount != flushes {
		t.Errorf("compactions copied %d bytes of values into new blob files (%d blob files for %d flushes; %d bytes flushed)", copied, m.BlobFiles.LiveCount, flushes, flushed)
	}
	for k, v := range want {
		it, err := l.Get(ctx, 7, []byte(k))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(it.Value, v) {
			t.Fatalf("key %x read back %d bytes, not what was written", k, len(it.Value))
		}
	}
}

// The databases of a process share a quarter of its open-file limit, each
// keeping at least Pebble's default.
func TestOpenFileBudget(t *testing.T) {
	for _, dbs := range []int{0, 1, 3, 1000} {
		if got := openFileBudget(dbs); got < 1000 || got > 1<<16 {
			t.Errorf("openFileBudget(%d) = %d; want within [1000, 65536]", dbs, got)
		}
	}
	if a, b := openFileBudget(1), openFileBudget(3); b > a {
		t.Errorf("three databases get %d files each, one gets %d", b, a)
	}
}
