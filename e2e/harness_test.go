// Package e2e runs the real redoubt binary as a user would — a separate
// process on loopback ports, with real S3 clients against it — and kills,
// restarts and breaks it the ways real deployments break.
package e2e

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redoubt-io/redoubt/internal/admin"
)

// binary is the redoubt binary built once for the whole run.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "redoubt-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "redoubt")
	build := exec.Command("go", "build", "-o", binary, "../cmd/redoubt")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building redoubt:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

const (
	testAccessKey = "REDOUBTTESTACCESSKEY"
	testSecretKey = "redoubt-test-secret-key-0123456789abcdef"
	testRegion    = "us-east-1"
)

// serverOptions says how to start a server.
type serverOptions struct {
	drives int      // number of drive directories to create (ignored when dirs is set)
	dirs   []string // existing drive directories to reuse
	args   []string // extra flags
	env    []string // extra environment
}

// server is one running redoubt process.
type server struct {
	t        testing.TB
	opts     serverOptions
	Dirs     []string
	Endpoint string // http://127.0.0.1:PORT
	Admin    string // http://127.0.0.1:PORT
	cmd      *exec.Cmd
	done     chan struct{}
	exitErr  error

	mu  sync.Mutex
	out bytes.Buffer // everything the process printed
}

// startServer starts redoubt with fresh (or given) drive directories on
// free loopback ports and returns once /health answers. The process is
// killed when the test ends.
func startServer(t testing.TB, opts serverOptions) *server {
	t.Helper()
	if opts.dirs == nil {
		if opts.drives == 0 {
			opts.drives = 1
		}
		base := t.TempDir()
		for i := range opts.drives {
			opts.dirs = append(opts.dirs, filepath.Join(base, fmt.Sprintf("drive%d", i+1)))
		}
	}
	s := &server{t: t, opts: opts, Dirs: opts.dirs}
	s.start()
	t.Cleanup(func() { s.kill() })
	return s
}

func (s *server) start() {
	t := s.t
	t.Helper()
	args := []string{"server", "--s3-addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0", "--region", testRegion}
	for _, d := range s.Dirs {
		args = append(args, "--data", d)
	}
	args = append(args, s.opts.args...)
	cmd := exec.Command(binary, args...)
	cmd.Env = append(os.Environ(),
		"REDOUBT_ACCESS_KEY="+testAccessKey,
		"REDOUBT_SECRET_KEY="+testSecretKey,
	)
	cmd.Env = append(cmd.Env, s.opts.env...)
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting redoubt: %v", err)
	}
	s.cmd = cmd
	s.done = make(chan struct{})
	s.Endpoint, s.Admin = "", ""
	found := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		signalled := false
		for sc.Scan() {
			line := sc.Text()
			s.mu.Lock()
			s.out.WriteString(line + "\n")
			if v, ok := field(line, "S3 endpoint:"); ok {
				s.Endpoint = v
			}
			if v, ok := field(line, "Admin:"); ok {
				s.Admin = v
			}
			ready := s.Endpoint != "" && s.Admin != ""
			s.mu.Unlock()
			if ready && !signalled {
				signalled = true
				close(found)
			}
		}
	}()
	go func() {
		s.exitErr = cmd.Wait()
		pw.Close()
		close(s.done)
	}()
	deadline := time.After(30 * time.Second)
	select {
	case <-found:
	case <-s.done:
		t.Fatalf("redoubt exited before it was ready: %v\n%s", s.exitErr, s.output())
	case <-deadline:
		t.Fatalf("redoubt printed no endpoints within 30s:\n%s", s.output())
	}
	s.waitHealthy()
}

func field(line, label string) (string, bool) {
	i := strings.Index(line, label)
	if i < 0 {
		return "", false
	}
	return strings.TrimSpace(line[i+len(label):]), true
}

func (s *server) waitHealthy() {
	s.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(s.Admin + "/health")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("redoubt not healthy within 30s: %v\n%s", err, s.output())
		}
		select {
		case <-s.done:
			s.t.Fatalf("redoubt exited: %v\n%s", s.exitErr, s.output())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// output returns everything the process printed so far.
func (s *server) output() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.out.String()
}

// kill sends SIGKILL and waits for the process to be gone.
func (s *server) kill() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	s.cmd.Process.Kill()
	<-s.done
}

// stop sends SIGTERM and waits; it fails the test unless the exit is clean.
func (s *server) stop() {
	s.t.Helper()
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(30 * time.Second):
		s.t.Fatalf("redoubt did not exit within 30s of SIGTERM")
	}
	if s.exitErr != nil {
		s.t.Fatalf("redoubt exited with %v after SIGTERM\n%s", s.exitErr, s.output())
	}
}

// restart starts the server again on the same drives.
func (s *server) restart() {
	s.t.Helper()
	s.start()
}

// status fetches /status as raw JSON.
func (s *server) status(ctx context.Context) ([]byte, error) {
	return s.adminGet(ctx, "/status")
}

// rootAdmin signs admin calls with the root credentials every test server
// is given; the admin API answers nothing unsigned but /health.
var rootAdmin = &admin.Client{AccessKey: testAccessKey, SecretKey: testSecretKey, Region: testRegion}

// adminGet is a signed GET of path on the server's admin API; it returns
// the body of a 200 answer.
func (s *server) adminGet(ctx context.Context, path string) ([]byte, error) {
	req, err := rootAdmin.NewRequest(ctx, http.MethodGet, s.Admin+path, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("GET %s: %s: %s", path, resp.Status, b)
	}
	return b, err
}

// adminEnv is the environment of a redoubt verb that calls the admin API
// of a test server: the root credentials it signs with.
func adminEnv() []string {
	return append(os.Environ(), "REDOUBT_ACCESS_KEY="+testAccessKey, "REDOUBT_SECRET_KEY="+testSecretKey)
}

// runToExit runs `redoubt server` with the server's drives and flags to
// its exit and returns what it printed and how it exited; it kills the
// process after d.
func (s *server) runToExit(d time.Duration) (string, error) {
	args := []string{"server", "--s3-addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0"}
	for _, dir := range s.Dirs {
		args = append(args, "--data", dir)
	}
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, append(args, s.opts.args...)...)
	cmd.Env = append(os.Environ(), s.opts.env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// runUntil starts redoubt with args and returns once its output contains
// marker (or it exits, or d passes). The process goes on; the test ends it
// with interruptAndWait or it is killed at cleanup.
func (s *server) runUntil(args []string, marker string, d time.Duration) (string, error) {
	cmd := exec.Command(binary, args...)
	cmd.Env = append(os.Environ(), s.opts.env...)
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		return "", err
	}
	s.cmd = cmd
	s.done = make(chan struct{})
	s.t.Cleanup(func() { s.kill() })
	found := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		seen := false
		for sc.Scan() {
			s.mu.Lock()
			s.out.WriteString(sc.Text() + "\n")
			s.mu.Unlock()
			if !seen && strings.Contains(sc.Text(), marker) {
				seen = true
				close(found)
			}
		}
	}()
	go func() {
		s.exitErr = cmd.Wait()
		pw.Close()
		close(s.done)
	}()
	select {
	case <-found:
		return s.output(), nil
	case <-s.done:
		return s.output(), fmt.Errorf("exited before %q: %v", marker, s.exitErr)
	case <-time.After(d):
		return s.output(), fmt.Errorf("no %q within %v", marker, d)
	}
}

// interruptAndWait sends SIGINT, as Ctrl-C does, and waits for a clean exit.
func (s *server) interruptAndWait(d time.Duration) error {
	s.cmd.Process.Signal(os.Interrupt)
	select {
	case <-s.done:
		return s.exitErr
	case <-time.After(d):
		return fmt.Errorf("still running %v after SIGINT", d)
	}
}
