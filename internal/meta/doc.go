// Package meta keeps the metadata of a Redoubt node: bucket and credential
// records, object version records, and small objects stored inline in them.
//
// # The Store contract
//
// A Store (meta.go) holds keys and values organised by Partition. Object
// metadata lives in partitions 0..P-1, chosen by hashing the key; System
// holds cluster-wide records. Partitions are separate key spaces.
//
//  1. Get returns a key's value and the revision it was written at, or
//     ErrNotFound. The value is the caller's to keep.
//  2. Scan visits the keys of [start, end) of one partition in byte order
//     until fn returns false; a nil end means the end of the partition. fn
//     must not keep key or item.Value after it returns. fn may call back
//     into the Store; the scan shows the range as it was when it began.
//  3. Commit applies a Txn atomically: when every Cond holds (the key is at
//     exactly Cond.Rev, or absent for Rev 0) all Deletes, then all Puts, are
//     applied at one new revision; otherwise it returns ErrConflict and
//     changes nothing. A key both deleted and put ends up put; of two puts of
//     one key the later wins. Then the Adds add to their counters, on top
//     of the Txn's own puts; Adds need no condition, and concurrent ones
//     all count (metatest AddsCommute). Commit returns only when the Txn
//     is durable.
//  4. Revisions increase with every commit to a partition and are never
//     reused, so (key, revision) names one exact value. They need not be
//     consecutive, and need not be comparable across partitions.
//  5. ErrUnavailable (wrapped) means the partition cannot serve now; the
//     caller answers 503 and may retry. A Commit that returns it may or may
//     not have been applied. ErrNoSpace (wrapped) means a Commit was
//     refused, unapplied, for lack of disk space; reads go on, and the
//     caller answers 507 so that clients free space instead of retrying.
//  6. Every method checks ctx before it starts; a Commit that has started is
//     not abandoned midway.
//
// All methods of every Store are safe for concurrent use. Commits to one
// partition take effect in one order, that of their revisions.
//
// # Mem
//
// Mem is the in-memory twin: the executable statement of the contract, used
// by tests of the layers above. It keeps nothing across restarts. Its
// revisions count commits per partition.
//
// # Local
//
// Local keeps the metadata of one node in Pebble, mirrored on one to three
// drives (LocalConfig.Dirs), so that metadata, like object data, survives the
// loss of any one drive.
//
//   - Every Commit is applied to every healthy replica, and synced on each,
//     before it returns. Concurrent commits share fsyncs: a commit holds its
//     partition's lock only while it checks its conditions and applies its
//     batch to the replicas' memtables, never across an fsync.
//   - All replicas apply commits in one order (a global sequence, which
//     also provides the revisions), so what a crash leaves of a replica is a
//     prefix of that order. Each batch records the keys it wrote under its
//     sequence number in a bounded log (LocalConfig.LogRing entries). At open,
//     a replica that missed recent commits copies the current values of
//     those keys from the most advanced replica; one that lags further, or is
//     empty (a replaced drive), or belongs to another store, is rebuilt from a
//     Pebble checkpoint of it. After OpenLocal returns, the healthy replicas
//     are identical and every acknowledged commit is on each of them.
//   - A replica whose directory vanishes, whose writes or syncs fail, which
//     reports a background error, or which takes longer than
//     LocalConfig.ReplicaTimeout, is marked failed, logged once, and left out
//     until the next open; Status reports it. Pebble's fatal errors fail the
//     replica instead of exiting the process. When no replica is left, every
//     operation returns an error wrapping ErrUnavailable. A goroutine that
//     Pebble was running when it failed fatally stays parked, holding that
//     database's lock, so such a drive rejoins only when the process restarts.
//   - Reads go to the first healthy replica. Get returns a copy; Scan hands
//     fn slices that are valid only until fn returns.
//   - Revisions come from one sequence for all partitions, and jump by 2^32
//     at each open so that a revision seen before a crash is never given to
//     another value.
//   - Space. Pebble stops for good once a write of its own (WAL, manifest)
//     fails for lack of space, so it must never run out: while a
//     replica's drive has less than LocalConfig.MinFree free, Commit
//     returns ErrNoSpace and changes nothing; reads go on, and commits
//     succeed again as soon as space is freed (TestLocalMinFree). A flush
//     or compaction that still meets a full disk does not fail the
//     replica: Pebble retries it, paced, not in a busy loop
//     (TestLocalFlushOnFullDiskIsRetried). Commits that delete more keys than they
//     put, while a drive is near LocalConfig.Reserve, are followed by a
//     compaction, so that the space comes back at once
//     (TestLocalDeletesFreeSpace). OpenLocal
//     first checks that each drive has room to open its replica, and a
//     replica that has not, or whose Pebble fails while opening, is marked
//     failed with an error naming its drive, never waited on
//     (TestLocalOpenOnFullDriveFailsFast,
//     TestLocalOpenDoesNotHangWhenPebbleFails).
//   - The replicas live on LocalConfig.FS: the operating system's, or a
//     vfs.Mem whose disks fill up like real ones (PebbleFS).
//
// Close waits for operations in progress and must not be called while
// operations are still being started. The fields of LocalConfig are read at
// OpenLocal only.
package meta
