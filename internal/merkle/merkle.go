// Package merkle summarises a set of records so that two replicas find the
// records one holds and the other lacks by exchanging the digests of the
// ranges where they differ, and little else: the anti-entropy of Dynamo,
// Cassandra and Garage. An available bucket's partition replicas hold
// immutable records (versions and removals of keys); each keeps a Tree of
// them and, with a peer, descends the two trees from the root to the
// leaves whose digests differ, then exchanges only those leaves' records.
//
// Contract:
//
//  1. A record is named by a Hash of 16 bytes that the caller derives from
//     its whole content (a cryptographic hash: records with equal hashes
//     are taken to be equal). A Tree has 16^levels leaves; a record
//     belongs to the leaf its hash's first 4·levels bits name (Leaf).
//  2. A node's digest is the XOR of the hashes of the records under it.
//     Toggle adds a record that is absent and removes one that is
//     present; the digests depend only on the set of records, not on the
//     order or the grouping of the toggles (TestDigestIsOfTheSet).
//  3. Trees of equal sets have equal digests everywhere. Trees of sets
//     that differ under a node have different digests there, except with
//     the probability that some records' hashes XOR to zero, which for
//     a cryptographic hash is negligible (2^-128 per node).
//  4. Diff descends a local tree and a remote one level by level, asking
//     the remote side only for the children of nodes whose digests differ,
//     and returns exactly the leaves whose digests differ
//     (TestDiffFindsTheDifferingLeaves); its requests number at most one
//     per level, each naming at most 16 times the nodes found different
//     at the level above.
//
// The package is pure: no I/O, no clock, no randomness.
package merkle

import (
	"errors"
	"fmt"
	"slices"
)

// Hash names a record; Size bytes.
type Hash [Size]byte

// Size is a Hash's length.
const Size = 16

// Fanout is the number of children of a node.
const Fanout = 16

// MaxLevels bounds a Tree's depth: 16^4 = 65,536 leaves, a digest of 1 MiB.
const MaxLevels = 4

// ErrInvalid is returned (wrapped) for an argument or an encoding the
// package does not accept.
var ErrInvalid = errors.New("merkle: invalid")

// Tree holds the digests of a set of records at every level: level 0 is
// the root, level l has 16^l nodes, the last level the leaves.
type Tree struct {
	levels int
	nodes  [][]Hash // nodes[l][i]: node i of level l
}

// New returns the tree of the empty set with 16^levels leaves;
// 1 <= levels <= MaxLevels.
func New(levels int) (*Tree, error) {
	if levels < 1 || levels > MaxLevels {
		return nil, fmt.Errorf("%w: %d levels, want 1 to %d", ErrInvalid, levels, MaxLevels)
	}
	t := &Tree{levels: levels, nodes: make([][]Hash, levels+1)}
	n := 1
	for l := range t.nodes {
		t.nodes[l] = make([]Hash, n)
		n *= Fanout
	}
	return t, nil
}

// Clone returns a copy of t that shares nothing with it.
func (t *Tree) Clone() *Tree {
	c := &Tree{levels: t.levels, nodes: make([][]Hash, len(t.nodes))}
	for l := range t.nodes {
		c.nodes[l] = slices.Clone(t.nodes[l])
	}
	return c
}

// Levels is the number of levels below the root.
func (t *Tree) Levels() int { return t.levels }

// Leaf returns the index of the leaf of a tree of the given levels that
// holds h.
func Leaf(h Hash, levels int) int {
	i := 0
	for l := range levels {
		b := h[l/2]
		if l%2 == 0 {
			b >>= 4
		}
		i = i*Fanout + int(b&0xf)
	}
	return i
}

// Toggle adds h to the set if it is absent and removes it if present:
// XOR makes the two the same change.
func (t *Tree) Toggle(h Hash) {
	i := Leaf(h, t.levels)
	for l := t.levels; l >= 0; l-- {
		xorInto(&t.nodes[l][i], &h)
		i /= Fanout
	}
}

func xorInto(d, h *Hash) {
	for k := range d {
		d[k] ^= h[k]
	}
}

// Root is the digest of the whole set.
func (t *Tree) Root() Hash { return t.nodes[0][0] }

// Node returns the digest of node i of level l.
func (t *Tree) Node(l, i int) (Hash, error) {
	if l < 0 || l > t.levels || i < 0 || i >= len(t.nodes[l]) {
		return Hash{}, fmt.Errorf("%w: node %d of level %d in a tree of %d levels", ErrInvalid, i, l, t.levels)
	}
	return t.nodes[l][i], nil
}

// Children returns, for each node index of level l in parents, the
// digests of its Fanout children (level l+1), in order: what a peer's
// Diff asks for.
func (t *Tree) Children(l int, parents []int) ([]Hash, error) {
	if l < 0 || l >= t.levels {
		return nil, fmt.Errorf("%w: children of level %d in a tree of %d levels", ErrInvalid, l, t.levels)
	}
	out := make([]Hash, 0, len(parents)*Fanout)
	for _, p := range parents {
		if p < 0 || p >= len(t.nodes[l]) {
			return nil, fmt.Errorf("%w: node %d of level %d", ErrInvalid, p, l)
		}
		out = append(out, t.nodes[l+1][p*Fanout:(p+1)*Fanout]...)
	}
	return out, nil
}

// Remote answers, for a peer's tree, what Children answers for a local
// one: typically a call over the network.
type Remote func(l int, parents []int) ([]Hash, error)

// Diff returns, in order, the leaves of t whose digests differ from the
// remote tree's, which must have as many levels; root is the remote
// root's digest. It asks remote once per level below the root at most,
// and only about nodes that differ.
func Diff(t *Tree, root Hash, remote Remote) ([]int, error) {
	if root == t.Root() {
		return nil, nil
	}
	differ := []int{0}
	for l := 0; l < t.levels; l++ {
		theirs, err := remote(l, differ)
		if err != nil {
			return nil, err
		}
		if len(theirs) != len(differ)*Fanout {
			return nil, fmt.Errorf("%w: %d digests for the children of %d nodes", ErrInvalid, len(theirs), len(differ))
		}
		ours, err := t.Children(l, differ)
		if err != nil {
			return nil, err
		}
		next := differ[:0:0]
		for k := range ours {
			if ours[k] != theirs[k] {
				next = append(next, differ[k/Fanout]*Fanout+k%Fanout)
			}
		}
		differ = next
		if len(differ) == 0 {
			// The children agree though the parents did not: the remote
			// tree changed between requests. Nothing to exchange now.
			return nil, nil
		}
	}
	return slices.Clip(differ), nil
}
