package objects

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/redoubt-io/redoubt/internal/clock"
)

// Config sets the limits and the clock of a Service.
type Config struct {
	// Partitions is the number of metadata partitions object keys hash
	// to. It must equal the cluster's layout; changing it moves every key.
	Partitions int
	// InlineMax is the largest body kept inside its metadata record
	// instead of the data store. Larger saves shard files for small
	// objects but makes metadata (and its replication) heavier.
	InlineMax int
	// Now is the physical clock behind version IDs and modification
	// times; tests inject a fake one.
	Now func() time.Time
	// MaxObjectSize bounds one object (S3: 5 TiB).
	MaxObjectSize int64
	// MaxPartSize bounds one multipart part (S3: 5 GiB).
	MaxPartSize int64
	// MinPartSize is the least size of every part but the last (S3: 5 MiB).
	MinPartSize int64
	// MaxParts bounds part numbers (S3: 10000).
	MaxParts int
	// BucketCacheTTL is how long a bucket record read for an object
	// request is used again to find the bucket's incarnation (see
	// bucketCache); correctness never rests on it. 0 reads it every time.
	BucketCacheTTL time.Duration
	// SharedMetadata says other nodes serve the same metadata (a
	// cluster). Bucket changes are fenced in the metadata itself (see
	// fence.go), so nothing depends on it any more; it is kept so that
	// configurations that set it still build.
	SharedMetadata bool
	// Rand is the source of bucket, upload and data IDs and of the
	// incarnation nonce: crypto/rand's Reader, or a seeded one in a
	// simulation that must replay from its seed.
	Rand io.Reader
	// After makes the waits of a request that finds its bucket's fence
	// frozen (the back-off before it reads the fence again); nil: time's
	// timers. The cluster simulation makes each an event (clock.After).
	After clock.After
	// Records reaches the replicas of available buckets' records
	// (available.go); nil: the node makes strong buckets only.
	Records RecordReplicas
	// SitesLinked, when set, says whether the cluster is linked with
	// other sites: a bucket replicated to them is not deleted then
	// (sites.go).
	SitesLinked func(ctx context.Context) (bool, error)
	// SiteData opens data another site wrote, for the copies this site
	// keeps of replicated buckets' bodies (sitedata.go); KnownDrive says
	// whether a drive is this cluster's, which tells such data apart.
	SiteData   SiteDataSource
	KnownDrive func(id string) bool
	// Incarnation names this writer in its write intents (see gc.go).
	// Node should be the node's ID; a zero Nonce gets a random one in New,
	// so every Service is a new incarnation.
	Incarnation Incarnation
}

// DefaultConfig returns the S3 limits, 256 partitions (enough for a few
// hundred drives at a balanced spread) and 128 KiB inline objects (most
// small files stay out of the data store).
func DefaultConfig() Config {
	return Config{
		Partitions:    256,
		InlineMax:     128 << 10,
		Now:           time.Now,
		Rand:          rand.Reader,
		MaxObjectSize: 5 << 40,
		MaxPartSize:   5 << 30,
		MinPartSize:   5 << 20,
		MaxParts:      maxPartNumber,
		// A tenth of a second: nearly every request of a busy bucket hits
		// the cache.
		BucketCacheTTL: 100 * time.Millisecond,
	}
}

const maxPartNumber = 10000

var errConfig = errors.New("objects: invalid config")

// Validate reports the first rule cfg breaks.
func (c Config) Validate() error {
	switch {
	case c.Partitions < 1 || c.Partitions > 1<<20:
		return fmt.Errorf("%w: partitions %d not in 1..%d", errConfig, c.Partitions, 1<<20)
	case c.InlineMax < 0 || c.InlineMax > 16<<20:
		return fmt.Errorf("%w: inline max %d not in 0..16 MiB", errConfig, c.InlineMax)
	case c.Now == nil:
		return fmt.Errorf("%w: no clock", errConfig)
	case c.Rand == nil:
		return fmt.Errorf("%w: no random source", errConfig)
	case c.MaxObjectSize < 1:
		return fmt.Errorf("%w: max object size %d", errConfig, c.MaxObjectSize)
	case c.MaxPartSize < 1 || c.MaxPartSize > c.MaxObjectSize:
		return fmt.Errorf("%w: max part size %d", errConfig, c.MaxPartSize)
	case c.MinPartSize < 0 || c.MinPartSize > c.MaxPartSize:
		return fmt.Errorf("%w: min part size %d", errConfig, c.MinPartSize)
	case c.MaxParts < 1 || c.MaxParts > maxPartNumber:
		return fmt.Errorf("%w: max parts %d not in 1..%d", errConfig, c.MaxParts, maxPartNumber)
	}
	return nil
}
