package vset

import (
	"bytes"
	"fmt"
	"slices"
	"testing"

	"pgregory.net/rapid"

	"github.com/redoubt-io/redoubt/internal/hlc"
)

// genVersion draws a version among a small set of IDs, so that states
// often hold the same versions and remove each other's.
func genID() *rapid.Generator[ID] {
	return rapid.Custom(func(t *rapid.T) ID {
		return ID{
			TS:   hlc.Timestamp{Wall: rapid.Int64Range(1, 4).Draw(t, "wall"), Logical: rapid.Uint32Range(0, 2).Draw(t, "logical")},
			Node: rapid.Uint64Range(1, 3).Draw(t, "node"),
		}
	})
}

func genVersion() *rapid.Generator[Version] {
	return rapid.Custom(func(t *rapid.T) Version {
		id := genID().Draw(t, "id")
		return Version{
			ID:     id,
			Marker: rapid.Bool().Draw(t, "marker"),
			Saw:    rapid.SliceOfN(genID(), 0, 3).Draw(t, "saw"),
			Body:   []byte(id.String()), // one ID, one content (contract 2)
		}
	})
}

func genState() *rapid.Generator[State] {
	return rapid.Custom(func(t *rapid.T) State {
		var s State
		for _, v := range rapid.SliceOfN(genVersion(), 0, 6).Draw(t, "versions") {
			s.Add(v)
		}
		for _, id := range rapid.SliceOfN(genID(), 0, 3).Draw(t, "removed") {
			s.Remove(id)
		}
		return s
	})
}

func merged(states ...State) State {
	var out State
	for _, s := range states {
		out.Merge(s)
	}
	return out
}

// Merge is a join: commutative, associative, idempotent; and merging in
// anything only grows a state.
func TestMergeIsASemilattice(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		a, b, c := genState().Draw(t, "a"), genState().Draw(t, "b"), genState().Draw(t, "c")
		if !merged(a, b).Equal(merged(b, a)) {
			t.Fatal("merge is not commutative")
		}
		ab := merged(a, b)
		ab.Merge(c)
		bc := merged(b, c)
		a2 := a.Clone()
		a2.Merge(bc)
		if !ab.Equal(a2) {
			t.Fatal("merge is not associative")
		}
		if !merged(a, a).Equal(a) || !merged(a).Equal(a) {
			t.Fatal("merge is not idempotent")
		}
		for _, id := range a.IDs() {
			if !slices.Contains(ab.IDs(), id) {
				t.Fatalf("merge dropped version %s", id)
			}
		}
	})
}

// A removed ID stays removed whatever is merged after the removal.
func TestRemovedStaysRemoved(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		s := genState().Draw(t, "s")
		id := genID().Draw(t, "id")
		s.Remove(id)
		for _, o := range rapid.SliceOfN(genState(), 1, 4).Draw(t, "later") {
			s.Merge(o)
		}
		for _, v := range s.Visible() {
			if v.ID == id {
				t.Fatalf("removed %s is visible again", id)
			}
		}
	})
}

// Replicas that accept writes while cut off from each other, each writer
// seeing only its own replica, then exchange states in any order: they
// end equal, every write that no other writer saw is visible, the
// current version is the greatest visible one, and a key written on two
// sides reports the conflict.
func TestNoWriteIsLostUnseen(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		unversioned := rapid.Bool().Draw(t, "unversioned")
		replicas := make([]State, rapid.IntRange(2, 4).Draw(t, "replicas"))
		var written []ID
		saw := map[ID][]ID{} // what each write saw
		clock := int64(0)
		for i := range rapid.IntRange(1, 20).Draw(t, "steps") {
			r := rapid.IntRange(0, len(replicas)-1).Draw(t, "replica")
			switch op := rapid.IntRange(0, 3).Draw(t, "op"); op {
			case 0, 1: // a write at replica r, by its node
				clock += rapid.Int64Range(0, 2).Draw(t, "tick")
				id := ID{TS: hlc.Timestamp{Wall: clock, Logical: uint32(i)}, Node: uint64(r + 1)}
				v, remove := Write(replicas[r], id, op == 1, []byte(fmt.Sprint(i)), unversioned)
				saw[id] = v.Saw
				replicas[r].Add(v)
				for _, id := range remove {
					replicas[r].Remove(id)
				}
				written = append(written, id)
			case 2: // r learns everything another replica holds
				o := rapid.IntRange(0, len(replicas)-1).Draw(t, "from")
				replicas[r].Merge(replicas[o])
			case 3: // nothing
			}
		}
		// Heal: exchanges in a drawn order until everyone has everything.
		order := rapid.Permutation(seq(len(replicas))).Draw(t, "order")
		var all State
		for _, r := range order {
			all.Merge(replicas[r])
		}
		for _, r := range order {
			replicas[r].Merge(all)
		}
		for r := range replicas {
			if !replicas[r].Equal(replicas[0]) {
				t.Fatalf("replica %d differs after the heal", r)
			}
		}
		// A write is seen when a later write saw it, or saw one that saw
		// it, and so on.
		seenBy := map[ID]bool{}
		var next []ID
		for _, ids := range saw {
			next = append(next, ids...)
		}
		for len(next) > 0 {
			id := next[len(next)-1]
			next = next[:len(next)-1]
			if !seenBy[id] {
				seenBy[id] = true
				next = append(next, saw[id]...)
			}
		}
		s := replicas[0]
		visible := map[ID]bool{}
		for _, v := range s.Visible() {
			visible[v.ID] = true
		}
		for _, id := range written {
			if !seenBy[id] && !visible[id] {
				t.Fatalf("write %s, seen by no other writer, is lost", id)
			}
			if !unversioned && !visible[id] {
				t.Fatalf("versioned write %s is not visible", id)
			}
		}
		cur, ok := s.Current()
		if ok {
			for _, v := range s.Visible() {
				if v.ID.Compare(cur.ID) > 0 {
					t.Fatalf("current %s is not the greatest visible (%s)", cur.ID, v.ID)
				}
			}
		} else if len(s.Visible()) > 0 {
			t.Fatal("visible versions but no current one")
		}
		unseen := 0
		for _, id := range written {
			if !seenBy[id] {
				unseen++
			}
		}
		if heads := s.Heads(); len(heads) != unseen {
			t.Fatalf("%d heads, want the %d writes no one saw", len(heads), unseen)
		}
	})
}

func seq(n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = i
	}
	return out
}

func TestVersionEncodingRoundTrips(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		v := genVersion().Draw(t, "v")
		var s State
		s.Add(v) // sorts and compacts Saw, as stored versions are
		v = s.Visible()[0]
		got, err := DecodeVersion(v.Encode())
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got.Encode(), v.Encode()) {
			t.Fatalf("round trip: %+v, want %+v", got, v)
		}
	})
}

func TestIDOrderIsByteOrder(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		a, b := genID().Draw(t, "a"), genID().Draw(t, "b")
		if got, want := bytes.Compare(a.AppendBinary(nil), b.AppendBinary(nil)), a.Compare(b); got != want {
			t.Fatalf("%s vs %s: bytes %d, IDs %d", a, b, got, want)
		}
		back, err := IDFromBinary(a.AppendBinary(nil))
		if err != nil || back != a {
			t.Fatalf("round trip of %s: %s, %v", a, back, err)
		}
	})
}

func FuzzDecodeVersion(f *testing.F) {
	f.Add(Version{ID: ID{TS: hlc.Timestamp{Wall: 5, Logical: 1}, Node: 2}, Saw: []ID{{Node: 1}}, Body: []byte("x")}.Encode())
	f.Add([]byte{formatVersion})
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := DecodeVersion(b)
		if err != nil {
			return
		}
		if !bytes.Equal(v.Encode(), b) {
			t.Fatalf("accepted a non-canonical encoding")
		}
	})
}

// TestEncodeOrdersSaw: a version whose seen IDs are out of order, or
// repeated, encodes to the form that decodes, the same as the ordered one.
func TestEncodeOrdersSaw(t *testing.T) {
	a := ID{TS: hlc.Timestamp{Wall: 1}, Node: 1}
	b := ID{TS: hlc.Timestamp{Wall: 2}, Node: 1}
	v := Version{ID: ID{TS: hlc.Timestamp{Wall: 3}, Node: 2}, Saw: []ID{b, a, b}}
	got, err := DecodeVersion(v.Encode())
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Saw) != 2 || got.Saw[0] != a || got.Saw[1] != b {
		t.Fatalf("saw %v, want [%v %v]", got.Saw, a, b)
	}
	if len(v.Saw) != 3 || v.Saw[0] != b {
		t.Fatal("Encode changed the version it encoded")
	}
}

// TestHeadsThroughRemovedVersions: a write names only the heads it saw,
// yet every version those saw counts as seen; removing a version by name
// makes heads of what only it stood for again.
func TestHeadsThroughRemovedVersions(t *testing.T) {
	id := func(n int64) ID { return ID{TS: hlc.Timestamp{Wall: n}, Node: 1} }
	heads := func(s State) []ID {
		var out []ID
		for _, v := range s.Heads() {
			out = append(out, v.ID)
		}
		slices.SortFunc(out, ID.Compare)
		return out
	}
	var s State
	for i := int64(1); i <= 3; i++ {
		v, _ := Write(s, id(i), false, nil, false)
		s.Add(v)
	}
	if v, _ := s.Current(); len(v.Saw) != 1 || v.Saw[0] != id(2) {
		t.Fatalf("the third write saw %v, want the one head, %v", v.Saw, id(2))
	}
	if got := heads(s); !slices.Equal(got, []ID{id(3)}) {
		t.Fatalf("heads %v, want the last write alone", got)
	}
	s.Remove(id(3))
	if got := heads(s); !slices.Equal(got, []ID{id(2)}) {
		t.Fatalf("heads after removing the last: %v", got)
	}
	s.Remove(id(2))
	if got := heads(s); !slices.Equal(got, []ID{id(1)}) {
		t.Fatalf("heads after removing two: %v", got)
	}

	var c State
	c.Add(Version{ID: id(10)})
	c.Add(Version{ID: id(11)})
	v, _ := Write(c, id(12), false, nil, false)
	c.Add(v)
	if got := heads(c); !slices.Equal(got, []ID{id(12)}) {
		t.Fatalf("a write that saw both concurrent ones: heads %v", got)
	}
	c.Remove(id(12))
	if got := heads(c); !slices.Equal(got, []ID{id(10), id(11)}) {
		t.Fatalf("removing the resolving write: heads %v, want the conflict back", got)
	}
}
