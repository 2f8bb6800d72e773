package admin

import (
	"fmt"
	"strings"
	"time"
)

// RedundancyStatus says how many more failures a cluster survives now with
// every object readable, and what its redundancy policy promises. A loss
// count of -1 means that some objects cannot be read even now.
type RedundancyStatus struct {
	// NodeLosses is how many more nodes, whichever they are, the cluster
	// can lose now and still read every object: the least of Data,
	// NewWrites and Metadata. ZoneLosses is the same for whole zones.
	NodeLosses int `json:"node_losses"`
	ZoneLosses int `json:"zone_losses"`
	// Zones counts the zones of the layout.
	Zones int `json:"zones"`
	// Policies are the redundancy policies of the stored data and of new
	// writes, e.g. ["EC 4+2", "EC 3+2"], the layout's first.
	Policies []string `json:"policies"`
	// PromisedNodeLosses is the strongest promise made to stored data or
	// new writes: a policy survives the loss of M shards, hence of M nodes
	// when every shard has a node of its own. PromisedBy names the
	// policies that make it. PromisedZoneLosses is the most zone losses a
	// policy survives with its shards spread evenly over the layout's
	// zones.
	PromisedNodeLosses int      `json:"promised_node_losses"`
	PromisedBy         []string `json:"promised_by"`
	PromisedZoneLosses int      `json:"promised_zone_losses"`
	// Kept says the cluster survives now what the policies promise.
	Kept bool `json:"promise_kept"`

	// Data is the stored data as last counted (object parts, by where
	// their shards are); NewWrites is data written now, to the layout's
	// drives; Metadata is the partitions' and the System's Raft groups.
	Data      SurvivalStatus `json:"data"`
	NewWrites SurvivalStatus `json:"new_writes"`
	Metadata  SurvivalStatus `json:"metadata"`
	// CountedAt is when the stored data was counted, zero before the
	// first count; CountError says why the last count failed. A count
	// older than the data's last move can show shards still on a node
	// that the data has left since, counted as lost: never more losses
	// than the data survives.
	CountedAt  time.Time `json:"counted_at,omitzero"`
	CountError string    `json:"count_error,omitempty"`
	// Moving counts object parts that still have shards on nodes out of
	// the layout (taken out, or being drained); those shards are counted
	// as lost until they are rebuilt or moved.
	Moving int64 `json:"moving_parts"`
	// CatchingUp counts the metadata groups with a replica still catching
	// up (a learner, or a voter waiting for a snapshot), counted as lost
	// until it holds its group's state.
	CatchingUp int64 `json:"catching_up_groups"`
	// Down lists the layout's nodes that are down now or do not answer.
	Down []string `json:"down_nodes,omitempty"`
	// FailedDrives lists the layout's drives that their node reports
	// failed or waiting to be refilled: their shards count as lost.
	FailedDrives []string `json:"failed_drives,omitempty"`
	// Reasons say why the cluster survives less than promised; Advice is
	// what restores the promise, when something does.
	Reasons []string `json:"reasons,omitempty"`
	Advice  string   `json:"advice,omitempty"`
}

// SurvivalStatus is how many more node and zone losses the weakest of a
// kind of items survives.
type SurvivalStatus struct {
	NodeLosses int `json:"node_losses"`
	ZoneLosses int `json:"zone_losses"`
	// Items counts what was looked at: object parts, partitions, Raft
	// groups. With none, the loss counts mean nothing and are 0.
	Items int64 `json:"items"`
	// Weakest counts the items that survive no more than NodeLosses node
	// losses, and Bytes their object bytes (data only).
	Weakest int64 `json:"weakest"`
	Bytes   int64 `json:"weakest_bytes,omitempty"`
	// Example describes one of the weakest items.
	Example string `json:"example,omitempty"`
}

// Line says r in one line, e.g. "survives 1 more node loss, 0 zone
// losses; the policy EC 4+2 promises 2 node losses, 1 zone loss: add 1
// node to restore it".
func (r RedundancyStatus) Line() string {
	var b strings.Builder
	if r.NodeLosses < 0 {
		b.WriteString("some objects cannot be read now")
	} else {
		fmt.Fprintf(&b, "survives %s, %s", losses(r.NodeLosses, "more node"), losses(r.ZoneLosses, "zone"))
	}
	by := r.PromisedBy
	policy := "the policy " + strings.Join(by, "")
	verb := "promises"
	if len(by) > 1 {
		policy, verb = "the policies "+strings.Join(by[:len(by)-1], ", ")+" and "+by[len(by)-1], "promise"
	}
	promise := losses(r.PromisedNodeLosses, "node")
	if r.PromisedZoneLosses > 0 {
		promise += ", " + losses(r.PromisedZoneLosses, "zone")
	}
	if r.Kept {
		fmt.Fprintf(&b, ", as %s %s", policy, verb)
		return b.String()
	}
	fmt.Fprintf(&b, "; %s %s %s", policy, verb, promise)
	if r.Advice != "" {
		b.WriteString(": " + r.Advice)
	}
	return b.String()
}

// losses is "1 more node loss", "2 zone losses".
func losses(n int, what string) string {
	if n == 1 {
		return "1 " + what + " loss"
	}
	return fmt.Sprintf("%d %s losses", n, what)
}
