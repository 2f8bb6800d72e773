package cluster

import (
	"flag"
	"fmt"
	"maps"
	"math/bits"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redoubt-io/redoubt/internal/layout"
	"github.com/redoubt-io/redoubt/internal/placement"
)

var (
	ec21    = placement.Policy{K: 2, M: 1}
	ec22    = placement.Policy{K: 2, M: 2}
	ec32    = placement.Policy{K: 3, M: 2}
	ec42    = placement.Policy{K: 4, M: 2}
	mirror2 = placement.Policy{K: 1, M: 1, Mirror: true}
	mirror3 = placement.Policy{K: 1, M: 2, Mirror: true}
)

// testNodes is n nodes n0, n1, ... over zones z0, z1, ... in turn, each
// with two drives nI-d0 and nI-d1.
func testNodes(n, zones int) []layout.Node {
	var out []layout.Node
	for i := range n {
		nd := layout.Node{ID: fmt.Sprintf("n%d", i), Zone: fmt.Sprintf("z%d", i%zones)}
		for d := range 2 {
			nd.Drives = append(nd.Drives, layout.Drive{ID: fmt.Sprintf("n%d-d%d", i, d), Capacity: 1 << 40})
		}
		out = append(out, nd)
	}
	return out
}

func mustLayout(t *testing.T, prev *layout.Layout, nodes []layout.Node, p placement.Policy) *layout.Layout {
	t.Helper()
	l, err := layout.Compute(prev, nodes, layout.Config{Partitions: 16, Policy: p, MetaReplicas: MetaReplicas(0, p, len(nodes))})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// nodeOfDrive is the node of a drive named by testNodes.
func nodeOfDrive(d string) string { return d[:strings.Index(d, "-")] }

// sibling is the other drive of d's node.
func sibling(d string) string {
	if strings.HasSuffix(d, "-d0") {
		return strings.TrimSuffix(d, "0") + "1"
	}
	return strings.TrimSuffix(d, "1") + "0"
}

// censusOf counts one part of 1 MiB per partition of l, coded by p, with
// its drives given by place (l's drive list when place is nil).
func censusOf(l *layout.Layout, p placement.Policy, place func(drives []string) []string) *Census {
	c := NewCensus(time.Unix(1, 0), l.Version)
	for _, drives := range l.Parts {
		if place != nil {
			drives = place(slices.Clone(drives))
		}
		c.Add(p, 1<<20, drives)
	}
	return c
}

// moveOff rebuilds a part's shards on the gone nodes on the other
// drive of a node left that holds one shard of the part so far.
func moveOff(gone ...string) func([]string) []string {
	return func(d []string) []string {
		for i := range d {
			if !slices.Contains(gone, nodeOfDrive(d[i])) {
				continue
			}
			for j := range d {
				n := nodeOfDrive(d[j])
				if slices.Contains(gone, n) || slices.ContainsFunc(d, func(x string) bool { return x == sibling(d[j]) }) {
					continue
				}
				d[i] = sibling(d[j])
				break
			}
		}
		return d
	}
}

type survivalWant struct {
	nodes, zones             int
	data, newWrites, meta    int // node losses of each kind; data only with a census
	promisedNodes, promZones int
	kept                     bool
	moving                   int64
	policies                 []string
	by                       []string // PromisedBy; nil: policies
	advice                   string   // a substring; "" for no advice
	reasons                  []string // substrings, each in some reason
}

func TestSurvival(t *testing.T) {
	six := testNodes(6, 3)
	v1 := mustLayout(t, nil, six, ec42)
	// Node n5 (zone z2) is lost and the layout drops it; the cluster's own
	// policy for five nodes is EC 3+2, so new writes are re-coded, while
	// stored EC 4+2 parts keep six shards on five nodes.
	v2 := mustLayout(t, v1, six[:5], ec32)
	// Or the operator chose EC 4+2: new writes too put two shards of a
	// part on one node.
	v2fixed := mustLayout(t, v1, six[:5], ec42)
	// Five nodes lose two for good: the cluster's policy for three is EC
	// 2+1, and the stored EC 3+2 parts are rebuilt with five shards on
	// three nodes.
	five := mustLayout(t, nil, testNodes(5, 3), ec32)
	three := mustLayout(t, five, testNodes(3, 3), ec21)
	cases := []struct {
		name string
		f    Facts
		want survivalWant
	}{{
		name: "six nodes EC 4+2, all up, data where the layout puts it",
		f:    Facts{Layout: v1, Census: censusOf(v1, ec42, nil)},
		want: survivalWant{nodes: 2, zones: 1, data: 2, newWrites: 2, meta: 2, promisedNodes: 2, promZones: 1, kept: true,
			policies: []string{"EC 4+2"}},
	}, {
		name: "before the first count: new writes and metadata only",
		f:    Facts{Layout: v1},
		want: survivalWant{nodes: 2, zones: 1, newWrites: 2, meta: 2, promisedNodes: 2, promZones: 1, kept: true,
			policies: []string{"EC 4+2"}},
	}, {
		name: "one node lost and dropped, EC 4+2 rebuilt on five nodes in even zones: one more node loss",
		f:    Facts{Layout: v2, Census: relocated(v1, v2, "n5", true)},
		want: survivalWant{nodes: 1, zones: 1, data: 1, newWrites: 2, meta: 2, promisedNodes: 2, promZones: 1,
			policies: []string{"EC 3+2", "EC 4+2"}, advice: "add 1 node to restore it",
			reasons: []string{"EC 4+2 writes 6 shards per chunk and the layout has 5 nodes: a node holds 2 shards of a part"}},
	}, {
		name: "one node lost and dropped, EC 4+2 rebuilt with three shards in a zone: no zone loss",
		f:    Facts{Layout: v2, Census: relocated(v1, v2, "n5", false)},
		want: survivalWant{nodes: 1, zones: 0, data: 1, newWrites: 2, meta: 2, promisedNodes: 2, promZones: 1,
			policies: []string{"EC 3+2", "EC 4+2"}, advice: "add 1 node to restore it"},
	}, {
		name: "one node dropped, its shards not yet rebuilt: counted lost, data moving",
		f:    Facts{Layout: v2, Census: censusOf(v1, ec42, nil)},
		want: survivalWant{nodes: 1, zones: 0, data: 1, newWrites: 2, meta: 2, promisedNodes: 2, promZones: 1, moving: 16,
			policies: []string{"EC 3+2", "EC 4+2"}, advice: "add 1 node, and let the data finish moving",
			reasons: []string{"16 object parts still have shards on nodes out of the layout"}},
	}, {
		name: "an operator's EC 4+2 on five nodes: new writes survive one node loss too",
		f:    Facts{Layout: v2fixed, Census: relocated(v1, v2fixed, "n5", true)},
		want: survivalWant{nodes: 1, zones: 1, data: 1, newWrites: 1, meta: 2, promisedNodes: 2, promZones: 1,
			policies: []string{"EC 4+2"}, advice: "add 1 node to restore it"},
	}, {
		name: "one node down, still in the layout",
		f:    Facts{Layout: v1, Census: censusOf(v1, ec42, nil), Down: map[string]bool{"n3": true}},
		want: survivalWant{nodes: 1, zones: 0, data: 1, newWrites: 1, meta: 1, promisedNodes: 2, promZones: 1,
			policies: []string{"EC 4+2"}, advice: "bring the down nodes back",
			reasons: []string{"1 node of the layout is down: its shards and votes count as lost"}},
	}, {
		name: "three nodes down: some parts cannot be read now",
		f:    Facts{Layout: v1, Census: censusOf(v1, ec42, nil), Down: map[string]bool{"n0": true, "n1": true, "n2": true}},
		want: survivalWant{nodes: -1, zones: -1, data: -1, newWrites: -1, meta: -1, promisedNodes: 2, promZones: 1,
			policies: []string{"EC 4+2"}, advice: "bring the down nodes back"},
	}, {
		name: "failed drives lose their shards",
		f:    Facts{Layout: v1, Census: censusOf(v1, ec42, nil), FailedDrives: map[string]bool{"n4-d0": true, "n4-d1": true}},
		want: survivalWant{nodes: 1, zones: 0, data: 1, newWrites: 1, meta: 2, promisedNodes: 2, promZones: 1,
			policies: []string{"EC 4+2"}, advice: "refill the failed drives",
			reasons: []string{"2 drives failed or wait to be refilled"}},
	}, {
		name: "parts with two shards on one node, written around a node that was down",
		f:    Facts{Layout: v1, Census: censusOf(v1, ec42, doubleUp(v1))},
		want: survivalWant{nodes: 1, zones: 0, data: 1, newWrites: 2, meta: 2, promisedNodes: 2, promZones: 1,
			policies: []string{"EC 4+2"}, advice: "let relocation spread them",
			reasons: []string{"some stored parts have more shards on one node than they need"}},
	}, {
		name: "metadata of four voters survives one loss where EC 2+2 promises two",
		f:    Facts{Layout: mustLayout(t, nil, testNodes(4, 2), ec22)},
		want: survivalWant{nodes: 1, zones: 0, newWrites: 2, meta: 1, promisedNodes: 2, promZones: 1,
			policies: []string{"EC 2+2"}, advice: "add 1 node to restore it",
			reasons: []string{"metadata groups have 4 voters, which keep a majority through 1 loss; surviving 2 losses takes 5 voters"}},
	}, {
		name: "two nodes mirrored: the data survives one loss, its metadata none",
		f:    Facts{Layout: mustLayout(t, nil, testNodes(2, 1), mirror2)},
		want: survivalWant{nodes: 0, zones: 0, newWrites: 1, meta: 0, promisedNodes: 1, promZones: 0,
			policies: []string{"mirror x2"}, advice: "add 1 node to restore it"},
	}, {
		name: "three mirrors on five nodes in one zone",
		f:    Facts{Layout: mustLayout(t, nil, testNodes(5, 1), mirror3)},
		want: survivalWant{nodes: 2, zones: 0, newWrites: 2, meta: 2, promisedNodes: 2, promZones: 0, kept: true,
			policies: []string{"mirror x3"}},
	}, {
		name: "a group seen with a voter the layout dropped survives less until it is removed",
		f: Facts{Layout: v2, Census: relocated(v1, v2, "n5", true), Groups: []GroupVoters{
			{Name: "partition 3", Voters: []string{"n0", "n1", "n2", "n3", "n5"}},
		}},
		want: survivalWant{nodes: 1, zones: 0, data: 1, newWrites: 2, meta: 1, promisedNodes: 2, promZones: 1,
			policies: []string{"EC 3+2", "EC 4+2"}, advice: "add 1 node to restore it"},
	}, {
		name: "a cluster of one node: its drives hold every shard, no node can go",
		f:    Facts{Layout: mustLayout(t, nil, testNodes(1, 1), mirror2)},
		want: survivalWant{nodes: 0, zones: 0, newWrites: 0, meta: 0, promisedNodes: 1, promZones: 0,
			policies: []string{"mirror x2"}, advice: "add 2 nodes to restore it",
			reasons: []string{"mirror x2 writes 2 shards per chunk and the layout has 1 node: a node holds 2 shards of a part"}},
	}, {
		name: "five nodes down to three: new writes EC 2+1 survive one loss, stored EC 3+2 was promised two",
		f:    Facts{Layout: three, Census: censusOf(five, ec32, moveOff("n3", "n4"))},
		want: survivalWant{nodes: 1, zones: 1, data: 1, newWrites: 1, meta: 1, promisedNodes: 2, promZones: 1,
			by: []string{"EC 3+2"}, policies: []string{"EC 2+1", "EC 3+2"}, advice: "add 2 nodes to restore it",
			reasons: []string{"new writes are coded EC 2+1, which survives 1 node loss",
				"EC 3+2 writes 5 shards per chunk and the layout has 3 nodes: a node holds 2 shards of a part",
				"metadata groups have 3 voters, which keep a majority through 1 loss; surviving 2 losses takes 5 voters"}},
	}, {
		name: "a replica still catching up counts as lost: its group survives no loss",
		f:    Facts{Layout: mustLayout(t, nil, testNodes(3, 3), ec21), CatchingUp: map[string][]string{"n2": {"partition 0"}}},
		want: survivalWant{nodes: 0, zones: 0, newWrites: 1, meta: 0, promisedNodes: 1, promZones: 1,
			policies: []string{"EC 2+1"}, advice: "let the replicas catch up",
			reasons: []string{"1 metadata group has a replica still catching up"}},
	}, {
		name: "EC 2+1 on three nodes in three zones keeps its promise",
		f:    Facts{Layout: mustLayout(t, nil, testNodes(3, 3), ec21)},
		want: survivalWant{nodes: 1, zones: 1, newWrites: 1, meta: 1, promisedNodes: 1, promZones: 1, kept: true,
			policies: []string{"EC 2+1"}},
	}}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := Survival(tc.f)
			w := tc.want
			check := func(what string, got, want any) {
				t.Helper()
				if fmt.Sprint(got) != fmt.Sprint(want) {
					t.Errorf("%s = %v, want %v", what, got, want)
				}
			}
			check("node losses", got.NodeLosses, w.nodes)
			check("zone losses", got.ZoneLosses, w.zones)
			check("new writes' node losses", got.NewWrites.NodeLosses, w.newWrites)
			check("metadata's node losses", got.Metadata.NodeLosses, w.meta)
			if tc.f.Census != nil {
				check("stored data's node losses", got.Data.NodeLosses, w.data)
				check("parts counted", got.Data.Items, tc.f.Census.Parts)
			} else {
				check("parts counted", got.Data.Items, 0)
			}
			check("promised node losses", got.PromisedNodeLosses, w.promisedNodes)
			check("promised zone losses", got.PromisedZoneLosses, w.promZones)
			check("kept", got.Kept, w.kept)
			check("moving", got.Moving, w.moving)
			check("policies", got.Policies, w.policies)
			if w.by == nil {
				w.by = w.policies
			}
			check("promised by", got.PromisedBy, w.by)
			if w.advice == "" && got.Advice != "" || !strings.Contains(got.Advice, w.advice) {
				t.Errorf("advice %q, want one with %q", got.Advice, w.advice)
			}
			for _, r := range w.reasons {
				if !slices.ContainsFunc(got.Reasons, func(g string) bool { return strings.Contains(g, r) }) {
					t.Errorf("no reason says %q; reasons: %q", r, got.Reasons)
				}
			}
			if w.kept && len(got.Reasons) > 0 {
				t.Errorf("promise kept, yet reasons %q", got.Reasons)
			}
			if t.Failed() {
				t.Logf("status: %+v", got)
			}
		})
	}
}

// doubleUp puts a second shard of every part on the node of shard 0, in
// place of a shard in another zone: three shards then share a zone.
func doubleUp(l *layout.Layout) func([]string) []string {
	zone := func(d string) string {
		n, _ := l.NodeOf(d)
		return n.Zone
	}
	return func(d []string) []string {
		for j := 1; j < len(d); j++ {
			if zone(d[j]) != zone(d[0]) {
				d[j] = sibling(d[0])
				return d
			}
		}
		return d
	}
}

// relocated is the census of one EC 4+2 part per partition of prev, once
// node gone has left for next and relocation rebuilt its shard: on a drive
// next gives the partition on a node the part does not use, else (no node
// free) on the other drive of a node holding another shard, in gone's zone
// when sameZone (zones then stay even) or else in another one.
func relocated(prev, next *layout.Layout, gone string, sameZone bool) *Census {
	zone := func(node string) string {
		n, _ := prev.Node(node)
		return n.Zone
	}
	c := NewCensus(time.Unix(1, 0), next.Version)
	for p, drives := range prev.Parts {
		d := slices.Clone(drives)
		for i := range d {
			if nodeOfDrive(d[i]) != gone {
				continue
			}
			d[i] = ""
			for _, cand := range next.Parts[p] {
				if !slices.ContainsFunc(d, func(x string) bool { return x != "" && nodeOfDrive(x) == nodeOfDrive(cand) }) {
					d[i] = cand
					break
				}
			}
			for j := range d {
				if d[i] == "" && j != i && (zone(nodeOfDrive(d[j])) == zone(gone)) == sameZone {
					d[i] = sibling(d[j])
				}
			}
		}
		c.Add(ec42, 1<<20, d)
	}
	return c
}

func TestTolerate(t *testing.T) {
	for _, tc := range []struct {
		counts []int
		budget int
		want   int
	}{
		{[]int{1, 1, 1, 1, 1, 1}, 2, 2},
		{[]int{2, 1, 1, 1, 1}, 2, 1},
		{[]int{2, 2, 2}, 2, 1},
		{[]int{3, 2, 1}, 2, 0},
		{[]int{1, 1, 1, 1, 1}, 1, 1},
		{[]int{1, 1, 1}, 0, 0},
		{[]int{1, 1}, -1, -1},
		{nil, 0, 0},
	} {
		m := map[string]int{}
		for i, c := range tc.counts {
			m[fmt.Sprint(i)] = c
		}
		if got := tolerate(m, tc.budget); got != tc.want {
			t.Errorf("tolerate(%v, %d) = %d, want %d", tc.counts, tc.budget, got, tc.want)
		}
	}
}

func TestCensusKeepsABoundedNumberOfPlacements(t *testing.T) {
	c := NewCensus(time.Unix(1, 0), 1)
	for i := range maxCensusShapes + 10 {
		c.Add(ec21, 1, []string{fmt.Sprintf("a%d", i), "b", "c"})
	}
	c.Add(ec21, 1, []string{"c", "b", "a0"}) // a placement seen already
	if !c.Incomplete || len(c.shapes) != maxCensusShapes || c.Parts != maxCensusShapes+11 {
		t.Fatalf("incomplete %v, %d placements kept, %d parts", c.Incomplete, len(c.shapes), c.Parts)
	}
	if s := c.shapes[fmt.Sprintf("%d+%d/%t/%s", 2, 1, false, "a0\x00b\x00c")]; s == nil || s.parts != 2 {
		t.Fatalf("a placement seen twice in another order is not one placement: %+v", s)
	}
	l := &layout.Layout{Version: 1, Partitions: 1, Policy: ec21, MetaReplicas: 1,
		Nodes: []layout.Node{{ID: "n", Zone: "z", Drives: []layout.Drive{{ID: "b", Capacity: 1}, {ID: "c", Capacity: 1}, {ID: "d", Capacity: 1}}}},
		Parts: [][]string{{"b", "c", "d"}}}
	if got := Survival(Facts{Layout: l, Census: c}); got.CountError == "" {
		t.Errorf("an incomplete count is not reported: %+v", got)
	}
}

var survivalSeed = flag.Uint64("survival.seed", 0, "seed of TestSurvivalMatchesBruteForce (0: from the clock)")

// TestSurvivalMatchesBruteForce checks Survival against its definition on
// random small clusters: a figure of j node (zone) losses means that
// every set of j more nodes (zones) leaves every part K of its shards and
// every Raft group a majority, and that some set of j+1 does not.
func TestSurvivalMatchesBruteForce(t *testing.T) {
	seed := *survivalSeed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("seed %d (rerun with -survival.seed=%d)", seed, seed)
	rng := rand.New(rand.NewPCG(seed, seed^0x5eed))
	policies := []placement.Policy{ec21, ec22, ec32, ec42, mirror2, mirror3}
	for round := range 300 {
		n, zones := 1+rng.IntN(7), 1+rng.IntN(3)
		nodes := testNodes(n, zones)
		p := policies[rng.IntN(len(policies))]
		if p.Shards() > 2*n {
			continue
		}
		l := mustLayout(t, nil, nodes, p)
		var drives []string
		for _, nd := range nodes {
			for _, d := range nd.Drives {
				drives = append(drives, d.ID)
			}
		}
		f := Facts{Layout: l, Down: map[string]bool{}, FailedDrives: map[string]bool{}, Census: NewCensus(time.Unix(1, 0), 1)}
		for _, nd := range nodes {
			if rng.IntN(6) == 0 {
				f.Down[nd.ID] = true
			}
		}
		if rng.IntN(4) == 0 {
			f.FailedDrives[drives[rng.IntN(len(drives))]] = true
		}
		type item struct {
			m     int      // shards (voters) that may be lost
			homes []string // the node of each shard (voter); "" for one off the layout
		}
		var items []item
		for range 1 + rng.IntN(4) {
			q := policies[rng.IntN(len(policies))]
			if q.Shards() > len(drives) {
				continue
			}
			pick := slices.Clone(drives)
			rng.Shuffle(len(pick), func(i, j int) { pick[i], pick[j] = pick[j], pick[i] })
			pick = pick[:q.Shards()]
			if rng.IntN(5) == 0 {
				pick[0] = "gone-d0" // a drive of a node that left
			}
			f.Census.Add(q, 1, pick)
			it := item{m: q.M}
			for _, d := range pick {
				home := ""
				if d != "gone-d0" && !f.FailedDrives[d] {
					home = nodeOfDrive(d)
				}
				it.homes = append(it.homes, home)
			}
			items = append(items, it)
		}
		for _, drives := range l.Parts {
			it := item{m: l.Policy.M}
			for _, d := range drives {
				home := nodeOfDrive(d)
				if f.FailedDrives[d] {
					home = ""
				}
				it.homes = append(it.homes, home)
			}
			items = append(items, it)
		}
		groups := [][]string{l.SystemNodes()}
		for p := range l.Partitions {
			groups = append(groups, l.MetaNodes(p))
		}
		for _, g := range groups {
			items = append(items, item{m: len(g) - (len(g)/2 + 1), homes: g})
		}

		zoneOf := func(node string) string {
			nd, _ := l.Node(node)
			return nd.Zone
		}
		// survives says whether every item keeps enough when the domains
		// for which gone says so are lost, besides what is down already.
		survives := func(gone func(node string) bool) bool {
			for _, it := range items {
				lost := 0
				for _, h := range it.homes {
					if h == "" || f.Down[h] || gone(h) {
						lost++
					}
				}
				if lost > it.m {
					return false
				}
			}
			return true
		}
		brute := func(domains []string, of func(string) string) int {
			best := -1
			for size := 0; size <= len(domains); size++ {
				all := true
				for mask := range 1 << len(domains) {
					if bits.OnesCount(uint(mask)) != size {
						continue
					}
					all = all && survives(func(node string) bool {
						i := slices.Index(domains, of(node))
						return mask&(1<<i) != 0
					})
				}
				if !all {
					break
				}
				best = size
			}
			return best
		}
		var nodeIDs, zoneIDs []string
		for _, nd := range nodes {
			nodeIDs = append(nodeIDs, nd.ID)
			if !slices.Contains(zoneIDs, nd.Zone) {
				zoneIDs = append(zoneIDs, nd.Zone)
			}
		}
		got := Survival(f)

		// Rebuilding the shard on the node that left onto any live drive,
		// even one whose node holds another shard, survives no fewer.
		moved := Facts{Layout: l, Down: f.Down, FailedDrives: f.FailedDrives, Census: NewCensus(time.Unix(1, 0), 1)}
		for _, key := range slices.Sorted(maps.Keys(f.Census.shapes)) {
			sh := f.Census.shapes[key]
			d := slices.Clone(sh.drives)
			if i := slices.Index(d, "gone-d0"); i >= 0 {
				free := slices.DeleteFunc(slices.Clone(drives), func(x string) bool { return slices.Contains(d, x) })
				if len(free) > 0 {
					d[i] = free[rng.IntN(len(free))]
				}
			}
			moved.Census.Add(sh.policy, 1, d)
		}
		if after := Survival(moved); after.Data.NodeLosses < got.Data.NodeLosses || after.Data.ZoneLosses < got.Data.ZoneLosses {
			t.Fatalf("round %d: parts survive %d node and %d zone losses, and %d and %d once the shards off the layout are rebuilt",
				round, got.Data.NodeLosses, got.Data.ZoneLosses, after.Data.NodeLosses, after.Data.ZoneLosses)
		}

		wantNodes := brute(nodeIDs, func(n string) string { return n })
		wantZones := brute(zoneIDs, zoneOf)
		if got.NodeLosses != wantNodes || got.ZoneLosses != wantZones {
			t.Fatalf("round %d: %d nodes in %d zones, %s, down %v, failed %v: survives %d node and %d zone losses, by brute force %d and %d\n%+v",
				round, n, zones, p, f.Down, f.FailedDrives, got.NodeLosses, got.ZoneLosses, wantNodes, wantZones, got)
		}
	}
}
