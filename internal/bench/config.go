package bench

import (
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"time"
)

// Op is the workload a run drives.
type Op string

const (
	// OpPut writes new objects, each under a fresh key.
	OpPut Op = "put"
	// OpGet reads preloaded objects whole and checks their length.
	OpGet Op = "get"
	// OpList lists pages of a preloaded bucket from random start points.
	OpList Op = "list"
	// OpMixed draws each request from Mix.
	OpMixed Op = "mixed"
)

// ParseOp accepts put, get, list or mixed.
func ParseOp(s string) (Op, error) {
	switch op := Op(s); op {
	case OpPut, OpGet, OpList, OpMixed:
		return op, nil
	}
	return "", fmt.Errorf("%w: unknown op %q (want put, get, list or mixed)", ErrConfig, s)
}

// ChecksumMode selects when the SDK computes request checksums and
// validates response checksums; the names are the SDK's.
type ChecksumMode string

const (
	// ChecksumWhenSupported is the SDK's default: a CRC32 on every PUT (as a
	// header over HTTP, as an aws-chunked trailer over HTTPS) and validation
	// of checksums returned on GET. It is what current SDKs and CLIs send.
	ChecksumWhenSupported ChecksumMode = "when_supported"
	// ChecksumWhenRequired computes checksums only for operations that
	// require one (DeleteObjects), as older clients do.
	ChecksumWhenRequired ChecksumMode = "when_required"
)

// Mix gives the share of each request kind in an OpMixed run, in percent of
// requests. The shares must sum to 100.
type Mix struct {
	Get  int
	Put  int
	List int
	// Head issues HeadObject on a preloaded key and checks the length.
	Head int
}

// ErrConfig is wrapped by every error Validate returns.
var ErrConfig = errors.New("invalid bench config")

// Clients that can send the timed requests; see Config.Client.
const (
	ClientSDK  = "sdk"
	ClientHTTP = "http"
)

// Config describes one run. Start from DefaultConfig.
type Config struct {
	// Endpoint is the S3 endpoint URL, e.g. http://127.0.0.1:9000.
	// Requests use path-style addressing.
	Endpoint string
	// AccessKey and SecretKey sign requests (SigV4). Both empty sends
	// anonymous requests.
	AccessKey string
	SecretKey string
	// Region is signed into every request; servers reject a mismatch.
	Region string

	// Bucket to use. Empty makes a fresh bucket named redoubt-bench-<run>.
	// A named bucket is created if missing. Either way the run writes only
	// under the key prefix bench/<run>/.
	Bucket string
	// Keep leaves the objects (and a bucket the run created) in place.
	// Otherwise they are deleted after the run, even if it is cancelled.
	Keep bool

	Op Op
	// ObjectSize is the size of each object written or preloaded.
	ObjectSize int64
	// Concurrency is the number of requests in flight.
	Concurrency int
	// Duration is the timed phase's length. Requests in flight when it
	// ends complete and count; the reported elapsed time includes them.
	Duration time.Duration
	// Count, when positive, also ends the timed phase once that many
	// requests were sent (failed ones included): a put run with Count N
	// writes N objects unless some fail, as a load of a fixed size needs.
	Count int64
	// Objects is how many objects OpGet, OpList and OpMixed preload
	// (untimed). Zero picks a default: 10000 for list; for get and mixed
	// enough for 1 GiB, at least Concurrency and at most 1000.
	Objects int
	// Mix is used by OpMixed. The default is 45% GET, 30% PUT, 15% LIST
	// and 10% HEAD: read-mostly, as object stores see in practice, with
	// enough writes and listings to contend with the reads. Mixed-mode PUTs
	// overwrite preloaded keys with same-sized bodies, so the data set stays
	// the preloaded one however long the run.
	Mix Mix
	// ListPageSize is MaxKeys for ListObjectsV2.
	ListPageSize int

	// Checksum chooses the SDK's checksum behaviour; see ChecksumMode.
	Checksum ChecksumMode
	// Client is what sends the timed GET, HEAD and PUT requests: "sdk"
	// (aws-sdk-go-v2, what applications use) or "http" (plain signed HTTP
	// requests, several times cheaper per request, so that on a small
	// machine the generator takes less of the CPU from the server it
	// measures; it sends no additional checksums). Listing and cleanup
	// always use the SDK.
	Client string
	// UnsignedPayload sends UNSIGNED-PAYLOAD instead of a SHA-256 of each
	// body over plain HTTP, saving the client a hash per byte. Servers that
	// insist on signed payloads reject it. Over HTTPS the SDK already does
	// this (with a checksum trailer) whatever this says.
	UnsignedPayload bool
	// Insecure skips TLS certificate verification (self-signed endpoints).
	Insecure bool
	// RequestTimeout bounds each request, so a hung server cannot stall
	// the run; a timed-out request counts as an error.
	RequestTimeout time.Duration

	// ProgressInterval is how often the progress callback is called.
	ProgressInterval time.Duration
	// ServerPIDs, when set, are the local processes serving Endpoint: the
	// CPU time they use during the timed phase is reported
	// (Result.ServerCPU), a figure that the machine's other load moves far
	// less than a rate does. Linux only (it reads /proc).
	ServerPIDs []int

	// Seed drives key choice and the random body block. Zero picks one
	// at random; the seed used is in Result.
	Seed uint64

	Logger *slog.Logger
}

// DefaultConfig returns a 4 KiB PUT run of 10 s at concurrency 16 against a
// local endpoint.
func DefaultConfig() Config {
	return Config{
		Endpoint:    "http://127.0.0.1:9000",
		Region:      "us-east-1",
		Op:          OpPut,
		ObjectSize:  4 << 10,
		Concurrency: 16,
		Duration:    10 * time.Second,
		Mix:         Mix{Get: 45, Put: 30, List: 15, Head: 10},
		// S3's maximum page; one request per 1000 keys is what listing
		// clients do.
		ListPageSize: 1000,
		// The SDK default, so the server sees what real clients send.
		Checksum: ChecksumWhenSupported,
		Client:   ClientSDK,
		// Long enough for a 5 GiB PUT on a slow link, short enough that a
		// hung connection does not hold the run forever.
		RequestTimeout: 5 * time.Minute,
		// A few updates per second reads as live without flooding a log.
		ProgressInterval: 250 * time.Millisecond,
		Logger:           slog.New(slog.DiscardHandler),
	}
}

// Validate checks the config, including rules across fields.
func (c Config) Validate() error {
	u, err := url.Parse(c.Endpoint)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%w: endpoint %q is not an http(s) URL", ErrConfig, c.Endpoint)
	}
	if c.Client != ClientSDK && c.Client != ClientHTTP {
		return fmt.Errorf("%w: client %q: want %s or %s", ErrConfig, c.Client, ClientSDK, ClientHTTP)
	}
	if c.Client == ClientHTTP && c.AccessKey == "" {
		return fmt.Errorf("%w: the http client signs every request and needs keys", ErrConfig)
	}
	if (c.AccessKey == "") != (c.SecretKey == "") {
		return fmt.Errorf("%w: access key and secret key must be given together", ErrConfig)
	}
	if c.Region == "" {
		return fmt.Errorf("%w: region is empty", ErrConfig)
	}
	if _, err := ParseOp(string(c.Op)); err != nil {
		return err
	}
	if c.ObjectSize < 0 || c.ObjectSize > maxSize {
		return fmt.Errorf("%w: object size %d out of range", ErrConfig, c.ObjectSize)
	}
	if c.ObjectSize == 0 && c.Op != OpList {
		return fmt.Errorf("%w: object size 0 is only allowed for list", ErrConfig)
	}
	if c.Concurrency < 1 || c.Concurrency > 100000 {
		return fmt.Errorf("%w: concurrency %d out of range 1..100000", ErrConfig, c.Concurrency)
	}
	if c.Duration <= 0 {
		return fmt.Errorf("%w: duration must be positive", ErrConfig)
	}
	if c.Count < 0 {
		return fmt.Errorf("%w: count %d is negative", ErrConfig, c.Count)
	}
	if c.Objects < 0 || c.Objects > 10_000_000 {
		return fmt.Errorf("%w: objects %d out of range 0..10000000", ErrConfig, c.Objects)
	}
	if c.Op == OpMixed {
		m := c.Mix
		if m.Get < 0 || m.Put < 0 || m.List < 0 || m.Head < 0 || m.Get+m.Put+m.List+m.Head != 100 {
			return fmt.Errorf("%w: mix %+v must be non-negative and sum to 100", ErrConfig, m)
		}
	}
	if c.ListPageSize < 1 || c.ListPageSize > 1000 {
		return fmt.Errorf("%w: list page size %d out of range 1..1000", ErrConfig, c.ListPageSize)
	}
	if c.Checksum != ChecksumWhenSupported && c.Checksum != ChecksumWhenRequired {
		return fmt.Errorf("%w: checksum mode %q (want when_supported or when_required)", ErrConfig, c.Checksum)
	}
	if c.RequestTimeout <= 0 || c.ProgressInterval <= 0 {
		return fmt.Errorf("%w: request timeout and progress interval must be positive", ErrConfig)
	}
	if c.Logger == nil {
		return fmt.Errorf("%w: logger is nil", ErrConfig)
	}
	return nil
}

// objectsToPreload resolves the Objects default.
func (c Config) objectsToPreload() int {
	switch {
	case c.Op == OpPut:
		return 0
	case c.Objects > 0:
		return c.Objects
	case c.Op == OpList:
		return 10000
	}
	n := int64(1000)
	if c.ObjectSize > 0 {
		n = min(n, (1<<30)/c.ObjectSize)
	}
	return int(max(n, int64(c.Concurrency), 1))
}
