package meta

import (
	"bytes"
	"context"
	"fmt"
	"testing"
)

// Values from SeparatedValueBytes on live in blob files beside the
// tables, and smaller ones in the tables: a flushed store of large values
// keeps its tables small (what compactions rewrite, and listings seek
// through), and every value reads back whole.
func TestLargeValuesLiveBesideTables(t *testing.T) {
	cfg := DefaultLocalConfig(t.TempDir())
	cfg.MemTableBytes = 1 << 20
	l, err := OpenLocal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ctx := context.Background()
	large := bytes.Repeat([]byte("0123456789abcdef"), 4096/16) // incompressible enough: see the check below
	for i := range large {
		large[i] ^= byte(i * 7)
	}
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
	tables := m.Total().TablesSize
	if m.BlobFiles.ReferencedValueSize < keys*uint64(len(large)) {
		t.Errorf("blob files hold %d bytes of values; want the %d of the large ones", m.BlobFiles.ReferencedValueSize, keys*len(large))
	}
	if m.BlobFiles.ReferencedValueSize >= keys*uint64(len(large)+len(small)) {
		t.Errorf("blob files hold %d bytes of values: small values went there too", m.BlobFiles.ReferencedValueSize)
	}
	if tables > keys*int64(len(large))/4 {
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
