package transport

import (
	"context"
	"net"
	"testing"
	"time"
)

// A node listening on an address of its own dials its peers from that
// address, so that the peers (and the partition tests' packet rules)
// see it as the node it is, not as 127.0.0.1.
func TestDialsFromTheListeningAddress(t *testing.T) {
	cfg := testConfig(t, newIdentity(t), testSecret, nil)
	cfg.ListenAddr = "127.0.1.1:0"
	a := start(t, cfg)
	peer, err := net.Listen("tcp", "127.0.1.2:0")
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	from := make(chan net.Addr, 1)
	go func() {
		c, err := peer.Accept()
		if err != nil {
			return
		}
		from <- c.RemoteAddr()
		c.Close()
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	a.Call(ctx, Peer{ID: newIdentity(t).ID(), Addr: peer.Addr().String()}, "echo", nil) // fails: no TLS there
	select {
	case addr := <-from:
		if ip := addr.(*net.TCPAddr).IP.String(); ip != "127.0.1.1" {
			t.Fatalf("connection came from %s, want 127.0.1.1", ip)
		}
	case <-ctx.Done():
		t.Fatal("no connection arrived")
	}
}

func TestSourceAddr(t *testing.T) {
	tcp := func(s string) net.Addr { a, _ := net.ResolveTCPAddr("tcp", s); return a }
	for _, c := range []struct {
		listen, to, want string
	}{
		{"127.0.1.1:7000", "127.0.1.2:7000", "127.0.1.1"},
		{"127.0.0.1:7000", "127.0.1.2:7000", "127.0.0.1"},
		{"0.0.0.0:7000", "127.0.1.2:7000", ""},
		{"[::]:7000", "127.0.1.2:7000", ""},
		{"127.0.1.1:7000", "10.0.0.2:7000", ""}, // loopback cannot reach it
		{"10.0.0.1:7000", "127.0.0.1:7000", ""},
		{"10.0.0.1:7000", "10.0.0.2:7000", "10.0.0.1"},
		{"10.0.0.1:7000", "[fd00::2]:7000", ""},
		{"10.0.0.1:7000", "peer.example:7000", ""},
		{"10.0.0.1:7000", "garbage", ""},
	} {
		got := SourceAddr(tcp(c.listen), c.to)
		if s := ""; got != nil {
			s = got.IP.String()
			if got.Port != 0 {
				t.Errorf("%s → %s: port %d, want any", c.listen, c.to, got.Port)
			}
			if s != c.want {
				t.Errorf("%s → %s: source %s, want %q", c.listen, c.to, s, c.want)
			}
		} else if c.want != "" {
			t.Errorf("%s → %s: no source, want %s", c.listen, c.to, c.want)
		}
	}
}
