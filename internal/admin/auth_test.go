package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// fakeSigner stands in for SigV4 in these tests: "X-Test-Signer: KEY"
// signs as KEY ("root" is the root), "bad" is a wrong signature, and
// "X-Test-Body: forged" makes the body fail its check at EOF. The real
// verifier is tested against the Guard in the node package.
type fakeSigner struct{}

func (fakeSigner) Authenticate(r *http.Request) (Identity, io.Reader, error) {
	key := r.Header.Get("X-Test-Signer")
	switch key {
	case "":
		return Identity{}, nil, ErrUnsigned
	case "bad":
		return Identity{}, nil, &Error{Status: 403, Code: "SignatureDoesNotMatch", Message: "The request signature we calculated does not match."}
	}
	var body io.Reader = r.Body
	if r.Header.Get("X-Test-Body") == "forged" {
		body = io.MultiReader(r.Body, errReader{&Error{Status: 400, Code: "XAmzContentSHA256Mismatch", Message: "body does not match"}})
	}
	return Identity{AccessKey: key, Root: key == "root"}, body, nil
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

// echo is the protected endpoint: it answers the body it was given.
type echo struct {
	mu    sync.Mutex
	calls int
}

func (e *echo) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	e.mu.Lock()
	e.calls++
	e.mu.Unlock()
	b, _ := io.ReadAll(r.Body)
	fmt.Fprintf(w, "%s %s %s", r.Method, r.URL.Path, b)
}

func (e *echo) count() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.calls
}

func newGuard(t *testing.T, cfg AuthConfig, logger *slog.Logger) (*Guard, *echo, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	if cfg.Authenticator == nil {
		cfg.Authenticator = fakeSigner{}
	}
	cfg.Registerer = reg
	if logger == nil {
		logger = testLogger(t)
	}
	e := &echo{}
	g, err := Protect(cfg, e, logger)
	if err != nil {
		t.Fatal(err)
	}
	return g, e, reg
}

// refusals is the value of the refusal counter for code in reg.
func refusals(t *testing.T, reg *prometheus.Registry, code string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "redoubt_admin_auth_failures_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "code" && l.GetValue() == code {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

type call struct {
	method, path, body string
	hdr                []string
}

func (c call) do(t *testing.T, h http.Handler) (int, string) {
	t.Helper()
	r := httptest.NewRequest(c.method, "http://127.0.0.1:3903"+c.path, strings.NewReader(c.body))
	for i := 0; i+1 < len(c.hdr); i += 2 {
		r.Header.Set(c.hdr[i], c.hdr[i+1])
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w.Code, w.Body.String()
}

func apiError(t *testing.T, body string) APIError {
	t.Helper()
	var e APIError
	if err := json.Unmarshal([]byte(body), &e); err != nil {
		t.Fatalf("refusal is not APIError JSON: %v: %q", err, body)
	}
	return e
}

func TestGuardRefusals(t *testing.T) {
	g, e, reg := newGuard(t, AuthConfig{}, nil)
	jsonCT := []string{"Content-Type", "application/json"}
	root := []string{"X-Test-Signer", "root"}
	with := func(h ...[]string) []string {
		var out []string
		for _, x := range h {
			out = append(out, x...)
		}
		return out
	}
	for _, tc := range []struct {
		name   string
		c      call
		status int
		code   string
		says   string
	}{
		{"unsigned status", call{"GET", "/status", "", nil}, 403, CodeAccessDenied, "not signed"},
		{"unsigned repair", call{"POST", "/repair", "{}", jsonCT}, 403, CodeAccessDenied, "not signed"},
		{"unsigned metrics", call{"GET", "/metrics", "", nil}, 403, CodeAccessDenied, "not signed"},
		{"unsigned layout stage", call{"POST", "/cluster/layout/stage", `{"op":"remove","node":"n2"}`, jsonCT}, 403, CodeAccessDenied, "not signed"},
		{"wrong key", call{"GET", "/status", "", []string{"X-Test-Signer", "bad"}}, 403, "SignatureDoesNotMatch", "does not match"},
		{"not root", call{"GET", "/status", "", []string{"X-Test-Signer", "someone"}}, 403, CodeAccessDenied, "root credentials only"},
		{"foreign origin", call{"POST", "/cluster/layout/apply", "", with(jsonCT, root, []string{"Origin", "http://evil.example"})},
			403, CodeCrossOrigin, "origin http://evil.example"},
		{"null origin", call{"POST", "/repair", "", with(jsonCT, root, []string{"Origin", "null"})}, 403, CodeCrossOrigin, "origin null"},
		{"cross-site fetch", call{"POST", "/repair", "", with(jsonCT, root, []string{"Sec-Fetch-Site", "cross-site"})},
			403, CodeCrossOrigin, "Sec-Fetch-Site: cross-site"},
		{"same-site fetch", call{"POST", "/repair", "", with(jsonCT, root, []string{"Sec-Fetch-Site", "same-site"})},
			403, CodeCrossOrigin, "Sec-Fetch-Site: same-site"},
		{"form post", call{"POST", "/cluster/layout/stage", "op=remove&node=n2", with(root, []string{"Content-Type", "application/x-www-form-urlencoded"})},
			415, CodeUnsupportedMediaType, "got application/x-www-form-urlencoded"},
		{"text/plain post", call{"POST", "/cluster/layout/stage", `{"op":"remove"}`, with(root, []string{"Content-Type", "text/plain"})},
			415, CodeUnsupportedMediaType, "got text/plain"},
		{"no content type", call{"POST", "/repair", "", root}, 415, CodeUnsupportedMediaType, "got none"},
		{"forged body", call{"POST", "/repair", "{}", with(jsonCT, root, []string{"X-Test-Body", "forged"})}, 400, "XAmzContentSHA256Mismatch", "does not match"},
		{"body too large", call{"POST", "/repair", strings.Repeat("x", 2<<20), with(jsonCT, root)}, 413, CodeEntityTooLarge, "at most"},
	} {
		status, body := tc.c.do(t, g)
		got := apiError(t, body)
		if status != tc.status || got.Code != tc.code || !strings.Contains(got.Error, tc.says) {
			t.Errorf("%s: %d %+v; want %d %s saying %q", tc.name, status, got, tc.status, tc.code, tc.says)
		}
	}
	if n := e.count(); n != 0 {
		t.Errorf("%d refused requests reached the endpoints", n)
	}
	if n := g.Refused(); n != 15 {
		t.Errorf("Refused() = %d; want 15", n)
	}
	if got := refusals(t, reg, CodeCrossOrigin); got != 4 {
		t.Errorf("redoubt_admin_auth_failures_total{code=%q} = %v; want 4", CodeCrossOrigin, got)
	}
	if got := refusals(t, reg, CodeAccessDenied); got != 5 {
		t.Errorf("redoubt_admin_auth_failures_total{code=%q} = %v; want 5", CodeAccessDenied, got)
	}

	// What passes.
	for _, c := range []call{
		{"GET", "/health", "", nil},
		{"HEAD", "/health", "", nil},
		{"GET", "/status", "", root},
		{"POST", "/cluster/layout/stage", `{"op":"add"}`, with(jsonCT, root)},
		{"POST", "/repair", "", with(root, []string{"Content-Type", "application/json; charset=utf-8"},
			[]string{"Origin", "http://127.0.0.1:3903"}, []string{"Sec-Fetch-Site", "same-origin"})},
	} {
		status, body := c.do(t, g)
		if status != 200 || (c.method == "POST" && body != fmt.Sprintf("%s %s %s", c.method, c.path, c.body)) {
			t.Errorf("%s %s: %d %q; want it through with its body", c.method, c.path, status, body)
		}
	}
}

// TestGuardPolicySlot shows where a policy decision goes: after the
// signature, before the endpoint, with the action named.
func TestGuardPolicySlot(t *testing.T) {
	var asked []Action
	readOnly := policyFunc(func(_ context.Context, who Identity, a Action) error {
		asked = append(asked, a)
		if a.Change {
			return &Error{Status: 403, Code: CodeAccessDenied, Message: who.AccessKey + " is read-only"}
		}
		return nil
	})
	g, e, _ := newGuard(t, AuthConfig{Policy: readOnly}, nil)
	if status, _ := (call{"GET", "/status", "", []string{"X-Test-Signer", "auditor"}}).do(t, g); status != 200 {
		t.Errorf("read by a reader: %d", status)
	}
	status, body := call{"POST", "/repair", "", []string{"X-Test-Signer", "auditor", "Content-Type", "application/json"}}.do(t, g)
	if status != 403 || apiError(t, body).Error != "auditor is read-only" {
		t.Errorf("change by a reader: %d %s", status, body)
	}
	want := []Action{{Method: "GET", Path: "/status"}, {Method: "POST", Path: "/repair", Change: true}}
	if fmt.Sprint(asked) != fmt.Sprint(want) || e.count() != 1 {
		t.Errorf("policy asked %v, endpoint reached %d times; want %v and 1", asked, e.count(), want)
	}
}

type policyFunc func(context.Context, Identity, Action) error

func (f policyFunc) Allow(ctx context.Context, who Identity, a Action) error { return f(ctx, who, a) }

func TestGuardMetricsToken(t *testing.T) {
	g, e, _ := newGuard(t, AuthConfig{MetricsToken: "s3cr3t-scrape"}, nil)
	if status, _ := (call{"GET", "/metrics", "", []string{"Authorization", "Bearer s3cr3t-scrape"}}).do(t, g); status != 200 {
		t.Errorf("metrics with the token: %d", status)
	}
	status, body := call{"GET", "/metrics", "", []string{"Authorization", "Bearer guess"}}.do(t, g)
	if status != 403 || !strings.Contains(apiError(t, body).Error, "metrics token") {
		t.Errorf("metrics with a wrong token: %d %s", status, body)
	}
	// The token opens /metrics and nothing else.
	if status, _ := (call{"GET", "/status", "", []string{"Authorization", "Bearer s3cr3t-scrape"}}).do(t, g); status != 403 {
		t.Errorf("status with the metrics token: %d; want 403", status)
	}
	if status, _ := (call{"GET", "/metrics", "", []string{"X-Test-Signer", "root"}}).do(t, g); status != 200 {
		t.Errorf("metrics signed: %d", status)
	}
	if e.count() != 2 {
		t.Errorf("endpoint reached %d times; want 2", e.count())
	}
	// Without a token set, a bearer token is no way in.
	g2, _, _ := newGuard(t, AuthConfig{}, nil)
	if status, _ := (call{"GET", "/metrics", "", []string{"Authorization", "Bearer "}}).do(t, g2); status != 403 {
		t.Errorf("metrics with an empty token and none set: %d; want 403", status)
	}
}

// TestGuardRateLimitsItsLog floods the guard with bad requests: each is
// counted, but the log shows a handful of lines, the later ones saying how
// many were left out.
func TestGuardRateLimitsItsLog(t *testing.T) {
	var buf syncBuffer
	logger := slog.New(slog.NewTextHandler(&buf, nil))
	g, _, _ := newGuard(t, AuthConfig{LogBurst: 3, LogEvery: 1 << 62}, logger)
	for range 50 {
		call{"GET", "/status", "", []string{"X-Test-Signer", "bad"}}.do(t, g)
	}
	lines := strings.Count(buf.String(), "admin: request refused")
	if lines != 3 || g.Refused() != 50 {
		t.Errorf("50 refusals: %d log lines, %d counted; want 3 and 50\n%s", lines, g.Refused(), buf.String())
	}
	if !strings.Contains(buf.String(), "code=SignatureDoesNotMatch") || !strings.Contains(buf.String(), "remote=") {
		t.Errorf("log lines lack the code or the remote address:\n%s", buf.String())
	}
	// Once the limiter lets one through, it says how many were left out.
	g.logLim.SetBurst(1)
	g.logLim.SetLimit(1e9)
	call{"GET", "/status", "", []string{"X-Test-Signer", "bad"}}.do(t, g)
	if !strings.Contains(buf.String(), "not_logged_since=47") {
		t.Errorf("the next line does not count the 47 left out:\n%s", buf.String())
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestProtectConfig(t *testing.T) {
	if _, err := Protect(AuthConfig{}, &echo{}, nil); !errors.Is(err, ErrConfig) {
		t.Errorf("no authenticator: %v", err)
	}
	if _, err := Protect(AuthConfig{Authenticator: fakeSigner{}}, nil, nil); !errors.Is(err, ErrConfig) {
		t.Errorf("no handler: %v", err)
	}
}

// FuzzGuardChangeHeaders sends changes with arbitrary origin, fetch
// metadata and content type: none panics, and one reaches the endpoint
// only when all three are what a same-origin JSON call sends.
func FuzzGuardChangeHeaders(f *testing.F) {
	f.Add("", "", "application/json")
	f.Add("http://127.0.0.1:3903", "same-origin", "application/json; charset=utf-8")
	f.Add("http://evil.example", "cross-site", "text/plain")
	f.Add("null", "none", "multipart/form-data; boundary=x")
	f.Add("http://127.0.0.1:3903@evil", "", "application/json;;")
	f.Fuzz(func(t *testing.T, origin, site, ct string) {
		e := &echo{}
		g, err := Protect(AuthConfig{Authenticator: fakeSigner{}}, e, nil)
		if err != nil {
			t.Fatal(err)
		}
		r := httptest.NewRequest("POST", "http://127.0.0.1:3903/repair", strings.NewReader("{}"))
		r.Header = http.Header{"X-Test-Signer": {"root"}, "Origin": {origin}, "Sec-Fetch-Site": {site}, "Content-Type": {ct}}
		w := httptest.NewRecorder()
		g.ServeHTTP(w, r)
		if e.count() == 0 {
			if w.Code < 400 {
				t.Fatalf("refused with %d", w.Code)
			}
			return
		}
		if site != "" && site != "same-origin" {
			t.Fatalf("Sec-Fetch-Site %q let through", site)
		}
		if u, err := url.Parse(origin); origin != "" && (err != nil || !strings.EqualFold(u.Host, "127.0.0.1:3903")) {
			t.Fatalf("Origin %q let through", origin)
		}
		if !strings.HasPrefix(strings.ToLower(strings.TrimSpace(ct)), "application/json") {
			t.Fatalf("Content-Type %q let through", ct)
		}
	})
}
