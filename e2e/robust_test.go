package e2e

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"hash/fnv"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

var (
	kill9Loops = flag.Int("e2e.kill9", 20, "kill -9 rounds in TestKill9DuringUploads (3 under -short)")
	bigSize    = flag.Int64("e2e.bigsize", 1<<30, "object size for TestMemoryBigObject (try 5368709120 for a manual run)")
	robustSeed = flag.Uint64("e2e.seed", 0, "seed for randomized robustness tests (0: from the clock)")
)

func seedFlag() uint64 {
	if *robustSeed != 0 {
		return *robustSeed
	}
	return uint64(time.Now().UnixNano())
}

// objSpec is an object whose content is a pure function of (seed, size).
type objSpec struct {
	seed uint64
	size int64
}

// writeMixed PUTs n objects of mixed sizes: a third inline-small (≤128 KiB),
// the rest between 256 KiB and 3 MiB.
func writeMixed(t *testing.T, c *s3.Client, bucket, prefix string, n int, rng *rand.Rand) map[string]objSpec {
	t.Helper()
	objs := make(map[string]objSpec, n)
	for i := range n {
		var size int64
		if i%3 == 0 {
			size = rng.Int64N(128<<10 + 1)
		} else {
			size = 256<<10 + rng.Int64N(3<<20-256<<10)
		}
		key := fmt.Sprintf("%s/obj-%03d", prefix, i)
		spec := objSpec{seed: rng.Uint64(), size: size}
		if _, err := c.PutObject(context.Background(), &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(key),
			Body: newGenReader(spec.seed, size), ContentLength: aws.Int64(size)}); err != nil {
			t.Fatalf("PutObject %s (%d bytes): %v", key, size, err)
		}
		objs[key] = spec
	}
	return objs
}

// verifyAll GETs every object and compares it byte for byte.
func verifyAll(t *testing.T, c *s3.Client, bucket string, objs map[string]objSpec, when string) {
	t.Helper()
	keys := make([]string, 0, len(objs))
	for k := range objs {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	bad := 0
	for _, k := range keys {
		if err := verifyOne(c, bucket, k, objs[k]); err != nil {
			bad++
			if bad <= 10 {
				t.Errorf("%s: GET %s (%d bytes): %v", when, k, objs[k].size, err)
			}
		}
	}
	if bad > 10 {
		t.Errorf("%s: %d of %d objects failed", when, bad, len(objs))
	}
}

func verifyOne(c *s3.Client, bucket, key string, spec objSpec) error {
	out, err := c.GetObject(context.Background(), &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		return err
	}
	defer out.Body.Close()
	return compareStream(out.Body, spec.seed, spec.size)
}

// waitDriveState polls /status until the entry of the drive at path has a
// state containing want, reading objects meanwhile so the server notices.
func waitDriveState(t *testing.T, s *server, path, want string, poke func()) {
	t.Helper()
	var last map[string]any
	ok := pollUntil(15*time.Second, func() bool {
		if poke != nil {
			poke()
		}
		last = driveEntry(statusDrives2(t, s), path)
		st, _ := last["state"].(string)
		return strings.Contains(strings.ToLower(st), want)
	})
	if !ok {
		t.Errorf("/status: drive %s entry %v; want state %q", path, last, want)
	}
}

func statusDrives2(t *testing.T, s *server) map[string]any { return statusDoc(t, s) }

// TestDriveLossWhileRunning deletes drive directories under a running
// server: with EC 2+2 every object must stay readable after one and after
// two drives are gone, and new writes must still succeed.
func TestDriveLossWhileRunning(t *testing.T) {
	s := startLogged(t, serverOptions{drives: 4})
	c := sdkClient(s)
	rng := newRand(t, seedFlag())
	b := newBucket(t, c, "driveloss")
	objs := writeMixed(t, c, b, "before", 50, rng)
	verifyAll(t, c, b, objs, "before any loss")

	for round, lost := range []int{0, 2} {
		dir := s.Dirs[lost]
		t.Logf("removing drive %s", dir)
		if err := os.RemoveAll(dir); err != nil {
			t.Fatal(err)
		}
		when := fmt.Sprintf("after losing %d drive(s)", round+1)
		verifyAll(t, c, b, objs, when)
		if round == 0 {
			more := writeMixed(t, c, b, "after-loss-1", 10, rng)
			verifyAll(t, c, b, more, when+", objects written since")
			for k, v := range more {
				objs[k] = v
			}
			// A bucket created after the loss works too.
			nb := newBucket(t, c, "afterloss")
			if _, err := c.PutObject(context.Background(), &s3.PutObjectInput{Bucket: aws.String(nb), Key: aws.String("x"), Body: strings.NewReader("x")}); err != nil {
				t.Errorf("%s: PUT into a new bucket: %v", when, err)
			}
		} else {
			// Two of four drives left: below the write quorum (k+1 = 3) for
			// coded objects, so a PUT may be refused — as unavailable
			// (503), never as an internal error, and leaving nothing.
			for i := range 6 {
				key := fmt.Sprintf("after-loss-2/obj-%03d", i)
				spec := objSpec{seed: rng.Uint64(), size: int64(i) * 700 << 10}
				_, err := c.PutObject(context.Background(), &s3.PutObjectInput{Bucket: aws.String(b), Key: aws.String(key),
					Body: newGenReader(spec.seed, spec.size), ContentLength: aws.Int64(spec.size)})
				if err == nil {
					objs[key] = spec
					if err := verifyOne(c, b, key, spec); err != nil {
						t.Errorf("%s: GET %s, acknowledged: %v", when, key, err)
					}
					continue
				}
				// Status 0: the server answered early and closed the
				// connection while the body was still being sent.
				if st := errStatus(err); st != 503 && st != 0 {
					t.Errorf("%s: PUT %s (%d bytes) refused with %d %s, want 503 (below write quorum): %v", when, key, spec.size, errStatus(err), errCode(err), err)
				}
				_, herr := c.HeadObject(context.Background(), &s3.HeadObjectInput{Bucket: aws.String(b), Key: aws.String(key)})
				wantErr(t, when+": HEAD of a refused PUT", herr, 404, "")
			}
		}
		waitDriveState(t, s, dir, "failed", func() {
			k := fmt.Sprintf("before/obj-%03d", rng.IntN(50))
			verifyOne(c, b, k, objs[k])
		})
		if _, err := os.Stat(dir); err == nil {
			// The server must not recreate a vanished drive behind the operator's back as if it were healthy.
			t.Logf("note: %s exists again after removal", dir)
		}
	}
	if s.cmd.ProcessState != nil {
		t.Fatalf("server exited after drive loss:\n%s", tail(s.output(), 4000))
	}
}

// TestDriveLostBeforeRestart removes a drive while the server is down.
func TestDriveLostBeforeRestart(t *testing.T) {
	s := startLogged(t, serverOptions{drives: 4})
	c := sdkClient(s)
	rng := newRand(t, seedFlag())
	b := newBucket(t, c, "lostdown")
	objs := writeMixed(t, c, b, "obj", 50, rng)
	s.stop()
	if err := os.RemoveAll(s.Dirs[1]); err != nil {
		t.Fatal(err)
	}
	s.restart()
	c = sdkClient(s)
	verifyAll(t, c, b, objs, "after restart without drive 2")
	more := writeMixed(t, c, b, "after", 6, rng)
	verifyAll(t, c, b, more, "written after restart without drive 2")
}

// shardFiles returns the regular files under a "shards" directory of dir.
func shardFiles(t *testing.T, dir string) []string {
	t.Helper()
	var files []string
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if d.Type().IsRegular() && slices.Contains(strings.Split(filepath.ToSlash(p[len(dir):]), "/"), "shards") {
			files = append(files, p)
		}
		return nil
	})
	slices.Sort(files)
	return files
}

// flipByte inverts one byte of f: past the first 4 KiB in large files, in
// the middle of small ones.
func flipByte(t *testing.T, f string, rng *rand.Rand) {
	t.Helper()
	fh, err := os.OpenFile(f, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	st, err := fh.Stat()
	if err != nil || st.Size() == 0 {
		return
	}
	off := st.Size() / 2
	if st.Size() > 8<<10 {
		off = 4<<10 + rng.Int64N(st.Size()-4<<10)
	}
	b := make([]byte, 1)
	if _, err := fh.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0xff
	if _, err := fh.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

// TestBitRot flips bytes inside shard files on two drives: every GET must
// still return the right bytes, and /status must count the corruption.
func TestBitRot(t *testing.T) {
	s := startLogged(t, serverOptions{drives: 4})
	c := sdkClient(s)
	rng := newRand(t, seedFlag())
	b := newBucket(t, c, "bitrot")
	objs := writeMixed(t, c, b, "obj", 30, rng)
	flipped := 0
	for _, d := range s.Dirs[:2] { // at most two bad shards per object: within m=2
		for _, f := range shardFiles(t, d) {
			flipByte(t, f, rng)
			flipped++
		}
	}
	if flipped == 0 {
		t.Fatalf("no shard files found under */shards/ in %v", s.Dirs)
	}
	t.Logf("flipped one byte in each of %d shard files", flipped)
	verifyAll(t, c, b, objs, "after bit rot")
	verifyAll(t, c, b, objs, "reading again after bit rot")
	var doc map[string]any
	if !pollUntil(10*time.Second, func() bool { doc = statusDoc(t, s); return corruptCount(doc) > 0 }) {
		t.Errorf("/status counts no corruption after %d flipped shard files:\n%v", flipped, doc)
	}
}

// TestReplacedDrive swaps a drive for an empty one, runs `redoubt repair`,
// and then loses the two other drives a stripe may rely on.
func TestReplacedDrive(t *testing.T) {
	s := startLogged(t, serverOptions{drives: 4})
	c := sdkClient(s)
	rng := newRand(t, seedFlag())
	b := newBucket(t, c, "replaced")
	objs := writeMixed(t, c, b, "obj", 30, rng)
	s.stop()
	if err := os.RemoveAll(s.Dirs[2]); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(s.Dirs[2], 0o755); err != nil {
		t.Fatal(err)
	}
	s.restart()
	c = sdkClient(s)
	verifyAll(t, c, b, objs, "after restart with an empty replacement drive")
	admin := strings.TrimPrefix(s.Admin, "http://")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	repair := exec.CommandContext(ctx, binary, "repair", "--admin-addr", admin)
	repair.Env = adminEnv()
	out, err := repair.CombinedOutput()
	if err != nil {
		t.Fatalf("redoubt repair --admin-addr %s: %v\n%s\nserver output (tail):\n%s", admin, err, out, tail(s.output(), 3000))
	}
	t.Logf("redoubt repair:\n%s", out)
	for _, i := range []int{0, 1} {
		if err := os.RemoveAll(s.Dirs[i]); err != nil {
			t.Fatal(err)
		}
	}
	verifyAll(t, c, b, objs, "after repair and losing drives 1 and 2")
	s.stop()
	s.restart()
	c = sdkClient(s)
	verifyAll(t, c, b, objs, "after repair, losing drives 1 and 2, and a restart")
}

// keySpec derives size and content of a kill-test object from its key.
func keySpec(key string, seed uint64) objSpec {
	h := fnv.New64a()
	h.Write([]byte(key))
	x := h.Sum64()
	return objSpec{seed: x ^ seed, size: int64(mix(x) % (3<<20 + 1))}
}

// TestKill9DuringUploads kills the server with SIGKILL while eight writers
// upload, restarts it, and checks that acknowledged writes survived and
// nothing partial became visible.
func TestKill9DuringUploads(t *testing.T) {
	seed := seedFlag()
	rng := newRand(t, seed)
	loops := *kill9Loops
	if testing.Short() {
		loops = min(loops, 3)
	}
	s := startLogged(t, serverOptions{drives: 4})
	b := newBucket(t, sdkClient(s), "kill9")
	acked := map[string]bool{}
	good := map[string]bool{}         // listed in-flight objects found complete
	everInflight := map[string]bool{} // every key a PUT was started for
	for round := range loops {
		c := sdkClient(s)
		ctx, cancel := context.WithCancel(context.Background())
		var mu sync.Mutex
		inflight := map[string]bool{}
		var roundAcked []string
		var wg sync.WaitGroup
		for w := range 8 {
			wg.Go(func() {
				for n := 0; ctx.Err() == nil; n++ {
					key := fmt.Sprintf("r%02d/w%d/%04d", round, w, n)
					spec := keySpec(key, seed)
					mu.Lock()
					inflight[key] = true
					mu.Unlock()
					_, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(b), Key: aws.String(key),
						Body: newGenReader(spec.seed, spec.size), ContentLength: aws.Int64(spec.size)})
					if err != nil {
						return
					}
					mu.Lock()
					roundAcked = append(roundAcked, key)
					mu.Unlock()
				}
			})
		}
		wait := time.Duration(50+rng.IntN(751)) * time.Millisecond
		time.Sleep(wait) // a random kill moment, not a wait for a condition
		s.kill()
		cancel()
		wg.Wait()
		for _, k := range roundAcked {
			acked[k] = true
		}
		for k := range inflight {
			everInflight[k] = true
		}
		t.Logf("round %d: killed after %v with %d acknowledged PUTs", round, wait, len(roundAcked))

		s.restart()
		for _, d := range s.Dirs {
			entries, err := os.ReadDir(filepath.Join(d, ".tmp"))
			if err == nil && len(entries) > 0 {
				var names []string
				for _, e := range entries {
					names = append(names, e.Name())
				}
				t.Errorf("round %d: %s/.tmp holds %d entries after restart: %.200q", round, d, len(entries), names)
			}
		}
		c = sdkClient(s)
		for _, k := range roundAcked {
			if err := verifyOne(c, b, k, keySpec(k, seed)); err != nil {
				t.Errorf("round %d: acknowledged %s: %v", round, k, err)
			}
		}
		listed := listKeys(t, c, b)
		for k := range acked {
			if !listed[k] {
				t.Errorf("round %d: acknowledged %s is not listed", round, k)
			}
		}
		for k := range listed {
			switch {
			case acked[k] || good[k]:
			case everInflight[k]:
				if err := verifyOne(c, b, k, keySpec(k, seed)); err != nil {
					t.Errorf("round %d: in-flight %s is listed but not intact: %v", round, k, err)
				}
				good[k] = true
			default:
				t.Errorf("round %d: listed key %s was never written", round, k)
			}
		}
		if t.Failed() {
			t.Fatalf("stopping after round %d (seed %d)\nserver output (tail):\n%s", round, seed, tail(s.output(), 3000))
		}
	}
	// Everything acknowledged over all rounds, once more.
	c := sdkClient(s)
	objs := map[string]objSpec{}
	for k := range acked {
		objs[k] = keySpec(k, seed)
	}
	verifyAll(t, c, b, objs, "after all kill rounds")
}

func listKeys(t *testing.T, c *s3.Client, b string) map[string]bool {
	t.Helper()
	keys, _, _ := listAllV2(t, c, s3.ListObjectsV2Input{Bucket: aws.String(b)})
	m := make(map[string]bool, len(keys))
	for _, k := range keys {
		m[k] = true
	}
	return m
}

// TestGracefulShutdown sends SIGTERM during a large upload: the process
// must exit 0, and the object must be either complete or absent.
func TestGracefulShutdown(t *testing.T) {
	s := startLogged(t, serverOptions{drives: 4})
	c := sdkClient(s, func(o *s3.Options) {
		// One pass over the body, on the wire: no checksum, unsigned payload.
		o.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
		o.APIOptions = append(o.APIOptions, v4.SwapComputePayloadSHA256ForUnsignedPayloadMiddleware)
	})
	b := newBucket(t, c, "sigterm")
	const size = 256 << 20
	spec := objSpec{seed: 4242, size: size}
	body := &progressReader{ReadSeeker: newGenReader(spec.seed, size), at: 32 << 20, reached: make(chan struct{})}
	done := make(chan error, 1)
	go func() {
		_, err := c.PutObject(context.Background(), &s3.PutObjectInput{Bucket: aws.String(b), Key: aws.String("big"), Body: body, ContentLength: aws.Int64(size)})
		done <- err
	}()
	select {
	case <-body.reached:
	case err := <-done:
		t.Fatalf("upload ended before SIGTERM: %v", err)
	case <-time.After(2 * time.Minute):
		t.Fatalf("upload made no progress")
	}
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(60 * time.Second):
		t.Fatalf("redoubt did not exit within 60s of SIGTERM")
	}
	if s.exitErr != nil {
		t.Errorf("redoubt exited with %v after SIGTERM\n%s", s.exitErr, tail(s.output(), 3000))
	}
	var upErr error
	select {
	case upErr = <-done:
	case <-time.After(60 * time.Second):
		t.Fatalf("upload still running after the server exited")
	}
	t.Logf("upload result: %v", upErr)
	s.restart()
	c = sdkClient(s)
	err := verifyOne(c, b, "big", spec)
	switch {
	case upErr == nil && err != nil:
		t.Errorf("upload acknowledged before shutdown, but after restart: %v", err)
	case upErr != nil && err != nil && errStatus(err) != 404:
		t.Errorf("upload failed, and the object after restart is neither absent nor complete: %v", err)
	case upErr != nil && err == nil:
		t.Logf("upload failed for the client but the object is complete")
	}
}

// progressReader closes reached once `at` bytes have been read in one pass.
type progressReader struct {
	io.ReadSeeker
	at      int64
	pos     int64
	once    sync.Once
	reached chan struct{}
}

func (r *progressReader) Read(p []byte) (int, error) {
	n, err := r.ReadSeeker.Read(p)
	r.pos += int64(n)
	if r.pos >= r.at {
		r.once.Do(func() { close(r.reached) })
	}
	return n, err
}

func (r *progressReader) Seek(off int64, whence int) (int64, error) {
	p, err := r.ReadSeeker.Seek(off, whence)
	r.pos = p
	return p, err
}

// rssBytes reads VmRSS of pid from /proc.
func rssBytes(pid int) (int64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(rest)
			if len(f) >= 1 {
				kb, err := strconv.ParseInt(f[0], 10, 64)
				return kb << 10, err
			}
		}
	}
	return 0, errors.New("no VmRSS line")
}

// TestMemoryBigObject PUTs and GETs one big object streamed from a
// generator while sampling the server's resident memory.
func TestMemoryBigObject(t *testing.T) {
	if testing.Short() {
		t.Skip("big object: skipped under -short")
	}
	s := startLogged(t, serverOptions{drives: 4})
	c := sdkClient(s, func(o *s3.Options) {
		// Stream the body once: no client-side checksum or payload hash pass.
		o.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
		o.APIOptions = append(o.APIOptions, v4.SwapComputePayloadSHA256ForUnsignedPayloadMiddleware)
	})
	b := newBucket(t, c, "bigmem")
	size := *bigSize
	spec := objSpec{seed: 777, size: size}
	pid := s.cmd.Process.Pid
	var maxRSS atomic.Int64
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		tick := time.NewTicker(25 * time.Millisecond)
		defer tick.Stop()
		for {
			if r, err := rssBytes(pid); err == nil && r > maxRSS.Load() {
				maxRSS.Store(r)
			}
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	}()
	start := time.Now()
	_, err := c.PutObject(context.Background(), &s3.PutObjectInput{Bucket: aws.String(b), Key: aws.String("big"),
		Body: newGenReader(spec.seed, size), ContentLength: aws.Int64(size)})
	putTook := time.Since(start)
	if err != nil {
		close(stop)
		<-sampled
		t.Fatalf("PUT %d bytes: %v", size, err)
	}
	putRSS := maxRSS.Load()
	start = time.Now()
	err = verifyOne(c, b, "big", spec)
	getTook := time.Since(start)
	close(stop)
	<-sampled
	if err != nil {
		t.Errorf("GET %d bytes: %v", size, err)
	}
	mb := float64(size) / (1 << 20)
	t.Logf("%d MiB: PUT %v (%.0f MiB/s), GET+compare %v (%.0f MiB/s); max RSS after PUT %d MiB, overall %d MiB",
		size>>20, putTook.Round(time.Millisecond), mb/putTook.Seconds(), getTook.Round(time.Millisecond), mb/getTook.Seconds(), putRSS>>20, maxRSS.Load()>>20)
	if m := maxRSS.Load(); m >= 256<<20 {
		t.Errorf("server max RSS %d MiB during a %d MiB PUT and GET, want < 256 MiB", m>>20, size>>20)
	}
}
