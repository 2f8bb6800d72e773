package clustersim

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sort"
	"time"

	"github.com/redoubt-io/redoubt/internal/blocks"
	"github.com/redoubt-io/redoubt/internal/meta"
	"github.com/redoubt-io/redoubt/internal/objects"
	"github.com/redoubt-io/redoubt/internal/store"
)

type replicaDigest struct {
	node    string
	applied uint64
	items   int
	sum     uint64
}

// digests reads every up node's digest of every group it keeps a copy of.
func digests(s *Sim, nodes []*node) (map[meta.Partition][]replicaDigest, error) {
	// Every group some node keeps a copy of: the base partitions, and
	// those splits made.
	set := map[meta.Partition]bool{meta.System: true}
	for p := 0; p < s.cfg.Partitions; p++ {
		set[meta.Partition(p)] = true
	}
	for _, n := range nodes {
		if inc := n.current(); inc != nil {
			for _, st := range inc.cl.Raft().Groups() {
				set[st.Partition] = true
			}
		}
	}
	parts := slices.Sorted(maps.Keys(set))
	out := map[meta.Partition][]replicaDigest{}
	for _, n := range nodes {
		inc := n.current()
		if inc == nil {
			continue
		}
		host := inc.cl.Raft()
		hosted := map[meta.Partition]bool{}
		for _, st := range host.Groups() {
			hosted[st.Partition] = true
		}
		for _, p := range parts {
			if !hosted[p] {
				continue
			}
			applied, items, sum, ok, err := host.Digest(p)
			if err != nil {
				return nil, fmt.Errorf("%s: digest of group %d: %w", n.id, p, err)
			}
			if ok {
				out[p] = append(out[p], replicaDigest{string(n.id), applied, items, sum})
			}
		}
	}
	return out, nil
}

// checkReplicas waits (in simulated time) until every replica of every
// group has applied the same index, and then requires their items to be
// identical: Raft keeps a group's replicas equal, whatever the faults.
func checkReplicas(s *Sim, nodes []*node) error {
	var last map[meta.Partition][]replicaDigest
	var lastErr error
	caughtUp := func() bool {
		last, lastErr = digests(s, nodes)
		if lastErr != nil {
			return true
		}
		for _, ds := range last {
			for _, d := range ds[1:] {
				if d.applied != ds[0].applied {
					return false
				}
			}
		}
		return true
	}
	s.run(time.Now().Add(2*time.Minute), caughtUp)
	if lastErr != nil {
		return lastErr
	}
	parts := make([]meta.Partition, 0, len(last))
	for p := range last {
		parts = append(parts, p)
	}
	slices.Sort(parts)
	for _, p := range parts {
		ds := last[p]
		for _, d := range ds[1:] {
			if d.applied != ds[0].applied {
				return fmt.Errorf("group %d: replicas did not catch up in 2 simulated minutes: %+v", p, ds)
			}
			if d.items != ds[0].items || d.sum != ds[0].sum {
				return fmt.Errorf("group %d: replicas differ at applied index %d: %+v", p, d.applied, ds)
			}
		}
	}
	return nil
}

// checkGarbage runs two garbage collection passes on every node (the
// first sweeps the intents dead incarnations left, the second removes what
// they named), then requires every shard file on every drive to belong to
// data a committed record names: no orphan survives collection.
func checkGarbage(ctx context.Context, s *Sim, nodes []*node) error {
	ctx = withActor(ctx, "gc-check")
	done := make(chan error, 1)
	s.spawn(func() {
		for range 2 {
			for _, n := range nodes {
				inc := n.current()
				if inc == nil {
					done <- fmt.Errorf("%s is down", n.id)
					return
				}
				st, err := inc.collectAll(ctx)
				if err != nil {
					done <- fmt.Errorf("%s: garbage collection: %w", n.id, err)
					return
				}
				if st.Errors > 0 {
					done <- fmt.Errorf("%s: garbage collection: %d errors", n.id, st.Errors)
					return
				}
			}
		}
		live := map[string]bool{}
		err := nodes[0].current().obj.ForEachRef(ctx, func(r blocks.Ref) error {
			live[r.ID] = true
			return nil
		})
		if err != nil {
			done <- fmt.Errorf("listing live data: %w", err)
			return
		}
		var orphans []string
		for _, n := range nodes {
			for _, d := range n.current().drives {
				err := d.Walk(ctx, func(si store.ShardInfo) error {
					if !live[si.Name.ID] {
						orphans = append(orphans, fmt.Sprintf("%s %s: %s", n.id, d.ID(), si.Name))
					}
					return nil
				})
				if err != nil {
					done <- fmt.Errorf("%s: walking %s: %w", n.id, d.ID(), err)
					return
				}
			}
		}
		if len(orphans) > 0 {
			sort.Strings(orphans)
			done <- fmt.Errorf("%d shard files survive garbage collection without a record naming them: %v", len(orphans), orphans[:min(len(orphans), 10)])
			return
		}
		done <- nil
	})
	s.run(time.Now().Add(10*time.Minute), func() bool { return len(done) > 0 })
	if len(done) == 0 {
		return fmt.Errorf("garbage collection did not finish in 10 simulated minutes")
	}
	return <-done
}

// checkCounts requires the partitions' object counters, which every
// transaction that adds or removes a version keeps (objects.Stats), to
// agree with a count of the version records themselves, after every
// fault the run injected: crashes, lost and repeated messages, commits
// whose answers were lost and were retried.
func checkCounts(ctx context.Context, s *Sim, nodes []*node) error {
	ctx = withActor(ctx, "count-check")
	done := make(chan error, 1)
	s.spawn(func() {
		obj := nodes[0].current().obj
		n, b, err := obj.Stats(ctx)
		if err != nil {
			done <- fmt.Errorf("Stats: %w", err)
			return
		}
		wn, wb, err := obj.CountByScan(ctx)
		if err != nil {
			done <- fmt.Errorf("counting versions: %w", err)
			return
		}
		if n != wn || b != wb {
			done <- fmt.Errorf("the counters say %d objects, %d bytes; the version records hold %d objects, %d bytes", n, b, wn, wb)
			return
		}
		done <- nil
	})
	s.run(time.Now().Add(5*time.Minute), func() bool { return len(done) > 0 })
	if len(done) == 0 {
		return fmt.Errorf("counting did not finish in 5 simulated minutes")
	}
	return <-done
}

// collectAll is collect with no grace: everything collectable goes.
func (inc *incarnation) collectAll(ctx context.Context) (objects.GCStats, error) {
	drives := make([]objects.GCDrive, len(inc.drives))
	for i, d := range inc.drives {
		drives[i] = d
	}
	return inc.obj.CollectGarbage(ctx, drives, objects.GCOptions{})
}
