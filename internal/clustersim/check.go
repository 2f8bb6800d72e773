package clustersim

import (
	"fmt"
	"slices"
	"time"

	"github.com/redoubt-io/redoubt/internal/meta"
)

type replicaDigest struct {
	node    string
	applied uint64
	items   int
	sum     uint64
}

// digests reads every up node's digest of every group it keeps a copy of.
func digests(s *Sim, nodes []*node) (map[meta.Partition][]replicaDigest, error) {
	parts := []meta.Partition{meta.System}
	for p := 0; p < s.cfg.Partitions; p++ {
		parts = append(parts, meta.Partition(p))
	}
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
