package membership

import (
	"crypto/hkdf"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"time"

	"github.com/hashicorp/memberlist"
)

// Profiles name a set of gossip timings.
const (
	// ProfileLAN suits nodes on one network, RTT well under 100 ms: a node
	// killed without warning is Dead on every other node within
	// LANDetectionBound for clusters of up to about 9 nodes.
	ProfileLAN = "lan"
	// ProfileLocal suits nodes on one host (tests): about twice as fast as
	// ProfileLAN, at the price of false suspicions when the host is busy.
	ProfileLocal = "local"
)

// LANDetectionBound is the time within which, with ProfileLAN defaults and
// 3 to 9 nodes on a healthy network, a crashed node is Dead everywhere.
// It is the sum of: the wait for some node to probe it (one to two probe
// intervals on average, more when unlucky), one probe interval for the
// direct and indirect probes to fail, the suspicion timeout (SuspicionMult
// probe intervals, up to SuspicionMaxTimeoutMult times longer while other
// nodes have not confirmed) and a few gossip rounds.
const LANDetectionBound = 5 * time.Second

// DefaultGossipPort is the gossip port of DefaultConfig.
const DefaultGossipPort = 7946

// gossipKeyInfo binds the derived key to its use, so the cluster secret
// can feed other derivations without their keys colliding.
const gossipKeyInfo = "redoubt gossip v1"

// minSecretLen is the shortest cluster secret accepted: shorter ones are
// guessable, and the gossip key is no stronger than the secret.
const minSecretLen = 16

// ErrInvalidConfig is returned (wrapped) by Validate and Start.
var ErrInvalidConfig = errors.New("membership: invalid config")

// Config configures one node's membership.
type Config struct {
	// NodeID names the node; it must be unique in the cluster and stable
	// across restarts (a restarted node with the same ID is the same
	// member coming back).
	NodeID string
	// BindAddr is the host:port to gossip on, UDP and TCP. Port 0 picks a
	// free port; LocalAddr tells which.
	BindAddr string
	// AdvertiseAddr is the host:port the others should reach this node at,
	// when it differs from BindAddr (NAT, 0.0.0.0). Empty: derived from
	// BindAddr, or a private address of the host if BindAddr is
	// unspecified.
	AdvertiseAddr string
	// Secret is the cluster secret; the gossip key is derived from it. At
	// least 16 bytes.
	Secret []byte
	// Meta is advertised to the other nodes.
	Meta NodeMeta
	// Logger receives this component's logs, and memberlist's. Nil
	// discards them.
	Logger *slog.Logger

	// Profile is ProfileLAN (the default when empty) or ProfileLocal; it
	// sets the timings below that are left zero.
	Profile string
	// ProbeInterval is how often this node probes one other node. Lower
	// finds failures faster and costs more packets: each node sends about
	// one probe and one ack per interval. ProfileLAN: 500 ms (memberlist's
	// own LAN default is 1 s, which gives 5-10 s detection).
	ProbeInterval time.Duration
	// ProbeTimeout is how long to wait for a direct ack before asking other
	// nodes to probe indirectly. It should be above the 99th percentile
	// RTT, or slow links cause false suspicions. Must be below
	// ProbeInterval. ProfileLAN: 250 ms.
	ProbeTimeout time.Duration
	// SuspicionMult sets how long a node stays Suspect before it is Dead:
	// SuspicionMult * max(1, log10(N)) * ProbeInterval, giving a live but
	// slow node (GC pause, overloaded host) that long to refute. Lower
	// detects crashes sooner but declares paused nodes dead more often;
	// they come back as Alive when they refute, at the cost of churn.
	// ProfileLAN: 3 (1.5 s up to 9 nodes).
	SuspicionMult int
	// SuspicionMaxTimeoutMult bounds the suspicion timeout while no other
	// node has confirmed the suspicion: a node that suspects alone waits
	// up to this many times longer. ProfileLAN: 2.
	SuspicionMaxTimeoutMult int
	// ReconnectInterval is how often this node tries to reach one member
	// it lists as Dead (not Left), for up to ReconnectTimeout after it
	// died. memberlist probes only live members and gossips to dead ones
	// only briefly, so two sides of a network partition that each
	// declared the other dead would stay apart after the link came back;
	// one exchange with any member of the other side merges them. Lower
	// heals faster and costs a connection attempt per interval while a
	// member is dead. ProfileLAN: 5 s; ProfileLocal: 1 s.
	ReconnectInterval time.Duration
	// ReconnectTimeout is how long after its death a member is still
	// tried. Default 72 h.
	ReconnectTimeout time.Duration
}

// DefaultConfig returns a LAN configuration that gossips on every
// interface on DefaultGossipPort. NodeID and Secret must still be set.
func DefaultConfig() Config {
	return Config{
		BindAddr: net.JoinHostPort("0.0.0.0", strconv.Itoa(DefaultGossipPort)),
		Profile:  ProfileLAN,
	}
}

// Validate checks the config, with profile timings applied.
func (c Config) Validate() error {
	c, err := c.withProfile()
	if err != nil {
		return err
	}
	if c.NodeID == "" {
		return fmt.Errorf("%w: NodeID is empty", ErrInvalidConfig)
	}
	if _, _, err := splitHostPort(c.BindAddr, true); err != nil {
		return fmt.Errorf("%w: BindAddr: %w", ErrInvalidConfig, err)
	}
	if c.AdvertiseAddr != "" {
		if _, _, err := splitHostPort(c.AdvertiseAddr, false); err != nil {
			return fmt.Errorf("%w: AdvertiseAddr: %w", ErrInvalidConfig, err)
		}
	}
	if len(c.Secret) < minSecretLen {
		return fmt.Errorf("%w: Secret has %d bytes, need at least %d", ErrInvalidConfig, len(c.Secret), minSecretLen)
	}
	if _, err := encodeMeta(c.Meta, 0); err != nil {
		return fmt.Errorf("%w: Meta: %w", ErrInvalidConfig, err)
	}
	if c.ProbeInterval <= 0 || c.ProbeTimeout <= 0 || c.ProbeTimeout >= c.ProbeInterval {
		return fmt.Errorf("%w: need 0 < ProbeTimeout (%v) < ProbeInterval (%v)", ErrInvalidConfig, c.ProbeTimeout, c.ProbeInterval)
	}
	if c.SuspicionMult < 1 || c.SuspicionMaxTimeoutMult < 1 {
		return fmt.Errorf("%w: SuspicionMult and SuspicionMaxTimeoutMult must be at least 1", ErrInvalidConfig)
	}
	if c.ReconnectInterval <= 0 || c.ReconnectTimeout <= 0 {
		return fmt.Errorf("%w: ReconnectInterval and ReconnectTimeout must be positive", ErrInvalidConfig)
	}
	return nil
}

// withProfile fills the zero timings from the profile.
func (c Config) withProfile() (Config, error) {
	var p Config
	switch c.Profile {
	case "", ProfileLAN:
		p = Config{ProbeInterval: 500 * time.Millisecond, ProbeTimeout: 250 * time.Millisecond, SuspicionMult: 3, SuspicionMaxTimeoutMult: 2,
			ReconnectInterval: 5 * time.Second}
	case ProfileLocal:
		p = Config{ProbeInterval: 250 * time.Millisecond, ProbeTimeout: 150 * time.Millisecond, SuspicionMult: 3, SuspicionMaxTimeoutMult: 2,
			ReconnectInterval: time.Second}
	default:
		return c, fmt.Errorf("%w: unknown Profile %q", ErrInvalidConfig, c.Profile)
	}
	if c.ProbeInterval == 0 {
		c.ProbeInterval = p.ProbeInterval
	}
	if c.ProbeTimeout == 0 {
		c.ProbeTimeout = p.ProbeTimeout
	}
	if c.SuspicionMult == 0 {
		c.SuspicionMult = p.SuspicionMult
	}
	if c.SuspicionMaxTimeoutMult == 0 {
		c.SuspicionMaxTimeoutMult = p.SuspicionMaxTimeoutMult
	}
	if c.ReconnectInterval == 0 {
		c.ReconnectInterval = p.ReconnectInterval
	}
	if c.ReconnectTimeout == 0 {
		c.ReconnectTimeout = 72 * time.Hour
	}
	return c, nil
}

// memberlistConfig translates a validated config; the delegates are set by
// the caller.
func (c Config) memberlistConfig() (*memberlist.Config, error) {
	var mc *memberlist.Config
	if c.Profile == ProfileLocal {
		mc = memberlist.DefaultLocalConfig()
		// Dead nodes linger in memberlist's own table only to be gossiped
		// to for a chance to refute; tests restart nodes quickly.
		mc.GossipToTheDeadTime = 5 * time.Second
		mc.GossipInterval = 50 * time.Millisecond
		// Broadcasts are also piggybacked on pings and acks, so in a
		// small cluster memberlist's local default (2) can spend every
		// retransmission on the nodes that already know, and a joiner
		// stays unknown to some until the next full sync.
		mc.RetransmitMult = 4
		mc.PushPullInterval = 2 * time.Second
	} else {
		mc = memberlist.DefaultLANConfig()
		// A LAN answers in milliseconds; memberlist's 10 s would stall a
		// join on an unreachable seed for long.
		mc.TCPTimeout = 5 * time.Second
		// Full state syncs repair what gossip missed; memberlist's 30 s
		// leaves a joiner unknown to some nodes for that long when a
		// broadcast is lost. One TCP exchange per node every 10 s is
		// cheap below hundreds of nodes (memberlist slows it down past
		// 32 nodes by itself).
		mc.PushPullInterval = 10 * time.Second
	}
	mc.Name = c.NodeID
	// A node restarted on another address (a new port, a new IP) under
	// the same ID must be let back in: memberlist refuses by default.
	// Waiting a moment after it was declared dead keeps two live nodes
	// misconfigured with one ID from stealing the name back and forth.
	mc.DeadNodeReclaimTime = time.Second
	mc.ProbeInterval = c.ProbeInterval
	mc.ProbeTimeout = c.ProbeTimeout
	mc.SuspicionMult = c.SuspicionMult
	mc.SuspicionMaxTimeoutMult = c.SuspicionMaxTimeoutMult

	host, port, err := splitHostPort(c.BindAddr, true)
	if err != nil {
		return nil, fmt.Errorf("%w: BindAddr: %w", ErrInvalidConfig, err)
	}
	mc.BindAddr, mc.BindPort = host, port
	mc.AdvertiseAddr, mc.AdvertisePort = "", port
	if c.AdvertiseAddr != "" {
		host, port, err := splitHostPort(c.AdvertiseAddr, false)
		if err != nil {
			return nil, fmt.Errorf("%w: AdvertiseAddr: %w", ErrInvalidConfig, err)
		}
		mc.AdvertiseAddr, mc.AdvertisePort = host, port
	}

	key, err := gossipKey(c.Secret)
	if err != nil {
		return nil, err
	}
	mc.SecretKey = key
	mc.GossipVerifyIncoming = true
	mc.GossipVerifyOutgoing = true
	return mc, nil
}

// gossipKey derives the AES-256 gossip key from the cluster secret.
func gossipKey(secret []byte) ([]byte, error) {
	k, err := hkdf.Key(sha256.New, secret, nil, gossipKeyInfo, 32)
	if err != nil {
		return nil, fmt.Errorf("membership: derive gossip key: %w", err)
	}
	return k, nil
}

func splitHostPort(addr string, allowZeroPort bool) (string, int, error) {
	host, ps, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.Atoi(ps)
	if err != nil || port < 0 || port > 65535 || (port == 0 && !allowZeroPort) {
		return "", 0, fmt.Errorf("bad port %q in %q", ps, addr)
	}
	if host == "" {
		host = "0.0.0.0"
	}
	// memberlist binds and advertises IP literals only; a name would be
	// resolved once, silently, or not at all.
	if net.ParseIP(host) == nil {
		return "", 0, fmt.Errorf("host %q in %q is not an IP address", host, addr)
	}
	return host, port, nil
}
