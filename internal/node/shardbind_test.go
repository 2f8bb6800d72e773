package node

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/redoubt-io/redoubt/internal/objects"
)

// Shard files in the wrong place, seen from outside: what a GET answers,
// what the scrubber and `redoubt repair` find and fix.

// standaloneClient is an S3 client of a standalone test node that does
// not retry, so every failure shows.
func standaloneClient(n *Node) *s3.Client {
	return s3.New(s3.Options{
		Region:           n.cfg.Region,
		Credentials:      credentials.NewStaticCredentialsProvider(n.cfg.Credentials.AccessKey, n.cfg.Credentials.SecretKey, ""),
		BaseEndpoint:     aws.String(n.S3URL),
		UsePathStyle:     true,
		RetryMaxAttempts: 1,
	})
}

// bindObject is an object stored by a test and the shard files its PUT
// made, by shard index.
type bindObject struct {
	key   string
	body  []byte
	files map[int]string
}

// shardIndex is the shard index a shard file's name ends with.
func shardIndex(t *testing.T, path string) int {
	t.Helper()
	n, err := strconv.Atoi(path[strings.LastIndexByte(path, '.')+1:])
	if err != nil {
		t.Fatalf("shard file %s: %v", path, err)
	}
	return n
}

func readAllClose(t *testing.T, rc io.ReadCloser) []byte {
	t.Helper()
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// putTracked stores body under key through the object layer and returns
// the shard files the PUT created.
func putTracked(t *testing.T, n *Node, bucket, key string, body []byte) bindObject {
	t.Helper()
	ctx := t.Context()
	if _, err := n.objects.HeadBucket(ctx, bucket); err != nil {
		if err := n.objects.CreateBucket(ctx, bucket); err != nil {
			t.Fatal(err)
		}
	}
	before := listShardFiles(t, n)
	if _, err := n.objects.PutObject(ctx, bucket, key, bytes.NewReader(body), int64(len(body)), objects.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	o := bindObject{key: key, body: body, files: map[int]string{}}
	for _, f := range listShardFiles(t, n) {
		if !slices.Contains(before, f) {
			o.files[shardIndex(t, f)] = f
		}
	}
	if len(o.files) != 4 {
		t.Fatalf("PUT %s made %d shard files, want 4 (EC 2+2)", key, len(o.files))
	}
	return o
}

// listShardFiles is shardFiles on drives that may not hold one yet.
func listShardFiles(t *testing.T, n *Node) []string {
	t.Helper()
	var out []string
	for _, d := range n.cfg.DataDirs {
		err := filepath.WalkDir(filepath.Join(d, "shards"), func(p string, e fs.DirEntry, err error) error {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			if err == nil && !e.IsDir() {
				out = append(out, p)
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// sameDrive reports whether two shard files are on the same drive.
func sameDrive(n *Node, a, b string) bool {
	for _, d := range n.cfg.DataDirs {
		if strings.HasPrefix(a, d+string(filepath.Separator)) {
			return strings.HasPrefix(b, d+string(filepath.Separator))
		}
	}
	return false
}

// twoObjectsSharingADrive stores objects a and b of the same size and
// different bytes such that data shard 0 of both is on one drive, the
// shard a GET reads first.
func twoObjectsSharingADrive(t *testing.T, n *Node, bucket string, size int) (a, b bindObject) {
	t.Helper()
	a = putTracked(t, n, bucket, "a", payload(1, size))
	for i := range 40 {
		b = putTracked(t, n, bucket, "b", payload(uint64(100+i), size))
		if sameDrive(n, a.files[0], b.files[0]) {
			return a, b
		}
	}
	t.Fatal("no second object with shard 0 on the first one's drive")
	return
}

func swapFiles(t *testing.T, p, q string) {
	t.Helper()
	bp, bq := readBytes(t, p), readBytes(t, q)
	if len(bp) != len(bq) {
		t.Fatalf("swapping files of %d and %d bytes", len(bp), len(bq))
	}
	writeBytes(t, p, bq)
	writeBytes(t, q, bp)
}

func readBytes(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func writeBytes(t *testing.T, p string, b []byte) {
	t.Helper()
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// snapshot returns the bytes of every file named.
func snapshot(t *testing.T, files ...string) map[string][]byte {
	out := map[string][]byte{}
	for _, f := range files {
		out[f] = readBytes(t, f)
	}
	return out
}

// restored polls until every file holds its bytes of want again.
func restored(want map[string][]byte) bool {
	return pollUntil(10*time.Second, func() bool {
		for f, b := range want {
			if got, err := os.ReadFile(f); err != nil || !bytes.Equal(got, b) {
				return false
			}
		}
		return true
	})
}

// The hole this guards: the shard files of two objects of the same size
// swapped on one drive (a misdirected write or rename, a restored backup)
// were served with 200 as the other object's bytes under this object's
// ETag. Now each GET answers its own object's exact bytes, the bad files
// are counted and rebuilt; with too few of an object's own shards left,
// the GET is a 503, never another object's bytes.
func TestSwappedShardFileIsNotServed(t *testing.T) {
	n, serve := startUpkeepNode(t, 4, func(c *Config) { c.Scrub.Interval = 0 })
	a, b := twoObjectsSharingADrive(t, n, "swap", 300<<10)
	good := snapshot(t, a.files[0], b.files[0])
	swapFiles(t, a.files[0], b.files[0])
	serve()
	c := standaloneClient(n)
	ctx := t.Context()

	for _, o := range []bindObject{a, b} {
		out, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("swap"), Key: aws.String(o.key)})
		if err != nil {
			t.Fatalf("GET %s: %v", o.key, err)
		}
		got := readAllClose(t, out.Body)
		if !bytes.Equal(got, o.body) {
			t.Fatalf("GET %s through a swapped shard file: %d bytes, not the object's own", o.key, len(got))
		}
		rng, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("swap"), Key: aws.String(o.key), Range: aws.String("bytes=1000-1999")})
		if err != nil {
			t.Fatalf("ranged GET %s: %v", o.key, err)
		}
		if got := readAllClose(t, rng.Body); !bytes.Equal(got, o.body[1000:2000]) {
			t.Fatalf("ranged GET %s: not the object's own bytes", o.key)
		}
	}
	if got := n.Status(ctx).CorruptionsTotal; got < 2 {
		t.Errorf("corruptions_total %d, want both swapped files counted", got)
	}
	// Read repair puts both files back as they were written.
	if !restored(good) {
		t.Fatal("the swapped files were not rebuilt after the reads")
	}

	// Three of a's four shard places now hold b's files: a cannot be
	// read, and must not be answered with b's bytes.
	bFiles := putTracked(t, n, "swap", "b2", payload(7, 300<<10))
	for i := range 3 {
		writeBytes(t, a.files[i], readBytes(t, bFiles.files[i]))
	}
	_, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("swap"), Key: aws.String("a")})
	if errStatus(err) != http.StatusServiceUnavailable {
		t.Fatalf("GET with one own shard left: %v, want 503", err)
	}
}

// The scrubber finds swapped files, counts them as corrupt and rebuilds
// both, with no GET to tell it.
func TestScrubRepairsSwappedShardFiles(t *testing.T) {
	n, serve := startUpkeepNode(t, 4, tinyScrub)
	a, b := twoObjectsSharingADrive(t, n, "swap", 300<<10)
	good := snapshot(t, a.files[0], b.files[0])
	swapFiles(t, a.files[0], b.files[0])
	serve()
	if !pollUntil(10*time.Second, func() bool { return scrubStatus(n).RepairedShards >= 2 }) {
		t.Fatalf("swapped shards not repaired: %+v", scrubStatus(n))
	}
	if st := scrubStatus(n); st.CorruptShards != 2 || st.RepairFailures != 0 {
		t.Errorf("status %+v: want two bad shards found, no failure", st)
	}
	if !restored(good) {
		t.Fatal("scrub did not restore the swapped files as written")
	}
	for _, o := range []bindObject{a, b} {
		got, err := getBytes(t.Context(), standaloneClient(n), "swap", o.key)
		if err != nil || !bytes.Equal(got, o.body) {
			t.Fatalf("GET %s after scrub: %v", o.key, err)
		}
	}
}

// runRepair runs `redoubt repair` as the command does: POST /repair on the
// admin endpoint, then GET it until the pass ends.
func runRepair(t *testing.T, n *Node) RepairProgress {
	t.Helper()
	call := func(method string) RepairProgress {
		var p RepairProgress
		if err := rootClient(n).Call(t.Context(), n.AdminURL, method, "/repair", nil, &p); err != nil {
			t.Fatal(err)
		}
		return p
	}
	p := call(http.MethodPost)
	if !pollUntil(30*time.Second, func() bool { p = call(http.MethodGet); return !p.Running }) {
		t.Fatalf("repair pass still running: %+v", p)
	}
	return p
}

// `redoubt repair` finds and rebuilds every kind of file out of place:
// two objects' files swapped, shard 1's file in shard 0's place, a file
// restored from an older write of the same key, a truncated file.
func TestRepairFindsMisplacedShardFiles(t *testing.T) {
	n, serve := startUpkeepNode(t, 4, func(c *Config) { c.Scrub.Interval = 0 })
	const size = 300 << 10
	a, b := twoObjectsSharingADrive(t, n, "mix", size)
	idx := putTracked(t, n, "mix", "index", payload(3, size))
	older := putTracked(t, n, "mix", "key", payload(4, size))
	olderShard := readBytes(t, older.files[1])
	current := putTracked(t, n, "mix", "key", payload(5, size))
	cut := putTracked(t, n, "mix", "cut", payload(6, size))
	damaged := []string{a.files[0], b.files[0], idx.files[0], current.files[1], cut.files[2]}
	good := snapshot(t, damaged...)

	swapFiles(t, a.files[0], b.files[0])
	writeBytes(t, idx.files[0], readBytes(t, idx.files[1]))
	writeBytes(t, current.files[1], olderShard)
	writeBytes(t, cut.files[2], good[cut.files[2]][:len(good[cut.files[2]])/3])
	serve()

	p := runRepair(t, n)
	if p.Rebuilt != int64(len(damaged)) || p.Failed != 0 || p.LastError != "" {
		t.Fatalf("repair %+v: want %d shards rebuilt, no failure", p, len(damaged))
	}
	if !restored(good) {
		t.Fatal("repair did not restore the files as written")
	}
	for _, o := range []bindObject{a, b, idx, current, cut} {
		got, err := getBytes(t.Context(), standaloneClient(n), "mix", o.key)
		if err != nil || !bytes.Equal(got, o.body) {
			t.Fatalf("GET %s after repair: %v", o.key, err)
		}
	}
	if p := runRepair(t, n); p.Rebuilt != 0 || p.Failed != 0 {
		t.Fatalf("second repair pass %+v: want nothing to do", p)
	}
}
