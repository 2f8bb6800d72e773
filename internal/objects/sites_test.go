package objects

import (
	"errors"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestAdoptBucketConcurrently: the three nodes adopt another site's
// replicated bucket at once, as they do when each exchanges with the
// other site. One creation wins; the others find it and leave its fences
// alone, so the bucket takes strong-path work (a multipart upload's
// parts) afterwards. Without care, a losing creation removed the fences
// of the incarnation it shares with the winner.
func TestAdoptBucketConcurrently(t *testing.T) {
	a := newAvailEnv(t)
	sb := SiteBucket{Name: "shared", ID: "0011223344556677", Created: time.UnixMilli(1700000000000),
		Config: BucketConfig{Consistency: Available, Replicate: true}}
	var wg sync.WaitGroup
	errs := make([]error, 3*4)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = a.nodes[i%3].AdoptBucket(a.ctx, sb)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	got, err := a.s.SiteBuckets(a.ctx)
	if err != nil || len(got) != 1 || got[0].ID != sb.ID || !got[0].Config.Replicate {
		t.Fatalf("SiteBuckets: %+v %v", got, err)
	}
	id, err := a.nodes[1].CreateMultipartUpload(a.ctx, "shared", "k", PutOptions{})
	if err != nil {
		t.Fatalf("multipart upload in the adopted bucket: %v", err)
	}
	if _, err := a.nodes[2].UploadPart(a.ctx, "shared", "k", id, 1, strings.NewReader("part"), 4, PartOptions{}); err != nil {
		t.Fatal(err)
	}
	// A bucket of the same name that is another is left alone.
	other := sb
	other.ID = "8899aabbccddeeff"
	if err := a.s.AdoptBucket(a.ctx, other); !errors.Is(err, ErrSiteBucketClash) {
		t.Fatalf("adopting a clashing bucket: %v", err)
	}
	// Only available, replicated buckets are adopted; bad IDs refused.
	for _, bad := range []SiteBucket{{Name: "x", ID: "zz", Config: sb.Config}, {Name: "y", ID: sb.ID, Config: BucketConfig{Consistency: Available}}} {
		if err := a.s.AdoptBucket(a.ctx, bad); !errors.Is(err, ErrInvalidArgument) {
			t.Fatalf("adopting %+v: %v", bad, err)
		}
	}
	// A strong bucket cannot be replicated.
	if err := a.s.CreateBucketWith(a.ctx, "strong-rep", BucketConfig{Replicate: true}); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("strong replicated bucket: %v", err)
	}
}
