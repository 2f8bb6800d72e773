package objects

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"testing"

	"github.com/redoubt-io/redoubt/internal/meta"
)

var errScan = errors.New("injected scan failure")

// scanFailer fails every Scan of one partition.
type scanFailer struct {
	meta.Store
	bad meta.Partition
}

func (f scanFailer) Scan(ctx context.Context, p meta.Partition, start, end []byte, fn func([]byte, meta.Item) bool) error {
	if p == f.bad {
		return errScan
	}
	return f.Store.Scan(ctx, p, start, end, fn)
}

// TestListScanFailureFailsListing: partitions are read concurrently, and
// a failure to read any one of them fails the page rather than leaving its
// keys out.
func TestListScanFailureFailsListing(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Partitions = 16
	cfg.InlineMax = 64
	md := meta.NewMem()
	good, err := New(cfg, md, newMemBlocks(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := good.CreateBucket(ctx, "scan-fail"); err != nil {
		t.Fatal(err)
	}
	for i := range 200 {
		key := fmt.Sprintf("k%03d", i)
		if _, err := good.PutObject(ctx, "scan-fail", key, nil, 0, PutOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	res, err := good.ListObjects(ctx, "scan-fail", ListOptions{MaxKeys: 50})
	if err != nil || len(res.Objects) != 50 || res.Objects[0].Key != "k000" || res.Objects[49].Key != "k049" {
		t.Fatalf("healthy listing: %d objects, %v", len(res.Objects), err)
	}
	for bad := range meta.Partition(cfg.Partitions) {
		s, err := New(cfg, scanFailer{Store: md, bad: bad}, newMemBlocks(), slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.ListObjects(ctx, "scan-fail", ListOptions{}); !errors.Is(err, errScan) {
			t.Errorf("partition %d failing: listing error %v, want %v", bad, err, errScan)
		}
	}
}
