package s3api_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/minio/minio-go/v7"
	miniocreds "github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/redoubt-io/redoubt/internal/s3api"
	"github.com/redoubt-io/redoubt/internal/s3api/sigv4"
	"github.com/redoubt-io/redoubt/internal/testlog"
)

// The idle-body timeout: a client that stops sending mid-body gets
// RequestTimeout, nothing is stored, and its connection and handler are
// released; a slow but steady body is never cut.

// watchedServer is a SigV4 server whose connections and handlers report
// when they end, so tests wait on those events rather than on time.
type watchedServer struct {
	*httptest.Server
	// payloadModes receives the x-amz-content-sha256 of every request
	// with a body, so a test can check it sent what it claims to.
	payloadModes chan string
	// handlerDone receives when a request with a body has been answered
	// and its handler returned.
	handlerDone chan time.Time
	// connClosed receives when a connection is closed.
	connClosed chan struct{}
}

func newWatchedServer(t *testing.T, idle time.Duration) *watchedServer {
	t.Helper()
	v, err := sigv4.New(sigv4.Config{Region: "us-east-1", Creds: sigv4.StaticCredentials{testAccess: testSecret}})
	if err != nil {
		t.Fatal(err)
	}
	cfg := s3api.DefaultConfig()
	cfg.BodyIdleTimeout = idle
	srv, err := s3api.New(cfg, newMemAPI(), s3api.SigV4(v), slog.New(slog.NewTextHandler(testlog.Writer(t), nil)))
	if err != nil {
		t.Fatal(err)
	}
	ws := &watchedServer{payloadModes: make(chan string, 64), handlerDone: make(chan time.Time, 64), connClosed: make(chan struct{}, 64)}
	ws.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		withBody := r.ContentLength != 0
		if withBody {
			ws.payloadModes <- r.Header.Get("X-Amz-Content-Sha256")
		}
		srv.ServeHTTP(w, r)
		if withBody {
			ws.handlerDone <- time.Now()
		}
	}))
	ws.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateClosed || st == http.StateHijacked {
			ws.connClosed <- struct{}{}
		}
	}
	ws.Start()
	t.Cleanup(ws.Close)
	return ws
}

// within waits for one value from ch, failing the test after d.
func within[T any](t *testing.T, ch <-chan T, d time.Duration, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(d):
		t.Fatalf("no %s within %v", what, d)
		var zero T
		return zero
	}
}

// stallingBody yields head, then blocks until released, as a client whose
// source dried up. stalled is closed when it starts blocking.
type stallingBody struct {
	head     *bytes.Reader
	stalled  chan struct{}
	release  chan struct{}
	once     sync.Once
	unblockd sync.Once
	at       time.Time
}

// unblock makes the pending and later reads fail.
func (b *stallingBody) unblock() { b.unblockd.Do(func() { close(b.release) }) }

func newStallingBody(t *testing.T, head []byte) *stallingBody {
	b := &stallingBody{head: bytes.NewReader(head), stalled: make(chan struct{}), release: make(chan struct{})}
	// The client's writer goroutine is parked in Read until released.
	t.Cleanup(b.unblock)
	return b
}

func (b *stallingBody) Read(p []byte) (int, error) {
	if b.head.Len() > 0 {
		return b.head.Read(p)
	}
	b.once.Do(func() { b.at = time.Now(); close(b.stalled) })
	select {
	case <-b.release:
		return 0, errors.New("released")
	case <-time.After(answerWithin):
		// The server never answered: give up, so that the client's
		// writer (which a cancelled request waits for) lets go too.
		return 0, errors.New("gave up waiting for an answer")
	}
}

// checkReleased waits for the handler and the connection of a stalled
// request to end, and checks that the handler waited out the timeout
// rather than giving up early.
func (ws *watchedServer) checkReleased(t *testing.T, body *stallingBody, idle time.Duration) {
	t.Helper()
	done := within(t, ws.handlerDone, 10*time.Second, "handler return after the stall")
	if waited := done.Sub(body.at); waited < idle {
		t.Errorf("the request ended %v after the body stalled, before the %v timeout", waited, idle)
	}
	within(t, ws.connClosed, 10*time.Second, "closed connection after the stall")
}

func (ws *watchedServer) sdk() *s3.Client {
	return s3.New(s3.Options{
		Region:           "us-east-1",
		BaseEndpoint:     aws.String(ws.URL),
		UsePathStyle:     true,
		Credentials:      credentials.NewStaticCredentialsProvider(testAccess, testSecret, ""),
		RetryMaxAttempts: 1,
	})
}

func (ws *watchedServer) mustCreateBucket(t *testing.T, name string) {
	t.Helper()
	if _, err := ws.sdk().CreateBucket(context.Background(), &s3.CreateBucketInput{Bucket: aws.String(name)}); err != nil {
		t.Fatal(err)
	}
}

func (ws *watchedServer) wantNoObject(t *testing.T, bucket, key string) {
	t.Helper()
	_, err := ws.sdk().HeadObject(context.Background(), &s3.HeadObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err == nil {
		t.Errorf("%s/%s exists after its upload stalled", bucket, key)
	}
}

// answerWithin bounds how long a test waits for the server to answer.
const answerWithin = 10 * time.Second

// signedPut is a PUT of a body whose SHA-256 is signed, sent by net/http
// with the given reader as its body.
func signedPut(t *testing.T, url string, full []byte, body io.Reader) *http.Request {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), answerWithin)
	t.Cleanup(cancel)
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, url, body)
	if err != nil {
		t.Fatal(err)
	}
	req.ContentLength = int64(len(full))
	sum := sha256.Sum256(full)
	hash := hex.EncodeToString(sum[:])
	req.Header.Set("X-Amz-Content-Sha256", hash)
	creds := aws.Credentials{AccessKeyID: testAccess, SecretAccessKey: testSecret}
	if err := v4.NewSigner().SignHTTP(context.Background(), creds, req, hash, "s3", "us-east-1", time.Now()); err != nil {
		t.Fatal(err)
	}
	return req
}

func TestStalledPutTimesOut(t *testing.T) {
	const idle = 300 * time.Millisecond
	ws := newWatchedServer(t, idle)
	ws.mustCreateBucket(t, "bkt")
	full := bytes.Repeat([]byte("redoubt "), 64<<10) // 512 KiB, past the inline size
	body := newStallingBody(t, full[:200<<10])
	req := signedPut(t, ws.URL+"/bkt/stalled", full, body)
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		t.Fatalf("the client could not read the answer to its stalled PUT: %v", err)
	}
	if mode := within(t, ws.payloadModes, time.Second, "request"); len(mode) != 64 {
		// A hex digest: the plain signed mode.
		t.Fatalf("sent x-amz-content-sha256 %q, want a digest", mode)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 400 || !strings.Contains(string(b), "<Code>RequestTimeout</Code>") {
		t.Fatalf("stalled PUT answered %d %s; want 400 RequestTimeout", resp.StatusCode, b)
	}
	ws.checkReleased(t, body, idle)
	ws.wantNoObject(t, "bkt", "stalled")
}

// TestStalledStreamingSignedPutTimesOut stalls an aws-chunked upload with
// a signature per chunk (STREAMING-AWS4-HMAC-SHA256-PAYLOAD), which
// minio-go sends over plain HTTP.
func TestStalledStreamingSignedPutTimesOut(t *testing.T) {
	const idle = 300 * time.Millisecond
	ws := newWatchedServer(t, idle)
	ws.mustCreateBucket(t, "bkt")
	mc, err := minio.New(strings.TrimPrefix(ws.URL, "http://"), &minio.Options{
		Creds: miniocreds.NewStaticV4(testAccess, testSecret, ""), Region: "us-east-1", MaxRetries: 1,
	})
	if err != nil {
		t.Fatal(err)
	}
	body := newStallingBody(t, bytes.Repeat([]byte("x"), 200<<10))
	errc := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), answerWithin)
		defer cancel()
		_, err := mc.PutObject(ctx, "bkt", "stalled", body, 1<<20,
			minio.PutObjectOptions{DisableMultipart: true, SendContentMd5: false})
		errc <- err
	}()
	if mode := within(t, ws.payloadModes, 10*time.Second, "request"); mode != "STREAMING-AWS4-HMAC-SHA256-PAYLOAD" {
		t.Fatalf("minio-go sent x-amz-content-sha256 %q, want STREAMING-AWS4-HMAC-SHA256-PAYLOAD", mode)
	}
	err = within(t, errc, 2*answerWithin, "answer to the stalled PUT")
	if code := minio.ToErrorResponse(err).Code; code != "RequestTimeout" {
		t.Fatalf("stalled streaming PUT: %v (code %q); want RequestTimeout", err, code)
	}
	ws.checkReleased(t, body, idle)
	ws.wantNoObject(t, "bkt", "stalled")
}

// TestStalledUploadPartTimesOut stalls an UploadPart framed as current
// SDKs frame it: aws-chunked with a CRC32 trailer
// (STREAMING-UNSIGNED-PAYLOAD-TRAILER), the headers signed. The SDKs send
// that framing only over TLS and, given a body that stalls, report their
// own write error rather than the answer, so the request is made here.
func TestStalledUploadPartTimesOut(t *testing.T) {
	const idle = 300 * time.Millisecond
	ws := newWatchedServer(t, idle)
	ws.mustCreateBucket(t, "bkt")
	ctx := context.Background()
	c := ws.sdk()
	up, err := c.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: aws.String("bkt"), Key: aws.String("big")})
	if err != nil {
		t.Fatal(err)
	}
	const size = 5 << 20
	// Two whole chunks of 64 KiB, then the stall.
	var framed bytes.Buffer
	for range 2 {
		fmt.Fprintf(&framed, "%x\r\n%s\r\n", 64<<10, bytes.Repeat([]byte("p"), 64<<10))
	}
	body := newStallingBody(t, framed.Bytes())
	rctx, cancel := context.WithTimeout(ctx, answerWithin)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, http.MethodPut, fmt.Sprintf("%s/bkt/big?partNumber=1&uploadId=%s", ws.URL, *up.UploadId), body)
	if err != nil {
		t.Fatal(err)
	}
	const mode = "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
	// The framed length of size bytes in 64 KiB chunks and the trailer.
	chunks := size / (64 << 10)
	req.ContentLength = int64(chunks*(len(fmt.Sprintf("%x\r\n\r\n", 64<<10))+64<<10) + len("0\r\nx-amz-checksum-crc32:AAAAAA==\r\n\r\n"))
	req.Header.Set("X-Amz-Content-Sha256", mode)
	req.Header.Set("X-Amz-Decoded-Content-Length", fmt.Sprint(size))
	req.Header.Set("X-Amz-Trailer", "x-amz-checksum-crc32")
	req.Header.Set("Content-Encoding", "aws-chunked")
	creds := aws.Credentials{AccessKeyID: testAccess, SecretAccessKey: testSecret}
	if err := v4.NewSigner().SignHTTP(ctx, creds, req, mode, "s3", "us-east-1", time.Now()); err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		t.Fatalf("the client could not read the answer to its stalled UploadPart: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 400 || !strings.Contains(string(b), "<Code>RequestTimeout</Code>") {
		t.Fatalf("stalled UploadPart answered %d %s; want 400 RequestTimeout", resp.StatusCode, b)
	}
	if got := within(t, ws.payloadModes, time.Second, "request"); got != mode {
		t.Fatalf("sent x-amz-content-sha256 %q, want %s", got, mode)
	}
	ws.checkReleased(t, body, idle)
	parts, err := c.ListParts(ctx, &s3.ListPartsInput{Bucket: aws.String("bkt"), Key: aws.String("big"), UploadId: up.UploadId})
	if err != nil {
		t.Fatal(err)
	}
	if len(parts.Parts) != 0 {
		t.Errorf("the stalled part was kept: %+v", parts.Parts)
	}
}

// steadyBody sends size bytes in pieces, one every gap.
type steadyBody struct {
	left  int
	piece int
	gap   time.Duration
	tick  *time.Ticker
}

func (b *steadyBody) Read(p []byte) (int, error) {
	if b.left == 0 {
		return 0, io.EOF
	}
	if b.tick == nil {
		b.tick = time.NewTicker(b.gap)
	}
	<-b.tick.C
	n := min(len(p), b.piece, b.left)
	for i := range p[:n] {
		p[i] = 's'
	}
	b.left -= n
	return n, nil
}

// TestSlowSteadyPutIsNotCut sends a body that takes several idle timeouts
// in all but never pauses for one.
func TestSlowSteadyPutIsNotCut(t *testing.T) {
	const idle = 500 * time.Millisecond
	ws := newWatchedServer(t, idle)
	ws.mustCreateBucket(t, "bkt")
	const pieces, piece = 40, 4 << 10
	full := bytes.Repeat([]byte("s"), pieces*piece)
	body := &steadyBody{left: len(full), piece: piece, gap: idle / 10}
	defer func() { body.tick.Stop() }()
	start := time.Now()
	resp, err := http.DefaultClient.Do(signedPut(t, ws.URL+"/bkt/steady", full, body))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	took := time.Since(start)
	if resp.StatusCode != 200 {
		t.Fatalf("steady PUT over %v (idle timeout %v) answered %d %s", took, idle, resp.StatusCode, b)
	}
	if took < 3*idle {
		t.Fatalf("the steady body took %v, not several idle timeouts: the test proves nothing", took)
	}
	got, err := getBytes(ws.sdk(), "bkt", "steady")
	if err != nil || !bytes.Equal(got, full) {
		t.Fatalf("steady object read back %d bytes, err %v; want %d", len(got), err, len(full))
	}
}

func getBytes(c *s3.Client, bucket, key string) ([]byte, error) {
	out, err := c.GetObject(context.Background(), &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		return nil, err
	}
	defer out.Body.Close()
	return io.ReadAll(out.Body)
}

func TestBodyIdleTimeoutValidate(t *testing.T) {
	cfg := s3api.DefaultConfig()
	cfg.BodyIdleTimeout = -time.Second
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "body idle timeout") {
		t.Errorf("negative timeout: %v", err)
	}
}
