package main

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/redoubt-io/redoubt/internal/node"
)

// startSignedServer runs a one-drive node in this process with its data
// directory named redoubt-data under a fresh working directory, as
// `redoubt server` run there leaves it: root credentials generated on
// first start and kept in the data directory. It returns the node and
// the working directory.
func startSignedServer(t *testing.T) (*node.Node, string) {
	t.Helper()
	wd := t.TempDir()
	cfg := node.DefaultConfig()
	cfg.DataDirs = []string{filepath.Join(wd, "redoubt-data")}
	cfg.S3Addr, cfg.AdminAddr = "127.0.0.1:0", "127.0.0.1:0"
	logger := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	ctx, cancel := context.WithCancel(t.Context())
	n, err := node.Start(ctx, cfg, logger)
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
	return n, wd
}

// clearAdminEnv keeps the environment of the test run out of the
// credential lookup.
func clearAdminEnv(t *testing.T) {
	for _, v := range []string{"REDOUBT_ACCESS_KEY", "REDOUBT_SECRET_KEY", "REDOUBT_DATA", "REDOUBT_ADMIN_ADDR", "REDOUBT_REGION"} {
		t.Setenv(v, "")
	}
}

// TestAdminVerbsSign runs the admin verbs against a server that takes
// only signed requests, with the keys found each way a user gives them.
func TestAdminVerbsSign(t *testing.T) {
	clearAdminEnv(t)
	n, wd := startSignedServer(t)
	addr := strings.TrimPrefix(n.AdminURL, "http://")

	// From the directory the server was started in: the credentials file
	// in ./redoubt-data, found without any flag.
	t.Chdir(wd)
	code, out, errOut := runCLI(t, "status", "--admin-addr", addr)
	if code != 0 || !strings.Contains(out, "Redundancy:") {
		t.Fatalf("status from the server's directory: exit %d\n%s%s", code, out, errOut)
	}
	code, out, errOut = runCLI(t, "repair", "--admin-addr", addr)
	if code != 0 || !strings.Contains(out, "repair finished") {
		t.Errorf("repair: exit %d\n%s%s", code, out, errOut)
	}
	if code, out, errOut := runCLI(t, "repair", "status", "--admin-addr", addr); code != 0 || !strings.Contains(out, "Degraded:") {
		t.Errorf("repair status: exit %d\n%s%s", code, out, errOut)
	}
	// The default scrub interval is days: a pass now is one on request.
	code, out, errOut = runCLI(t, "scrub", "--admin-addr", addr)
	if code != 0 || !strings.Contains(out, "scrub finished") {
		t.Errorf("scrub: exit %d\n%s%s", code, out, errOut)
	}
	if code, out, errOut := runCLI(t, "status", "--admin-addr", addr); code != 0 || !strings.Contains(out, "last full pass") || !strings.Contains(out, "next pass due") {
		t.Errorf("status after a scrub: exit %d\n%s%s", code, out, errOut)
	}

	// From elsewhere: --data, the keys as flags, the keys in the
	// environment as `redoubt server` reads them.
	t.Chdir(t.TempDir())
	dataDir := filepath.Join(wd, "redoubt-data")
	if code, out, errOut := runCLI(t, "status", "--json", "--admin-addr", addr, "--data", dataDir); code != 0 || !strings.Contains(out, `"drives"`) {
		t.Errorf("status --data: exit %d\n%s%s", code, out, errOut)
	}
	if code, _, errOut := runCLI(t, "status", "--admin-addr", addr, "--access-key", n.Credentials.AccessKey, "--secret-key", n.Credentials.SecretKey); code != 0 {
		t.Errorf("status with the keys as flags: exit %d\n%s", code, errOut)
	}
	t.Setenv("REDOUBT_ACCESS_KEY", n.Credentials.AccessKey)
	t.Setenv("REDOUBT_SECRET_KEY", n.Credentials.SecretKey)
	t.Setenv("REDOUBT_ADMIN_ADDR", addr)
	if code, _, errOut := runCLI(t, "repair", "status"); code != 0 {
		t.Errorf("repair status with the keys and address in the environment: exit %d\n%s", code, errOut)
	}
}

// TestAdminVerbsSayWhatIsWrong covers the mistakes: no keys anywhere, half
// a pair, a wrong secret.
func TestAdminVerbsSayWhatIsWrong(t *testing.T) {
	clearAdminEnv(t)
	n, _ := startSignedServer(t)
	addr := strings.TrimPrefix(n.AdminURL, "http://")
	t.Chdir(t.TempDir())
	code, _, errOut := runCLI(t, "status", "--admin-addr", addr)
	if code != 1 || !strings.Contains(errOut, "no root credentials for the admin API") || !strings.Contains(errOut, "--access-key") ||
		!strings.Contains(errOut, "redoubt-data or redoubt-dev") {
		t.Errorf("no keys: exit %d, %q", code, errOut)
	}
	code, _, errOut = runCLI(t, "layout", "show", "--admin-addr", addr, "--access-key", "ONLYHALF")
	if code != 1 || !strings.Contains(errOut, "give both --access-key and --secret-key") {
		t.Errorf("half a pair: exit %d, %q", code, errOut)
	}
	code, _, errOut = runCLI(t, "repair", "--admin-addr", addr, "--access-key", n.Credentials.AccessKey, "--secret-key", "wrong-secret-key")
	if code != 1 || !strings.Contains(errOut, "SignatureDoesNotMatch") || !strings.Contains(errOut, "from --access-key") {
		t.Errorf("wrong secret: exit %d, %q", code, errOut)
	}
	empty := t.TempDir()
	code, _, errOut = runCLI(t, "status", "--admin-addr", addr, "--data", empty)
	if code != 1 || !strings.Contains(errOut, filepath.Join(empty, "redoubt-credentials.json")) {
		t.Errorf("--data without credentials: exit %d, %q", code, errOut)
	}
	if err := os.WriteFile(filepath.Join(empty, "redoubt-credentials.json"), []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, errOut = runCLI(t, "status", "--admin-addr", addr, "--data", empty)
	if code != 1 || !strings.Contains(errOut, "malformed credentials file") {
		t.Errorf("--data with a broken file: exit %d, %q", code, errOut)
	}
}
