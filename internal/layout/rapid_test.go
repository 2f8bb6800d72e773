package layout

import (
	"fmt"
	"reflect"
	"testing"

	"github.com/redoubt-io/redoubt/internal/placement"
	"pgregory.net/rapid"
)

func drawNode(t *rapid.T, id int, zones int) Node {
	n := Node{ID: fmt.Sprintf("r%03d", id), Zone: fmt.Sprintf("z%d", rapid.IntRange(0, zones-1).Draw(t, "zone"))}
	mult := rapid.SampledFrom([]uint64{1, 2, 4}).Draw(t, "mult")
	for d := range rapid.IntRange(1, 4).Draw(t, "drives") {
		c := mult * tb
		if rapid.IntRange(0, 5).Draw(t, "odd") == 0 {
			c = rapid.Uint64Range(1, 8*tb).Draw(t, "cap")
		}
		n.Drives = append(n.Drives, Drive{ID: fmt.Sprintf("r%03d-d%d", id, d), Capacity: c})
	}
	return n
}

// TestPropertyRandomClusters computes layouts for random clusters and
// random sequences of operator edits, and checks the promises of the
// package doc after each.
func TestPropertyRandomClusters(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		zones := rapid.IntRange(1, 5).Draw(t, "zones")
		var nodes []Node
		next := 0
		for range rapid.IntRange(1, 24).Draw(t, "nodes") {
			nodes = append(nodes, drawNode(t, next, zones))
			next++
		}
		drives := 0
		for _, n := range nodes {
			drives += len(n.Drives)
		}
		var fit []placement.Policy
		for _, p := range append(policies, placement.Policy{K: 1, M: 0, Mirror: true}, placement.Policy{K: 1, M: 1, Mirror: true}) {
			if p.Shards() <= drives {
				fit = append(fit, p)
			}
		}
		cfg := Config{
			Partitions: rapid.SampledFrom([]int{1, 7, 64, 256}).Draw(t, "partitions"),
			Policy:     rapid.SampledFrom(fit).Draw(t, "policy"),
		}
		l, err := Compute(nil, nodes, cfg)
		if err != nil {
			t.Fatal(err)
		}
		check(t, l)
		for step := range rapid.IntRange(1, 4).Draw(t, "steps") {
			var st Stage
			removed := ""
			switch op := rapid.IntRange(0, 3).Draw(t, "op"); {
			case op == 0:
				st.AddNode(drawNode(t, next, zones))
				next++
			case op == 1 && len(nodes) > 1:
				removed = nodes[rapid.IntRange(0, len(nodes)-1).Draw(t, "victim")].ID
				st.RemoveNode(removed)
			case op == 2:
				st.SetZone(nodes[rapid.IntRange(0, len(nodes)-1).Draw(t, "moved")].ID, fmt.Sprintf("z%d", rapid.IntRange(0, zones).Draw(t, "to")))
			default:
				n := nodes[rapid.IntRange(0, len(nodes)-1).Draw(t, "resized")]
				st.SetCapacity(n.ID, rapid.Uint64Range(1, 8*tb).Draw(t, "newcap"))
			}
			edited, err := st.Apply(nodes)
			if err != nil {
				t.Fatal(err)
			}
			n := 0
			for _, nd := range edited {
				n += len(nd.Drives)
			}
			if n < cfg.Policy.Shards() {
				continue
			}
			next2, err := Compute(l, edited, cfg)
			if err != nil {
				t.Fatalf("step %d: %v", step, err)
			}
			check(t, next2)
			again, err := Compute(l, edited, cfg)
			if err != nil || !reflect.DeepEqual(next2, again) {
				t.Fatalf("step %d: not deterministic", step)
			}
			if removed != "" {
				// Removing a node frees its slots; whatever else moves is
				// forced by changed caps or shares reaching a cap, and
				// stays a fraction of it.
				held := 0
				for _, part := range l.Parts {
					for _, d := range part {
						if nd, _ := l.NodeOf(d); nd.ID == removed {
							held++
						}
					}
				}
				if m := Diff(l, next2, nil); m.Slots < held {
					t.Fatalf("step %d: removing %s moved %d slots, it held %d", step, removed, m.Slots, held)
				}
			}
			l, nodes = next2, edited
		}
	})
}
