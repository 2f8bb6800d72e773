package transport

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
)

// MemNetwork is an in-process network of endpoints with the Caller API,
// for tests of the packages above this one. Links can be cut, the network
// partitioned and nodes killed; a call across a cut fails at once with
// ErrUnreachable. Requests and responses are copied, as a real network
// would, so no test passes by sharing a buffer. Safe for concurrent use.
type MemNetwork struct {
	mu     sync.Mutex
	nodes  map[NodeID]*MemEndpoint
	byAddr map[string]*MemEndpoint
	cut    map[[2]NodeID]bool
	group  map[NodeID]int // absent: group 0
}

// NewMemNetwork returns an empty network with every link up.
func NewMemNetwork() *MemNetwork {
	return &MemNetwork{
		nodes:  map[NodeID]*MemEndpoint{},
		byAddr: map[string]*MemEndpoint{},
		cut:    map[[2]NodeID]bool{},
		group:  map[NodeID]int{},
	}
}

// MemEndpoint is one node of a MemNetwork.
type MemEndpoint struct {
	net      *MemNetwork
	id       NodeID
	handlers sync.Map // service -> Handler

	// Guarded by net.mu.
	killed bool
	life   context.Context // ends when the node is killed
	kill   context.CancelFunc
}

// Node returns the endpoint with this ID, adding it on first use. Any
// string is accepted as an ID, so tests may use readable names.
func (m *MemNetwork) Node(id NodeID) *MemEndpoint {
	m.mu.Lock()
	defer m.mu.Unlock()
	if e := m.nodes[id]; e != nil {
		return e
	}
	e := &MemEndpoint{net: m, id: id}
	e.life, e.kill = context.WithCancel(context.Background())
	m.nodes[id] = e
	m.byAddr[e.Addr()] = e
	return e
}

func pair(a, b NodeID) [2]NodeID {
	if a > b {
		a, b = b, a
	}
	return [2]NodeID{a, b}
}

// Disconnect cuts the link between a and b, both ways.
func (m *MemNetwork) Disconnect(a, b NodeID) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.cut[pair(a, b)] = true
}

// Connect restores the link between a and b cut by Disconnect (a
// partition still separates them if they are in different groups).
func (m *MemNetwork) Connect(a, b NodeID) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.cut, pair(a, b))
}

// Partition splits the network: nodes talk only within their group.
// Nodes named in no group form one more group together. It replaces any
// earlier partition; Disconnect cuts stay.
func (m *MemNetwork) Partition(groups ...[]NodeID) {
	m.mu.Lock()
	defer m.mu.Unlock()
	clear(m.group)
	for i, g := range groups {
		for _, id := range g {
			m.group[id] = i + 1
		}
	}
}

// Heal removes every partition and Disconnect cut. Killed nodes stay dead.
func (m *MemNetwork) Heal() {
	m.mu.Lock()
	defer m.mu.Unlock()
	clear(m.group)
	clear(m.cut)
}

// Kill makes a node unreachable and unable to call, and cancels the
// contexts of the handlers it is running, as a crash would. Its handlers
// stay registered for Revive.
func (m *MemNetwork) Kill(id NodeID) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if e := m.nodes[id]; e != nil && !e.killed {
		e.killed = true
		e.kill()
	}
}

// Revive brings a killed node back.
func (m *MemNetwork) Revive(id NodeID) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if e := m.nodes[id]; e != nil && e.killed {
		e.killed = false
		e.life, e.kill = context.WithCancel(context.Background())
	}
}

// reachableLocked says whether a and b can talk now.
func (m *MemNetwork) reachableLocked(a, b *MemEndpoint) bool {
	return !a.killed && !b.killed && !m.cut[pair(a.id, b.id)] && m.group[a.id] == m.group[b.id]
}

// Nodes lists the endpoints' IDs, sorted.
func (m *MemNetwork) Nodes() []NodeID {
	m.mu.Lock()
	defer m.mu.Unlock()
	ids := make([]NodeID, 0, len(m.nodes))
	for id := range m.nodes {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

func (e *MemEndpoint) ID() NodeID   { return e.id }
func (e *MemEndpoint) Addr() string { return "mem://" + string(e.id) }

// Handle registers h for service; a nil h removes the service.
func (e *MemEndpoint) Handle(service string, h Handler) {
	if h == nil {
		e.handlers.Delete(service)
		return
	}
	e.handlers.Store(service, h)
}

// resolve finds the target of a call as Net would: by ID, else by address;
// an ID and an address naming different nodes is a pinning failure.
func (m *MemNetwork) resolveLocked(to Peer) (*MemEndpoint, error) {
	var byID, byAddr *MemEndpoint
	if to.ID != "" {
		byID = m.nodes[to.ID]
	}
	if to.Addr != "" {
		byAddr = m.byAddr[to.Addr]
	}
	switch {
	case byID != nil:
		return byID, nil
	case byAddr != nil && to.ID != "":
		return nil, fmt.Errorf("transport: %s: %w: want %s, got %s", to.Addr, ErrPinning, to.ID, byAddr.id)
	case byAddr != nil:
		return byAddr, nil
	}
	return nil, fmt.Errorf("%w: no node %s %s", ErrUnreachable, to.ID, to.Addr)
}

// Call delivers req to the peer's handler, unless a cut, a partition or a
// dead end is in the way. If the link breaks or either side dies while
// the handler runs, the answer is lost and Call fails with ErrUnreachable.
func (e *MemEndpoint) Call(ctx context.Context, to Peer, service string, req []byte) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, notSent(ctxErr(ctx, to))
	}
	m := e.net
	m.mu.Lock()
	dst, err := m.resolveLocked(to)
	if err != nil {
		m.mu.Unlock()
		return nil, notSent(err)
	}
	if !m.reachableLocked(e, dst) {
		m.mu.Unlock()
		return nil, fmt.Errorf("%w: %w: %s -> %s is cut", ErrNotSent, ErrUnreachable, e.id, dst.id)
	}
	srcLife, dstLife := e.life, dst.life
	m.mu.Unlock()

	v, ok := dst.handlers.Load(service)
	if !ok {
		return nil, &RemoteError{From: dst.id, Service: service, Message: fmt.Sprintf("no handler for service %q", service), code: codeUnknownService}
	}
	hctx, cancel := context.WithCancel(dstLife)
	defer cancel()
	stop := context.AfterFunc(ctx, cancel)
	defer stop()
	type result struct {
		resp []byte
		err  error
	}
	done := make(chan result, 1)
	in := slices.Clone(req)
	go func() {
		resp, err := v.(Handler)(hctx, e.id, in)
		done <- result{slices.Clone(resp), err}
	}()
	var r result
	select {
	case r = <-done:
	case <-ctx.Done():
		return nil, ctxErr(ctx, to)
	case <-dstLife.Done():
		return nil, fmt.Errorf("%w: %s died during the call", ErrUnreachable, dst.id)
	case <-srcLife.Done():
		return nil, fmt.Errorf("%w: %s died during the call", ErrUnreachable, e.id)
	}
	m.mu.Lock()
	ok = m.reachableLocked(e, dst) && e.life == srcLife && dst.life == dstLife
	m.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("%w: %s -> %s: answer lost", ErrUnreachable, e.id, dst.id)
	}
	if r.err != nil {
		return nil, &RemoteError{From: dst.id, Service: service, Message: r.err.Error()}
	}
	return r.resp, nil
}

// Send delivers msg like Call, in the caller's goroutine so that messages
// to one peer keep their order, and drops the answer. Only a message that
// could not leave is an error.
func (e *MemEndpoint) Send(ctx context.Context, to Peer, service string, msg []byte) error {
	_, err := e.Call(ctx, to, service, msg)
	if errors.Is(err, ErrNotSent) {
		return err
	}
	return nil
}

// Hello returns the ID of the node at addr if it is reachable.
func (e *MemEndpoint) Hello(ctx context.Context, addr string) (NodeID, error) {
	if err := ctx.Err(); err != nil {
		return "", ctxErr(ctx, Peer{Addr: addr})
	}
	m := e.net
	m.mu.Lock()
	defer m.mu.Unlock()
	dst, err := m.resolveLocked(Peer{Addr: addr})
	if err != nil {
		return "", err
	}
	if !m.reachableLocked(e, dst) {
		return "", fmt.Errorf("%w: %s -> %s is cut", ErrUnreachable, e.id, dst.id)
	}
	return dst.id, nil
}
