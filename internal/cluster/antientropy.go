package cluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/redoubt-io/redoubt/internal/admin"
	"github.com/redoubt-io/redoubt/internal/membership"
	"github.com/redoubt-io/redoubt/internal/objects"
	"github.com/redoubt-io/redoubt/internal/records"
)

// Records is the node's store of available buckets' records; nil when
// Config.AntiEntropy is 0.
func (c *Cluster) Records() *records.Store { return c.records }

// The records of available buckets (package records) live on the
// metadata nodes of their base partition, in the store's partition of the
// same number. A write whose replicas cannot all be reached leaves hints:
// the same records in the store of another node, in the partition
// hintPart(p), which anti-entropy never compares and which the holder
// hands to p's replicas once they answer (deliverHints), then deletes.

// hintFlag marks a hint partition: base partitions stay far below it.
const hintFlag = 1 << 31

func hintPart(p uint32) records.Partition { return records.Partition(p | hintFlag) }

// hintReplica is a node's store of hints, reached as a replica: the
// records of partition q go to its hint partition hintPart(q).
type hintReplica struct {
	r records.Replica
}

func (h hintReplica) Put(q records.Partition, recs []records.Record) (int, error) {
	return h.r.Put(hintPart(uint32(q)), recs)
}

func (h hintReplica) Records(q records.Partition, key []byte) ([]records.Record, error) {
	return h.r.Records(hintPart(uint32(q)), key)
}

func (h hintReplica) Scan(q records.Partition, from, to []byte, limit int) ([]records.Record, bool, error) {
	return h.r.Scan(hintPart(uint32(q)), from, to, limit)
}

// RecordReplicas is where the records of base partition p are written and
// read (objects.RecordReplicas): its metadata nodes, this node's store
// directly, and as hints every other node this one knows of, itself
// first when it is no replica. Nodes gossip says are dead are left out,
// so that requests do not wait for them; the anti-entropy after they come
// back brings them what they missed. Remote calls are bounded by ctx.
func (c *Cluster) RecordReplicas(ctx context.Context, p uint32) objects.RecordSet {
	var rs objects.RecordSet
	l := c.Layout()
	if l == nil || c.records == nil {
		return rs
	}
	self := string(c.nodeID)
	dead := c.deadNodes()
	replicas := l.MetaNodes(int(p))
	if slices.Contains(replicas, self) {
		rs.Replicas = append(rs.Replicas, c.records)
	} else {
		rs.Own = hintReplica{c.records}
		rs.Hints = append(rs.Hints, rs.Own)
	}
	for _, n := range replicas {
		if n == self || dead[n] {
			continue
		}
		if peer, ok := c.book.byNode(n); ok {
			rs.Replicas = append(rs.Replicas, watched{records.RemotePeer(ctx, c.net, peer), c, n, true})
		}
	}
	for _, n := range l.Nodes {
		if n.ID == self || dead[n.ID] || slices.Contains(replicas, n.ID) {
			continue
		}
		if peer, ok := c.book.byNode(n.ID); ok {
			rs.Hints = append(rs.Hints, hintReplica{watched{records.RemotePeer(ctx, c.net, peer), c, n.ID, false}})
		}
	}
	return rs
}

// deadEvery bounds how often deadNodes asks gossip.
const deadEvery = 200 * time.Millisecond

// deadNodes returns the nodes gossip holds dead or gone, as of at most
// deadEvery ago; none when gossip is off.
func (c *Cluster) deadNodes() map[string]bool {
	d := &c.dead
	d.mu.Lock()
	defer d.mu.Unlock()
	if now := time.Now(); now.Sub(d.at) >= deadEvery {
		d.at = now
		d.nodes = map[string]bool{}
		if g := c.members(); g != nil {
			for _, m := range g.List() {
				if m.State != membership.Alive && m.State != membership.Suspect {
					d.nodes[m.ID] = true
				}
			}
		}
	}
	return d.nodes
}

// deadCache is deadNodes' last answer.
type deadCache struct {
	mu    sync.Mutex
	at    time.Time
	nodes map[string]bool
}

// AntiEntropyStats is what one pass of SyncRecords did.
type AntiEntropyStats struct {
	Pairs         int // (partition, peer) pairs compared
	Differed      int // pairs whose trees differed
	Fetched, Sent int // records copied in, and out
	Failed        int // pairs whose Sync failed (a peer unreachable, say)
	Hinted        int // hint records handed to their replicas
}

// syncTimeout bounds one Sync with one peer.
const syncTimeout = 30 * time.Second

// retryEvery is how often a node tries again the pairs whose last Sync
// failed and the hints it could not deliver, so that a peer that comes
// back is brought up to date within about this long, not at the next
// full pass.
const retryEvery = time.Second

// pair is a records partition (a base partition, or its partition of
// buckets replicated to sites) and a peer anti-entropy compares it with.
type pair struct {
	p    uint32
	node string
}

// syncState is what the retries need: the pairs to Sync again (their
// last Sync failed, or a write one of them missed since), each with when
// it was marked.
type syncState struct {
	mu     sync.Mutex
	failed map[pair]time.Time
}

// mark notes pr to be synced again.
func (s *syncState) mark(pr pair) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failed == nil {
		s.failed = map[pair]time.Time{}
	}
	s.failed[pr] = time.Now()
}

// done forgets pr when nothing marked it since a Sync that began at start
// and succeeded.
func (s *syncState) done(pr pair, start time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if at, ok := s.failed[pr]; ok && at.Before(start) {
		delete(s.failed, pr)
	}
}

func (s *syncState) marked() map[pair]bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[pair]bool, len(s.failed))
	for pr := range s.failed {
		out[pr] = true
	}
	return out
}

// SyncRecords compares this node's records of every base partition it
// replicates, by the current layout, with every other replica's, and
// copies what either side lacks; then it delivers its hints. A peer that
// fails is counted, and tried again every retryEvery (RetryRecords).
func (c *Cluster) SyncRecords(ctx context.Context) AntiEntropyStats {
	return c.syncPairs(ctx, func(pair) bool { return true })
}

// RetryRecords syncs the pairs whose last Sync failed, or that missed a
// write this node made, and delivers the hints, as SyncRecords would.
func (c *Cluster) RetryRecords(ctx context.Context) AntiEntropyStats {
	marked := c.entropy.marked()
	return c.syncPairs(ctx, func(pr pair) bool { return marked[pr] })
}

func (c *Cluster) syncPairs(ctx context.Context, want func(pair) bool) AntiEntropyStats {
	var st AntiEntropyStats
	l := c.Layout()
	if l == nil || c.records == nil {
		return st
	}
	self := string(c.nodeID)
	var todo []pair
	for p := range uint32(l.Partitions) {
		nodes := l.MetaNodes(int(p))
		if !slices.Contains(nodes, self) {
			continue
		}
		for _, n := range nodes {
			for _, q := range []uint32{p, uint32(records.SitePartition(p)), uint32(records.DataPartition(p))} {
				if pr := (pair{q, n}); n != self && want(pr) {
					todo = append(todo, pr)
				}
			}
		}
	}
	// Pairs are compared syncWorkers at a time: one Sync waits mostly on
	// round trips and on its store's fsync.
	var mu sync.Mutex
	work := make(chan pair)
	var wg sync.WaitGroup
	for range min(syncWorkers, len(todo)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for pr := range work {
				start := time.Now()
				s, err := c.syncPair(ctx, pr)
				if err != nil {
					c.entropy.mark(pr)
				} else {
					c.entropy.done(pr, start)
				}
				mu.Lock()
				if err != nil {
					st.Failed++
					c.log.Debug("anti-entropy", "partition", pr.p, "peer", pr.node, "err", err)
				} else {
					st.Pairs++
					if s.Leaves > 0 {
						st.Differed++
					}
					st.Fetched += s.Fetched
					st.Sent += s.Sent
				}
				mu.Unlock()
			}
		}()
	}
	for _, pr := range todo {
		if ctx.Err() != nil {
			break
		}
		work <- pr
	}
	close(work)
	wg.Wait()
	st.Hinted = c.deliverHints(ctx)
	return st
}

// syncWorkers bounds the pairs one pass compares at once.
const syncWorkers = 8

// syncPair Syncs this node's records of partition pr.p with pr.node's.
func (c *Cluster) syncPair(ctx context.Context, pr pair) (records.SyncStats, error) {
	peer, ok := c.book.byNode(pr.node)
	if !ok {
		return records.SyncStats{}, fmt.Errorf("node %s: no address known", pr.node)
	}
	ctx, cancel := context.WithTimeout(ctx, syncTimeout)
	defer cancel()
	st, err := records.Sync(c.records, records.RemotePeer(ctx, c.net, peer), records.Partition(pr.p))
	c.noteClock(pr.node, err)
	return st, err
}

// watched is another node's replica as a request reaches it: its
// refusals of this node's clock are noted (noteClock), and a write it
// missed is not left to the next full anti-entropy pass (missed).
type watched struct {
	records.Replica
	c       *Cluster
	node    string
	replica bool // a replica of the partition, not a hint holder
}

func (w watched) Put(p records.Partition, recs []records.Record) (int, error) {
	n, err := w.Replica.Put(p, recs)
	w.c.noteClock(w.node, err)
	if err != nil && w.replica {
		w.c.missed(uint32(p), w.node, recs)
	}
	return n, err
}

// missed makes sure that records a replica did not take reach it soon
// after it answers again: when this node is a replica of p too, its
// retries Sync p with node (RetryRecords); otherwise it keeps them as a
// hint, which it delivers the same way.
func (c *Cluster) missed(p uint32, node string, recs []records.Record) {
	l := c.Layout()
	if l == nil {
		return
	}
	if slices.Contains(l.MetaNodes(int(records.Partition(p).Base())), string(c.nodeID)) {
		c.entropy.mark(pair{p, node})
		return
	}
	if _, err := c.records.Put(hintPart(p), recs); err != nil {
		c.log.Warn("a write a replica missed is left to anti-entropy: keeping it as a hint failed", "partition", p, "peer", node, "err", err)
	}
}

// clockWarnEvery bounds how often a node logs that its clock is refused.
const clockWarnEvery = 10 * time.Second

// noteClock counts, and logs at most every clockWarnEvery, a refusal of
// records because of a clock ahead: node refused this node's versions
// (its clock runs ahead of node's), or this node left node's versions
// out of a Sync (node's clock runs ahead of this one's).
func (c *Cluster) noteClock(node string, err error) {
	if !errors.Is(err, records.ErrClockAhead) {
		return
	}
	c.clockRefusals.Add(1)
	c.clockWarn.Lock()
	defer c.clockWarn.Unlock()
	if time.Since(c.clockWarn.last) < clockWarnEvery {
		return
	}
	c.clockWarn.last = time.Now()
	c.log.Warn("clocks disagree by more than the maximum offset: versions stamped ahead of a node's clock are kept only where they are until that clock passes them (their writes have fewer copies meanwhile); check that every node runs NTP",
		"peer", node, "max_offset", records.MaxOffset, "err", err)
}

// ClockRefusals counts the records refused, by a peer or by this node,
// for a clock ahead by more than the maximum offset.
func (c *Cluster) ClockRefusals() int64 { return c.clockRefusals.Load() }

// deliverHints hands each hint partition's records to every replica of
// its base partition, and deletes those that all of them took. It returns
// the records delivered.
func (c *Cluster) deliverHints(ctx context.Context) int {
	l := c.Layout()
	if l == nil {
		return 0
	}
	self := string(c.nodeID)
	delivered := 0
	ctx, cancel := context.WithTimeout(ctx, syncTimeout)
	defer cancel()
	for _, hp := range c.records.Partitions() {
		if hp&hintFlag == 0 {
			continue
		}
		p := uint32(hp &^ hintFlag)
		var reps []records.Replica
		for _, n := range l.MetaNodes(int(records.Partition(p).Base())) {
			if n == self {
				reps = append(reps, c.records)
				continue
			}
			peer, ok := c.book.byNode(n)
			if !ok {
				reps = nil
				break
			}
			reps = append(reps, records.RemotePeer(ctx, c.net, peer))
		}
		if len(reps) == 0 {
			continue
		}
		from := []byte{}
		for ctx.Err() == nil {
			recs, more, err := c.records.Scan(hp, from, nil, 1000)
			if err != nil || len(recs) == 0 {
				break
			}
			all := true
			for _, r := range reps {
				if _, err := r.Put(records.Partition(p), recs); err != nil {
					all = false
					c.log.Debug("hints not delivered", "partition", p, "err", err)
					break
				}
			}
			if !all {
				break
			}
			if err := c.records.Delete(hp, recs); err != nil {
				c.log.Warn("delivered hints not deleted", "partition", p, "err", err)
				break
			}
			delivered += len(recs)
			if !more {
				break
			}
			from = append(recs[len(recs)-1].Key, 0)
		}
	}
	return delivered
}

// CountConflicts returns how many keys of the partitions this node
// replicates have more than one head: written concurrently, and not yet
// resolved (objects.Conflict). It reads every record the node holds.
func (c *Cluster) CountConflicts(ctx context.Context) int {
	if c.records == nil {
		return 0
	}
	n := 0
	for _, p := range c.records.Partitions() {
		if p&(hintFlag|records.DataFlag) != 0 {
			continue
		}
		from := []byte{}
		for ctx.Err() == nil {
			recs, more, err := c.records.Scan(p, from, nil, 1000)
			if err != nil || len(recs) == 0 {
				break
			}
			for i := 0; i < len(recs); {
				j := i
				for j < len(recs) && bytes.Equal(recs[j].Key, recs[i].Key) {
					j++
				}
				if len(records.StateOf(recs[i:j]).Heads()) > 1 {
					n++
				}
				i = j
			}
			if !more {
				break
			}
			from = append(recs[len(recs)-1].Key, 0)
		}
	}
	return n
}

// Conflicts is CountConflicts as of the last full anti-entropy pass.
func (c *Cluster) Conflicts() int64 { return c.conflicts.Load() }

// runAntiEntropy runs SyncRecords every Config.AntiEntropy, and
// RetryRecords every retryEvery between.
func (c *Cluster) runAntiEntropy(ctx context.Context) error {
	next := time.Now().Add(c.cfg.AntiEntropy)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-c.cfg.After.Wait(min(retryEvery, c.cfg.AntiEntropy), "anti-entropy"):
		}
		var st AntiEntropyStats
		if !time.Now().Before(next) {
			st = c.SyncRecords(ctx)
			next = time.Now().Add(c.cfg.AntiEntropy)
			c.conflicts.Store(int64(c.CountConflicts(ctx)))
			c.lastSync.Store(&admin.AntiEntropyStatus{Finished: time.Now(), Pairs: st.Pairs, Differed: st.Differed,
				Failed: st.Failed, Fetched: st.Fetched, Sent: st.Sent, Hinted: st.Hinted, ClockRefused: c.ClockRefusals()})
		} else {
			st = c.RetryRecords(ctx)
		}
		if st.Fetched+st.Sent+st.Hinted > 0 || st.Failed > 0 && st.Pairs > 0 {
			c.log.Info("anti-entropy", "pairs", st.Pairs, "differed", st.Differed,
				"fetched", st.Fetched, "sent", st.Sent, "hinted", st.Hinted, "failed", st.Failed)
		}
	}
}
