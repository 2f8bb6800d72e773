package cluster

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// Keys of the cluster's records in the System partition. Buckets and
// other system records use other prefixes.
const (
	nodeKeyPrefix = "cluster/node/"
	layoutKey     = "cluster/layout"
	stagedKey     = "cluster/staged"
	credsKey      = "cluster/root-credentials"
)

func nodeKey(id string) []byte { return []byte(nodeKeyPrefix + id) }

// recordFormat versions every record below.
const recordFormat = 1

// ErrBadRecord is wrapped by the decoders of this file.
var ErrBadRecord = errors.New("malformed cluster record")

// NodeInfo is what a node tells the cluster about itself when it joins,
// and what every node knows of the others: how to reach it and what it
// brings. It is kept in the System partition under nodeKey(ID).
type NodeInfo struct {
	Format int `json:"format"`
	// ID is the transport node ID (from the node's ed25519 key); RaftID is
	// the same node's ID in Raft groups.
	ID        string      `json:"id"`
	RaftID    uint64      `json:"raft_id"`
	Zone      string      `json:"zone"`
	RPCAddr   string      `json:"rpc_addr"`
	GossipAdr string      `json:"gossip_addr"`
	S3Addr    string      `json:"s3_addr"`
	AdminAddr string      `json:"admin_addr"`
	Drives    []DriveInfo `json:"drives"`
	Version   string      `json:"version"`
	// Features names what the node's software can take part in, as
	// recorded at its last start: operations that every node must
	// understand (featureSplit) wait for all of them to have it.
	Features []string `json:"features,omitempty"`
}

// featureSplit: the node applies partition splits (raftmeta split
// entries). A node of an earlier version would skip the entry and its
// replicas would part from the others'.
const featureSplit = "split"

// featureSplitData: the node reads layouts whose data partitions split
// with the metadata (more drive lists than base partitions) and the
// "rebalance" staged edit. A node of an earlier version would refuse
// such a layout as malformed and stop following the cluster's.
const featureSplitData = "split-data"

// DriveInfo is one drive a node brings.
type DriveInfo struct {
	ID       string `json:"id"`
	Capacity uint64 `json:"capacity"`
}

func (n NodeInfo) validate() error {
	switch {
	case n.Format != recordFormat:
		return fmt.Errorf("%w: node record format %d", ErrBadRecord, n.Format)
	case n.ID == "" || len(n.ID) > 64 || strings.ContainsAny(n.ID, "/\x00"):
		return fmt.Errorf("%w: node ID %q", ErrBadRecord, n.ID)
	case n.RaftID == 0:
		return fmt.Errorf("%w: raft ID 0", ErrBadRecord)
	case n.RPCAddr == "" || n.Zone == "":
		return fmt.Errorf("%w: node %s without address or zone", ErrBadRecord, n.ID)
	case len(n.Drives) == 0 || len(n.Drives) > 256:
		return fmt.Errorf("%w: node %s with %d drives", ErrBadRecord, n.ID, len(n.Drives))
	}
	for _, d := range n.Drives {
		if d.ID == "" || d.Capacity == 0 {
			return fmt.Errorf("%w: node %s drive %q capacity %d", ErrBadRecord, n.ID, d.ID, d.Capacity)
		}
	}
	return nil
}

func encodeNode(n NodeInfo) []byte {
	n.Format = recordFormat
	b, _ := json.Marshal(n)
	return b
}

func decodeNode(b []byte) (NodeInfo, error) {
	var n NodeInfo
	if err := json.Unmarshal(b, &n); err != nil {
		return NodeInfo{}, fmt.Errorf("%w: %w", ErrBadRecord, err)
	}
	if err := n.validate(); err != nil {
		return NodeInfo{}, err
	}
	return n, nil
}

// stagedEdits is the record of edits waiting for an apply.
type stagedEdits struct {
	Format int         `json:"format"`
	Edits  []StageEdit `json:"edits"`
}

// StageEdit is one staged layout edit; see admin.LayoutEdit.
type StageEdit struct {
	Op       string `json:"op"`
	Node     string `json:"node"`
	Zone     string `json:"zone,omitempty"`
	Drive    string `json:"drive,omitempty"`
	Capacity uint64 `json:"capacity,omitempty"`
}

func encodeStaged(e []StageEdit) []byte {
	b, _ := json.Marshal(stagedEdits{Format: recordFormat, Edits: e})
	return b
}

func decodeStaged(b []byte) ([]StageEdit, error) {
	var s stagedEdits
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadRecord, err)
	}
	if s.Format != recordFormat {
		return nil, fmt.Errorf("%w: staged format %d", ErrBadRecord, s.Format)
	}
	for _, e := range s.Edits {
		switch e.Op {
		case "add", "remove", "zone", "capacity", "rebalance":
		default:
			return nil, fmt.Errorf("%w: staged op %q", ErrBadRecord, e.Op)
		}
	}
	return s.Edits, nil
}
