package s3api

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"runtime/debug"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/redoubt-io/redoubt/internal/objects"
)

// Server is the S3 HTTP front end. It is an http.Handler and safe for
// concurrent use.
type Server struct {
	cfg   Config
	api   objects.API
	auth  Authenticator
	log   *slog.Logger
	newID func() string
	// bufs holds *[]byte of copyBufSize for streaming GET bodies.
	bufs sync.Pool
}

const copyBufSize = 64 << 10

// New returns a Server that answers S3 requests by calling api. auth
// authenticates every request; logger receives internal errors and
// recovered panics (nil discards them).
func New(cfg Config, api objects.API, auth Authenticator, logger *slog.Logger) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if api == nil {
		return nil, errors.New("s3api: nil objects api")
	}
	if auth == nil {
		return nil, errors.New("s3api: nil authenticator")
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	s := &Server{cfg: cfg, api: api, auth: auth, log: logger, newID: cfg.RequestID}
	if s.newID == nil {
		s.newID = counterIDs()
	}
	for i, d := range s.cfg.Domains {
		s.cfg.Domains[i] = strings.ToLower(d)
	}
	s.bufs.New = func() any { b := make([]byte, copyBufSize); return &b }
	return s, nil
}

// reqCtx is the state of one request.
type reqCtx struct {
	id        string
	bucket    string
	key       string
	query     url.Values
	principal Principal
	// bodyTouched is set once the handler started reading the body; only
	// then is the rest drained so that the connection can be reused.
	bodyTouched bool
	// bodyRead is set once a byte of the body was asked for.
	bodyRead bool
	// bodyErr is the first error the payload reader returned, so that the
	// precise cause (bad chunk signature, short body) wins over whatever
	// the object layer made of it.
	bodyErr error
}

// statusWriter records whether the header was sent, so a recovered panic
// can still answer when nothing was written yet.
type statusWriter struct {
	http.ResponseWriter
	wrote bool
}

func (w *statusWriter) WriteHeader(code int) {
	if code >= 200 {
		w.wrote = true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(p []byte) (int, error) {
	w.wrote = true
	return w.ResponseWriter.Write(p)
}

// Unwrap lets http.ResponseController reach the connection.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.ContentLength == 0 && strings.EqualFold(r.Header.Get("Expect"), "100-continue") {
		// net/http sends 100 Continue only when a handler reads a non-empty
		// body. Clients that asked for it on an empty PUT (botocore does)
		// wait for it, and some then misread the final response on a
		// reused connection; S3 always sends it, so do we.
		w.WriteHeader(http.StatusContinue)
	}
	rc := &reqCtx{id: s.newID()}
	h := w.Header()
	h.Set("X-Amz-Request-Id", rc.id)
	h.Set("X-Amz-Id-2", rc.id)
	h.Set("Server", "Redoubt")
	sw := &statusWriter{ResponseWriter: w}
	idle := s.watchBody(w, r)
	defer func() {
		if p := recover(); p != nil {
			if p == http.ErrAbortHandler {
				panic(p)
			}
			s.log.Error("s3 handler panic", "request_id", rc.id, "method", r.Method,
				"path", r.URL.Path, "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
			if !sw.wrote {
				s.writeError(sw, r, rc, errInternal)
			}
		}
		if rc.bodyTouched && (idle == nil || !idle.timedOut) {
			// Let the next request on this connection start cleanly.
			drainBody(sw, r, rc, idle)
		}
	}()
	err := s.serve(sw, r, rc)
	if idle != nil {
		// net/http decides what to do with a body the handler left unread
		// (answer at once and close the connection, for a client still
		// waiting for 100 Continue) by the type of the request's Body:
		// it must see its own again before an answer goes out
		// (TestNoSpaceAnswerReachesTheUploader).
		r.Body = idle.r
	}
	if err != nil {
		if idle != nil && idle.timedOut {
			// Whatever the layers above made of the failed read (a
			// cancelled context, a short body), the cause is the client.
			err = errRequestTimeout
		}
		e, internal := toAPIError(err)
		if internal {
			s.log.Error("s3 internal error", "request_id", rc.id, "method", r.Method,
				"path", r.URL.Path, "err", err)
		}
		if sw.wrote {
			return // the body is already streaming; the connection will be cut
		}
		s.writeError(sw, r, rc, e)
	}
}

type handler func(w http.ResponseWriter, r *http.Request, rc *reqCtx) error

func (s *Server) serve(w http.ResponseWriter, r *http.Request, rc *reqCtx) error {
	if headerBytes(r) > s.cfg.MaxHeaderBytes {
		return errHeadersLarge
	}
	bucket, key, err := s.resolve(r)
	if err != nil {
		return err
	}
	rc.bucket, rc.key = bucket, key
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return errInvalidURI
	}
	rc.query = q
	if unsignedFeature(r, key) {
		return errNotImpl
	}
	p, err := s.auth.Authenticate(r)
	if err != nil {
		return err
	}
	if p == nil {
		return errAccessDenied
	}
	rc.principal = p
	if err := expectedOwner(r.Header, p); err != nil {
		return err
	}
	if key != "" {
		if err := validKey(key); err != nil {
			return err
		}
	}
	h, err := s.route(r, rc)
	if err != nil {
		return err
	}
	return h(w, r, rc)
}

// unsignedFeature reports requests for features that are never signed
// with SigV4 and that Redoubt does not implement: browser-form uploads
// (POST to a bucket with a multipart/form-data body, authenticated by a
// policy in the form) and CORS preflight (OPTIONS). They are answered with
// NotImplemented before authentication, which would otherwise call them
// anonymous and hide what is missing.
func unsignedFeature(r *http.Request, key string) bool {
	if r.Method == http.MethodOptions {
		return true
	}
	if r.Method != http.MethodPost || key != "" || r.Header.Get("Authorization") != "" {
		return false
	}
	mt, _, _ := strings.Cut(r.Header.Get("Content-Type"), ";")
	return strings.EqualFold(strings.TrimSpace(mt), "multipart/form-data")
}

// expectedOwner honours x-amz-expected-bucket-owner and
// x-amz-source-expected-bucket-owner: the owner of every bucket is the
// caller's access key (the owner ID shown in listings), and a request that
// names another owner is refused rather than served.
func expectedOwner(h http.Header, p Principal) error {
	for _, name := range [...]string{"X-Amz-Expected-Bucket-Owner", "X-Amz-Source-Expected-Bucket-Owner"} {
		if v, ok := h[name]; ok && (len(v) != 1 || v[0] != p.AccessKey()) {
			return errAccessDenied
		}
	}
	return nil
}

func headerBytes(r *http.Request) int {
	n := len(r.Method) + len(r.RequestURI) + len(r.Host) + 16
	for k, vs := range r.Header {
		for _, v := range vs {
			n += len(k) + len(v) + 4
		}
	}
	return n
}

// resolve finds the bucket and key, from a virtual host name when the Host
// is a subdomain of a configured domain, else from the path.
func (s *Server) resolve(r *http.Request) (bucket, key string, err error) {
	p := r.URL.Path
	if !strings.HasPrefix(p, "/") {
		return "", "", errInvalidURI
	}
	if !utf8.ValidString(p) {
		return "", "", errInvalidURI
	}
	if len(s.cfg.Domains) > 0 {
		host := strings.ToLower(r.Host)
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
		for _, d := range s.cfg.Domains {
			if strings.HasSuffix(host, "."+d) {
				return host[:len(host)-len(d)-1], p[1:], nil
			}
		}
	}
	p = p[1:]
	bucket, key, _ = strings.Cut(p, "/")
	return bucket, key, nil
}

func validKey(key string) error {
	if len(key) > 1024 {
		return errKeyTooLong
	}
	if strings.IndexByte(key, 0) >= 0 {
		return invalidArg("Object key must not contain a NUL character.")
	}
	return nil
}

// refusedBodyDrain and refusedBodyWait bound what is read of a body that
// was refused before any of it was read, and for how long. A client that
// does not wait for 100 Continue, or stopped waiting, sends its body
// whatever the answer, and one whose connection is closed under it sees a
// reset, which SDKs retry as a network error, instead of the answer
// (TestConcurrentPutsAcrossTheReserve in package node, where
// aws-sdk-go-v2 under load gave up waiting; TestNoSpaceAnswerReachesTheUploader).
// Such bodies are of a few MiB
// (aws-sdk-go-v2 asks for 100 Continue above 2 MB and waits 1 s for it;
// minio-go sends parts of 16 MiB without asking); larger ones are cut off.
const (
	refusedBodyDrain = 32 << 20
	refusedBodyWait  = 5 * time.Second
)

// drainBody reads what is left of a body the handler started on, so that
// the client reads the answer and the connection can be reused: up to
// 1 MiB of a body partly read, up to refusedBodyDrain of one refused
// before any byte was read. The answer to the latter goes out first: a
// client still waiting for 100 Continue then sends no body at all (net/http
// marks the answer Connection: close), and the drain ends when it hangs
// up or after refusedBodyWait.
func drainBody(w http.ResponseWriter, r *http.Request, rc *reqCtx, idle *idleBody) {
	if rc.bodyRead {
		var body io.Reader = r.Body
		if idle != nil {
			body = idle // a client that stalls is not waited for
		}
		_, _ = io.Copy(io.Discard, io.LimitReader(body, 1<<20))
		return
	}
	ctl := http.NewResponseController(w)
	_ = ctl.Flush()
	_ = ctl.SetReadDeadline(time.Now().Add(refusedBodyWait))
	_, _ = io.Copy(io.Discard, io.LimitReader(r.Body, refusedBodyDrain))
}
