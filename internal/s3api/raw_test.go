package s3api_test

import (
	"bufio"
	"bytes"
	"fmt"
	"github.com/redoubt-io/redoubt/internal/testlog"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redoubt-io/redoubt/internal/meta"
	"github.com/redoubt-io/redoubt/internal/objects"
	"github.com/redoubt-io/redoubt/internal/s3api"
	"github.com/redoubt-io/redoubt/internal/store"
)

// fakeAuth accepts any request with an Authorization header and passes
// the body through; it lets tests send hand-made requests.
type fakeAuth struct{}

type fakePrincipal struct{}

func (fakeAuth) Authenticate(r *http.Request) (s3api.Principal, error) {
	if r.Header.Get("Authorization") == "" {
		return nil, &s3api.Error{Code: "AccessDenied", Message: "Access Denied", Status: 403}
	}
	return fakePrincipal{}, nil
}

func (fakePrincipal) AccessKey() string                       { return "tester" }
func (fakePrincipal) Body(r *http.Request) (io.Reader, error) { return r.Body, nil }
func (fakePrincipal) Trailers() map[string]string             { return nil }

func newRawServer(t *testing.T, api *memAPI) *httptest.Server {
	t.Helper()
	cfg := s3api.DefaultConfig()
	cfg.Domains = []string{"s3.example.test"}
	srv, err := s3api.New(cfg, api, fakeAuth{}, slog.New(slog.NewTextHandler(testlog.Writer(t), nil)))
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv)
	t.Cleanup(ts.Close)
	return ts
}

func do(t *testing.T, method, url string, body io.Reader, hdr ...string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "test")
	for i := 0; i+1 < len(hdr); i += 2 {
		if hdr[i] == "Host" {
			req.Host = hdr[i+1]
			continue
		}
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(b)
}

func wantCode(t *testing.T, resp *http.Response, body string, status int, code string) {
	t.Helper()
	if resp.StatusCode != status || (code != "" && !strings.Contains(body, "<Code>"+code+"</Code>")) {
		t.Fatalf("got %d %s, want %d %s", resp.StatusCode, body, status, code)
	}
	if resp.Header.Get("X-Amz-Request-Id") == "" {
		t.Fatalf("no request id")
	}
	if code != "" && !strings.Contains(body, "<RequestId>"+resp.Header.Get("X-Amz-Request-Id")+"</RequestId>") {
		t.Fatalf("error body lacks the request id: %s", body)
	}
}

func setupBucket(t *testing.T) (*memAPI, *httptest.Server) {
	api := newMemAPI()
	ts := newRawServer(t, api)
	resp, body := do(t, "PUT", ts.URL+"/bkt", nil)
	wantCode(t, resp, body, 200, "")
	resp, body = do(t, "PUT", ts.URL+"/bkt/obj", strings.NewReader("0123456789"))
	wantCode(t, resp, body, 200, "")
	return api, ts
}

// TestNotImplemented lists the subresources and headers Redoubt refuses.
func TestNotImplemented(t *testing.T) {
	_, ts := setupBucket(t)
	for _, sub := range []string{"acl", "policy", "policyStatus", "lifecycle", "cors", "tagging", "website",
		"replication", "encryption", "object-lock", "select&select-type=2", "notification", "logging",
		"accelerate", "requestPayment", "analytics", "metrics", "inventory", "intelligent-tiering",
		"ownershipControls", "publicAccessBlock", "restore", "retention", "legal-hold", "torrent",
		"attributes", "renameObject", "session", "metadataTable", "unknown-thing"} {
		for _, path := range []string{"/bkt", "/bkt/obj"} {
			for _, m := range []string{"GET", "PUT", "DELETE", "POST"} {
				resp, body := do(t, m, ts.URL+path+"?"+sub, nil)
				if resp.StatusCode != 501 || !strings.Contains(body, "NotImplemented") {
					t.Fatalf("%s %s?%s: %d %s", m, path, sub, resp.StatusCode, body)
				}
			}
		}
	}
	for _, h := range [][2]string{{"X-Amz-Server-Side-Encryption", "AES256"}, {"X-Amz-Tagging", "a=b"},
		{"X-Amz-Acl", "public-read"}, {"X-Amz-Object-Lock-Mode", "GOVERNANCE"}} {
		resp, body := do(t, "PUT", ts.URL+"/bkt/o2", strings.NewReader("x"), h[0], h[1])
		wantCode(t, resp, body, 501, "NotImplemented")
	}
	resp, body := do(t, "PATCH", ts.URL+"/bkt/obj", nil)
	wantCode(t, resp, body, 501, "NotImplemented")
	resp, body = do(t, "GET", ts.URL+"/bkt?list-type=3", nil)
	wantCode(t, resp, body, 501, "NotImplemented")
}

func TestRequestErrors(t *testing.T) {
	api, ts := setupBucket(t)
	// Anonymous.
	resp, err := http.Get(ts.URL + "/bkt/obj")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	wantCode(t, resp, string(b), 403, "AccessDenied")

	// HEAD errors carry no body.
	resp, body := do(t, "HEAD", ts.URL+"/bkt/missing", nil)
	if resp.StatusCode != 404 || body != "" {
		t.Fatalf("head missing: %d %q", resp.StatusCode, body)
	}
	resp, body = do(t, "GET", ts.URL+"/bkt/missing", nil)
	wantCode(t, resp, body, 404, "NoSuchKey")
	resp, body = do(t, "GET", ts.URL+"/bkt/"+strings.Repeat("k", 1025), nil)
	wantCode(t, resp, body, 400, "KeyTooLongError")
	resp, body = do(t, "GET", ts.URL+"/bkt/a%00b", nil)
	wantCode(t, resp, body, 400, "InvalidArgument")
	resp, body = do(t, "GET", ts.URL+"/bkt/a%FFb", nil)
	wantCode(t, resp, body, 400, "InvalidURI")
	resp, body = do(t, "PUT", ts.URL+"/bkt/x", strings.NewReader("abc"), "Content-MD5", "not base64!")
	wantCode(t, resp, body, 400, "InvalidDigest")
	resp, body = do(t, "PUT", ts.URL+"/bkt/x", strings.NewReader("abc"), "Content-MD5", b64md5([]byte("abd")))
	wantCode(t, resp, body, 400, "BadDigest")
	resp, body = do(t, "PUT", ts.URL+"/bkt/x", strings.NewReader("abc"), "X-Amz-Checksum-Crc32", "AAAAAA==")
	wantCode(t, resp, body, 400, "BadDigest")
	// Sent but empty is invalid, as S3 has it, not absent; so are two.
	resp, body = do(t, "PUT", ts.URL+"/bkt/x", strings.NewReader("abc"), "X-Amz-Checksum-Crc32", "")
	wantCode(t, resp, body, 400, "InvalidRequest")
	resp, body = do(t, "PUT", ts.URL+"/bkt/x", strings.NewReader("abc"), "X-Amz-Checksum-Crc32", "", "X-Amz-Checksum-Sha1", "")
	wantCode(t, resp, body, 400, "InvalidRequest")
	if !strings.Contains(body, "Multiple checksum") {
		t.Errorf("two empty checksum headers: %s", body)
	}
	resp, body = do(t, "PUT", ts.URL+"/bkt/x", strings.NewReader("abc"), "X-Amz-Checksum-Crc32", "short")
	wantCode(t, resp, body, 400, "InvalidRequest")
	resp, body = do(t, "GET", ts.URL+"/bkt/obj", nil, "Range", "bytes=-0")
	wantCode(t, resp, body, 416, "InvalidRange")
	resp, body = do(t, "GET", ts.URL+"/bkt/obj", nil, "Range", "bytes=2-1")
	if resp.StatusCode != 200 || body != "0123456789" {
		t.Fatalf("invalid range must be ignored: %d %q", resp.StatusCode, body)
	}
	resp, body = do(t, "GET", ts.URL+"/bkt/obj", nil, "Range", "bytes=3-5")
	if resp.StatusCode != 206 || body != "345" || resp.Header.Get("Content-Range") != "bytes 3-5/10" {
		t.Fatalf("range: %d %q %v", resp.StatusCode, body, resp.Header)
	}
	resp, body = do(t, "GET", ts.URL+"/bkt/obj", nil, "If-Modified-Since", httpDate(time.Now().Add(time.Hour)))
	if resp.StatusCode != 304 || body != "" {
		t.Fatalf("if-modified-since: %d %q", resp.StatusCode, body)
	}
	resp, body = do(t, "GET", ts.URL+"/bkt/obj", nil, "If-Unmodified-Since", httpDate(time.Now().Add(-time.Hour)))
	wantCode(t, resp, body, 412, "PreconditionFailed")
	resp, body = do(t, "GET", ts.URL+"/bkt?list-type=2&continuation-token=%%%", nil)
	wantCode(t, resp, body, 400, "")
	resp, body = do(t, "GET", ts.URL+"/bkt?list-type=2&continuation-token=bm9wZQ", nil)
	wantCode(t, resp, body, 400, "InvalidArgument")
	resp, body = do(t, "GET", ts.URL+"/bkt?max-keys=-1", nil)
	wantCode(t, resp, body, 400, "InvalidArgument")
	resp, body = do(t, "PUT", ts.URL+"/bkt/x", strings.NewReader("abc"), "X-Amz-Meta-Big", strings.Repeat("v", 3000))
	wantCode(t, resp, body, 400, "MetadataTooLarge")
	resp, body = do(t, "GET", ts.URL+"/bkt/obj", nil, "X-Big", strings.Repeat("v", 20<<10))
	wantCode(t, resp, body, 400, "RequestHeaderSectionTooLarge")
	resp, body = do(t, "PUT", ts.URL+"/other", strings.NewReader(
		"<CreateBucketConfiguration><LocationConstraint>Not A Region</LocationConstraint></CreateBucketConfiguration>"))
	wantCode(t, resp, body, 400, "InvalidLocationConstraint")
	resp, body = do(t, "PUT", ts.URL+"/bkt?versioning", strings.NewReader("<VersioningConfiguration><Status>On</Status></VersioningConfiguration>"))
	wantCode(t, resp, body, 400, "MalformedXML")
	resp, body = do(t, "POST", ts.URL+"/bkt?delete", strings.NewReader("<Delete><Object><Key>obj</Key></Object></Delete>"))
	wantCode(t, resp, body, 400, "InvalidRequest")
	resp, body = do(t, "POST", ts.URL+"/bkt?delete", strings.NewReader(strings.Repeat(" ", 2<<20)), "Content-MD5", b64md5(nil))
	wantCode(t, resp, body, 400, "MaxMessageLengthExceeded")
	resp, body = do(t, "PUT", ts.URL+"/bkt/obj", nil, "X-Amz-Copy-Source", "/bkt/obj")
	wantCode(t, resp, body, 400, "InvalidRequest")

	// Virtual-host addressing.
	resp, body = do(t, "GET", ts.URL+"/obj", nil, "Host", "bkt.s3.example.test")
	if resp.StatusCode != 200 || body != "0123456789" {
		t.Fatalf("virtual host: %d %q", resp.StatusCode, body)
	}

	// Unavailable metadata → 503 with Retry-After; other errors → 500.
	api.fail = fmt.Errorf("partition 7: %w", meta.ErrUnavailable)
	resp, body = do(t, "GET", ts.URL+"/bkt/obj", nil)
	wantCode(t, resp, body, 503, "ServiceUnavailable")
	if resp.Header.Get("Retry-After") == "" {
		t.Fatal("no Retry-After")
	}
	// Data buffers all held by other large requests → SlowDown, which
	// SDKs retry with back-off.
	api.fail = fmt.Errorf("objects: write data: blocks: write: %w", objects.ErrSlowDown)
	resp, body = do(t, "GET", ts.URL+"/bkt/obj", nil)
	wantCode(t, resp, body, 503, "SlowDown")
	if resp.Header.Get("Retry-After") == "" {
		t.Fatal("no Retry-After on SlowDown")
	}
	api.fail = fmt.Errorf("disk on fire")
	resp, body = do(t, "GET", ts.URL+"/bkt/obj", nil)
	wantCode(t, resp, body, 500, "InternalError")
	// No space → 507 without Retry-After, even when the write also found
	// too few drives (the object layer's 503 cause), from whichever layer.
	for _, err := range []error{
		fmt.Errorf("commit: %w", meta.ErrNoSpace),
		fmt.Errorf("write data: %w: %w", meta.ErrUnavailable, fmt.Errorf("quorum: %w", store.ErrNoSpace)),
		&fs.PathError{Op: "write", Path: "/d/x", Err: syscall.ENOSPC},
	} {
		api.fail = err
		resp, body = do(t, "PUT", ts.URL+"/bkt/full", strings.NewReader("abc"))
		wantCode(t, resp, body, 507, "InsufficientStorage")
		if resp.Header.Get("Retry-After") != "" || !strings.Contains(body, "delete objects") {
			t.Fatalf("no space (%v): Retry-After %q, body %s", err, resp.Header.Get("Retry-After"), body)
		}
	}
	api.fail = nil

	api.panicOn = "boom"
	resp, body = do(t, "PUT", ts.URL+"/bkt/boom", strings.NewReader("x"))
	wantCode(t, resp, body, 500, "InternalError")
}

func httpDate(t time.Time) string { return t.UTC().Format(http.TimeFormat) }

// TestBodyFraming sends raw HTTP to check length handling and that an
// empty PUT with Expect: 100-continue leaves the connection usable.
func TestBodyFraming(t *testing.T) {
	_, ts := setupBucket(t)
	conn, err := net.Dial("tcp", strings.TrimPrefix(ts.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(5 * time.Second)); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	send := func(req string) *http.Response {
		t.Helper()
		if _, err := io.WriteString(conn, req); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp
	}
	start := time.Now()
	// An empty body still gets its 100 Continue first, as S3 sends it.
	r := send("PUT /bkt/empty HTTP/1.1\r\nHost: x\r\nAuthorization: t\r\nExpect: 100-continue\r\nContent-Length: 0\r\n\r\n")
	if r.StatusCode != 100 {
		t.Fatalf("empty put: %d, want 100 Continue first", r.StatusCode)
	}
	if r, err = http.ReadResponse(br, nil); err != nil || r.StatusCode != 200 {
		t.Fatalf("empty put: %v %v, want 200", err, r)
	}
	io.Copy(io.Discard, r.Body)
	r.Body.Close()
	if _, err := io.WriteString(conn, "PUT /bkt/full HTTP/1.1\r\nHost: x\r\nAuthorization: t\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	r, err = http.ReadResponse(br, nil) // 100 Continue
	if err != nil || r.StatusCode != 100 {
		t.Fatalf("want 100 Continue: %v %v", err, r)
	}
	if _, err := io.WriteString(conn, "hello"); err != nil {
		t.Fatal(err)
	}
	r, err = http.ReadResponse(br, nil)
	if err != nil || r.StatusCode != 200 {
		t.Fatalf("second put: %v %v", err, r)
	}
	io.Copy(io.Discard, r.Body)
	if d := time.Since(start); d > time.Second {
		t.Fatalf("two puts took %v", d)
	}
	r = send("PUT /bkt/nolen HTTP/1.1\r\nHost: x\r\nAuthorization: t\r\n\r\n")
	if r.StatusCode != 411 {
		t.Fatalf("no content-length: %d", r.StatusCode)
	}

	// A body shorter than its Content-Length.
	c2, err := net.Dial("tcp", strings.TrimPrefix(ts.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	c2.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(c2, "PUT /bkt/short HTTP/1.1\r\nHost: x\r\nAuthorization: t\r\nContent-Length: 10\r\n\r\nabc")
	c2.(*net.TCPConn).CloseWrite()
	resp, err := http.ReadResponse(bufio.NewReader(c2), nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 400 || !strings.Contains(string(b), "IncompleteBody") {
		t.Fatalf("short body: %d %s", resp.StatusCode, b)
	}
}

// A client that sends a body without waiting for 100 Continue (what SDKs
// do below a few MiB, and some clients always) must read the 507 of a
// refused upload, not a connection reset that it would retry as a
// network error; one that asked for 100 Continue is not made to send its
// body at all.
func TestNoSpaceAnswerReachesTheUploader(t *testing.T) {
	api, ts := setupBucket(t)
	api.refuse = fmt.Errorf("new data refused: %w", store.ErrNoSpace)
	body := bytes.Repeat([]byte("x"), 8<<20)
	for i := range 20 {
		tr := &http.Transport{}
		req, err := http.NewRequest("PUT", ts.URL+"/bkt/big", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "test")
		resp, err := (&http.Client{Transport: tr}).Do(req)
		if err != nil {
			t.Fatalf("upload %d of an 8 MiB body refused for lack of space: %v, want the 507", i, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		wantCode(t, resp, string(b), 507, "InsufficientStorage")
		tr.CloseIdleConnections()
	}

	// With Expect: 100-continue the body is never asked for: the answer
	// comes at once.
	expect := func(sendAnyway bool) *http.Response {
		t.Helper()
		conn, err := net.Dial("tcp", strings.TrimPrefix(ts.URL, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		if err := conn.SetDeadline(time.Now().Add(3 * time.Second)); err != nil {
			t.Fatal(err)
		}
		length := 1 << 30
		if sendAnyway {
			length = len(body)
		}
		if _, err := fmt.Fprintf(conn, "PUT /bkt/big HTTP/1.1\r\nHost: x\r\nAuthorization: t\r\nExpect: 100-continue\r\nContent-Length: %d\r\n\r\n", length); err != nil {
			t.Fatal(err)
		}
		if sendAnyway {
			// A client whose wait for 100 Continue ran out sends its body.
			go conn.Write(body)
		}
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatalf("Expect: 100-continue, body sent %v: %v", sendAnyway, err)
		}
		resp.Body.Close()
		return resp
	}
	if resp := expect(false); resp.StatusCode != 507 {
		t.Fatalf("1 GiB upload with Expect: 100-continue: %d, want 507 before any byte is sent", resp.StatusCode)
	}
	for range 10 {
		if resp := expect(true); resp.StatusCode != 507 {
			t.Fatalf("upload sent without waiting for 100 Continue: %d, want 507", resp.StatusCode)
		}
	}
}
