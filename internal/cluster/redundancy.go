package cluster

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/redoubt-io/redoubt/internal/admin"
	"github.com/redoubt-io/redoubt/internal/layout"
	"github.com/redoubt-io/redoubt/internal/meta"
	"github.com/redoubt-io/redoubt/internal/placement"
)

// How many more losses the cluster survives.
//
// A policy EC K+M (or M+1 mirrors) promises that every chunk survives the
// loss of any M of its shards; the cluster turns that into M node losses
// only while every shard of a part has a node of its own. When nodes are
// lost for good there can be fewer nodes than shards: EC 4+2 on five nodes
// puts two shards of every part on one node, and losing that node and one
// more loses three shards. Re-placing cannot help (six shards need six
// nodes); re-coding can, and the cluster does it for new writes when it
// chooses the policy itself (ClusterPolicy: five nodes write EC 3+2), but
// data already stored keeps its code. So Survival states, from what is
// stored and where, how many more losses every object survives now, and
// what would restore the promise.

// Facts is what Survival judges: the layout and what is down now, the
// stored data as counted, and the Raft groups' voters as seen.
type Facts struct {
	// Layout gives the failure domains (its nodes and their zones), the
	// drives new writes go to and the policy they get, and the voters of
	// every Raft group.
	Layout *layout.Layout
	// Down holds the layout's nodes that are down now or do not answer:
	// their shards and votes count as lost.
	Down map[string]bool
	// FailedDrives holds drives whose node reports them failed or waiting
	// to be refilled: their shards count as lost.
	FailedDrives map[string]bool
	// Groups are the voters of Raft groups as the answering node sees them
	// now. While a group changes members they differ from the layout's
	// choice, and the weaker of the two counts.
	Groups []GroupVoters
	// Census is the stored data as last counted; nil before a count.
	Census *Census
	// CatchingUp holds, by node, the groups (by GroupVoters.Name) whose
	// leader reports the node's replica as catching up: a learner, or a
	// voter waiting for a snapshot. Its vote and copy count as lost.
	CatchingUp map[string][]string
}

// GroupVoters is one Raft group's voters by node ID.
type GroupVoters struct {
	Name   string // e.g. "partition 12", "the System group"
	Voters []string
}

// maxCensusShapes bounds the distinct (policy, drive set) pairs a Census
// keeps. Parts are placed by their partition's drive list, so a cluster
// has a few per partition; writes that went around down drives add some.
// Past the bound a census is incomplete, and says so.
const maxCensusShapes = 1 << 16

// Census is where stored data's shards are: object parts grouped by
// policy and set of drives. Build it with NewCensus and Add, from one
// goroutine; once built it is read only.
type Census struct {
	// At is when the count began; Layout the layout version then.
	At     time.Time
	Layout uint64
	// Parts counts the object parts added.
	Parts int64
	// Incomplete says that parts in more than maxCensusShapes distinct
	// placements were found, and the later ones were not kept.
	Incomplete bool
	shapes     map[string]*censusShape
}

type censusShape struct {
	policy       placement.Policy
	drives       []string
	parts, bytes int64
}

// NewCensus starts a count begun at, under layout version layoutVersion.
func NewCensus(at time.Time, layoutVersion uint64) *Census {
	return &Census{At: at, Layout: layoutVersion, shapes: map[string]*censusShape{}}
}

// Add counts one object part of size bytes, coded by p, with shard i on
// drives[i].
func (c *Census) Add(p placement.Policy, size int64, drives []string) {
	c.Parts++
	sorted := slices.Clone(drives)
	slices.Sort(sorted)
	key := fmt.Sprintf("%d+%d/%t/%s", p.K, p.M, p.Mirror, strings.Join(sorted, "\x00"))
	s, ok := c.shapes[key]
	if !ok {
		if len(c.shapes) >= maxCensusShapes {
			c.Incomplete = true
			return
		}
		s = &censusShape{policy: p, drives: sorted}
		c.shapes[key] = s
	}
	s.parts++
	s.bytes += size
}

// Survival computes, from f alone, how many more node and zone losses
// every object survives now (TestSurvival):
//
//   - an object part survives the loss of a set of nodes while it keeps
//     at least K of its K+M shards (one of its mirrors): with budget M less
//     the shards lost already (on down nodes, failed drives, or nodes out
//     of the layout, which the data is leaving), it survives j more node
//     losses when the j nodes holding most of its shards hold at most the
//     budget, and likewise for zones;
//   - a Raft group serves while a majority of its voters is up: with v
//     voters, it survives j more losses when the j nodes or zones holding
//     most of its live voters hold at most v - (v/2+1) - (voters lost:
//     down, out of the layout, or catching up, whose copy is not there
//     yet; TestRedundancyCountsReplicasCatchingUp);
//   - the cluster survives the least of its stored parts (as counted),
//     of the parts new writes make (each partition's drive list under the
//     layout's policy) and of its metadata groups (the layout's voters
//     and the voters seen now).
//
// A shard counted as lost on a node out of the layout is rebuilt or moved
// later onto some live drive, which never makes the part survive fewer
// losses than counting it lost did (TestSurvivalMatchesBruteForce checks
// it): the figure never claims more than the data survives once it has
// moved. Relocation (see Relocation) moves other shards only onto nodes
// that hold none of the part, which cannot lower it either, so a count
// stays a safe figure while the data moves, until the next count.
func Survival(f Facts) admin.RedundancyStatus {
	l := f.Layout
	j := newJudge(f)
	var out admin.RedundancyStatus
	out.Zones = len(j.zones)

	newWrites := tally{st: &out.NewWrites}
	for p, drives := range l.Parts {
		v := j.part(l.Policy, drives)
		newWrites.add(v.nodes, v.zones, 1, 0, func() string { return fmt.Sprintf("partition %d: %s", p, v.describe(l.Policy)) })
	}

	policies := []placement.Policy{l.Policy}
	if c := f.Census; c != nil {
		out.CountedAt = c.At
		if c.Incomplete {
			out.CountError = fmt.Sprintf("the count kept the first %d distinct placements only", maxCensusShapes)
		}
		data := tally{st: &out.Data}
		for _, key := range slices.Sorted(maps.Keys(c.shapes)) {
			s := c.shapes[key]
			v := j.part(s.policy, s.drives)
			if v.off > 0 {
				out.Moving += s.parts
			}
			if !slices.Contains(policies, s.policy) {
				policies = append(policies, s.policy)
			}
			data.add(v.nodes, v.zones, s.parts, s.bytes, func() string { return v.describe(s.policy) })
		}
	}
	slices.SortStableFunc(policies[1:], func(a, b placement.Policy) int { return cmp.Compare(a.String(), b.String()) })

	groups := tally{st: &out.Metadata}
	seen := map[string][][]string{}
	for _, g := range f.Groups {
		seen[g.Name] = append(seen[g.Name], g.Voters)
	}
	group := func(name string, voters []string) {
		v := j.group(name, voters)
		for _, other := range seen[name] {
			if w := j.group(name, other); w.nodes < v.nodes || w.nodes == v.nodes && w.zones < v.zones {
				v = w
			}
		}
		if v.behind > 0 {
			out.CatchingUp++
		}
		groups.add(v.nodes, v.zones, 1, 0, func() string { return fmt.Sprintf("%s: %s", name, v.describeGroup()) })
	}
	for _, p := range l.Groups() {
		group(groupName(meta.Partition(p)), l.GroupNodes(p))
	}
	group(systemGroupName, l.SystemNodes())

	out.NodeLosses, out.ZoneLosses = out.Metadata.NodeLosses, out.Metadata.ZoneLosses
	for _, s := range []admin.SurvivalStatus{out.NewWrites, out.Data} {
		if s.Items > 0 {
			out.NodeLosses, out.ZoneLosses = min(out.NodeLosses, s.NodeLosses), min(out.ZoneLosses, s.ZoneLosses)
		}
	}

	// The promise is the strongest one made: to stored data coded by a
	// stronger policy than new writes get (a cluster that chose EC 2+1 for
	// the three nodes left holds EC 3+2 data), or to new writes.
	for _, p := range policies {
		out.Policies = append(out.Policies, p.String())
		out.PromisedNodeLosses = max(out.PromisedNodeLosses, p.M)
		out.PromisedZoneLosses = max(out.PromisedZoneLosses, j.evenZones(p))
	}
	for _, p := range policies {
		if p.M == out.PromisedNodeLosses {
			out.PromisedBy = append(out.PromisedBy, p.String())
		}
	}
	out.Kept = out.NodeLosses >= out.PromisedNodeLosses && out.ZoneLosses >= out.PromisedZoneLosses
	for _, n := range l.Nodes {
		if f.Down[n.ID] {
			out.Down = append(out.Down, n.ID)
			continue
		}
		for _, d := range n.Drives {
			if f.FailedDrives[d.ID] {
				out.FailedDrives = append(out.FailedDrives, d.ID)
			}
		}
	}
	if !out.Kept {
		explain(&out, l, policies)
	}
	return out
}

const systemGroupName = "the System group"

// defaultMaxMetaReplicas is the most voters MetaReplicas picks unasked:
// up to it, more nodes bring more voters.
const defaultMaxMetaReplicas = 5

// explain fills out's Reasons and Advice, for a cluster that survives less
// than promised.
func explain(out *admin.RedundancyStatus, l *layout.Layout, policies []placement.Policy) {
	promised := out.PromisedNodeLosses
	if len(out.Down) > 0 {
		out.Reasons = append(out.Reasons, fmt.Sprintf("%s of the layout %s down: %s shards and votes count as lost",
			plural(len(out.Down), "node", "nodes"), isAre(len(out.Down)), itsTheir(len(out.Down))))
	}
	if out.Moving > 0 {
		out.Reasons = append(out.Reasons, fmt.Sprintf("%s still %s shards on nodes out of the layout, counted as lost until they are rebuilt or moved",
			plural(int(out.Moving), "object part", "object parts"), hasHave(int(out.Moving))))
	}
	if n := int(out.CatchingUp); n > 0 {
		out.Reasons = append(out.Reasons, fmt.Sprintf("%s %s a replica still catching up (a new replica, or one waiting for a snapshot): it counts as lost until it holds the group's state",
			plural(n, "metadata group", "metadata groups"), hasHave(n)))
	}
	if n := len(out.FailedDrives); n > 0 {
		out.Reasons = append(out.Reasons, fmt.Sprintf("%s failed or %s to be refilled: %s shards count as lost",
			plural(n, "drive", "drives"), waitWaits(n), itsTheir(n)))
	}
	if m := l.Policy.M; m < promised {
		out.Reasons = append(out.Reasons, fmt.Sprintf("new writes are coded %s, which survives %s",
			l.Policy, plural(m, "node loss", "node losses")))
	}
	add := 0
	crowded := false
	if out.Data.Items > 0 && out.Data.NodeLosses < promised || out.NewWrites.NodeLosses < promised {
		for _, p := range policies {
			if s := p.Shards(); s > len(l.Nodes) {
				out.Reasons = append(out.Reasons, fmt.Sprintf("%s writes %d shards per chunk and the layout has %s: a node holds %d shards of a part",
					p, s, plural(len(l.Nodes), "node", "nodes"), (s+len(l.Nodes)-1)/len(l.Nodes)))
				add = max(add, s-len(l.Nodes))
				crowded = true
			}
		}
	}
	// Parts that share a node more than their policy needs on this many
	// nodes, with nothing down or leaving: writes that went around a node
	// that was down. Relocation spreads them when it next passes.
	spread := out.Data.Items > 0 && out.Data.NodeLosses < promised && !crowded &&
		len(out.Down) == 0 && len(out.FailedDrives) == 0 && out.Moving == 0
	if spread {
		out.Reasons = append(out.Reasons, "some stored parts have more shards on one node than they need, from writes that went around a node that was down")
	}
	if out.Metadata.NodeLosses < promised {
		if need := 2*promised + 1; l.MetaReplicas < need {
			why := fmt.Sprintf("metadata groups have %d voters, which keep a majority through %s; surviving %s takes %d voters",
				l.MetaReplicas, plural(l.MetaReplicas-(l.MetaReplicas/2+1), "loss", "losses"), plural(promised, "loss", "losses"), need)
			if need > defaultMaxMetaReplicas {
				why += " (--meta-replicas)"
			} else if len(l.Nodes) < need {
				add = max(add, need-len(l.Nodes))
			}
			out.Reasons = append(out.Reasons, why)
		}
	}
	if out.ZoneLosses < out.PromisedZoneLosses && out.NodeLosses >= promised {
		out.Reasons = append(out.Reasons, "some parts or groups have more in one zone than an even spread over the zones would put there")
	}
	if out.CountedAt.IsZero() {
		out.Reasons = append(out.Reasons, "the stored data has not been counted yet: the figures cover new writes and metadata")
	}
	var do []string
	if add > 0 {
		do = append(do, fmt.Sprintf("add %s", plural(add, "node", "nodes")))
	}
	if len(out.Down) > 0 {
		do = append(do, "bring the down nodes back")
	}
	if len(out.FailedDrives) > 0 {
		do = append(do, "refill the failed drives (redoubt repair status)")
	}
	if out.CatchingUp > 0 {
		do = append(do, "let the replicas catch up (redoubt status)")
	}
	if out.Moving > 0 && len(out.Down) == 0 {
		do = append(do, "let the data finish moving (redoubt repair status)")
	}
	if spread {
		do = append(do, "let relocation spread them (redoubt repair status)")
	}
	if len(do) > 0 {
		out.Advice = strings.Join(do, ", and ") + " to restore it"
	}
}

// judge evaluates parts and groups against one set of facts.
type judge struct {
	f      Facts
	zoneOf map[string]string          // layout node -> zone
	nodeOf map[string]string          // layout drive -> node
	zones  map[string]int             // zone -> nodes of the layout
	behind map[string]map[string]bool // group name -> nodes catching up in it
}

func newJudge(f Facts) *judge {
	j := &judge{f: f, zoneOf: map[string]string{}, nodeOf: map[string]string{}, zones: map[string]int{}, behind: map[string]map[string]bool{}}
	for n, groups := range f.CatchingUp {
		for _, g := range groups {
			if j.behind[g] == nil {
				j.behind[g] = map[string]bool{}
			}
			j.behind[g][n] = true
		}
	}
	for _, n := range f.Layout.Nodes {
		j.zoneOf[n.ID] = n.Zone
		j.zones[n.Zone]++
		for _, d := range n.Drives {
			j.nodeOf[d.ID] = n.ID
		}
	}
	return j
}

// verdict is what one part or group survives, with how it stands.
type verdict struct {
	nodes, zones int
	perNode      map[string]int // live shards or voters by node
	perZone      map[string]int
	total        int // shards or voters
	down, off    int // lost on down nodes or failed drives; off the layout
	behind       int // groups only: voters catching up
	quorum       int // groups only
}

// part judges an object part coded by p with shard i on drives[i].
func (j *judge) part(p placement.Policy, drives []string) verdict {
	v := verdict{perNode: map[string]int{}, perZone: map[string]int{}, total: len(drives)}
	for _, d := range drives {
		n, ok := j.nodeOf[d]
		switch {
		case !ok:
			v.off++
		case j.f.Down[n] || j.f.FailedDrives[d]:
			v.down++
		default:
			v.perNode[n]++
			v.perZone[j.zoneOf[n]]++
		}
	}
	budget := p.M - v.down - v.off
	v.nodes, v.zones = tolerate(v.perNode, budget), tolerate(v.perZone, budget)
	return v
}

// group judges the Raft group named name with the given voters.
func (j *judge) group(name string, voters []string) verdict {
	v := verdict{perNode: map[string]int{}, perZone: map[string]int{}, total: len(voters), quorum: len(voters)/2 + 1}
	for _, n := range voters {
		_, in := j.zoneOf[n]
		switch {
		case !in:
			v.off++
		case j.f.Down[n]:
			v.down++
		case j.behind[name][n]:
			v.behind++
		default:
			v.perNode[n]++
			v.perZone[j.zoneOf[n]]++
		}
	}
	budget := v.total - v.quorum - v.down - v.off - v.behind
	v.nodes, v.zones = tolerate(v.perNode, budget), tolerate(v.perZone, budget)
	return v
}

// evenZones is the zone losses p survives with its shards spread as
// evenly as can be over the layout's zones.
func (j *judge) evenZones(p placement.Policy) int {
	z := len(j.zones)
	if z == 0 {
		return 0
	}
	counts := map[string]int{}
	for i := range z {
		counts[fmt.Sprint(i)] = p.Shards() / z
		if i < p.Shards()%z {
			counts[fmt.Sprint(i)]++
		}
	}
	return tolerate(counts, p.M)
}

// tolerate is how many of the domains, whichever they are, can be lost
// with at most budget of the items they hold: the most domains whose
// largest counts sum to at most budget; -1 when budget is negative (too
// much is lost already).
func tolerate(counts map[string]int, budget int) int {
	if budget < 0 {
		return -1
	}
	c := slices.Sorted(maps.Values(counts))
	lost := 0
	for j := len(c) - 1; j >= 0; j-- {
		if lost+c[j] > budget {
			return len(c) - 1 - j
		}
		lost += c[j]
	}
	return len(c)
}

// describe says how a part stands, e.g. "EC 4+2, 6 shards: 2 on node
// n003, 1 on each of 4 other nodes".
func (v verdict) describe(p placement.Policy) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s, %d shards: %s", p, v.total, spread(v.perNode, "node"))
	if v.down > 0 {
		fmt.Fprintf(&b, "; %d on down nodes or failed drives", v.down)
	}
	if v.off > 0 {
		fmt.Fprintf(&b, "; %d on nodes out of the layout", v.off)
	}
	return b.String()
}

func (v verdict) describeGroup() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d voters, a majority is %d: %s", v.total, v.quorum, spread(v.perZone, "zone"))
	if v.down > 0 {
		fmt.Fprintf(&b, "; %d down", v.down)
	}
	if v.off > 0 {
		fmt.Fprintf(&b, "; %d out of the layout", v.off)
	}
	if v.behind > 0 {
		fmt.Fprintf(&b, "; %d catching up", v.behind)
	}
	return b.String()
}

// spread describes counts by domain, largest first: "2 on node n003, 1
// on each of 4 other nodes".
func spread(counts map[string]int, kind string) string {
	if len(counts) == 0 {
		return "none live"
	}
	keys := slices.SortedFunc(maps.Keys(counts), func(a, b string) int {
		if c := cmp.Compare(counts[b], counts[a]); c != 0 {
			return c
		}
		return cmp.Compare(a, b)
	})
	var parts []string
	for i := 0; i < len(keys); {
		same := i + 1
		for same < len(keys) && counts[keys[same]] == counts[keys[i]] {
			same++
		}
		switch n := same - i; {
		case n == 1 && i == 0:
			parts = append(parts, fmt.Sprintf("%d on %s %s", counts[keys[i]], kind, shortID(keys[i])))
		case n == 1:
			parts = append(parts, fmt.Sprintf("%d on one other %s", counts[keys[i]], kind))
		case i == 0:
			parts = append(parts, fmt.Sprintf("%d on each of %d %ss", counts[keys[i]], n, kind))
		default:
			parts = append(parts, fmt.Sprintf("%d on each of %d other %ss", counts[keys[i]], n, kind))
		}
		i = same
	}
	return strings.Join(parts, ", ")
}

func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// tally keeps the weakest of the items added to st.
type tally struct {
	st   *admin.SurvivalStatus
	some bool
}

func (t *tally) add(nodes, zones int, items, bytes int64, example func() string) {
	st := t.st
	st.Items += items
	switch {
	case !t.some || nodes < st.NodeLosses:
		st.NodeLosses, st.Weakest, st.Bytes, st.Example = nodes, items, bytes, example()
	case nodes == st.NodeLosses:
		st.Weakest += items
		st.Bytes += bytes
	}
	if !t.some || zones < st.ZoneLosses {
		st.ZoneLosses = zones
	}
	t.some = true
}

func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

func isAre(n int) string {
	if n == 1 {
		return "is"
	}
	return "are"
}

func hasHave(n int) string {
	if n == 1 {
		return "has"
	}
	return "have"
}

func waitWaits(n int) string {
	if n == 1 {
		return "waits"
	}
	return "wait"
}

func itsTheir(n int) string {
	if n == 1 {
		return "its"
	}
	return "their"
}
