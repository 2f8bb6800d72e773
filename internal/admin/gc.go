package admin

import "time"

// GCStatus counts garbage collection of orphan shards on this node since
// start, and describes the last pass.
type GCStatus struct {
	// IntervalSeconds between passes; 0 when collection is off.
	IntervalSeconds  float64   `json:"interval_seconds"`
	Passes           int64     `json:"passes"`
	ShardsScanned    int64     `json:"shards_scanned"`
	OrphansRemoved   int64     `json:"orphans_removed"`
	BytesFreed       int64     `json:"bytes_freed"`
	IntentsSwept     int64     `json:"intents_swept"`
	LastPassStarted  time.Time `json:"last_pass_started,omitzero"`
	LastPassFinished time.Time `json:"last_pass_finished,omitzero"`
	LastPassScanned  int64     `json:"last_pass_scanned"`
	LastPassRemoved  int64     `json:"last_pass_removed"`
	LastPassError    string    `json:"last_pass_error,omitempty"`
}
