package placement

import (
	"testing"

	"pgregory.net/rapid"
)

// TestDataIndexFollowsSplits: the data partition of a key at depth d is
// the partition of that depth that holds it: walking Children from its
// base partition by its split bits, one per depth, ends at DataIndex. A
// partition's own data key (DataKeyOf) finds it again at its depth.
func TestDataIndexFollowsSplits(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		tr := SplitTree{Base: rapid.Uint32Range(1, 1<<16).Draw(t, "base")}
		base := rapid.Uint32Range(0, tr.Base-1).Draw(t, "p0")
		bits := rapid.Uint32Range(0, 1<<MaxSplitDepth-1).Draw(t, "bits")
		k := DataKey(base, bits)
		p := base
		for d := range MaxSplitDepth + 1 {
			if _, i := tr.Pos(p); tr.DataIndex(k, d) != i {
				t.Fatalf("depth %d: DataIndex %d, the key's partition %d has index %d", d, tr.DataIndex(k, d), p, i)
			}
			if got := tr.DataKeyOf(p); tr.DataIndex(got, d) != tr.DataIndex(k, d) {
				t.Fatalf("depth %d: partition %d's own data key %#x finds index %d, not %d", d, p, got, tr.DataIndex(got, d), tr.DataIndex(k, d))
			}
			if d == MaxSplitDepth || uint64(tr.Base)<<(d+1) >= 1<<31 {
				break
			}
			p = tr.Children(p)[bits>>d&1]
		}
	})
}
