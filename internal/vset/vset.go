// Package vset is the state of one object key in an available bucket: a
// set of versions that replicas merge by union, so that writes accepted on
// every side of a partition all survive the heal.
//
// Contract:
//
//  1. A version is named by an ID: the hybrid-clock timestamp it was
//     written at and the node that wrote it. IDs are unique (a node's
//     clock never repeats a timestamp, node IDs are unique) and totally
//     ordered: by timestamp, then node.
//  2. A State is a set of versions (delete markers included) and a set of
//     removed IDs. Merge is the union of both sets, so it is commutative,
//     associative and idempotent (TestMergeIsASemilattice): replicas that
//     have exchanged everything hold equal states, whatever the order and
//     the grouping of the exchanges. A version's content never changes
//     once written; two records of one ID are one version.
//  3. A removed ID stays removed: no merge brings its version back
//     (TestRemovedStaysRemoved). Nothing else removes a version. So every
//     version written is in every merged state until someone removes it
//     by name, and a writer removes only versions it has seen
//     (TestNoWriteIsLostUnseen).
//  4. The visible versions are those present and not removed; the current
//     version is the greatest visible one (Current). A key whose current
//     version is a delete marker, or with no visible version, reads as
//     absent.
//  5. A write records the heads it saw (Saw): the visible versions no
//     other saw, which stand for every version they saw in turn, so a
//     record stays small however many versions a key keeps. In an
//     unversioned bucket it also removes every visible version it saw:
//     that is an overwrite. Writes that did not see each other are
//     concurrent; each stays visible until a later write that saw them, or
//     a removal by name, resolves them. Heads returns the visible versions
//     no visible version saw, directly or through the versions it saw
//     (removed ones included): more than one means the key was written
//     concurrently (a conflict), in versioned and unversioned buckets
//     alike (TestNoWriteIsLostUnseen, TestHeadsThroughRemovedVersions).
//
// Which of two concurrent versions is current depends on the clocks of
// the nodes that wrote them (their timestamps); that either survives does
// not. The package is pure: no I/O, no clock.
package vset

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/redoubt-io/redoubt/internal/hlc"
)

// ID names one version of a key.
type ID struct {
	TS   hlc.Timestamp
	Node uint64
}

// Compare orders IDs by timestamp, then node.
func (a ID) Compare(b ID) int {
	if c := a.TS.Compare(b.TS); c != 0 {
		return c
	}
	return cmp.Compare(a.Node, b.Node)
}

func (a ID) String() string { return fmt.Sprintf("%s-%016x", a.TS, a.Node) }

// IDLen is the length of an ID's binary form.
const IDLen = hlc.BinaryLen + 8

// AppendBinary appends the IDLen-byte big-endian form of id, whose byte
// order is the IDs' order.
func (a ID) AppendBinary(b []byte) []byte {
	return binary.BigEndian.AppendUint64(a.TS.AppendBinary(b), a.Node)
}

// ErrInvalid is returned (wrapped) for an encoding the package does not
// accept.
var ErrInvalid = errors.New("vset: invalid encoding")

// IDFromBinary decodes AppendBinary's form.
func IDFromBinary(b []byte) (ID, error) {
	if len(b) != IDLen {
		return ID{}, fmt.Errorf("%w: id of %d bytes", ErrInvalid, len(b))
	}
	ts, err := hlc.FromBinary(b[:hlc.BinaryLen])
	if err != nil {
		return ID{}, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	return ID{TS: ts, Node: binary.BigEndian.Uint64(b[hlc.BinaryLen:])}, nil
}

// Version is one version of a key. Body stands for what the store keeps
// of it (the version record); the package compares it only to order two
// records of one ID deterministically.
type Version struct {
	ID     ID
	Marker bool // a delete marker
	Saw    []ID // the visible versions its writer saw, in order
	Body   []byte
}

// State is what a replica holds of one key.
type State struct {
	versions map[ID]Version
	removed  map[ID]struct{}
}

// Add puts v into s. Adding a version s has already keeps the one whose
// encoding sorts last, so that the result does not depend on the order of
// adds (two records of one ID never differ unless a writer reused an ID).
func (s *State) Add(v Version) {
	if s.versions == nil {
		s.versions = map[ID]Version{}
	}
	if old, ok := s.versions[v.ID]; ok && compareVersions(old, v) >= 0 {
		return
	}
	v.Saw = slices.Clone(v.Saw)
	slices.SortFunc(v.Saw, ID.Compare)
	v.Saw = slices.Compact(v.Saw)
	v.Body = slices.Clone(v.Body)
	s.versions[v.ID] = v
}

// Remove records that id is removed.
func (s *State) Remove(id ID) {
	if s.removed == nil {
		s.removed = map[ID]struct{}{}
	}
	s.removed[id] = struct{}{}
}

// Merge adds everything o holds to s.
func (s *State) Merge(o State) {
	for _, v := range o.versions {
		s.Add(v)
	}
	for id := range o.removed {
		s.Remove(id)
	}
}

// Clone returns a copy of s that shares nothing with it.
func (s State) Clone() State {
	var c State
	c.Merge(s)
	return c
}

// Equal reports whether s and o hold the same versions and removals.
func (s State) Equal(o State) bool {
	if len(s.versions) != len(o.versions) || len(s.removed) != len(o.removed) {
		return false
	}
	for id, v := range s.versions {
		w, ok := o.versions[id]
		if !ok || compareVersions(v, w) != 0 {
			return false
		}
	}
	for id := range s.removed {
		if _, ok := o.removed[id]; !ok {
			return false
		}
	}
	return true
}

// Removed reports whether id is removed.
func (s State) Removed(id ID) bool {
	_, ok := s.removed[id]
	return ok
}

// Visible returns the versions present and not removed, greatest first.
func (s State) Visible() []Version {
	out := make([]Version, 0, len(s.versions))
	for id, v := range s.versions {
		if !s.Removed(id) {
			out = append(out, v)
		}
	}
	slices.SortFunc(out, func(a, b Version) int { return b.ID.Compare(a.ID) })
	return out
}

// Current returns the greatest visible version; ok is false when there is
// none. A key whose current version is a delete marker reads as absent.
func (s State) Current() (v Version, ok bool) {
	for id, w := range s.versions {
		if !s.Removed(id) && (!ok || id.Compare(v.ID) > 0) {
			v, ok = w, true
		}
	}
	return v, ok
}

// Heads returns the visible versions that no version of s saw, greatest
// first. More than one is a conflict: writes that did not see each other.
func (s State) Heads() []Version {
	seen := map[ID]bool{}
	var next []ID
	for id, v := range s.versions {
		if !s.Removed(id) {
			next = append(next, v.Saw...)
		}
	}
	for len(next) > 0 {
		id := next[len(next)-1]
		next = next[:len(next)-1]
		if seen[id] {
			continue
		}
		seen[id] = true
		if w, ok := s.versions[id]; ok {
			next = append(next, w.Saw...)
		}
	}
	var out []Version
	for _, v := range s.Visible() {
		if !seen[v.ID] {
			out = append(out, v)
		}
	}
	return out
}

// Write returns the version a writer makes after reading s: it saw s's
// heads, and in an unversioned bucket removes every visible version (the
// IDs returned in remove). The writer adds v, and removes each of remove,
// on every replica it writes to.
func Write(s State, id ID, marker bool, body []byte, unversioned bool) (v Version, remove []ID) {
	v = Version{ID: id, Marker: marker, Body: body}
	for _, w := range s.Heads() {
		v.Saw = append(v.Saw, w.ID)
	}
	slices.SortFunc(v.Saw, ID.Compare)
	if unversioned {
		for _, w := range s.Visible() {
			remove = append(remove, w.ID)
		}
	}
	return v, remove
}

// IDs returns the IDs of every version s holds, removed or not, in order.
func (s State) IDs() []ID {
	return slices.SortedFunc(maps.Keys(s.versions), ID.Compare)
}

// RemovedIDs returns the removed IDs, in order.
func (s State) RemovedIDs() []ID {
	return slices.SortedFunc(maps.Keys(s.removed), ID.Compare)
}

func compareVersions(a, b Version) int {
	return bytes.Compare(a.encode(), b.encode())
}
