package layout

import (
	"reflect"
	"slices"
	"testing"
)

// TestSplitDoublesMetadataPartitions: splitting a layout twice gives 512
// and then 1,024 metadata partitions over 256 base partitions, each
// keeping its base's metadata nodes, and moves no data: the drive lists,
// and so the balance (check: every drive within 1.05x of its share),
// are the same before and after. The depth survives encoding and later
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
		if !reflect.DeepEqual(next.Parts, l.Parts) {
			t.Fatal("a split changed the data placement")
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
