package e2e

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/redoubt-io/redoubt/internal/lincheck/s3load"
)

// sdkClient returns an aws-sdk-go-v2 S3 client for s, path style, with
// retries off so every failure shows. mods adjust the options.
func sdkClient(s *server, mods ...func(*s3.Options)) *s3.Client {
	opts := s3.Options{
		Region:           testRegion,
		Credentials:      credentials.NewStaticCredentialsProvider(testAccessKey, testSecretKey, ""),
		BaseEndpoint:     aws.String(s.Endpoint),
		UsePathStyle:     true,
		RetryMaxAttempts: 1,
		HTTPClient:       &http.Client{Timeout: 5 * time.Minute},
		// What config.LoadDefaultConfig resolves, so the client sends the
		// checksums a user's client sends (a bare s3.Options sends none).
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenSupported,
		ResponseChecksumValidation: aws.ResponseChecksumValidationWhenSupported,
	}
	for _, m := range mods {
		m(&opts)
	}
	return s3.New(opts)
}

// countMissingRequestIDs makes a client count, in n, the responses that
// came back without an x-amz-request-id header.
func countMissingRequestIDs(n *atomic.Int64) func(*s3.Options) {
	return func(o *s3.Options) {
		o.APIOptions = append(o.APIOptions, func(st *middleware.Stack) error {
			return st.Deserialize.Add(middleware.DeserializeMiddlewareFunc("e2eRequestID",
				func(ctx context.Context, in middleware.DeserializeInput, next middleware.DeserializeHandler) (middleware.DeserializeOutput, middleware.Metadata, error) {
					out, md, err := next.HandleDeserialize(ctx, in)
					if resp, ok := out.RawResponse.(*smithyhttp.Response); ok && resp != nil && resp.Header.Get("X-Amz-Request-Id") == "" {
						n.Add(1)
					}
					return out, md, err
				}), middleware.After)
		})
	}
}

// errCode and errStatus read a failed SDK call: its S3 error code ("" if
// it carries none) and its HTTP status (0).
var errCode, errStatus = s3load.ErrCode, s3load.ErrStatus

// wantErr fails t unless err is an S3 error with the given status and code
// (code "" accepts any code; HEAD responses carry none).
func wantErr(t testing.TB, what string, err error, status int, code string) {
	t.Helper()
	if err == nil {
		t.Errorf("%s: succeeded; want %d %s", what, status, code)
		return
	}
	if got := errStatus(err); got != status {
		t.Errorf("%s: status %d (%v); want %d %s", what, got, err, status, code)
		return
	}
	if code != "" && errCode(err) != code {
		t.Errorf("%s: code %q (%v); want %q", what, errCode(err), err, code)
	}
}

// newBucket creates a fresh bucket with a name unique in the run.
func newBucket(t testing.TB, c *s3.Client, prefix string) string {
	t.Helper()
	name := fmt.Sprintf("%s-%d", prefix, time.Now().UnixNano())
	if _, err := c.CreateBucket(context.Background(), &s3.CreateBucketInput{Bucket: aws.String(name)}); err != nil {
		t.Fatalf("CreateBucket %s: %v", name, err)
	}
	return name
}

// payload returns n deterministic pseudo-random bytes derived from seed.
func payload(seed uint64, n int) []byte {
	b := make([]byte, n)
	fillPayload(seed, 0, b)
	return b
}

// fillPayload writes the bytes at offset off of the stream derived from seed
// into b. Offsets must be multiples of 8 for consecutive calls to agree with
// one big call; genReader keeps them so.
func fillPayload(seed uint64, off int64, b []byte) {
	// Every 8-byte word is a pure function of (seed, word index), so any
	// range of the stream can be produced without producing what precedes it.
	w := uint64(off / 8)
	skip := int(off % 8)
	for i := 0; i < len(b); w++ {
		x := mix(seed ^ (w * 0x9e3779b97f4a7c15))
		for j := skip; j < 8 && i < len(b); j++ {
			b[i] = byte(x >> (8 * j))
			i++
		}
		skip = 0
	}
}

func mix(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

// genReader streams size bytes of the payload for seed without holding them.
type genReader struct {
	seed uint64
	off  int64
	size int64
}

func newGenReader(seed uint64, size int64) *genReader { return &genReader{seed: seed, size: size} }

func (g *genReader) Read(p []byte) (int, error) {
	if g.off >= g.size {
		return 0, io.EOF
	}
	if rem := g.size - g.off; int64(len(p)) > rem {
		p = p[:rem]
	}
	fillPayload(g.seed, g.off, p)
	g.off += int64(len(p))
	return len(p), nil
}

// Seek makes genReader an io.ReadSeeker so SDKs can compute checksums and rewind.
func (g *genReader) Seek(offset int64, whence int) (int64, error) {
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		offset += g.off
	case io.SeekEnd:
		offset += g.size
	}
	if offset < 0 {
		return 0, errors.New("negative offset")
	}
	g.off = offset
	return offset, nil
}

// compareStream reads r to its end and reports the first offset at which it
// differs from the payload for seed of the given size.
func compareStream(r io.Reader, seed uint64, size int64) error {
	buf := make([]byte, 1<<20)
	want := make([]byte, 1<<20)
	var off int64
	for {
		n, err := io.ReadFull(r, buf)
		if n > 0 {
			if off+int64(n) > size {
				return fmt.Errorf("stream longer than %d bytes", size)
			}
			fillPayload(seed, off, want[:n])
			for i := range n {
				if buf[i] != want[i] {
					return fmt.Errorf("byte %d differs: got %#x want %#x", off+int64(i), buf[i], want[i])
				}
			}
			off += int64(n)
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			break
		}
		if err != nil {
			return fmt.Errorf("after %d bytes: %w", off, err)
		}
	}
	if off != size {
		return fmt.Errorf("stream has %d bytes, want %d", off, size)
	}
	return nil
}

func md5hex(b []byte) string {
	s := md5.Sum(b)
	return hex.EncodeToString(s[:])
}

// getBytes downloads bucket/key in full.
func getBytes(ctx context.Context, c *s3.Client, bucket, key string) ([]byte, error) {
	out, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		return nil, err
	}
	defer out.Body.Close()
	return io.ReadAll(out.Body)
}

// newRand returns a seeded generator and logs the seed so a failure can be replayed.
func newRand(t testing.TB, seed uint64) *rand.Rand {
	t.Logf("seed %d", seed)
	return rand.New(rand.NewPCG(seed, seed^0x5eed))
}

// statusDoc fetches /status and decodes it into a generic document.
func statusDoc(t testing.TB, s *server) map[string]any {
	t.Helper()
	raw, err := s.status(context.Background())
	if err != nil {
		t.Fatalf("GET /status: %v", err)
	}
	var doc map[string]any
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatalf("GET /status: not JSON: %v\n%s", err, raw)
	}
	return doc
}

// statusDrives returns the drive entries of /status.
func statusDrives(doc map[string]any) []map[string]any {
	list, _ := doc["drives"].([]any)
	var out []map[string]any
	for _, e := range list {
		if m, ok := e.(map[string]any); ok {
			out = append(out, m)
		}
	}
	return out
}

// driveEntry returns the /status entry of the drive at path.
func driveEntry(doc map[string]any, path string) map[string]any {
	for _, d := range statusDrives(doc) {
		if p, _ := d["path"].(string); p == path || strings.TrimSuffix(p, "/") == path {
			return d
		}
	}
	return nil
}

// corruptCount sums every numeric field whose name mentions "corrupt",
// anywhere in the document.
func corruptCount(v any) float64 {
	var sum float64
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			if f, ok := e.(float64); ok && strings.Contains(strings.ToLower(k), "corrupt") {
				sum += f
			} else {
				sum += corruptCount(e)
			}
		}
	case []any:
		for _, e := range x {
			sum += corruptCount(e)
		}
	}
	return sum
}

// pollUntil calls cond until it returns true or the deadline passes.
func pollUntil(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(50 * time.Millisecond) // poll interval, not a wait for a condition
	}
}

// startLogged starts a server like startServer and, if the test fails,
// logs the tail of what the server printed.
func startLogged(t *testing.T, opts serverOptions) *server {
	t.Helper()
	s := startServer(t, opts)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("server output (tail):\n%s", tail(s.output(), 6000))
		}
	})
	return s
}
