package cluster

import (
	"fmt"
	"slices"
	"testing"

	"github.com/zeebo/xxh3"

	"github.com/redoubt-io/redoubt/internal/layout"
	"github.com/redoubt-io/redoubt/internal/placement"
)

// BenchmarkPlace measures the candidate list a write's placement builds,
// by cluster size (4 drives a node, 3 zones, EC 4+2).
func BenchmarkPlace(b *testing.B) {
	for _, n := range []int{3, 12, 50, 100} {
		b.Run(fmt.Sprintf("nodes=%d", n), func(b *testing.B) {
			var nodes []layout.Node
			for i := range n {
				nd := layout.Node{ID: fmt.Sprintf("n%03d", i), Zone: fmt.Sprintf("z%d", i%3), Addr: fmt.Sprintf("127.0.0.%d:7000", i+1)}
				for d := range 4 {
					nd.Drives = append(nd.Drives, layout.Drive{ID: fmt.Sprintf("n%03d-d%d", i, d), Capacity: 1 << 40})
				}
				nodes = append(nodes, nd)
			}
			pol := placement.Policy{K: 4, M: 2}
			if n == 3 {
				pol = placement.Policy{K: 2, M: 1}
			}
			l, err := layout.Compute(nil, nodes, layout.Config{Partitions: 256, Policy: pol})
			if err != nil {
				b.Fatal(err)
			}
			c := &Cluster{}
			c.mu.layout = l
			i := 0
			for b.Loop() {
				i++
				if len(c.Place(uint32(i%256), fmt.Sprintf("%040x", i))) == 0 {
					b.Fatal("no drives")
				}
			}
		})
	}
}

// TestPlaceOrder: Place lists the partition's drives first, then every
// other drive of the layout once, those of nodes the partition does not
// use first, each node's drives together, nodes in turn from one that a
// hash of the ID picks.
func TestPlaceOrder(t *testing.T) {
	var nodes []layout.Node
	for i := range 7 {
		nd := layout.Node{ID: fmt.Sprintf("n%d", i), Zone: fmt.Sprintf("z%d", i%3), Addr: fmt.Sprintf("127.0.0.%d:7000", i+1)}
		for d := range 1 + i%3 {
			nd.Drives = append(nd.Drives, layout.Drive{ID: fmt.Sprintf("n%d-d%d", i, d), Capacity: 1 << 40})
		}
		nodes = append(nodes, nd)
	}
	l, err := layout.Compute(nil, nodes, layout.Config{Partitions: 16, Policy: placement.Policy{K: 2, M: 1}})
	if err != nil {
		t.Fatal(err)
	}
	c := &Cluster{}
	c.mu.layout = l
	total := 0
	nodeOf := map[string]int{}
	for ni, n := range l.Nodes {
		for _, d := range n.Drives {
			nodeOf[d.ID] = ni
			total++
		}
	}
	for p := range 16 {
		first := l.Drives(p)
		used := map[int]bool{}
		for _, d := range first {
			used[nodeOf[d]] = true
		}
		for i := range 50 {
			got := c.Place(uint32(p), fmt.Sprintf("%040x", i*7919))
			if len(got) != total {
				t.Fatalf("partition %d: %d drives, want %d: %v", p, len(got), total, got)
			}
			if !slices.Equal(got[:len(first)], first) {
				t.Fatalf("partition %d: %v does not begin with %v", p, got, first)
			}
			seen := map[string]bool{}
			for _, d := range got {
				if seen[d] {
					t.Fatalf("partition %d: %s twice in %v", p, d, got)
				}
				seen[d] = true
			}
			if want := placeByScan(l, p, fmt.Sprintf("%040x", i*7919)); !slices.Equal(got, want) {
				t.Fatalf("partition %d: %v, want %v", p, got, want)
			}
		}
	}
}

// placeByScan is Place written plainly, searching the layout for each
// drive's node: the statement Place is checked against.
func placeByScan(l *layout.Layout, p int, id string) []string {
	first := l.Drives(p)
	out := slices.Clone(first)
	used := map[string]bool{}
	for _, d := range first {
		if n, ok := l.NodeOf(d); ok {
			used[n.ID] = true
		}
	}
	var fresh, rest []string
	start := int(xxh3.HashString(id) % uint64(len(l.Nodes)))
	for i := range l.Nodes {
		n := l.Nodes[(start+i)%len(l.Nodes)]
		for _, d := range n.Drives {
			switch {
			case slices.Contains(first, d.ID):
			case used[n.ID]:
				rest = append(rest, d.ID)
			default:
				fresh = append(fresh, d.ID)
			}
		}
	}
	return append(append(out, fresh...), rest...)
}
