package node

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/redoubt-io/redoubt/internal/admin"
	"github.com/redoubt-io/redoubt/internal/testlog"
)

// logRecorder keeps the records a node logs, with the logger's attributes,
// and passes them on to the test's log.
type logRecorder struct {
	mu      sync.Mutex
	records []loggedRecord
}

type loggedRecord struct {
	level slog.Level
	msg   string
	attrs map[string]string
}

type recordingHandler struct {
	next  slog.Handler
	attrs []slog.Attr
	rec   *logRecorder
}

func (h recordingHandler) Enabled(ctx context.Context, l slog.Level) bool { return true }

func (h recordingHandler) Handle(ctx context.Context, r slog.Record) error {
	lr := loggedRecord{level: r.Level, msg: r.Message, attrs: map[string]string{}}
	for _, a := range h.attrs {
		lr.attrs[a.Key] = a.Value.String()
	}
	r.Attrs(func(a slog.Attr) bool {
		lr.attrs[a.Key] = a.Value.String()
		return true
	})
	h.rec.mu.Lock()
	h.rec.records = append(h.rec.records, lr)
	h.rec.mu.Unlock()
	if h.next.Enabled(ctx, r.Level) {
		return h.next.Handle(ctx, r)
	}
	return nil
}

func (h recordingHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return recordingHandler{next: h.next.WithAttrs(as), attrs: append(h.attrs[:len(h.attrs):len(h.attrs)], as...), rec: h.rec}
}

func (h recordingHandler) WithGroup(name string) slog.Handler {
	return recordingHandler{next: h.next.WithGroup(name), attrs: h.attrs, rec: h.rec}
}

// matching returns the records of service whose message contains msg.
func (r *logRecorder) matching(service, msg string) []loggedRecord {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []loggedRecord
	for _, lr := range r.records {
		if lr.attrs["service"] == service && strings.Contains(lr.msg, msg) {
			out = append(out, lr)
		}
	}
	return out
}

type supervisedNode struct {
	n      *Node
	client *s3.Client
	logs   *logRecorder
	cancel context.CancelFunc
	done   chan error
}

// startSupervisedNode runs a one-drive node with the given supervision
// settings; before runs between Start and Serve.
func startSupervisedNode(t *testing.T, sc SupervisionConfig, before func(*Node)) *supervisedNode {
	t.Helper()
	cfg := DefaultConfig()
	cfg.DataDirs = []string{filepath.Join(t.TempDir(), "d1")}
	cfg.S3Addr, cfg.AdminAddr = "127.0.0.1:0", "127.0.0.1:0"
	cfg.Credentials = &Credentials{AccessKey: "testaccesskey", SecretKey: "testsecretkey1234"}
	cfg.ShutdownTimeout = 5 * time.Second
	cfg.Supervision = sc
	rec := &logRecorder{}
	text := slog.NewTextHandler(testlog.Writer(t), &slog.HandlerOptions{Level: slog.LevelWarn})
	logger := slog.New(recordingHandler{next: text, rec: rec})
	ctx, cancel := context.WithCancel(context.Background())
	n, err := Start(ctx, cfg, logger)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if before != nil {
		before(n)
	}
	sn := &supervisedNode{n: n, logs: rec, cancel: cancel, done: make(chan error, 1)}
	go func() { sn.done <- n.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-sn.done
	})
	sn.client = s3.New(s3.Options{
		Region:           cfg.Region,
		Credentials:      credentials.NewStaticCredentialsProvider(cfg.Credentials.AccessKey, cfg.Credentials.SecretKey, ""),
		BaseEndpoint:     aws.String(n.S3URL),
		UsePathStyle:     true,
		RetryMaxAttempts: 1,
	})
	return sn
}

// status reads /status through the admin endpoint, as a monitor would.
func (sn *supervisedNode) status(t *testing.T) admin.Status {
	t.Helper()
	var st admin.Status
	if err := rootClient(sn.n).Call(t.Context(), sn.n.AdminURL, http.MethodGet, "/status", nil, &st); err != nil {
		t.Fatal(err)
	}
	return st
}

func serviceStatus(st admin.Status, name string) (admin.ServiceStatus, bool) {
	for _, s := range st.Services {
		if s.Name == name {
			return s, true
		}
	}
	return admin.ServiceStatus{}, false
}

// roundTrip PUTs an object and GETs it back.
func (sn *supervisedNode) roundTrip(t *testing.T, bucket, key string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	body := []byte("payload of " + key)
	if _, err := putBytes(ctx, sn.client, bucket, key, body); err != nil {
		t.Fatalf("PUT %s: %v", key, err)
	}
	got, err := getBytes(ctx, sn.client, bucket, key)
	if err != nil {
		t.Fatalf("GET %s: %v", key, err)
	}
	if !bytes.Equal(got, body) {
		t.Fatalf("GET %s: got %q, want %q", key, got, body)
	}
}

func (sn *supervisedNode) createBucket(t *testing.T, bucket string) {
	t.Helper()
	if _, err := sn.client.CreateBucket(context.Background(), &s3.CreateBucketInput{Bucket: aws.String(bucket)}); err != nil {
		t.Fatal(err)
	}
}

func (n *Node) testService(name string) *service {
	n.services.mu.Lock()
	defer n.services.mu.Unlock()
	for _, s := range n.services.mu.services {
		if s.name == name {
			return s
		}
	}
	return nil
}

// TestPanickingServiceRestartedThenFailed: a background service that
// panics on every run is restarted with a back-off while S3 keeps
// serving, every restart is logged and counted on /status, and once it
// has crossed the failure threshold GiveUpAfter times it is reported
// failed and never run again.
func TestPanickingServiceRestartedThenFailed(t *testing.T) {
	sc := SupervisionConfig{
		FailureThreshold: 2,
		FailureDecay:     time.Minute, // failures in this test do not decay
		FailureBackoff:   time.Second, // several polls see the back-off
		GiveUpAfter:      2,
	}
	// Each crossing takes threshold+1 quick failures; the last run is the
	// one that crosses for the last time.
	const wantRuns = 3 * 2
	var runs atomic.Int64
	sn := startSupervisedNode(t, sc, func(n *Node) {
		n.supervise("crasher", func(ctx context.Context) error {
			runs.Add(1)
			panic(fmt.Sprintf("crasher run %d", runs.Load()))
		})
	})
	sn.createBucket(t, "sup-test")

	var sawRestarting bool
	var restartsSeen []int64
	i := 0
	ok := pollUntil(30*time.Second, func() bool {
		i++
		sn.roundTrip(t, "sup-test", fmt.Sprintf("k%d", i))
		cs, found := serviceStatus(sn.status(t), "crasher")
		if !found {
			t.Fatal("crasher missing from /status")
		}
		if n := len(restartsSeen); n == 0 || restartsSeen[n-1] != cs.Restarts {
			restartsSeen = append(restartsSeen, cs.Restarts)
		}
		sawRestarting = sawRestarting || (cs.State == admin.ServiceRestarting && cs.Restarts > 0)
		return cs.State == admin.ServiceFailed
	})
	if !ok {
		t.Fatalf("crasher not failed within 30s; restarts seen %v", restartsSeen)
	}
	t.Logf("restarts seen on /status while S3 served %d round trips: %v", i, restartsSeen)
	if len(restartsSeen) < 2 || !slices.IsSorted(restartsSeen) {
		t.Errorf("restarts on /status went %v, want them counting up", restartsSeen)
	}
	if !sawRestarting {
		t.Errorf("/status never showed the crasher restarting during its back-off")
	}

	// A failed service is dropped by its supervisor once its back-off
	// ends; from then on nothing can run it again.
	select {
	case <-sn.n.testService("crasher").gaveUp:
	case <-time.After(10 * time.Second):
		t.Fatal("failed service not dropped by its supervisor")
	}
	st := sn.status(t)
	cs, _ := serviceStatus(st, "crasher")
	if got := runs.Load(); got != wantRuns || cs.Restarts != wantRuns-1 {
		t.Errorf("runs %d, restarts on /status %d; want %d and %d", got, cs.Restarts, wantRuns, wantRuns-1)
	}
	if cs.LastError != fmt.Sprintf("crasher run %d", wantRuns) {
		t.Errorf("last_error %q, want the last panic value", cs.LastError)
	}
	for _, name := range []string{"s3", "admin", "drive-health"} {
		s, found := serviceStatus(st, name)
		if !found || s.State != admin.ServiceRunning || s.Restarts != 0 {
			t.Errorf("service %s: %+v (found %v), want running without restarts", name, s, found)
		}
	}
	sn.roundTrip(t, "sup-test", "after-failure")

	if got := len(sn.logs.matching("crasher", "restarting it")); got != wantRuns-1 {
		t.Errorf("%d restart records logged, want %d", got, wantRuns-1)
	}
	for _, lr := range sn.logs.matching("crasher", "restarting it") {
		if !strings.HasPrefix(lr.attrs["panic"], "crasher run ") || lr.attrs["stack"] == "" {
			t.Errorf("restart record without the panic value and stack: %v", lr.attrs)
			break
		}
	}
	if got := sn.logs.matching("crasher", "no longer restarted"); len(got) != 1 || got[0].level != slog.LevelError {
		t.Errorf("give-up records: %+v, want one at error level", got)
	}

	sn.cancel()
	if err := <-sn.done; err != nil {
		t.Errorf("serve: %v", err)
	}
	sn.done <- nil // for the cleanup
	for _, s := range sn.n.services.status() {
		if s.Name != "crasher" && s.State != admin.ServiceStopped {
			t.Errorf("after shutdown, service %s is %s", s.Name, s.State)
		}
	}
}

// TestS3FrontEndRestartsOnItsAddress: when the S3 server's listener fails,
// the front end is restarted on the same address and clients carry on.
func TestS3FrontEndRestartsOnItsAddress(t *testing.T) {
	sn := startSupervisedNode(t, SupervisionConfig{}, nil)
	sn.createBucket(t, "sup-test")
	sn.roundTrip(t, "sup-test", "before")
	sn.n.s3Ln.Close() // the accept loop fails as on a lost socket

	ok := pollUntil(10*time.Second, func() bool {
		s, _ := serviceStatus(sn.status(t), "s3")
		return s.Restarts == 1 && s.State == admin.ServiceRunning
	})
	if !ok {
		t.Fatalf("S3 front end not restarted: %+v", sn.status(t).Services)
	}
	s, _ := serviceStatus(sn.status(t), "s3")
	if !strings.Contains(s.LastError, "closed") {
		t.Errorf("last_error %q, want the accept failure", s.LastError)
	}
	// The client's pooled connection may have died with the listener;
	// a new one reaches the rebound address.
	var err error
	if !pollUntil(5*time.Second, func() bool {
		_, err = sn.client.HeadBucket(context.Background(), &s3.HeadBucketInput{Bucket: aws.String("sup-test")})
		return err == nil
	}) {
		t.Fatalf("S3 not served after the restart: %v", err)
	}
	sn.roundTrip(t, "sup-test", "after")
}

// TestEssentialServiceFailureEndsServe: a node whose essential service
// fails for good stops serving and says why, so that its process manager
// restarts it.
func TestEssentialServiceFailureEndsServe(t *testing.T) {
	sc := SupervisionConfig{FailureThreshold: 1, FailureBackoff: time.Millisecond, GiveUpAfter: 1}
	sn := startSupervisedNode(t, sc, func(n *Node) {
		n.services.add("vital", func(context.Context) error { return errors.New("vital broke") }, true)
	})
	select {
	case err := <-sn.done:
		if err == nil || !strings.Contains(err.Error(), "vital broke") {
			t.Errorf("serve returned %v, want the essential service's error", err)
		}
		sn.done <- nil
	case <-time.After(20 * time.Second):
		t.Fatal("serve still running after its essential service failed")
	}
}

// TestFinishedServiceNotRestarted: a service that returns nil has done
// its work; it is not a failure.
func TestFinishedServiceNotRestarted(t *testing.T) {
	ran := make(chan struct{}, 10)
	sn := startSupervisedNode(t, SupervisionConfig{}, func(n *Node) {
		n.supervise("once", func(context.Context) error { ran <- struct{}{}; return nil })
	})
	<-ran
	if !pollUntil(5*time.Second, func() bool {
		s, _ := serviceStatus(sn.status(t), "once")
		return s.State == admin.ServiceStopped
	}) {
		t.Fatalf("finished service not stopped: %+v", sn.status(t).Services)
	}
	s, _ := serviceStatus(sn.status(t), "once")
	if s.Restarts != 0 || len(ran) != 0 {
		t.Errorf("finished service restarted: %+v", s)
	}
}

func TestSupervisionConfigValidate(t *testing.T) {
	if err := (SupervisionConfig{}).Validate(); err != nil {
		t.Errorf("zero config: %v", err)
	}
	if err := DefaultSupervisionConfig().Validate(); err != nil {
		t.Errorf("default config: %v", err)
	}
	if got := (SupervisionConfig{GiveUpAfter: 7}).withDefaults(); got.GiveUpAfter != 7 || got.FailureThreshold != 5 {
		t.Errorf("withDefaults: %+v", got)
	}
	for _, bad := range []SupervisionConfig{
		{FailureThreshold: -1},
		{FailureBackoff: -time.Second},
		{GiveUpAfter: -1},
	} {
		if err := bad.Validate(); err == nil {
			t.Errorf("%+v: no error", bad)
		}
	}
}
