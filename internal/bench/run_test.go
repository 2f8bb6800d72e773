package bench

import (
	"context"
	"errors"
	"github.com/redoubt-io/redoubt/internal/testlog"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

func testConfig(t *testing.T, endpoint string) Config {
	cfg := DefaultConfig()
	cfg.Endpoint = endpoint
	cfg.AccessKey, cfg.SecretKey = "bench", "bench-secret"
	cfg.Duration = 300 * time.Millisecond
	cfg.Concurrency = 4
	cfg.ProgressInterval = 50 * time.Millisecond
	cfg.RequestTimeout = 10 * time.Second
	cfg.Logger = slog.New(slog.NewTextHandler(testlog.Writer(t), &slog.HandlerOptions{Level: slog.LevelDebug}))
	return cfg
}

func startFake(t *testing.T) (*fakeS3, *httptest.Server) {
	f := newFakeS3(t)
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return f, srv
}

// checkResult asserts what holds for every successful run.
func checkResult(t *testing.T, res Result, cfg Config) {
	t.Helper()
	t.Logf("result: %+v", res)
	var sb strings.Builder
	if err := WriteTable(&sb, res); err != nil {
		t.Fatal(err)
	}
	t.Logf("\n%s", sb.String())
	if res.Failed() || res.Total.Errors != 0 {
		t.Fatalf("ops %d errors %d; errors: %v", res.Total.Ops, res.Total.Errors, res.Errors)
	}
	if res.Elapsed < cfg.Duration {
		t.Errorf("elapsed %v shorter than duration %v", res.Elapsed, cfg.Duration)
	}
	var sum int64
	for _, o := range res.Ops {
		l := o.Latency
		if l.Count != o.Ops {
			t.Errorf("%s: latency count %d, ops %d", o.Op, l.Count, o.Ops)
		}
		if !(0 < l.P50 && l.P50 <= l.P90 && l.P90 <= l.P99 && l.P99 <= l.Max) {
			t.Errorf("%s: latencies out of order: %+v", o.Op, l)
		}
		switch o.Op {
		case "put", "get":
			if o.Bytes != o.Ops*cfg.ObjectSize {
				t.Errorf("%s: %d bytes for %d ops of %d", o.Op, o.Bytes, o.Ops, cfg.ObjectSize)
			}
		default:
			if o.Bytes != 0 {
				t.Errorf("%s: %d bytes", o.Op, o.Bytes)
			}
		}
		sum += o.Ops
	}
	if sum != res.Total.Ops || res.Total.Latency.Count != sum {
		t.Errorf("total ops %d (latency count %d), sum of kinds %d", res.Total.Ops, res.Total.Latency.Count, sum)
	}
	if want := float64(res.Total.Ops) / res.Elapsed.Seconds(); res.Total.OpsPerSec != want {
		t.Errorf("ops/s %v, want %v", res.Total.OpsPerSec, want)
	}
}

func TestRunPut(t *testing.T) {
	f, srv := startFake(t)
	cfg := testConfig(t, srv.URL)
	cfg.Op = OpPut
	var mu sync.Mutex
	var snaps []Snapshot
	res, err := Run(t.Context(), cfg, func(s Snapshot) {
		mu.Lock()
		defer mu.Unlock()
		snaps = append(snaps, s)
	})
	if err != nil {
		t.Fatal(err)
	}
	checkResult(t, res, cfg)
	if len(res.Ops) != 1 || res.Ops[0].Op != "put" {
		t.Fatalf("ops = %+v; want only put", res.Ops)
	}
	if got := f.puts.Load(); got != res.Total.Ops {
		t.Errorf("server stored %d objects, result says %d", got, res.Total.Ops)
	}
	if _, ok := f.objectCount(res.Bucket); ok {
		t.Errorf("fresh bucket %s not removed", res.Bucket)
	}
	if _, ok := f.contentSHA.Load("UNSIGNED-PAYLOAD"); ok {
		t.Errorf("unsigned payload sent though not asked for")
	}
	mu.Lock()
	defer mu.Unlock()
	var last Snapshot
	for _, s := range snaps {
		if s.Phase == PhaseRun {
			last = s
		}
	}
	if last.Phase != PhaseRun || last.Ops != res.Total.Ops {
		t.Errorf("last run snapshot %+v; want ops %d", last, res.Total.Ops)
	}
}

// TestRunPutCount: with Count, a put run writes exactly that many
// objects and stops, long before its duration.
func TestRunPutCount(t *testing.T) {
	f, srv := startFake(t)
	cfg := testConfig(t, srv.URL)
	cfg.Op = OpPut
	cfg.Count = 137
	cfg.Duration = time.Hour
	cfg.Keep = true
	res, err := Run(t.Context(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.Total.Ops != 137 || f.puts.Load() != 137 {
		t.Fatalf("%d puts reported, %d stored; want 137", res.Total.Ops, f.puts.Load())
	}
	if res.Elapsed > time.Minute {
		t.Fatalf("the run took %v: it did not stop at its count", res.Elapsed)
	}
}

func TestRunGetKeepsNamedBucket(t *testing.T) {
	f, srv := startFake(t)
	cfg := testConfig(t, srv.URL)
	cfg.Op = OpGet
	cfg.ObjectSize = 10000
	cfg.Objects = 20
	cfg.Bucket = "named"
	cfg.Keep = true
	cfg.UnsignedPayload = true
	res, err := Run(t.Context(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	checkResult(t, res, cfg)
	if res.Preloaded != 20 || len(res.Ops) != 1 || res.Ops[0].Op != "get" {
		t.Fatalf("preloaded %d, ops %+v", res.Preloaded, res.Ops)
	}
	if got := f.gets.Load(); got != res.Total.Ops {
		t.Errorf("server served %d GETs, result says %d", got, res.Total.Ops)
	}
	if n, ok := f.objectCount("named"); !ok || n != 20 {
		t.Errorf("kept bucket holds %d objects (exists %v); want 20", n, ok)
	}
	if _, ok := f.contentSHA.Load("UNSIGNED-PAYLOAD"); !ok {
		t.Errorf("unsigned payload asked for but not sent")
	}
}

func TestRunListCleansNamedBucket(t *testing.T) {
	f, srv := startFake(t)
	cfg := testConfig(t, srv.URL)
	cfg.Op = OpList
	cfg.ObjectSize = 0
	cfg.Objects = 2500
	cfg.Bucket = "existing"
	f.mu.buckets["existing"] = &fakeBucket{objects: map[string][]byte{"keep-me": nil}, keys: []string{"keep-me"}}
	res, err := Run(t.Context(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	checkResult(t, res, cfg)
	if len(res.Ops) != 1 || res.Ops[0].Op != "list" || f.lists.Load() < res.Total.Ops {
		t.Fatalf("ops %+v, server lists %d", res.Ops, f.lists.Load())
	}
	// The bucket existed: only the run's objects go.
	if n, ok := f.objectCount("existing"); !ok || n != 1 {
		t.Errorf("bucket holds %d objects (exists %v); want only the one that was there", n, ok)
	}
}

func TestRunMixed(t *testing.T) {
	f, srv := startFake(t)
	cfg := testConfig(t, srv.URL)
	cfg.Op = OpMixed
	cfg.Objects = 50
	cfg.ListPageSize = 20
	res, err := Run(t.Context(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	checkResult(t, res, cfg)
	var names []string
	for _, o := range res.Ops {
		names = append(names, o.Op)
	}
	if strings.Join(names, ",") != "put,get,list,head" {
		t.Fatalf("kinds run: %v", names)
	}
	if f.heads.Load() < res.Ops[3].Ops {
		t.Errorf("server saw %d HEADs, result says %d", f.heads.Load(), res.Ops[3].Ops)
	}
}

// Over HTTPS the SDK sends PUT bodies aws-chunked with a checksum trailer.
func TestRunTLS(t *testing.T) {
	f := newFakeS3(t)
	srv := httptest.NewTLSServer(f)
	t.Cleanup(srv.Close)
	cfg := testConfig(t, srv.URL)
	cfg.Op = OpMixed
	cfg.Objects = 8
	cfg.ObjectSize = 100 << 10
	cfg.Insecure = true
	res, err := Run(t.Context(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	checkResult(t, res, cfg)
	if f.chunked.Load() == 0 {
		t.Errorf("no aws-chunked upload seen over TLS")
	}
}

func TestRunAllFail(t *testing.T) {
	f, srv := startFake(t)
	f.fail = func(r *http.Request) int {
		if r.Method == http.MethodPut && strings.Count(r.URL.Path, "/") > 1 {
			return http.StatusInternalServerError
		}
		return 0
	}
	cfg := testConfig(t, srv.URL)
	res, err := Run(t.Context(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Failed() || res.Total.Errors == 0 {
		t.Fatalf("ops %d errors %d; want all failed", res.Total.Ops, res.Total.Errors)
	}
	if len(res.Errors) != 1 || res.Errors[0].Message != "put: InternalError (HTTP 500)" || res.Errors[0].Count != res.Total.Errors {
		t.Errorf("errors = %+v (total %d)", res.Errors, res.Total.Errors)
	}
	if res.Total.Latency != (Latency{}) {
		t.Errorf("latency of failures recorded: %+v", res.Total.Latency)
	}
}

func TestRunDetectsShortBodies(t *testing.T) {
	f, srv := startFake(t)
	f.truncateGets = true
	cfg := testConfig(t, srv.URL)
	cfg.Op = OpGet
	cfg.Objects = 4
	res, err := Run(t.Context(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Failed() || res.Total.Errors == 0 || len(res.Errors) != 1 || !strings.Contains(res.Errors[0].Message, "wrong length") {
		t.Fatalf("ops %d errors %+v; want every GET to fail on length", res.Total.Ops, res.Errors)
	}
}

func TestRunPreloadFailureStops(t *testing.T) {
	f, srv := startFake(t)
	f.fail = func(r *http.Request) int {
		if r.Method == http.MethodPut && strings.HasSuffix(r.URL.Path, "obj/000000003") {
			return http.StatusServiceUnavailable
		}
		return 0
	}
	cfg := testConfig(t, srv.URL)
	cfg.Op = OpGet
	cfg.Objects = 10
	res, err := Run(t.Context(), cfg, nil)
	if err == nil || !strings.Contains(err.Error(), "preload") {
		t.Fatalf("err = %v; want a preload error", err)
	}
	if _, ok := f.objectCount(res.Bucket); ok {
		t.Errorf("bucket %s left behind after failed preload", res.Bucket)
	}
}

func TestRunCancel(t *testing.T) {
	f, srv := startFake(t)
	cfg := testConfig(t, srv.URL)
	cfg.Duration = time.Hour
	cfg.ProgressInterval = 10 * time.Millisecond
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	res, err := Run(ctx, cfg, func(s Snapshot) {
		if s.Phase == PhaseRun && s.Ops > 10 {
			cancel()
		}
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v; want context.Canceled", err)
	}
	if res.Total.Ops == 0 || res.Total.Errors != 0 {
		t.Errorf("partial result: ops %d errors %d", res.Total.Ops, res.Total.Errors)
	}
	if _, ok := f.objectCount(res.Bucket); ok {
		t.Errorf("bucket %s left behind after cancel", res.Bucket)
	}
}

func TestValidate(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatalf("default config: %v", err)
	}
	for name, mod := range map[string]func(*Config){
		"endpoint":      func(c *Config) { c.Endpoint = "127.0.0.1:9000" },
		"half key":      func(c *Config) { c.SecretKey = ""; c.AccessKey = "x" },
		"op":            func(c *Config) { c.Op = "delete" },
		"zero size put": func(c *Config) { c.ObjectSize = 0 },
		"concurrency":   func(c *Config) { c.Concurrency = 0 },
		"duration":      func(c *Config) { c.Duration = 0 },
		"mix":           func(c *Config) { c.Op = OpMixed; c.Mix.Get++ },
		"page":          func(c *Config) { c.ListPageSize = 1001 },
		"checksum":      func(c *Config) { c.Checksum = "always" },
		"logger":        func(c *Config) { c.Logger = nil },
	} {
		cfg := DefaultConfig()
		mod(&cfg)
		if err := cfg.Validate(); !errors.Is(err, ErrConfig) {
			t.Errorf("%s: Validate() = %v; want ErrConfig", name, err)
		}
	}
	cfg := DefaultConfig()
	cfg.Op, cfg.ObjectSize = OpList, 0
	if err := cfg.Validate(); err != nil {
		t.Errorf("zero-size list: %v", err)
	}
}

func TestObjectsDefault(t *testing.T) {
	for _, tc := range []struct {
		op   Op
		size int64
		conc int
		want int
	}{
		{OpPut, 4 << 10, 16, 0},
		{OpList, 4 << 10, 16, 10000},
		{OpGet, 4 << 10, 16, 1000},
		{OpGet, 64 << 20, 16, 16},
		{OpGet, 64 << 20, 4, 16},
		{OpMixed, 1 << 30, 32, 32},
	} {
		cfg := DefaultConfig()
		cfg.Op, cfg.ObjectSize, cfg.Concurrency = tc.op, tc.size, tc.conc
		if got := cfg.objectsToPreload(); got != tc.want {
			t.Errorf("%s size %d conc %d: %d objects; want %d", tc.op, tc.size, tc.conc, got, tc.want)
		}
	}
}

// The plain-HTTP client runs every operation against the same fake and is
// counted like the SDK: no errors, and what the server stored is what the
// result says, with signed and unsigned payloads.
func TestRunHTTPClient(t *testing.T) {
	for _, unsigned := range []bool{false, true} {
		f, srv := startFake(t)
		cfg := testConfig(t, srv.URL)
		cfg.Client = ClientHTTP
		cfg.UnsignedPayload = unsigned
		cfg.Op = OpMixed
		cfg.Objects = 20
		res, err := Run(t.Context(), cfg, nil)
		if err != nil {
			t.Fatal(err)
		}
		checkResult(t, res, cfg)
		if res.Total.Errors != 0 {
			t.Fatalf("unsigned=%v: %d errors: %+v", unsigned, res.Total.Errors, res.Errors)
		}
		kinds := map[string]bool{}
		for _, o := range res.Ops {
			kinds[o.Op] = o.Ops > 0
		}
		for _, k := range []string{"get", "put", "head"} {
			if !kinds[k] {
				t.Errorf("unsigned=%v: no successful %s in %+v", unsigned, k, res.Ops)
			}
		}
		if _, ok := f.contentSHA.Load("UNSIGNED-PAYLOAD"); ok != unsigned {
			t.Errorf("UNSIGNED-PAYLOAD sent: %v, asked for: %v", ok, unsigned)
		}
	}
}
