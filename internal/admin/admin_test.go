package admin

import (
	"context"
	"encoding/json"
	"errors"
	"github.com/redoubt-io/redoubt/internal/testlog"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(testlog.Writer(t), nil))
}

func get(t *testing.T, srv *httptest.Server, method, path string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, srv.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(body)
}

func sampleStatus() Status {
	return Status{
		Version:       "v1.2.3",
		UptimeSeconds: 12.5,
		Region:        "us-east-1",
		S3Endpoint:    "http://127.0.0.1:9000",
		Policy:        "EC 2+2",
		Drives: []DriveStatus{
			{ID: "d1", Path: "/data/1", State: DriveOK, UsedBytes: 10, TotalBytes: 100, FreeBytes: 90, ShardsRead: 7},
			{ID: "d2", Path: "/data/2", State: DriveFailed, IOErrors: 3, LastError: "read /data/2/x: input/output error"},
		},
		MetadataReplicas: []ReplicaStatus{{Path: "/meta/a", State: ReplicaOK}},
		Objects:          42,
		Bytes:            4096,
		CorruptionsTotal: 1,
		Repair: RepairStatus{
			Running: true, DoneBytes: 5, TotalBytes: 10,
			LastRunStarted:  time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
			LastRunFinished: time.Date(2026, 1, 2, 3, 5, 5, 0, time.UTC),
		},
	}
}

func TestEndpoints(t *testing.T) {
	reg := prometheus.NewRegistry()
	ctr := prometheus.NewCounter(prometheus.CounterOpts{Name: "redoubt_test_requests_total", Help: "Test counter."})
	reg.MustRegister(ctr)
	ctr.Add(3)
	cfg := DefaultConfig()
	cfg.Registry = reg
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	var gotDeadline bool
	src := StatusFunc(func(ctx context.Context) Status {
		_, gotDeadline = ctx.Deadline()
		return sampleStatus()
	})
	srv := httptest.NewServer(New(cfg, src, testLogger(t)))
	defer srv.Close()

	resp, body := get(t, srv, http.MethodGet, "/health")
	if resp.StatusCode != http.StatusOK || body != "ok\n" {
		t.Errorf("/health = %d %q", resp.StatusCode, body)
	}
	if resp, _ := get(t, srv, http.MethodHead, "/health"); resp.StatusCode != http.StatusOK {
		t.Errorf("HEAD /health = %d", resp.StatusCode)
	}

	resp, body = get(t, srv, http.MethodGet, "/status")
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("/status = %d %s: %s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	if !gotDeadline {
		t.Errorf("Status called without a deadline")
	}
	if !strings.Contains(body, "\n  \"version\": \"v1.2.3\"") {
		t.Errorf("/status not indented JSON:\n%s", body)
	}
	var back Status
	if err := json.Unmarshal([]byte(body), &back); err != nil {
		t.Fatal(err)
	}
	want := sampleStatus()
	wantJSON, _ := json.Marshal(want)
	backJSON, _ := json.Marshal(back)
	if string(wantJSON) != string(backJSON) {
		t.Errorf("status round trip:\n got %s\nwant %s", backJSON, wantJSON)
	}
	// The names operators script against.
	var raw map[string]any
	json.Unmarshal([]byte(body), &raw)
	for _, k := range []string{"version", "uptime_seconds", "region", "s3_endpoint", "policy", "drives", "metadata_replicas", "objects", "bytes", "corruptions_total", "repair"} {
		if _, ok := raw[k]; !ok {
			t.Errorf("/status lacks %q", k)
		}
	}
	d := raw["drives"].([]any)[1].(map[string]any)
	for _, k := range []string{"id", "path", "state", "used_bytes", "total_bytes", "free_bytes", "shards_read", "corrupt_blocks", "io_errors", "last_error"} {
		if _, ok := d[k]; !ok {
			t.Errorf("drive lacks %q", k)
		}
	}
	if d["state"] != "failed" {
		t.Errorf("drive state = %v", d["state"])
	}
	rep := raw["repair"].(map[string]any)
	if rep["running"] != true || rep["last_run_started"] != "2026-01-02T03:04:05Z" {
		t.Errorf("repair = %v", rep)
	}

	resp, body = get(t, srv, http.MethodGet, "/metrics")
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, "redoubt_test_requests_total 3") {
		t.Errorf("/metrics = %d:\n%s", resp.StatusCode, body)
	}
	if strings.Contains(body, "go_goroutines") {
		t.Errorf("/metrics served more than the given registry")
	}

	if resp, _ := get(t, srv, http.MethodPost, "/status"); resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST /status = %d; want 405", resp.StatusCode)
	}
	if resp, _ := get(t, srv, http.MethodGet, "/nope"); resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET /nope = %d; want 404", resp.StatusCode)
	}
}

func TestEmptyStatusListsAreArrays(t *testing.T) {
	srv := httptest.NewServer(New(Config{Registry: prometheus.NewRegistry()}, StatusFunc(func(context.Context) Status {
		return Status{Version: "dev"}
	}), testLogger(t)))
	defer srv.Close()
	_, body := get(t, srv, http.MethodGet, "/status")
	if !strings.Contains(body, `"drives": []`) || !strings.Contains(body, `"metadata_replicas": []`) {
		t.Errorf("empty lists not [] :\n%s", body)
	}
	if strings.Contains(body, "last_run_started") {
		t.Errorf("zero repair times not omitted:\n%s", body)
	}
}

func TestStatusTimeout(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Registry = prometheus.NewRegistry()
	cfg.StatusTimeout = 20 * time.Millisecond
	srv := httptest.NewServer(New(cfg, StatusFunc(func(ctx context.Context) Status {
		<-ctx.Done() // a stuck component that honours its context
		return Status{Version: "late"}
	}), testLogger(t)))
	defer srv.Close()
	resp, body := get(t, srv, http.MethodGet, "/status")
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, `"late"`) {
		t.Errorf("/status = %d %s", resp.StatusCode, body)
	}
}

func TestMissingPieces(t *testing.T) {
	if err := DefaultConfig().Validate(); !errors.Is(err, ErrConfig) {
		t.Errorf("Validate without registry = %v; want ErrConfig", err)
	}
	srv := httptest.NewServer(New(Config{}, nil, testLogger(t)))
	defer srv.Close()
	for _, p := range []string{"/status", "/metrics"} {
		if resp, _ := get(t, srv, http.MethodGet, p); resp.StatusCode != http.StatusServiceUnavailable {
			t.Errorf("%s = %d; want 503", p, resp.StatusCode)
		}
	}
	if resp, _ := get(t, srv, http.MethodGet, "/health"); resp.StatusCode != http.StatusOK {
		t.Errorf("/health = %d; want 200 even unconfigured", resp.StatusCode)
	}
}

func TestNewRegistry(t *testing.T) {
	mfs, err := NewRegistry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, mf := range mfs {
		names = append(names, mf.GetName())
	}
	if !strings.Contains(strings.Join(names, " "), "go_goroutines") {
		t.Errorf("registry lacks the Go collector: %v", names)
	}
}
