package cluster

import (
	"context"
	"slices"
	"time"

	"github.com/redoubt-io/redoubt/internal/admin"
	"github.com/redoubt-io/redoubt/internal/records"
)

// Records is the node's store of available buckets' records; nil when
// Config.AntiEntropy is 0.
func (c *Cluster) Records() *records.Store { return c.records }

// AntiEntropyStats is what one pass of SyncRecords did.
type AntiEntropyStats struct {
	Pairs         int // (partition, peer) pairs compared
	Differed      int // pairs whose trees differed
	Fetched, Sent int // records copied in, and out
	Failed        int // pairs whose Sync failed (a peer unreachable, say)
}

// syncTimeout bounds one Sync with one peer.
const syncTimeout = 30 * time.Second

// SyncRecords compares this node's records of every metadata partition it
// replicates, by the current layout, with every other replica's, and
// copies what either side lacks. A peer that fails is counted and left
// for the next pass.
func (c *Cluster) SyncRecords(ctx context.Context) AntiEntropyStats {
	var st AntiEntropyStats
	l := c.Layout()
	if l == nil || c.records == nil {
		return st
	}
	self := string(c.nodeID)
	for _, g := range l.Groups() {
		nodes := l.GroupNodes(g)
		if !slices.Contains(nodes, self) {
			continue
		}
		for _, n := range nodes {
			if n == self || ctx.Err() != nil {
				continue
			}
			peer, ok := c.book.byNode(n)
			if !ok {
				st.Failed++
				continue
			}
			st.Pairs++
			cctx, cancel := context.WithTimeout(ctx, syncTimeout)
			s, err := records.Sync(c.records, records.RemotePeer(cctx, c.net, peer), records.Partition(g))
			cancel()
			if err != nil {
				st.Failed++
				c.log.Debug("anti-entropy", "group", g, "peer", n, "err", err)
				continue
			}
			if s.Leaves > 0 {
				st.Differed++
			}
			st.Fetched += s.Fetched
			st.Sent += s.Sent
		}
	}
	return st
}

// runAntiEntropy runs SyncRecords every Config.AntiEntropy.
func (c *Cluster) runAntiEntropy(ctx context.Context) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-c.cfg.After.Wait(c.cfg.AntiEntropy, "anti-entropy"):
		}
		st := c.SyncRecords(ctx)
		c.lastSync.Store(&admin.AntiEntropyStatus{Finished: time.Now(), Pairs: st.Pairs, Differed: st.Differed,
			Failed: st.Failed, Fetched: st.Fetched, Sent: st.Sent})
		if st.Fetched+st.Sent > 0 || st.Failed > 0 {
			c.log.Info("anti-entropy pass", "pairs", st.Pairs, "differed", st.Differed,
				"fetched", st.Fetched, "sent", st.Sent, "failed", st.Failed)
		}
	}
}
