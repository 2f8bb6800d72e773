package e2e

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// awsCLI runs the aws CLI found on PATH against one server, with a private
// HOME holding a config for path-style addressing and no retries.
type awsCLI struct {
	t    *testing.T
	s    *server
	home string
}

func newAWSCLI(t *testing.T, s *server) *awsCLI {
	t.Helper()
	if _, err := exec.LookPath("aws"); err != nil {
		t.Skip("aws CLI not on PATH")
	}
	home := t.TempDir()
	cfg := "[default]\nregion = " + testRegion + "\ns3 =\n    addressing_style = path\nretry_mode = standard\nmax_attempts = 1\n"
	if err := os.MkdirAll(filepath.Join(home, ".aws"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(home, ".aws", "config"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return &awsCLI{t: t, s: s, home: home}
}

// run runs `aws ARGS... --endpoint-url E` and returns stdout; it fails the
// test, showing the output, if the command fails.
func (a *awsCLI) run(args ...string) string {
	a.t.Helper()
	out, err := a.try(args...)
	if err != nil {
		a.t.Fatalf("aws %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

func (a *awsCLI) try(args ...string) (string, error) {
	// A stalled request fails in seconds, not after the CLI's 60 s default.
	args = append(args, "--endpoint-url", a.s.Endpoint, "--cli-read-timeout", "10")
	cmd := exec.Command("aws", args...)
	cmd.Env = append(os.Environ(),
		"HOME="+a.home,
		"AWS_CONFIG_FILE="+filepath.Join(a.home, ".aws", "config"),
		"AWS_SHARED_CREDENTIALS_FILE="+filepath.Join(a.home, ".aws", "credentials"),
		"AWS_ACCESS_KEY_ID="+testAccessKey,
		"AWS_SECRET_ACCESS_KEY="+testSecretKey,
		"AWS_DEFAULT_REGION="+testRegion,
		"AWS_MAX_ATTEMPTS=1",
		"AWS_RETRY_MODE=standard",
		"AWS_PAGER=",
	)
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		return "", err
	}
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return buf.String(), err
	case <-time.After(3 * time.Minute):
		cmd.Process.Kill()
		<-done
		return buf.String(), fmt.Errorf("timed out")
	}
}

func sameFile(t *testing.T, a, b string) {
	t.Helper()
	x, err := os.ReadFile(a)
	if err != nil {
		t.Fatal(err)
	}
	y, err := os.ReadFile(b)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(x, y) {
		t.Errorf("%s (%d bytes) and %s (%d bytes) differ", a, len(x), b, len(y))
	}
}

// TestAWSCLI drives a server with the aws CLI as users type it.
func TestAWSCLI(t *testing.T) {
	s := startLogged(t, serverOptions{drives: 4})
	a := newAWSCLI(t, s)
	dir := t.TempDir()
	b := fmt.Sprintf("cli-%d", time.Now().UnixNano()%1e6)
	a.run("s3", "mb", "s3://"+b)
	if out := a.run("s3", "ls"); !strings.Contains(out, b) {
		t.Errorf("aws s3 ls does not list %s:\n%s", b, out)
	}

	small := filepath.Join(dir, "small.bin")
	big := filepath.Join(dir, "big.bin")
	empty := filepath.Join(dir, "empty.bin")
	os.WriteFile(small, payload(30001, 12345), 0o644)
	os.WriteFile(big, payload(30002, 20<<20+7), 0o644) // past the CLI's 8 MiB threshold: multipart
	os.WriteFile(empty, nil, 0o644)
	for _, f := range []string{small, big, empty} {
		name := filepath.Base(f)
		a.run("s3", "cp", f, "s3://"+b+"/up/"+name)
		back := filepath.Join(dir, "back-"+name)
		a.run("s3", "cp", "s3://"+b+"/up/"+name, back)
		sameFile(t, f, back)
	}
	head := a.run("s3api", "head-object", "--bucket", b, "--key", "up/big.bin")
	if !strings.Contains(head, `"ContentLength": 20971527`) || !strings.Contains(head, `-3\"`) {
		t.Errorf("head-object of the 20 MiB upload: want ContentLength 20971527 and a 3-part ETag:\n%s", head)
	}
	ls := a.run("s3", "ls", "s3://"+b+"/up/")
	for _, name := range []string{"small.bin", "big.bin", "empty.bin"} {
		if !strings.Contains(ls, name) {
			t.Errorf("aws s3 ls s3://%s/up/ does not list %s:\n%s", b, name, ls)
		}
	}

	// sync a tree up, then down into a fresh directory.
	tree := filepath.Join(dir, "tree")
	var files []string
	for i := range 12 {
		rel := filepath.Join(fmt.Sprintf("d%d", i%3), fmt.Sprintf("sub%d", i%2), fmt.Sprintf("f %d.txt", i))
		p := filepath.Join(tree, rel)
		os.MkdirAll(filepath.Dir(p), 0o755)
		os.WriteFile(p, payload(uint64(31000+i), 1000*i), 0o644)
		files = append(files, filepath.ToSlash(rel))
	}
	a.run("s3", "sync", tree, "s3://"+b+"/tree")
	down := filepath.Join(dir, "down")
	a.run("s3", "sync", "s3://"+b+"/tree", down)
	for _, rel := range files {
		sameFile(t, filepath.Join(tree, rel), filepath.Join(down, rel))
	}
	// A second sync has nothing to do.
	if out := a.run("s3", "sync", tree, "s3://"+b+"/tree"); strings.Contains(out, "upload:") {
		t.Errorf("second aws s3 sync uploaded again:\n%s", out)
	}
	rec := a.run("s3", "ls", "--recursive", "s3://"+b+"/tree/")
	if n := strings.Count(rec, "\n"); n != len(files) {
		t.Errorf("aws s3 ls --recursive: %d lines, want %d:\n%s", n, len(files), rec)
	}

	// s3api
	obj := filepath.Join(dir, "api.bin")
	os.WriteFile(obj, payload(32000, 777777), 0o644)
	put := a.run("s3api", "put-object", "--bucket", b, "--key", "api/obj", "--body", obj, "--content-type", "application/x-cli", "--metadata", "k1=v1")
	if want := md5hex(payload(32000, 777777)); !strings.Contains(put, want) {
		t.Errorf("put-object: ETag %s not in output:\n%s", want, put)
	}
	head = a.run("s3api", "head-object", "--bucket", b, "--key", "api/obj")
	for _, want := range []string{`"ContentLength": 777777`, `"ContentType": "application/x-cli"`, `"k1": "v1"`} {
		if !strings.Contains(head, want) {
			t.Errorf("head-object: %s missing:\n%s", want, head)
		}
	}
	got := filepath.Join(dir, "api-back.bin")
	a.run("s3api", "get-object", "--bucket", b, "--key", "api/obj", got)
	sameFile(t, obj, got)
	part := filepath.Join(dir, "api-range.bin")
	a.run("s3api", "get-object", "--bucket", b, "--key", "api/obj", "--range", "bytes=1000-1999", part)
	if data, _ := os.ReadFile(part); !bytes.Equal(data, payload(32000, 777777)[1000:2000]) {
		t.Errorf("get-object --range: %d bytes, content differs", len(data))
	}
	if out, err := a.try("s3api", "head-object", "--bucket", b, "--key", "api/missing"); err == nil || !strings.Contains(out, "404") {
		t.Errorf("head-object of a missing key: err %v:\n%s", err, out)
	}

	// rm --recursive, then the bucket is empty and can be removed.
	a.run("s3", "rm", "--recursive", "s3://"+b+"/")
	if out := a.run("s3", "ls", "--recursive", "s3://"+b+"/"); strings.TrimSpace(out) != "" {
		t.Errorf("aws s3 ls after rm --recursive:\n%s", out)
	}
	a.run("s3", "rb", "s3://"+b)
	if out := a.run("s3", "ls"); slices.Contains(strings.Fields(out), b) {
		t.Errorf("aws s3 ls still lists %s after rb:\n%s", b, out)
	}
}
