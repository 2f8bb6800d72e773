package records

import (
	"bytes"
	"fmt"
	"slices"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/redoubt-io/redoubt/internal/transport"
)

// TestScanInKeyOrder: Scan returns keys in the order of their bytes, each
// with every record, whatever bytes they hold (a 0x00, a key that is a
// prefix of another), and pages through a range without a gap or a
// repeat.
func TestScanInKeyOrder(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		s := memStore(t)
		keys := rapid.SliceOfNDistinct(rapid.SliceOfN(rapid.ByteRange(0, 3), 0, 4), 1, 20, func(k []byte) string { return string(k) }).Draw(t, "keys")
		for i, k := range keys {
			recs := []Record{{Key: k, Version: version(int64(10+i), 1, "a")}}
			if i%2 == 0 {
				recs = append(recs, Record{Key: k, Version: version(int64(5+i), 2, "b")})
			}
			if _, err := s.Put(1, recs); err != nil {
				t.Fatal(err)
			}
		}
		// A record of another partition is never in partition 1's scans.
		if _, err := s.Put(2, []Record{{Key: []byte{1}, Version: version(1, 1, "other")}}); err != nil {
			t.Fatal(err)
		}
		want := slices.Clone(keys)
		slices.SortFunc(want, bytes.Compare)
		limit := rapid.IntRange(1, 5).Draw(t, "limit")
		var got [][]byte
		from := []byte{}
		for range len(keys) + 1 {
			recs, more, err := s.Scan(1, from, nil, limit)
			if err != nil {
				t.Fatal(err)
			}
			n := 0
			for i, r := range recs {
				if i == 0 || !bytes.Equal(r.Key, recs[i-1].Key) {
					got = append(got, r.Key)
					n++
				}
			}
			if n > limit || more && n != limit {
				t.Fatalf("a page of %d keys with limit %d (more %v)", n, limit, more)
			}
			if !more {
				break
			}
			from = append(slices.Clone(got[len(got)-1]), 0) // the next key after the last
		}
		if len(got) != len(want) {
			t.Fatalf("scanned %x, want %x", got, want)
		}
		for i := range want {
			if !bytes.Equal(got[i], want[i]) {
				t.Fatalf("scanned %x, want %x", got, want)
			}
		}
		// A range that ends before a key leaves it out.
		if len(want) > 1 {
			recs, _, err := s.Scan(1, want[0], want[1], 100)
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range recs {
				if !bytes.Equal(r.Key, want[0]) {
					t.Fatalf("scan [%x, %x) returned %x", want[0], want[1], r.Key)
				}
			}
		}
	})
}

// TestReadRangeMergesReplicas: a range read through one node returns the
// union of what the replicas hold, pages included, and leaves each
// replica that answered holding it.
func TestReadRangeMergesReplicas(t *testing.T) {
	tr := newTrio(t)
	// Each node alone writes its own keys, so each holds a third.
	for i := range 30 {
		id := []transport.NodeID{"a", "b", "c"}[i%3]
		rec := Record{Key: fmt.Appendf(nil, "k%02d", i), Version: version(int64(10+i), 1, "v")}
		if _, err := tr.stores[id].Put(1, []Record{rec}); err != nil {
			t.Fatal(err)
		}
	}
	reps := tr.replicas(t, "a")
	var got []string
	from := []byte{}
	for {
		recs, more, answered, err := ReadRange(reps, 1, from, nil, 7, time.Second, nil)
		if err != nil || answered != 3 {
			t.Fatalf("read range: %d answered, %v", answered, err)
		}
		for _, r := range recs {
			got = append(got, string(r.Key))
		}
		if !more {
			break
		}
		from = append([]byte(got[len(got)-1]), 0)
	}
	if len(slices.Compact(slices.Clone(got))) != 30 || !slices.IsSorted(got) {
		t.Fatalf("read %d keys %v, want the 30 in order", len(got), got)
	}
	for id, s := range tr.stores {
		recs, _, err := s.Scan(1, nil, nil, 100)
		if err != nil || len(recs) != 30 {
			t.Fatalf("node %s holds %d records after the reads (%v), want 30", id, len(recs), err)
		}
	}
}

// TestDeleteExactly: Delete removes the records given and no other, its
// tree follows, and a version stored with another encoding stays.
func TestDeleteExactly(t *testing.T) {
	s := memStore(t)
	a := Record{Key: []byte("a"), Version: version(1, 1, "a")}
	b := Record{Key: []byte("b"), Version: version(2, 1, "b")}
	if _, err := s.Put(3, []Record{a, b}); err != nil {
		t.Fatal(err)
	}
	other := memStore(t)
	if _, err := other.Put(3, []Record{b}); err != nil {
		t.Fatal(err)
	}
	stale := a
	stale.Version.Body = []byte("not what is stored")
	if err := s.Delete(3, []Record{stale, a, a}); err != nil {
		t.Fatal(err)
	}
	if s.Root(3) != other.Root(3) {
		t.Fatal("after deleting a, the tree is not that of a store holding b alone")
	}
	if got := s.Partitions(); len(got) != 1 || got[0] != 3 {
		t.Fatalf("partitions %v", got)
	}
	if err := s.Delete(3, []Record{b}); err != nil {
		t.Fatal(err)
	}
	if got := s.Partitions(); len(got) != 0 {
		t.Fatalf("partitions after deleting everything: %v", got)
	}
}
