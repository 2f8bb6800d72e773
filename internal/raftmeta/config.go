package raftmeta

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/redoubt-io/redoubt/internal/clock"
)

// Sender carries message batches to other hosts. It is best effort and
// must not block: a batch it cannot deliver is dropped, and Raft resends.
// The host calls Send at most once per peer per ready cycle, with the
// messages of all its groups for that peer; the receiving node hands the
// batch to its Host's Step. The host does not touch a batch after
// passing it to Send.
type Sender interface {
	Send(to uint64, batch []byte)
}

// Forwarder carries a request to another host and returns its answer: the
// receiving node calls HandleForward with req and sends back what it
// returns. An error wrapping ErrNotDelivered means the request certainly
// did not reach the peer, so a Commit may be sent elsewhere; any other
// error leaves a Commit's outcome unknown.
type Forwarder interface {
	Forward(ctx context.Context, to uint64, req []byte) ([]byte, error)
}

// ErrNotDelivered is wrapped by Forwarder errors for requests that never
// reached the peer (no connection, peer known down).
var ErrNotDelivered = errors.New("raftmeta: request not delivered")

// Config configures a Host. Its fields are read by New only.
type Config struct {
	// NodeID is this node's ID: peers send to it (Sender, Forwarder),
	// and it is the Raft ID of its replicas in the groups it is an
	// initial voter of. A replica added later has a Raft ID of its own
	// (see Replica identity in the package documentation); the API names
	// nodes only. Never 0; never reused by another node.
	NodeID uint64
	// Dir holds the one Pebble database of all groups of this host.
	Dir string
	// Send and Forward connect the host to its peers.
	Send    Sender
	Forward Forwarder
	Logger  *slog.Logger
	// Splitter, when set, divides a splitting group's items between its
	// children (see Splits in split.go); without it each child gets all
	// of them.
	Splitter Splitter

	// TickInterval is Raft's unit of time. Election timeout is
	// ElectionTicks × TickInterval (randomised up to twice that), so a
	// failed leader is replaced within about 2 × ElectionTicks ticks;
	// shorter ticks fail over faster but cost more idle heartbeats
	// (every group's leader sends one per HeartbeatTicks).
	TickInterval   time.Duration
	ElectionTicks  int
	HeartbeatTicks int
	// SnapshotEntries bounds each group's log: once that many applied
	// entries are kept, the oldest three quarters are discarded, and a
	// follower that lags further gets a snapshot of the group's data.
	SnapshotEntries uint64
	// ProposalTimeout bounds a Commit, Get or Scan: without a leader and a
	// quorum in that time the call fails with meta.ErrUnavailable.
	ProposalTimeout time.Duration
	// MaxInflight is how many append messages a leader sends a follower
	// before waiting for an acknowledgement.
	MaxInflight int
	// MaxMessage bounds the entries in one append message, the items in
	// one page of a forwarded scan or one answer to ScanRanges, and the
	// items in one chunk of a streamed snapshot (bytes).
	MaxMessage int
	// MaxBatch is the largest batch the Sender carries (the transport's
	// message limit); 0 means no limit. Larger batches are split; a single
	// message larger than this is not sent, but counted in Stats.Refused
	// and logged at warn. (Snapshots are streamed in chunks of about
	// MaxMessage, whatever their size.)
	MaxBatch int
	// MaxHops bounds how often a request is forwarded before it is
	// answered "no leader here"; the origin then retries until
	// ProposalTimeout.
	MaxHops int
	// CacheBytes is Pebble's block cache. Reads of the state machine (every
	// linearizable Get) come from it; with Pebble's 8 MiB default, they
	// went to the file system for a working set of a few hundred groups.
	CacheBytes int64
	// MemTableBytes is Pebble's memtable. Raft log entries are written
	// and, once the log is compacted, deleted: the larger the memtable,
	// the more of them die before they are flushed and compacted.
	MemTableBytes uint64
	// SnapshotRate bounds, in bytes per second, the snapshots this host
	// streams to followers (see snapstream.go), so that a node catching
	// up does not take the disks and network from requests; 0: no limit.
	SnapshotRate int64
	// FS is the file system of Dir; nil is the operating system's. Tests
	// pass a crashable one, to see what a crash keeps.
	FS vfs.FS
	// ReplicaCheckInterval is how often a replica that has heard from no
	// leader for two election timeouts asks its group's leader whether
	// it is still a member, to delete its state if not (a replica removed
	// while cut off never hears of its removal otherwise). It decides
	// only how soon such state goes, never whether that is safe: the
	// answer does. Each check costs the leader one ReadIndex round.
	ReplicaCheckInterval time.Duration
	// Wake, when set, is how the event loop is woken for work that
	// proposals, reads and incoming messages leave: Wake(kick) must see
	// that kick is called soon, on any goroutine; nil calls it at once.
	// The cluster simulation defers kick to its own event loop, so that
	// a cycle sees all that the goroutines running at one instant left,
	// whatever order the Go scheduler ran them in (TestSimulationReplays).
	Wake func(kick func())
	// Ticks, when set, replaces the loop's ticker of TickInterval: a tick
	// is a value received from it. The cluster simulation ticks from its
	// event loop, after the goroutines woken at that instant have run, as
	// it wakes the loop (see Wake).
	Ticks <-chan time.Time
	// Quiesce lets idle groups stop ticking (see Quiescence, quiesce.go).
	// Nodes turn it on (cluster.Config.RaftQuiesce).
	Quiesce bool
	// After makes the host's own waits (a retry's pause, a read's
	// confirmation timeout, the replica check's period); nil: time's
	// timers. The cluster simulation makes each an event (clock.After).
	After clock.After
}

// DefaultConfig returns the settings for a LAN cluster.
func DefaultConfig() Config {
	return Config{
		// 100 ms ticks and 10-tick elections: failover in 1-2 s, and
		// 10 heartbeats/s per group leader, which batching per peer keeps
		// to a few small messages per cycle even with hundreds of groups.
		TickInterval:   100 * time.Millisecond,
		ElectionTicks:  10,
		HeartbeatTicks: 1,
		// Metadata groups are small; 10,000 entries is a few MiB of log
		// per group, and lets a node down for minutes catch up from the log.
		SnapshotEntries: 10000,
		ProposalTimeout: 5 * time.Second,
		MaxInflight:     256,
		MaxMessage:      1 << 20,
		MaxHops:         3,
		CacheBytes:      64 << 20,
		MemTableBytes:   64 << 20,
		// A removed node's stale state costs only disk space; every 10 s
		// bounds the checks of a node cut off from all its groups to a
		// few per second.
		ReplicaCheckInterval: 10 * time.Second,
	}
}

// Validate checks the rules that span fields.
func (c *Config) Validate() error {
	switch {
	case c.NodeID == 0:
		return errors.New("raftmeta: NodeID must not be 0")
	case c.Dir == "":
		return errors.New("raftmeta: Dir is required")
	case c.Send == nil || c.Forward == nil:
		return errors.New("raftmeta: Send and Forward are required")
	case c.TickInterval <= 0:
		return errors.New("raftmeta: TickInterval must be positive")
	case c.HeartbeatTicks < 1 || c.ElectionTicks <= c.HeartbeatTicks:
		return fmt.Errorf("raftmeta: ElectionTicks (%d) must exceed HeartbeatTicks (%d) ≥ 1", c.ElectionTicks, c.HeartbeatTicks)
	case c.SnapshotEntries < 4:
		return errors.New("raftmeta: SnapshotEntries must be at least 4")
	case c.ProposalTimeout < time.Duration(c.ElectionTicks)*c.TickInterval:
		return errors.New("raftmeta: ProposalTimeout must be at least one election timeout")
	case c.MaxInflight < 1 || c.MaxMessage < 1024 || c.MaxHops < 1:
		return errors.New("raftmeta: MaxInflight, MaxMessage (≥ 1 KiB) and MaxHops must be positive")
	case c.MaxBatch != 0 && c.MaxBatch < 2*c.MaxMessage:
		return errors.New("raftmeta: MaxBatch must be 0 (no limit) or at least twice MaxMessage")
	case c.ReplicaCheckInterval < c.TickInterval:
		return errors.New("raftmeta: ReplicaCheckInterval must be at least one tick")
	}
	return nil
}
