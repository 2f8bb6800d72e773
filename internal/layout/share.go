package layout

import (
	"cmp"
	"math"
	"slices"

	"github.com/zeebo/xxh3"
)

// problem is a node list indexed for computation: drives in node order,
// nodes in the given order, zones numbered in name order.
type problem struct {
	parts, shards int
	drives        []drive
	nodeDrives    [][]int // node -> its drives
	nodeZone      []int
	zoneNodes     [][]int // zone -> its nodes
	zones         []string
	// zoneCap and nodeCap are the most shards of one partition a zone or a
	// node may hold: the least values the drives allow, zones first.
	zoneCap, nodeCap int
}

type drive struct {
	id         string
	node, zone int
	cap        uint64
	h          uint64 // tie-breaker, from the ID
}

func newProblem(nodes []Node, parts, shards int) *problem {
	pr := &problem{parts: parts, shards: shards}
	zoneIdx := map[string]int{}
	var zones []string
	for _, n := range nodes {
		if _, ok := zoneIdx[n.Zone]; !ok {
			zoneIdx[n.Zone] = 0
			zones = append(zones, n.Zone)
		}
	}
	slices.Sort(zones)
	pr.zones = zones
	for i, z := range zones {
		zoneIdx[z] = i
	}
	pr.zoneNodes = make([][]int, len(zones))
	for ni, n := range nodes {
		z := zoneIdx[n.Zone]
		pr.nodeZone = append(pr.nodeZone, z)
		pr.zoneNodes[z] = append(pr.zoneNodes[z], ni)
		var ds []int
		for _, d := range n.Drives {
			ds = append(ds, len(pr.drives))
			pr.drives = append(pr.drives, drive{id: d.ID, node: ni, zone: z, cap: d.Capacity, h: hashString(d.ID)})
		}
		pr.nodeDrives = append(pr.nodeDrives, ds)
	}
	pr.zoneCap, pr.nodeCap = shards, shards
	for c := 1; c <= shards; c++ {
		sum := 0
		for _, ns := range pr.zoneNodes {
			zd := 0
			for _, n := range ns {
				zd += len(pr.nodeDrives[n])
			}
			sum += min(c, zd)
		}
		if sum >= shards {
			pr.zoneCap = c
			break
		}
	}
	for c := 1; c <= shards; c++ {
		sum := 0
		for _, ns := range pr.zoneNodes {
			zs := 0
			for _, n := range ns {
				zs += min(c, len(pr.nodeDrives[n]))
			}
			sum += min(pr.zoneCap, zs)
		}
		if sum >= shards {
			pr.nodeCap = c
			break
		}
	}
	return pr
}

// wtree is the zone > node > drive hierarchy for water-filling: each
// vertex holds at most max slots and takes a share proportional to weight.
type wtree struct {
	weight, max float64
	drive       int // leaf: drive index; else -1
	kids        []*wtree
}

// fill is what t takes at level lambda: lambda × weight, capped by every
// vertex on the way.
func (t *wtree) fill(lambda float64) float64 {
	if t.drive >= 0 {
		return min(t.max, lambda*t.weight)
	}
	s := 0.0
	for _, k := range t.kids {
		s += k.fill(lambda)
	}
	return min(t.max, s)
}

// assign spreads amount (at most what t can take) over t's leaves: the
// kids get fill(lambda) for the lambda that makes them sum to amount, and
// each kid spreads its part the same way, so a capped kid's excess goes to
// its siblings in proportion to their weight.
func (t *wtree) assign(amount float64, out []float64) {
	if t.drive >= 0 {
		out[t.drive] = amount
		return
	}
	sum := func(l float64) float64 {
		s := 0.0
		for _, k := range t.kids {
			s += k.fill(l)
		}
		return s
	}
	lo, hi := 0.0, 1.0
	for sum(hi) < amount && hi < 1e300 {
		hi *= 2
	}
	for range 200 {
		mid := (lo + hi) / 2
		if mid <= lo || mid >= hi {
			break
		}
		if sum(mid) < amount {
			lo = mid
		} else {
			hi = mid
		}
	}
	got := sum(hi)
	for _, k := range t.kids {
		f := k.fill(hi)
		if got > 0 {
			// Remove the bisection's residue so the parts sum to amount.
			f *= amount / got
		}
		k.assign(min(f, k.max), out)
	}
}

// shares returns each drive's fair number of slots (see DriveUsage.Share).
func (pr *problem) shares() []float64 {
	total := float64(pr.parts * pr.shards)
	var maxCap uint64
	for _, d := range pr.drives {
		maxCap = max(maxCap, d.cap)
	}
	root := &wtree{drive: -1, max: total}
	for _, ns := range pr.zoneNodes {
		zt := &wtree{drive: -1}
		zmax := 0.0
		for _, n := range ns {
			nt := &wtree{drive: -1}
			nmax := 0.0
			for _, d := range pr.nodeDrives[n] {
				w := float64(pr.drives[d].cap) / float64(maxCap)
				nt.kids = append(nt.kids, &wtree{weight: w, max: float64(pr.parts), drive: d})
				nt.weight += w
				nmax += float64(pr.parts)
			}
			nt.max = min(nmax, float64(pr.nodeCap*pr.parts))
			zt.kids = append(zt.kids, nt)
			zt.weight += nt.weight
			zmax += nt.max
		}
		zt.max = min(zmax, float64(pr.zoneCap*pr.parts))
		root.kids = append(root.kids, zt)
		root.weight += zt.weight
	}
	out := make([]float64, len(pr.drives))
	root.assign(min(total, root.fill(math.MaxFloat64)), out)
	return out
}

const eps = 1e-6

// targets rounds shares to whole slot counts summing to parts × shards:
// each drive gets floor or ceil of its share, and no node or zone exceeds
// its cap times parts. Shares respect those caps, so this is a laminar
// matroid holding a fractional solution, and the greedy below always
// completes. Which drives get the ceiling is decided first by current
// (drives already holding that many keep them, which saves movement), then
// by the size of the fraction, then by zoneHoles (slots freed in a zone are
// most easily refilled from the same zone: the others may be at their cap
// in those partitions), then by a hash of the drive ID.
func (pr *problem) targets(shares []float64, current, zoneHoles []int) []int {
	nd, nn, nz := len(pr.drives), len(pr.nodeDrives), len(pr.zoneNodes)
	t := make([]int, nd)
	nodeT, zoneT := make([]int, nn), make([]int, nz)
	rest := pr.parts * pr.shards
	for i, d := range pr.drives {
		t[i] = int(math.Floor(shares[i] + eps))
		nodeT[d.node] += t[i]
		zoneT[d.zone] += t[i]
		rest -= t[i]
	}
	order := make([]int, nd)
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int {
		ka, kb := current[a] > t[a], current[b] > t[b]
		if ka != kb {
			if ka {
				return -1
			}
			return 1
		}
		// Shares from the bisection differ in their last bits even where
		// they are equal in theory; such differences must not decide.
		if fa, fb := shares[a]-float64(t[a]), shares[b]-float64(t[b]); math.Abs(fa-fb) > eps {
			return cmp.Compare(fb, fa)
		}
		if c := cmp.Compare(zoneHoles[pr.drives[b].zone], zoneHoles[pr.drives[a].zone]); c != 0 {
			return c
		}
		if c := cmp.Compare(pr.drives[a].h, pr.drives[b].h); c != 0 {
			return c
		}
		return cmp.Compare(a, b)
	})
	// Pass 0 is the rule above; later passes (reached only through float
	// rounding at the edges) keep just the hard caps.
	for pass, progress := 0, true; rest > 0 && (pass == 0 || progress); pass++ {
		progress = false
		for _, i := range order {
			if rest == 0 {
				break
			}
			d := pr.drives[i]
			ok := t[i] < pr.parts && nodeT[d.node] < pr.nodeCap*pr.parts && zoneT[d.zone] < pr.zoneCap*pr.parts
			if pass == 0 {
				ok = ok && shares[i]-float64(t[i]) > eps && t[i] < int(math.Ceil(shares[i]-eps))
			}
			if ok {
				t[i]++
				nodeT[d.node]++
				zoneT[d.zone]++
				rest--
				progress = true
			}
		}
	}
	return t
}

func hashString(s string) uint64 { return xxh3.HashString(s) }

// mix is the splitmix64 finalizer: it turns structured inputs (a hash xor
// a counter) into well-spread tie-breakers.
func mix(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}
