package objects

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"time"
)

// Buckets replicated to sites (BucketConfig.Replicate). A cluster linked
// with others (package sites) shares these buckets with them: the same
// name, the same incarnation ID, so that a key's records are the same
// records on every site, and the same configuration. Each site creates
// the others' replicated buckets it lacks (AdoptBucket), so a bucket made
// on one site appears on all.

// ReplicateHeader is CreateBucket's request header that makes an
// available bucket replicated to the linked sites ("true").
const ReplicateHeader = "X-Redoubt-Site-Replication"

// SiteBucket is a replicated bucket as sites exchange it.
type SiteBucket struct {
	Name       string       `json:"name"`
	ID         string       `json:"id"` // 16 hex digits
	Created    time.Time    `json:"created"`
	Versioning Versioning   `json:"versioning"`
	Config     BucketConfig `json:"config"`
	// VersioningAt is when the versioning state was set (unix ms): of two
	// sites' states, the later wins (ties: the greater state).
	VersioningAt int64 `json:"versioning_at,omitempty"`
}

// SiteBuckets lists the buckets replicated to sites.
func (s *Service) SiteBuckets(ctx context.Context) ([]SiteBucket, error) {
	var out []SiteBucket
	err := s.forEachBucket(ctx, func(name string, r bucketRec) {
		if r.Config.Replicate && r.Pending.Kind != changeDelete {
			out = append(out, SiteBucket{Name: name, ID: hex.EncodeToString(r.ID[:]), Created: msTime(r.Created),
				Versioning: r.Versioning, Config: r.Config, VersioningAt: r.VersioningAt})
		}
	})
	return out, err
}

// ErrSiteBucketClash: another site replicates a bucket under a name this
// site uses for a different bucket.
var ErrSiteBucketClash = errors.New("objects: a bucket of this name exists and is not the one the other site replicates (delete or rename one of them)")

// AdoptBucket makes b, another site's replicated bucket, a bucket here
// with its ID and configuration, unless this site has it already. A
// bucket of that name that is not b is left alone: ErrSiteBucketClash.
func (s *Service) AdoptBucket(ctx context.Context, b SiteBucket) error {
	var id bucketID
	if raw, err := hex.DecodeString(b.ID); err != nil || len(raw) != len(id) {
		return fmt.Errorf("%w: bucket id %q", ErrInvalidArgument, b.ID)
	} else {
		copy(id[:], raw)
	}
	if !b.Config.Replicate || b.Config.Consistency != Available {
		return fmt.Errorf("%w: bucket %q is not replicated to sites", ErrInvalidArgument, b.Name)
	}
	if err := checkBucketConfig(b.Config); err != nil {
		return err
	}
	r, _, err := s.getBucket(ctx, b.Name)
	switch {
	case err == nil && r.ID == id:
		return s.adoptVersioning(ctx, b)
	case err == nil:
		return fmt.Errorf("%w: %q", ErrSiteBucketClash, b.Name)
	case !errors.Is(err, ErrNoSuchBucket):
		return err
	}
	if s.cfg.Records == nil {
		return fmt.Errorf("%w: replicated buckets need a cluster", ErrNotImplemented)
	}
	err = s.createBucket(ctx, b.Name, bucketRec{ID: id, Created: b.Created.UnixMilli(), Versioning: b.Versioning,
		VersioningAt: b.VersioningAt, Fenced: true, Counted: true, Config: b.Config}, false)
	if errors.Is(err, ErrBucketExists) {
		// Adopted at the same moment by another node, or made here.
		if r, _, err := s.getBucket(ctx, b.Name); err == nil && r.ID == id {
			return nil
		}
		return fmt.Errorf("%w: %q", ErrSiteBucketClash, b.Name)
	}
	return err
}

// adoptVersioning sets the versioning state of b, a bucket this site
// has, to the other site's when that was set later (the later setting
// wins on every site; of two set in the same millisecond, the greater
// state), through the same change as SetVersioning.
func (s *Service) adoptVersioning(ctx context.Context, b SiteBucket) error {
	if b.Versioning != Enabled && b.Versioning != Suspended {
		return nil
	}
	later := func(r bucketRec) bool {
		return b.VersioningAt > r.VersioningAt || b.VersioningAt == r.VersioningAt && b.Versioning > r.Versioning
	}
	return s.change(ctx, b.Name, func(r bucketRec) bucketChange {
		if !r.Config.Replicate || r.Versioning == b.Versioning || !later(r) {
			return bucketChange{}
		}
		return bucketChange{Kind: changeVersioning, Versioning: b.Versioning, At: b.VersioningAt}
	})
}

// refuseLinkedDelete refuses to delete a bucket replicated to sites
// while the cluster is linked with any: the others would create it again
// at their next exchange.
func (s *Service) refuseLinkedDelete(ctx context.Context, name string, r bucketRec) error {
	if !r.Config.Replicate || s.cfg.SitesLinked == nil {
		return nil
	}
	linked, err := s.cfg.SitesLinked(ctx)
	if err != nil {
		return metaErr("read the linked sites", err)
	}
	if linked {
		return fmt.Errorf("%w: %q is replicated to the linked sites, which would create it again: remove the sites first (redoubt site remove)", ErrBucketReplicated, name)
	}
	return nil
}

// ErrBucketReplicated refuses to delete a bucket other sites replicate.
var ErrBucketReplicated = errors.New("objects: bucket replicated to other sites")
