package layout

import (
	"cmp"
	"fmt"
	"slices"

	"github.com/redoubt-io/redoubt/internal/placement"
)

// Compute returns the next layout for nodes: version prev.Version+1 (1 if
// prev is nil), every partition on cfg.Policy.Shards() distinct drives,
// spread over zones and then nodes, balanced by capacity, and moving as few
// slots from prev as the rules allow. See the package doc for the promises
// and the method. nodes is not modified; the result lists nodes in ID order
// and each node's drives in ID order, so the input order does not matter.
func Compute(prev *Layout, nodes []Node, cfg Config) (*Layout, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	total, err := validateNodes(nodes)
	if err != nil {
		return nil, err
	}
	policy := cfg.Policy
	if policy == (placement.Policy{}) {
		policy = placement.DefaultPolicy(total)
	}
	if policy.Shards() > total {
		return nil, fmt.Errorf("%w: %v needs %d drives, the cluster has %d", ErrNotEnoughDrives, policy, policy.Shards(), total)
	}
	replicas := cfg.MetaReplicas
	if replicas == 0 {
		replicas = min(3, len(nodes))
	}
	if replicas > len(nodes) {
		return nil, fmt.Errorf("%w: %d metadata replicas over %d nodes", ErrNotEnoughNodes, replicas, len(nodes))
	}
	version := uint64(1)
	depth := 0
	if prev != nil {
		depth = prev.Depth
		if err := prev.Validate(); err != nil {
			return nil, fmt.Errorf("previous layout: %w", err)
		}
		if prev.Partitions != cfg.Partitions {
			return nil, fmt.Errorf("%w: %d to %d", ErrPartitionsChanged, prev.Partitions, cfg.Partitions)
		}
		version = prev.Version + 1
	}

	sorted := make([]Node, len(nodes))
	for i, n := range nodes {
		sorted[i] = n.clone()
		slices.SortFunc(sorted[i].Drives, func(a, b Drive) int { return cmp.Compare(a.ID, b.ID) })
	}
	slices.SortFunc(sorted, func(a, b Node) int { return cmp.Compare(a.ID, b.ID) })

	// The data partitions are the metadata partitions of the data depth
	// (Layout.Parts), as many as prev has.
	dataParts := cfg.Partitions
	if prev != nil {
		dataParts = len(prev.Parts)
	}
	pr := newProblem(sorted, dataParts, policy.Shards())
	a := newAssignment(pr, prev)
	a.run()

	out := &Layout{
		Version:      version,
		Partitions:   cfg.Partitions,
		Policy:       policy,
		MetaReplicas: replicas,
		Nodes:        sorted,
		Parts:        make([][]string, dataParts),
		Depth:        depth,
	}
	for p, part := range a.parts {
		ids := make([]string, len(part))
		for i, d := range part {
			ids[i] = pr.drives[d].id
		}
		out.Parts[p] = ids
	}
	if err := out.Validate(); err != nil {
		// Compute's own output must always be valid; this is a bug.
		return nil, fmt.Errorf("layout: computed an invalid layout: %w", err)
	}
	return out, nil
}

const hole = -1

// assignment is the working state of Compute: partition lists of drive
// indexes (hole where a slot needs a drive), per-drive slot counts and
// targets.
type assignment struct {
	pr     *problem
	parts  [][]int32
	count  []int
	target []int
	shares []float64
	// kept[p*shards+i] is whether slot i of partition p still holds the
	// drive it held in the previous layout.
	kept []bool
	// zoneHoles counts, per zone, the slots freed because their drive is
	// gone or broke a cap.
	zoneHoles []int
}

func newAssignment(pr *problem, prev *Layout) *assignment {
	a := &assignment{pr: pr, count: make([]int, len(pr.drives)), kept: make([]bool, pr.parts*pr.shards)}
	byID := make(map[string]int32, len(pr.drives))
	for i, d := range pr.drives {
		byID[d.id] = int32(i)
	}
	a.zoneHoles = make([]int, len(pr.zoneNodes))
	zoneOf := map[string]int{} // previous drive ID -> zone index, if the zone remains
	if prev != nil {
		zoneIdx := map[string]int{}
		for _, d := range pr.drives {
			zoneIdx[pr.zones[d.zone]] = d.zone
		}
		for _, n := range prev.Nodes {
			if z, ok := zoneIdx[n.Zone]; ok {
				for _, d := range n.Drives {
					zoneOf[d.ID] = z
				}
			}
		}
	}
	a.parts = make([][]int32, pr.parts)
	for p := range a.parts {
		part := make([]int32, pr.shards)
		for i := range part {
			part[i] = hole
			// A changed shard count keeps the common prefix: shard i of
			// the new policy lands where shard i of the old one was.
			if prev != nil && i < len(prev.Parts[p]) {
				if d, ok := byID[prev.Parts[p][i]]; ok {
					part[i] = d
					a.count[d]++
					a.kept[p*pr.shards+i] = true
				} else if z, ok := zoneOf[prev.Parts[p][i]]; ok {
					a.zoneHoles[z]++
				}
			}
		}
		a.parts[p] = part
	}
	return a
}

func (a *assignment) run() {
	a.shares = a.pr.shares()
	a.enforceCaps()
	a.target = a.pr.targets(a.shares, a.count, a.zoneHoles)
	for p, part := range a.parts {
		for i, d := range part {
			if d == hole {
				a.fill(p, i)
			}
		}
	}
	stuck := make([]bool, len(a.count))
	for {
		best, excess := -1, 0
		for d := range a.count {
			if e := a.count[d] - a.target[d]; e > excess && !stuck[d] {
				best, excess = d, e
			}
		}
		if best < 0 {
			return
		}
		var sources []slot
		for p, part := range a.parts {
			if i := slices.Index(part, int32(best)); i >= 0 {
				sources = append(sources, slot{p, i})
			}
		}
		if !a.augment(sources) {
			stuck[best] = true
		}
	}
}

// enforceCaps turns into holes the slots of prev that break the zone or
// node cap (after zones changed or were added), taking them from the drives
// most above their share.
func (a *assignment) enforceCaps() {
	pr := a.pr
	for p, part := range a.parts {
		for {
			zc := make([]int, len(pr.zoneNodes))
			nc := make([]int, len(pr.nodeDrives))
			for _, d := range part {
				if d != hole {
					zc[pr.drives[d].zone]++
					nc[pr.drives[d].node]++
				}
			}
			victim := -1
			for i, d := range part {
				if d == hole {
					continue
				}
				dv := pr.drives[d]
				if zc[dv.zone] <= pr.zoneCap && nc[dv.node] <= pr.nodeCap {
					continue
				}
				if victim < 0 || a.over(d) > a.over(part[victim]) {
					victim = i
				}
			}
			if victim < 0 {
				break
			}
			a.count[part[victim]]--
			a.zoneHoles[pr.drives[part[victim]].zone]++
			part[victim] = hole
			a.kept[p*pr.shards+victim] = false
		}
	}
}

func (a *assignment) over(d int32) float64 { return float64(a.count[d]) - a.shares[d] }

// valid reports whether drive e may take slot i of partition p, whatever
// holds that slot now.
func (a *assignment) valid(p, i int, e int32) bool {
	pr := a.pr
	de := pr.drives[e]
	zc, nc := 0, 0
	for j, d := range a.parts[p] {
		if j == i || d == hole {
			continue
		}
		if d == e {
			return false
		}
		dd := pr.drives[d]
		if dd.zone == de.zone {
			zc++
		}
		if dd.node == de.node {
			nc++
		}
	}
	return zc < pr.zoneCap && nc < pr.nodeCap
}

// fill finds a drive for the hole at slot i of partition p: an under-target
// drive if a chain of moves reaches one, else the valid drive least above
// its target, else (only if the caps cannot be met) the drive that breaks
// them least.
func (a *assignment) fill(p, i int) {
	if a.augment([]slot{{p, i}}) {
		return
	}
	best := int32(hole)
	for e := range a.count {
		e := int32(e)
		if a.valid(p, i, e) && (best == hole || a.count[e]-a.target[e] < a.count[best]-a.target[best]) {
			best = e
		}
	}
	if best == hole {
		best = a.leastCrowded(p, i)
	}
	a.parts[p][i] = best
	a.count[best]++
	a.kept[p*a.pr.shards+i] = false
}

func (a *assignment) leastCrowded(p, i int) int32 {
	pr := a.pr
	best, bestZ, bestN := int32(hole), 0, 0
	for e := range pr.drives {
		de := pr.drives[e]
		zc, nc, dup := 0, 0, false
		for j, d := range a.parts[p] {
			if j == i || d == hole {
				continue
			}
			dup = dup || d == int32(e)
			if pr.drives[d].zone == de.zone {
				zc++
			}
			if pr.drives[d].node == de.node {
				nc++
			}
		}
		if !dup && (best == hole || zc < bestZ || (zc == bestZ && nc < bestN)) {
			best, bestZ, bestN = int32(e), zc, nc
		}
	}
	return best
}

type slot struct{ p, i int }

// better reports whether under-target drive x is a better pick than y for
// partition p: the larger deficit relative to its target wins, then a hash
// of (drive, partition), which spreads each drive's partners over the
// cluster instead of pairing the same drives in every partition.
func (a *assignment) better(x, y int32, p int) bool {
	if y == hole {
		return true
	}
	dx, dy := int64(a.target[x]-a.count[x]), int64(a.target[y]-a.count[y])
	if l, r := dx*int64(a.target[y]), dy*int64(a.target[x]); l != r {
		return l > r
	}
	hx := mix(a.pr.drives[x].h ^ uint64(p)*0x9e3779b97f4a7c15)
	hy := mix(a.pr.drives[y].h ^ uint64(p)*0x9e3779b97f4a7c15)
	if hx != hy {
		return hx < hy
	}
	return x < y
}

// augment frees one of the source slots (or fills it, if it is a hole) and
// gives one more slot to an under-target drive, by a chain of moves: the
// source takes drive e1, e1 leaves another slot which takes e2, and so on
// until an under-target drive. Chains are searched cheapest first, where
// the cost is the number of slots the chain takes from drives that held
// them in the previous layout (re-routing a slot already moving in this
// computation is free), then shortest first. A chain changes each
// partition at one slot only, so validity checked against the current
// lists stays true when the chain is applied. It reports whether a chain
// was found.
func (a *assignment) augment(sources []slot) bool {
	type state struct {
		s      slot
		parent int
		key    int
	}
	const depthSpan = 64 // key = cost*depthSpan + depth
	shards := a.pr.shards
	var states []state
	bestKey := make(map[int]int) // slot index -> least key enqueued
	buckets := map[int][]int{}
	var keys []int // pending bucket keys, kept sorted
	push := func(st state) {
		k := st.s.p*shards + st.s.i
		if old, ok := bestKey[k]; ok && old <= st.key {
			return
		}
		bestKey[k] = st.key
		states = append(states, st)
		if _, ok := buckets[st.key]; !ok {
			at, _ := slices.BinarySearch(keys, st.key)
			keys = slices.Insert(keys, at, st.key)
		}
		buckets[st.key] = append(buckets[st.key], len(states)-1)
	}
	for _, s := range sources {
		push(state{s, -1, 0})
	}
	onPath := func(si, p int) bool {
		for ; si >= 0; si = states[si].parent {
			if states[si].s.p == p {
				return true
			}
		}
		return false
	}
	var occ [][]slot // drive -> its slots, built on first need
	for len(keys) > 0 {
		key := keys[0]
		keys = keys[1:]
		var live []int
		for _, si := range buckets[key] {
			st := states[si]
			if bestKey[st.s.p*shards+st.s.i] == key {
				live = append(live, si)
			}
		}
		delete(buckets, key)
		bestState, bestDrive := -1, int32(hole)
		for _, si := range live {
			s := states[si].s
			for e := range a.count {
				e := int32(e)
				if a.count[e] < a.target[e] && a.parts[s.p][s.i] != e && a.valid(s.p, s.i, e) && a.better(e, bestDrive, s.p) {
					bestState, bestDrive = si, e
				}
			}
		}
		if bestState >= 0 {
			a.apply(bestState, bestDrive, func(si int) (slot, int) { return states[si].s, states[si].parent })
			return true
		}
		if key%depthSpan == depthSpan-1 {
			continue
		}
		if occ == nil {
			occ = make([][]slot, len(a.count))
			for p, part := range a.parts {
				for i, d := range part {
					if d != hole {
						occ[d] = append(occ[d], slot{p, i})
					}
				}
			}
		}
		for _, si := range live {
			s := states[si].s
			for e := range a.count {
				e := int32(e)
				if a.parts[s.p][s.i] == e || !a.valid(s.p, s.i, e) {
					continue
				}
				for _, o := range occ[e] {
					if onPath(si, o.p) {
						continue
					}
					k := key + 1
					if a.kept[o.p*shards+o.i] {
						k += depthSpan
					}
					push(state{o, si, k})
				}
			}
		}
	}
	return false
}

// apply performs the chain ending at state last, whose slot takes the
// under-target drive in.
func (a *assignment) apply(last int, in int32, step func(int) (slot, int)) {
	a.count[in]++
	for si := last; ; {
		s, parent := step(si)
		out := a.parts[s.p][s.i]
		a.parts[s.p][s.i] = in
		a.kept[s.p*a.pr.shards+s.i] = false
		if parent < 0 {
			if out != hole {
				a.count[out]--
			}
			return
		}
		in, si = out, parent
	}
}
