package node

import (
	"context"
	"time"
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
