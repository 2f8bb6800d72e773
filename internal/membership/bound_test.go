package membership

import (
	"net"
	"testing"
	"time"
)

// A node gossiping on an address of its own opens its TCP streams from
// that address (UDP packets leave from the bound socket anyway), so
// that rules cutting the link between two such nodes see its traffic.
func TestGossipDialsFromItsAddress(t *testing.T) {
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
	cfg := testConfig("n1", goodSecret, ProfileLocal)
	cfg.BindAddr = "127.0.1.1:0"
	m := startNode(t, newLogSink(t), cfg)
	if got := m.LocalAddr(); got[:len("127.0.1.1:")] != "127.0.1.1:" || got == "127.0.1.1:0" {
		t.Fatalf("bound to %s, want 127.0.1.1 and a port", got)
	}
	go m.Join(t.Context(), []string{peer.Addr().String()}) // fails: no gossip there
	select {
	case addr := <-from:
		if ip := addr.(*net.TCPAddr).IP.String(); ip != "127.0.1.1" {
			t.Fatalf("stream came from %s, want 127.0.1.1", ip)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no stream arrived")
	}
}

// Two sides that each declared the other dead find each other again on
// their own once the link is back: here a member that went away without
// leaving comes back at its address and joins nobody, and the others
// reach it.
func TestReconnectsToADeadMemberThatCameBack(t *testing.T) {
	sink := newLogSink(t)
	nodes := startCluster(t, sink, 3, ProfileLocal)
	waitFor(t, 10*time.Second, allSee(nodes, "n2", Alive))
	addr := nodes[2].LocalAddr()
	nodes[2].Close()
	waitFor(t, 15*time.Second, allSee(nodes[:2], "n2", Dead))
	// Past the time memberlist gossips to a dead member (5 s in the local
	// profile), which would let it refute without this package's help:
	// the scenario is a partition longer than that.
	<-time.After(6 * time.Second)

	cfg := testConfig("n2", goodSecret, ProfileLocal)
	cfg.BindAddr = addr
	back := startNode(t, sink, cfg) // no Join
	waitFor(t, 15*time.Second, allSee(nodes[:2], "n2", Alive))
	waitFor(t, 15*time.Second, allSee([]*Members{back}, "n0", Alive))
}
