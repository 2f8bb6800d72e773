package cluster

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/redoubt-io/redoubt/internal/meta"
	"github.com/redoubt-io/redoubt/internal/placement"
)

// TestSplitNeedsEveryNode: a split is refused while a node of the layout
// last started a version that cannot take part in one (its record has no
// "split" feature), and made once every node can: every group of the
// layout then answers meta.ErrMoved and its children, on the same nodes,
// hold its items; every node follows the layout of twice the metadata
// partitions.
func TestSplitNeedsEveryNode(t *testing.T) {
	tn := newTestNet(t, 3, 3)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c := tn.nodes[0]
	for p := range 16 {
		eventually(t, 10*time.Second, "commit", func() error { return put(ctx, c.Meta(), meta.Partition(p), "k", fmt.Sprint(p)) })
	}
	old := tn.nodes[2].self
	old.Features = nil // as a node of an earlier version records itself
	if err := c.putNode(ctx, old); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Split(ctx); !errors.Is(err, ErrStage) {
		t.Fatalf("split with a node that cannot: %v, want ErrStage", err)
	}
	if err := c.putNode(ctx, tn.nodes[2].self); err != nil {
		t.Fatal(err)
	}
	v, err := tn.nodes[1].Split(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if v.MetaPartitions != 32 || v.Version != 2 {
		t.Fatalf("split: layout v%d of %d metadata partitions, want v2 of 32", v.Version, v.MetaPartitions)
	}
	tree := placement.SplitTree{Base: 16}
	for _, n := range tn.nodes {
		eventually(t, 10*time.Second, "the split layout followed", func() error {
			if l := n.Layout(); l == nil || l.Depth != 1 {
				return fmt.Errorf("layout %+v", l)
			}
			return nil
		})
		for p := range 16 {
			if _, err := n.Meta().Get(ctx, meta.Partition(p), []byte("k")); !errors.Is(err, meta.ErrMoved) {
				t.Fatalf("node %s: read of split partition %d: %v, want ErrMoved", n.ID(), p, err)
			}
			for _, child := range tree.Children(uint32(p)) {
				it, err := n.Meta().Get(ctx, meta.Partition(child), []byte("k"))
				if err != nil || string(it.Value) != fmt.Sprint(p) {
					t.Fatalf("node %s: child %d of %d: %q, %v", n.ID(), child, p, it.Value, err)
				}
			}
		}
	}
}
