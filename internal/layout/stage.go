package layout

import (
	"fmt"
	"slices"
)

// Op is the kind of a staged edit.
type Op string

// The edits a Stage can hold.
const (
	OpAddNode     Op = "add-node"
	OpRemoveNode  Op = "remove-node"
	OpSetZone     Op = "set-zone"
	OpSetCapacity Op = "set-capacity"
)

// Edit is one staged change to the node list.
type Edit struct {
	Op       Op     `json:"op"`
	Node     *Node  `json:"node,omitempty"` // OpAddNode
	ID       string `json:"id,omitempty"`   // node ID, or for OpSetCapacity a node or drive ID
	Zone     string `json:"zone,omitempty"`
	Capacity uint64 `json:"capacity,omitempty"`
}

// Stage is a list of edits an operator builds up and previews before
// computing the layout that applies them. The zero value is empty and
// ready to use.
type Stage struct {
	Edits []Edit `json:"edits"`
}

// AddNode stages adding n.
func (s *Stage) AddNode(n Node) {
	c := n.clone()
	s.Edits = append(s.Edits, Edit{Op: OpAddNode, Node: &c})
}

// RemoveNode stages removing the node with the given ID.
func (s *Stage) RemoveNode(id string) { s.Edits = append(s.Edits, Edit{Op: OpRemoveNode, ID: id}) }

// SetZone stages moving a node to a zone.
func (s *Stage) SetZone(id, zone string) {
	s.Edits = append(s.Edits, Edit{Op: OpSetZone, ID: id, Zone: zone})
}

// SetCapacity stages a drive's capacity or, given a node ID, the capacity
// of each of the node's drives.
func (s *Stage) SetCapacity(id string, capacity uint64) {
	s.Edits = append(s.Edits, Edit{Op: OpSetCapacity, ID: id, Capacity: capacity})
}

// Apply returns nodes with the edits applied in order; nodes is not
// modified. It fails on an edit naming an unknown node or drive, or adding
// a node whose ID is taken, and on a result that ValidateNodes rejects.
func (s *Stage) Apply(nodes []Node) ([]Node, error) {
	out := make([]Node, len(nodes))
	for i, n := range nodes {
		out[i] = n.clone()
	}
	find := func(id string) int {
		return slices.IndexFunc(out, func(n Node) bool { return n.ID == id })
	}
	for k, e := range s.Edits {
		switch e.Op {
		case OpAddNode:
			if e.Node == nil {
				return nil, fmt.Errorf("%w: edit %d adds no node", ErrInvalid, k)
			}
			if find(e.Node.ID) >= 0 {
				return nil, fmt.Errorf("%w: %w: edit %d adds node %q again", ErrInvalid, ErrDuplicateID, k, e.Node.ID)
			}
			out = append(out, e.Node.clone())
		case OpRemoveNode:
			i := find(e.ID)
			if i < 0 {
				return nil, fmt.Errorf("%w: edit %d removes node %q", ErrUnknownID, k, e.ID)
			}
			out = slices.Delete(out, i, i+1)
		case OpSetZone:
			i := find(e.ID)
			if i < 0 {
				return nil, fmt.Errorf("%w: edit %d moves node %q", ErrUnknownID, k, e.ID)
			}
			out[i].Zone = e.Zone
		case OpSetCapacity:
			if e.Capacity == 0 {
				return nil, fmt.Errorf("%w: %w: edit %d on %q (remove the node instead)", ErrInvalid, ErrZeroCapacity, k, e.ID)
			}
			found := false
			for i := range out {
				for j := range out[i].Drives {
					if out[i].ID == e.ID || out[i].Drives[j].ID == e.ID {
						out[i].Drives[j].Capacity = e.Capacity
						found = true
					}
				}
			}
			if !found {
				return nil, fmt.Errorf("%w: edit %d sets the capacity of %q", ErrUnknownID, k, e.ID)
			}
		default:
			return nil, fmt.Errorf("%w: edit %d has unknown op %q", ErrInvalid, k, e.Op)
		}
	}
	if err := ValidateNodes(out); err != nil {
		return nil, err
	}
	return out, nil
}
