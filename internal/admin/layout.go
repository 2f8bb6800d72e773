package admin

// The cluster layout as the admin API shows it (GET /cluster/layout) and
// changes it (POST /cluster/layout/stage, /apply, /revert; GET
// /cluster/layout/preview). The CLI's layout verbs speak these types.

// LayoutView is the current layout and the edits staged on top of it.
type LayoutView struct {
	Version    uint64 `json:"version"`
	Policy     string `json:"policy"`
	Partitions int    `json:"partitions"`
	// MetaPartitions is the metadata partitions: Partitions, split
	// (redoubt layout split) as often as the layout says.
	MetaPartitions int `json:"metadata_partitions"`
	// DataPartitions is the units of data placement: the metadata
	// partitions, up to 65,536 of them.
	DataPartitions int `json:"data_partitions"`
	// Fullest is the most shard slots a drive holds over its fair share
	// by capacity: 1 is perfect balance. A split and then a rebalance
	// (stage rebalance) brings it down on a cluster of many drives.
	Fullest float64          `json:"fullest_drive_of_share"`
	Nodes   []LayoutNodeView `json:"nodes"`
	Staged  []LayoutEdit     `json:"staged"`
}

// LayoutNodeView is one node of a layout.
type LayoutNodeView struct {
	ID     string            `json:"id"`
	Zone   string            `json:"zone"`
	Addr   string            `json:"rpc_addr"`
	Drives []LayoutDriveView `json:"drives"`
	// Slots is the shard slots of all partitions its drives hold.
	Slots int `json:"slots"`
}

// LayoutDriveView is one drive of a layout node.
type LayoutDriveView struct {
	ID       string `json:"id"`
	Capacity uint64 `json:"capacity_bytes"`
	Slots    int    `json:"slots"`
}

// LayoutEdit is one staged change. Op is "add" (a node that has joined
// the cluster, by ID), "remove", "zone" (set Zone), "capacity" (set
// Capacity on every drive of the node, or on Drive when given) or
// "rebalance" (no node: recompute the placement as it stands, which
// places the halves of split data partitions apart).
type LayoutEdit struct {
	Op       string `json:"op"`
	Node     string `json:"node"`
	Zone     string `json:"zone,omitempty"`
	Drive    string `json:"drive,omitempty"`
	Capacity uint64 `json:"capacity_bytes,omitempty"`
}

// LayoutPreview is what applying the staged edits would do.
type LayoutPreview struct {
	From, To LayoutView
	// MovedSlots of TotalSlots shard slots change drive; Fraction is
	// their ratio, BytesToMove the data stored in them now.
	MovedSlots        int     `json:"moved_slots"`
	TotalSlots        int     `json:"total_slots"`
	Fraction          float64 `json:"fraction"`
	PartitionsChanged int     `json:"partitions_changed"`
	BytesToMove       int64   `json:"bytes_to_move"`
}

// APIError is the JSON body of a failed admin call. Code is set on
// refusals (see Error); Error is the message.
type APIError struct {
	Error string `json:"error"`
	Code  string `json:"code,omitempty"`
}
