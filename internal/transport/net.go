package transport

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Handler serves one request of a service. from is the caller's NodeID,
// authenticated and admitted. ctx ends when the caller gives up, its
// deadline or Config.CallTimeout passes, the connection breaks or the Net
// closes. The
// handler owns req; the returned bytes are sent and not kept. A returned
// error reaches the caller as a *RemoteError carrying err.Error().
type Handler func(ctx context.Context, from NodeID, req []byte) ([]byte, error)

// Peer says whom to call. ID may be empty on first contact with a node
// known only by address (a seed): the call then goes to whoever holds the
// address, provided it is admitted. With an ID, the peer's key is pinned
// and Addr is used only if no connection to ID is open.
type Peer struct {
	ID   NodeID
	Addr string
}

// Caller is the node-to-node RPC surface other packages program against.
// *Net (TCP, mTLS) and *MemEndpoint (in-process, for tests) implement it.
type Caller interface {
	// ID is this endpoint's own NodeID.
	ID() NodeID
	// Addr is the address peers reach this endpoint at.
	Addr() string
	// Handle registers h for service, replacing any earlier one. Register
	// before traffic arrives: requests for an unknown service fail.
	Handle(service string, h Handler)
	// Call sends req to service on peer to and waits for the answer.
	Call(ctx context.Context, to Peer, service string, req []byte) ([]byte, error)
	// Send queues msg for service on peer to and returns without waiting
	// for it to be handled; messages Sent to one peer are handled in the
	// order they were sent. It fails (with ErrNotSent) only if msg
	// certainly did not leave. The caller must not modify msg afterwards.
	Send(ctx context.Context, to Peer, service string, msg []byte) error
	// Hello connects to addr (if not already) and returns who is there.
	Hello(ctx context.Context, addr string) (NodeID, error)
}

var (
	_ Caller = (*Net)(nil)
	_ Caller = (*MemEndpoint)(nil)
)

// Stats are a Net's counters since Listen.
type Stats struct {
	Accepted    uint64 // inbound connections admitted
	Dialed      uint64 // outbound connections admitted
	Refused     uint64 // connections refused, either direction: bad TLS, bad proof, no cert
	CallsSent   uint64 // Calls that reached a connection
	CallsServed uint64 // handler runs for remote calls and messages
	Messages    uint64 // one-way messages that reached a connection
	Conns       int    // connections open now
}

// Net is a node's endpoint: it accepts admitted peers and calls them over
// one multiplexed connection per peer. Safe for concurrent use.
type Net struct {
	cfg  Config
	log  *slog.Logger
	id   NodeID
	cert tls.Certificate
	stls *tls.Config
	ln   net.Listener

	ctx    context.Context // ends at Close; parent of every goroutine's work
	cancel context.CancelFunc
	wg     sync.WaitGroup

	handlers sync.Map // service string -> Handler

	mu struct {
		sync.Mutex
		closed bool
		byID   map[NodeID]*conn
		byAddr map[string]*conn // outbound, by the address dialed
		conns  map[*conn]struct{}
		dials  map[string]*dialing
	}

	// handshakes bounds unauthenticated connections in handshake, so a
	// flood of idle sockets cannot grow goroutines without limit.
	handshakes chan struct{}

	accepted, dialed, refused, sent, served, messages atomic.Uint64
}

const maxHandshakes = 128

type dialing struct {
	done chan struct{}
	c    *conn
	err  error
}

// Listen starts accepting peers on cfg.ListenAddr. ctx bounds only the
// setup; the Net runs until Close.
func Listen(ctx context.Context, cfg Config) (*Net, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cert, err := certificate(cfg.Identity)
	if err != nil {
		return nil, err
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", cfg.ListenAddr)
	if err != nil {
		return nil, fmt.Errorf("transport: listen: %w", err)
	}
	n := &Net{
		cfg:        cfg,
		id:         cfg.Identity.ID(),
		cert:       cert,
		stls:       serverTLS(cert, cfg.offered()),
		ln:         ln,
		handshakes: make(chan struct{}, maxHandshakes),
	}
	n.log = log.With("node", n.id)
	n.ctx, n.cancel = context.WithCancel(context.Background())
	n.mu.byID = map[NodeID]*conn{}
	n.mu.byAddr = map[string]*conn{}
	n.mu.conns = map[*conn]struct{}{}
	n.mu.dials = map[string]*dialing{}
	n.wg.Add(1)
	go n.acceptLoop()
	return n, nil
}

func (n *Net) ID() NodeID   { return n.id }
func (n *Net) Addr() string { return n.ln.Addr().String() }

// Handle registers h for service; a nil h removes the service.
func (n *Net) Handle(service string, h Handler) {
	if h == nil {
		n.handlers.Delete(service)
		return
	}
	n.handlers.Store(service, h)
}

func (n *Net) Stats() Stats {
	n.mu.Lock()
	conns := len(n.mu.conns)
	n.mu.Unlock()
	return Stats{
		Accepted: n.accepted.Load(), Dialed: n.dialed.Load(), Refused: n.refused.Load(),
		CallsSent: n.sent.Load(), CallsServed: n.served.Load(), Messages: n.messages.Load(), Conns: conns,
	}
}

// Close stops accepting, closes every connection (failing their pending
// calls with ErrUnreachable), cancels running handlers and waits for every
// goroutine of the Net, including handlers, to return.
func (n *Net) Close() error {
	n.mu.Lock()
	if n.mu.closed {
		n.mu.Unlock()
		return nil
	}
	n.mu.closed = true
	conns := make([]*conn, 0, len(n.mu.conns))
	for c := range n.mu.conns {
		conns = append(conns, c)
	}
	n.mu.Unlock()
	err := n.ln.Close()
	for _, c := range conns {
		c.close(ErrClosed)
	}
	n.cancel()
	n.wg.Wait()
	if err != nil && !errors.Is(err, net.ErrClosed) {
		return fmt.Errorf("transport: close: %w", err)
	}
	return nil
}

func (n *Net) acceptLoop() {
	defer n.wg.Done()
	backoff := 5 * time.Millisecond
	for {
		raw, err := n.ln.Accept()
		if err != nil {
			if n.ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of file descriptors and the like: wait and go on, as
			// net/http does, rather than stop serving for good.
			n.log.Warn("transport: accept", "err", err, "retry_in", backoff)
			select {
			case <-time.After(backoff):
			case <-n.ctx.Done():
				return
			}
			backoff = min(2*backoff, time.Second)
			continue
		}
		backoff = 5 * time.Millisecond
		select {
		case n.handshakes <- struct{}{}:
		default:
			raw.Close()
			n.refuse(raw.RemoteAddr(), "", errors.New("too many connections in handshake"))
			continue
		}
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			defer func() { <-n.handshakes }()
			n.accept(raw)
		}()
	}
}

func (n *Net) refuse(remote net.Addr, claimed NodeID, why error) {
	n.refused.Add(1)
	n.log.Warn("transport: peer refused", "remote", remote.String(), "claimed_id", string(claimed), "reason", why.Error())
}

// accept runs TLS and admission on an inbound connection, then serves it.
func (n *Net) accept(raw net.Conn) {
	tc := tls.Server(raw, n.stls)
	// Close and the handshake timeout must both interrupt a peer that
	// stalls in the middle of admission.
	stop := context.AfterFunc(n.ctx, func() { raw.Close() })
	defer stop()
	raw.SetDeadline(time.Now().Add(n.cfg.HandshakeTimeout))
	ctx, cancel := context.WithTimeout(n.ctx, n.cfg.HandshakeTimeout)
	defer cancel()
	if err := tc.HandshakeContext(ctx); err != nil {
		raw.Close()
		if n.ctx.Err() == nil {
			n.refuse(raw.RemoteAddr(), "", fmt.Errorf("tls: %w", err))
		}
		return
	}
	peer, err := connPeer(tc)
	if err != nil {
		raw.Close()
		n.refuse(raw.RemoteAddr(), "", err)
		return
	}
	if err := admitAcceptor(tc, n.cfg.Secret); err != nil {
		raw.Close()
		if n.ctx.Err() == nil {
			n.refuse(raw.RemoteAddr(), peer, err)
		}
		return
	}
	raw.SetDeadline(time.Time{})
	c := newConn(n, tc, peer, "")
	if !stop() {
		// Close won the race and closed raw; nothing to serve.
		return
	}
	// Counted before register: once registered, the peer's calls may be
	// answered before this goroutine runs again.
	n.accepted.Add(1)
	if err := n.register(c); err != nil {
		tc.Close()
		return
	}
	n.log.Debug("transport: peer admitted", "peer", peer, "remote", raw.RemoteAddr().String())
}

// connPeer is the NodeID behind a handshaken connection.
func connPeer(tc *tls.Conn) (NodeID, error) {
	certs := tc.ConnectionState().PeerCertificates
	raw := make([][]byte, len(certs))
	for i, c := range certs {
		raw[i] = c.Raw
	}
	return peerID(raw)
}

// register publishes an admitted connection and starts its goroutines.
func (n *Net) register(c *conn) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.mu.closed {
		return ErrClosed
	}
	// The newest connection to a peer wins for new calls; an older one
	// stays open for what is in flight on it until either side closes it.
	n.mu.byID[c.peer] = c
	if c.addr != "" {
		n.mu.byAddr[c.addr] = c
	}
	n.mu.conns[c] = struct{}{}
	n.wg.Add(2)
	go c.readLoop()
	go c.writeLoop()
	return nil
}

func (n *Net) unregister(c *conn) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.mu.byID[c.peer] == c {
		delete(n.mu.byID, c.peer)
	}
	if c.addr != "" && n.mu.byAddr[c.addr] == c {
		delete(n.mu.byAddr, c.addr)
	}
	delete(n.mu.conns, c)
}

// connTo returns an open connection to the peer, dialing if there is none.
// Concurrent callers share one dial.
func (n *Net) connTo(ctx context.Context, to Peer) (*conn, error) {
	n.mu.Lock()
	if n.mu.closed {
		n.mu.Unlock()
		return nil, ErrClosed
	}
	var c *conn
	if to.ID != "" {
		c = n.mu.byID[to.ID]
	} else {
		c = n.mu.byAddr[to.Addr]
	}
	if c != nil && !c.isClosed() {
		n.mu.Unlock()
		return c, nil
	}
	if to.Addr == "" {
		n.mu.Unlock()
		return nil, fmt.Errorf("%w: no connection to %s and no address", ErrUnreachable, to.ID)
	}
	key := string(to.ID) + "@" + to.Addr
	d := n.mu.dials[key]
	if d == nil {
		d = &dialing{done: make(chan struct{})}
		n.mu.dials[key] = d
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			d.c, d.err = n.dial(to)
			n.mu.Lock()
			delete(n.mu.dials, key)
			n.mu.Unlock()
			close(d.done)
		}()
	}
	n.mu.Unlock()
	select {
	case <-d.done:
		return d.c, d.err
	case <-ctx.Done():
		return nil, ctxErr(ctx, to)
	}
}

// dial connects, handshakes and admits. It runs under the Net's lifetime
// rather than one caller's context, since callers share it.
func (n *Net) dial(to Peer) (*conn, error) {
	d := net.Dialer{Timeout: n.cfg.DialTimeout, LocalAddr: SourceAddr(n.ln.Addr(), to.Addr)}
	raw, err := d.DialContext(n.ctx, "tcp", to.Addr)
	if err != nil {
		if n.ctx.Err() != nil {
			return nil, ErrClosed
		}
		return nil, fmt.Errorf("%w: dial %s: %w", ErrUnreachable, to.Addr, err)
	}
	stop := context.AfterFunc(n.ctx, func() { raw.Close() })
	defer stop()
	raw.SetDeadline(time.Now().Add(n.cfg.HandshakeTimeout))
	tc := tls.Client(raw, clientTLS(n.cert, to.ID, n.cfg.offered()))
	fail := func(err error) (*conn, error) {
		raw.Close()
		switch {
		case n.ctx.Err() != nil:
			return nil, ErrClosed
		case errors.Is(err, ErrPinning):
			n.log.Warn("transport: peer key not pinned id", "remote", to.Addr, "err", err)
			return nil, fmt.Errorf("transport: %s: %w", to.Addr, err)
		case errors.Is(err, ErrRefused):
			n.refuse(raw.RemoteAddr(), to.ID, err)
			return nil, fmt.Errorf("transport: %s: %w", to.Addr, err)
		}
		return nil, fmt.Errorf("%w: %s: %w", ErrUnreachable, to.Addr, err)
	}
	if err := tc.Handshake(); err != nil {
		return fail(err)
	}
	peer, err := connPeer(tc)
	if err != nil {
		return fail(err)
	}
	if err := admitDialer(tc, n.cfg.Secret); err != nil {
		return fail(err)
	}
	raw.SetDeadline(time.Time{})
	if !stop() {
		return nil, ErrClosed
	}
	c := newConn(n, tc, peer, to.Addr)
	n.dialed.Add(1)
	if err := n.register(c); err != nil {
		tc.Close()
		return nil, err
	}
	n.log.Debug("transport: connected", "peer", peer, "remote", to.Addr)
	return c, nil
}

// Call sends req to service on the peer and returns its answer. See the
// package documentation for the errors. req must not be modified until
// Call returns, nor after an early return on ctx (it may still be in the
// send queue).
func (n *Net) Call(ctx context.Context, to Peer, service string, req []byte) ([]byte, error) {
	if service == "" || len(service) > maxService {
		return nil, fmt.Errorf("transport: service name of %d bytes not in 1..%d", len(service), maxService)
	}
	if len(req) > n.cfg.MaxMessage {
		return nil, fmt.Errorf("%w: request of %d bytes, limit %d", ErrMessageTooLarge, len(req), n.cfg.MaxMessage)
	}
	ctx, cancel := context.WithTimeout(ctx, n.cfg.CallTimeout)
	defer cancel()
	// A connection found dead before the request left is replaced once:
	// that request was never sent, so retrying cannot duplicate it.
	for attempt := 0; ; attempt++ {
		c, err := n.connTo(ctx, to)
		if err != nil {
			return nil, notSent(err)
		}
		resp, sent, err := c.call(ctx, to, service, req)
		if err != nil && !sent && attempt == 0 && ctx.Err() == nil {
			continue
		}
		if err != nil && !sent {
			err = notSent(err)
		}
		return resp, err
	}
}

// Send queues msg for service on the peer, connecting if needed, and
// returns once it is in the connection's send queue: it does not wait for
// the peer to receive or handle it, and the peer sends no answer. Messages
// to one peer keep their order. An error means msg did not leave
// (ErrNotSent); one that left may still be lost with its connection.
// msg must not be modified afterwards.
func (n *Net) Send(ctx context.Context, to Peer, service string, msg []byte) error {
	if service == "" || len(service) > maxService {
		return fmt.Errorf("%w: transport: service name of %d bytes not in 1..%d", ErrNotSent, len(service), maxService)
	}
	if len(msg) > n.cfg.MaxMessage {
		return fmt.Errorf("%w: %w: message of %d bytes, limit %d", ErrNotSent, ErrMessageTooLarge, len(msg), n.cfg.MaxMessage)
	}
	ctx, cancel := context.WithTimeout(ctx, n.cfg.CallTimeout)
	defer cancel()
	for attempt := 0; ; attempt++ {
		c, err := n.connTo(ctx, to)
		if err != nil {
			return notSent(err)
		}
		err = c.send(ctx, to, service, msg)
		if err != nil && attempt == 0 && ctx.Err() == nil {
			continue // the connection was found closed: one more, fresh
		}
		if err != nil {
			return notSent(err)
		}
		return nil
	}
}

// Hello returns the NodeID of whoever is admitted at addr, connecting if
// no connection to that address is open.
func (n *Net) Hello(ctx context.Context, addr string) (NodeID, error) {
	c, err := n.connTo(ctx, Peer{Addr: addr})
	if err != nil {
		return "", err
	}
	return c.peer, nil
}

// notSent marks err as a failure before the request left this node.
func notSent(err error) error {
	if errors.Is(err, ErrNotSent) {
		return err
	}
	return fmt.Errorf("%w: %w", ErrNotSent, err)
}

// ctxErr reports why ctx ended: a deadline is a timeout failure
// (ErrUnreachable), a cancellation is the caller's choice.
func ctxErr(ctx context.Context, to Peer) error {
	err := ctx.Err()
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%w: %s %s: %w", ErrUnreachable, to.ID, to.Addr, err)
	}
	return fmt.Errorf("transport: call to %s %s: %w", to.ID, to.Addr, err)
}
