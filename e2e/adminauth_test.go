package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"

	"github.com/redoubt-io/redoubt/internal/admin"
)

// TestAdminAPIOnlySigned is the admin API of the real binary as an
// outsider, a web page and an operator meet it.
func TestAdminAPIOnlySigned(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a server process")
	}
	s := startServer(t, serverOptions{env: []string{"REDOUBT_METRICS_TOKEN=e2e-scrape-token"}})
	get := func(path string, hdr ...string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest("GET", s.Admin+path, nil)
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get("/health"); code != 200 {
		t.Errorf("/health: %d %s", code, body)
	}
	code, body := get("/status")
	var e admin.APIError
	json.Unmarshal([]byte(body), &e)
	if code != 403 || e.Code != "AccessDenied" || !strings.Contains(e.Error, "not signed") {
		t.Errorf("unsigned /status: %d %s", code, body)
	}
	if code, body := get("/metrics", "Authorization", "Bearer e2e-scrape-token"); code != 200 || !strings.Contains(body, "redoubt_admin_auth_failures_total") {
		t.Errorf("/metrics with the token: %d\n%s", code, body)
	}

	// A page's form post, then the same change signed but cross-site.
	form, _ := http.NewRequest("POST", s.Admin+"/repair", strings.NewReader("go=1"))
	form.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	form.Header.Set("Origin", "http://evil.example")
	var ae *admin.Error
	if err := doAdmin(form); !errors.As(err, &ae) || ae.Code != "CrossOriginRequestRefused" {
		t.Errorf("form post from another site: %v", err)
	}
	signed, err := rootAdmin.NewRequest(context.Background(), "POST", s.Admin+"/repair", []byte("{}"))
	if err != nil {
		t.Fatal(err)
	}
	signed.Header.Set("Content-Type", "text/plain")
	if err := doAdmin(signed); !errors.As(err, &ae) || ae.Code != "UnsupportedMediaType" {
		t.Errorf("signed change that is not JSON: %v", err)
	}

	// The operator's verbs, with the keys in the environment; and without.
	addr := strings.TrimPrefix(s.Admin, "http://")
	st := exec.Command(binary, "status", "--admin-addr", addr)
	st.Env = adminEnv()
	if out, err := st.CombinedOutput(); err != nil || !strings.Contains(string(out), "Redundancy:") {
		t.Errorf("redoubt status with the keys: %v\n%s", err, out)
	}
	bare := exec.Command(binary, "repair", "--no-wait", "--admin-addr", addr)
	bare.Dir = t.TempDir()
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "REDOUBT_") {
			bare.Env = append(bare.Env, kv)
		}
	}
	if out, err := bare.CombinedOutput(); err == nil || !strings.Contains(string(out), "no root credentials for the admin API") {
		t.Errorf("redoubt repair without keys: %v\n%s", err, out)
	}
	var doc admin.Status
	raw, err := s.status(context.Background())
	if err != nil || json.Unmarshal(raw, &doc) != nil {
		t.Fatalf("signed /status: %v %s", err, raw)
	}
	if doc.AdminRequestsRefused < 3 {
		t.Errorf("/status counts %d refused admin requests; want at least 3", doc.AdminRequestsRefused)
	}
	if !strings.Contains(s.output(), "admin: request refused") {
		t.Errorf("the refusals are not logged:\n%s", tail(s.output(), 3000))
	}
}

// doAdmin sends req and returns the refusal as an *admin.Error.
func doAdmin(req *http.Request) error {
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var e admin.APIError
	if resp.StatusCode == 200 {
		return nil
	}
	json.NewDecoder(resp.Body).Decode(&e)
	return &admin.Error{Status: resp.StatusCode, Code: e.Code, Message: e.Error}
}

// TestStalledPutFreedByTheBinary: a PUT whose client stops sending is
// answered RequestTimeout after --body-idle-timeout.
func TestStalledPutFreedByTheBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a server process")
	}
	s := startServer(t, serverOptions{args: []string{"--body-idle-timeout", "500ms"}})
	bucket := newBucket(t, sdkClient(s), "stall")
	full := payload(5, 1<<20)
	release := make(chan struct{})
	defer close(release)
	stall := readerFunc(func([]byte) (int, error) {
		select {
		case <-release:
		case <-time.After(20 * time.Second):
		}
		return 0, errors.New("stopped")
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "PUT", s.Endpoint+"/"+bucket+"/stalled", io.MultiReader(bytes.NewReader(full[:300<<10]), stall))
	if err != nil {
		t.Fatal(err)
	}
	req.ContentLength = int64(len(full))
	sum := sha256.Sum256(full)
	hash := hex.EncodeToString(sum[:])
	req.Header.Set("X-Amz-Content-Sha256", hash)
	if err := v4.NewSigner().SignHTTP(ctx, aws.Credentials{AccessKeyID: testAccessKey, SecretAccessKey: testSecretKey}, req, hash, "s3", testRegion, time.Now()); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		t.Fatalf("no answer to the stalled PUT: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 400 || !strings.Contains(string(b), "<Code>RequestTimeout</Code>") {
		t.Fatalf("stalled PUT: %d %s; want 400 RequestTimeout", resp.StatusCode, b)
	}
	t.Logf("stalled PUT answered after %v", time.Since(start).Round(time.Millisecond))
}

type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(p []byte) (int, error) { return f(p) }
