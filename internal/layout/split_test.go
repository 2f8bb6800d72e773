package layout

import (
	"encoding/json"
	"math"
	"reflect"
	"slices"
	"testing"

	"github.com/redoubt-io/redoubt/internal/placement"
)

// TestSplitDoublesMetadataPartitions: splitting a layout twice gives 512
// and then 1,024 metadata and data partitions over 256 base partitions,
// each keeping its base's metadata nodes, and moves no data: each data
// partition's halves keep its drives, so every drive holds twice its
// slots, and the balance (check: every drive within 1.05x of its share)
// is the same before and after. The depth survives encoding and later
// layout changes.
func TestSplitDoublesMetadataPartitions(t *testing.T) {
	nodes := cluster(5, 3, 2, profiles[0].cap)
	l, err := Compute(nil, nodes, Config{Partitions: 256, Policy: ec32})
	if err != nil {
		t.Fatal(err)
	}
	check(t, l)
	cur := l
	for _, want := range []int{512, 1024} {
		next, err := cur.Split()
		if err != nil {
			t.Fatal(err)
		}
		if next.Version != cur.Version+1 || len(next.Groups()) != want {
			t.Fatalf("split: v%d with %d metadata partitions, want v%d with %d", next.Version, len(next.Groups()), cur.Version+1, want)
		}
		check(t, next)
		if len(next.Parts) != want || next.DataPartitions() != want {
			t.Fatalf("split: %d data partitions, want %d", len(next.Parts), want)
		}
		for p, part := range next.Parts {
			if !slices.Equal(part, l.Parts[p%len(l.Parts)]) {
				t.Fatalf("a split changed the drives of data partition %d: %v, its base's %v", p, part, l.Parts[p%len(l.Parts)])
			}
		}
		if m := Diff(l, next, nil); m.Slots != 0 {
			t.Fatalf("a split moves %d slots", m.Slots)
		}
		seen := map[uint32]bool{}
		for _, g := range next.Groups() {
			if seen[g] {
				t.Fatalf("metadata partition %d twice", g)
			}
			seen[g] = true
			if got, base := next.GroupNodes(g), l.MetaNodes(next.BaseOf(g)); !slices.Equal(got, base) {
				t.Fatalf("metadata partition %d on %v, its base %d on %v", g, got, next.BaseOf(g), base)
			}
		}
		b, err := next.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		var back Layout
		if err := back.UnmarshalBinary(b); err != nil || !reflect.DeepEqual(&back, next) {
			t.Fatalf("round trip of a split layout: %v", err)
		}
		cur = next
	}
	// A layout change after the splits keeps them.
	more := append(slices.Clone(nodes), cluster(6, 3, 2, profiles[0].cap)[5])
	next, err := Compute(cur, more, Config{Partitions: 256, Policy: ec32})
	if err != nil {
		t.Fatal(err)
	}
	if next.Depth != 2 || len(next.Groups()) != 1024 {
		t.Fatalf("a layout change after two splits has depth %d", next.Depth)
	}
	deep := *cur
	deep.Depth = 12 // 256<<12 metadata partitions: more than MaxGroups
	if _, err := deep.Split(); err == nil {
		t.Fatal("a split past MaxGroups was allowed")
	}
}

// TestSplitThenRebalanceManyDrives: 100 nodes of 12 drives in 5 zones
// cannot be balanced over 256 partitions of 6 shards (1.28 slots a
// drive, so some hold 2 and others 1); after four splits (4,096 data
// partitions, no slot moved) a rebalance puts every drive within 1.05x
// of its fair share, moving only the slots that takes. A data key finds
// the same drives before and after each split.
func TestSplitThenRebalanceManyDrives(t *testing.T) {
	nodes := cluster(100, 5, 12, profiles[0].cap)
	cfg := Config{Partitions: 256, Policy: ec42}
	l, err := Compute(nil, nodes, cfg)
	if err != nil {
		t.Fatal(err)
	}
	fullest := func(l *Layout) float64 {
		m := 0.0
		for _, u := range l.Usage() {
			m = max(m, float64(u.Slots)/u.Share)
		}
		return m
	}
	before := fullest(l)
	if before <= 1.05 {
		t.Fatalf("test bug: 256 partitions already within 1.05x (%.3f) on 400 drives", before)
	}
	keys := make([]uint32, 1000)
	for i := range keys {
		keys[i] = placement.DataKey(uint32(i*7919)%256, uint32(i*104729))
	}
	cur := l
	for range 4 {
		next, err := cur.Split()
		if err != nil {
			t.Fatal(err)
		}
		if m := Diff(cur, next, nil); m.Slots != 0 {
			t.Fatalf("a split moves %d slots", m.Slots)
		}
		for _, k := range keys {
			if !slices.Equal(cur.DataDrives(k), next.DataDrives(k)) {
				t.Fatalf("data key %#x: drives %v before a split, %v after", k, cur.DataDrives(k), next.DataDrives(k))
			}
		}
		if f := fullest(next); math.Abs(f-before) > 1e-9 {
			t.Fatalf("a split changed the fullest drive from %.3f to %.3f of its share", before, f)
		}
		cur = next
	}
	reb, err := Compute(cur, nodes, cfg)
	if err != nil {
		t.Fatal(err)
	}
	check(t, reb)
	after := fullest(reb)
	m := Diff(cur, reb, nil)
	t.Logf("fullest drive over its share: %.3f with 256 partitions, %.3f with %d after a rebalance moving %d of %d slots (%.1f%%)",
		before, after, len(reb.Parts), m.Slots, m.Total, 100*m.Fraction)
	if after > 1.05 {
		t.Fatalf("after two splits and a rebalance the fullest drive holds %.3fx its share", after)
	}
	// The least a rebalance can move: every slot above its drive's
	// ceiling of share must go.
	least := 0
	for _, u := range cur.Usage() {
		least += max(0, u.Slots-int(math.Ceil(u.Share)))
	}
	if m.Slots > 2*least {
		t.Fatalf("the rebalance moves %d slots; %d are above their drives' shares", m.Slots, least)
	}
}

// TestDecodeLayoutSplitBeforeDataSplit: a layout written when only the
// metadata split (one drive list per base partition) reads as the same
// placement: each data partition on its base's drives.
func TestDecodeLayoutSplitBeforeDataSplit(t *testing.T) {
	l, err := Compute(nil, cluster(5, 3, 2, profiles[0].cap), Config{Partitions: 16, Policy: ec32})
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(wireOf(t, l, 2))
	if err != nil {
		t.Fatal(err)
	}
	var back Layout
	if err := back.UnmarshalBinary(b); err != nil {
		t.Fatal(err)
	}
	if back.Depth != 2 || len(back.Parts) != 64 {
		t.Fatalf("decoded depth %d with %d data partitions, want 2 and 64", back.Depth, len(back.Parts))
	}
	for p, part := range back.Parts {
		if !slices.Equal(part, l.Parts[p%16]) {
			t.Fatalf("data partition %d on %v, its base on %v", p, part, l.Parts[p%16])
		}
	}
}

// wireOf is l's encoding with depth set as the older format wrote it:
// l's own lists, one per base partition.
func wireOf(t *testing.T, l *Layout, depth int) map[string]any {
	t.Helper()
	b, err := l.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	var w map[string]any
	if err := json.Unmarshal(b, &w); err != nil {
		t.Fatal(err)
	}
	w["depth"] = depth
	return w
}
