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
//  5. GetMany (meta.ManyGetter) reads several keys from one view: at the
//     leader like Get, or, with ReadOptions.Stale or After, from this
//     host's own copy once it has applied After. Keys read with
//     meta.Read.Hot are answered from the group's memory (meta.HotKeys)
//     when no write of the group's data was under way during the read;
//     every such write (an apply batch, a snapshot installed, the replica
//     deleted) is bracketed by the group's HotKeys
//     (TestConformance*/HotReadsAreOneView).
//  6. Durability: a host acknowledges log entries (to its leader, or as
//     leader to itself) only after one synced Pebble batch holding the
//     entries and hard states of every group that had some. Applied
//     entries are written with their group's applied index in one batch.
//     New restarts every group found in its directory.
//  7. A group's log keeps at most Config.SnapshotEntries applied entries;
//     a follower that needs discarded entries gets a snapshot of the
//     group's items. The items are streamed outside the message path, in
//     acknowledged, checksummed chunks paced by Config.SnapshotRate, and
//     staged; the snapshot is then installed in one atomic Pebble
//     ingestion that replaces the group's whole state, so a crash leaves
//     the old state or the new (snapstream.go;
//     TestSnapshotLargerThanABatchIsStreamed, TestGigabyteSnapshot and
//     testdata/streamed_snapshot_crash.txt).
//  8. AddVoter, AddLearner and RemoveVoter change a group's membership one
//     node at a time (raft ConfChangeV2); they and Groups and Progress
//     name nodes. A node added to a group, whether for the first time or
//     again after its removal, is a new replica of it, with a Raft ID and
//     a generation the group never gave before (see Replica identity). A
//     node deletes its replica of a group once that replica is out of the
//     configuration for good: when it applies its own removal, when a
//     newer replica of the node is named, or when the group's leader
//     confirms that it is no member. It never deletes a member's state,
//     however long it is cut off.
//  9. Split splits a group into two new groups, each starting with a copy
//     of all its items, made by every replica from its own copy at the
//     split entry (no data crosses the network); from that entry on the
//     group applies nothing and answers every request with meta.ErrMoved.
//     The caller routes each key to one child afterwards. Children are
//     made only by splits: a caller must never EnsureGroup one, which
//     would start it empty (split.go; testdata/split*.txt,
//     TestSplitLosesNoAcknowledgedWrite).
//
// # Event loop
//
// Run drives every group from one goroutine. Every Config.TickInterval
// it ticks the groups and retries failed ones (see Failures); then, after
// a tick or when a Step, a proposal or a read woke it, it makes and
// deletes the replicas asked for (see Replica identity), and runs a cycle
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
//     holds it durably, whether or not this node is one of it. A crash
//     keeps what was synced and any part of what was written since, not
//     necessarily a prefix (a torn record of Pebble's write-ahead log is
//     skipped and the records after it replayed), so the apply batch
//     carries the hard state again, and entries the same cycle appends
//     and applies are synced before they are applied: never applied
//     state without the log beneath it (TestCrashKeepsAcknowledgedCommits,
//     TestApplyOutlivesItsLogBatch, TestAppliedEntriesAreSyncedFirst);
//  5. syncs once, for both batches;
//  6. sends the other messages (votes, append and heartbeat responses),
//     which acknowledge what is now durable;
//  7. releases the reads whose index is applied, calls Advance, and
//     compacts the logs that grew past Config.SnapshotEntries, after a
//     sync if an apply batch was written since the last: never a log
//     compacted past the applied state on disk
//     (TestCompactionFollowsDurableApply).
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
// # Replica identity
//
// A host has at most one replica of each group, and each replica has its
// own Raft ID. The initial voters of a group use their node IDs
// (generation 0), which keeps data directories made before replicas had
// IDs of their own valid. Every later addition of a node is a new
// replica: the leader takes an ID above every ID the group ever had and
// the next generation, from the replica set it applied (each member's ID,
// node and generation, and the floors for the next ID and generation),
// and puts the replica in the change's context. Each replica checks that
// choice again when it applies the change, against the same set at the
// same index (replicaSet.admit), so all refuse it alike if a change since
// made it stale: an ID is never given twice, whatever the leader
// believed (TestReplicaSetAdmits). The set is kept with the apply state
// and carried in snapshots.
//
// Messages name replicas: a batch carries, with each message, the
// generations of its sender and of its recipient. A host steps a message
// into its replica of the group only if the message names that replica.
// A message to a newer replica of this node (a later generation) makes
// that replica, empty, in place of the older one, and the leader's
// snapshot fills it. A message to an older replica, or to one older than
// the group's tombstone, is dropped and makes nothing
// (TestStaleMessagesMakeNoReplica).
//
// A replica's state is deleted, in one batch with a tombstone (the lowest
// generation of the group still allowed here), once its ID is out of the
// group's configuration for good, which each of these shows:
//
//  1. It applies its own removal.
//  2. A message names a newer replica of the same node. Its sender
//     applied that replica's addition, which is therefore committed; and
//     a group admits a new replica of a node only while the node has no
//     member replica, so the older one's removal was committed before.
//  3. The group's leader, asked by the replica (checkReplica), answers
//     after a ReadIndex round that it is no member. The answer reflects
//     every change committed before the question, among them the
//     replica's own addition: a replica exists only as an initial voter
//     or because a member that had applied its addition sent it a
//     message. Not a member after its addition means removed.
//
// The leader stops sending to a replica once it applies its removal, so
// a replica cut off at that moment learns of it only by asking (3); it
// asks when it has heard from no leader for two election timeouts, every
// Config.ReplicaCheckInterval. No timer decides whether state may go.
//
// Why this is safe. Raft needs each server's durable state (its log and
// its vote) to last as long as the server takes part: one that forgets
// an entry it acknowledged, or its vote, and takes part again, can lose a
// committed entry or help elect two leaders in one term. A replica whose
// state is deleted never takes part again: its ID is never given again
// (admit), so no later member is the same server; its tombstone, written
// in the same batch as the deletion, makes every message to it or to an
// older generation be dropped, so it is never made again (a crash that
// loses the batch loses it whole, and the replica comes back as it was);
// and EnsureGroup does not bootstrap a group this host has a tombstone
// of. To the others it is a server that stopped for good, which Raft
// survives. Deleting only replicas that are out of the configuration for
// good keeps the groups whole as well: no member loses its state, so
// none is lost to its group (TestReplicaIDReuseHole,
// testdata/replica_identity.txt, testdata/replica_check.txt,
// TestRemovedWhileCutOffDeletedOnTheLeadersWord).
//
// Groups made before replicas had IDs of their own keep their members'
// node IDs as generation 0. The IDs such a group removed before are not
// known; its first new replica's ID is chosen above its members' only.
// Such a group may have given a node's ID back to it, so a replica of
// generation 0 that applies its removal keeps its state while its own log
// holds a later addition of its ID, and applies it. Nodes of an earlier
// version name replicas by node only: a cluster must not change group
// membership until all its nodes run this one (their message batches,
// of version 1, are refused).
//
// # Wire and disk
//
// Message batches (Sender, Step), forwarded requests and responses
// (Forwarder, HandleForward), log entry payloads, configuration change
// contexts, snapshot data and stored state all begin with a format
// version byte; decoders reject anything else with ErrCorrupt. Message
// batches are version 2 (with generations); the group record, the apply
// state, configuration change contexts and snapshot data are version 2
// (with replica IDs and the replica set), and version 1 of those is read
// as a group from before replica IDs. Snapshot data is sent as version 3,
// which names a stream of items instead of holding them; versions 1 and
// 2, with the items inline, are still installed. The Pebble key layout is in
// keys.go.
//
// # Concurrency
//
// All methods are safe for concurrent use. Run may be called once; Close
// must follow its return.
package raftmeta
