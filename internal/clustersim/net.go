package clustersim

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/zeebo/xxh3"

	"github.com/redoubt-io/redoubt/internal/transport"
)

// svcRaft is the transport service of Raft message batches (see
// internal/cluster): the one service whose messages the network may also
// duplicate and reorder, since Raft's Sender contract allows it.
const svcRaft = "raft"

// network is the simulated network: every message is an event of the
// simulation, delivered after a delay, or lost, as the packet's fate
// says. A fate is a function of the seed and of the packet itself (its
// ends, service and bytes, and how many identical packets went before),
// never of the order in which goroutines happened to send: two packets
// sent at one instant get the same fates whichever is sent first.
type network struct {
	sim *Sim

	mu     sync.Mutex
	eps    map[transport.NodeID]*endpoint
	byAddr map[string]*endpoint
	// cut[{a, b}]: packets from a to b are lost (one direction).
	cut  map[[2]transport.NodeID]bool
	seen map[uint64]uint64 // packets of an identity sent so far
	// quiet: no packet is lost, duplicated or slowed any more (the run's
	// end, where invariants are checked once the faults have stopped).
	quiet bool
}

func newNetwork(s *Sim) *network {
	return &network{sim: s, eps: map[transport.NodeID]*endpoint{}, byAddr: map[string]*endpoint{},
		cut: map[[2]transport.NodeID]bool{}, seen: map[uint64]uint64{}}
}

// endpoint is one incarnation of a node on the network: a crash ends it
// (alive false, life cancelled) and a restart attaches a new one with the
// same ID. Packets to or from an ended incarnation are lost.
type endpoint struct {
	net      *network
	id       transport.NodeID
	handlers sync.Map // service -> transport.Handler
	life     context.Context
	kill     context.CancelFunc

	// Guarded by net.mu.
	alive bool
}

var _ transport.Caller = (*endpoint)(nil)

// attach makes a new incarnation of node id the one the network reaches.
func (n *network) attach(id transport.NodeID) *endpoint {
	e := &endpoint{net: n, id: id, alive: true}
	e.life, e.kill = context.WithCancel(context.Background())
	n.mu.Lock()
	defer n.mu.Unlock()
	if old := n.eps[id]; old != nil {
		old.alive = false
		old.kill()
	}
	n.eps[id] = e
	n.byAddr[e.Addr()] = e
	return e
}

// detach ends incarnation e: nothing reaches it or leaves it any more.
func (n *network) detach(e *endpoint) {
	n.mu.Lock()
	e.alive = false
	n.mu.Unlock()
	e.kill()
}

// setCut cuts or heals the link from a to b.
func (n *network) setCut(a, b transport.NodeID, cut bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if cut {
		n.cut[[2]transport.NodeID{a, b}] = true
	} else {
		delete(n.cut, [2]transport.NodeID{a, b})
	}
}

// heal reconnects every link.
func (n *network) heal() {
	n.mu.Lock()
	clear(n.cut)
	n.mu.Unlock()
}

// quieten heals every link and stops losing, duplicating and slowing
// packets, for good.
func (n *network) quieten() {
	n.mu.Lock()
	clear(n.cut)
	n.quiet = true
	n.mu.Unlock()
}

// passes reports whether a packet from src to dst, both the incarnations
// they were when it was sent, gets through now.
func (n *network) passes(src, dst *endpoint) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return src.alive && dst.alive && n.eps[src.id] == src && n.eps[dst.id] == dst &&
		!n.cut[[2]transport.NodeID{src.id, dst.id}]
}

func (n *network) resolve(to transport.Peer) (*endpoint, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if to.ID != "" {
		if e := n.eps[to.ID]; e != nil {
			return e, nil
		}
	}
	if e := n.byAddr[to.Addr]; e != nil {
		if to.ID != "" && e.id != to.ID {
			return nil, fmt.Errorf("%w: %s is %s", transport.ErrPinning, to.Addr, e.id)
		}
		return e, nil
	}
	return nil, fmt.Errorf("%w: %w: no node %s %s", transport.ErrNotSent, transport.ErrUnreachable, to.ID, to.Addr)
}

// fate is what happens to one packet.
type fate struct {
	key   uint64 // orders events at one instant
	lost  bool
	dup   bool
	delay time.Duration
	back  time.Duration // the answer's delay, for a call
}

// fateOf decides the fate of a packet from the seed and its identity.
func (n *network) fateOf(from, to transport.NodeID, service string, body []byte) fate {
	h := xxh3.New()
	h.WriteString(string(from))
	h.Write([]byte{0})
	h.WriteString(string(to))
	h.Write([]byte{0})
	h.WriteString(service)
	h.Write([]byte{0})
	h.Write(body)
	id := h.Sum64()
	n.mu.Lock()
	occ := n.seen[id]
	n.seen[id] = occ + 1
	quiet := n.quiet
	n.mu.Unlock()
	if n.sim.cfg.KeepTrace {
		n.sim.mu.Lock()
		n.sim.lines = append(n.sim.lines, fmt.Sprintf("%d   sent %s %s->%s %x/%d %d bytes %s", time.Now().UnixNano(), service, from, to, id, occ, len(body), sender()))
		n.sim.mu.Unlock()
	}
	r := newSplitMix(n.sim.cfg.Seed ^ id ^ (occ+1)*0x9e3779b97f4a7c15)
	f := fate{key: r.next()}
	fl := &n.sim.cfg.Faults
	f.lost = r.float() < fl.Drop
	f.dup = service == svcRaft && r.float() < fl.Duplicate
	f.delay = n.delay(r)
	f.back = n.delay(r)
	if quiet {
		f.lost, f.dup = false, false
		f.delay, f.back = min(f.delay, lanDelay), min(f.back, lanDelay)
	}
	return f
}

// lanDelay bounds a quiet network's latency.
const lanDelay = 550 * time.Microsecond

// delay draws a one-way latency: mostly a LAN's, sometimes a slow link's.
func (n *network) delay(r *splitMix) time.Duration {
	fl := &n.sim.cfg.Faults
	d := 50*time.Microsecond + time.Duration(r.next()%uint64(500*time.Microsecond))
	if r.float() < fl.Slow {
		d += time.Duration(r.next() % uint64(200*time.Millisecond))
	}
	if fl.Reorder > 0 && r.float() < fl.Reorder {
		d += time.Duration(r.next() % uint64(20*time.Millisecond))
	}
	return d
}

// lostAfter is how long a caller waits before a lost packet shows as a
// failed call: a connection's timeout.
const lostAfter = 2 * time.Second

func (e *endpoint) ID() transport.NodeID { return e.id }
func (e *endpoint) Addr() string         { return "sim://" + string(e.id) }

func (e *endpoint) Handle(service string, h transport.Handler) {
	if h == nil {
		e.handlers.Delete(service)
		return
	}
	e.handlers.Store(service, h)
}

type callResult struct {
	resp []byte
	err  error
}

// Call sends req as an event of the simulation, runs the handler on its
// own goroutine when the request arrives, and sends the answer back the
// same way. A request lost on the way fails with ErrNotSent after
// lostAfter; an answer lost on the way back fails with ErrUnreachable (the
// handler ran).
func (e *endpoint) Call(ctx context.Context, to transport.Peer, service string, req []byte) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("%w: %w", transport.ErrNotSent, err)
	}
	if err := e.stopped(); err != nil {
		return nil, err
	}
	dst, err := e.net.resolve(to)
	if err != nil {
		return nil, err
	}
	in := slices.Clone(req)
	f := e.net.fateOf(e.id, dst.id, service, in)
	reply := make(chan callResult, 1)
	s := e.net.sim
	s.schedule(f.delay, f.key, fmt.Sprintf("call %s %s->%s", service, e.id, dst.id), func() {
		if f.lost || !e.net.passes(e, dst) {
			s.schedule(lostAfter, f.key^1, "lost call", func() {
				reply <- callResult{err: fmt.Errorf("%w: %w: %s -> %s", transport.ErrNotSent, transport.ErrUnreachable, e.id, dst.id)}
			})
			return
		}
		v, ok := dst.handlers.Load(service)
		if !ok {
			reply <- callResult{err: fmt.Errorf("%w: %s has no service %q", transport.ErrUnknownService, dst.id, service)}
			return
		}
		hctx, cancel := handlerContext(ctx, dst.life)
		go func() {
			defer cancel()
			resp, herr := v.(transport.Handler)(hctx, e.id, in)
			resp = slices.Clone(resp)
			s.schedule(f.back, f.key^2, fmt.Sprintf("answer %s %s->%s", service, dst.id, e.id), func() {
				if !e.net.passes(dst, e) {
					s.schedule(lostAfter, f.key^3, "lost answer", func() {
						reply <- callResult{err: fmt.Errorf("%w: %s -> %s: answer lost", transport.ErrUnreachable, dst.id, e.id)}
					})
					return
				}
				if herr != nil {
					herr = &transport.RemoteError{From: dst.id, Service: service, Message: herr.Error()}
				}
				reply <- callResult{resp: resp, err: herr}
			})
		}()
	})
	select {
	case r := <-reply:
		return r.resp, r.err
	case <-ctx.Done():
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return nil, fmt.Errorf("%w: %s: %w", transport.ErrUnreachable, dst.id, ctx.Err())
		}
		return nil, ctx.Err()
	case <-e.life.Done():
		return nil, fmt.Errorf("%w: %s stopped", transport.ErrUnreachable, e.id)
	}
}

// stopped fails a call or send of an incarnation that crashed or
// stopped: its goroutines wind down as the Go scheduler runs them, and
// what they try to send then must neither reach the network nor draw a
// fate (fates count the packets of each identity), or two runs of a seed
// would part on that order.
func (e *endpoint) stopped() error {
	if e.life.Err() != nil {
		return fmt.Errorf("%w: %w: %s stopped", transport.ErrNotSent, transport.ErrUnreachable, e.id)
	}
	return nil
}

// handlerContext is the context a handler runs with: the caller's values
// and deadline (the real transport sends the deadline along), ended when
// the receiving incarnation dies.
func handlerContext(caller context.Context, life context.Context) (context.Context, context.CancelFunc) {
	ctx := context.WithoutCancel(caller)
	var cancel context.CancelFunc
	if d, ok := caller.Deadline(); ok {
		ctx, cancel = context.WithDeadline(ctx, d)
	} else {
		ctx, cancel = context.WithCancel(ctx)
	}
	stop := context.AfterFunc(life, cancel)
	return ctx, func() { stop(); cancel() }
}

// Send delivers msg one way, as an event; Raft batches may also be
// duplicated or delayed past later ones (Slow, Reorder).
func (e *endpoint) Send(ctx context.Context, to transport.Peer, service string, msg []byte) error {
	if err := e.stopped(); err != nil {
		return err
	}
	dst, err := e.net.resolve(to)
	if err != nil {
		return err
	}
	in := slices.Clone(msg)
	f := e.net.fateOf(e.id, dst.id, service, in)
	s := e.net.sim
	deliver := func() {
		if f.lost || !e.net.passes(e, dst) {
			return
		}
		v, ok := dst.handlers.Load(service)
		if !ok {
			return
		}
		hctx, cancel := handlerContext(context.Background(), dst.life)
		go func() {
			defer cancel()
			_, _ = v.(transport.Handler)(hctx, e.id, in)
		}()
	}
	s.schedule(f.delay, f.key, fmt.Sprintf("send %s %s->%s", service, e.id, dst.id), deliver)
	if f.dup {
		s.schedule(f.back, f.key^4, "duplicate", deliver)
	}
	return nil
}

func (e *endpoint) Hello(ctx context.Context, addr string) (transport.NodeID, error) {
	dst, err := e.net.resolve(transport.Peer{Addr: addr})
	if err != nil {
		return "", err
	}
	if !e.net.passes(e, dst) {
		return "", fmt.Errorf("%w: %s -> %s is cut", transport.ErrUnreachable, e.id, dst.id)
	}
	return dst.id, nil
}

// splitMix is SplitMix64: a tiny deterministic generator for fates, so
// that a fate depends on its seed alone.
type splitMix struct{ s uint64 }

func newSplitMix(seed uint64) *splitMix { return &splitMix{s: seed} }

func (r *splitMix) next() uint64 {
	r.s += 0x9e3779b97f4a7c15
	z := r.s
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

func (r *splitMix) float() float64 { return float64(r.next()>>11) / (1 << 53) }

// hashString hashes s with the seed, for keys of the simulation's own
// events.
func hashString(seed uint64, s string) uint64 { return xxh3.HashStringSeed(s, seed) }

// sender names the functions that are sending a packet, innermost
// first: where two runs of a seed part, the trace then says which code
// sent what the other run did not.
func sender() string {
	pcs := make([]uintptr, 30)
	k := runtime.Callers(3, pcs)
	fr := runtime.CallersFrames(pcs[:k])
	var out []string
	for {
		f, more := fr.Next()
		name := f.Function
		if i := strings.LastIndex(name, "/"); i >= 0 {
			name = name[i+1:]
		}
		out = append(out, name)
		if !more {
			break
		}
	}
	return strings.Join(out, "<")
}
