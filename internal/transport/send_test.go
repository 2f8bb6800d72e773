package transport

import (
	"context"
	"encoding/binary"
	"errors"
	"sync"
	"testing"
)

// TestSendKeepsOrder: one-way messages to a peer arrive, all of them and
// in the order they were sent, interleaved with calls on the same
// connection.
func TestSendKeepsOrder(t *testing.T) {
	a, b := startNode(t), startNode(t)
	var mu sync.Mutex
	var got []uint64
	b.Handle("msg", func(_ context.Context, from NodeID, m []byte) ([]byte, error) {
		if from != a.ID() {
			t.Errorf("message from %s, want %s", from, a.ID())
		}
		mu.Lock()
		got = append(got, binary.BigEndian.Uint64(m))
		mu.Unlock()
		return nil, nil
	})
	b.Handle("echo", echo)
	const n = 2000
	for i := range uint64(n) {
		if err := a.Send(context.Background(), peerOf(b), "msg", binary.BigEndian.AppendUint64(nil, i)); err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
		if i%100 == 0 {
			if _, err := a.Call(context.Background(), peerOf(b), "echo", []byte("x")); err != nil {
				t.Fatal(err)
			}
		}
	}
	eventually(t, "every message handled", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(got) == n
	})
	for i, v := range got {
		if v != uint64(i) {
			t.Fatalf("message %d handled as number %d: order lost", v, i)
		}
	}
	if s := a.Stats(); s.Messages != n {
		t.Fatalf("stats count %d messages, want %d", s.Messages, n)
	}
}

// TestSendFailures: a message that cannot leave is an error saying it
// was not sent; a handler's error or panic is the receiver's business and
// leaves the connection working.
func TestSendFailures(t *testing.T) {
	a, b := startNode(t), startNode(t)
	done := make(chan string, 3)
	b.Handle("fails", func(context.Context, NodeID, []byte) ([]byte, error) {
		done <- "fails"
		return nil, errors.New("no")
	})
	b.Handle("panics", func(context.Context, NodeID, []byte) ([]byte, error) {
		done <- "panics"
		panic("handler bug")
	})
	b.Handle("echo", echo)
	for _, svc := range []string{"fails", "panics", "unknown"} {
		if err := a.Send(context.Background(), peerOf(b), svc, []byte("m")); err != nil {
			t.Fatalf("send to %s: %v", svc, err)
		}
	}
	for range 2 {
		<-done
	}
	if _, err := a.Call(context.Background(), peerOf(b), "echo", []byte("still here")); err != nil {
		t.Fatalf("the connection must survive failing message handlers: %v", err)
	}

	intruder := start(t, testConfig(t, newIdentity(t), []byte("not-the-cluster-secret"), nil))
	err := intruder.Send(context.Background(), peerOf(b), "echo", []byte("let me in"))
	if !errors.Is(err, ErrNotSent) || !errors.Is(err, ErrRefused) {
		t.Fatalf("send without the secret: %v, want ErrNotSent and ErrRefused", err)
	}
	if err := a.Send(context.Background(), peerOf(b), "echo", make([]byte, a.cfg.MaxMessage+1)); !errors.Is(err, ErrNotSent) || !errors.Is(err, ErrMessageTooLarge) {
		t.Fatalf("oversized send: %v, want ErrNotSent and ErrMessageTooLarge", err)
	}
	b.Close()
	if err := a.Send(context.Background(), peerOf(b), "echo", []byte("gone")); !errors.Is(err, ErrNotSent) {
		t.Fatalf("send to a closed peer: %v, want ErrNotSent", err)
	}
}

// TestMemSend: the in-process twin delivers in the caller's goroutine and
// refuses across a cut.
func TestMemSend(t *testing.T) {
	m := NewMemNetwork()
	a, b := m.Node("a"), m.Node("b")
	var got []byte
	b.Handle("msg", func(_ context.Context, _ NodeID, msg []byte) ([]byte, error) {
		got = append(got, msg...)
		return nil, errors.New("ignored")
	})
	if err := a.Send(context.Background(), Peer{ID: "b"}, "msg", []byte("1")); err != nil {
		t.Fatal(err)
	}
	if string(got) != "1" {
		t.Fatalf("handled %q, want the message at once", got)
	}
	m.Disconnect("a", "b")
	if err := a.Send(context.Background(), Peer{ID: "b"}, "msg", []byte("2")); !errors.Is(err, ErrNotSent) {
		t.Fatalf("send across a cut: %v, want ErrNotSent", err)
	}
}
