package transport

import (
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// Config sets up a Net.
type Config struct {
	// Identity is this node's key; its NodeID is what peers pin.
	Identity *Identity
	// Secret is the cluster secret every node must hold to be admitted.
	// It never crosses the wire: peers prove knowledge of it with an HMAC
	// bound to their TLS session. At least 16 bytes; use 32 random ones.
	Secret []byte
	// ListenAddr is host:port to accept peers on; port 0 picks a free one
	// (see Net.Addr).
	ListenAddr string
	// Logger receives refusals and connection events; nil discards them.
	Logger *slog.Logger
	// DialTimeout bounds the TCP connect to a peer.
	DialTimeout time.Duration
	// HandshakeTimeout bounds TLS plus admission, both directions. A peer
	// that connects and says nothing holds a slot this long.
	HandshakeTimeout time.Duration
	// CallTimeout bounds a Call whose context has no earlier deadline, and
	// the run of a handler serving a remote call.
	CallTimeout time.Duration
	// MaxMessage bounds one request or response. Memory for a frame is
	// allocated as its bytes arrive, so a peer announcing a large frame
	// and sending nothing costs little.
	MaxMessage int
	// MaxInflight bounds the handlers running for one connection; when all
	// are busy the connection stops reading, which pushes back on the peer
	// through TCP instead of queueing without limit.
	MaxInflight int

	// protocols, when set (by tests), replaces the ALPN protocols this
	// node offers, in order of preference; see admission.go.
	protocols []string
}

// DefaultConfig returns timeouts that suit a LAN or a few sites: a dial
// that takes 5 s is a dead peer; 10 s covers a TLS handshake on a loaded
// machine; 30 s covers a 64 MiB transfer at a few MB/s. 64 MiB fits a
// full erasure-coded chunk with room to spare; 256 handlers per peer keep
// a fast link busy without letting one peer exhaust a node.
func DefaultConfig() Config {
	return Config{
		ListenAddr:       "127.0.0.1:0",
		DialTimeout:      5 * time.Second,
		HandshakeTimeout: 10 * time.Second,
		CallTimeout:      30 * time.Second,
		MaxMessage:       64 << 20,
		MaxInflight:      256,
	}
}

// MinSecret is the least length of Config.Secret.
const MinSecret = 16

// maxMessageLimit is what the 4-byte length of a frame can carry, kept
// below 2 GiB so it fits an int everywhere.
const maxMessageLimit = 1<<31 - 1

var errConfig = errors.New("transport: invalid config")

// Validate reports the first rule c breaks.
func (c Config) Validate() error {
	switch {
	case c.Identity == nil:
		return fmt.Errorf("%w: no identity", errConfig)
	case len(c.Secret) < MinSecret:
		return fmt.Errorf("%w: secret of %d bytes, need at least %d", errConfig, len(c.Secret), MinSecret)
	case c.ListenAddr == "":
		return fmt.Errorf("%w: no listen address", errConfig)
	case c.DialTimeout <= 0:
		return fmt.Errorf("%w: dial timeout %v", errConfig, c.DialTimeout)
	case c.HandshakeTimeout <= 0:
		return fmt.Errorf("%w: handshake timeout %v", errConfig, c.HandshakeTimeout)
	case c.CallTimeout <= 0:
		return fmt.Errorf("%w: call timeout %v", errConfig, c.CallTimeout)
	case c.MaxMessage < 1 || c.MaxMessage > maxMessageLimit:
		return fmt.Errorf("%w: max message %d not in 1..%d", errConfig, c.MaxMessage, maxMessageLimit)
	case c.MaxInflight < 1:
		return fmt.Errorf("%w: max inflight %d", errConfig, c.MaxInflight)
	}
	return nil
}
