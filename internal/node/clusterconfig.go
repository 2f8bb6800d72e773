package node

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/redoubt-io/redoubt/internal/transport"
)

// ClusterConfig makes a node a member of a cluster. Nil in Config means a
// standalone node, whose metadata stays on its own drives.
type ClusterConfig struct {
	// RPCAddr is where other nodes reach this one (mutual TLS); it must be
	// an address they can dial, not a wildcard, since it is advertised.
	RPCAddr string
	// GossipAddr is the membership (failure detection) address, TCP and
	// UDP. Empty means the RPC host with the RPC port + 1.
	GossipAddr string
	// Join lists RPC addresses of members; empty for the first node.
	Join []string
	// Zone is the failure domain: placement spreads each partition's
	// shards over distinct zones before distinct nodes.
	Zone string
	// Secret admits a node into the cluster; every node has the same one.
	Secret []byte
	// BootstrapExpect is how many nodes the first node waits for before it
	// commits the first layout, so that the first layout already spreads
	// data over all of them instead of moving it a moment later.
	BootstrapExpect int
	// Partitions is P, the base partitions, fixed when the cluster is
	// created: the unit of data placement. 256 suits up to a few hundred
	// drives. The metadata partitions split from them online (redoubt
	// layout split).
	Partitions int
	// MetaReplicas is R, the voters of each partition's Raft group (capped
	// by the node count). 0 picks enough to lose as many nodes as the data
	// policy survives (2M+1, at least 3, at most 5): with R=3 under EC 3+2,
	// losing two nodes could take a group's majority and make objects
	// unreadable that the data shards would still rebuild.
	MetaReplicas int

	// RepairAfter is how long a node may be dead before the cluster
	// commits a layout without it (and with it again when it is back); 0
	// leaves layout changes to operators. See cluster.Config.
	RepairAfter time.Duration

	// Net, NoGossip, RaftTick and LayoutPoll are for in-process tests: an
	// in-memory network instead of mutual TLS on RPCAddr, no gossip, and
	// faster Raft ticks and layout polls. Zero values keep the defaults.
	Net        transport.Caller
	NoGossip   bool
	RaftTick   time.Duration
	LayoutPoll time.Duration
}

// DefaultClusterConfig is a node in zone "default" that starts a cluster of
// itself.
func DefaultClusterConfig() ClusterConfig {
	// Ten minutes, as Ceph marks a down drive out: long enough for a
	// reboot or a short network outage, short enough that groups do not
	// run one voter short for long.
	return ClusterConfig{Zone: "default", BootstrapExpect: 1, Partitions: 256, RepairAfter: 10 * time.Minute}
}

// Validate checks the cluster settings.
func (c ClusterConfig) Validate() error {
	if c.Net != nil {
		c.RPCAddr = c.Net.Addr()
		if c.GossipAddr == "" {
			c.GossipAddr = "127.0.0.1:0"
		}
	}
	host, port, err := net.SplitHostPort(c.RPCAddr)
	if c.Net != nil {
		host, port, err = "mem", "1", nil
	}
	switch {
	case err != nil:
		return fmt.Errorf("--rpc-addr %q: %w", c.RPCAddr, err)
	case host == "" || net.ParseIP(host) != nil && net.ParseIP(host).IsUnspecified():
		return fmt.Errorf("--rpc-addr %q: give an address other nodes can dial, not a wildcard", c.RPCAddr)
	case port == "0":
		return fmt.Errorf("--rpc-addr %q: give a fixed port; it is advertised to the other nodes", c.RPCAddr)
	case len(c.Secret) < 16:
		return errors.New("the cluster secret must be at least 16 bytes")
	case c.Zone == "":
		return errors.New("the zone must not be empty")
	case c.BootstrapExpect < 1 || c.BootstrapExpect > 1000:
		return fmt.Errorf("--bootstrap-expect %d: give 1 to 1000", c.BootstrapExpect)
	case c.Partitions < 1 || c.Partitions > 1<<16:
		return fmt.Errorf("--partitions %d: give 1 to 65536", c.Partitions)
	case c.MetaReplicas < 0 || c.MetaReplicas > 7:
		return fmt.Errorf("--meta-replicas %d: give 1 to 7, or 0 to follow the policy", c.MetaReplicas)
	}
	if _, err := c.gossipAddr(); err != nil {
		return err
	}
	return nil
}

// gossipAddr is GossipAddr or its default.
func (c ClusterConfig) gossipAddr() (string, error) {
	if c.GossipAddr != "" {
		if _, _, err := net.SplitHostPort(c.GossipAddr); err != nil {
			return "", fmt.Errorf("--gossip-addr %q: %w", c.GossipAddr, err)
		}
		return c.GossipAddr, nil
	}
	host, port, err := net.SplitHostPort(c.RPCAddr)
	if err != nil {
		return "", err
	}
	p, err := strconv.Atoi(port)
	if err != nil || p >= 65535 {
		return "", fmt.Errorf("--rpc-addr %q: bad port", c.RPCAddr)
	}
	return net.JoinHostPort(host, strconv.Itoa(p+1)), nil
}
