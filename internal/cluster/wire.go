package cluster

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redoubt-io/redoubt/internal/raftmeta"
	"github.com/redoubt-io/redoubt/internal/transport"
)

// Services this package registers on the node's transport.
const (
	svcRaft  = "raft"  // batches of Raft messages, one way
	svcMeta  = "meta"  // forwarded metadata operations
	svcJoin  = "join"  // a new node asks to be admitted
	svcShard = "shard" // shard I/O on this node's drives
	// svcGroups: the replicas catching up in the groups a node leads
	svcGroups = "groups"
)

// RaftID is a node's ID in every Raft group: the first 8 bytes of its
// transport NodeID, never 0. Deriving it (instead of allocating it)
// means no registry has to agree on it before the node can take part.
func RaftID(id transport.NodeID) uint64 {
	b, err := hex.DecodeString(string(id))
	if err != nil || len(b) < 8 {
		return 1
	}
	v := binary.BigEndian.Uint64(b[:8])
	if v == 0 {
		v = 1
	}
	return v
}

// addressBook maps Raft IDs to transport peers, fed by node records, joins
// and gossip.
type addressBook struct {
	mu    sync.RWMutex
	peers map[uint64]transport.Peer
}

func newAddressBook() *addressBook { return &addressBook{peers: map[uint64]transport.Peer{}} }

func (a *addressBook) set(id transport.NodeID, addr string) {
	if id == "" || addr == "" {
		return
	}
	a.mu.Lock()
	a.peers[RaftID(id)] = transport.Peer{ID: id, Addr: addr}
	a.mu.Unlock()
}

func (a *addressBook) get(raftID uint64) (transport.Peer, bool) {
	a.mu.RLock()
	defer a.mu.RUnlock()
	p, ok := a.peers[raftID]
	return p, ok
}

func (a *addressBook) byNode(id string) (transport.Peer, bool) {
	return a.get(RaftID(transport.NodeID(id)))
}

// raftSender delivers Raft message batches without ever blocking the Raft
// loop: one queue and one goroutine per peer; when a peer's queue is full
// the batch is dropped, which Raft tolerates (it retries from its own
// state).
type raftSender struct {
	net   transport.Caller
	book  *addressBook
	log   *slog.Logger
	ctx   context.Context
	onErr func(to uint64)

	mu     sync.Mutex
	queues map[uint64]chan []byte
	wg     sync.WaitGroup

	// queueFull counts batches dropped because their peer's queue was
	// full, undelivered those the transport could not send; both are
	// shown by /status and /metrics (Cluster.RaftMessages).
	queueFull, undelivered atomic.Uint64
	// fullLogged is when a full queue was last logged (unix ns).
	fullLogged atomic.Int64
}

const raftQueueLen = 256

func newRaftSender(ctx context.Context, net transport.Caller, book *addressBook, logger *slog.Logger) *raftSender {
	return &raftSender{net: net, book: book, log: logger, ctx: ctx, onErr: func(uint64) {}, queues: map[uint64]chan []byte{}}
}

// Send queues a batch for peer to; the batch is the sender's from now on.
func (s *raftSender) Send(to uint64, batch []byte) {
	s.mu.Lock()
	q, ok := s.queues[to]
	if !ok {
		q = make(chan []byte, raftQueueLen)
		s.queues[to] = q
		s.wg.Add(1)
		go s.run(to, q)
	}
	s.mu.Unlock()
	select {
	case q <- batch:
	default:
		// Raft resends from its own state, but a peer whose queue stays
		// full is one this node cannot keep up with: say so, now and then.
		n := s.queueFull.Add(1)
		now := time.Now().UnixNano()
		if last := s.fullLogged.Load(); now-last >= int64(10*time.Second) && s.fullLogged.CompareAndSwap(last, now) {
			s.log.Warn("raft messages dropped: the queue to a peer is full", "to", fmt.Sprintf("%x", to), "dropped_total", n)
		}
	}
}

// run hands the batches for one peer to the transport in order, so a slow
// peer holds up only its own queue. They go one way: Raft needs no receipt
// (it learns from the peer's own messages), and waiting for one per batch
// would allow one batch in flight per peer, a round trip each.
func (s *raftSender) run(to uint64, q chan []byte) {
	defer s.wg.Done()
	for {
		var batch []byte
		select {
		case <-s.ctx.Done():
			return
		case batch = <-q:
		}
		p, ok := s.book.get(to)
		if !ok {
			s.log.Debug("raft message to a node of unknown address", "to", fmt.Sprintf("%x", to))
			s.undelivered.Add(1)
			s.onErr(to)
			continue
		}
		ctx, cancel := context.WithTimeout(s.ctx, 5*time.Second)
		err := s.net.Send(ctx, p, svcRaft, batch)
		cancel()
		if err != nil {
			s.undelivered.Add(1)
			if errors.Is(err, transport.ErrMessageTooLarge) {
				// The host splits batches below the limit: a bug if seen.
				s.log.Warn("raft message batch refused by the transport", "to", p.ID, "bytes", len(batch), "err", err)
			} else {
				s.log.Debug("raft message not delivered", "to", p.ID, "err", err)
			}
			s.onErr(to)
		}
	}
}

// forwarder sends forwarded metadata operations to another node's host.
type forwarder struct {
	net  transport.Caller
	book *addressBook
}

func (f forwarder) Forward(ctx context.Context, to uint64, req []byte) ([]byte, error) {
	p, ok := f.book.get(to)
	if !ok {
		return nil, fmt.Errorf("no address known for raft node %x: %w", to, raftmeta.ErrNotDelivered)
	}
	resp, err := f.net.Call(ctx, p, svcMeta, req)
	if errors.Is(err, transport.ErrNotSent) {
		// Only a request that certainly did not leave may be sent to
		// another member: a commit whose answer was lost may have been
		// applied, and sending it again would apply it twice.
		err = fmt.Errorf("%w: %w", raftmeta.ErrNotDelivered, err)
	}
	return resp, err
}

// shardCaller adapts the transport to shard I/O, which names peers by
// node ID.
type shardCaller struct {
	net  transport.Caller
	book *addressBook
}

func (s shardCaller) Call(ctx context.Context, node, service string, req []byte) ([]byte, error) {
	p, ok := s.book.byNode(node)
	if !ok {
		return nil, fmt.Errorf("no address known for node %s", node)
	}
	return s.net.Call(ctx, p, service, req)
}
