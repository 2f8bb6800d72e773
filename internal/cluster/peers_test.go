package cluster

import (
	"fmt"
	"log/slog"
	"testing"

	"github.com/redoubt-io/redoubt/internal/testlog"
	"github.com/redoubt-io/redoubt/internal/vfs"
)

// The nodes a node has learned are on its disk when it crashes right
// after: a restarted node whose System group has no leader (two voters
// restarting at once) reaches its peers only through this table, and a
// table lost to the crash left the group without a majority for good.
func TestKnownNodesSurviveACrash(t *testing.T) {
	m := vfs.NewMem(vfs.MemConfig{})
	if err := vfs.MkdirAllDurable(m, "/d0", 0o755); err != nil {
		t.Fatal(err)
	}
	c := &Cluster{cfg: Config{FS: m}, peersFile: "/d0/redoubt-peers.json", log: slog.New(slog.NewTextHandler(testlog.Writer(t), nil)), book: newAddressBook()}
	c.mu.nodes = map[string]NodeInfo{}
	var nodes []NodeInfo
	for i := range 3 {
		nodes = append(nodes, NodeInfo{Format: recordFormat, ID: fmt.Sprintf("n%d", i), RaftID: uint64(i + 1), Zone: "z",
			RPCAddr: fmt.Sprintf("127.0.0.%d:7000", i+1), Drives: []DriveInfo{{ID: "d", Capacity: 1}}})
	}
	c.learnNodes(nodes[:2])
	c.learnNodes(nodes[2:])
	got := loadPeers(m.Crash(), c.peersFile)
	if len(got) != len(nodes) {
		t.Fatalf("after a crash the node knows %d nodes, want %d: %+v", len(got), len(nodes), got)
	}
	for i, n := range got {
		if n.ID != nodes[i].ID || n.RPCAddr != nodes[i].RPCAddr {
			t.Errorf("node %d after a crash: %s at %s, want %s at %s", i, n.ID, n.RPCAddr, nodes[i].ID, nodes[i].RPCAddr)
		}
	}
}
