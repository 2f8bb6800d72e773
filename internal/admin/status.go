package admin

import (
	"context"
	"time"
)

// StatusSource is what the admin endpoints need from the server.
type StatusSource interface {
	Status(ctx context.Context) Status
}

// StatusFunc adapts a function to StatusSource.
type StatusFunc func(ctx context.Context) Status

func (f StatusFunc) Status(ctx context.Context) Status { return f(ctx) }

// Status is a node's state as /status reports it.
type Status struct {
	Version       string  `json:"version"`
	UptimeSeconds float64 `json:"uptime_seconds"`
	Region        string  `json:"region"`
	S3Endpoint    string  `json:"s3_endpoint"`
	// Policy is the redundancy policy in words, e.g. "EC 2+2" or
	// "mirror x3".
	Policy           string          `json:"policy"`
	Drives           []DriveStatus   `json:"drives"`
	MetadataReplicas []ReplicaStatus `json:"metadata_replicas"`
	// Objects and Bytes count current objects; the count may be a few
	// seconds old, since it takes a scan of the metadata.
	Objects int64 `json:"objects"`
	Bytes   int64 `json:"bytes"`
	// Buckets counts the buckets by consistency, and names the available
	// ones (the first 20 by name); nil when they could not be listed.
	Buckets *BucketCounts `json:"buckets,omitempty"`
	// CorruptionsTotal counts corrupt blocks found since start, by reads
	// and by scrub.
	CorruptionsTotal int64        `json:"corruptions_total"`
	Repair           RepairStatus `json:"repair"`
	Scrub            ScrubStatus  `json:"scrub"`
	// GC counts orphan shards removed from this node's drives.
	GC GCStatus `json:"gc"`
	// ExpiredUploads counts the stale multipart uploads this node aborted
	// since start.
	ExpiredUploads int64 `json:"expired_multipart_uploads"`

	// Cluster is set when the node is part of a cluster.
	Cluster *ClusterStatus `json:"cluster,omitempty"`

	// Services are the node's supervised front ends and background loops.
	Services []ServiceStatus `json:"services"`
	// AdminRequestsRefused counts the admin API requests refused since
	// start: unsigned, badly signed, not allowed, cross-origin or not
	// JSON (by code on /metrics: redoubt_admin_auth_failures_total).
	AdminRequestsRefused int64 `json:"admin_requests_refused"`

	// Sites are the clusters this one is linked with, as this node
	// replicates to them (package sites).
	Sites []SiteStatus `json:"sites,omitempty"`
}

// SiteStatus is one linked site, as one node sees its replication.
type SiteStatus struct {
	Name     string `json:"name"`
	Endpoint string `json:"endpoint"`
	// Partitions are the partitions this node compares with the site.
	Partitions int `json:"partitions"`
	// LagSeconds: every record of those partitions that this node held
	// this long ago is on the other site too.
	LagSeconds float64 `json:"lag_seconds"`
	// Behind counts the partitions the last pass could not bring in step.
	Behind         int       `json:"behind"`
	LastPass       time.Time `json:"last_pass,omitzero"`
	LastError      string    `json:"last_error,omitempty"`
	Refused        []string  `json:"refused_buckets,omitempty"`
	RecordsFetched int64     `json:"records_fetched"`
	RecordsSent    int64     `json:"records_sent"`
	// DataCopied counts the other sites' bodies this node copied to this
	// site's drives since start, ahead of any read of them; CopiesQueued
	// are the batches of records whose data is still to be looked at.
	DataCopied   int64 `json:"data_copied"`
	CopiesQueued int   `json:"copies_queued"`
}

// BucketCounts is Status.Buckets.
type BucketCounts struct {
	Strong    int      `json:"strong"`
	Available int      `json:"available"`
	Names     []string `json:"available_names,omitempty"`
}

// DriveState is a drive's health.
type DriveState string

const (
	DriveOK DriveState = "ok"
	// DriveFailed: the drive is not usable (I/O errors, missing, full).
	DriveFailed DriveState = "failed"
	// DriveNeedsRepair: the drive serves but holds missing or corrupt
	// shards that repair has not yet rebuilt.
	DriveNeedsRepair DriveState = "needs_repair"
)

type DriveStatus struct {
	ID            string     `json:"id"`
	Path          string     `json:"path"`
	State         DriveState `json:"state"`
	UsedBytes     int64      `json:"used_bytes"`
	TotalBytes    int64      `json:"total_bytes"`
	FreeBytes     int64      `json:"free_bytes"`
	ShardsRead    int64      `json:"shards_read"`
	CorruptBlocks int64      `json:"corrupt_blocks"`
	IOErrors      int64      `json:"io_errors"`
	LastError     string     `json:"last_error"`
}

// ReplicaState is the health of one metadata replica.
type ReplicaState string

const (
	ReplicaOK     ReplicaState = "ok"
	ReplicaFailed ReplicaState = "failed"
	// ReplicaCatchingUp: the replica is behind and being brought up to date.
	ReplicaCatchingUp ReplicaState = "catching_up"
)

type ReplicaStatus struct {
	Path      string       `json:"path"`
	State     ReplicaState `json:"state"`
	LastError string       `json:"last_error"`
}

// RepairStatus describes the repair pass running now, if any, and the last
// one that finished.
type RepairStatus struct {
	Running    bool  `json:"running"`
	DoneBytes  int64 `json:"done_bytes"`
	TotalBytes int64 `json:"total_bytes"`
	// LastRunStarted and LastRunFinished are zero (and omitted) until a
	// pass has finished.
	LastRunStarted  time.Time `json:"last_run_started,omitzero"`
	LastRunFinished time.Time `json:"last_run_finished,omitzero"`
	// LastRunRepairedShards counts shards the last pass rebuilt.
	LastRunRepairedShards int64 `json:"last_run_repaired_shards"`
	// LastRunError is empty when the last pass succeeded.
	LastRunError string `json:"last_run_error"`
	// ReadRepairs counts objects parts whose bad shards, found by a read,
	// were repaired at once; ReadRepairShards the shards rebuilt;
	// ReadRepairsPending those waiting to be tried again (a drive or node
	// down); ReadRepairsAbandoned those left to the next scrub.
	ReadRepairs          int64 `json:"read_repairs"`
	ReadRepairShards     int64 `json:"read_repair_shards"`
	ReadRepairsPending   int64 `json:"read_repairs_pending"`
	ReadRepairsAbandoned int64 `json:"read_repairs_abandoned"`
	// Relocation is a cluster node's moving of data to where the layout
	// wants it (rebuilds around drives that left it, rebalancing onto new
	// ones); nil on a single node.
	Relocation *RelocationStatus `json:"relocation,omitempty"`
}

// RelocationStatus is the current or last relocation pass of a node, over
// the partitions it leads.
type RelocationStatus struct {
	Running bool `json:"running"`
	// Planning is true while a running pass lists, from the metadata,
	// the shards it will check; the Pass totals are known after.
	Planning bool `json:"planning"`
	// Layout is the version the current or last pass worked toward;
	// SettledLayout the last one whose data this node has fully moved.
	Layout        uint64 `json:"layout"`
	SettledLayout uint64 `json:"settled_layout"`
	RefsToMove    int64  `json:"refs_to_move"`
	RefsMoved     int64  `json:"refs_moved"`
	BytesToMove   int64  `json:"bytes_to_move"`
	BytesMoved    int64  `json:"bytes_moved"`
	Failed        int64  `json:"refs_failed"`
	// ETASeconds estimates the time left of a running pass, from its
	// rate so far; 0 when unknown.
	ETASeconds      float64 `json:"eta_seconds,omitempty"`
	TotalBytesMoved int64   `json:"total_bytes_moved"`
	LastError       string  `json:"last_error,omitempty"`
}

// ScrubStatus describes the scrubber, which re-reads every shard on this
// node's drives once per interval and rebuilds the corrupt or missing ones.
// Counts without "Pass" are since the node started.
type ScrubStatus struct {
	Enabled         bool    `json:"enabled"`
	IntervalSeconds float64 `json:"interval_seconds"`
	// Running is true while a pass reads; between passes it waits out the
	// rest of the interval.
	Running bool `json:"running"`
	// Planning is true while a running pass lists, from the metadata,
	// the shards it will check; the Pass totals are known after.
	Planning bool `json:"planning"`
	// PassStarted and the Pass counts are the current or last pass's.
	PassStarted       time.Time `json:"pass_started,omitzero"`
	PassShardsTotal   int64     `json:"pass_shards_total"`
	PassShardsChecked int64     `json:"pass_shards_checked"`
	// PassBytesTotal is estimated from the objects' sizes before the pass
	// reads; PassBytesChecked counts the bytes read.
	PassBytesTotal   int64 `json:"pass_bytes_total"`
	PassBytesChecked int64 `json:"pass_bytes_checked"`
	ShardsChecked    int64 `json:"shards_checked"`
	BytesChecked     int64 `json:"bytes_checked"`
	CorruptShards    int64 `json:"corrupt_shards"`
	MissingShards    int64 `json:"missing_shards"`
	// RepairedShards counts shards rebuilt after a scrub found a bad one
	// (with the other bad shards of the same object part, on any node).
	RepairedShards int64 `json:"repaired_shards"`
	RepairFailures int64 `json:"repair_failures"`
	// Passes counts full passes finished since the node started;
	// LastPassStarted and LastPassFinished are the last one's, also from
	// before the node started, zero until one finished.
	Passes           int64     `json:"passes"`
	LastPassStarted  time.Time `json:"last_pass_started,omitzero"`
	LastPassFinished time.Time `json:"last_pass_finished,omitzero"`
	// NextPass is when the next pass is due to start (an interval after
	// the last one started, kept across restarts).
	NextPass  time.Time `json:"next_pass,omitzero"`
	LastError string    `json:"last_error,omitempty"`
}

// ClusterStatus is what a clustered node knows of the whole cluster.
type ClusterStatus struct {
	// NodeID is the node answering.
	NodeID string `json:"node_id"`
	// LayoutVersion is the newest layout this node has applied; 0 means
	// the cluster has none yet (waiting for nodes to bootstrap).
	LayoutVersion uint64 `json:"layout_version"`
	// StagedChanges counts the layout edits waiting for an apply.
	StagedChanges int           `json:"staged_changes"`
	Partitions    int           `json:"partitions"`
	Nodes         []NodeStatus  `json:"nodes"`
	System        GroupStatus   `json:"system_group"`
	Groups        GroupsSummary `json:"groups"`
	// Commits times the metadata commits this node made since start, from
	// the request to the commit being applied (upper bounds of ~19% wide
	// buckets).
	Commits LatencyStatus `json:"metadata_commits"`
	// RaftMessages counts the Raft messages this node could not send.
	RaftMessages RaftMessageStatus `json:"raft_messages"`
	// Snapshots counts the partition snapshots this node streamed to
	// nodes catching up, and installed from others, since start.
	Snapshots SnapshotStatus `json:"snapshots"`
	// Redundancy is how many more node and zone losses every object
	// survives now, against what the policy promises; nil before the
	// first layout.
	Redundancy *RedundancyStatus `json:"redundancy,omitempty"`
	// AntiEntropy is the last pass comparing available buckets' records
	// with the other replicas; nil before the first.
	AntiEntropy *AntiEntropyStatus `json:"anti_entropy,omitempty"`
}

// AntiEntropyStatus is one pass of the comparison of this node's
// available buckets' records with each other replica's.
type AntiEntropyStatus struct {
	Finished time.Time `json:"finished"`
	// Pairs counts the (partition, peer) pairs compared; Differed those
	// whose records differed; Failed those that could not be compared
	// (the peer unreachable, say), left for the next pass.
	Pairs    int `json:"pairs"`
	Differed int `json:"differed"`
	Failed   int `json:"failed"`
	// Fetched and Sent count the records copied in and out.
	Fetched int `json:"fetched"`
	Sent    int `json:"sent"`
	// Hinted counts the records this node kept for unreachable replicas
	// (hinted handoff) and has now handed to them.
	Hinted int `json:"hinted"`
	// ClockRefused counts, since the node started, the versions refused
	// because a clock ran ahead of another's by more than the maximum
	// offset; nonzero means some node's clock is off.
	ClockRefused int64 `json:"clock_refused,omitempty"`
}

// SnapshotStatus counts streamed partition snapshots since start: a node
// that is new, replaced, or fell behind a partition's log catches up by
// one. Failed streams are retried; one that keeps failing is a follower
// that cannot catch up (the log says why).
type SnapshotStatus struct {
	Sent      uint64 `json:"sent"`
	BytesSent uint64 `json:"bytes_sent"`
	Failed    uint64 `json:"failed"`
	Installed uint64 `json:"installed"`
}

// RaftMessageStatus counts Raft messages not sent since start. Raft
// resends from its own state, so a few are harmless; a count that keeps
// growing is a peer this node cannot reach or keep up with, and any
// refused message is a group too large for the transport (a snapshot
// over its limit), whose followers cannot catch up.
type RaftMessageStatus struct {
	// Refused: larger than the transport carries; not sent.
	Refused uint64 `json:"refused"`
	// QueueFull: dropped because the queue to their peer was full.
	QueueFull uint64 `json:"queue_full"`
	// Undelivered: the transport could not send them (peer unreachable,
	// address unknown).
	Undelivered uint64 `json:"undelivered"`
}

// LatencyStatus is a count and percentiles of durations.
type LatencyStatus struct {
	Count uint64  `json:"count"`
	P50Ms float64 `json:"p50_ms"`
	P99Ms float64 `json:"p99_ms"`
}

// NodeState is a node's liveness as gossip sees it.
type NodeState string

const (
	NodeAlive   NodeState = "alive"
	NodeSuspect NodeState = "suspect"
	NodeDead    NodeState = "dead"
	NodeLeft    NodeState = "left"
)

// NodeStatus is one node of the cluster.
type NodeStatus struct {
	ID        string    `json:"id"`
	Zone      string    `json:"zone"`
	State     NodeState `json:"state"`
	RPCAddr   string    `json:"rpc_addr"`
	S3Addr    string    `json:"s3_addr"`
	AdminAddr string    `json:"admin_addr"`
	// InLayout says whether the current layout places data on the node.
	InLayout bool `json:"in_layout"`
	// Drives and Capacity are as the layout records them.
	Drives   int    `json:"drives"`
	Capacity uint64 `json:"capacity_bytes"`
	// ShardSlots is the partitions' shard slots the layout gives its drives.
	ShardSlots int `json:"shard_slots"`
	// Leads and Hosts count the metadata Raft groups the node leads and
	// is a voter of, as far as the answering node knows (its own groups
	// exactly, the others from the layout).
	Leads int `json:"leads"`
	Hosts int `json:"hosts"`
	// DriveUsage is each drive's state and usage as the node reported it
	// just now; empty when the node did not answer.
	DriveUsage []DriveStatus `json:"drive_usage,omitempty"`
	// CatchingUp names the metadata groups ("partition 12", "the System
	// group") whose leader reports the node's replica as catching up: a
	// learner, or a voter waiting for a snapshot. Such a replica does not
	// hold its group's state yet, so redundancy counts it as lost.
	CatchingUp []string `json:"catching_up,omitempty"`
}

// GroupStatus is one Raft group as the answering node sees it.
type GroupStatus struct {
	// Member says the answering node is a voter of the group; the other
	// fields are empty when it is not.
	Member  bool     `json:"member"`
	Leader  string   `json:"leader"`
	Term    uint64   `json:"term"`
	Applied uint64   `json:"applied"`
	Voters  []string `json:"voters"`
}

// GroupsSummary counts the partition groups this node is a voter of.
type GroupsSummary struct {
	Hosted     int `json:"hosted"`
	Leading    int `json:"leading"`
	Leaderless int `json:"leaderless"`
}
