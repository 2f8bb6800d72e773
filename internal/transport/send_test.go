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
	a.mu.Lock()
	c := a.mu.byID[b.ID()]
	a.mu.Unlock()
	if c == nil || !c.messages {
		t.Fatal("two nodes of this release did not settle on message frames (redoubt/2)")
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
	// Until a sees its connection close, a message may still leave into
	// it (and be lost with it); after, none can.
	eventually(t, "the connection to the closed peer noticed", func() bool { return a.Stats().Conns == 0 })
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

// TestSendToAnOlderPeer: a node of an older release speaks "redoubt/1",
// which has no message frames. Messages to it, and from it, still arrive,
// as requests nobody waits for, and the connection stays up.
func TestSendToAnOlderPeer(t *testing.T) {
	cfg := testConfig(t, newIdentity(t), testSecret, nil)
	cfg.protocols = []string{alpn}
	old, cur := start(t, cfg), startNode(t)
	for _, dir := range []struct {
		name     string
		from, to *Net
	}{{"to the older peer", cur, old}, {"from the older peer", old, cur}} {
		var mu sync.Mutex
		got := map[uint64]bool{}
		dir.to.Handle("msg", func(_ context.Context, _ NodeID, m []byte) ([]byte, error) {
			mu.Lock()
			got[binary.BigEndian.Uint64(m)] = true
			mu.Unlock()
			return nil, nil
		})
		const n = 300
		for i := range uint64(n) {
			if err := dir.from.Send(context.Background(), peerOf(dir.to), "msg", binary.BigEndian.AppendUint64(nil, i)); err != nil {
				t.Fatalf("%s: send %d: %v", dir.name, i, err)
			}
		}
		eventually(t, dir.name+": every message handled", func() bool {
			mu.Lock()
			defer mu.Unlock()
			return len(got) == n
		})
	}
	for _, x := range []*Net{old, cur} {
		if s := x.Stats(); s.Conns != 1 || s.Dialed+s.Accepted != 1 {
			t.Fatalf("stats %+v: one connection, never replaced, was expected", s)
		}
	}
}
