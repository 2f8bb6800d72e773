package raftmeta

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"

	"go.etcd.io/raft/v3/confchange"
	"go.etcd.io/raft/v3/raftpb"
	"go.etcd.io/raft/v3/tracker"
)

// replica is one incarnation of a node's copy of a group. Its id is its
// Raft ID in the group. The group's initial voters have generation 0 and
// their node ID as replica ID; every later addition of a node is a new
// replica, with an ID and a generation the group never gave before. A
// node's replicas of one group are thus told apart by generation, the
// newest being the only one that may be a member.
type replica struct {
	id, node, gen uint64
}

// replicaSet is a group's record of its replicas, kept by every replica
// with the applied configuration (in the apply state, and in snapshots),
// so that it is the same on all of them at each index.
type replicaSet struct {
	// members has one replica per ID of the configuration (voters and
	// learners), in ID order.
	members []replica
	// nextID and nextGen are floors for the next replica: every replica
	// the group ever had has an ID below max(nextID, the members' IDs + 1)
	// and a generation below nextGen.
	nextID, nextGen uint64
}

// initialSet is the replica set of a group made with the given voters.
// nextID starts above every initial ID, so that no later replica ever
// takes the ID of an initial one, removed or not.
func initialSet(voters []uint64) *replicaSet {
	s := &replicaSet{nextGen: 1}
	for _, v := range voters {
		s.members = append(s.members, replica{id: v, node: v})
	}
	slices.SortFunc(s.members, func(a, b replica) int { return cmpU64(a.id, b.id) })
	s.members = slices.CompactFunc(s.members, func(a, b replica) bool { return a.id == b.id })
	if n := len(s.members); n > 0 && s.members[n-1].id < math.MaxUint64 {
		s.nextID = s.members[n-1].id + 1
	}
	return s
}

// legacySet is the replica set of a configuration stored before replicas
// had their own IDs: every member's ID is its node ID, generation 0.
// Removed IDs of such a group are not known; see doc.go.
func legacySet(cs *raftpb.ConfState) *replicaSet {
	s := &replicaSet{}
	for _, id := range confMembers(cs) {
		s.members = append(s.members, replica{id: id, node: id})
	}
	return s
}

func cmpU64(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// get returns the member with Raft ID id.
func (s *replicaSet) get(id uint64) (replica, bool) {
	i, ok := slices.BinarySearchFunc(s.members, id, func(r replica, id uint64) int { return cmpU64(r.id, id) })
	if !ok {
		return replica{}, false
	}
	return s.members[i], true
}

// ids lists the members' Raft IDs, in order.
func (s *replicaSet) ids() []uint64 {
	out := make([]uint64, len(s.members))
	for i, r := range s.members {
		out[i] = r.id
	}
	return out
}

// ofNode returns node's member replica; a node has at most one.
func (s *replicaSet) ofNode(node uint64) (replica, bool) {
	for _, r := range s.members {
		if r.node == node {
			return r, true
		}
	}
	return replica{}, false
}

// nodes maps Raft IDs of members to their nodes, sorted; an ID that is
// no member is left out.
func (s *replicaSet) nodes(ids []uint64) []uint64 {
	out := make([]uint64, 0, len(ids))
	for _, id := range ids {
		if r, ok := s.get(id); ok {
			out = append(out, r.node)
		}
	}
	slices.Sort(out)
	return out
}

// floor is the lowest ID and generation a new replica may have.
func (s *replicaSet) floor() (id, gen uint64, err error) {
	id = max(s.nextID, 1)
	for _, r := range s.members {
		if r.id >= id {
			if r.id == math.MaxUint64 {
				return 0, 0, errors.New("replica IDs exhausted")
			}
			id = r.id + 1
		}
	}
	return id, max(s.nextGen, 1), nil
}

// alloc returns the replica a leader proposes to add for node.
func (s *replicaSet) alloc(node uint64) (replica, error) {
	id, gen, err := s.floor()
	return replica{id: id, node: node, gen: gen}, err
}

// admit checks that r may join the group as a new replica: no ID or
// generation the group ever gave, and a node without a member replica.
// Every replica applies the same check to the same log, so a replica
// proposed on stale knowledge is refused by all alike.
func (s *replicaSet) admit(r replica) error {
	id, gen, err := s.floor()
	switch {
	case err != nil:
		return err
	case r.node == 0:
		return errors.New("replica of node 0")
	case r.id < id || r.gen < gen:
		return fmt.Errorf("replica %d generation %d reuses an ID or a generation (next %d, %d)", r.id, r.gen, id, gen)
	}
	if o, ok := s.ofNode(r.node); ok {
		return fmt.Errorf("node %d has replica %d already", r.node, o.id)
	}
	return nil
}

// next is the set after the configuration became cs, with the replicas
// added (already admitted) joining it.
func (s *replicaSet) next(cs *raftpb.ConfState, added []replica) *replicaSet {
	n := &replicaSet{nextID: s.nextID, nextGen: s.nextGen}
	for _, id := range confMembers(cs) {
		r, ok := s.get(id)
		for _, a := range added {
			if a.id == id {
				r, ok = a, true
			}
		}
		if !ok {
			r = replica{id: id, node: id} // a legacy addition
		}
		n.members = append(n.members, r)
	}
	for _, a := range added {
		if a.gen > 0 {
			n.nextID = max(n.nextID, a.id+1)
			n.nextGen = max(n.nextGen, a.gen+1)
		}
	}
	return n
}

func (s *replicaSet) String() string {
	b := fmt.Sprintf("next %d gen %d", s.nextID, s.nextGen)
	for _, r := range s.members {
		b += fmt.Sprintf(" %d:n%d/g%d", r.id, r.node, r.gen)
	}
	return b
}

// nextConf is the configuration and replica set that applying cc (with
// its proposal context) to cs and set gives, or why every replica
// refuses it. The configuration is computed as raft computes it, so that
// a change raft would panic on is refused instead. Only single changes
// are proposed here; anything else is refused.
func nextConf(cs *raftpb.ConfState, set *replicaSet, cc raftpb.ConfChangeI, ctx []byte) (*raftpb.ConfState, *replicaSet, error) {
	v2 := cc.AsV2()
	if _, joint := v2.EnterJoint(); joint || v2.LeaveJoint() || len(cs.GetVotersOutgoing()) > 0 {
		return nil, nil, errors.New("joint configuration changes are not used")
	}
	if len(v2.GetChanges()) != 1 {
		return nil, nil, fmt.Errorf("%d changes in one", len(v2.GetChanges()))
	}
	c := v2.GetChanges()[0]
	id := c.GetNodeId()
	var added []replica
	switch c.GetType() {
	case raftpb.ConfChangeType_ConfChangeAddNode, raftpb.ConfChangeType_ConfChangeAddLearnerNode:
		named, ok := confContextReplica(ctx)
		if m, member := set.get(id); member {
			if ok && named.id == id && named != m {
				return nil, nil, fmt.Errorf("replica %d is %+v, not %+v", id, m, named)
			}
			break // a member changes role
		}
		if r := named; ok && r.id == id {
			if err := set.admit(r); err != nil {
				return nil, nil, err
			}
			added = append(added, r)
			break
		}
		// Proposed before replicas had their own IDs: the node's ID.
		if o, ok := set.ofNode(id); ok {
			return nil, nil, fmt.Errorf("node %d has replica %d already", id, o.id)
		}
		added = append(added, replica{id: id, node: id})
	case raftpb.ConfChangeType_ConfChangeRemoveNode:
	default:
		return nil, nil, fmt.Errorf("change %v is not used", c.GetType())
	}
	chg := confchange.Changer{Tracker: tracker.MakeProgressTracker(1, 0), LastIndex: 1}
	cfg, prs, err := confchange.Restore(chg, cs)
	if err != nil {
		return nil, nil, err
	}
	chg.Tracker.Config, chg.Tracker.Progress = cfg, prs
	cfg, _, err = chg.Simple(c)
	if err != nil {
		return nil, nil, err
	}
	t := tracker.ProgressTracker{Config: cfg}
	next := t.ConfState()
	return next, set.next(next, added), nil
}

// inConf says whether id is a voter or learner of cs.
func inConf(cs *raftpb.ConfState, id uint64) bool {
	for _, l := range [...][]uint64{cs.GetVoters(), cs.GetVotersOutgoing(), cs.GetLearners(), cs.GetLearnersNext()} {
		if slices.Contains(l, id) {
			return true
		}
	}
	return false
}

// outOf reports whether cs leaves replica id out of a group that has
// members: it applied its own removal. A group with no members at all
// is a replica waiting for its leader's snapshot, not a removed one. It
// runs after every Ready, so it allocates nothing.
func outOf(cs *raftpb.ConfState, id uint64) bool {
	members := false
	for _, l := range [...][]uint64{cs.GetVoters(), cs.GetVotersOutgoing(), cs.GetLearners(), cs.GetLearnersNext()} {
		if slices.Contains(l, id) {
			return false
		}
		members = members || len(l) > 0
	}
	return members
}

// Encodings. The replica set is stored in the apply state (with the
// configuration it belongs to) and carried in snapshots:
//
//	nextID nextGen count {id node gen}    (uvarints)
func appendReplicaSet(b []byte, s *replicaSet) []byte {
	b = binary.AppendUvarint(b, s.nextID)
	b = binary.AppendUvarint(b, s.nextGen)
	b = binary.AppendUvarint(b, uint64(len(s.members)))
	for _, r := range s.members {
		b = binary.AppendUvarint(b, r.id)
		b = binary.AppendUvarint(b, r.node)
		b = binary.AppendUvarint(b, r.gen)
	}
	return b
}

func (r *reader) replicaSet() *replicaSet {
	s := &replicaSet{nextID: r.uvarint("next replica ID"), nextGen: r.uvarint("next generation")}
	n := r.count("replicas", 3)
	for range n {
		m := replica{id: r.uvarint("replica ID"), node: r.uvarint("replica node"), gen: r.uvarint("replica generation")}
		if r.err != nil {
			return nil
		}
		if k := len(s.members); m.id == 0 || (k > 0 && s.members[k-1].id >= m.id) {
			r.fail("replica IDs out of order")
			return nil
		}
		s.members = append(s.members, m)
	}
	return s
}

// The group record says that this host has a replica of a group, and
// which: version 2, then its ID and generation (uvarints). Version 1 (the
// byte alone) is a replica from before replicas had their own IDs: the
// node's ID, generation 0.
const recordVersion = 2

func encodeGroupRecord(r replica) []byte {
	b := []byte{recordVersion}
	b = binary.AppendUvarint(b, r.id)
	return binary.AppendUvarint(b, r.gen)
}

func decodeGroupRecord(b []byte, node uint64) (replica, error) {
	if len(b) == 1 && b[0] == formatVersion {
		return replica{id: node, node: node}, nil
	}
	rd := reader{b: b}
	if v := rd.byte1("version"); rd.err == nil && v != recordVersion {
		rd.fail(fmt.Sprintf("unknown group record version %d", v))
	}
	r := replica{id: rd.uvarint("replica ID"), node: node, gen: rd.uvarint("generation")}
	if rd.err == nil && r.id == 0 {
		rd.fail("replica ID 0")
	}
	return r, rd.end()
}

// A tombstone stays when a replica's state is deleted: the lowest
// generation of the group this host may still have a replica of, so
// that a message to a deleted (or older) replica never makes it again.
// Version byte, then the generation (uvarint).
func encodeTombstone(minGen uint64) []byte {
	return binary.AppendUvarint([]byte{formatVersion}, minGen)
}

func decodeTombstone(b []byte) (uint64, error) {
	r := reader{b: b}
	r.version()
	g := r.uvarint("generation")
	return g, r.end()
}
