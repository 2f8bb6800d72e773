package cluster

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/redoubt-io/redoubt/internal/records"
)

// Another site (a cluster linked with this one, package sites) Syncs the
// records of buckets replicated to sites with this cluster's, one
// partition at a time, through any node: the node answers with a replica
// of the partition (SiteRecords). The site's Syncs run on the partitions'
// first live replicas (SitePrimaries), which hand what they fetch to the
// other replicas within a second (SpreadRecords).

// SiteRecords answers req, a records request another site makes
// (records.SiteRequest), with this cluster's replicas of its partition:
// a read from the first that answers (this node's store when it is one),
// a write on every replica that answers, answered once one took it.
func (c *Cluster) SiteRecords(ctx context.Context, req []byte) ([]byte, error) {
	q, put, err := records.SiteRequest(req)
	if err != nil {
		return nil, err
	}
	l := c.Layout()
	if l == nil || c.records == nil {
		return nil, errors.New("cluster: no layout yet")
	}
	base := q.Base()
	if int(base) >= l.Partitions {
		return nil, fmt.Errorf("%w: partition %d of %d", records.ErrInvalidRequest, base, l.Partitions)
	}
	self := string(c.nodeID)
	dead := c.deadNodes()
	var calls []func() ([]byte, error)
	for _, n := range l.MetaNodes(int(base)) {
		switch {
		case n == self:
			// Its own store first: no round trip.
			calls = slices.Insert(calls, 0, func() ([]byte, error) { return c.records.Answer(req, time.Now) })
		case !dead[n]:
			if peer, ok := c.book.byNode(n); ok {
				calls = append(calls, func() ([]byte, error) { return c.net.Call(ctx, peer, records.Service, req) })
			}
		}
	}
	if len(calls) == 0 {
		return nil, fmt.Errorf("cluster: partition %d: no replica reachable", base)
	}
	if !put {
		var errs []error
		for _, call := range calls {
			b, err := call()
			if err == nil {
				return b, nil
			}
			errs = append(errs, err)
		}
		return nil, errors.Join(errs...)
	}
	type answer struct {
		b   []byte
		err error
	}
	out := make(chan answer, len(calls))
	for _, call := range calls {
		go func() {
			b, err := call()
			out <- answer{b, err}
		}()
	}
	var errs []error
	for range calls {
		a := <-out
		if a.err == nil {
			return a.b, nil
		}
		errs = append(errs, a.err)
	}
	return nil, errors.Join(errs...)
}

// SitePrimaries are the base partitions whose Syncs with other sites
// this node runs: those it is the first replica of that gossip does not
// hold dead, so that one node of the cluster runs each.
func (c *Cluster) SitePrimaries() []uint32 {
	l := c.Layout()
	if l == nil || c.records == nil {
		return nil
	}
	self := string(c.nodeID)
	dead := c.deadNodes()
	var out []uint32
	for p := range uint32(l.Partitions) {
		for _, n := range l.MetaNodes(int(p)) {
			if dead[n] && n != self {
				continue
			}
			if n == self {
				out = append(out, p)
			}
			break
		}
	}
	return out
}

// SpreadRecords has this node's retries (RetryRecords) Sync records
// partition q with every other replica of it, within about a second:
// for the records another site's Sync brought to this node alone.
func (c *Cluster) SpreadRecords(q records.Partition) {
	l := c.Layout()
	if l == nil {
		return
	}
	self := string(c.nodeID)
	for _, n := range l.MetaNodes(int(q.Base())) {
		if n != self {
			c.entropy.mark(pair{uint32(q), n})
		}
	}
}
