package layout

import (
	"cmp"
	"errors"
	"fmt"
	"slices"

	"github.com/redoubt-io/redoubt/internal/placement"
)

// MaxPartitions bounds Config.Partitions: partitions are the unit of
// movement and of Raft groups, and a layout lists every one of them.
const MaxPartitions = 1 << 16

// MaxMetaReplicas bounds the voters of a partition's Raft group: more cost
// every write a round trip to more nodes and survive nothing a cluster of
// this kind meets.
const MaxMetaReplicas = 7

// MaxIDLen bounds node and drive identifiers.
const MaxIDLen = 255

// Sentinel errors, returned wrapped; test them with errors.Is.
var (
	// ErrInvalid is returned for a malformed node list, layout or config.
	ErrInvalid = errors.New("invalid layout")
	// ErrDuplicateID is returned (with ErrInvalid) when two nodes or two
	// drives share an identifier.
	ErrDuplicateID = errors.New("duplicate id")
	// ErrZeroCapacity is returned (with ErrInvalid) for a drive of capacity 0.
	ErrZeroCapacity = errors.New("zero capacity")
	// ErrNotEnoughDrives is returned when the policy needs more shards than
	// the cluster has drives.
	ErrNotEnoughDrives = errors.New("not enough drives for the policy")
	// ErrNotEnoughNodes is returned when the metadata replicas exceed the
	// nodes.
	ErrNotEnoughNodes = errors.New("not enough nodes")
	// ErrPartitionsChanged is returned by Compute when the partition count
	// differs from the previous layout's: it would remap every key.
	ErrPartitionsChanged = errors.New("partition count cannot change")
	// ErrUnknownID is returned by Stage.Apply for an edit naming a node or
	// drive that is not there.
	ErrUnknownID = errors.New("unknown id")
	// ErrFormat is returned by UnmarshalBinary for bytes that are not a
	// layout this version can read.
	ErrFormat = errors.New("malformed layout encoding")
)

// Drive is one disk of a node.
type Drive struct {
	ID       string
	Capacity uint64 // bytes; the drive's share of data is proportional to it
}

// Node is one server of the cluster.
type Node struct {
	ID     string
	Zone   string // failure domain: a site, room or rack
	Addr   string // node-to-node RPC address
	S3Addr string // S3 endpoint
	Drives []Drive
}

// Capacity is the sum of the node's drive capacities.
func (n Node) Capacity() uint64 {
	var c uint64
	for _, d := range n.Drives {
		c += d.Capacity
	}
	return c
}

func (n Node) clone() Node {
	n.Drives = slices.Clone(n.Drives)
	return n
}

// Layout is one version of the cluster's placement. It is a value: once
// built it is not modified, and its methods are safe for concurrent use.
type Layout struct {
	Version      uint64
	Partitions   int
	Policy       placement.Policy
	MetaReplicas int // voters of each partition's Raft group
	Nodes        []Node
	// Parts[p][i] is the drive holding shard i of every chunk of data
	// partition p; each list has Policy.Shards() distinct drives. The data
	// partitions are the metadata partitions of depth DataDepth, by index
	// (placement.SplitTree): Partitions<<DataDepth() lists, of which the
	// first Partitions are the base partitions'.
	Parts [][]string
	// Depth is how often every base partition's metadata has split
	// (Split): the metadata is in Partitions<<Depth groups, numbered by
	// placement.SplitTree, each a descendant of the base partition whose
	// drives hold its data and whose metadata nodes it keeps. Data never
	// moves for a split.
	Depth int
}

// Groups is the metadata partitions of l: the base partitions split
// Depth times.
func (l *Layout) Groups() []uint32 {
	return placement.SplitTree{Base: uint32(l.Partitions)}.Level(l.Depth)
}

// BaseOf is the base partition of metadata partition g: the one whose
// drives its data is on.
func (l *Layout) BaseOf(g uint32) int {
	return int(placement.SplitTree{Base: uint32(l.Partitions)}.BaseOf(g))
}

// GroupNodes is MetaNodes of metadata partition g's base partition: a
// split partition's halves keep its nodes.
func (l *Layout) GroupNodes(g uint32) []string { return l.MetaNodes(l.BaseOf(g)) }

// Split returns l with every metadata partition split once more, as the
// next version. The data partitions split with them, up to MaxPartitions:
// each half keeps its parent's drive list, so no data moves, and a later
// Compute may then place the halves apart, which is how a split lets a
// cluster of many drives be balanced (TestSplitThenRebalanceManyDrives).
func (l *Layout) Split() (*Layout, error) {
	if l.Depth >= placement.MaxSplitDepth {
		return nil, fmt.Errorf("%w: partitions split %d times already", ErrInvalid, l.Depth)
	}
	if l.Partitions<<(l.Depth+1) > MaxGroups {
		return nil, fmt.Errorf("%w: %d metadata partitions, at most %d", ErrInvalid, l.Partitions<<(l.Depth+1), MaxGroups)
	}
	n := *l
	n.Version++
	n.Depth++
	n.Parts = splitParts(l.Parts, n.Partitions<<n.DataDepth())
	return &n, nil
}

// splitParts is parts doubled until it has n lists: the halves of data
// partition i are i and i+len(parts), and both keep its drives.
func splitParts(parts [][]string, n int) [][]string {
	out := slices.Clone(parts)
	for len(out) < n {
		out = append(out, out...)
	}
	return slices.Clip(out)
}

// DataDepth is the depth of the data partitions: Depth, short of the
// depth at which there would be more than MaxPartitions of them.
func (l *Layout) DataDepth() int {
	d := 0
	for d < l.Depth && l.Partitions<<(d+1) <= MaxPartitions {
		d++
	}
	return d
}

// DataPartitions is the number of data partitions: len(Parts).
func (l *Layout) DataPartitions() int { return l.Partitions << l.DataDepth() }

// DataPart is the data partition of data key k (placement.DataKey), or -1
// if k's base partition is not one of l's.
func (l *Layout) DataPart(k uint32) int {
	if k&(1<<16-1) >= uint32(l.Partitions) {
		return -1
	}
	return int(placement.SplitTree{Base: uint32(l.Partitions)}.DataIndex(k, l.DataDepth()))
}

// DataDrives is the drive list of data key k's data partition (shared, do
// not modify), or nil if k is not one of l's.
func (l *Layout) DataDrives(k uint32) []string { return l.Drives(l.DataPart(k)) }

// MaxGroups bounds the metadata partitions of a layout (Groups).
const MaxGroups = 1 << 20

// Drives returns data partition p's ordered drive list (shared, do not
// modify), or nil if p is out of range.
func (l *Layout) Drives(p int) []string {
	if p < 0 || p >= len(l.Parts) {
		return nil
	}
	return l.Parts[p]
}

// NodeOf returns the node holding the drive. It scans the node list:
// callers resolving many drives should build their own index once per
// layout version.
func (l *Layout) NodeOf(driveID string) (Node, bool) {
	for _, n := range l.Nodes {
		for _, d := range n.Drives {
			if d.ID == driveID {
				return n, true
			}
		}
	}
	return Node{}, false
}

// Node returns the node with the given ID.
func (l *Layout) Node(id string) (Node, bool) {
	for _, n := range l.Nodes {
		if n.ID == id {
			return n, true
		}
	}
	return Node{}, false
}

// driveNodes maps each drive ID to the index of its node.
func (l *Layout) driveNodes() map[string]int {
	m := make(map[string]int)
	for i, n := range l.Nodes {
		for _, d := range n.Drives {
			m[d.ID] = i
		}
	}
	return m
}

// MetaNodes returns the node IDs of base partition p's Raft group: the
// first MetaReplicas distinct nodes of its drive list (that of data
// partition p, the first of its descendants), taking first the nodes of
// zones not yet picked, then the others, each pass in list order. When the
// list spans fewer nodes it is extended with other nodes, unseen zones
// first, ranked by a hash of (p, node ID) so that the extra load spreads
// over the cluster. It returns nil if p is out of range.
func (l *Layout) MetaNodes(p int) []string {
	if p < 0 || p >= l.Partitions || p >= len(l.Parts) {
		return nil
	}
	r := min(l.MetaReplicas, len(l.Nodes))
	byDrive := l.driveNodes()
	out := make([]string, 0, r)
	seen := make(map[int]bool)
	zones := make(map[string]bool)
	// Two passes over the list: nodes of unseen zones first, so that the
	// group survives the loss of a zone whenever the shards do.
	for pass := range 2 {
		for _, d := range l.Parts[p] {
			ni, ok := byDrive[d]
			if !ok || seen[ni] || len(out) == r || (pass == 0 && zones[l.Nodes[ni].Zone]) {
				continue
			}
			seen[ni] = true
			zones[l.Nodes[ni].Zone] = true
			out = append(out, l.Nodes[ni].ID)
		}
	}
	if len(out) == r {
		return out
	}
	type cand struct {
		i       int
		newZone bool
		h       uint64
	}
	var cands []cand
	for i, n := range l.Nodes {
		if !seen[i] {
			cands = append(cands, cand{i, !zones[n.Zone], mix(hashString(n.ID) ^ uint64(p)*0x9e3779b97f4a7c15)})
		}
	}
	for len(out) < r && len(cands) > 0 {
		// Re-rank after each pick: a picked node's zone is no longer unseen.
		best := 0
		for j := 1; j < len(cands); j++ {
			a, b := cands[j], cands[best]
			if a.newZone != b.newZone {
				if a.newZone {
					best = j
				}
				continue
			}
			if a.h < b.h || (a.h == b.h && l.Nodes[a.i].ID < l.Nodes[b.i].ID) {
				best = j
			}
		}
		c := cands[best]
		cands = slices.Delete(cands, best, best+1)
		out = append(out, l.Nodes[c.i].ID)
		zone := l.Nodes[c.i].Zone
		for j := range cands {
			if l.Nodes[cands[j].i].Zone == zone {
				cands[j].newZone = false
			}
		}
	}
	return out
}

// SystemNodes returns the voters of the system Raft group: 1, 2, 3, 3 and
// then 5 nodes for clusters of 1, 2, 3, 4 and 5+ nodes (an odd count from
// three up, as an even one tolerates no more failures). Zones are visited
// in turn, largest first, so that voters spread over as many zones as
// possible; within a zone nodes are taken in ID order.
func (l *Layout) SystemNodes() []string {
	n := len(l.Nodes)
	want := min(n, 5)
	if want == 4 {
		want = 3
	}
	byZone := map[string][]string{}
	for _, nd := range l.Nodes {
		byZone[nd.Zone] = append(byZone[nd.Zone], nd.ID)
	}
	zones := make([]string, 0, len(byZone))
	for z, ids := range byZone {
		slices.Sort(ids)
		zones = append(zones, z)
	}
	slices.SortFunc(zones, func(a, b string) int {
		if c := cmp.Compare(len(byZone[b]), len(byZone[a])); c != 0 {
			return c
		}
		return cmp.Compare(a, b)
	})
	out := make([]string, 0, want)
	for round := 0; len(out) < want; round++ {
		for _, z := range zones {
			if round < len(byZone[z]) && len(out) < want {
				out = append(out, byZone[z][round])
			}
		}
	}
	return out
}

// DriveUsage is one drive's load in a layout.
type DriveUsage struct {
	Drive string
	Node  string
	Zone  string
	// Slots is how many partitions place a shard on the drive.
	Slots int
	// Share is the drive's fair number of slots: proportional to its
	// capacity, except where the zone and node spreading rules cap what
	// its zone or node may hold (the excess then goes, again by capacity,
	// to the drives that can take it). Compute gives every drive
	// floor(Share) or ceil(Share) slots.
	Share float64
}

// Usage returns every drive's slots and fair share, in node then drive
// order.
func (l *Layout) Usage() []DriveUsage {
	pr := newProblem(l.Nodes, len(l.Parts), l.Policy.Shards())
	shares := pr.shares()
	count := make(map[string]int)
	for _, part := range l.Parts {
		for _, d := range part {
			count[d]++
		}
	}
	out := make([]DriveUsage, 0, len(pr.drives))
	for i, d := range pr.drives {
		n := l.Nodes[d.node]
		out = append(out, DriveUsage{Drive: d.id, Node: n.ID, Zone: n.Zone, Slots: count[d.id], Share: shares[i]})
	}
	return out
}

// Validate reports whether l is well formed: a valid node list, policy and
// replica count, and Partitions lists of Policy.Shards() distinct known
// drives. It does not recheck balance or spreading, which are Compute's
// promises, not invariants of the format.
func (l *Layout) Validate() error {
	if l.Version == 0 {
		return fmt.Errorf("%w: version 0", ErrInvalid)
	}
	if l.Partitions < 1 || l.Partitions > MaxPartitions {
		return fmt.Errorf("%w: %d partitions, want 1..%d", ErrInvalid, l.Partitions, MaxPartitions)
	}
	if err := l.Policy.Validate(); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	drives, err := validateNodes(l.Nodes)
	if err != nil {
		return err
	}
	if s := l.Policy.Shards(); s > drives {
		return fmt.Errorf("%w: %v needs %d drives, the layout has %d", ErrNotEnoughDrives, l.Policy, s, drives)
	}
	if l.MetaReplicas < 1 || l.MetaReplicas > MaxMetaReplicas {
		return fmt.Errorf("%w: %d metadata replicas, want 1..%d", ErrInvalid, l.MetaReplicas, MaxMetaReplicas)
	}
	if l.MetaReplicas > len(l.Nodes) {
		return fmt.Errorf("%w: %d metadata replicas over %d nodes", ErrNotEnoughNodes, l.MetaReplicas, len(l.Nodes))
	}
	if l.Depth < 0 || l.Depth > placement.MaxSplitDepth || l.Partitions<<l.Depth > MaxGroups {
		return fmt.Errorf("%w: partitions split %d times", ErrInvalid, l.Depth)
	}
	if len(l.Parts) != l.DataPartitions() {
		return fmt.Errorf("%w: %d partition lists for %d data partitions", ErrInvalid, len(l.Parts), l.DataPartitions())
	}
	known := l.driveNodes()
	for p, part := range l.Parts {
		if len(part) != l.Policy.Shards() {
			return fmt.Errorf("%w: partition %d has %d drives, want %d", ErrInvalid, p, len(part), l.Policy.Shards())
		}
		for i, d := range part {
			if _, ok := known[d]; !ok {
				return fmt.Errorf("%w: partition %d names unknown drive %q", ErrInvalid, p, d)
			}
			if slices.Contains(part[:i], d) {
				return fmt.Errorf("%w: partition %d lists drive %q twice", ErrInvalid, p, d)
			}
		}
	}
	return nil
}

// ValidateNodes reports whether nodes can form a layout: unique non-empty
// node and drive IDs, at least one drive per node, no zero capacity.
func ValidateNodes(nodes []Node) error {
	_, err := validateNodes(nodes)
	return err
}

func validateNodes(nodes []Node) (drives int, err error) {
	if len(nodes) == 0 {
		return 0, fmt.Errorf("%w: no nodes", ErrNotEnoughNodes)
	}
	nodeIDs := make(map[string]bool, len(nodes))
	driveIDs := make(map[string]bool)
	for _, n := range nodes {
		if err := checkID("node", n.ID); err != nil {
			return 0, err
		}
		if nodeIDs[n.ID] {
			return 0, fmt.Errorf("%w: %w: node %q", ErrInvalid, ErrDuplicateID, n.ID)
		}
		nodeIDs[n.ID] = true
		if len(n.Drives) == 0 {
			return 0, fmt.Errorf("%w: node %q has no drives", ErrInvalid, n.ID)
		}
		for _, d := range n.Drives {
			if err := checkID("drive", d.ID); err != nil {
				return 0, err
			}
			if driveIDs[d.ID] {
				return 0, fmt.Errorf("%w: %w: drive %q", ErrInvalid, ErrDuplicateID, d.ID)
			}
			driveIDs[d.ID] = true
			if d.Capacity == 0 {
				return 0, fmt.Errorf("%w: %w: drive %q of node %q", ErrInvalid, ErrZeroCapacity, d.ID, n.ID)
			}
		}
		drives += len(n.Drives)
	}
	return drives, nil
}

func checkID(kind, id string) error {
	if id == "" || len(id) > MaxIDLen {
		return fmt.Errorf("%w: %s id %q must have 1..%d bytes", ErrInvalid, kind, id, MaxIDLen)
	}
	return nil
}

// Config is what Compute needs besides the node list.
type Config struct {
	// Partitions is the number of partitions keys hash to. It cannot change
	// once data is stored. More partitions balance finer and move data in
	// smaller steps, but each is a Raft group and a list in the layout.
	Partitions int
	// Policy is the redundancy of every partition. The zero value means
	// placement.DefaultPolicy of the cluster's drive count.
	Policy placement.Policy
	// MetaReplicas is the number of voters of each partition's Raft group;
	// 0 means min(3, nodes): three survive one lost node, and a cluster of
	// fewer nodes cannot have more.
	MetaReplicas int
}

// DefaultConfig returns 256 partitions (a 1.05 balance needs a few slots per
// drive: 256 × 6 shards spread over 400 drives still gives each about 4),
// the default policy and replica count for the cluster's size.
func DefaultConfig() Config {
	return Config{Partitions: 256}
}

// Validate checks the fields on their own; Compute checks them against the
// node list.
func (c Config) Validate() error {
	if c.Partitions < 1 || c.Partitions > MaxPartitions {
		return fmt.Errorf("%w: %d partitions, want 1..%d", ErrInvalid, c.Partitions, MaxPartitions)
	}
	if c.Policy != (placement.Policy{}) {
		if err := c.Policy.Validate(); err != nil {
			return fmt.Errorf("%w: %w", ErrInvalid, err)
		}
	}
	if c.MetaReplicas < 0 || c.MetaReplicas > MaxMetaReplicas {
		return fmt.Errorf("%w: %d metadata replicas, want 0..%d", ErrInvalid, c.MetaReplicas, MaxMetaReplicas)
	}
	return nil
}
