package raftmeta

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/redoubt-io/redoubt/internal/meta"
	"go.etcd.io/raft/v3/raftpb"
)

var _ meta.Store = (*Host)(nil)

// errNoLeader: the request was not served because no leader was found;
// it may be sent again.
var errNoLeader = fmt.Errorf("raftmeta: no leader: %w", meta.ErrUnavailable)

func unavailable(what string, err error) error {
	if errors.Is(err, meta.ErrUnavailable) {
		return err
	}
	return fmt.Errorf("raftmeta: %s: %w (%v)", what, meta.ErrUnavailable, err)
}

// Commit implements meta.Store: at the group's leader, wherever it is.
func (h *Host) Commit(ctx context.Context, p meta.Partition, txn meta.Txn) (uint64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	ctx, cancel := withTimeout(ctx, h.cfg.ProposalTimeout)
	defer cancel()
	q := &request{op: opCommit, p: p, txn: txn}
	resp := h.retry(ctx, q)
	return resp.rev, resp.err()
}

// Get implements meta.Store with a linearizable read at the leader.
func (h *Host) Get(ctx context.Context, p meta.Partition, key []byte) (meta.Item, error) {
	if err := ctx.Err(); err != nil {
		return meta.Item{}, err
	}
	ctx, cancel := withTimeout(ctx, h.cfg.ProposalTimeout)
	defer cancel()
	resp := h.retry(ctx, &request{op: opGet, p: p, key: key})
	if err := resp.err(); err != nil {
		return meta.Item{}, err
	}
	return meta.Item{Value: resp.value, Rev: resp.rev}, nil
}

// Scan implements meta.Store. At the leader, one linearizable read and one
// Pebble iterator serve the whole range. Elsewhere the range comes from
// the leader in pages of at most Config.MaxMessage bytes: each page is a
// linearizable, consistent view of its keys, but pages are read at
// successive moments, so a commit between two pages shows in the later
// ones only. A range that fits one page is one view.
func (h *Host) Scan(ctx context.Context, p meta.Partition, start, end []byte, fn func(key []byte, item meta.Item) bool) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	for {
		pctx, cancel := withTimeout(ctx, h.cfg.ProposalTimeout)
		q := &request{op: opScan, p: p, key: start, end: end, maxBytes: uint32(h.cfg.MaxMessage)}
		var local *group
		resp := h.retryWith(pctx, q, func(g *group) response {
			if err := h.readIndex(pctx, g); err != nil {
				return errResponse(err)
			}
			local = g
			return response{}
		})
		cancel()
		if err := resp.err(); err != nil {
			return err
		}
		if local != nil {
			it, held, err := h.iterHeld(local, start, end)
			if err != nil {
				return err
			}
			if !held {
				continue // replaced since its read was confirmed: ask again
			}
			defer it.Close()
			return forEachItem(it, fn)
		}
		for _, it := range resp.items {
			if !fn(it.key, meta.Item{Value: it.value, Rev: it.rev}) {
				return nil
			}
		}
		if !resp.more || len(resp.items) == 0 {
			return nil
		}
		start = append(resp.items[len(resp.items)-1].key, 0)
	}
}

// iterHeld opens an iterator over g's items in [start, end), and reports
// whether g was still this host's replica of its group once it had: a
// replica deleted or replaced after its read was confirmed (a layout
// change moves the group away) has its state cleared, and an iterator
// opened after that shows the partition empty. The state is cleared and
// the replica forgotten together under h.mu (removeReplica, makeReplica),
// so a look under h.mu after the iterator opened proves that it sees g's
// state (TestReadOfAReplicaRemovedMeanwhileIsRefused). Not held, the
// iterator is closed and nil.
func (h *Host) iterHeld(g *group, start, end []byte) (*pebble.Iterator, bool, error) {
	if end != nil && bytes.Compare(start, end) > 0 {
		end = start // an empty range: bounds in order
	}
	lower, upper := dataBounds(g.p, start, end)
	it, err := h.db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return nil, false, err
	}
	if !h.holds(g) {
		_ = it.Close()
		return nil, false, nil
	}
	return it, true, nil
}

// holds says whether g is still this host's replica of its group (see
// iterHeld).
func (h *Host) holds(g *group) bool { return h.replica(g.p) == g }

// replacedMeanwhile is the answer to a read whose replica was deleted or
// replaced after its read was confirmed: the origin asks again, and finds
// the group's leader.
func replacedMeanwhile(g *group) response {
	return response{status: stRetry, msg: fmt.Sprintf("replica of %s deleted or replaced during the read", g.name)}
}

// forEachItem hands fn the items within the iterator's bounds in order, until fn
// returns false.
func forEachItem(it *pebble.Iterator, fn func(key []byte, item meta.Item) bool) error {
	for ok := it.First(); ok; ok = it.Next() {
		v, err := it.ValueAndErr()
		if err != nil {
			return err
		}
		rev, val, err := decodeItem(v)
		if err != nil {
			return err
		}
		if !fn(it.Key()[dataKeyHeader:], meta.Item{Value: val, Rev: rev}) {
			return nil
		}
	}
	return it.Error()
}

func (h *Host) getLocal(p meta.Partition, key []byte) response {
	v, closer, err := h.db.Get(dataKey(p, key))
	if errors.Is(err, pebble.ErrNotFound) {
		return response{status: stNotFound}
	}
	if err != nil {
		return errResponse(err)
	}
	defer closer.Close()
	rev, val, err := decodeItem(v)
	if err != nil {
		return errResponse(err)
	}
	return response{rev: rev, value: bytes.Clone(val)}
}

// retry serves q here if this host leads its group, else forwards it, and
// tries again while no leader is found, until ctx ends.
func (h *Host) retry(ctx context.Context, q *request) response {
	return h.retryWith(ctx, q, nil)
}

// retryWith is retry with local serving the request when this host leads
// the group (nil: serveLocal).
func (h *Host) retryWith(ctx context.Context, q *request, local func(*group) response) response {
	ctx, stop := h.watch(ctx, q.p)
	defer stop()
	if local == nil {
		local = func(g *group) response { return h.serveLocal(ctx, g, q) }
	}
	for attempt := 0; ; attempt++ {
		if resp, ok := h.movedHere(q); ok {
			return resp
		}
		if attempt > 0 {
			// Not before a first try: a stale view of the group's
			// voters must not refuse what a live quorum would serve.
			if err := h.cutOff(q.p, h.ticks.Load()); err != nil {
				return response{status: stUnavailable, msg: err.Error()}
			}
		}
		var resp response
		g := h.group(q.p)
		if g != nil && g.leader.Load() {
			resp = local(g)
		} else {
			resp = h.forward(ctx, q, g, attempt)
			if (resp.status == stRetry || resp.status == stUnavailable) && g != nil {
				// The leader this replica knows may be gone while
				// the group is quiesced: let it time out and elect.
				g.wake()
			}
		}
		if r, ok := cutOffResponse(ctx); ok && (resp.status == stRetry || resp.status == stUnavailable) {
			return r
		}
		if resp.status != stRetry {
			return resp
		}
		// No leader yet (an election is under way, or this side has no
		// quorum): look again shortly, unless the deadline comes first.
		wait, last := untilDeadline(ctx, h.cfg.TickInterval)
		if last {
			return response{status: stUnavailable, msg: "no leader within the timeout: " + resp.msg}
		}
		select {
		case <-ctx.Done():
			if r, ok := cutOffResponse(ctx); ok {
				return r
			}
			return response{status: stUnavailable, msg: "no leader within the timeout: " + resp.msg}
		case <-h.done:
			return errResponse(ErrClosed)
		case <-h.cfg.After.Wait(wait, "retry"):
		}
	}
}

// withTimeout is context.WithTimeout, except that when ctx's deadline
// comes no later than d from now the result keeps it, with no timer of
// its own. The standard library makes a second timer when the two
// deadlines are equal, as a caller's 5 s and a proposal's 5 s started at
// one instant are on a fake clock; the two then fire together, and the
// Go scheduler picks which context a goroutine sees ended first (the
// caller's next call is made or refused): one seed of the cluster
// simulation ran two ways (TestSimulationReplays, seed
// 11813951673815376795).
func withTimeout(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	if dl, ok := ctx.Deadline(); ok && !dl.After(time.Now().Add(d)) {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, d)
}

// untilDeadline bounds a wait of d by ctx's deadline: it returns how long
// to wait, and whether the deadline ends the wait. A caller waits on one
// timer for both: had it a timer of d and the deadline, both due at one
// instant (as a retry every tick and a timeout of whole ticks are, on a
// fake clock), the Go scheduler would pick which ends the wait, and one
// seed of the cluster simulation would run two ways
// (TestSimulationReplays).
func untilDeadline(ctx context.Context, d time.Duration) (time.Duration, bool) {
	if dl, ok := ctx.Deadline(); ok {
		if left := time.Until(dl); left <= d {
			return max(left, 0), true
		}
	}
	return d, false
}

// forward sends q to the leader g knows, or else to one of the group's
// members in turn.
func (h *Host) forward(ctx context.Context, q *request, g *group, attempt int) response {
	to, none := h.forwardTarget(q.p, g, attempt)
	if to == 0 {
		return none
	}
	fq := *q
	fq.hops++
	raw, err := h.cfg.Forward.Forward(ctx, to, encodeRequest(&fq))
	if err != nil {
		if errors.Is(err, ErrNotDelivered) || q.op != opCommit {
			return response{status: stRetry, msg: err.Error()}
		}
		return response{status: stUnavailable, msg: fmt.Sprintf("forward to %d: %v", to, err)}
	}
	resp, err := decodeResponse(raw)
	if err != nil {
		if q.op != opCommit {
			return response{status: stRetry, msg: err.Error()}
		}
		return response{status: stUnavailable, msg: err.Error()}
	}
	if resp.status == stMoved {
		h.learnMoved(q.p, resp.moved())
	}
	return resp
}

// forwardTarget picks the node to ask about group p: the leader g knows
// on even attempts, else (and on odd attempts) a member, by attempt. A
// host outside the group, or one cut off from it, may know a leader that
// has died: alternating lets a retry reach a member that knows the new
// one. With no one to ask it returns 0 and the response to give.
func (h *Host) forwardTarget(p meta.Partition, g *group, attempt int) (uint64, response) {
	var to uint64
	if g != nil {
		to = g.lead.Load()
	}
	haveLead := to != 0 && to != h.cfg.NodeID
	if haveLead && attempt%2 == 0 {
		return to, response{}
	}
	var members []uint64
	h.mu.Lock()
	known := h.mu.members[p]
	if parent, ok := h.mu.parents[p]; ok && len(known) == 0 && g == nil {
		// A child of a split this host knows of, but not its members:
		// its parent's were its first.
		known = h.mu.members[parent]
	}
	for _, id := range known {
		if id != h.cfg.NodeID {
			members = append(members, id)
		}
	}
	h.mu.Unlock()
	if g != nil {
		for _, id := range *g.voters.Load() {
			if id != h.cfg.NodeID && !containsID(members, id) {
				members = append(members, id)
			}
		}
	}
	if len(members) == 0 {
		if g == nil {
			// Not yet told about the group (a layout it has not applied
			// yet): like a group without a leader, worth a retry, and
			// unavailable (503) if it lasts.
			return 0, response{status: stRetry, msg: fmt.Sprintf("%v %s", ErrNoGroup, partitionName(p))}
		}
		return 0, response{status: stRetry, msg: "no leader known"}
	}
	if haveLead {
		attempt /= 2
	}
	return members[attempt%len(members)], response{}
}

func containsID(ids []uint64, id uint64) bool {
	for _, x := range ids {
		if x == id {
			return true
		}
	}
	return false
}

// HandleForward serves a request another host forwarded here, and returns
// the response to send back. It answers at most Config.MaxHops hops from
// the origin; the origin retries requests that found no leader.
func (h *Host) HandleForward(ctx context.Context, req []byte) ([]byte, error) {
	q, err := decodeRequest(req)
	if err != nil {
		return nil, err
	}
	if err := h.enter(); err != nil {
		return nil, err
	}
	defer h.closeMu.RUnlock()
	ctx, cancel := withTimeout(ctx, h.cfg.ProposalTimeout)
	defer cancel()
	if q.op == opRanges {
		rr := h.serveRanges(ctx, &q)
		return encodeRangesResponse(&rr), nil
	}
	if q.op == opChunk {
		resp := h.receiveChunk(q.p, &q.chunk)
		return encodeResponse(&resp), nil
	}
	if resp, ok := h.movedHere(&q); ok {
		return encodeResponse(&resp), nil
	}
	var resp response
	g := h.group(q.p)
	switch {
	case g != nil && g.leader.Load():
		resp = h.serveLocal(ctx, g, &q)
	case g != nil && int(q.hops) < h.cfg.MaxHops && g.lead.Load() != 0 && g.lead.Load() != h.cfg.NodeID:
		resp = h.forward(ctx, &q, g, 0)
	default:
		resp = response{status: stRetry, msg: fmt.Sprintf("node %d knows no leader of %s", h.cfg.NodeID, partitionName(q.p))}
	}
	return encodeResponse(&resp), nil
}

// serveLocal serves q at g, whose leader this host is (or was a moment ago).
func (h *Host) serveLocal(ctx context.Context, g *group, q *request) response {
	switch q.op {
	case opCommit:
		id := h.newID()
		data := encodeProposal(&proposal{node: h.cfg.NodeID, id: id, txn: q.txn})
		res, err := h.propose(ctx, g, id, func() error { return g.rn.Propose(data) })
		if err != nil {
			return errResponse(err)
		}
		if res.err != nil {
			return errResponse(res.err)
		}
		return response{rev: res.rev}
	case opGet:
		if err := h.readIndex(ctx, g); err != nil {
			return errResponse(err)
		}
		resp := h.getLocal(g.p, q.key)
		if !h.holds(g) {
			return replacedMeanwhile(g)
		}
		return resp
	case opScan:
		if err := h.readIndex(ctx, g); err != nil {
			return errResponse(err)
		}
		it, held, err := h.iterHeld(g, q.key, q.end)
		if err != nil {
			return errResponse(err)
		}
		if !held {
			return replacedMeanwhile(g)
		}
		defer it.Close()
		var resp response
		size := 0
		err = forEachItem(it, func(k []byte, it meta.Item) bool {
			if size > 0 && size+len(k)+len(it.Value)+16 > int(q.maxBytes) {
				resp.more = true
				return false
			}
			size += len(k) + len(it.Value) + 16
			resp.items = append(resp.items, snapItem{key: bytes.Clone(k), rev: it.Rev, value: bytes.Clone(it.Value)})
			return true
		})
		if err != nil {
			return errResponse(err)
		}
		return resp
	case opGetMany:
		if err := h.readIndex(ctx, g); err != nil {
			return errResponse(err)
		}
		items, at, ok, err := h.readMany(g, q.reads, 0)
		if err != nil {
			return errResponse(err)
		}
		if ok && !h.holds(g) {
			return replacedMeanwhile(g)
		}
		if !ok {
			return response{status: stRetry, msg: fmt.Sprintf("node %d holds no copy of %s", h.cfg.NodeID, partitionName(g.p))}
		}
		return response{rev: at, items: items}
	case opSplit:
		id := h.newID()
		data := encodeProposal(&proposal{node: h.cfg.NodeID, id: id, split: &q.into})
		res, err := h.propose(ctx, g, id, func() error { return g.rn.Propose(data) })
		if err != nil {
			return errResponse(err)
		}
		if res.err != nil {
			return errResponse(res.err)
		}
		return response{rev: res.rev}
	case opConf:
		id := h.newID()
		g.mu.Lock()
		cc, err := h.confChange(g, q.change, q.node, id)
		g.mu.Unlock()
		if errors.Is(err, errNotMember) {
			return response{} // nothing to remove
		}
		if err != nil {
			return errResponse(err)
		}
		res, err := h.propose(ctx, g, id, func() error { return g.rn.ProposeConfChange(cc) })
		if err != nil {
			return errResponse(err)
		}
		if errors.Is(res.err, errConfRefused) {
			// Refused by every replica, changing nothing (it was made on
			// a replica set a change since made stale): safe to send again.
			return response{status: stRetry, msg: res.err.Error()}
		}
		if res.err != nil {
			return errResponse(res.err)
		}
		return response{rev: res.rev}
	case opReplica:
		if err := h.readIndex(ctx, g); err != nil {
			return errResponse(err)
		}
		member := byte(0)
		if _, ok := g.set.Load().get(q.node); ok {
			member = 1
		}
		return response{rev: g.applied.Load(), value: []byte{member}}
	}
	return errResponse(fmt.Errorf("raftmeta: unknown op %d", q.op))
}

// errNotMember: a node to remove has no replica in the group.
var errNotMember = errors.New("raftmeta: node is no member")

// confChange is the configuration change, proposed by this host as
// proposal id, that does to node what change asks: to its member replica
// if it has one, else, for an addition, to a new replica with an ID and
// generation the group never gave (replicaSet.alloc), which every
// replica checks again when it applies the change. g.mu is held.
func (h *Host) confChange(g *group, change raftpb.ConfChangeType, node, id uint64) (*raftpb.ConfChangeV2, error) {
	set := g.set.Load()
	r, member := set.ofNode(node)
	switch change {
	case raftpb.ConfChangeType_ConfChangeAddNode, raftpb.ConfChangeType_ConfChangeAddLearnerNode:
		if !member {
			var err error
			if r, err = set.alloc(node); err != nil {
				return nil, fmt.Errorf("raftmeta: group %s: %w", g.name, err)
			}
		}
	case raftpb.ConfChangeType_ConfChangeRemoveNode:
		if !member {
			return nil, errNotMember
		}
	default:
		return nil, fmt.Errorf("raftmeta: configuration change %v is not used", change)
	}
	return &raftpb.ConfChangeV2{
		Changes: []*raftpb.ConfChangeSingle{{Type: new(change), NodeId: new(r.id)}},
		Context: encodeConfContext(h.cfg.NodeID, id, r),
	}, nil
}

// register makes a channel for the result of proposal id, which this
// host proposes; unregister forgets it.
func (h *Host) register(id uint64) chan result {
	ch := make(chan result, 1)
	h.waitMu.Lock()
	h.props[id] = ch
	h.waitMu.Unlock()
	return ch
}

func (h *Host) unregister(id uint64) {
	h.waitMu.Lock()
	delete(h.props, id)
	h.waitMu.Unlock()
}

// propose hands an entry to g's leader and waits for the result of its
// application here.
func (h *Host) propose(ctx context.Context, g *group, id uint64, prop func() error) (result, error) {
	ch := h.register(id)
	defer h.unregister(id)
	g.mu.Lock()
	g.wake()
	err := prop()
	g.mu.Unlock()
	if err != nil {
		// Dropped: not in the log, so safe to send again.
		return result{}, fmt.Errorf("%w: %v", errNoLeader, err)
	}
	h.markDirty(g)
	select {
	case r := <-ch:
		return r, nil
	case <-ctx.Done():
		return result{}, unavailable("commit not applied in time; it may apply later", ctx.Err())
	case <-h.done:
		return result{}, unavailable("commit", ErrClosed)
	}
}

// readIndex waits until this host, as leader of g, may serve a
// linearizable read: raft confirmed leadership with a quorum after the
// read began, and everything committed by then is applied here.
func (h *Host) readIndex(ctx context.Context, g *group) error {
	return h.readIndexAll(ctx, []*group{g})[0]
}

// readIndexAll is readIndex for many groups at once: every read is asked
// of raft before any is waited for, so their quorum rounds overlap (and
// share the per-peer message batches of one cycle). It returns one error
// per group; errNoLeader means that this host no longer leads it.
func (h *Host) readIndexAll(ctx context.Context, gs []*group) []error {
	errs := make([]error, len(gs))
	election := time.Duration(2*h.cfg.ElectionTicks) * h.cfg.TickInterval
	pending := make([]int, len(gs))
	for j := range pending {
		pending[j] = j
	}
	chs := make([]chan struct{}, len(gs))
	ids := make([]uint64, len(gs))
	// A group with a read to confirm does not quiesce: raft repeats the
	// read's heartbeat at each tick until a quorum answers it.
	for _, g := range gs {
		g.reading.Add(1)
	}
	defer func() {
		for _, g := range gs {
			g.reading.Add(-1)
		}
	}()
	for len(pending) > 0 {
		h.waitMu.Lock()
		for _, j := range pending {
			ids[j], chs[j] = h.newID(), make(chan struct{})
			h.reads[ids[j]] = chs[j]
		}
		h.waitMu.Unlock()
		for _, j := range pending {
			g := gs[j]
			g.mu.Lock()
			g.wake()
			g.rn.ReadIndex(binary.BigEndian.AppendUint64(nil, ids[j]))
			g.mu.Unlock()
			h.markDirty(g)
		}
		wait, last := untilDeadline(ctx, election)
		expired := h.cfg.After.Wait(wait, "read confirmation")
		var fatal error
		timedOut := false
		for _, j := range pending {
			if timedOut || fatal != nil {
				break
			}
			select {
			case <-chs[j]:
			case <-ctx.Done():
				fatal = unavailable("read not confirmed in time", ctx.Err())
			case <-h.done:
				fatal = unavailable("read", ErrClosed)
			case <-expired:
				if last {
					fatal = unavailable("read not confirmed in time", context.DeadlineExceeded)
					break
				}
				// Raft drops read requests when leadership changes; ask
				// again where still leader, else let the caller find the
				// new one.
				timedOut = true
			}
		}
		h.waitMu.Lock()
		for _, j := range pending {
			delete(h.reads, ids[j])
		}
		h.waitMu.Unlock()
		again := pending[:0]
		for _, j := range pending {
			select {
			case <-chs[j]:
				continue // confirmed, even if late
			default:
			}
			switch {
			case fatal != nil:
				errs[j] = fatal
			case ctx.Err() != nil:
				errs[j] = unavailable("read", ctx.Err())
			case !gs[j].leader.Load():
				errs[j] = errNoLeader
			default:
				again = append(again, j)
			}
		}
		pending = again
	}
	for j, g := range gs {
		if errs[j] == nil && g.split.Load() != nil {
			// The group split before the read's index: it is served no
			// more, and the caller, trying again, learns where its keys
			// went.
			errs[j] = errNoLeader
		}
	}
	return errs
}

func errResponse(err error) response {
	if me := (*movedError)(nil); errors.As(err, &me) {
		return movedResponse(me.p, &splitRec{into: me.into, index: me.index})
	}
	switch {
	case errors.Is(err, meta.ErrNotFound):
		return response{status: stNotFound}
	case errors.Is(err, meta.ErrConflict):
		return response{status: stConflict}
	case errors.Is(err, errNoLeader):
		return response{status: stRetry, msg: err.Error()}
	case errors.Is(err, meta.ErrUnavailable):
		return response{status: stUnavailable, msg: err.Error()}
	case errors.Is(err, meta.ErrCorrupt):
		return response{status: stCorrupt, msg: err.Error()}
	}
	return response{status: stError, msg: err.Error()}
}

// err is the error a response stands for.
func (s *response) err() error {
	switch s.status {
	case stOK:
		return nil
	case stNotFound:
		return meta.ErrNotFound
	case stConflict:
		return meta.ErrConflict
	case stUnavailable, stRetry:
		return fmt.Errorf("raftmeta: %s: %w", s.msg, meta.ErrUnavailable)
	case stCorrupt:
		return fmt.Errorf("raftmeta: %s: %w", s.msg, meta.ErrCorrupt)
	case stMoved:
		return s.moved()
	}
	return fmt.Errorf("raftmeta: %s", s.msg)
}

// AddVoter makes node id a voter of group p: its learner replica is
// promoted, or, if it has none, a new replica is added for it. The node
// needs nothing started for the group: the leader's messages make its
// replica, and a snapshot fills it. One change at a time: a change
// proposed while another is in flight is refused by raft and this call
// fails with meta.ErrUnavailable when ProposalTimeout passes.
func (h *Host) AddVoter(ctx context.Context, p meta.Partition, id uint64) error {
	return h.changeConf(ctx, p, raftpb.ConfChangeType_ConfChangeAddNode, id)
}

// AddLearner makes node id a non-voting member of group p: a voter of it
// is demoted, else a new replica is added for it (see AddVoter).
func (h *Host) AddLearner(ctx context.Context, p meta.Partition, id uint64) error {
	return h.changeConf(ctx, p, raftpb.ConfChangeType_ConfChangeAddLearnerNode, id)
}

// RemoveVoter removes node id's replica from group p (nothing to do if it
// has none); that node deletes its replica once it applies its removal,
// or, if it never hears of it, once p's leader confirms it is no member
// (Config.ReplicaCheckInterval). Adding the node again makes a new
// replica.
func (h *Host) RemoveVoter(ctx context.Context, p meta.Partition, id uint64) error {
	return h.changeConf(ctx, p, raftpb.ConfChangeType_ConfChangeRemoveNode, id)
}

func (h *Host) changeConf(ctx context.Context, p meta.Partition, t raftpb.ConfChangeType, id uint64) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if id == 0 {
		return errors.New("raftmeta: node ID 0")
	}
	ctx, cancel := withTimeout(ctx, h.cfg.ProposalTimeout)
	defer cancel()
	resp := h.retry(ctx, &request{op: opConf, p: p, change: t, node: id})
	return resp.err()
}

var _ meta.StaleGetter = (*Host)(nil)

// GetStale implements meta.StaleGetter: from this host's own replica of
// the group when it has one, whatever its role and without a ReadIndex
// round, so the value may lag the latest commit; otherwise a linearizable
// Get at the leader.
func (h *Host) GetStale(ctx context.Context, p meta.Partition, key []byte) (meta.Item, error) {
	if err := ctx.Err(); err != nil {
		return meta.Item{}, err
	}
	if g := h.group(p); g != nil {
		if err := h.enter(); err != nil {
			return meta.Item{}, err
		}
		resp := h.getLocal(p, key)
		h.closeMu.RUnlock()
		if err := resp.err(); err != nil {
			return meta.Item{}, err
		}
		return meta.Item{Value: resp.value, Rev: resp.rev}, nil
	}
	return h.Get(ctx, p, key)
}

var _ meta.ManyGetter = (*Host)(nil)

// GetMany implements meta.ManyGetter. A linearizable read is served by the
// group's leader like Get: one ReadIndex round, then every read from one
// view (readMany). A stale read, or one with o.After, is served by this
// host's own copy when it hosts the group and, for After, has applied up
// to After before its view is taken; otherwise it is a linearizable read.
// at bounds from above the applied index of the view read.
func (h *Host) GetMany(ctx context.Context, p meta.Partition, reads []meta.Read, o meta.ReadOptions) ([]meta.Item, uint64, error) {
	if err := ctx.Err(); err != nil {
		return nil, 0, err
	}
	if o.Stale || o.After > 0 {
		if g := h.group(p); g != nil && (o.Stale || g.applied.Load() >= o.After) {
			if err := h.enter(); err != nil {
				return nil, 0, err
			}
			items, at, ok, err := h.readMany(g, reads, o.After)
			h.closeMu.RUnlock()
			if err != nil {
				return nil, 0, err
			}
			if ok {
				return itemsOf(reads, items), at, nil
			}
		}
	}
	ctx, cancel := withTimeout(ctx, h.cfg.ProposalTimeout)
	defer cancel()
	resp := h.retry(ctx, &request{op: opGetMany, p: p, reads: reads})
	if err := resp.err(); err != nil {
		return nil, 0, err
	}
	if len(resp.items) != len(reads) {
		return nil, 0, corrupt(fmt.Sprintf("%d items for %d reads", len(resp.items), len(reads)))
	}
	return itemsOf(reads, resp.items), resp.rev, nil
}

func itemsOf(reads []meta.Read, its []snapItem) []meta.Item {
	out := make([]meta.Item, len(its))
	for i, it := range its {
		if it.rev != 0 {
			out[i] = meta.Item{Value: it.value, Rev: it.rev}
			if reads[i].First {
				out[i].Key = it.key
			}
		}
	}
	return out
}

// readMany answers reads from this host's copy of group g, all from one
// view, if that copy has applied at least min (ok false otherwise, and
// when the copy is being deleted): Hot reads from g.hot where it holds
// them, the rest from one Pebble snapshot (or one Get, for one key). at
// is an index at least that of the view (group.applying), so that a
// later read After at sees all this one saw.
func (h *Host) readMany(g *group, reads []meta.Read, min uint64) (items []snapItem, at uint64, ok bool, err error) {
	if g.applied.Load() < min {
		return nil, 0, false, nil
	}
	out := make([]meta.Item, len(reads))
	if err := g.hot.Read(reads, out, func(which []int) error { return h.readCold(g.p, reads, which, out) }); err != nil {
		return nil, 0, false, err
	}
	at = g.applying.Load()
	if g.gone.Load() {
		return nil, 0, false, nil // deleted meanwhile
	}
	items = make([]snapItem, len(reads))
	for i, it := range out {
		items[i] = snapItem{key: reads[i].Key, rev: it.Rev, value: it.Value}
		if reads[i].First {
			items[i].key = it.Key
		}
	}
	return items, at, true, nil
}

// readCold answers reads[i] for each i of which into out[i], from one
// view of group p's data: a Get for one key, else a Pebble snapshot.
func (h *Host) readCold(p meta.Partition, reads []meta.Read, which []int, out []meta.Item) error {
	if len(which) == 0 {
		return nil
	}
	var r pebble.Reader = h.db
	if len(which) > 1 || reads[which[0]].First {
		snap := h.db.NewSnapshot()
		defer snap.Close()
		r = snap
	}
	for _, i := range which {
		var err error
		if out[i], err = readOne(r, p, reads[i]); err != nil {
			return err
		}
	}
	return nil
}

// readOne answers one read from snap: the item at its key, or the first
// under it as a prefix (Item.Key set). An absent item is the zero Item.
func readOne(snap pebble.Reader, p meta.Partition, rd meta.Read) (meta.Item, error) {
	var k, v []byte
	if rd.First {
		lower, upper := dataBounds(p, rd.Key, meta.PrefixEnd(rd.Key))
		iter, err := snap.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
		if err != nil {
			return meta.Item{}, err
		}
		defer iter.Close()
		if !iter.First() {
			return meta.Item{}, iter.Error()
		}
		if v, err = iter.ValueAndErr(); err != nil {
			return meta.Item{}, err
		}
		k = iter.Key()[dataKeyHeader:]
	} else {
		var closer io.Closer
		var err error
		v, closer, err = snap.Get(dataKey(p, rd.Key))
		if errors.Is(err, pebble.ErrNotFound) {
			return meta.Item{}, nil
		}
		if err != nil {
			return meta.Item{}, err
		}
		defer closer.Close()
	}
	rev, val, err := decodeItem(v)
	if err != nil {
		return meta.Item{}, err
	}
	it := meta.Item{Value: bytes.Clone(val), Rev: rev}
	if rd.First {
		it.Key = bytes.Clone(k)
	}
	return it, nil
}
