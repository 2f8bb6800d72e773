package placement

import "math/bits"

// SplitTree numbers the metadata partitions of a cluster whose base
// partitions 0..Base-1 may split, each in two, and each half again: a
// partition at depth d has an index i in [0, Base<<d), and its ID is i
// at depth 0 and (Base<<d)+i below, so IDs of different depths never
// meet and the base partitions keep theirs. Splitting (d, i) makes
// (d+1, i) and (d+1, i+(Base<<d)). Which keys go to which child is the
// objects layer's (objects.Splitter).
type SplitTree struct{ Base uint32 }

// MaxSplitDepth bounds how often a base partition may split.
const MaxSplitDepth = 14

// ID is the ID of the partition at depth d, index i.
func (t SplitTree) ID(d int, i uint32) uint32 {
	if d == 0 {
		return i
	}
	return t.Base<<d + i
}

// Pos is the depth and index of partition ID p.
func (t SplitTree) Pos(p uint32) (d int, i uint32) {
	if p < t.Base {
		return 0, p
	}
	d = bits.Len32(p/t.Base) - 1
	return d, p - t.Base<<d
}

// Valid says whether p is a partition of the tree, at most
// MaxSplitDepth deep and below 1<<31.
func (t SplitTree) Valid(p uint32) bool {
	if t.Base == 0 || p >= 1<<31 {
		return false
	}
	d, _ := t.Pos(p)
	return d <= MaxSplitDepth
}

// Children are the two partitions p splits into.
func (t SplitTree) Children(p uint32) [2]uint32 {
	d, i := t.Pos(p)
	return [2]uint32{t.ID(d+1, i), t.ID(d+1, i+t.Base<<d)}
}

// Parent is the partition p split from; ok is false at depth 0.
func (t SplitTree) Parent(p uint32) (uint32, bool) {
	d, i := t.Pos(p)
	if d == 0 {
		return 0, false
	}
	return t.ID(d-1, i%(t.Base<<(d-1))), true
}

// BaseOf is the base partition p descends from.
func (t SplitTree) BaseOf(p uint32) uint32 {
	_, i := t.Pos(p)
	return i % t.Base
}

// Level is the IDs of every partition at depth d, in index order.
func (t SplitTree) Level(d int) []uint32 {
	n := t.Base << d
	out := make([]uint32, n)
	for i := range n {
		out[i] = t.ID(d, i)
	}
	return out
}

// A data key names where a key's data goes whatever a layout's depth: the
// key's base partition in the low 16 bits and the low MaxSplitDepth bits
// of its split hash above them. At depth d its data partition is the
// partition of that depth holding the key (DataIndex). A plain base
// partition number is the data key of its keys whose split bits are all
// zero.
const dataKeyBaseBits = 16

// DataKey is the data key of a key in base partition base (below 1<<16)
// with split bits bits.
func DataKey(base, bits uint32) uint32 {
	return base&(1<<dataKeyBaseBits-1) | (bits&(1<<MaxSplitDepth-1))<<dataKeyBaseBits
}

// DataKeyOf is the data key of the keys of partition p: its base
// partition and the split bits that lead to it.
func (t SplitTree) DataKeyOf(p uint32) uint32 {
	_, i := t.Pos(p)
	return DataKey(i%t.Base, i/t.Base)
}

// DataIndex is the index, at depth d, of the partition holding the keys
// of data key k: its base partition plus Base times its first d split
// bits, as Children numbers them.
func (t SplitTree) DataIndex(k uint32, d int) uint32 {
	base := k & (1<<dataKeyBaseBits - 1)
	bits := k >> dataKeyBaseBits & (1<<d - 1)
	return base + t.Base*bits
}
