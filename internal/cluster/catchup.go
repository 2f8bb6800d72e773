package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/redoubt-io/redoubt/internal/meta"
	"github.com/redoubt-io/redoubt/internal/transport"
)

// Replicas catching up.
//
// A node the layout makes a voter of a group holds none of the group's
// state until it has caught up: it joins as a learner and is promoted
// once it has (handoverStep), and a voter that falls behind the leader's
// log waits for a snapshot. Meanwhile its copy does not count: the group
// has one fewer copy than its voter list says, and a node it needs to keep
// a majority could be the one still empty. Only the leader knows how far
// its members got, and a node that is not a voter of a group does not even
// see its voters, so redundancy asks every node which members of the
// groups it leads are catching up (svcGroups) and counts those replicas as
// lost (TestRedundancyCountsReplicasCatchingUp).

// catchUp is one replica catching up: of group P, on the node with Raft
// ID Node.
type catchUp struct {
	P    meta.Partition `json:"p"`
	Node uint64         `json:"node"`
}

// groupsReport is a node's answer on svcGroups.
type groupsReport struct {
	Format     int       `json:"format"`
	CatchingUp []catchUp `json:"catching_up"`
}

// maxCatchUps bounds the replicas a report may list: a node leads at most
// every group of a cluster, each with at most a few members.
const maxCatchUps = 1 << 20

// catchingUp lists the members of the groups this node leads that do not
// hold their group's state yet: learners, and voters the leader is
// sending a snapshot.
func (c *Cluster) catchingUp() []catchUp {
	var out []catchUp
	for _, g := range c.host.Groups() {
		if g.Leader != c.raftID || len(g.Voters) == 0 {
			continue
		}
		pr, err := c.host.Progress(g.Partition)
		if err != nil {
			continue // no longer its leader: the new one reports it
		}
		for _, m := range pr.Members {
			if m.Learner || m.Snapshot {
				out = append(out, catchUp{P: g.Partition, Node: m.ID})
			}
		}
	}
	return out
}

func (c *Cluster) handleGroups(context.Context, transport.NodeID, []byte) ([]byte, error) {
	return encodeGroupsReport(c.catchingUp()), nil
}

// askCatchingUp asks node for the replicas catching up in the groups it
// leads.
func (c *Cluster) askCatchingUp(ctx context.Context, node string) ([]catchUp, error) {
	p, ok := c.book.byNode(node)
	if !ok {
		return nil, fmt.Errorf("no address for node %s", node)
	}
	resp, err := c.net.Call(ctx, p, svcGroups, nil)
	if err != nil {
		return nil, err
	}
	return decodeGroupsReport(resp)
}

func encodeGroupsReport(list []catchUp) []byte {
	b, _ := json.Marshal(groupsReport{Format: recordFormat, CatchingUp: list})
	return b
}

func decodeGroupsReport(b []byte) ([]catchUp, error) {
	var r groupsReport
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadRecord, err)
	}
	switch {
	case r.Format != recordFormat:
		return nil, fmt.Errorf("%w: groups report format %d", ErrBadRecord, r.Format)
	case len(r.CatchingUp) > maxCatchUps:
		return nil, fmt.Errorf("%w: groups report of %d replicas", ErrBadRecord, len(r.CatchingUp))
	}
	for _, u := range r.CatchingUp {
		if u.Node == 0 {
			return nil, fmt.Errorf("%w: groups report names raft ID 0", ErrBadRecord)
		}
	}
	return r.CatchingUp, nil
}

// groupName names group p as redundancy reports it.
func groupName(p meta.Partition) string {
	if p == meta.System {
		return systemGroupName
	}
	return fmt.Sprintf("partition %d", p)
}

// catchingUpByNode turns the leaders' reports into each node's groups
// catching up, by group name in partition order; a replica two leaders
// report (one of them deposed) is listed once.
func catchingUpByNode(reports [][]catchUp, name func(uint64) string) map[string][]string {
	byNode := map[string][]meta.Partition{}
	for _, list := range reports {
		for _, u := range list {
			n := name(u.Node)
			byNode[n] = append(byNode[n], u.P)
		}
	}
	out := make(map[string][]string, len(byNode))
	for n, ps := range byNode {
		slices.Sort(ps)
		for _, p := range slices.Compact(ps) {
			out[n] = append(out[n], groupName(p))
		}
	}
	return out
}
