package node

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/redoubt-io/redoubt/internal/objects"
	"github.com/redoubt-io/redoubt/internal/placement"
	"github.com/redoubt-io/redoubt/internal/store"
)

// space decides whether the node's drives have room for new data: every
// drive that holds metadata must have its reserve free (every write
// commits metadata on each of them), and enough drives for the
// redundancy must too (shards go only to drives with room). It reads the
// drives' free space at every call, so the answer changes as soon as space
// is freed or taken, by the node or by anything else.
//
// On a cluster node it judges only this node's Raft drive
// (TestClusterNodeWithFullRaftDriveRefusesNewData). The writes that other
// nodes accept still append to the logs of the groups this node votes in,
// on that drive, and Raft's Pebble has no floor of its own; full data
// drives of other nodes are skipped (their Create fails and a spare is
// taken) but their refusal crosses the wire as a plain I/O error. Making
// space a cluster-wide fact (each node's room known to the coordinator of
// a write) is the next step.
type space struct {
	drives []*store.Drive
	meta   []*store.Drive
	// cluster: the node's data drives are some of many, and a write
	// places shards on other nodes' drives too; only the metadata drive
	// is the node's to judge.
	cluster bool
	log     *slog.Logger

	mu        sync.Mutex
	announced bool      // a refusal was logged, and no acceptance since
	logged    time.Time // when a refusal was last logged
}

// spaceLogEvery spaces the warnings of a node that keeps crossing its
// reserve, one PUT refused, one delete, one PUT accepted, and so on.
const spaceLogEvery = time.Minute

func newSpace(drives []*store.Drive, cluster bool, log *slog.Logger) *space {
	return &space{drives: drives, meta: metaDrives(drives, cluster), cluster: cluster, log: log}
}

// room returns nil if new data of policy p can be stored, otherwise an
// error wrapping store.ErrNoSpace that names a drive without room. A
// refusal is logged, at most once per spaceLogEvery, and so is the first
// acceptance after it.
func (s *space) room(p placement.Policy) error {
	err := s.check(p)
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case err != nil && !s.announced && time.Since(s.logged) >= spaceLogEvery:
		s.log.Warn("drives full: new data refused until space is freed; reads and deletes go on", "err", err)
		s.announced, s.logged = true, time.Now()
	case err == nil && s.announced:
		s.log.Info("space freed: new data accepted again")
		s.announced = false
	}
	return err
}

func (s *space) check(p placement.Policy) error {
	for _, d := range s.meta {
		if d.State() != store.Online {
			continue
		}
		if err := d.Room(); err != nil {
			return fmt.Errorf("metadata %w", err)
		}
	}
	if s.cluster {
		return nil
	}
	var errs []error
	ok := 0
	for _, d := range s.drives {
		if d.State() != store.Online {
			continue
		}
		if err := d.Room(); err != nil {
			errs = append(errs, err)
			continue
		}
		ok++
	}
	if ok < p.Shards() && len(errs) > 0 {
		return fmt.Errorf("%d drives have room, %s needs %d: %w", ok, p, p.Shards(), errors.Join(errs...))
	}
	return nil
}

// spaceGate is the object layer as the S3 front end sees it: requests
// that store new data are refused, before any byte of their body is read,
// while the drives lack room (see space); reads, listings, deletes and
// aborts, which free space, always go through. Each method named here is
// a write; the others pass to the object layer unchanged, and a new call
// of objects.API must be sorted into one kind or the other
// (TestSpaceGateRefusesEveryWrite).
type spaceGate struct {
	objects.API
	space  *space
	policy func() placement.Policy
}

var _ objects.API = spaceGate{}

func (g spaceGate) room() error {
	if err := g.space.room(g.policy()); err != nil {
		return fmt.Errorf("node: new data refused: %w", err)
	}
	return nil
}

func (g spaceGate) CreateBucket(ctx context.Context, name string) error {
	if err := g.room(); err != nil {
		return err
	}
	return g.API.CreateBucket(ctx, name)
}

func (g spaceGate) CreateBucketWith(ctx context.Context, name string, cfg objects.BucketConfig) error {
	if err := g.room(); err != nil {
		return err
	}
	return g.API.CreateBucketWith(ctx, name, cfg)
}

func (g spaceGate) SetVersioning(ctx context.Context, bucket string, state objects.Versioning) error {
	if err := g.room(); err != nil {
		return err
	}
	return g.API.SetVersioning(ctx, bucket, state)
}

func (g spaceGate) PutObject(ctx context.Context, bucket, key string, body io.Reader, size int64, opts objects.PutOptions) (objects.ObjectInfo, error) {
	if err := g.room(); err != nil {
		return objects.ObjectInfo{}, err
	}
	return g.API.PutObject(ctx, bucket, key, body, size, opts)
}

func (g spaceGate) CopyObject(ctx context.Context, src objects.CopySource, dstBucket, dstKey string, opts objects.PutOptions) (objects.ObjectInfo, error) {
	if err := g.room(); err != nil {
		return objects.ObjectInfo{}, err
	}
	return g.API.CopyObject(ctx, src, dstBucket, dstKey, opts)
}

func (g spaceGate) CreateMultipartUpload(ctx context.Context, bucket, key string, opts objects.PutOptions) (string, error) {
	if err := g.room(); err != nil {
		return "", err
	}
	return g.API.CreateMultipartUpload(ctx, bucket, key, opts)
}

func (g spaceGate) UploadPart(ctx context.Context, bucket, key, uploadID string, part int, body io.Reader, size int64, opts objects.PartOptions) (objects.PartInfo, error) {
	if err := g.room(); err != nil {
		return objects.PartInfo{}, err
	}
	return g.API.UploadPart(ctx, bucket, key, uploadID, part, body, size, opts)
}

func (g spaceGate) UploadPartCopy(ctx context.Context, src objects.CopySource, bucket, key, uploadID string, part int) (objects.PartInfo, error) {
	if err := g.room(); err != nil {
		return objects.PartInfo{}, err
	}
	return g.API.UploadPartCopy(ctx, src, bucket, key, uploadID, part)
}

func (g spaceGate) CompleteMultipartUpload(ctx context.Context, bucket, key, uploadID string, parts []objects.CompletePart, opts objects.CompleteOptions) (objects.ObjectInfo, error) {
	if err := g.room(); err != nil {
		return objects.ObjectInfo{}, err
	}
	return g.API.CompleteMultipartUpload(ctx, bucket, key, uploadID, parts, opts)
}
