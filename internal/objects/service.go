package objects

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/redoubt-io/redoubt/internal/blocks"
	"github.com/redoubt-io/redoubt/internal/checksum"
	"github.com/redoubt-io/redoubt/internal/hlc"
	"github.com/redoubt-io/redoubt/internal/meta"
	"github.com/redoubt-io/redoubt/internal/placement"
)

// Service implements API over a metadata store and a data store.
type Service struct {
	cfg Config
	// siteCopies: copies of other sites' data under way (sitedata.go).
	siteCopies copyLocks
	// stuck: moves whose abandon a metadata outage interrupted
	// (relocate.go).
	stuck stuckMoves
	md    *router // the metadata store, through splits (route.go)
	data  blocks.Store
	log   *slog.Logger
	clock *hlc.Clock
	// buckets caches bucket records for object operations.
	buckets bucketCache
	// fences are the newest fences read, for commits' first rounds.
	fences fenceHints
	// avail remembers available buckets' records (available.go).
	avail availBuckets
	// writer is this incarnation's number in available buckets' version
	// IDs: the incarnation's nonce, so that IDs stay unique even if a
	// restarted node's clock repeats a timestamp.
	writer uint64
	// writes holds the ref IDs of this incarnation's data writes that
	// have not ended (see writeData): an intent of this incarnation whose
	// write is not here was abandoned, and garbage collection may sweep
	// it (an abandonment whose intent could not be dropped, in a partition,
	// would otherwise keep its shards for as long as the process runs).
	writes struct {
		sync.Mutex
		m map[string]struct{}
	}
}

var _ API = (*Service)(nil)

// maxAttempts bounds the retries of one operation whose commit keeps
// meeting concurrent writes to the same key. Every failed round means
// another writer succeeded, so this is reached only under extreme
// contention; the caller then gets ErrConditionalConflict.
const maxAttempts = 1000

// New returns a Service. md and data are used for every call; logger
// receives data-cleanup failures (orphans that garbage collection will
// remove).
func New(cfg Config, md meta.Store, data blocks.Store, logger *slog.Logger) (*Service, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if md == nil || data == nil {
		return nil, fmt.Errorf("%w: nil store", errConfig)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Incarnation.Nonce == 0 {
		cfg.Incarnation.Nonce = newNonce(cfg.Rand)
	}
	return &Service{cfg: cfg, md: newRouter(md, cfg.Partitions), data: data, log: logger, clock: hlc.New(cfg.Now),
		buckets: bucketCache{ttl: cfg.BucketCacheTTL}, writer: cfg.Incarnation.Nonce}, nil
}

// partition is the route of key's records (route.go).
func (s *Service) partition(bucket, key string) meta.Partition {
	return routeOf(placement.PartitionOf(bucket, key, s.cfg.Partitions), key)
}

// deleteData removes data no committed record refers to any more. A
// failure leaves an orphan for garbage collection, not an error.
func (s *Service) deleteData(ctx context.Context, refs ...blocks.Ref) {
	for _, r := range refs {
		if r.ID == "" {
			continue
		}
		if err := s.data.Delete(context.WithoutCancel(ctx), r); err != nil {
			s.log.Warn("delete data", "ref", r.ID, "err", err)
		}
	}
}

// metaErr wraps errors from the metadata store with what was being done.
func metaErr(op string, err error) error {
	return fmt.Errorf("objects: %s: %w", op, err)
}

func (s *Service) getBucket(ctx context.Context, name string) (bucketRec, uint64, error) {
	if err := ValidBucketName(name); err != nil {
		// An invalid name cannot exist.
		return bucketRec{}, 0, fmt.Errorf("%w: %q", ErrNoSuchBucket, name)
	}
	start := time.Now()
	it, err := s.md.Get(ctx, meta.System, bucketKey(name))
	if errors.Is(err, meta.ErrNotFound) {
		s.avail.forget(name)
		return bucketRec{}, 0, noSuchBucket(name)
	}
	if err != nil {
		return bucketRec{}, 0, metaErr("read bucket", err)
	}
	r, err := decodeBucket(it.Value)
	if err != nil {
		return bucketRec{}, 0, fmt.Errorf("bucket %q: %w", name, err)
	}
	s.avail.remember(name, r, start)
	return r, it.Rev, nil
}

func noSuchBucket(name string) error { return fmt.Errorf("%w: %q", ErrNoSuchBucket, name) }

// CreateBucket writes the new incarnation's fences in every partition
// before the bucket record that makes it visible (see fence.go). The name
// is checked first, so that creating an existing bucket leaves nothing
// behind; a creation that loses a race for the name removes its fences.
func (s *Service) CreateBucket(ctx context.Context, name string) error {
	return s.CreateBucketWith(ctx, name, BucketConfig{})
}

// CreateBucketWith creates a bucket configured by cfg. Available buckets
// need a node that keeps their records (Config.Records); one without
// refuses them with ErrNotImplemented rather than make a bucket that
// would answer as a strong one does (TestAvailableBucketNeedsRecords).
func (s *Service) CreateBucketWith(ctx context.Context, name string, cfg BucketConfig) error {
	if err := ValidBucketName(name); err != nil {
		return err
	}
	if err := checkBucketConfig(cfg); err != nil {
		return err
	}
	if cfg.Consistency == Available && s.cfg.Records == nil {
		return fmt.Errorf("%w: available buckets need a cluster (a standalone node has no other side of a partition to stay available on); start one with redoubt dev --nodes 3", ErrNotImplemented)
	}
	if _, _, err := s.getBucket(ctx, name); err == nil {
		return fmt.Errorf("%w: %q", ErrBucketExists, name)
	} else if !errors.Is(err, ErrNoSuchBucket) {
		return err
	}
	r := bucketRec{Created: s.cfg.Now().UnixMilli(), Fenced: true, Counted: true, Config: cfg}
	if _, err := io.ReadFull(s.cfg.Rand, r.ID[:]); err != nil {
		return fmt.Errorf("objects: bucket id: %w", err)
	}
	return s.createBucket(ctx, name, r, true)
}

// checkBucketConfig refuses a configuration no bucket may have.
func checkBucketConfig(cfg BucketConfig) error {
	switch cfg.Consistency {
	case Strong:
		if cfg.WriteCopies != 0 || cfg.ConflictRetention != 0 {
			return fmt.Errorf("%w: write copies and conflict retention are for available buckets; a strong bucket's writes wait for a majority and never conflict", ErrInvalidArgument)
		}
		if cfg.Replicate {
			return fmt.Errorf("%w: only available buckets are replicated to other sites: sites take writes while cut off from each other, which a strong bucket cannot", ErrInvalidArgument)
		}
	case Available:
		if cfg.WriteCopies < 0 || cfg.WriteCopies > MaxWriteCopies {
			return fmt.Errorf("%w: write copies %d not in 1..%d", ErrInvalidArgument, cfg.WriteCopies, MaxWriteCopies)
		}
		if r := cfg.ConflictRetention; r < 0 || r > maxConflictRetention || r%time.Second != 0 {
			return fmt.Errorf("%w: conflict retention %v: whole seconds up to %v", ErrInvalidArgument, r, maxConflictRetention)
		}
	default:
		return fmt.Errorf("%w: unknown consistency %d", ErrInvalidArgument, cfg.Consistency)
	}
	return nil
}

// createBucket makes bucket name with record r, fences first. own says
// the incarnation is this call's alone (a new ID), whose fences it
// removes when it fails; an incarnation several may create at once (an
// adopted bucket's, whose ID another site chose) keeps them, since
// another's creation may be the one that wins.
func (s *Service) createBucket(ctx context.Context, name string, r bucketRec, own bool) error {
	if err := s.writeFences(ctx, r); err != nil {
		if own {
			s.dropFencesQuietly(ctx, name, r.ID)
		}
		return metaErr("create bucket", err)
	}
	k := bucketKey(name)
	_, err := s.md.Commit(ctx, meta.System, meta.Txn{
		Conds: []meta.Cond{{Key: k, Rev: 0}},
		Puts:  []meta.KV{{Key: k, Value: r.encode()}},
	})
	if errors.Is(err, meta.ErrConflict) {
		if own {
			s.dropFencesQuietly(ctx, name, r.ID)
		}
		return fmt.Errorf("%w: %q", ErrBucketExists, name)
	}
	if err != nil {
		// The record may or may not have been written: its fences stay.
		return metaErr("create bucket", err)
	}
	s.buckets.forget(name)
	return nil
}

// dropFencesQuietly removes the fences of an incarnation that never became
// a bucket; what it cannot remove stays as harmless garbage (no record
// names the incarnation).
func (s *Service) dropFencesQuietly(ctx context.Context, name string, id bucketID) {
	if err := s.dropFences(context.WithoutCancel(ctx), id); err != nil {
		s.log.Warn("fences of a bucket not created left behind", "bucket", name, "err", err)
	}
}

// HeadBucket answers from a linearizable read of the bucket record.
func (s *Service) HeadBucket(ctx context.Context, name string) (BucketInfo, error) {
	start := time.Now()
	r, _, err := s.getBucket(ctx, name)
	if r, err = s.availableOrErr(name, r, err); err != nil {
		s.buckets.forget(name)
		return BucketInfo{}, err
	}
	if r.Fenced {
		s.buckets.put(name, cachedBucket{rec: r, read: start})
	}
	return r.info(name), nil
}

func (r *bucketRec) info(name string) BucketInfo {
	return BucketInfo{Name: name, Created: msTime(r.Created), Versioning: r.Versioning, BucketConfig: r.Config}
}

func (s *Service) ListBuckets(ctx context.Context) ([]BucketInfo, error) {
	var out []BucketInfo
	err := s.forEachBucket(ctx, func(name string, r bucketRec) {
		out = append(out, r.info(name))
	})
	if err != nil {
		return nil, err
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// forEachBucket calls fn for every bucket record, in name order.
func (s *Service) forEachBucket(ctx context.Context, fn func(name string, r bucketRec)) error {
	var derr error
	pre := []byte{tagBucket}
	err := s.md.Scan(ctx, meta.System, pre, prefixEnd(pre), func(k []byte, it meta.Item) bool {
		r, err := decodeBucket(it.Value)
		if err != nil {
			derr = fmt.Errorf("bucket %q: %w", k[1:], err)
			return false
		}
		fn(string(k[1:]), r)
		return true
	})
	if err != nil {
		return metaErr("list buckets", err)
	}
	return derr
}

// SetVersioning changes the bucket's versioning state through the fence
// protocol (fence.go): once it returns, every object operation on every
// node acts on the new state.
func (s *Service) SetVersioning(ctx context.Context, bucket string, state Versioning) error {
	if state != Enabled && state != Suspended {
		return fmt.Errorf("%w: versioning can only be enabled or suspended", ErrInvalidArgument)
	}
	at := s.cfg.Now().UnixMilli()
	return s.change(ctx, bucket, func(r bucketRec) bucketChange {
		if r.Versioning == state {
			return bucketChange{}
		}
		c := bucketChange{Kind: changeVersioning, Versioning: state}
		if r.Config.Replicate {
			// Stamped for the other sites (AdoptBucket); later than
			// what the bucket has, so that it is not undone.
			c.At = max(at, r.VersioningAt+1)
		}
		return c
	})
}

// DeleteBucket removes a bucket that holds no object version and no
// delete marker. Incomplete multipart uploads do not keep it alive: as in
// S3, they are aborted and their parts' data discarded. Emptiness is
// checked while every partition's fence is frozen, so no write can land
// between the check and the deletion (see fence.go).
func (s *Service) DeleteBucket(ctx context.Context, name string) error {
	if s.cfg.SitesLinked != nil {
		r, _, err := s.getBucket(ctx, name)
		if err == nil {
			err = s.refuseLinkedDelete(ctx, name, r)
		}
		if err != nil {
			return err
		}
	}
	return s.change(ctx, name, func(bucketRec) bucketChange { return bucketChange{Kind: changeDelete} })
}

// getVersion reads one version; ok is false when it does not exist. at
// is the view of an earlier linearizable read of the key's partition (the
// head's, in readView): any replica that has applied that far may answer,
// and the version is then as that read would have seen it, or newer. A
// version deleted before that read began is absent there, since deleting
// a version rewrites its key's head (TestStaleReplicaDoesNotServeDeletedVersion).
func (s *Service) getVersion(ctx context.Context, p meta.Partition, id bucketID, key string, ts hlc.Timestamp, at uint64) (versionRec, uint64, bool, error) {
	items, _, err := meta.GetMany(ctx, s.md, p, []meta.Read{meta.Get(versionKey(id, key, ts))}, meta.ReadOptions{After: at})
	if err != nil {
		return versionRec{}, 0, false, metaErr("read version", err)
	}
	v, ok, err := decodeVersionItem(items[0], ts, key)
	return v, items[0].Rev, ok, err
}

// decodeVersionItem decodes a version record read as it; ok is false when the
// version does not exist (revision 0).
func decodeVersionItem(it meta.Item, ts hlc.Timestamp, key string) (versionRec, bool, error) {
	if it.Rev == 0 {
		return versionRec{}, false, nil
	}
	v, err := decodeVersion(ts, it.Value)
	if err != nil {
		return versionRec{}, false, fmt.Errorf("version of %q: %w", key, err)
	}
	return v, true, nil
}

func (v *versionRec) head() headRec {
	h := headRec{
		Latest:       v.TS,
		DeleteMarker: v.DeleteMarker,
		Null:         v.Null,
		Size:         v.Size,
		ETag:         v.ETag,
		Modified:     v.TS.Wall,
	}
	for _, a := range checksum.All {
		if c := *v.Checksums.Field(a); c != "" {
			h.ChecksumAlg, h.Checksum, h.ChecksumType = string(a), c, v.Checksums.Type
			break
		}
	}
	return h
}

// checksums returns the checksum the head copies from its version.
func (h *headRec) checksums() Checksums {
	var c Checksums
	if f := c.Field(checksum.Algorithm(h.ChecksumAlg)); f != nil {
		*f = h.Checksum
		c.Type = h.ChecksumType
	}
	return c
}

func (v *versionRec) refs() []blocks.Ref {
	var out []blocks.Ref
	for _, p := range v.Parts {
		out = append(out, p.Ref)
	}
	return out
}

// versionIDString is the version ID shown for v in a bucket whose state
// is st: "" before versioning was ever enabled.
func versionIDString(null bool, ts hlc.Timestamp, st Versioning) string {
	if null {
		if st == Unversioned {
			return ""
		}
		return "null"
	}
	return ts.String()
}

func (v *versionRec) info(bucket, key string, st Versioning) ObjectInfo {
	oi := ObjectInfo{
		Bucket:       bucket,
		Key:          key,
		VersionID:    versionIDString(v.Null, v.TS, st),
		DeleteMarker: v.DeleteMarker,
		Size:         v.Size,
		LastModified: msTime(v.TS.Wall),
		ContentType:  v.ContentType,
		Headers:      cloneMap(v.Headers),
		UserMeta:     cloneMap(v.UserMeta),
		Checksums:    v.Checksums,
	}
	if !v.DeleteMarker {
		oi.ETag = quote(v.ETag)
	}
	if v.Multipart {
		oi.Parts = len(v.Parts)
	}
	return oi
}

func cloneMap(m map[string]string) map[string]string {
	if len(m) == 0 {
		return nil
	}
	c := make(map[string]string, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}

func quote(etag string) string { return `"` + etag + `"` }

// parseVersionID returns the timestamp named by a version ID, or null.
// An ID Redoubt cannot have issued is ErrNoSuchVersion when it looks like
// a version ID (16 to 128 letters and digits: S3 answers NoSuchVersion
// for an unknown but well-formed ID, such as one issued by another
// store), and ErrInvalidArgument otherwise.
func parseVersionID(vid string) (ts hlc.Timestamp, null bool, err error) {
	if vid == "null" {
		return hlc.Timestamp{}, true, nil
	}
	ts, err = hlc.Parse(vid)
	if err != nil {
		if plausibleVersionID(vid) {
			return hlc.Timestamp{}, false, fmt.Errorf("%w: version id %q", ErrNoSuchVersion, vid)
		}
		// S3's words, which name no value.
		return hlc.Timestamp{}, false, fmt.Errorf("%w: invalid version id specified", ErrInvalidArgument)
	}
	return ts, false, nil
}

func plausibleVersionID(vid string) bool {
	if len(vid) < 16 || len(vid) > 128 {
		return false
	}
	for i := 0; i < len(vid); i++ {
		c := vid[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
			return false
		}
	}
	return true
}

// nextTS returns the timestamp of a new version of a key whose head is h.
func (s *Service) nextTS(h headRec, exists bool) hlc.Timestamp {
	if !exists {
		return s.clock.Now()
	}
	t := h.Latest
	if h.HasNull && t.Less(h.NullTS) {
		t = h.NullTS
	}
	return s.clock.Update(t)
}

// isConflict reports whether err is a failed commit condition.
func isConflict(err error) bool { return errors.Is(err, meta.ErrConflict) }
