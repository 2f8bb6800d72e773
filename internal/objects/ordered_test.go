package objects

import (
	"bytes"
	"context"
	"fmt"
	"sort"
	"sync/atomic"
	"testing"

	"github.com/redoubt-io/redoubt/internal/meta"
)

// orderedMem is a Mem that offers heads in one order across partitions,
// as a Local with an ordered index does (meta.OrderedScanner), merging
// its partitions' scans. It counts the scans and records they read.
type orderedMem struct {
	*meta.Mem
	parts        int
	scans, items atomic.Int64
}

func newOrderedMem(md *meta.Mem, parts int) *orderedMem { return &orderedMem{Mem: md, parts: parts} }

func (o *orderedMem) Ordered(prefix []byte) bool { return len(prefix) > 0 && prefix[0] == tagHead }

func (o *orderedMem) ScanOrdered(ctx context.Context, start, end []byte, fn func([]byte, meta.Item) bool) error {
	if !o.Ordered(start) {
		return fmt.Errorf("ordered scan from %q", start)
	}
	o.scans.Add(1)
	type rec struct {
		k  []byte
		it meta.Item
	}
	var all []rec
	for p := range o.parts {
		err := o.Mem.Scan(ctx, meta.Partition(p), start, end, func(k []byte, it meta.Item) bool {
			all = append(all, rec{bytes.Clone(k), it})
			return true
		})
		if err != nil {
			return err
		}
	}
	sort.Slice(all, func(i, j int) bool { return bytes.Compare(all[i].k, all[j].k) < 0 })
	for _, r := range all {
		o.items.Add(1)
		if !fn(r.k, r.it) {
			break
		}
	}
	return nil
}

// A listing over a store that keeps heads in order reads one range per
// page, and about the records it returns: not a range of every partition.
func TestListOrderedCost(t *testing.T) {
	const P = 16
	om := newOrderedMem(meta.NewMem(), P)
	cs := &countingStore{Store: om}
	cfg := DefaultConfig()
	cfg.Partitions = P
	s := newCostService(t, cfg, struct {
		*countingStore
		meta.OrderedScanner
	}{cs, om})
	ctx := context.Background()
	for _, tt := range []struct {
		opts            ListOptions
		entries         int
		scans, maxItems int64
	}{
		{ListOptions{MaxKeys: 1000}, 1000, 1, 1001},
		{ListOptions{MaxKeys: 100, Marker: "dir05/file0100"}, 100, 1, 101},
		// 20 prefixes of 200 keys: a short read past each, not the keys
		// under them.
		{ListOptions{Delimiter: "/"}, 20, 21, 21 * 2},
	} {
		cs.scans.Store(0)
		om.scans.Store(0)
		om.items.Store(0)
		r, err := s.ListObjects(ctx, "cost", tt.opts)
		if err != nil {
			t.Fatal(err)
		}
		if n := len(r.Objects) + len(r.CommonPrefixes); n != tt.entries {
			t.Fatalf("%+v: %d entries", tt.opts, n)
		}
		t.Logf("%+v: %d ordered scans, %d records", tt.opts, om.scans.Load(), om.items.Load())
		if cs.scans.Load() != 0 {
			t.Errorf("%+v: %d partition scans, want none", tt.opts, cs.scans.Load())
		}
		if got := om.scans.Load(); got > tt.scans {
			t.Errorf("%+v: %d ordered scans, want at most %d", tt.opts, got, tt.scans)
		}
		if got := om.items.Load(); got > tt.maxItems {
			t.Errorf("%+v: read %d records, want at most %d", tt.opts, got, tt.maxItems)
		}
	}
}
