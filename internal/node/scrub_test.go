package node

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redoubt-io/redoubt/internal/admin"
	"github.com/redoubt-io/redoubt/internal/objects"
	"github.com/redoubt-io/redoubt/internal/store"
	"github.com/redoubt-io/redoubt/internal/testlog"
)

// startUpkeepNode starts a standalone node on drives drives with edit
// applied to its config. It does not serve until the returned function is
// called, so a test can store data and set hooks first.
func startUpkeepNode(t *testing.T, drives int, edit func(*Config)) (*Node, func()) {
	t.Helper()
	cfg := upkeepConfig(t, drives, edit)
	logger := slog.New(slog.NewTextHandler(testlog.Writer(t), &slog.HandlerOptions{Level: slog.LevelInfo}))
	ctx, cancel := context.WithCancel(t.Context())
	n, err := Start(ctx, cfg, logger)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	served := false
	done := make(chan error, 1)
	t.Cleanup(func() {
		cancel()
		if !served {
			n.close()
			return
		}
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return n, func() {
		served = true
		go func() { done <- n.Serve(ctx) }()
	}
}

// upkeepConfig is the config of a standalone node on drives fresh drives,
// listening on free ports, with edit applied.
func upkeepConfig(t *testing.T, drives int, edit func(*Config)) Config {
	cfg := DefaultConfig()
	cfg.DataDirs = nil
	for i := range drives {
		cfg.DataDirs = append(cfg.DataDirs, filepath.Join(t.TempDir(), fmt.Sprintf("d%d", i)))
	}
	cfg.S3Addr, cfg.AdminAddr = "127.0.0.1:0", "127.0.0.1:0"
	cfg.Credentials = &Credentials{AccessKey: "testaccesskey", SecretKey: "testsecretkey1234"}
	edit(&cfg)
	return cfg
}

// shardFiles returns the path of every shard file of the node's drives.
func shardFiles(t *testing.T, n *Node) []string {
	t.Helper()
	var out []string
	for _, d := range n.cfg.DataDirs {
		err := filepath.WalkDir(filepath.Join(d, "shards"), func(p string, e fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if !e.IsDir() {
				out = append(out, p)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return out
}

func putObject(t *testing.T, n *Node, bucket, key string, size int) {
	t.Helper()
	ctx := t.Context()
	if _, err := n.objects.HeadBucket(ctx, bucket); err != nil {
		if err := n.objects.CreateBucket(ctx, bucket); err != nil {
			t.Fatal(err)
		}
	}
	body := payload(uint64(size), size)
	if _, err := n.objects.PutObject(ctx, bucket, key, bytes.NewReader(body), int64(size), objects.PutOptions{}); err != nil {
		t.Fatal(err)
	}
}

func scrubStatus(n *Node) admin.ScrubStatus { return n.Status(context.Background()).Scrub }

func tinyScrub(c *Config) {
	c.Scrub.Interval = 200 * time.Millisecond
	c.Scrub.StartDelay = 0
}

// A byte flipped on disk is found by the next pass and the shard file is
// rebuilt to what it was; a deleted shard file is rebuilt too.
func TestScrubRebuildsBadShards(t *testing.T) {
	for _, damage := range []string{"corrupt", "missing"} {
		t.Run(damage, func(t *testing.T) {
			n, serve := startUpkeepNode(t, 4, tinyScrub)
			putObject(t, n, "scrub", "obj", 300<<10) // EC 2+2: four shard files
			files := shardFiles(t, n)
			if len(files) != 4 {
				t.Fatalf("%d shard files, want 4: %v", len(files), files)
			}
			victim := files[1]
			orig, err := os.ReadFile(victim)
			if err != nil {
				t.Fatal(err)
			}
			switch damage {
			case "corrupt":
				bad := bytes.Clone(orig)
				bad[store.HeaderSize+1000] ^= 0x40
				err = os.WriteFile(victim, bad, 0o600)
			case "missing":
				err = os.Remove(victim)
			}
			if err != nil {
				t.Fatal(err)
			}
			serve()
			if !pollUntil(10*time.Second, func() bool { return scrubStatus(n).RepairedShards >= 1 }) {
				t.Fatalf("no shard repaired: %+v", scrubStatus(n))
			}
			st := scrubStatus(n)
			t.Logf("scrub status: %+v", st)
			if got, err := os.ReadFile(victim); err != nil || !bytes.Equal(got, orig) {
				t.Errorf("%s shard not restored: %d bytes, %v", damage, len(got), err)
			}
			found := st.CorruptShards
			if damage == "missing" {
				found = st.MissingShards
			}
			if found != 1 || st.RepairedShards != 1 || st.RepairFailures != 0 || !st.Enabled {
				t.Errorf("status %+v: want one %s shard found and repaired", st, damage)
			}
			// The next pass finds every shard good.
			passes := st.Passes
			if !pollUntil(10*time.Second, func() bool { return scrubStatus(n).Passes >= passes+2 }) {
				t.Fatalf("no further pass: %+v", scrubStatus(n))
			}
			st = scrubStatus(n)
			if st.RepairedShards != 1 || st.CorruptShards+st.MissingShards != 1 || st.PassShardsChecked != 4 || st.ShardsChecked < 8 {
				t.Errorf("after more passes: %+v", st)
			}
			if st.LastPassFinished.Before(st.LastPassStarted) || st.LastPassStarted.IsZero() {
				t.Errorf("last pass %v .. %v", st.LastPassStarted, st.LastPassFinished)
			}
		})
	}
}

// busyScrubNode starts a node holding one object coded 2+2, scrubbing
// hourly from its start, whose S3 front end reads as busy until busy is
// cleared. asked counts the scrubber's questions in the phase a test is
// about: the listing (listing), or the drives' reads, for which the
// listing is told the node is idle.
func busyScrubNode(t *testing.T, listing bool) (n *Node, serve func(), busy *atomic.Bool, asked *atomic.Int64) {
	n, serve = startUpkeepNode(t, 4, func(c *Config) {
		c.Scrub.Interval = time.Hour
		c.Scrub.StartDelay = 0
	})
	putObject(t, n, "scrub", "obj", 300<<10)
	busy, asked = new(atomic.Bool), new(atomic.Int64)
	busy.Store(true)
	n.upkeep.scrub.busy = func() bool {
		if !listing && n.upkeep.scrub.Status().Planning {
			return false
		}
		asked.Add(1)
		return busy.Load()
	}
	return n, serve, busy, asked
}

// While S3 is busy, a drive ahead of its schedule does not read; it goes
// on once the traffic stops.
func TestScrubYieldsToForegroundTraffic(t *testing.T) {
	n, serve, busy, asked := busyScrubNode(t, false)
	serve()
	if !pollUntil(10*time.Second, func() bool { return asked.Load() >= 20 }) {
		t.Fatalf("scrubber never asked whether S3 is busy: %+v", scrubStatus(n))
	}
	if st := scrubStatus(n); st.ShardsChecked != 0 || !st.Running || st.PassShardsTotal != 4 {
		t.Fatalf("scrubbed while busy: %+v", st)
	}
	busy.Store(false)
	if !pollUntil(10*time.Second, func() bool { return scrubStatus(n).Passes == 1 }) {
		t.Fatalf("pass did not finish once idle: %+v", scrubStatus(n))
	}
	if st := scrubStatus(n); st.ShardsChecked != 4 || st.BytesChecked < 300<<10 || st.Running {
		t.Errorf("after the pass: %+v", st)
	}
}

// While S3 is busy, a pass's listing of the shards to check, which reads
// every object's records, keeps to a tenth of the interval and no faster:
// it pauses between partitions while ahead of that schedule, and goes on
// at full speed once the traffic stops.
func TestScrubListingYieldsToTraffic(t *testing.T) {
	n, serve, busy, asked := busyScrubNode(t, true)
	serve()
	if !pollUntil(10*time.Second, func() bool { return asked.Load() >= 20 }) {
		t.Fatalf("the listing never asked whether S3 is busy: %+v", scrubStatus(n))
	}
	if st := scrubStatus(n); !st.Running || !st.Planning || st.PassShardsTotal != 0 {
		t.Fatalf("listed while busy and ahead: %+v", st)
	}
	busy.Store(false)
	if !pollUntil(10*time.Second, func() bool { return scrubStatus(n).Passes == 1 }) {
		t.Fatalf("pass did not finish once idle: %+v", scrubStatus(n))
	}
	if st := scrubStatus(n); st.PassShardsChecked != 4 || st.Planning {
		t.Errorf("after the pass: %+v", st)
	}
}

func TestScrubPlanAhead(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	const day = 24 * time.Hour
	// 10 days: the listing may take a day, 256 partitions.
	if planAhead(start, 10*day, 0, 256, start) {
		t.Error("the first partition is never ahead")
	}
	if !planAhead(start, 10*day, 128, 256, start.Add(11*time.Hour)) {
		t.Error("half listed at 11 h of a one-day budget is ahead")
	}
	if planAhead(start, 10*day, 128, 256, start.Add(13*time.Hour)) {
		t.Error("half listed at 13 h of a one-day budget counts as ahead")
	}
	if planAhead(start, 10*day, 5, 0, start) {
		t.Error("no partitions: ahead")
	}
}

// A full pass is recorded on the drives: a node that restarts keeps to
// the interval instead of listing every object and reading every shard
// again, and shows the last pass and when the next is due. A drive
// without the record (new, or replaced) brings the pass forward.
func TestScrubKeepsItsIntervalAcrossRestarts(t *testing.T) {
	cfg := upkeepConfig(t, 4, func(c *Config) {
		c.Scrub.Interval = time.Hour
		c.Scrub.StartDelay = 0
	})
	logger := slog.New(slog.NewTextHandler(testlog.Writer(t), &slog.HandlerOptions{Level: slog.LevelInfo}))
	// run starts the node, calls f while it serves, and stops it.
	run := func(f func(n *Node)) {
		ctx, cancel := context.WithCancel(t.Context())
		n, err := Start(ctx, cfg, logger)
		if err != nil {
			cancel()
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- n.Serve(ctx) }()
		f(n)
		cancel()
		if err := <-done; err != nil {
			t.Fatalf("serve: %v", err)
		}
	}
	var first admin.ScrubStatus
	run(func(n *Node) {
		putObject(t, n, "scrub", "obj", 300<<10)
		if !pollUntil(10*time.Second, func() bool { return scrubStatus(n).Passes == 1 }) {
			t.Fatalf("no first pass: %+v", scrubStatus(n))
		}
		first = scrubStatus(n)
	})
	run(func(n *Node) {
		if !pollUntil(10*time.Second, func() bool { return !scrubStatus(n).NextPass.IsZero() }) {
			t.Fatal("no next pass scheduled after the restart")
		}
		st := scrubStatus(n)
		if !st.LastPassStarted.Equal(first.LastPassStarted) || !st.LastPassFinished.Equal(first.LastPassFinished) {
			t.Errorf("after a restart the last pass is %v .. %v, want %v .. %v", st.LastPassStarted, st.LastPassFinished, first.LastPassStarted, first.LastPassFinished)
		}
		if want := first.LastPassStarted.Add(time.Hour); !st.NextPass.Equal(want) {
			t.Errorf("next pass due %v, want an interval after the last, %v", st.NextPass, want)
		}
		if st.Running || st.Passes != 0 || st.ShardsChecked != 0 {
			t.Errorf("a pass began after the restart: %+v", st)
		}
	})
	if err := os.Remove(filepath.Join(cfg.DataDirs[2], scrubNote)); err != nil {
		t.Fatal(err)
	}
	run(func(n *Node) {
		if !pollUntil(10*time.Second, func() bool { return scrubStatus(n).Passes == 1 }) {
			t.Fatalf("a drive without the record did not bring the pass forward: %+v", scrubStatus(n))
		}
		if st := scrubStatus(n); !st.LastPassStarted.After(first.LastPassStarted) || st.PassShardsChecked != 4 {
			t.Errorf("pass after the record was lost: %+v", st)
		}
	})
}

// POST /scrub starts a pass now, however far the next one is due, and the
// next is then due an interval after it.
func TestScrubStartsOnRequest(t *testing.T) {
	n, serve := startUpkeepNode(t, 4, func(c *Config) {
		c.Scrub.Interval = time.Hour
		c.Scrub.StartDelay = time.Hour
	})
	putObject(t, n, "scrub", "obj", 300<<10)
	serve()
	if !pollUntil(10*time.Second, func() bool { return !scrubStatus(n).NextPass.IsZero() }) {
		t.Fatal("no next pass scheduled")
	}
	if st := scrubStatus(n); st.Running || st.Passes != 0 {
		t.Fatalf("a pass began before it was due: %+v", st)
	}
	rec := httptest.NewRecorder()
	n.serveScrub(rec, httptest.NewRequest(http.MethodPost, "/scrub", nil))
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), `"enabled": true`) && !strings.Contains(rec.Body.String(), `"enabled":true`) {
		t.Fatalf("POST /scrub: %d %s", rec.Code, rec.Body)
	}
	if !pollUntil(10*time.Second, func() bool { return scrubStatus(n).Passes == 1 }) {
		t.Fatalf("no pass after the request: %+v", scrubStatus(n))
	}
	st := scrubStatus(n)
	if st.PassShardsChecked != 4 {
		t.Errorf("pass on request checked %d shards, want 4", st.PassShardsChecked)
	}
	if want := st.LastPassStarted.Add(time.Hour); !st.NextPass.Equal(want) {
		t.Errorf("next pass due %v, want %v", st.NextPass, want)
	}
}

// The S3 front end's requests are what makes the node busy.
func TestScrubCountsInflightRequests(t *testing.T) {
	s := newScrubber(DefaultScrubConfig(), nil, nil, slog.New(slog.DiscardHandler))
	release := make(chan struct{})
	inside := make(chan bool)
	h := s.track(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {
		inside <- s.busy()
		<-release
	}))
	go h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/", nil))
	if !<-inside {
		t.Error("not busy while serving a request")
	}
	close(release)
	if !pollUntil(5*time.Second, func() bool { return !s.busy() }) {
		t.Error("still busy after the request ended")
	}
}

func TestScrubDisabled(t *testing.T) {
	n, serve := startUpkeepNode(t, 1, func(c *Config) { c.Scrub.Interval = 0 })
	serve()
	if st := scrubStatus(n); st.Enabled || st.Running {
		t.Errorf("disabled scrubber reports %+v", st)
	}
}

func TestScrubPace(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	const MiB = 1 << 20
	for _, tc := range []struct {
		name     string
		interval time.Duration
		total    int64
		// when the byte at half the total is due, after start
		half time.Duration
	}{
		// 9 TiB over 10 days: 9 TiB / 9 days.
		{"large", 10 * 24 * time.Hour, 9 << 40, 108 * time.Hour},
		// Small stores are read at the floor, 1 MiB/s.
		{"floor", 14 * 24 * time.Hour, 100 * MiB, 50 * time.Second},
		{"empty", time.Hour, 0, 0},
	} {
		p := newScrubPace(start, tc.interval, tc.total, MiB)
		if got := p.next(tc.total / 2).Sub(start); got.Round(time.Second) != tc.half {
			t.Errorf("%s: half due after %v, want %v", tc.name, got, tc.half)
		}
		if got := p.next(0); !got.Equal(start) {
			t.Errorf("%s: first byte due at %v", tc.name, got)
		}
		// On the paced schedule the drive is always ahead of the
		// interval's, so it may yield; late, it may not.
		if tc.total > 0 {
			at := p.next(tc.total / 2)
			if !p.ahead(at, tc.total/2) {
				t.Errorf("%s: on schedule at half but not ahead", tc.name)
			}
			if p.ahead(start.Add(tc.interval), tc.total/2) {
				t.Errorf("%s: half done at the interval's end counts as ahead", tc.name)
			}
		}
	}
}

func TestScrubConfigValidate(t *testing.T) {
	if err := DefaultScrubConfig().Validate(); err != nil {
		t.Errorf("default: %v", err)
	}
	if err := (ScrubConfig{}).Validate(); err != nil {
		t.Errorf("disabled: %v", err)
	}
	for _, edit := range []func(*ScrubConfig){
		func(c *ScrubConfig) { c.Interval = -1 },
		func(c *ScrubConfig) { c.MinRate = 0 },
		func(c *ScrubConfig) { c.StartDelay = -1 },
		func(c *ScrubConfig) { c.YieldPoll = 0 },
	} {
		c := DefaultScrubConfig()
		edit(&c)
		if err := c.Validate(); err == nil {
			t.Errorf("%+v: valid", c)
		}
	}
	cfg := DefaultConfig()
	cfg.MultipartExpiry = -time.Second
	if err := cfg.Validate(); err == nil {
		t.Error("negative multipart expiry valid")
	}
}

// An upload older than the expiry is aborted when the node starts serving,
// and its parts' data is freed.
func TestMultipartExpiry(t *testing.T) {
	n, serve := startUpkeepNode(t, 4, func(c *Config) {
		c.Scrub.Interval = 0
		c.MultipartExpiry = 20 * time.Millisecond
	})
	ctx := t.Context()
	putObject(t, n, "mpb", "plain", 200<<10)
	before := len(shardFiles(t, n))
	id, err := n.objects.CreateMultipartUpload(ctx, "mpb", "big", objects.PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	part := payload(7, 200<<10)
	if _, err := n.objects.UploadPart(ctx, "mpb", "big", id, 1, bytes.NewReader(part), int64(len(part)), objects.PartOptions{}); err != nil {
		t.Fatal(err)
	}
	if got := len(shardFiles(t, n)); got != before+4 {
		t.Fatalf("%d shard files after the part, want %d", got, before+4)
	}
	created := time.Now()
	// Polling a clock, not waiting for an event: the upload must be older
	// than the expiry when the node starts serving.
	pollUntil(time.Second, func() bool { return time.Since(created) > 50*time.Millisecond })
	serve()
	if !pollUntil(10*time.Second, func() bool { return n.Status(ctx).ExpiredUploads == 1 }) {
		t.Fatalf("upload not expired: %d", n.Status(ctx).ExpiredUploads)
	}
	res, err := n.objects.ListMultipartUploads(ctx, "mpb", objects.ListUploadsOptions{})
	if err != nil || len(res.Uploads) != 0 {
		t.Errorf("uploads left: %+v, %v", res.Uploads, err)
	}
	if got := len(shardFiles(t, n)); got != before {
		t.Errorf("%d shard files after expiry, want %d (the part's data freed)", got, before)
	}
}

// A drive that fails ends its part of the pass, which then does not count
// as a full one; the other drives are still checked.
func TestScrubPassWithFailedDrive(t *testing.T) {
	n, serve := startUpkeepNode(t, 4, tinyScrub)
	putObject(t, n, "scrub", "obj", 300<<10)
	if err := os.RemoveAll(n.cfg.DataDirs[3]); err != nil {
		t.Fatal(err)
	}
	serve()
	// Two passes over the three good drives.
	if !pollUntil(10*time.Second, func() bool { return scrubStatus(n).ShardsChecked >= 6 }) {
		t.Fatalf("good drives not scrubbed: %+v", scrubStatus(n))
	}
	st := scrubStatus(n)
	if st.Passes != 0 || !strings.Contains(st.LastError, "drive failed") || st.CorruptShards+st.MissingShards != 0 {
		t.Errorf("status %+v: want no full pass, a drive failure, nothing bad found", st)
	}
}
