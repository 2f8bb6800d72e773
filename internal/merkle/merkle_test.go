package merkle

import (
	"bytes"
	"encoding/binary"
	"errors"
	"maps"
	"slices"
	"testing"

	"pgregory.net/rapid"
)

// hashGen draws record hashes; few distinct first bytes, so that records
// share leaves. The drawn numbers are mixed, as a real hash's bits are:
// rapid shrinks draws towards zero, and hashes made of small numbers XOR
// to zero far more often than the 2^-128 the tree's contract allows for
// (the all-zero hash, alone, is a record no digest shows).
func hashGen() *rapid.Generator[Hash] {
	return rapid.Custom(func(t *rapid.T) Hash {
		var h Hash
		binary.BigEndian.PutUint64(h[:], mix(rapid.Uint64().Draw(t, "hi")))
		binary.BigEndian.PutUint64(h[8:], mix(rapid.Uint64().Draw(t, "lo")))
		h[0] = rapid.SampledFrom([]byte{0x00, 0x01, 0x10, 0x11, 0xff}).Draw(t, "first")
		return h
	})
}

// mix is splitmix64's finalizer: a bijection, so distinct draws stay
// distinct.
func mix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ x>>30) * 0xbf58476d1ce4e5b9
	x = (x ^ x>>27) * 0x94d049bb133111eb
	return x ^ x>>31
}

// treeOf is the tree of set, toggled in the order given.
func treeOf(t interface{ Fatal(...any) }, levels int, order []Hash) *Tree {
	tr, err := New(levels)
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range order {
		tr.Toggle(h)
	}
	return tr
}

func equalTrees(a, b *Tree) bool {
	for l := range a.nodes {
		if !slices.Equal(a.nodes[l], b.nodes[l]) {
			return false
		}
	}
	return true
}

// TestDigestIsOfTheSet: the tree depends on the set of records only:
// toggling a set's records in any order, with records added and removed
// again on the way, gives the tree of the set.
func TestDigestIsOfTheSet(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		levels := rapid.IntRange(1, 3).Draw(t, "levels")
		set := rapid.SliceOfDistinct(hashGen(), func(h Hash) Hash { return h }).Draw(t, "set")
		extra := rapid.SliceOfDistinct(hashGen(), func(h Hash) Hash { return h }).Draw(t, "extra")
		a := treeOf(t, levels, set)
		// Another order, with the extra records toggled in and out.
		order := append(slices.Clone(extra), set...)
		order = append(order, extra...)
		perm := rapid.Permutation(order).Draw(t, "order")
		// Each extra record is toggled twice more than the set's own
		// toggles of it: absent at the end unless in the set.
		b := treeOf(t, levels, perm)
		if !equalTrees(a, b) {
			t.Fatalf("trees of one set differ: roots %x and %x", a.Root(), b.Root())
		}
		empty := treeOf(t, levels, nil)
		if (len(set) == 0) != (a.Root() == empty.Root()) {
			t.Fatalf("%d records, root %x; empty root %x", len(set), a.Root(), empty.Root())
		}
	})
}

// remoteOf answers Diff's requests from tr, through the wire forms, and
// counts them.
func remoteOf(t interface{ Fatal(...any) }, tr *Tree, asked *int) Remote {
	return func(l int, parents []int) ([]Hash, error) {
		*asked++
		l2, p2, err := DecodeRequest(AppendRequest(nil, l, parents), tr.Levels())
		if err != nil {
			t.Fatal(err)
		}
		hs, err := tr.Children(l2, p2)
		if err != nil {
			return nil, err
		}
		return DecodeHashes(AppendHashes(nil, hs))
	}
}

// TestDiffFindsTheDifferingLeaves: Diff names exactly the leaves where the
// two sets differ, in at most one request per level; exchanging those
// leaves' records makes the trees, and the sets, equal.
func TestDiffFindsTheDifferingLeaves(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		levels := rapid.IntRange(1, 3).Draw(t, "levels")
		common := rapid.SliceOfDistinct(hashGen(), func(h Hash) Hash { return h }).Draw(t, "common")
		onlyA := rapid.SliceOfDistinct(hashGen(), func(h Hash) Hash { return h }).Draw(t, "onlyA")
		onlyB := rapid.SliceOfDistinct(hashGen(), func(h Hash) Hash { return h }).Draw(t, "onlyB")
		setA, setB := map[Hash]bool{}, map[Hash]bool{}
		for _, h := range common {
			setA[h], setB[h] = true, true
		}
		for _, h := range onlyA {
			setA[h] = true
		}
		for _, h := range onlyB {
			setB[h] = true
		}
		a := treeOf(t, levels, slices.Collect(maps.Keys(setA)))
		b := treeOf(t, levels, slices.Collect(maps.Keys(setB)))
		want := map[int]bool{}
		for h := range setA {
			if !setB[h] {
				want[Leaf(h, levels)] = true
			}
		}
		for h := range setB {
			if !setA[h] {
				want[Leaf(h, levels)] = true
			}
		}
		asked := 0
		got, err := Diff(a, b.Root(), remoteOf(t, b, &asked))
		if err != nil {
			t.Fatal(err)
		}
		if !slices.IsSorted(got) || !slices.Equal(got, slices.Sorted(maps.Keys(want))) {
			t.Fatalf("Diff = %v, want %v", got, slices.Sorted(maps.Keys(want)))
		}
		if asked > levels || (len(want) == 0 && asked != 0) {
			t.Fatalf("%d requests for %d levels, %d differing leaves", asked, levels, len(want))
		}
		// Exchange the differing leaves' records both ways.
		differ := map[int]bool{}
		for _, i := range got {
			differ[i] = true
		}
		for h := range setB {
			if differ[Leaf(h, levels)] && !setA[h] {
				setA[h] = true
				a.Toggle(h)
			}
		}
		for h := range setA {
			if differ[Leaf(h, levels)] && !setB[h] {
				setB[h] = true
				b.Toggle(h)
			}
		}
		if !equalTrees(a, b) || !maps.Equal(setA, setB) {
			t.Fatal("after the exchange the replicas still differ")
		}
	})
}

func TestLeafIsThePrefix(t *testing.T) {
	h := Hash{0xab, 0xcd, 0xef}
	for levels, want := range map[int]int{1: 0xa, 2: 0xab, 3: 0xabc, 4: 0xabcd} {
		if got := Leaf(h, levels); got != want {
			t.Errorf("Leaf(%x, %d) = %#x, want %#x", h[:3], levels, got, want)
		}
	}
	if _, err := New(0); !errors.Is(err, ErrInvalid) {
		t.Errorf("New(0): %v", err)
	}
	if _, err := New(MaxLevels + 1); !errors.Is(err, ErrInvalid) {
		t.Errorf("New(%d): %v", MaxLevels+1, err)
	}
}

// TestDiffOfAChangingPeer: a peer whose tree changed between two requests
// may answer children that agree under parents that did not; Diff then
// finds nothing to exchange rather than an error, and the next round
// finds the difference.
func TestDiffOfAChangingPeer(t *testing.T) {
	a := treeOf(t, 2, nil)
	b := treeOf(t, 2, []Hash{{0x12}})
	root := b.Root()
	b.Toggle(Hash{0x12}) // gone again before the first request
	asked := 0
	if got, err := Diff(a, root, remoteOf(t, b, &asked)); err != nil || len(got) != 0 {
		t.Fatalf("Diff against a peer that changed: %v %v", got, err)
	}
}

func FuzzDecodeRequest(f *testing.F) {
	f.Add(AppendRequest(nil, 0, []int{0}), 2)
	f.Add(AppendRequest(nil, 1, []int{1, 5, 15}), 2)
	f.Add(AppendRequest(nil, 2, []int{255}), 3)
	f.Fuzz(func(t *testing.T, b []byte, levels int) {
		l, parents, err := DecodeRequest(b, levels)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error %v is not ErrInvalid", err)
			}
			return
		}
		if !bytes.Equal(AppendRequest(nil, l, parents), b) {
			t.Fatalf("%x decodes to level %d %v, which encodes otherwise", b, l, parents)
		}
		tr, err := New(levels)
		if err != nil {
			t.Fatalf("a request accepted for a tree of %d levels: %v", levels, err)
		}
		if _, err := tr.Children(l, parents); err != nil {
			t.Fatalf("an accepted request is refused by Children: %v", err)
		}
	})
}

func FuzzDecodeHashes(f *testing.F) {
	f.Add(AppendHashes(nil, []Hash{{1}, {2}}))
	f.Add([]byte{1, 2, 3})
	f.Fuzz(func(t *testing.T, b []byte) {
		hs, err := DecodeHashes(b)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error %v is not ErrInvalid", err)
			}
			return
		}
		if !bytes.Equal(AppendHashes(nil, hs), b) {
			t.Fatalf("%x does not round-trip", b)
		}
	})
}
