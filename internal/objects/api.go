package objects

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/redoubt-io/redoubt/internal/blocks"
	"github.com/redoubt-io/redoubt/internal/checksum"
)

// API is what the S3 front end needs from the object layer. *Service
// implements it; front ends depend on this interface, never on storage.
type API interface {
	CreateBucket(ctx context.Context, name string) error
	// CreateBucketWith creates a bucket with the configuration cfg,
	// which is the bucket's for life (see Consistency).
	CreateBucketWith(ctx context.Context, name string, cfg BucketConfig) error
	HeadBucket(ctx context.Context, name string) (BucketInfo, error)
	DeleteBucket(ctx context.Context, name string) error
	ListBuckets(ctx context.Context) ([]BucketInfo, error)
	SetVersioning(ctx context.Context, bucket string, state Versioning) error

	// PutObject stores body as the new current version of key. size is
	// the exact body length (-1 if unknown). The body has been decoded and
	// authenticated by the front end; PutObject computes the MD5 ETag and
	// the checksums asked for in opts and rejects the write with
	// ErrBadDigest / ErrChecksumMismatch if an expected value differs.
	PutObject(ctx context.Context, bucket, key string, body io.Reader, size int64, opts PutOptions) (ObjectInfo, error)
	// GetObject returns the object's info and, unless opts.HeadOnly, a
	// reader of the requested range. Preconditions in opts are checked
	// against the version read, so the answer is about one version.
	GetObject(ctx context.Context, bucket, key string, opts GetOptions) (ObjectInfo, io.ReadCloser, error)
	DeleteObject(ctx context.Context, bucket, key string, opts DeleteOptions) (DeleteResult, error)
	CopyObject(ctx context.Context, src CopySource, dstBucket, dstKey string, opts PutOptions) (ObjectInfo, error)
	ListObjects(ctx context.Context, bucket string, opts ListOptions) (ListResult, error)
	ListObjectVersions(ctx context.Context, bucket string, opts ListVersionsOptions) (ListVersionsResult, error)

	CreateMultipartUpload(ctx context.Context, bucket, key string, opts PutOptions) (uploadID string, err error)
	UploadPart(ctx context.Context, bucket, key, uploadID string, part int, body io.Reader, size int64, opts PartOptions) (PartInfo, error)
	UploadPartCopy(ctx context.Context, src CopySource, bucket, key, uploadID string, part int) (PartInfo, error)
	CompleteMultipartUpload(ctx context.Context, bucket, key, uploadID string, parts []CompletePart, opts CompleteOptions) (ObjectInfo, error)
	AbortMultipartUpload(ctx context.Context, bucket, key, uploadID string) error
	ListParts(ctx context.Context, bucket, key, uploadID string, opts ListPartsOptions) (ListPartsResult, error)
	ListMultipartUploads(ctx context.Context, bucket string, opts ListUploadsOptions) (ListUploadsResult, error)
}

// Versioning is a bucket's versioning state.
type Versioning int

const (
	Unversioned Versioning = iota
	Enabled
	Suspended
)

type BucketInfo struct {
	Name       string
	Created    time.Time
	Versioning Versioning
	BucketConfig
}

// Consistency is what a bucket promises when the network splits its
// nodes, chosen when it is created and kept for its life. It cannot be
// changed later: a strong bucket's readers rely on every write having
// been ordered by one Raft group, which writes accepted apart on both
// sides of a partition never were, and an available bucket's concurrent
// versions have no single order to be put into after the fact
// (docs/architecture.md "Available buckets").
type Consistency uint8

const (
	// Strong: every operation is linearizable; a side of a partition
	// without a majority of a partition's replicas refuses (503).
	Strong Consistency = iota
	// Available: writes are accepted on every side of a partition and
	// merged after it heals, with nothing lost.
	Available
)

// ConsistencyHeader is the request header of CreateBucket that chooses
// the bucket's Consistency, and the response header of HeadBucket that
// shows it.
const ConsistencyHeader = "X-Redoubt-Consistency"

func (c Consistency) String() string {
	switch c {
	case Strong:
		return "strong"
	case Available:
		return "available"
	}
	return fmt.Sprintf("consistency(%d)", uint8(c))
}

// ParseConsistency reads a Consistency by its name; "" is Strong.
func ParseConsistency(s string) (Consistency, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "", "strong":
		return Strong, nil
	case "available":
		return Available, nil
	}
	return 0, fmt.Errorf("%w: consistency %q: want strong or available", ErrInvalidArgument, s)
}

// BucketConfig is what a bucket is created with. The zero value is a
// strong bucket.
type BucketConfig struct {
	Consistency Consistency
	// WriteCopies is how many nodes must hold an available bucket's
	// write durably before it is acknowledged, as far as that many are
	// reachable (never fewer than one); 0 means DefaultWriteCopies.
	// Strong buckets' writes wait for a majority and leave it 0.
	WriteCopies int
	// ConflictRetention, in an unversioned available bucket, is how long
	// the versions written concurrently with a key's current one are kept
	// before they are removed (ResolveOldConflicts); 0 keeps them until a
	// write or a delete resolves the conflict. Whole seconds.
	ConflictRetention time.Duration
	// Replicate, in an available bucket, replicates it to every site
	// this cluster is linked with (sites.go), both ways: its records are
	// kept apart from other buckets' (SitePartition), so that a site
	// compares and copies only what it shares, and its ID is the same on
	// every site.
	Replicate bool
}

// WriteCopiesOrDefault is WriteCopies, or DefaultWriteCopies when unset.
func (c BucketConfig) WriteCopiesOrDefault() int {
	if c.WriteCopies == 0 {
		return DefaultWriteCopies
	}
	return c.WriteCopies
}

// Checksums holds the additional S3 checksums of an object or part, base64
// encoded as S3 returns them; empty fields were not asked for.
type Checksums struct {
	CRC32     string
	CRC32C    string
	CRC64NVME string
	SHA1      string
	SHA256    string
	// Type is "FULL_OBJECT" or "COMPOSITE" for multipart objects.
	Type string
}

// Field returns the field of c that holds a's value, or nil for an
// algorithm Checksums has no field for.
func (c *Checksums) Field(a checksum.Algorithm) *string {
	switch a {
	case checksum.CRC32:
		return &c.CRC32
	case checksum.CRC32C:
		return &c.CRC32C
	case checksum.CRC64NVME:
		return &c.CRC64NVME
	case checksum.SHA1:
		return &c.SHA1
	case checksum.SHA256:
		return &c.SHA256
	}
	return nil
}

// ObjectInfo describes one version of an object.
type ObjectInfo struct {
	Bucket       string
	Key          string
	VersionID    string // "" when the bucket was never versioned; "null" for the null version
	IsLatest     bool
	DeleteMarker bool
	Size         int64
	ETag         string // quoted, as sent in the ETag header
	LastModified time.Time
	ContentType  string
	// Headers holds the stored standard headers (Content-Encoding,
	// Content-Disposition, Content-Language, Cache-Control, Expires) by
	// canonical name.
	Headers   map[string]string
	UserMeta  map[string]string // x-amz-meta-* without the prefix, lower-case names
	Checksums Checksums
	Parts     int // number of multipart parts, 0 for a single PUT
	// Copies is, for a write to an available bucket, on how many nodes
	// the version was durable when the write returned; 0 otherwise.
	Copies int
	// Range is set by GetObject when a range was served: the first byte
	// and the length of the returned body.
	RangeStart, RangeLength int64
}

// Preconditions are the HTTP conditional headers; zero values are unset.
type Preconditions struct {
	IfMatch           string
	IfNoneMatch       string
	IfModifiedSince   time.Time
	IfUnmodifiedSince time.Time
}

type PutOptions struct {
	ContentType string
	Headers     map[string]string
	UserMeta    map[string]string
	// ContentMD5 is the decoded Content-MD5 header, if sent.
	ContentMD5 []byte
	// Checksums holds expected checksum values (base64) sent by the
	// client; the algorithm in ChecksumAlgorithm is computed and stored
	// even when no value was sent.
	Checksums         Checksums
	ChecksumAlgorithm string // CRC32, CRC32C, CRC64NVME, SHA1, SHA256 or ""
	// Trailer, if set, is called once the body has reached EOF and
	// returns the checksum values the client sent as aws-chunked
	// trailers; they are verified like Checksums before the commit.
	Trailer func() Checksums
	// IfMatch / IfNoneMatch make the write conditional, atomically with
	// the commit: IfNoneMatch "*" creates only; IfMatch replaces only the
	// version with that ETag.
	IfMatch     string
	IfNoneMatch string
}

type GetOptions struct {
	VersionID string
	// Range, when Set, selects bytes; see ByteRange.
	Range Range
	// PartNumber selects one part of a multipart object (0 = whole).
	PartNumber int
	Cond       Preconditions
	HeadOnly   bool
}

// Range is a parsed HTTP byte range: Start..End inclusive, or the last
// Suffix bytes when Suffix > 0, or Start.. when End < 0.
type Range struct {
	Set    bool
	Start  int64
	End    int64
	Suffix int64
}

type DeleteOptions struct {
	VersionID string
	IfMatch   string
}

type DeleteResult struct {
	VersionID    string
	DeleteMarker bool
	// Copies: as ObjectInfo.Copies, for a delete in an available bucket
	// that wrote something.
	Copies int
}

type CopySource struct {
	Bucket, Key, VersionID string
	Cond                   Preconditions
	Range                  Range // UploadPartCopy only
	// ReplaceMetadata selects the REPLACE metadata directive.
	ReplaceMetadata bool
}

type ListOptions struct {
	Prefix, Delimiter string
	// Marker: keys after it (v1 marker, v2 start-after or decoded
	// continuation token, whichever is later).
	Marker  string
	MaxKeys int
}

type ListResult struct {
	Objects        []ObjectInfo
	CommonPrefixes []string
	IsTruncated    bool
	NextMarker     string // last key or prefix returned, when truncated
}

type ListVersionsOptions struct {
	Prefix, Delimiter          string
	KeyMarker, VersionIDMarker string
	MaxKeys                    int
}

type ListVersionsResult struct {
	Versions                           []ObjectInfo // including delete markers, newest first per key
	CommonPrefixes                     []string
	IsTruncated                        bool
	NextKeyMarker, NextVersionIDMarker string
}

type PartOptions struct {
	ContentMD5        []byte
	Checksums         Checksums
	ChecksumAlgorithm string
	Trailer           func() Checksums
}

type PartInfo struct {
	Number       int
	ETag         string
	Size         int64
	LastModified time.Time
	Checksums    Checksums
}

type CompletePart struct {
	Number    int
	ETag      string
	Checksums Checksums
}

type CompleteOptions struct {
	IfMatch, IfNoneMatch string
	// Checksums holds the whole-object checksum the client sent
	// (x-amz-checksum-*, base64, optionally with the "-N" part count of a
	// composite value) and the checksum type it names (x-amz-checksum-type);
	// each is checked against the upload's when set.
	Checksums Checksums
}

type ListPartsOptions struct {
	PartNumberMarker int
	MaxParts         int
}

type ListPartsResult struct {
	Parts                []PartInfo
	IsTruncated          bool
	NextPartNumberMarker int
	ChecksumAlgorithm    string
	Initiated            time.Time
}

type ListUploadsOptions struct {
	Prefix, Delimiter         string
	KeyMarker, UploadIDMarker string
	MaxUploads                int
}

type Upload struct {
	Key, UploadID string
	Initiated     time.Time
}

type ListUploadsResult struct {
	Uploads                           []Upload
	CommonPrefixes                    []string
	IsTruncated                       bool
	NextKeyMarker, NextUploadIDMarker string
}

// Errors returned by API methods. The S3 front end maps each one to its S3
// error code (named in the comment); any other error is InternalError, and
// an error wrapping meta.ErrUnavailable is ServiceUnavailable.
var (
	ErrNoSuchBucket        = errors.New("no such bucket")                      // NoSuchBucket
	ErrBucketExists        = errors.New("bucket already owned by you")         // BucketAlreadyOwnedByYou
	ErrBucketNotEmpty      = errors.New("bucket not empty")                    // BucketNotEmpty
	ErrInvalidBucketName   = errors.New("invalid bucket name")                 // InvalidBucketName
	ErrNoSuchKey           = errors.New("no such key")                         // NoSuchKey
	ErrNoSuchVersion       = errors.New("no such version")                     // NoSuchVersion
	ErrInvalidKey          = errors.New("invalid object key")                  // KeyTooLongError / InvalidArgument
	ErrMethodNotAllowed    = errors.New("method not allowed on delete marker") // MethodNotAllowed
	ErrPreconditionFailed  = errors.New("precondition failed")                 // PreconditionFailed (412)
	ErrNotModified         = errors.New("not modified")                        // 304
	ErrInvalidRange        = errors.New("invalid range")                       // InvalidRange (416)
	ErrBadDigest           = errors.New("content-md5 mismatch")                // BadDigest
	ErrChecksumMismatch    = errors.New("checksum mismatch")                   // BadDigest with checksum message
	ErrIncompleteBody      = errors.New("body shorter than content-length")    // IncompleteBody
	ErrEntityTooLarge      = errors.New("entity too large")                    // EntityTooLarge
	ErrNoSuchUpload        = errors.New("no such upload")                      // NoSuchUpload
	ErrInvalidPart         = errors.New("invalid part")                        // InvalidPart
	ErrInvalidPartOrder    = errors.New("invalid part order")                  // InvalidPartOrder
	ErrEntityTooSmall      = errors.New("part too small")                      // EntityTooSmall
	ErrConditionalConflict = errors.New("conditional request conflict")        // ConditionalRequestConflict (409)
	ErrInvalidArgument     = errors.New("invalid argument")                    // InvalidArgument
	ErrInvalidRequest      = errors.New("invalid request")                     // InvalidRequest
	ErrNotImplemented      = errors.New("not implemented")                     // NotImplemented (501)
	// ErrSlowDown: the node's data buffers stayed taken by other large
	// requests (blocks.Config.BufferBytes) for as long as a request may
	// wait for them. SDKs retry it with back-off.
	ErrSlowDown = blocks.ErrBusy // SlowDown (503)
)
