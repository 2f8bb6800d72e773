package objects

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/redoubt-io/redoubt/internal/meta"
)

// Two services over one metadata store stand for two nodes of a cluster:
// a bucket change acknowledged by one is seen at once by the other,
// although both cache bucket records.
func TestBucketCacheChangesSeenEverywhere(t *testing.T) {
	md := meta.NewMem()
	cfg := DefaultConfig()
	cfg.BucketCacheTTL = 50 * time.Millisecond
	cfg.SharedMetadata = true
	a, err := New(cfg, md, newMemBlocks(), nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := New(cfg, md, newMemBlocks(), nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	// b caches "no such bucket"; a creates it; b must see it.
	if _, err := b.HeadBucket(ctx, "shared"); !errors.Is(err, ErrNoSuchBucket) {
		t.Fatalf("head before create: %v", err)
	}
	if err := a.CreateBucket(ctx, "shared"); err != nil {
		t.Fatal(err)
	}
	if _, err := b.HeadBucket(ctx, "shared"); err != nil {
		t.Fatalf("the other node does not see the new bucket: %v", err)
	}

	// b caches the record; a enables versioning; b's next PUT is versioned.
	if err := a.SetVersioning(ctx, "shared", Enabled); err != nil {
		t.Fatal(err)
	}
	info, err := b.HeadBucket(ctx, "shared")
	if err != nil || info.Versioning != Enabled {
		t.Fatalf("the other node sees versioning %v (%v) right after the change", info.Versioning, err)
	}

	// Deleted on a: gone on b.
	if err := a.DeleteBucket(ctx, "shared"); err != nil {
		t.Fatal(err)
	}
	if _, err := b.HeadBucket(ctx, "shared"); !errors.Is(err, ErrNoSuchBucket) {
		t.Fatalf("the other node still sees the deleted bucket: %v", err)
	}
}

// Object requests of a busy bucket do not read the bucket record each time.
func TestBucketCacheSavesReads(t *testing.T) {
	md := &systemReadCounter{Store: meta.NewMem()}
	cfg := DefaultConfig()
	cfg.BucketCacheTTL = time.Hour
	s, err := New(cfg, md, newMemBlocks(), nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := s.CreateBucket(ctx, "busy"); err != nil {
		t.Fatal(err)
	}
	md.systemGets = 0
	for range 10 {
		if _, err := s.PutObject(ctx, "busy", "k", strings.NewReader("v"), 1, PutOptions{}); err != nil {
			t.Fatal(err)
		}
		if _, _, err := s.GetObject(ctx, "busy", "k", GetOptions{HeadOnly: true}); err != nil {
			t.Fatal(err)
		}
	}
	if md.systemGets != 1 {
		t.Errorf("20 requests read the bucket record %d times, want 1", md.systemGets)
	}
}

type systemReadCounter struct {
	meta.Store
	systemGets int
}

func (c *systemReadCounter) Get(ctx context.Context, p meta.Partition, key []byte) (meta.Item, error) {
	if p == meta.System {
		c.systemGets++
	}
	return c.Store.Get(ctx, p, key)
}
