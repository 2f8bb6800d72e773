package s3api

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"
)

// Config configures a Server.
type Config struct {
	// Region is the region the server answers for: GetBucketLocation
	// returns it and CreateBucket accepts it as a LocationConstraint.
	Region string
	// Domains enable virtual-host addressing: a Host of
	// "bucket.DOMAIN[:port]" names the bucket; any other Host is path style.
	// Empty means path style only.
	Domains []string
	// MaxHeaderBytes bounds the total size of the request line's URL and
	// headers. Requests above it get RequestHeaderSectionTooLarge (400). The
	// http.Server in front must allow at least this much (its own limit
	// answers with a bare 431 that clients cannot parse).
	MaxHeaderBytes int
	// MaxXMLBodyBytes bounds request bodies that are parsed as XML
	// (Delete, CompleteMultipartUpload, CreateBucketConfiguration,
	// VersioningConfiguration). 1 MiB holds a 1000-key Delete with long keys
	// and a 10000-part completion; larger bodies are refused before parsing.
	MaxXMLBodyBytes int64
	// MaxPutSize bounds a single PutObject or UploadPart body; S3 uses 5 GiB.
	MaxPutSize int64
	// MaxUserMetadataBytes bounds the x-amz-meta-* headers (names and
	// values); S3 uses 2 KiB.
	MaxUserMetadataBytes int
	// BodyIdleTimeout ends a request whose body sends nothing for this
	// long with RequestTimeout (400) and closes its connection, so that a
	// client that stalls mid-upload does not hold a connection and a
	// goroutine forever. It bounds the silence between bytes, not the
	// length of an upload: a slow but steady body is never cut. 0
	// disables it.
	BodyIdleTimeout time.Duration
	// RetryAfterSeconds is sent with ServiceUnavailable so that clients
	// back off while a partition regains its quorum.
	RetryAfterSeconds int
	// RequestID returns a fresh request ID; nil means an ID made of a random
	// per-server prefix and a counter, which is unique and cheap.
	RequestID func() string
}

// DefaultConfig returns the S3 limits for region us-east-1, path style.
func DefaultConfig() Config {
	return Config{
		Region:               "us-east-1",
		MaxHeaderBytes:       16 << 10, // S3 accepts about 8 KiB of headers; presigned URLs need room
		MaxXMLBodyBytes:      1 << 20,
		MaxPutSize:           5 << 30,
		MaxUserMetadataBytes: 2 << 10,
		RetryAfterSeconds:    1,
		// S3 answers RequestTimeout after about 20 s without data; a
		// little more leaves room for a client that pauses between parts
		// of its own work.
		BodyIdleTimeout: 30 * time.Second,
	}
}

// Validate reports the first invalid field.
func (c Config) Validate() error {
	var errs []error
	if c.Region == "" {
		errs = append(errs, errors.New("region is empty"))
	}
	for _, d := range c.Domains {
		if d == "" || strings.ContainsAny(d, "/: ") || strings.HasPrefix(d, ".") {
			errs = append(errs, fmt.Errorf("invalid domain %q", d))
		}
	}
	if c.MaxHeaderBytes < 4<<10 {
		errs = append(errs, fmt.Errorf("max header bytes %d below 4 KiB", c.MaxHeaderBytes))
	}
	if c.MaxXMLBodyBytes < 64<<10 {
		errs = append(errs, fmt.Errorf("max xml body bytes %d below 64 KiB", c.MaxXMLBodyBytes))
	}
	if c.MaxPutSize <= 0 {
		errs = append(errs, fmt.Errorf("max put size %d not positive", c.MaxPutSize))
	}
	if c.MaxUserMetadataBytes <= 0 {
		errs = append(errs, fmt.Errorf("max user metadata bytes %d not positive", c.MaxUserMetadataBytes))
	}
	if c.BodyIdleTimeout < 0 {
		errs = append(errs, fmt.Errorf("body idle timeout %v negative", c.BodyIdleTimeout))
	}
	if c.RetryAfterSeconds < 0 {
		errs = append(errs, fmt.Errorf("retry-after %d negative", c.RetryAfterSeconds))
	}
	if len(errs) > 0 {
		return fmt.Errorf("s3api config: %w", errors.Join(errs...))
	}
	return nil
}

// counterIDs returns a RequestID generator: 16 upper-case hex digits, a
// random 32-bit prefix then a 32-bit counter.
func counterIDs() func() string {
	var prefix [4]byte
	_, _ = rand.Read(prefix[:])
	var n atomic.Uint32
	p := strings.ToUpper(hex.EncodeToString(prefix[:]))
	return func() string {
		v := n.Add(1)
		var b [8]byte
		const digits = "0123456789ABCDEF"
		for i := 7; i >= 0; i-- {
			b[i] = digits[v&0xf]
			v >>= 4
		}
		return p + string(b[:])
	}
}
