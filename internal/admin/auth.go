package admin

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"
)

// Identity is who signed an admin request.
type Identity struct {
	AccessKey string
	// Root says the request was signed with the root credentials.
	Root bool
}

// Authenticator checks the signature of an admin request before any of
// its body is read. It returns the signer and the body as a reader that
// checks the bytes against the signature as they are read (failing at
// EOF if they do not match). It returns ErrUnsigned for a request that
// carries no signature at all, an *Error for one whose signature fails
// (with the status and code to answer), and any other error only when it
// could not decide. Implementations must be safe for concurrent use.
type Authenticator interface {
	Authenticate(r *http.Request) (Identity, io.Reader, error)
}

// ErrUnsigned is what an Authenticator returns for a request without a
// signature.
var ErrUnsigned = errors.New("request not signed")

// Action is what an admin request asks to do, for a Policy to judge.
type Action struct {
	Method, Path string
	// Change is set for requests that may change state: every method but
	// GET and HEAD.
	Change bool
}

// Policy decides whether an authenticated caller may take an action: nil
// allows it; an error refuses it with 403 AccessDenied and the error's
// text (an *Error is answered as it is). It is asked after the signature
// has been checked and before any handler runs, so that users and their
// policies can be added without touching the endpoints.
type Policy interface {
	Allow(ctx context.Context, who Identity, a Action) error
}

// RootOnly is the policy while the root credentials are the only ones:
// they may do everything, any other signer nothing.
var RootOnly Policy = rootOnly{}

type rootOnly struct{}

func (rootOnly) Allow(_ context.Context, who Identity, a Action) error {
	if who.Root {
		return nil
	}
	return fmt.Errorf("%s may not %s %s: the admin API is open to the root credentials only", who.AccessKey, a.Method, a.Path)
}

// Error is a refused or failed admin request: the HTTP status, a code
// (the S3 code for signature failures, e.g. SignatureDoesNotMatch) and a
// message. The server answers it as APIError JSON; Client returns it.
type Error struct {
	Status  int
	Code    string
	Message string
}

func (e *Error) Error() string {
	if e.Code == "" {
		return e.Message
	}
	return e.Code + ": " + e.Message
}

// Codes of the refusals the guard itself makes; signature failures carry
// the Authenticator's codes.
const (
	CodeAccessDenied         = "AccessDenied"
	CodeCrossOrigin          = "CrossOriginRequestRefused"
	CodeUnsupportedMediaType = "UnsupportedMediaType"
	CodeEntityTooLarge       = "EntityTooLarge"
	CodeBadBody              = "InvalidRequest"
)

// AuthConfig configures Protect.
type AuthConfig struct {
	// Authenticator checks signatures; it must not be nil.
	Authenticator Authenticator
	// Policy judges authenticated requests; nil means RootOnly.
	Policy Policy
	// MetricsToken, when not empty, lets GET /metrics through with
	// "Authorization: Bearer <MetricsToken>" and no signature, since
	// Prometheus can send a bearer token but cannot sign requests. When
	// empty, /metrics needs a signature like every endpoint but /health.
	MetricsToken string
	// MaxBodyBytes bounds a request body: admin bodies are small JSON
	// documents, read whole and verified before the handler runs. 0 means
	// 1 MiB.
	MaxBodyBytes int64
	// Registerer receives redoubt_admin_auth_failures_total, the refused
	// requests by code; nil registers nothing.
	Registerer prometheus.Registerer
	// LogEvery and LogBurst rate-limit the log of refused requests, so a
	// flood of them cannot flood the log: LogBurst lines at once, then one
	// per LogEvery, each saying how many were left out. 0 means one per
	// second after a burst of 5.
	LogEvery time.Duration
	LogBurst int
}

// Guard is the admin API's door: every request but GET /health must be
// signed, and allowed by the Policy, before it reaches the endpoints; a
// request that may change state must also come from the same origin and
// say its body is JSON. See Protect.
type Guard struct {
	cfg     AuthConfig
	next    http.Handler
	log     *slog.Logger
	logLim  *rate.Limiter
	skipped atomic.Int64
	refused atomic.Int64
	byCode  *prometheus.CounterVec
}

// Protect returns next behind a Guard:
//
//   - GET /health passes without a signature: it is a liveness probe.
//   - GET /metrics passes with the bearer MetricsToken, when one is set.
//   - Any other request must be signed (see Authenticator) and allowed
//     by the Policy; its body is read whole (at most MaxBodyBytes) and
//     verified against the signature before next sees it.
//   - A request that may change state (any method but GET and HEAD) is
//     refused, before its signature is even checked, when its
//     Sec-Fetch-Site is not same-origin, its Origin is not this endpoint,
//     or its Content-Type is not application/json: a web page can make a
//     browser send none of those, so a page the operator visits cannot
//     make changes (cross-site request forgery), even with a signature
//     it somehow holds.
//
// Refusals are answered as APIError JSON with the status and code of an
// Error, counted (Refused, and redoubt_admin_auth_failures_total by
// code) and logged at a limited rate. The tests that hold these rules are
// in auth_test.go (TestGuardRefusals, TestGuardRateLimitsItsLog) and, with
// real SigV4 signatures, in the node package (TestAdminRefusesUnsigned and
// the tests beside it).
func Protect(cfg AuthConfig, next http.Handler, logger *slog.Logger) (*Guard, error) {
	if cfg.Authenticator == nil {
		return nil, fmt.Errorf("%w: no authenticator", ErrConfig)
	}
	if next == nil {
		return nil, fmt.Errorf("%w: no handler to protect", ErrConfig)
	}
	if cfg.Policy == nil {
		cfg.Policy = RootOnly
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = 1 << 20
	}
	if cfg.LogEvery <= 0 {
		cfg.LogEvery = time.Second
	}
	if cfg.LogBurst <= 0 {
		cfg.LogBurst = 5
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	g := &Guard{
		cfg: cfg, next: next, log: logger,
		logLim: rate.NewLimiter(rate.Every(cfg.LogEvery), cfg.LogBurst),
		byCode: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "redoubt_admin_auth_failures_total",
			Help: "Admin API requests refused: unsigned, badly signed, not allowed, cross-origin or not JSON, by code.",
		}, []string{"code"}),
	}
	if cfg.Registerer != nil {
		if err := cfg.Registerer.Register(g.byCode); err != nil {
			return nil, fmt.Errorf("%w: registering the refusal counter: %w", ErrConfig, err)
		}
	}
	return g, nil
}

// Refused counts the requests refused since the Guard was made.
func (g *Guard) Refused() int64 { return g.refused.Load() }

func (g *Guard) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/health" {
		g.next.ServeHTTP(w, r)
		return
	}
	change := r.Method != http.MethodGet && r.Method != http.MethodHead
	if r.URL.Path == "/metrics" && !change && g.cfg.MetricsToken != "" {
		if tok, ok := bearer(r); ok {
			if subtle.ConstantTimeCompare([]byte(tok), []byte(g.cfg.MetricsToken)) != 1 {
				g.refuse(w, r, "", &Error{Status: http.StatusForbidden, Code: CodeAccessDenied,
					Message: "the bearer token is not this node's metrics token (--metrics-token)"})
				return
			}
			g.next.ServeHTTP(w, r)
			return
		}
	}
	if change {
		if e := sameOrigin(r); e != nil {
			g.refuse(w, r, "", e)
			return
		}
		if e := jsonBody(r); e != nil {
			g.refuse(w, r, "", e)
			return
		}
	}
	who, body, err := g.cfg.Authenticator.Authenticate(r)
	if err != nil {
		g.refuse(w, r, "", authError(err))
		return
	}
	a := Action{Method: r.Method, Path: r.URL.Path, Change: change}
	if err := g.cfg.Policy.Allow(r.Context(), who, a); err != nil {
		e := &Error{Status: http.StatusForbidden, Code: CodeAccessDenied, Message: err.Error()}
		errors.As(err, &e)
		g.refuse(w, r, who.AccessKey, e)
		return
	}
	b, err := io.ReadAll(io.LimitReader(body, g.cfg.MaxBodyBytes+1))
	switch {
	case err != nil:
		e := &Error{Status: http.StatusBadRequest, Code: CodeBadBody, Message: "reading the request body: " + err.Error()}
		errors.As(err, &e)
		g.refuse(w, r, who.AccessKey, e)
		return
	case int64(len(b)) > g.cfg.MaxBodyBytes:
		g.refuse(w, r, who.AccessKey, &Error{Status: http.StatusRequestEntityTooLarge, Code: CodeEntityTooLarge,
			Message: fmt.Sprintf("admin request bodies are at most %d bytes", g.cfg.MaxBodyBytes)})
		return
	}
	// The handlers read a body that has been checked whole.
	r.Body = io.NopCloser(bytes.NewReader(b))
	r.ContentLength = int64(len(b))
	g.next.ServeHTTP(w, r)
}

// authError is the answer to an Authenticator's error.
func authError(err error) *Error {
	var e *Error
	switch {
	case errors.As(err, &e):
		return e
	case errors.Is(err, ErrUnsigned):
		return &Error{Status: http.StatusForbidden, Code: CodeAccessDenied,
			Message: "the admin API answers only requests signed (AWS SigV4, service s3) with the root credentials, and this one is not signed; the redoubt verbs sign with --access-key and --secret-key, REDOUBT_ACCESS_KEY and REDOUBT_SECRET_KEY, or the credentials in --data"}
	default:
		return &Error{Status: http.StatusInternalServerError, Code: "InternalError", Message: "checking the signature: " + err.Error()}
	}
}

// sameOrigin refuses a request a browser sent on behalf of another site.
// Browsers send Sec-Fetch-Site on every request, and Origin on every
// POST; tools such as the redoubt CLI and curl send neither.
func sameOrigin(r *http.Request) *Error {
	if site := r.Header.Get("Sec-Fetch-Site"); site != "" && site != "same-origin" {
		return &Error{Status: http.StatusForbidden, Code: CodeCrossOrigin,
			Message: fmt.Sprintf("a browser sent this change on behalf of another site (Sec-Fetch-Site: %s); the admin API accepts changes only from tools or its own origin", truncate(site))}
	}
	origin := r.Header.Get("Origin")
	if origin == "" {
		return nil
	}
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" || !strings.EqualFold(u.Host, r.Host) {
		return &Error{Status: http.StatusForbidden, Code: CodeCrossOrigin,
			Message: fmt.Sprintf("a page of origin %s sent this change to %s; the admin API accepts changes only from tools or its own origin", truncate(origin), truncate(r.Host))}
	}
	return nil
}

// jsonBody refuses a change whose body is not declared JSON: an HTML
// form can send only form encodings and text/plain, and a script on
// another origin cannot send application/json without a CORS preflight,
// which the admin API never grants.
func jsonBody(r *http.Request) *Error {
	ct := r.Header.Get("Content-Type")
	mt, _, err := mime.ParseMediaType(ct)
	if err == nil && mt == "application/json" {
		return nil
	}
	got := "none"
	if ct != "" {
		got = truncate(ct)
	}
	return &Error{Status: http.StatusUnsupportedMediaType, Code: CodeUnsupportedMediaType,
		Message: fmt.Sprintf("admin changes take a JSON body: Content-Type must be application/json, got %s", got)}
}

// bearer returns the token of an "Authorization: Bearer" header.
func bearer(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	if len(h) < 7 || !strings.EqualFold(h[:7], "Bearer ") {
		return "", false
	}
	return strings.TrimSpace(h[7:]), true
}

func truncate(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}

// refuse answers e, counts it and logs it unless the log is over its rate.
func (g *Guard) refuse(w http.ResponseWriter, r *http.Request, accessKey string, e *Error) {
	g.refused.Add(1)
	g.byCode.WithLabelValues(e.Code).Inc()
	if g.logLim.Allow() {
		attrs := []any{"code", e.Code, "method", r.Method, "path", r.URL.Path, "remote", r.RemoteAddr}
		if accessKey != "" {
			attrs = append(attrs, "access_key", accessKey)
		}
		if n := g.skipped.Swap(0); n > 0 {
			attrs = append(attrs, "not_logged_since", n)
		}
		g.log.Warn("admin: request refused", attrs...)
	} else {
		g.skipped.Add(1)
	}
	writeError(w, e)
}

// writeError answers e as APIError JSON.
func writeError(w http.ResponseWriter, e *Error) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(e.Status)
	json.NewEncoder(w).Encode(APIError{Error: e.Message, Code: e.Code})
}
