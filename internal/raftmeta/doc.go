// Package raftmeta keeps Redoubt's metadata partitions in Raft groups
// (go.etcd.io/raft/v3): each partition 0..P-1 and meta.System is one group
// of up to five voters, and a Host runs every group of one node. A Host is
// a meta.Store for every partition, whether or not it is a member.
//
// # Contract
//
//  1. Commit, Get and Scan keep meta.Store's contract, linearizably: a
//     Commit is served by the group's leader (wherever the caller is) and
//     returns after its entry is committed by a quorum, each member having
//     synced it, and applied on the leader. Get and Scan confirm the
//     leadership with a quorum (raft ReadIndex, ReadOnlySafe) and read the
//     leader's copy once it has applied everything committed before they
//     began. Revisions are log indexes: increasing, never reused.
//  2. A request for a group this host does not lead goes to the leader it
//     knows, else to the group's members in turn (EnsureGroup's or
//     SetMembers' voters); it travels at most Config.MaxHops hops, and is
//     retried while no leader is known, until Config.ProposalTimeout.
//     Then, or when the leader cannot reach a quorum, the call fails with
//     an error wrapping meta.ErrUnavailable. A Commit that fails so may
//     still apply later; one is sent again only when the earlier attempt
//     certainly did not reach a leader (the Forwarder said ErrNotDelivered,
//     or the receiver had no leader).
//  3. A Scan served by a non-leader arrives in pages of Config.MaxMessage
//     bytes, each a consistent, linearizable view of its keys, read one
//     after another (see Scan); served at the leader it is one view.
//  4. ScanRanges (meta.RangeScanner) reads many ranges at the cost of
//     one round per node, not one per range: the groups led here confirm
//     their reads together and are read through one Pebble iterator;
//     each other node gets one request with all the ranges it leads (as
//     far as this host knows; a node that does not lead a range names
//     the leader it knows, and a second round goes there), served the
//     same way, all in parallel. Each range is linearizable on its own:
//     it reflects every commit acknowledged before the call began.
//     Ranges are not one snapshot together, and a range longer than a
//     response (Config.MaxMessage) is continued like a paged Scan. A
//     range whose node fails or lost the lead is read with Scan.
//  5. Durability: a host acknowledges log entries (to its leader, or as
//     leader to itself) only after one synced Pebble batch holding the
//     entries and hard states of every group that had some. Applied
//     entries are written with their group's applied index in one batch.
//     New restarts every group found in its directory.
//  6. A group's log keeps at most Config.SnapshotEntries applied entries;
//     a follower that needs discarded entries gets a snapshot of the
//     group's items, installed in one batch.
//  7. AddVoter, AddLearner and RemoveVoter change a group's membership one
//     node at a time (raft ConfChangeV2). A node learns its removal when it
//     applies it; from then the group is not hosted there (Groups omits
//     it, requests are routed elsewhere), but it keeps running for
//     Config.RemovedGrace in case a later change adds the node back, and
//     only then, if still left out, is stopped and its data deleted.
//
// # Event loop
//
// Run drives every group from one goroutine. Every Config.TickInterval
// it ticks the groups and retries failed ones (see Failures); then, after
// a tick or when a Step, a proposal or a read woke it, it runs a cycle
// over the groups that were stepped, ticked or given work since the last
// one. A cycle, in this order:
//
//  1. collects their Ready;
//  2. writes the hard states, entries and snapshots of all of them into
//     one Pebble batch, committed without a sync;
//  3. sends the messages that acknowledge nothing, one batch per peer
//     (Sender): a leader's appends, heartbeats and snapshots, and the
//     proposals and read requests a follower passes on. They leave before
//     this node's own sync, so that followers write in parallel with
//     their leader; raft counts the leader's own copy only once Advance
//     says it is durable;
//  4. applies the committed entries into a second batch, also unsynced,
//     and answers their callers: an entry is committed once a majority
//     holds it durably, whether or not this node is one of it. Pebble's
//     write-ahead log keeps the two batches in order, so a crash keeps a
//     prefix: never applied state without the log beneath it
//     (TestCrashKeepsAcknowledgedCommits, testdata/crash_before_sync.txt);
//  5. syncs once, for both batches;
//  6. sends the other messages (votes, append and heartbeat responses),
//     which acknowledge what is now durable;
//  7. releases the reads whose index is applied, calls Advance, and
//     compacts the logs that grew past Config.SnapshotEntries.
//
// Each group's RawNode is guarded by its own mutex, taken briefly by
// Step, proposals and reads on other goroutines. An idle group costs one
// Tick per TickInterval and, if it leads, one heartbeat per follower per
// HeartbeatTicks; a cycle in which nothing changed writes nothing.
//
// # Failures
//
// An error that concerns one group — its stored data or a snapshot does
// not decode or cannot be read, its log refuses to compact — stops that
// group only: it is logged at error level with the group, counted
// (Stats.GroupErrors, Stats.Quarantined), and the group is quarantined:
// not ticked, stepped or served (this host sends its requests to the
// other members, and they fail with meta.ErrUnavailable if none can
// serve). Its writes of that cycle are left out of the batches, so its
// copy on disk stays as it was last made durable, and after a back-off
// (one election timeout, doubling up to 64) the group is loaded again
// from that copy, as if the node had restarted
// (TestOneGroupFailingLeavesOthersServing, TestFailedLeaderGroupMovesOn).
// Errors of the database as a whole — committing a batch, the sync —
// stop Run, and with it every group.
//
// # Wire and disk
//
// Message batches (Sender, Step), forwarded requests and responses
// (Forwarder, HandleForward), log entry payloads, snapshot data and stored
// items all begin with a format version byte; decoders reject anything
// else with ErrCorrupt. The Pebble key layout is in keys.go.
//
// # Concurrency
//
// All methods are safe for concurrent use. Run may be called once; Close
// must follow its return.
package raftmeta
