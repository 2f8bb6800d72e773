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
	// CorruptionsTotal counts corrupt blocks found since start, by reads
	// and by scrub.
	CorruptionsTotal int64        `json:"corruptions_total"`
	Repair           RepairStatus `json:"repair"`
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
}
