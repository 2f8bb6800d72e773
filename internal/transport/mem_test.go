package transport

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"
)

// memCluster returns a network of n nodes named n1..nN, each answering
// "who" with its own id.
func memCluster(t *testing.T, n int) (*MemNetwork, []*MemEndpoint) {
	m := NewMemNetwork()
	var eps []*MemEndpoint
	for i := 1; i <= n; i++ {
		e := m.Node(NodeID(fmt.Sprintf("n%d", i)))
		e.Handle("who", func(_ context.Context, from NodeID, req []byte) ([]byte, error) {
			return []byte(string(e.ID()) + "<-" + string(from) + ":" + string(req)), nil
		})
		eps = append(eps, e)
	}
	return m, eps
}

// reach reports which pairs can talk, as a matrix of 1s and .s.
func reach(eps []*MemEndpoint) string {
	var s []byte
	for _, a := range eps {
		for _, b := range eps {
			_, err := a.Call(context.Background(), Peer{ID: b.ID()}, "who", nil)
			switch {
			case err == nil:
				s = append(s, '1')
			case errors.Is(err, ErrUnreachable):
				s = append(s, '.')
			default:
				s = append(s, '?')
			}
		}
		s = append(s, '\n')
	}
	return string(s)
}

func TestMemPartitionHeal(t *testing.T) {
	m, eps := memCluster(t, 5)
	ids := m.Nodes()
	check := func(step, want string) {
		t.Helper()
		if got := reach(eps); got != want {
			t.Fatalf("%s: reachability\n%s\nwant\n%s", step, got, want)
		}
	}
	check("start", "11111\n11111\n11111\n11111\n11111\n")
	m.Partition(ids[:2], ids[2:4])
	// n5 is in no group: it sits alone.
	check("partition", "11...\n11...\n..11.\n..11.\n....1\n")
	m.Disconnect("n1", "n2")
	check("partition+cut", "1....\n.1...\n..11.\n..11.\n....1\n")
	m.Partition()
	check("partition lifted, cut stays", "1.111\n.1111\n11111\n11111\n11111\n")
	m.Kill("n3")
	check("n3 dead", "1..11\n.1.11\n.....\n11.11\n11.11\n")
	m.Heal()
	check("healed, n3 still dead", "11.11\n11.11\n.....\n11.11\n11.11\n")
	m.Revive("n3")
	check("revived", "11111\n11111\n11111\n11111\n11111\n")
}

func TestMemCallSemantics(t *testing.T) {
	m, eps := memCluster(t, 2)
	a, b := eps[0], eps[1]
	ctx := context.Background()

	got, err := a.Call(ctx, Peer{Addr: b.Addr()}, "who", []byte("x"))
	if err != nil || string(got) != "n2<-n1:x" {
		t.Fatalf("call by address: %q, %v", got, err)
	}
	if id, err := a.Hello(ctx, b.Addr()); err != nil || id != "n2" {
		t.Fatalf("Hello: %s, %v", id, err)
	}
	if _, err := a.Call(ctx, Peer{ID: "n9", Addr: b.Addr()}, "who", nil); !errors.Is(err, ErrPinning) {
		t.Fatalf("wrong id for address: %v, want ErrPinning", err)
	}
	if _, err := a.Call(ctx, Peer{ID: "nobody"}, "who", nil); !errors.Is(err, ErrUnreachable) {
		t.Fatalf("unknown node: %v", err)
	}
	if _, err := a.Call(ctx, Peer{ID: "n2"}, "nope", nil); !errors.Is(err, ErrUnknownService) {
		t.Fatalf("unknown service: %v", err)
	}
	b.Handle("fail", func(context.Context, NodeID, []byte) ([]byte, error) { return nil, errors.New("boom") })
	var re *RemoteError
	if _, err := a.Call(ctx, Peer{ID: "n2"}, "fail", nil); !errors.As(err, &re) || re.Message != "boom" {
		t.Fatalf("handler error: %v", err)
	}

	// Buffers are copied both ways.
	b.Handle("keep", func(_ context.Context, _ NodeID, req []byte) ([]byte, error) {
		req[0] = 'X'
		return req, nil
	})
	req := []byte("abc")
	resp, err := a.Call(ctx, Peer{ID: "n2"}, "keep", req)
	if err != nil || string(req) != "abc" || string(resp) != "Xbc" {
		t.Fatalf("aliasing: req %q resp %q err %v", req, resp, err)
	}

	// A call blocked in a handler: killing the callee fails it at once
	// and cancels the handler.
	entered := make(chan struct{})
	handlerDone := make(chan error, 1)
	b.Handle("block", func(ctx context.Context, _ NodeID, _ []byte) ([]byte, error) {
		close(entered)
		<-ctx.Done()
		handlerDone <- ctx.Err()
		return nil, ctx.Err()
	})
	errc := make(chan error, 1)
	go func() {
		_, err := a.Call(ctx, Peer{ID: "n2"}, "block", nil)
		errc <- err
	}()
	<-entered
	m.Kill("n2")
	if err := <-errc; !errors.Is(err, ErrUnreachable) {
		t.Fatalf("call to a node killed mid-call: %v", err)
	}
	if err := <-handlerDone; !errors.Is(err, context.Canceled) {
		t.Fatalf("killed node's handler context: %v", err)
	}
	m.Revive("n2")

	// The caller's deadline ends a blocked call.
	entered = make(chan struct{})
	dctx, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if _, err := a.Call(dctx, Peer{ID: "n2"}, "block", nil); !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, ErrUnreachable) {
		t.Fatalf("deadline: %v", err)
	}
	<-handlerDone

	// An answer produced after the link was cut is lost.
	release := make(chan struct{})
	entered2 := make(chan struct{})
	b.Handle("slow", func(context.Context, NodeID, []byte) ([]byte, error) {
		close(entered2)
		<-release
		return []byte("late"), nil
	})
	go func() {
		_, err := a.Call(ctx, Peer{ID: "n2"}, "slow", nil)
		errc <- err
	}()
	<-entered2
	m.Disconnect("n1", "n2")
	close(release)
	if err := <-errc; !errors.Is(err, ErrUnreachable) {
		t.Fatalf("answer across a fresh cut: %v", err)
	}
}

func TestMemConcurrentChaos(t *testing.T) {
	m, eps := memCluster(t, 4)
	ids := m.Nodes()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for i, a := range eps {
		wg.Go(func() {
			for j := 0; ctx.Err() == nil; j++ {
				b := eps[(i+j)%len(eps)]
				_, err := a.Call(ctx, Peer{ID: b.ID()}, "who", []byte("x"))
				if err != nil && !errors.Is(err, ErrUnreachable) && !errors.Is(err, context.Canceled) {
					t.Errorf("%s->%s: %v", a.ID(), b.ID(), err)
					return
				}
			}
		})
	}
	for i := range 500 {
		switch i % 5 {
		case 0:
			m.Partition(ids[:2], ids[2:])
		case 1:
			m.Kill(ids[i%4])
		case 2:
			m.Revive(ids[(i-1)%4])
		case 3:
			m.Disconnect(ids[0], ids[3])
		case 4:
			m.Heal()
		}
	}
	cancel()
	wg.Wait()
	m.Heal()
	for _, id := range ids {
		m.Revive(id)
	}
	if got := reach(eps); got != "1111\n1111\n1111\n1111\n" {
		t.Fatalf("after chaos and heal:\n%s", got)
	}
}
