package membership

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"math/rand/v2"
	"net"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
)

var (
	// ErrClosed is returned by Join, Leave and UpdateMeta after Close.
	ErrClosed = errors.New("membership: closed")
	// ErrJoin is returned by Join when no seed could be contacted.
	ErrJoin = errors.New("membership: join failed")
	// ErrUnresponsive is returned by Probe when this node's gossip does
	// not answer its own ping.
	ErrUnresponsive = errors.New("membership: gossip does not answer")
)

// defaultBroadcastTimeout bounds UpdateMeta when its context has no
// deadline.
const defaultBroadcastTimeout = 5 * time.Second

// State is a member's liveness as this node sees it.
type State uint8

const (
	Alive State = iota + 1
	// Suspect: a probe failed; the member is Dead unless it refutes
	// within the suspicion timeout. memberlist v0.7 does not expose its
	// suspicions, so List never reports it yet; consumers should handle it.
	Suspect
	Dead
	// Left: the member announced its departure.
	Left
)

func (s State) String() string {
	switch s {
	case Alive:
		return "alive"
	case Suspect:
		return "suspect"
	case Dead:
		return "dead"
	case Left:
		return "left"
	}
	return "unknown(" + strconv.Itoa(int(s)) + ")"
}

// Member is one node as this node sees it.
type Member struct {
	ID string
	// Addr is the member's gossip address, host:port.
	Addr  string
	Meta  NodeMeta
	State State
	// Since is when this node saw the member enter State.
	Since time.Time
}

// Members is a running membership. Create it with Start.
type Members struct {
	log       *slog.Logger
	ml        *memberlist.Memberlist
	localAddr string
	// self is this node's name and advertised address, for Probe.
	self struct {
		name string
		addr *net.UDPAddr
	}

	// life guards the memberlist against use after Shutdown (its Leave
	// panics then): calls into it hold life for reading, Close for writing.
	life struct {
		sync.RWMutex
		closed bool
	}
	// done is closed by Close.
	done chan struct{}

	// local is what memberlist advertises for this node, read through
	// delegate.NodeMeta.
	local struct {
		sync.Mutex
		meta    NodeMeta
		leaving bool
	}

	// mu guards the member table and the subscriptions. memberlist calls
	// the event delegate with its own node lock held, so no code holding
	// mu may call into memberlist.
	mu struct {
		sync.Mutex
		table map[string]entry
		subs  map[*subscriber]struct{}
	}
}

// Start binds the gossip port and starts gossiping, alone until Join.
func Start(ctx context.Context, cfg Config) (*Members, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg, _ = cfg.withProfile()
	mc, err := cfg.memberlistConfig()
	if err != nil {
		return nil, err
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	m := &Members{log: logger, done: make(chan struct{})}
	m.local.meta = cfg.Meta
	m.mu.table = make(map[string]entry)
	m.mu.subs = make(map[*subscriber]struct{})
	mc.Logger = log.New(logWriter{logger.With("source", "memberlist")}, "", 0)
	mc.Delegate = delegate{m}
	mc.Events = events{m}
	if err := boundTransportFor(mc, mc.Logger); err != nil {
		return nil, err
	}

	ml, err := memberlist.Create(mc)
	if err != nil {
		if mc.Transport != nil {
			mc.Transport.Shutdown()
		}
		return nil, fmt.Errorf("membership: start on %s: %w", cfg.BindAddr, err)
	}
	m.ml = ml
	// memberlist writes the port it chose back into its config.
	m.localAddr = net.JoinHostPort(mc.BindAddr, strconv.Itoa(mc.BindPort))
	self := ml.LocalNode()
	m.self.name, m.self.addr = self.Name, &net.UDPAddr{IP: slices.Clone(self.Addr), Port: int(self.Port)}
	go m.reconnect(cfg.ReconnectInterval, cfg.ReconnectTimeout, rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 0)))
	logger.Info("gossip started", "bind", m.localAddr, "advertise", ml.LocalNode().Address(), "profile", cmp.Or(cfg.Profile, ProfileLAN))
	return m, nil
}

// LocalAddr is the address gossip is bound to, with the actual port.
func (m *Members) LocalAddr() string { return m.localAddr }

// Join contacts each seed (a gossip host:port) in turn and merges its view
// of the cluster. It returns how many seeds answered, and an error wrapping
// ErrJoin if none did. Each seed takes at most memberlist's TCP timeout
// (5 s LAN, 1 s local); ctx is checked between seeds.
func (m *Members) Join(ctx context.Context, seeds []string) (int, error) {
	m.life.RLock()
	defer m.life.RUnlock()
	if m.life.closed {
		return 0, ErrClosed
	}
	if len(seeds) == 0 {
		return 0, fmt.Errorf("%w: no seeds", ErrJoin)
	}
	joined := 0
	var errs []error
	for _, seed := range seeds {
		if err := ctx.Err(); err != nil {
			errs = append(errs, err)
			break
		}
		n, err := m.ml.Join([]string{seed})
		joined += n
		if err != nil {
			err = flatten(err)
			m.log.Warn("gossip seed unreachable", "seed", seed, "err", err)
			errs = append(errs, fmt.Errorf("seed %s: %w", seed, err))
		}
	}
	if joined == 0 {
		return 0, fmt.Errorf("%w: %w", ErrJoin, errors.Join(errs...))
	}
	m.log.Info("joined cluster", "seeds_answered", joined, "members", m.ml.NumMembers())
	return joined, nil
}

// Leave announces that this node is leaving, so the others list it as Left
// rather than Dead, and waits up to timeout (0: 5 s) for the announcement
// to go out. Leaving is final: gossip keeps running until Close, but only
// to spread the news; a node that wants back in restarts.
//
// memberlist's own leave message reads, to its receivers, like a failure,
// so Leave first re-advertises the meta with a leaving flag; a member that
// goes away with the flag set is Left. A member that missed the flag (it
// heard of the departure only from a full state sync) lists the node Dead.
func (m *Members) Leave(timeout time.Duration) error {
	if timeout <= 0 {
		timeout = defaultBroadcastTimeout
	}
	deadline := time.Now().Add(timeout)
	m.life.RLock()
	defer m.life.RUnlock()
	if m.life.closed {
		return ErrClosed
	}
	m.local.Lock()
	m.local.leaving = true
	m.local.Unlock()
	if err := m.ml.UpdateNode(timeout); err != nil {
		m.log.Warn("leave intent not confirmed sent; leaving anyway", "err", err)
	}
	if err := m.ml.Leave(max(time.Until(deadline), time.Millisecond)); err != nil {
		return fmt.Errorf("membership: leave: %w", err)
	}
	return nil
}

// UpdateMeta advertises a new NodeMeta and waits, until ctx's deadline or
// 5 s, for the update to be sent to some other member.
func (m *Members) UpdateMeta(ctx context.Context, meta NodeMeta) error {
	if _, err := encodeMeta(meta, 0); err != nil {
		return err
	}
	timeout := defaultBroadcastTimeout
	if d, ok := ctx.Deadline(); ok {
		timeout = time.Until(d)
		if timeout <= 0 {
			return context.DeadlineExceeded
		}
	}
	m.life.RLock()
	defer m.life.RUnlock()
	if m.life.closed {
		return ErrClosed
	}
	m.local.Lock()
	m.local.meta = meta
	m.local.Unlock()
	if err := m.ml.UpdateNode(timeout); err != nil {
		return fmt.Errorf("membership: update meta: %w", err)
	}
	return nil
}

// Close stops gossip and ends every subscription (their channels close).
// It sends no leave message. Close is idempotent.
func (m *Members) Close() error {
	m.life.Lock()
	if m.life.closed {
		m.life.Unlock()
		return nil
	}
	m.life.closed = true
	err := m.ml.Shutdown()
	close(m.done)
	m.life.Unlock()

	m.mu.Lock()
	subs := m.mu.subs
	m.mu.subs = nil
	m.mu.Unlock()
	for s := range subs {
		s.stop()
	}
	if err != nil {
		return fmt.Errorf("membership: close: %w", err)
	}
	return nil
}

// Done is closed when Close is called, by whichever owner: gossip has
// stopped and this Members will not gossip again.
func (m *Members) Done() <-chan struct{} { return m.done }

// Probe pings this node's own advertised gossip address and waits up to
// the probe timeout for the ack, which proves that gossip packets still
// leave, arrive and are handled: a Members whose sockets or handlers broke
// lists the others as they were, but no longer hears from them. It
// returns ErrClosed after Close and an error wrapping ErrUnresponsive
// when no ack came. A busy host can miss one ack; act on several in a
// row.
func (m *Members) Probe() error {
	m.life.RLock()
	defer m.life.RUnlock()
	if m.life.closed {
		return ErrClosed
	}
	if _, err := m.ml.Ping(m.self.name, m.self.addr); err != nil {
		return fmt.Errorf("%w: ping to own address %s: %w", ErrUnresponsive, m.self.addr, err)
	}
	return nil
}

// List returns every member ever seen, this node included, sorted by ID.
func (m *Members) List() []Member {
	m.mu.Lock()
	out := make([]Member, 0, len(m.mu.table))
	for _, mem := range m.mu.table {
		out = append(out, mem.Member)
	}
	m.mu.Unlock()
	slices.SortFunc(out, func(a, b Member) int { return cmp.Compare(a.ID, b.ID) })
	return out
}

// entry is a member as the table keeps it.
type entry struct {
	Member
	// leaving: the member's last meta announced a graceful departure.
	leaving bool
}

// observe records what memberlist reports about a node and tells the
// subscribers. gone is true when memberlist reports the node dead or left
// (it does not say which).
func (m *Members) observe(kind EventKind, n *memberlist.Node, gone bool) {
	meta, flags, err := decodeMeta(n.Meta)
	if err != nil {
		m.log.Warn("undecodable node meta", "member", n.Name, "err", err)
	}
	now := time.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	prev, known := m.mu.table[n.Name]
	e := entry{
		Member:  Member{ID: n.Name, Addr: n.Address(), Meta: meta, State: Alive, Since: now},
		leaving: flags&flagLeaving != 0,
	}
	if known && err != nil {
		e.Meta, e.leaving = prev.Meta, prev.leaving
	}
	if gone {
		// memberlist hands over the meta last seen alive, so the flag
		// tells a graceful leave from a crash.
		kind, e.State = EventFail, Dead
		if e.leaving || (known && prev.leaving) {
			kind, e.State = EventLeave, Left
		}
	}
	if known && prev.State == e.State {
		e.Since = prev.Since
	}
	m.mu.table[n.Name] = e
	if !known || prev.State != e.State {
		m.log.Info("member state", "member", e.ID, "addr", e.Addr, "state", e.State.String())
	}
	if kind == EventUpdate && known && prev.Member == e.Member {
		// Only the flags changed (a leave intent): nothing a subscriber
		// can see until the member is gone.
		return
	}
	ev := Event{Kind: kind, Member: e.Member}
	for s := range m.mu.subs {
		s.push(ev)
	}
}

// delegate gives memberlist the local meta; this package sends no user
// messages of its own.
type delegate struct{ m *Members }

func (d delegate) NodeMeta(limit int) []byte {
	d.m.local.Lock()
	defer d.m.local.Unlock()
	var flags metaFlags
	if d.m.local.leaving {
		flags |= flagLeaving
	}
	b, err := encodeMeta(d.m.local.meta, flags)
	if err != nil || len(b) > limit {
		// Start and UpdateMeta refuse oversize meta, so this is a bug;
		// memberlist would panic on it.
		d.m.log.Error("local meta does not fit", "err", err, "limit", limit)
		return nil
	}
	return b
}

func (delegate) NotifyMsg([]byte)                           {}
func (delegate) GetBroadcasts(overhead, limit int) [][]byte { return nil }
func (delegate) LocalState(join bool) []byte                { return nil }
func (delegate) MergeRemoteState(buf []byte, join bool)     {}

// events feeds the member table; memberlist calls it with its node lock
// held, one call at a time.
type events struct{ m *Members }

func (e events) NotifyJoin(n *memberlist.Node)   { e.m.observe(EventJoin, n, false) }
func (e events) NotifyUpdate(n *memberlist.Node) { e.m.observe(EventUpdate, n, false) }
func (e events) NotifyLeave(n *memberlist.Node)  { e.m.observe(EventFail, n, true) }

// flatten unwraps memberlist's multi-error (one error per seed address)
// into a plain joined error, which prints on one line.
func flatten(err error) error {
	if me, ok := err.(interface{ WrappedErrors() []error }); ok {
		return errors.Join(me.WrappedErrors()...)
	}
	return err
}

var (
	_ memberlist.Delegate      = delegate{}
	_ memberlist.EventDelegate = events{}
)
