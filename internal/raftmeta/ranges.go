package raftmeta

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"

	"github.com/cockroachdb/pebble/v2"
	"github.com/redoubt-io/redoubt/internal/meta"
)

var _ meta.RangeScanner = (*Host)(nil)

// ScanRanges implements meta.RangeScanner with one round per node rather
// than one per range. Each range goes to the node that leads its group as
// far as this host knows. The groups led here confirm their reads
// together (one ReadIndex each, all in flight at once) and are read
// through one Pebble iterator; every other node gets one request carrying
// all of its ranges, all nodes in parallel, and serves it the same way. A
// node asked for a range it does not lead names the leader it knows, and
// a second round, again one request per node, goes there; the names are
// remembered for later calls. A response holds at most Config.MaxMessage
// bytes; a range cut short there is continued by a further request to the
// same node, together with the node's ranges that did not fit.
//
// Guarantee: every range reflects a state of its partition at least as
// new as the last commit acknowledged before ScanRanges began
// (linearizable per partition). Ranges of different partitions are not
// one snapshot, and a range continued in a later response, or read again
// through Scan, is like a paged Scan: each part is linearizable, later
// parts may show later commits. A range whose leader is still unknown
// after the second round, or whose node did not answer, is read with
// Scan, which finds the leader.
//
// fn sees the keys of each range in order, ranges in ascending i, each key
// once; returning false ends range i. The whole call fails with
// meta.ErrUnavailable if a range's group cannot confirm a read within
// Config.ProposalTimeout; the ranges before it have then been delivered.
func (h *Host) ScanRanges(ctx context.Context, ranges []meta.Range, fn func(i int, key []byte, item meta.Item) bool) error {
	return h.scanRanges(ctx, ranges, nil, fn)
}

// testHookReadsConfirmed, set by tests, runs on a host once the reads of
// the groups it leads are confirmed, before it reads them.
var testHookReadsConfirmed func(h *Host)

// rangeRead is the plan and progress of one range of a ScanRanges.
type rangeRead struct {
	rg    meta.Range
	start []byte // where the part not yet delivered begins
	limit uint64 // keys the caller may still take; 0: no limit
	node  uint64 // the node asked for it; this host when led here
	hint  uint64 // rangeNotLed: the leader node said it has
	state rangeState
	local bool       // read here, through the shared iterator
	items []snapItem // from node, not yet delivered
	err   error      // rangeUnavailable: why
}

// scanRanges is ScanRanges where limits (nil, or one per range; 0 is no
// limit) cap the keys the caller will take of each range, so that no node
// reads past them.
func (h *Host) scanRanges(ctx context.Context, ranges []meta.Range, limits []uint64, fn func(i int, key []byte, item meta.Item) bool) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	reads := make([]rangeRead, len(ranges))
	remote := make(map[uint64][]int)
	var led []*group
	ledIdx := make(map[meta.Partition]int)
	for i, rg := range ranges {
		rd := &reads[i]
		rd.rg, rd.start = rg, rg.Start
		if limits != nil {
			rd.limit = limits[i]
		}
		if rg.End != nil && bytes.Compare(rg.Start, rg.End) >= 0 {
			rd.state = rangeDone // empty
			continue
		}
		g := h.group(rg.P)
		if g != nil && g.leader.Load() {
			rd.node, rd.local = h.cfg.NodeID, true
			if _, ok := ledIdx[rg.P]; !ok {
				ledIdx[rg.P] = len(led)
				led = append(led, g)
			}
			continue
		}
		var to uint64
		if g == nil || g.lead.Load() == 0 {
			to = h.hint(rg.P)
		}
		if to == 0 || to == h.cfg.NodeID {
			to, _ = h.forwardTarget(rg.P, g, 0)
		}
		if to == 0 {
			// Nobody to ask: Scan waits for a leader or says why not.
			rd.state = rangeNotLed
			continue
		}
		rd.node = to
		remote[to] = append(remote[to], i)
	}

	pctx, cancel := withTimeout(ctx, h.cfg.ProposalTimeout)
	defer cancel()
	var wg sync.WaitGroup
	// In node order, not the map's: requests sent together must leave in
	// one order for a simulated run to replay (TestSimulationReplays).
	for _, to := range slices.Sorted(maps.Keys(remote)) {
		idx := remote[to]
		wg.Add(1)
		go func() {
			defer wg.Done()
			h.fetchRanges(pctx, to, reads, idx)
		}()
	}
	if len(led) > 0 {
		errs := h.readIndexAll(pctx, led)
		if testHookReadsConfirmed != nil {
			testHookReadsConfirmed(h)
		}
		for i := range reads {
			rd := &reads[i]
			if !rd.local {
				continue
			}
			switch err := errs[ledIdx[rd.rg.P]]; {
			case err == nil:
			case errors.Is(err, errNoLeader):
				rd.local, rd.state = false, rangeNotLed
			default:
				rd.local, rd.state, rd.err = false, rangeUnavailable, err
			}
		}
	}
	wg.Wait()
	// Ranges sent to a node that does not lead them but knows who does
	// (this host had no replica of the group, or a stale leader): one more
	// round, again one request per node, before Scan.
	again := make(map[uint64][]int)
	for i := range reads {
		rd := &reads[i]
		if rd.state == rangeNotLed && rd.hint != 0 && rd.hint != rd.node && rd.hint != h.cfg.NodeID {
			rd.node = rd.hint
			again[rd.hint] = append(again[rd.hint], i)
		}
	}
	for _, to := range slices.Sorted(maps.Keys(again)) {
		idx := again[to]
		wg.Add(1)
		go func() {
			defer wg.Done()
			h.fetchRanges(pctx, to, reads, idx)
		}()
	}
	wg.Wait()
	cancel()

	// Every read is confirmed: an iterator opened now sees at least what
	// they must see, of the replicas still held once it is open (see
	// iterHeld); a range of one deleted or replaced meanwhile is read
	// again through Scan.
	var it *pebble.Iterator
	defer func() {
		if it != nil {
			_ = it.Close()
		}
	}()
	if len(led) > 0 {
		var err error
		if it, err = h.db.NewIter(nil); err != nil {
			return err
		}
		for i := range reads {
			if rd := &reads[i]; rd.local && !h.holds(led[ledIdx[rd.rg.P]]) {
				rd.local, rd.state = false, rangeNotLed
			}
		}
	}
	for i := range reads {
		rd := &reads[i]
		if err := ctx.Err(); err != nil {
			return err
		}
		take := func(k []byte, item meta.Item) bool {
			if !fn(i, k, item) {
				return false
			}
			if rd.limit > 0 {
				rd.limit--
				return rd.limit > 0
			}
			return true
		}
		if rd.local {
			if err := readRange(it, rd.rg.P, rd.start, rd.rg.End, take); err != nil {
				return err
			}
			continue
		}
		for {
			if rd.state == rangeUnavailable {
				return rd.err
			}
			if rd.state == rangeNotLed {
				if err := h.Scan(ctx, rd.rg.P, rd.start, rd.rg.End, take); err != nil {
					return err
				}
				break
			}
			stopped := false
			for _, item := range rd.items {
				if !take(item.key, meta.Item{Value: item.value, Rev: item.rev}) {
					stopped = true
					break
				}
			}
			if stopped || rd.state == rangeDone {
				break
			}
			// rangeMore: ask rd.node for the rest, with its other ranges
			// that did not fit.
			if n := len(rd.items); n > 0 {
				rd.start = append(bytes.Clone(rd.items[n-1].key), 0)
			}
			var idx []int
			for j := i; j < len(reads); j++ {
				if reads[j].node == rd.node && !reads[j].local && reads[j].state == rangeMore {
					idx = append(idx, j)
				}
			}
			fctx, cancel := withTimeout(ctx, h.cfg.ProposalTimeout)
			h.fetchRanges(fctx, rd.node, reads, idx)
			cancel()
		}
		rd.items = nil
	}
	return nil
}

// fetchRanges asks node to for reads[idx...] in one request and records
// what it answered in them. A request that fails makes every range of it
// rangeNotLed, for Scan to read, unless ctx has run out.
func (h *Host) fetchRanges(ctx context.Context, to uint64, reads []rangeRead, idx []int) {
	q := request{op: opRanges, hops: 1, maxBytes: uint32(h.cfg.MaxMessage), ranges: make([]scanRange, len(idx))}
	for j, i := range idx {
		rd := &reads[i]
		q.ranges[j] = scanRange{p: rd.rg.P, start: rd.start, end: rd.rg.End, limit: rd.limit}
	}
	raw, err := h.cfg.Forward.Forward(ctx, to, encodeRequest(&q))
	var resp rangesResponse
	if err == nil {
		resp, err = decodeRangesResponse(raw)
	}
	switch {
	case err != nil:
	case len(resp.ranges) != len(idx):
		err = fmt.Errorf("%d ranges answered of %d", len(resp.ranges), len(idx))
	case resp.status != stOK:
		err = fmt.Errorf("status %d: %s", resp.status, resp.msg)
	}
	if err != nil {
		state, rerr := rangeNotLed, error(nil)
		if ctx.Err() != nil {
			// Scan would wait as long again, once per range.
			state, rerr = rangeUnavailable, unavailable(fmt.Sprintf("ranges from node %d", to), err)
		} else {
			h.log.Debug("ranges not served; reading them one by one", "node", to, "err", err)
		}
		for _, i := range idx {
			reads[i].state, reads[i].items, reads[i].err = state, nil, rerr
		}
		return
	}
	for j, i := range idx {
		rr := &resp.ranges[j]
		rd := &reads[i]
		rd.state, rd.items, rd.hint = rr.state, rr.items, rr.leader
		switch rr.state {
		case rangeUnavailable:
			rd.err = fmt.Errorf("raftmeta: node %d: %s: %w", to, resp.msg, meta.ErrUnavailable)
		case rangeNotLed:
			h.setHint(rd.rg.P, to, rr.leader)
		default:
			h.setHint(rd.rg.P, 0, to)
		}
	}
}

// hint returns the leader of p that ScanRanges last heard of, or 0.
func (h *Host) hint(p meta.Partition) uint64 {
	h.hintMu.Lock()
	defer h.hintMu.Unlock()
	return h.hints[p]
}

// setHint records that lead leads p (0: unknown), as node from (0: lead
// itself) said; a hint from elsewhere is kept over from's "unknown".
func (h *Host) setHint(p meta.Partition, from, lead uint64) {
	h.hintMu.Lock()
	defer h.hintMu.Unlock()
	switch {
	case lead != 0 && lead != h.cfg.NodeID:
		h.hints[p] = lead
	case h.hints[p] == from || lead == h.cfg.NodeID:
		delete(h.hints, p)
	}
}

// serveRanges serves an opRanges request: the ranges of the groups led
// here, after one batch of read confirmations, through one iterator, up
// to q.maxBytes (at least one item).
func (h *Host) serveRanges(ctx context.Context, q *request) rangesResponse {
	resp := rangesResponse{ranges: make([]rangeResult, len(q.ranges))}
	budget := int(q.maxBytes)
	if budget <= 0 || budget > h.cfg.MaxMessage {
		budget = h.cfg.MaxMessage
	}
	var led []*group
	ledIdx := make(map[meta.Partition]int)
	leaderOf := func(g *group) uint64 {
		if g == nil || g.lead.Load() == h.cfg.NodeID {
			return 0
		}
		return g.lead.Load()
	}
	gs := make([]*group, len(q.ranges))
	for j, rg := range q.ranges {
		g := h.group(rg.p)
		gs[j] = g
		if g == nil || !g.leader.Load() {
			resp.ranges[j].state, resp.ranges[j].leader = rangeNotLed, leaderOf(g)
			continue
		}
		if _, ok := ledIdx[rg.p]; !ok {
			ledIdx[rg.p] = len(led)
			led = append(led, g)
		}
	}
	errs := h.readIndexAll(ctx, led)
	if testHookReadsConfirmed != nil && len(led) > 0 {
		testHookReadsConfirmed(h)
	}
	// One iterator for every range, opened once the reads are confirmed;
	// a range whose replica was deleted or replaced meanwhile is not led
	// here any more (see iterHeld).
	var it *pebble.Iterator
	defer func() {
		if it != nil {
			_ = it.Close()
		}
	}()
	if len(led) > 0 {
		var err error
		if it, err = h.db.NewIter(nil); err != nil {
			return rangesResponse{status: stError, msg: err.Error()}
		}
		for i, g := range led {
			if errs[i] == nil && !h.holds(g) {
				errs[i] = errNoLeader
			}
		}
	}
	size, full := 0, false
	for j, rg := range q.ranges {
		rr := &resp.ranges[j]
		if rr.state == rangeNotLed {
			continue
		}
		if err := errs[ledIdx[rg.p]]; err != nil {
			if errors.Is(err, errNoLeader) {
				rr.state, rr.leader = rangeNotLed, leaderOf(gs[j])
			} else {
				rr.state = rangeUnavailable
				if resp.msg == "" {
					resp.msg = err.Error()
				}
			}
			continue
		}
		if full {
			rr.state = rangeMore
			continue
		}
		err := readRange(it, rg.p, rg.start, rg.end, func(k []byte, item meta.Item) bool {
			n := len(k) + len(item.Value) + 16
			if size > 0 && size+n > budget {
				full, rr.state = true, rangeMore
				return false
			}
			size += n
			rr.items = append(rr.items, snapItem{key: bytes.Clone(k), rev: item.Rev, value: bytes.Clone(item.Value)})
			return rg.limit == 0 || uint64(len(rr.items)) < rg.limit
		})
		if err != nil {
			return rangesResponse{status: stError, msg: err.Error()}
		}
	}
	return resp
}

// readRange reads this host's copy of p's items in [start, end) through
// it, re-bounded: one iterator serves many ranges, which is far cheaper
// than opening one per range.
func readRange(it *pebble.Iterator, p meta.Partition, start, end []byte, fn func(key []byte, item meta.Item) bool) error {
	if end != nil && bytes.Compare(start, end) >= 0 {
		return nil
	}
	it.SetBounds(dataBounds(p, start, end))
	return forEachItem(it, fn)
}
