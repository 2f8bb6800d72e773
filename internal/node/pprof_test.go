package node

import (
	"context"
	"log/slog"
	"net/http"
	"path/filepath"
	"testing"
)

// startNode runs a one-drive node on loopback until the test ends.
func startNode(t *testing.T, pprof bool) *Node {
	t.Helper()
	return startNodeWith(t, func(c *Config) { c.Pprof = pprof })
}

// startNodeWith runs a one-drive node, its default config changed by mod,
// on loopback until the test ends.
func startNodeWith(t *testing.T, mod func(*Config)) *Node {
	t.Helper()
	cfg := DefaultConfig()
	cfg.DataDirs = []string{filepath.Join(t.TempDir(), "d1")}
	cfg.S3Addr, cfg.AdminAddr = "127.0.0.1:0", "127.0.0.1:0"
	cfg.Credentials = &Credentials{AccessKey: "testaccesskey", SecretKey: "testsecretkey1234"}
	if mod != nil {
		mod(&cfg)
	}
	logger := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	ctx, cancel := context.WithCancel(t.Context())
	n, err := Start(ctx, cfg, logger)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- n.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return n
}

// adminStatus is the status of a GET of path signed by the root.
func adminStatus(t *testing.T, n *Node, path string) int {
	t.Helper()
	req, err := rootClient(n).NewRequest(t.Context(), http.MethodGet, n.AdminURL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func TestPprofOffByDefault(t *testing.T) {
	n := startNode(t, false)
	if got := adminStatus(t, n, "/debug/pprof/cmdline"); got != http.StatusNotFound {
		t.Errorf("/debug/pprof/cmdline without Pprof: status %d, want 404", got)
	}
}

func TestPprofServedWhenEnabled(t *testing.T) {
	n := startNode(t, true)
	for _, p := range []string{"/debug/pprof/", "/debug/pprof/cmdline", "/debug/pprof/heap"} {
		if got := adminStatus(t, n, p); got != http.StatusOK {
			t.Errorf("%s with Pprof: status %d, want 200", p, got)
		}
	}
	if got := adminStatus(t, n, "/health"); got != http.StatusOK {
		t.Errorf("/health with Pprof: status %d, want 200", got)
	}
}
