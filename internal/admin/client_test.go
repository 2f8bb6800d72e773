package admin

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestClientSigns checks what Client sends: a SigV4 Authorization for
// service s3 in the region, the body's SHA-256 in x-amz-content-sha256,
// and JSON Content-Type on changes. That the signature verifies is tested
// against the real verifier in the node package.
func TestClientSigns(t *testing.T) {
	var got []*http.Request
	var bodies []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got, bodies = append(got, r), append(bodies, string(b))
		if r.URL.Path == "/refuse" {
			writeError(w, &Error{Status: 403, Code: "SignatureDoesNotMatch", Message: "no match"})
			return
		}
		if r.URL.Path == "/plain" {
			http.Error(w, "just text", http.StatusBadGateway)
			return
		}
		json.NewEncoder(w).Encode(map[string]string{"echo": string(b)})
	}))
	defer srv.Close()
	c := &Client{AccessKey: "ROOTKEY", SecretKey: "rootsecret123", Region: "eu-west-3"}
	var out map[string]string
	if err := c.Call(t.Context(), strings.TrimPrefix(srv.URL, "http://"), "POST", "/cluster/layout/stage", LayoutEdit{Op: "add", Node: "n4"}, &out); err != nil {
		t.Fatal(err)
	}
	if err := c.Call(t.Context(), srv.URL, "POST", "/cluster/layout/revert", nil, nil); err != nil {
		t.Fatal(err)
	}
	if err := c.Call(t.Context(), srv.URL, "GET", "/status", nil, nil); err != nil {
		t.Fatal(err)
	}
	for i, r := range got {
		auth := r.Header.Get("Authorization")
		if !strings.HasPrefix(auth, "AWS4-HMAC-SHA256 Credential=ROOTKEY/") || !strings.Contains(auth, "/eu-west-3/s3/aws4_request") ||
			!strings.Contains(auth, "x-amz-content-sha256") {
			t.Errorf("%s %s: Authorization %q", r.Method, r.URL.Path, auth)
		}
		sum := sha256.Sum256([]byte(bodies[i]))
		if h := r.Header.Get("X-Amz-Content-Sha256"); h != hex.EncodeToString(sum[:]) {
			t.Errorf("%s %s: x-amz-content-sha256 %q is not the body's", r.Method, r.URL.Path, h)
		}
		if ct := r.Header.Get("Content-Type"); (r.Method == "POST") != (ct == "application/json") {
			t.Errorf("%s %s: Content-Type %q", r.Method, r.URL.Path, ct)
		}
	}
	if out["echo"] != `{"op":"add","node":"n4"}` {
		t.Errorf("stage sent %q", out["echo"])
	}
	var e *Error
	if err := c.Call(t.Context(), srv.URL, "GET", "/refuse", nil, nil); !errors.As(err, &e) || e.Status != 403 || e.Code != "SignatureDoesNotMatch" || err.Error() != "SignatureDoesNotMatch: no match" {
		t.Errorf("refusal: %v", err)
	}
	if err := c.Call(t.Context(), srv.URL, "GET", "/plain", nil, nil); !errors.As(err, &e) || e.Status != 502 || !strings.Contains(err.Error(), "just text") {
		t.Errorf("plain error: %v", err)
	}
}
