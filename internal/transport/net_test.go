package transport

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redoubt-io/redoubt/internal/testlog"
)

var testSecret = []byte("0123456789abcdef-test-secret")

func newIdentity(t testing.TB) *Identity {
	t.Helper()
	id, err := NewIdentity(nil)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// syncBuffer collects log output written from several goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func testConfig(t testing.TB, id *Identity, secret []byte, logs io.Writer) Config {
	cfg := DefaultConfig()
	cfg.Identity = id
	cfg.Secret = secret
	cfg.HandshakeTimeout = 3 * time.Second
	cfg.CallTimeout = 20 * time.Second
	w := io.Writer(testlog.Writer(t))
	if logs != nil {
		w = io.MultiWriter(w, logs)
	}
	cfg.Logger = slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
	return cfg
}

func start(t testing.TB, cfg Config) *Net {
	t.Helper()
	n, err := Listen(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := n.Close(); err != nil {
			t.Error(err)
		}
	})
	return n
}

func startNode(t testing.TB) *Net {
	return start(t, testConfig(t, newIdentity(t), testSecret, nil))
}

func echo(_ context.Context, _ NodeID, req []byte) ([]byte, error) { return req, nil }

func peerOf(n *Net) Peer { return Peer{ID: n.ID(), Addr: n.Addr()} }

// eventually polls cond until it holds or a deadline passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestCallBothWays(t *testing.T) {
	a, b := startNode(t), startNode(t)
	who := func(_ context.Context, from NodeID, req []byte) ([]byte, error) {
		return append([]byte(string(from)+":"), req...), nil
	}
	a.Handle("who", who)
	b.Handle("who", who)
	ctx := context.Background()

	got, err := a.Call(ctx, peerOf(b), "who", []byte("ping"))
	if err != nil || string(got) != string(a.ID())+":ping" {
		t.Fatalf("a->b: %q, %v", got, err)
	}
	got, err = b.Call(ctx, peerOf(a), "who", []byte("pong"))
	if err != nil || string(got) != string(b.ID())+":pong" {
		t.Fatalf("b->a: %q, %v", got, err)
	}
	// b answered over the connection a opened: one connection per pair.
	if sa, sb := a.Stats(), b.Stats(); sa.Dialed != 1 || sb.Dialed != 0 || sb.Accepted != 1 || sa.Conns != 1 || sb.Conns != 1 {
		t.Fatalf("stats a=%+v b=%+v, want one connection", sa, sb)
	}
	id, err := a.Hello(ctx, b.Addr())
	if err != nil || id != b.ID() {
		t.Fatalf("Hello = %s, %v; want %s", id, err, b.ID())
	}
}

func TestConcurrentCalls(t *testing.T) {
	a, b := startNode(t), startNode(t)
	var running, most atomic.Int64
	b.Handle("echo", func(ctx context.Context, from NodeID, req []byte) ([]byte, error) {
		r := running.Add(1)
		defer running.Add(-1)
		for m := most.Load(); r > m && !most.CompareAndSwap(m, r); m = most.Load() {
		}
		return req, nil
	})
	const callers, each = 100, 20
	var wg sync.WaitGroup
	errs := make(chan error, callers)
	for g := range callers {
		wg.Go(func() {
			for i := range each {
				req := bytes.Repeat([]byte{byte(g), byte(i)}, 1+g*37+i)
				resp, err := a.Call(context.Background(), peerOf(b), "echo", req)
				if err != nil {
					errs <- err
					return
				}
				if !bytes.Equal(resp, req) {
					errs <- fmt.Errorf("caller %d call %d: wrong answer", g, i)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if s := a.Stats(); s.Dialed != 1 || s.CallsSent != callers*each {
		t.Errorf("stats %+v: want 1 dial and %d calls", s, callers*each)
	}
	t.Logf("handlers running at once: up to %d", most.Load())
}

func TestLargeMessage(t *testing.T) {
	a, b := startNode(t), startNode(t)
	b.Handle("echo", echo)
	req := make([]byte, 16<<20)
	rand.Read(req)
	resp, err := a.Call(context.Background(), peerOf(b), "echo", req)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(resp, req) {
		t.Fatal("16 MiB echo differs")
	}
}

func TestMessageLimits(t *testing.T) {
	cfg := testConfig(t, newIdentity(t), testSecret, nil)
	cfg.MaxMessage = 1 << 10
	a, b := start(t, cfg), startNode(t)
	b.Handle("big", func(context.Context, NodeID, []byte) ([]byte, error) { return make([]byte, 2<<10), nil })
	if _, err := a.Call(context.Background(), peerOf(b), "x", make([]byte, 2<<10)); !errors.Is(err, ErrMessageTooLarge) {
		t.Fatalf("oversized request: %v, want ErrMessageTooLarge", err)
	}
	// b's limit is 64 MiB, so b sends the 2 KiB answer; a's reader takes
	// it for a protocol violation and drops the connection.
	if _, err := a.Call(context.Background(), peerOf(b), "big", nil); !errors.Is(err, ErrUnreachable) {
		t.Fatalf("oversized response: %v, want ErrUnreachable", err)
	}
	// The other way round, the answering side enforces its own limit. b
	// first sees the broken connection go, so it dials afresh.
	eventually(t, "b to drop the broken connection", func() bool { return b.Stats().Conns == 0 })
	a.Handle("big", func(context.Context, NodeID, []byte) ([]byte, error) { return make([]byte, 2<<10), nil })
	_, err := b.Call(context.Background(), peerOf(a), "big", nil)
	var re *RemoteError
	if !errors.As(err, &re) || !errors.Is(err, ErrMessageTooLarge) {
		t.Fatalf("oversized response on the sender's side: %v, want RemoteError wrapping ErrMessageTooLarge", err)
	}
}

func TestRemoteErrors(t *testing.T) {
	a, b := startNode(t), startNode(t)
	b.Handle("fail", func(context.Context, NodeID, []byte) ([]byte, error) { return nil, errors.New("disk on fire") })
	b.Handle("panic", func(context.Context, NodeID, []byte) ([]byte, error) { panic("bug") })
	ctx := context.Background()

	_, err := a.Call(ctx, peerOf(b), "fail", nil)
	var re *RemoteError
	if !errors.As(err, &re) || re.Message != "disk on fire" || re.From != b.ID() || re.Service != "fail" {
		t.Fatalf("handler error: %v, want RemoteError 'disk on fire'", err)
	}
	if errors.Is(err, ErrUnreachable) || errors.Is(err, ErrUnknownService) {
		t.Fatalf("handler error %v must not look like a transport failure", err)
	}
	if _, err = a.Call(ctx, peerOf(b), "nope", nil); !errors.As(err, &re) || !errors.Is(err, ErrUnknownService) {
		t.Fatalf("unknown service: %v", err)
	}
	if _, err = a.Call(ctx, peerOf(b), "panic", nil); !errors.As(err, &re) {
		t.Fatalf("panicking handler: %v, want RemoteError", err)
	}
	// The connection survives all of it.
	b.Handle("echo", echo)
	if _, err := a.Call(ctx, peerOf(b), "echo", []byte("x")); err != nil {
		t.Fatal(err)
	}
	if s := a.Stats(); s.Dialed != 1 {
		t.Fatalf("stats %+v: errors must not cost the connection", s)
	}
}

func TestCallContext(t *testing.T) {
	a, b := startNode(t), startNode(t)
	started := make(chan struct{}, 2)
	stopped := make(chan error, 2)
	b.Handle("wait", func(ctx context.Context, _ NodeID, _ []byte) ([]byte, error) {
		started <- struct{}{}
		<-ctx.Done()
		stopped <- ctx.Err()
		return nil, ctx.Err()
	})

	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	t0 := time.Now()
	_, err := a.Call(ctx, peerOf(b), "wait", nil)
	if !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, ErrUnreachable) {
		t.Fatalf("timed out call: %v, want DeadlineExceeded and ErrUnreachable", err)
	}
	if d := time.Since(t0); d > 2*time.Second {
		t.Fatalf("timed out call returned after %v", d)
	}
	<-started
	// The handler stops too: its deadline is the caller's, and the
	// caller's give-up is sent to it.
	if err := <-stopped; err == nil {
		t.Fatal("handler context did not end")
	}

	ctx, cancel = context.WithCancel(context.Background())
	go func() { <-started; cancel() }()
	if _, err := a.Call(ctx, peerOf(b), "wait", nil); !errors.Is(err, context.Canceled) || errors.Is(err, ErrUnreachable) {
		t.Fatalf("cancelled call: %v, want Canceled only", err)
	}
	// No deadline this time: only the cancel message can stop it.
	if err := <-stopped; !errors.Is(err, context.Canceled) {
		t.Fatalf("handler context ended with %v, want Canceled", err)
	}
}

func TestWrongSecretRefused(t *testing.T) {
	logs := &syncBuffer{}
	srv := start(t, testConfig(t, newIdentity(t), testSecret, logs))
	var calls atomic.Int64
	srv.Handle("echo", func(_ context.Context, _ NodeID, req []byte) ([]byte, error) {
		calls.Add(1)
		return req, nil
	})
	intruder := start(t, testConfig(t, newIdentity(t), []byte("not-the-cluster-secret"), nil))

	_, err := intruder.Call(context.Background(), peerOf(srv), "echo", []byte("let me in"))
	if !errors.Is(err, ErrRefused) {
		t.Fatalf("call without the secret: %v, want ErrRefused", err)
	}
	if _, err := intruder.Hello(context.Background(), srv.Addr()); !errors.Is(err, ErrRefused) {
		t.Fatalf("hello without the secret: %v, want ErrRefused", err)
	}
	eventually(t, "two refusals counted", func() bool { return srv.Stats().Refused == 2 })
	out := logs.String()
	if !strings.Contains(out, "peer refused") || !strings.Contains(out, string(intruder.ID())) {
		t.Fatalf("refusal not logged with the claimed node id; log:\n%s", out)
	}
	if s := srv.Stats(); s.Accepted != 0 || s.Conns != 0 {
		t.Fatalf("server stats %+v: nothing must be admitted", s)
	}

	// A member still gets in.
	member := startNode(t)
	if _, err := member.Call(context.Background(), peerOf(srv), "echo", []byte("hi")); err != nil {
		t.Fatal(err)
	}
	if calls.Load() != 1 {
		t.Fatalf("handler ran %d times, want once (for the member only)", calls.Load())
	}
}

func TestRawClientsRefused(t *testing.T) {
	logs := &syncBuffer{}
	srv := start(t, testConfig(t, newIdentity(t), testSecret, logs))
	var calls atomic.Int64
	srv.Handle("echo", func(_ context.Context, _ NodeID, req []byte) ([]byte, error) {
		calls.Add(1)
		return req, nil
	})

	// A plain TCP client sending a well-formed request frame in clear.
	raw, err := net.Dial("tcp", srv.Addr())
	if err != nil {
		t.Fatal(err)
	}
	var req bytes.Buffer
	writeFrame(&req, &frame{kind: kindRequest, id: 1, service: "echo", body: []byte("hi")})
	raw.Write(req.Bytes())
	raw.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadAll(raw); err != nil {
		t.Fatalf("server should close a garbage connection, got %v", err)
	}
	raw.Close()

	// A TLS 1.3 client without a certificate.
	tc, err := tls.Dial("tcp", srv.Addr(), &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS13, NextProtos: []string{alpn}})
	if err == nil {
		// TLS 1.3 finishes the client side before the server checks the
		// certificate; the refusal shows on the first read.
		tc.SetDeadline(time.Now().Add(5 * time.Second))
		tc.Write(append([]byte{admitVersion}, make([]byte, 32)...))
		_, err = io.ReadAll(tc)
		tc.Close()
	}
	if err == nil {
		t.Fatal("TLS client without certificate was not refused")
	}

	// A TLS 1.2 client with a valid node certificate.
	cert, err := certificate(newIdentity(t))
	if err != nil {
		t.Fatal(err)
	}
	tc12, err := tls.Dial("tcp", srv.Addr(), &tls.Config{InsecureSkipVerify: true, MaxVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}})
	if err == nil {
		tc12.Close()
		t.Fatal("TLS 1.2 accepted")
	}

	eventually(t, "three refusals", func() bool { return srv.Stats().Refused == 3 })
	if calls.Load() != 0 {
		t.Fatalf("handler ran %d times for refused clients", calls.Load())
	}
	member := startNode(t)
	if _, err := member.Call(context.Background(), peerOf(srv), "echo", []byte("hi")); err != nil {
		t.Fatal(err)
	}
}

func TestDialerChecksAcceptorProof(t *testing.T) {
	// An acceptor that admits anyone but cannot prove the secret.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	cert, err := certificate(newIdentity(t))
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan struct{})
	go func() {
		defer close(served)
		raw, err := ln.Accept()
		if err != nil {
			return
		}
		defer raw.Close()
		tc := tls.Server(raw, serverTLS(cert, protocols))
		msg := make([]byte, 33)
		if _, err := io.ReadFull(tc, msg); err != nil {
			return
		}
		tc.Write(append([]byte{admitVersion, statusAdmitted}, make([]byte, 32)...))
		io.Copy(io.Discard, tc)
	}()
	a := startNode(t)
	if _, err := a.Call(context.Background(), Peer{Addr: ln.Addr().String()}, "echo", nil); !errors.Is(err, ErrRefused) {
		t.Fatalf("call to an impostor: %v, want ErrRefused", err)
	}
	if a.Stats().Refused != 1 {
		t.Fatalf("stats %+v: want one refusal", a.Stats())
	}
	ln.Close()
	<-served
}

func TestPinning(t *testing.T) {
	a, b := startNode(t), startNode(t)
	b.Handle("echo", echo)
	other := newIdentity(t).ID()
	_, err := a.Call(context.Background(), Peer{ID: other, Addr: b.Addr()}, "echo", nil)
	if !errors.Is(err, ErrPinning) {
		t.Fatalf("wrong pinned id: %v, want ErrPinning", err)
	}
	// Unpinned first contact learns the id, which then pins.
	id, err := a.Hello(context.Background(), b.Addr())
	if err != nil || id != b.ID() {
		t.Fatalf("Hello = %s, %v", id, err)
	}
	if _, err := a.Call(context.Background(), Peer{ID: id, Addr: b.Addr()}, "echo", nil); err != nil {
		t.Fatal(err)
	}
}

func TestReconnectAfterRestart(t *testing.T) {
	a := startNode(t)
	bid := newIdentity(t)
	cfg := testConfig(t, bid, testSecret, nil)
	b, err := Listen(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	b.Handle("echo", echo)
	to := peerOf(b)
	if _, err := a.Call(context.Background(), to, "echo", []byte("1")); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Call(context.Background(), to, "echo", []byte("2")); !errors.Is(err, ErrUnreachable) {
		t.Fatalf("call to a stopped peer: %v, want ErrUnreachable", err)
	}
	cfg.ListenAddr = to.Addr
	b2 := start(t, cfg)
	b2.Handle("echo", echo)
	resp, err := a.Call(context.Background(), to, "echo", []byte("3"))
	if err != nil || string(resp) != "3" {
		t.Fatalf("call after restart: %q, %v", resp, err)
	}
	if s := a.Stats(); s.Dialed != 2 {
		t.Fatalf("stats %+v: want a second dial", s)
	}
}

func TestCloseFailsPendingCalls(t *testing.T) {
	a := startNode(t)
	b, err := Listen(context.Background(), testConfig(t, newIdentity(t), testSecret, nil))
	if err != nil {
		t.Fatal(err)
	}
	entered := make(chan struct{})
	b.Handle("wait", func(ctx context.Context, _ NodeID, _ []byte) ([]byte, error) {
		close(entered)
		<-ctx.Done()
		return nil, ctx.Err()
	})
	errc := make(chan error, 1)
	go func() {
		_, err := a.Call(context.Background(), peerOf(b), "wait", nil)
		errc <- err
	}()
	<-entered
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; !errors.Is(err, ErrUnreachable) {
		t.Fatalf("call pending at close: %v, want ErrUnreachable", err)
	}
	if _, err := b.Call(context.Background(), peerOf(a), "x", nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("call on a closed Net: %v, want ErrClosed", err)
	}
}

func TestConfigValidate(t *testing.T) {
	good := DefaultConfig()
	good.Identity = newIdentity(t)
	good.Secret = testSecret
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	for name, mut := range map[string]func(*Config){
		"no identity":  func(c *Config) { c.Identity = nil },
		"short secret": func(c *Config) { c.Secret = []byte("short") },
		"no addr":      func(c *Config) { c.ListenAddr = "" },
		"dial":         func(c *Config) { c.DialTimeout = 0 },
		"handshake":    func(c *Config) { c.HandshakeTimeout = 0 },
		"call":         func(c *Config) { c.CallTimeout = -1 },
		"max message":  func(c *Config) { c.MaxMessage = 0 },
		"inflight":     func(c *Config) { c.MaxInflight = 0 },
	} {
		c := good
		mut(&c)
		if err := c.Validate(); err == nil {
			t.Errorf("%s: Validate accepted %+v", name, c)
		}
	}
}

func TestDeadlineReachesHandler(t *testing.T) {
	a, b := startNode(t), startNode(t)
	b.Handle("left", func(ctx context.Context, _ NodeID, _ []byte) ([]byte, error) {
		d, ok := ctx.Deadline()
		if !ok {
			return nil, errors.New("no deadline")
		}
		return []byte(time.Until(d).String()), nil
	})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	resp, err := a.Call(ctx, peerOf(b), "left", nil)
	if err != nil {
		t.Fatal(err)
	}
	left, err := time.ParseDuration(string(resp))
	if err != nil || left <= 0 || left > 2*time.Second {
		t.Fatalf("handler had %s left, want the caller's 2s budget or less", resp)
	}
	// Without a deadline of its own the caller still has CallTimeout.
	resp, err = a.Call(context.Background(), peerOf(b), "left", nil)
	if err != nil {
		t.Fatal(err)
	}
	if left, _ := time.ParseDuration(string(resp)); left <= 2*time.Second {
		t.Fatalf("handler had %s left, want about CallTimeout", resp)
	}
}
