package node

import (
	"context"
	"time"

	"github.com/redoubt-io/redoubt/internal/records"
)

// resolveEvery is how often a node removes the old heads of conflicts in
// the available buckets that keep them for a while (conflict retention).
const resolveEvery = 10 * time.Minute

// resolveOldConflicts runs objects.Service.ResolveOldConflicts every
// resolveEvery. Every node of a cluster runs it; the removals are by
// version ID, so two nodes doing the same one do it once.
func (n *Node) resolveOldConflicts(ctx context.Context) error {
	log := n.log.With("component", "conflict-retention")
	for {
		removed, err := n.objects.ResolveOldConflicts(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			log.Warn("removing conflicts past their buckets' retention", "removed", removed, "err", err)
		} else if removed > 0 {
			log.Info("removed versions written concurrently, past their buckets' conflict retention", "removed", removed)
		}
		wait := resolveEvery
		if err != nil {
			wait = upkeepRetry
		}
		if !waitUntil(ctx, time.Now().Add(wait)) {
			return nil
		}
	}
}

// respreadEvery is how often a node looks, in the partitions it is the
// first live replica of, for available buckets' bodies written in a
// degraded placement, and rewrites those whose drives are back.
const respreadEvery = 5 * time.Second

// respread runs objects.Service.Respread on this node's partitions every
// respreadEvery, asking the replicas only about those whose data notes
// on this node hold a degraded placement.
func (n *Node) respread(ctx context.Context) error {
	log := n.log.With("component", "respread")
	store := n.cluster.Records()
	for waitUntil(ctx, time.Now().Add(respreadEvery)) {
		for _, p := range n.cluster.SitePrimaries() {
			recs, _, err := store.Scan(records.DataPartition(p), []byte{'r'}, []byte{'s'}, 1)
			if err != nil || len(recs) == 0 {
				continue
			}
			done, err := n.objects.Respread(ctx, p)
			if err != nil {
				log.Warn("re-spreading bodies written in a degraded placement", "partition", p, "err", err)
			}
			if done > 0 {
				log.Info("bodies written in a degraded placement rewritten under the policy", "partition", p, "bodies", done)
			}
		}
	}
	return nil
}
