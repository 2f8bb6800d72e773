package node

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/redoubt-io/redoubt/internal/testlog"
)

// mountTmpfs mounts a tmpfs of size bytes on a new directory until the
// test ends. It skips the test where mounting is not allowed.
func mountTmpfs(t *testing.T, size string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("mounting a tmpfs needs root")
	}
	dir := t.TempDir() // removed after the unmount below: cleanups run last first
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size="+size); err != nil {
		t.Skipf("cannot mount a tmpfs: %v", err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, 0); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
	return dir
}

// fillOS writes a file into dir until the disk is full, as another
// program would, and returns its name.
func fillOS(t *testing.T, dir string) string {
	t.Helper()
	name := filepath.Join(dir, "ballast")
	f, err := os.Create(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	chunk := make([]byte, 64<<10)
	for {
		if _, err := f.Write(chunk); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatal(err)
			}
			return name
		}
	}
}

// The whole story on a real file system (tmpfs) with the operating
// system's Pebble: filled through S3 until refused, reads and deletes go
// on, writes resume; filled to the last byte by another program, a
// restart fails at once and says why; freed, it starts again.
func TestFullTmpfsDrive(t *testing.T) {
	dir := mountTmpfs(t, "64m")
	cfg := DefaultConfig()
	cfg.DataDirs = []string{dir}
	cfg.Reserve = 16 << 20
	cfg.S3Addr, cfg.AdminAddr = "127.0.0.1:0", "127.0.0.1:0"
	cfg.Credentials = &Credentials{AccessKey: clusterAccessKey, SecretKey: clusterSecretKey}
	sn := &spaceNode{t: t, cfg: cfg, log: slog.New(slog.NewTextHandler(testlog.Writer(t), &slog.HandlerOptions{Level: slog.LevelInfo}))}
	t.Cleanup(sn.stop)
	sn.start()
	ctx := context.Background()
	if _, err := sn.client.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(spaceBucket)}); err != nil {
		t.Fatal(err)
	}
	const size = 1 << 20
	keys := sn.fillThroughS3("big/", size)
	sn.checkReadable("big/", keys, size)
	sn.deleteKeys(keys[len(keys)/2:])
	keys = keys[:len(keys)/2]
	if err := sn.put("after", payload(7, size)); err != nil {
		t.Fatalf("PUT after deletes: %v", err)
	}
	sn.stop()

	ballast := fillOS(t, dir)
	start := time.Now()
	n, err := Start(ctx, cfg, sn.log)
	if err == nil {
		n.close()
		t.Fatal("started on a full drive")
	}
	if took := time.Since(start); took > 10*time.Second || !errors.Is(err, syscall.ENOSPC) || !strings.Contains(err.Error(), dir) {
		t.Fatalf("start on a full drive: %v after %v; want at once, no space, naming %s", err, took, dir)
	}
	t.Logf("refused in %v: %v", time.Since(start).Round(time.Millisecond), err)
	if err := os.Remove(ballast); err != nil {
		t.Fatal(err)
	}
	sn.start()
	sn.checkReadable("big/", keys, size)
}
