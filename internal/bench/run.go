package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// Phase is the stage a run is in, as reported in a Snapshot.
type Phase string

const (
	PhasePreload Phase = "preload"
	PhaseRun     Phase = "run"
	PhaseCleanup Phase = "cleanup"
)

// Snapshot is a progress report. Counts are cumulative for the phase;
// rates cover the time since the previous snapshot of the same phase.
type Snapshot struct {
	Phase   Phase
	Elapsed time.Duration
	Ops     int64
	Errors  int64
	Bytes   int64
	// Total is the number of operations the phase will do when known
	// (preload), else 0.
	Total     int64
	OpsPerSec float64
	MiBPerSec float64
}

// Request kinds, in report order.
type kind int

const (
	kindPut kind = iota
	kindGet
	kindList
	kindHead
	numKinds
)

var kindNames = [numKinds]string{"put", "get", "list", "head"}

type opStats struct {
	ops, errs, bytes atomic.Int64
	hist             histogram
}

// maxErrorKinds bounds the distinct error messages a run remembers.
const maxErrorKinds = 16

type runner struct {
	cfg    Config
	log    *slog.Logger
	client *s3.Client
	// light, when set, sends the timed GET, HEAD and PUT requests.
	light  *lightClient
	bucket string
	prefix string
	salt   uint64 // makes bodies differ between runs
	block  []byte
	// preloaded is the number of objects under prefix+"obj/".
	preloaded int

	stats [numKinds]opStats
	// issued counts the timed requests begun, against Config.Count.
	issued  atomic.Int64
	preload opStats
	cleaned opStats

	errMu struct {
		sync.Mutex
		counts   map[string]int64
		examples map[string]string
		order    []string
	}

	progMu struct {
		sync.Mutex
		fn        func(Snapshot)
		phase     Phase
		start     time.Time
		counters  func() (ops, errs, bytes int64)
		total     int64
		lastAt    time.Time
		lastOps   int64
		lastBytes int64
	}
}

// Run drives the load cfg describes and returns what it measured.
//
// Run first makes sure the bucket exists and preloads objects (untimed),
// then runs the timed phase, then deletes what it wrote unless cfg.Keep.
// Cleanup runs even when ctx is cancelled. progress, if not nil, is called
// every cfg.ProgressInterval and at the end of each phase, from one
// goroutine at a time, and never after Run returns.
//
// A cancelled run returns the partial Result together with ctx's error; a
// failed cleanup returns the full Result together with the cleanup error.
// Request failures are counted, not returned: check Result.Failed.
func Run(ctx context.Context, cfg Config, progress func(Snapshot)) (Result, error) {
	if err := cfg.Validate(); err != nil {
		return Result{}, err
	}
	seed := cfg.Seed
	for seed == 0 {
		seed = rand.Uint64()
	}
	run := fmt.Sprintf("%08x", rand.Uint32())
	r := &runner{
		cfg:    cfg,
		log:    cfg.Logger.With("component", "bench", "run", run),
		bucket: cfg.Bucket,
		prefix: "bench/" + run + "/",
		salt:   rand.Uint64(),
		block:  make([]byte, blockSize),
	}
	if r.bucket == "" {
		r.bucket = "redoubt-bench-" + run
	}
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	for i := 0; i < len(r.block); i += 8 {
		v := rng.Uint64()
		for j := range 8 {
			r.block[i+j] = byte(v >> (8 * j))
		}
	}
	r.errMu.counts = map[string]int64{}
	r.errMu.examples = map[string]string{}
	r.progMu.fn = progress

	tr := newTransport(cfg)
	defer tr.CloseIdleConnections()
	r.client = newClient(cfg, tr)
	if cfg.Client == ClientHTTP {
		r.light = newLightClient(cfg, tr, r.bucket)
	}

	res := Result{
		Op:          cfg.Op,
		Endpoint:    cfg.Endpoint,
		Bucket:      r.bucket,
		Prefix:      r.prefix,
		ObjectSize:  cfg.ObjectSize,
		Concurrency: cfg.Concurrency,
		Duration:    cfg.Duration,
		Checksum:    cfg.Checksum,
		Seed:        seed,
		Kept:        cfg.Keep,
	}

	stopReporter := r.startReporter()
	defer stopReporter()

	created, err := r.ensureBucket(ctx)
	if err != nil {
		return res, err
	}
	r.log.Info("bucket ready", "bucket", r.bucket, "created", created, "prefix", r.prefix)

	runErr := r.loadAndRun(ctx, seed, &res)

	if !cfg.Keep {
		// Clean up even after cancellation, but not forever.
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Minute)
		err := r.cleanup(cctx, created)
		cancel()
		if err != nil {
			return res, errors.Join(runErr, fmt.Errorf("cleanup of bucket %s prefix %s: %w", r.bucket, r.prefix, err))
		}
	}
	return res, runErr
}

func (r *runner) loadAndRun(ctx context.Context, seed uint64, res *Result) error {
	if n := r.cfg.objectsToPreload(); n > 0 {
		if err := r.preloadObjects(ctx, n); err != nil {
			return err
		}
		res.Preloaded = n
	}
	cpu0, err := processCPU(r.cfg.ServerPIDs)
	if err != nil {
		return err
	}
	res.Elapsed = r.timed(ctx, seed)
	cpu1, err := processCPU(r.cfg.ServerPIDs)
	if err != nil {
		return err
	}
	res.ServerCPU = cpu1 - cpu0
	r.fillResult(res)
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("run interrupted: %w", err)
	}
	return nil
}

func (r *runner) objKey(i int) string { return fmt.Sprintf("%sobj/%09d", r.prefix, i) }

func (r *runner) ensureBucket(ctx context.Context) (created bool, err error) {
	_, err = r.client.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String(r.bucket)})
	if err == nil {
		return false, nil
	}
	if httpStatus(err) != http.StatusNotFound {
		return false, fmt.Errorf("head bucket %s: %w", r.bucket, err)
	}
	in := &s3.CreateBucketInput{Bucket: aws.String(r.bucket)}
	if r.cfg.Region != "us-east-1" {
		in.CreateBucketConfiguration = &types.CreateBucketConfiguration{
			LocationConstraint: types.BucketLocationConstraint(r.cfg.Region),
		}
	}
	_, err = r.client.CreateBucket(ctx, in)
	var owned *types.BucketAlreadyOwnedByYou
	switch {
	case errors.As(err, &owned):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("create bucket %s: %w", r.bucket, err)
	}
	return true, nil
}

func httpStatus(err error) int {
	var re *smithyhttp.ResponseError
	if errors.As(err, &re) {
		return re.HTTPStatusCode()
	}
	return 0
}

// preloadObjects writes n objects with cfg.Concurrency workers. Any failure
// stops it: a timed phase over missing objects would measure nothing.
func (r *runner) preloadObjects(ctx context.Context, n int) error {
	r.setPhase(PhasePreload, int64(n), func() (int64, int64, int64) {
		return r.preload.ops.Load(), r.preload.errs.Load(), r.preload.bytes.Load()
	})
	defer r.emit()
	// The first failure stops new requests but lets those in flight
	// finish, so that cleanup finds every object that was written.
	var failed atomic.Pointer[error]
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(r.cfg.Concurrency, n) {
		wg.Go(func() {
			for ctx.Err() == nil && failed.Load() == nil {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				if err := r.put(ctx, r.objKey(i), uint64(i)); err != nil {
					r.preload.errs.Add(1)
					err = fmt.Errorf("preload %s: %w", r.objKey(i), err)
					failed.CompareAndSwap(nil, &err)
					return
				}
				r.preload.ops.Add(1)
				r.preload.bytes.Add(r.cfg.ObjectSize)
			}
		})
	}
	wg.Wait()
	r.preloaded = n
	if err := failed.Load(); err != nil {
		return *err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("preload interrupted: %w", err)
	}
	r.log.Info("preloaded", "objects", n, "size", r.cfg.ObjectSize)
	return nil
}

func (r *runner) put(ctx context.Context, key string, id uint64) error {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.RequestTimeout)
	defer cancel()
	if r.light != nil {
		return r.light.put(ctx, key, newPayload(r.block, id^r.salt, r.cfg.ObjectSize), r.cfg.ObjectSize)
	}
	_, err := r.client.PutObject(ctx, &s3.PutObjectInput{
		Bucket:        aws.String(r.bucket),
		Key:           aws.String(key),
		Body:          newPayload(r.block, id^r.salt, r.cfg.ObjectSize),
		ContentLength: aws.Int64(r.cfg.ObjectSize),
	})
	return err
}

// timed runs the measured phase and returns its wall time, from the start
// until the last in-flight request finished.
func (r *runner) timed(ctx context.Context, seed uint64) time.Duration {
	stop := make(chan struct{})
	r.setPhase(PhaseRun, 0, func() (ops, errs, bytes int64) {
		for i := range r.stats {
			ops += r.stats[i].ops.Load()
			errs += r.stats[i].errs.Load()
			bytes += r.stats[i].bytes.Load()
		}
		return ops, errs, bytes
	})
	start := time.Now()
	timer := time.AfterFunc(r.cfg.Duration, func() { close(stop) })
	defer timer.Stop()
	var wg sync.WaitGroup
	for w := range r.cfg.Concurrency {
		wg.Go(func() { r.worker(ctx, stop, w, rand.New(rand.NewPCG(seed, uint64(w)))) })
	}
	wg.Wait()
	elapsed := time.Since(start)
	r.emit()
	return elapsed
}

func (r *runner) worker(ctx context.Context, stop <-chan struct{}, w int, rng *rand.Rand) {
	buf := make([]byte, 256<<10)
	for n := uint64(0); ; n++ {
		select {
		case <-stop:
			return
		case <-ctx.Done():
			return
		default:
		}
		if r.cfg.Count > 0 && r.issued.Add(1) > r.cfg.Count {
			return
		}
		k := r.pick(rng)
		t0 := time.Now()
		var bytes int64
		var err error
		switch k {
		case kindPut:
			if r.cfg.Op == OpPut {
				key := fmt.Sprintf("%sput/%05d/%012d", r.prefix, w, n)
				err = r.put(ctx, key, uint64(w)<<40|n)
			} else {
				err = r.put(ctx, r.objKey(rng.IntN(r.preloaded)), rng.Uint64())
			}
			bytes = r.cfg.ObjectSize
		case kindGet:
			bytes, err = r.get(ctx, r.objKey(rng.IntN(r.preloaded)), buf)
		case kindList:
			err = r.list(ctx, rng)
		case kindHead:
			err = r.head(ctx, r.objKey(rng.IntN(r.preloaded)))
		}
		d := time.Since(t0)
		st := &r.stats[k]
		if err != nil {
			if ctx.Err() != nil {
				return // cancelled by the caller, not failed by the server
			}
			st.errs.Add(1)
			r.noteError(kindNames[k], err)
			r.log.Debug("request failed", "op", kindNames[k], "err", err)
			continue
		}
		st.ops.Add(1)
		st.bytes.Add(bytes)
		st.hist.record(d)
	}
}

func (r *runner) pick(rng *rand.Rand) kind {
	switch r.cfg.Op {
	case OpPut:
		return kindPut
	case OpGet:
		return kindGet
	case OpList:
		return kindList
	}
	m := r.cfg.Mix
	x := rng.IntN(100)
	switch {
	case x < m.Get:
		return kindGet
	case x < m.Get+m.Put:
		return kindPut
	case x < m.Get+m.Put+m.List:
		return kindList
	}
	return kindHead
}

func (r *runner) get(ctx context.Context, key string, buf []byte) (int64, error) {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.RequestTimeout)
	defer cancel()
	var n int64
	if r.light != nil {
		var err error
		if n, err = r.light.get(ctx, key, buf); err != nil {
			return n, err
		}
	} else {
		out, err := r.client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(r.bucket), Key: aws.String(key)})
		if err != nil {
			return 0, err
		}
		defer out.Body.Close()
		for {
			m, err := out.Body.Read(buf)
			n += int64(m)
			if err == io.EOF {
				break
			}
			if err != nil {
				return n, fmt.Errorf("reading body: %w", err)
			}
		}
	}
	if n != r.cfg.ObjectSize {
		return n, fmt.Errorf("%w: got %d bytes, want %d", errWrongLength, n, r.cfg.ObjectSize)
	}
	return n, nil
}

var errWrongLength = errors.New("wrong length")

func (r *runner) head(ctx context.Context, key string) error {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.RequestTimeout)
	defer cancel()
	var got int64
	if r.light != nil {
		var err error
		if got, err = r.light.head(ctx, key); err != nil {
			return err
		}
	} else {
		out, err := r.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(r.bucket), Key: aws.String(key)})
		if err != nil {
			return err
		}
		got = aws.ToInt64(out.ContentLength)
	}
	if got != r.cfg.ObjectSize {
		return fmt.Errorf("%w: content length %d, want %d", errWrongLength, got, r.cfg.ObjectSize)
	}
	return nil
}

// list fetches one page starting after a random preloaded key and checks
// that it holds the keys that must follow.
func (r *runner) list(ctx context.Context, rng *rand.Rand) error {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.RequestTimeout)
	defer cancel()
	// -1 lists from the first key.
	i := rng.IntN(r.preloaded+1) - 1
	in := &s3.ListObjectsV2Input{
		Bucket:  aws.String(r.bucket),
		Prefix:  aws.String(r.prefix + "obj/"),
		MaxKeys: aws.Int32(int32(r.cfg.ListPageSize)),
	}
	if i >= 0 {
		in.StartAfter = aws.String(r.objKey(i))
	}
	out, err := r.client.ListObjectsV2(ctx, in)
	if err != nil {
		return err
	}
	want := min(r.cfg.ListPageSize, r.preloaded-i-1)
	if len(out.Contents) != want {
		return fmt.Errorf("%w: listed %d keys, want %d", errWrongLength, len(out.Contents), want)
	}
	return nil
}

// cleanup deletes every object under the run's prefix, then the bucket if
// the run created it.
func (r *runner) cleanup(ctx context.Context, deleteBucket bool) error {
	r.setPhase(PhaseCleanup, 0, func() (int64, int64, int64) {
		return r.cleaned.ops.Load(), r.cleaned.errs.Load(), 0
	})
	defer r.emit()
	// A request the server finished after the client gave up on it can
	// land after the listing; a second sweep catches it.
	for attempt := 1; ; attempt++ {
		if err := r.deletePrefix(ctx); err != nil {
			return err
		}
		if !deleteBucket {
			break
		}
		_, err := r.client.DeleteBucket(ctx, &s3.DeleteBucketInput{Bucket: aws.String(r.bucket)})
		var ae smithy.APIError
		if err != nil && errors.As(err, &ae) && ae.ErrorCode() == "BucketNotEmpty" && attempt < 3 {
			continue
		}
		if err != nil {
			return fmt.Errorf("delete bucket: %w", err)
		}
		break
	}
	r.log.Info("cleaned up", "objects", r.cleaned.ops.Load(), "bucket_deleted", deleteBucket)
	return nil
}

func (r *runner) deletePrefix(ctx context.Context) error {
	// Batches go out a few at a time while the listing goes on.
	const parallel = 8
	sem := make(chan struct{}, parallel)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs []error
	fail := func(err error) {
		mu.Lock()
		defer mu.Unlock()
		if len(errs) < 5 {
			errs = append(errs, err)
		}
	}
	p := s3.NewListObjectsV2Paginator(r.client, &s3.ListObjectsV2Input{
		Bucket: aws.String(r.bucket),
		Prefix: aws.String(r.prefix),
	})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			fail(fmt.Errorf("list: %w", err))
			break
		}
		if len(page.Contents) == 0 {
			continue
		}
		ids := make([]types.ObjectIdentifier, len(page.Contents))
		for i, o := range page.Contents {
			ids[i] = types.ObjectIdentifier{Key: o.Key}
		}
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			if err := r.deleteBatch(ctx, ids); err != nil {
				fail(err)
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// deleteBatch uses DeleteObjects, falling back to one DeleteObject per key
// for servers without it.
func (r *runner) deleteBatch(ctx context.Context, ids []types.ObjectIdentifier) error {
	out, err := r.client.DeleteObjects(ctx, &s3.DeleteObjectsInput{
		Bucket: aws.String(r.bucket),
		Delete: &types.Delete{Objects: ids, Quiet: aws.Bool(true)},
	})
	if err == nil && len(out.Errors) == 0 {
		r.cleaned.ops.Add(int64(len(ids)))
		return nil
	}
	if err != nil {
		r.log.Debug("DeleteObjects failed; deleting one by one", "err", err)
	}
	for _, id := range ids {
		if _, err := r.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(r.bucket), Key: id.Key}); err != nil {
			r.cleaned.errs.Add(1)
			return fmt.Errorf("delete %s: %w", aws.ToString(id.Key), err)
		}
		r.cleaned.ops.Add(1)
	}
	return nil
}

// noteError counts err under a short description: the S3 error code when
// there is one, so that request IDs and sizes do not make every error
// distinct. The first full message of each kind is kept as an example.
func (r *runner) noteError(op string, err error) {
	msg := err.Error()
	var ae smithy.APIError
	var se *statusError
	switch {
	case errors.As(err, &se):
		msg = se.Error()
	case errors.As(err, &ae):
		msg = fmt.Sprintf("%s (HTTP %d)", ae.ErrorCode(), httpStatus(err))
	case errors.Is(err, errWrongLength):
		msg = errWrongLength.Error()
	case errors.Is(err, context.DeadlineExceeded):
		msg = "request timed out"
	}
	msg = op + ": " + truncate(msg, 200)
	r.errMu.Lock()
	defer r.errMu.Unlock()
	if _, ok := r.errMu.counts[msg]; !ok && len(r.errMu.order) >= maxErrorKinds {
		msg = "other errors"
	}
	if _, ok := r.errMu.counts[msg]; !ok {
		r.errMu.order = append(r.errMu.order, msg)
		r.errMu.examples[msg] = truncate(err.Error(), 500)
	}
	r.errMu.counts[msg]++
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// startReporter calls the progress function every interval until the
// returned stop function is called; stop waits for it to finish.
func (r *runner) startReporter() (stop func()) {
	if r.progMu.fn == nil {
		return func() {}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(r.cfg.ProgressInterval)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				r.emit()
			}
		}
	})
	return func() { close(done); wg.Wait() }
}

func (r *runner) setPhase(p Phase, total int64, counters func() (int64, int64, int64)) {
	r.progMu.Lock()
	defer r.progMu.Unlock()
	now := time.Now()
	r.progMu.phase, r.progMu.total, r.progMu.counters = p, total, counters
	r.progMu.start, r.progMu.lastAt = now, now
	r.progMu.lastOps, r.progMu.lastBytes = 0, 0
}

func (r *runner) emit() {
	r.progMu.Lock()
	defer r.progMu.Unlock()
	pm := &r.progMu
	if pm.fn == nil || pm.counters == nil {
		return
	}
	now := time.Now()
	ops, errs, bytes := pm.counters()
	s := Snapshot{Phase: pm.phase, Elapsed: now.Sub(pm.start), Ops: ops, Errors: errs, Bytes: bytes, Total: pm.total}
	if dt := now.Sub(pm.lastAt).Seconds(); dt > 0 {
		s.OpsPerSec = float64(ops-pm.lastOps) / dt
		s.MiBPerSec = float64(bytes-pm.lastBytes) / dt / (1 << 20)
	}
	pm.lastAt, pm.lastOps, pm.lastBytes = now, ops, bytes
	pm.fn(s)
}
