package node

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/redoubt-io/redoubt/internal/lincheck"
	"github.com/redoubt-io/redoubt/internal/lincheck/s3load"
	"github.com/redoubt-io/redoubt/internal/placement"
)

var rebalanceSeed = flag.Uint64("rebalance.seed", 0, "seed of the rebalance-while-serving tests (0: from the clock)")

// TestRebalanceWhileServing changes the layout of a cluster under a
// workload of clients on the nodes that stay: a node added, a node
// removed while it still runs, a zone of two nodes added. The clients PUT,
// GET, DELETE and create-if-absent a few keys, half of the values too big
// to be stored inline, so that their shards move; objects written just
// before the change are read while it runs. Every request must succeed
// (the SDK's own retries allowed) and the history must be linearizable.
func TestRebalanceWhileServing(t *testing.T) {
	// A fixed policy: with the one the cluster's size gives, a node added
	// widens every partition and nothing moves.
	ec, err := placement.ParseEC("2+1")
	if err != nil {
		t.Fatal(err)
	}
	opts := clusterOptions{nodes: 4, zones: 2, raftTick: 20 * time.Millisecond, policy: &ec}

	t.Run("node added", func(t *testing.T) {
		var added int
		rebalanceUnderLoad(t, opts, nil, func(tc *testCluster, w *rebalanceLoad) uint64 {
			var version uint64
			added, version = tc.addNode(1, "zone-c")
			w.serve(added)
			t.Logf("node %d added: layout %d", added, version)
			return version
		}, func(tc *testCluster) {
			got := tc.refsOn(0, tc.drivesOf(added))
			if len(got) == 0 {
				t.Errorf("no data moved onto the new node: the test proves nothing")
			}
			t.Logf("%d shards on the new node", len(got))
		})
	})

	t.Run("node removed", func(t *testing.T) {
		// Node 3 stays up through its removal: it is drained, not lost.
		const gone = 3
		var drives []string
		rebalanceUnderLoad(t, opts, []int{gone}, func(tc *testCluster, w *rebalanceLoad) uint64 {
			drives = tc.drivesOf(gone)
			held := len(tc.refsOn(0, drives))
			if held == 0 {
				t.Fatalf("no data on node %d before its removal: the test proves nothing", gone)
			}
			version := tc.removeNode(0, gone)
			t.Logf("node %d, holding %d shards, removed: layout %d", gone, held, version)
			return version
		}, func(tc *testCluster) {
			if left := tc.refsOn(0, drives); len(left) > 0 {
				t.Errorf("after the removal settled, %d shards are still on node %d: %v", len(left), gone, left[:min(len(left), 5)])
			}
		})
	})

	t.Run("zone added", func(t *testing.T) {
		var added []int
		rebalanceUnderLoad(t, opts, nil, func(tc *testCluster, w *rebalanceLoad) uint64 {
			// The second node comes once the first follows the layout that
			// adds it, while its data is moving: the second layout takes
			// some of the groups the first gave it before their leaders
			// took it in.
			var version uint64
			for _, via := range []int{2, 3} {
				var i int
				i, version = tc.addNode(via, "zone-c")
				w.serve(i)
				added = append(added, i)
				t.Logf("node %d added in zone-c: layout %d", i, version)
				if !pollUntil(10*time.Second, func() bool {
					l := tc.node(i).cluster.Layout()
					return l != nil && l.Version >= version
				}) {
					t.Fatalf("node %d does not follow layout %d", i, version)
				}
			}
			return version
		}, func(tc *testCluster) {
			for _, i := range added {
				got := tc.refsOn(0, tc.drivesOf(i))
				if len(got) == 0 {
					t.Errorf("no data moved onto node %d of the new zone: the test proves nothing", i)
				}
				t.Logf("%d shards on node %d", len(got), i)
			}
		})
	})
}

// Phases of the rebalance workload, and its bounds.
const (
	rebalanceBefore = 1500 * time.Millisecond // load before the change
	rebalanceAfter  = time.Second             // load after it settled
	rebalanceSettle = 40 * time.Second
	// rebalancePreset objects are written just before the change and
	// read while it runs: small, big, and of two chunks in turn.
	rebalancePreset  = 24
	rebalanceChunks  = 5 << 19 // 2.5 MiB: two chunks of EC 2+1
	rebalanceClients = 6
	// Values are inline up to 128 KiB; the big ones are stored as shards.
	rebalanceSmallMax = 4 << 10
	rebalanceBigMin   = 160 << 10
	rebalanceBigMax   = 400 << 10
)

// rebalanceUnderLoad starts a cluster of opts, runs the workload on its
// nodes but those of notServing, calls change (which returns the layout
// version it applied) with the load running, waits for the change to
// settle, lets the load run a little longer, then calls check, and checks
// that no request failed and that the history is linearizable.
func rebalanceUnderLoad(t *testing.T, opts clusterOptions, notServing []int,
	change func(*testCluster, *rebalanceLoad) uint64, check func(*testCluster)) {
	rng, seed := testSeed(t, *rebalanceSeed, "rebalance.seed")
	tc := startCluster(t, opts)
	const bucket = "rebalance"
	tc.createBucket(0, bucket)
	w := &rebalanceLoad{tc: tc, bucket: bucket, start: time.Now()}
	attempts := &attemptCounter{next: &http.Transport{MaxIdleConnsPerHost: 16}, start: w.start}
	w.http = &http.Client{Timeout: 30 * time.Second, Transport: attempts}
	t.Cleanup(w.http.CloseIdleConnections)
	for i := range opts.nodes {
		if !slices.Contains(notServing, i) {
			w.serve(i)
		}
	}

	keys := []string{"a", "b", "c", "d"}
	stop := make(chan struct{})
	stopLoad := sync.OnceFunc(func() { close(stop) })
	var wg sync.WaitGroup
	// A test that stops early stops its clients before its cluster.
	t.Cleanup(func() { stopLoad(); wg.Wait() })
	for cl := range rebalanceClients {
		crng := rand.New(rand.NewPCG(rng.Uint64(), uint64(cl)))
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				in := lincheck.RandomInput(crng, keys, "")
				w.do(cl, crng, in, -1)
			}
		})
	}
	time.Sleep(rebalanceBefore) // load before the change, not a wait for an event

	// Objects written just before the change, then read over and over by
	// a client of their own until the change has settled.
	prng := rand.New(rand.NewPCG(rng.Uint64(), rebalanceClients))
	var preset []string
	for i := range rebalancePreset {
		key := fmt.Sprintf("pre/%02d", i)
		preset = append(preset, key)
		size := []int{1 << 10, rebalanceBigMin, rebalanceChunks}[i%3]
		w.do(rebalanceClients, prng, lincheck.Input{Op: lincheck.Put, Key: key}, size)
	}
	settled := make(chan struct{})
	var reads atomic.Int64
	wg.Go(func() {
		for {
			select {
			case <-settled:
				return
			case <-stop:
				return
			default:
			}
			w.do(rebalanceClients, prng, lincheck.Input{Op: lincheck.Get, Key: preset[prng.IntN(len(preset))]}, -1)
			reads.Add(1)
		}
	})

	opsBefore := w.ops.Load()
	changed := time.Now()
	version := change(tc, w)
	applied := time.Since(changed)
	took := tc.settle(version, rebalanceSettle)
	close(settled)
	t.Logf("@%v layout %d applied in %v, settled %v later; %d requests meanwhile, %d of them reads of the %d objects written just before",
		changed.Sub(w.start).Round(time.Millisecond), version, applied.Round(time.Millisecond), took.Round(time.Millisecond),
		w.ops.Load()-opsBefore, reads.Load(), rebalancePreset)
	time.Sleep(rebalanceAfter) // load after the change, not a wait for an event
	stopLoad()
	wg.Wait()
	check(tc)

	w.mu.Lock()
	defer w.mu.Unlock()
	attempts.mu.Lock()
	t.Logf("%d requests in %d attempts; failed attempts the SDK retried: %v %s", w.ops.Load(), attempts.mu.attempts,
		attempts.mu.retried, strings.Join(attempts.mu.first, "; "))
	attempts.mu.Unlock()
	if len(w.mu.failed) > 0 {
		t.Errorf("%d of %d requests failed after the SDK's retries (seed %d); the first:\n%s",
			w.failures.Load(), w.ops.Load(), seed, strings.Join(w.mu.failed, "\n"))
	}
	lincheck.Check(t, w.mu.history, seed)
}

// rebalanceLoad is the workload of rebalanceUnderLoad: what it records,
// and the clients of the nodes it uses. Any goroutine may call its
// methods.
type rebalanceLoad struct {
	tc       *testCluster
	http     *http.Client
	bucket   string
	start    time.Time
	ops      atomic.Int64
	values   atomic.Int64
	failures atomic.Int64

	mu struct {
		sync.Mutex
		nodes   []int
		clients map[int]*s3.Client
		history []porcupine.Operation
		failed  []string // the first few failures
	}
}

// serve adds node i to the nodes the workload sends requests to, with a
// client that retries as the SDK does by default.
func (w *rebalanceLoad) serve(i int) {
	n := w.tc.node(i)
	c := s3.New(s3.Options{
		Region:                     clusterRegion,
		Credentials:                credentials.NewStaticCredentialsProvider(clusterAccessKey, clusterSecretKey, ""),
		BaseEndpoint:               aws.String(n.S3URL),
		UsePathStyle:               true,
		HTTPClient:                 w.http,
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenSupported,
		ResponseChecksumValidation: aws.ResponseChecksumValidationWhenSupported,
	})
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.mu.clients == nil {
		w.mu.clients = map[int]*s3.Client{}
	}
	w.mu.clients[i] = c
	w.mu.nodes = append(w.mu.nodes, i)
}

// do sends in through a random node and records it; a put or create
// writes a new value of size bytes, or when size is negative, big or
// small at random.
func (w *rebalanceLoad) do(cl int, rng *rand.Rand, in lincheck.Input, size int) {
	w.mu.Lock()
	node := w.mu.nodes[rng.IntN(len(w.mu.nodes))]
	c := w.mu.clients[node]
	w.mu.Unlock()
	in.Node, in.Bucket = node, w.bucket
	var body string
	if in.Op == lincheck.Put || in.Op == lincheck.Create {
		switch {
		case size >= 0:
		case rng.IntN(2) == 0:
			size = rebalanceBigMin + rng.IntN(rebalanceBigMax-rebalanceBigMin)
		default:
			size = 1 + rng.IntN(rebalanceSmallMax)
		}
		in.Value = fmt.Sprintf("v%d-%d", w.values.Add(1), size)
		body = rebalanceBody(in.Value)
	}
	req := in
	req.Value = body
	// Long enough for the SDK's three attempts and their back-off.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	call := time.Since(w.start)
	out, err := s3load.Call(ctx, c, req, nil)
	ret := time.Since(w.start)
	cancel()
	w.ops.Add(1)
	if err == nil && in.Op == lincheck.Get && out.Err == "" {
		var bad error
		out.Value, bad = rebalanceValue(out.Value)
		if bad != nil {
			err = fmt.Errorf("wrong body: %w", bad)
		}
	}
	op := porcupine.Operation{ClientId: cl, Input: in, Call: call.Nanoseconds(), Output: out, Return: ret.Nanoseconds()}
	w.mu.Lock()
	defer w.mu.Unlock()
	if err != nil {
		w.failures.Add(1)
		if len(w.mu.failed) < 10 {
			w.mu.failed = append(w.mu.failed, fmt.Sprintf("  @%v-%v %s %s %s through node %d: %v",
				call.Round(time.Millisecond), ret.Round(time.Millisecond), in.Op, in.Key, in.Value, node, err))
		}
		if in.Op == lincheck.Get {
			return // a failed read had no effect
		}
		op.Output, op.Return = lincheck.Output{Unknown: true}, lincheck.Pending
	}
	w.mu.history = append(w.mu.history, op)
}

// rebalanceBody is the body that stands for value "v<n>-<size>": the
// value, a newline, and size bytes of payload(n, size), so that a read
// tells which write it returns and whether it came back whole.
func rebalanceBody(value string) string {
	n, size := rebalanceParse(value)
	return value + "\n" + string(payload(n, size))
}

// rebalanceValue is the value a body read back stands for, or an error
// if the body is not one rebalanceBody made.
func rebalanceValue(body string) (string, error) {
	value, rest, ok := strings.Cut(body, "\n")
	if !ok {
		return "garbled", fmt.Errorf("%d bytes without a header", len(body))
	}
	n, size := rebalanceParse(value)
	if size < 0 || len(rest) != size || !bytes.Equal([]byte(rest), payload(n, size)) {
		return "garbled:" + value, fmt.Errorf("%d bytes of %q differ from the %d written", len(rest), value, size)
	}
	return value, nil
}

func rebalanceParse(value string) (n uint64, size int) {
	a, b, ok := strings.Cut(strings.TrimPrefix(value, "v"), "-")
	if !ok {
		return 0, -1
	}
	n, err1 := strconv.ParseUint(a, 10, 64)
	size, err2 := strconv.Atoi(b)
	if err1 != nil || err2 != nil {
		return 0, -1
	}
	return n, size
}

// FuzzRebalanceValue: a body rebalanceBody made reads back as its value,
// and any other body is refused without a panic.
func FuzzRebalanceValue(f *testing.F) {
	f.Add(uint64(7), uint16(300), []byte("v7-3\nabc"))
	f.Add(uint64(0), uint16(0), []byte("v-1\n"))
	f.Fuzz(func(t *testing.T, n uint64, size uint16, body []byte) {
		value := fmt.Sprintf("v%d-%d", n, size)
		if got, err := rebalanceValue(rebalanceBody(value)); err != nil || got != value {
			t.Fatalf("the body of %q reads back as %q, %v", value, got, err)
		}
		if got, err := rebalanceValue(string(body)); err == nil && rebalanceBody(got) != string(body) {
			t.Fatalf("%q taken for the body of %q", body, got)
		}
	})
}

// drivesOf lists the drives the current layout gives node i.
func (tc *testCluster) drivesOf(i int) []string {
	tc.t.Helper()
	l := tc.node(0).cluster.Layout()
	ln, ok := l.Node(string(tc.nodes[i].id))
	if !ok {
		tc.t.Fatalf("node %d is not in layout %d", i, l.Version)
	}
	var out []string
	for _, d := range ln.Drives {
		out = append(out, d.ID)
	}
	return out
}

// attemptCounter counts the HTTP attempts the SDK makes, and the answers
// that made it retry.
type attemptCounter struct {
	next  http.RoundTripper
	start time.Time
	mu    struct {
		sync.Mutex
		attempts int
		// retried counts the failed attempts by answer; first describes
		// the first few.
		retried map[string]int
		first   []string
	}
}

func (a *attemptCounter) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := a.next.RoundTrip(req)
	var what, detail string
	switch {
	case err != nil:
		what, detail = req.Method+" error", err.Error()
	case resp.StatusCode >= 500:
		// Keep the answer's code for the log; the SDK reads the body after.
		b, rerr := io.ReadAll(resp.Body)
		resp.Body.Close()
		resp.Body = io.NopCloser(bytes.NewReader(b))
		what, detail = fmt.Sprintf("%s %d", req.Method, resp.StatusCode), string(b)
		if rerr != nil {
			detail = rerr.Error()
		} else if _, code, ok := strings.Cut(detail, "<Code>"); ok {
			detail, _, _ = strings.Cut(code, "</Code>")
		}
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.mu.attempts++
	if what != "" {
		if a.mu.retried == nil {
			a.mu.retried = map[string]int{}
		}
		a.mu.retried[what]++
		if len(a.mu.first) < 5 {
			a.mu.first = append(a.mu.first, fmt.Sprintf("@%v %s %s: %s", time.Since(a.start).Round(time.Millisecond), what, req.URL.Path, detail))
		}
	}
	return resp, err
}
