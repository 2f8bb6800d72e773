// Package objects gives S3 semantics — buckets, objects, versions,
// multipart uploads, listings — over two stores: a partitioned metadata
// store with conditional transactions (meta.Store) and a data store of
// coded shards (blocks.Store). *Service implements API for the front ends.
//
// Contract:
//
//  1. Placement. The records of an object key live in the metadata
//     partition placement.PartitionOf(bucket, key, Partitions), or, once
//     it has split, in the descendant of it the key's route resolves to
//     (route.go: Partitions that split); bucket records live in
//     meta.System. Record keys are laid out in keys.go,
//     record values in record.go; every value starts with a format version.
//  2. Atomicity. Every key has a head record naming its latest version and
//     its null version. Every change to a key's versions rewrites the head
//     in the same transaction, conditional on the head's revision, so each
//     decision (If-Match, If-None-Match, which version is replaced or
//     becomes latest) is a Cond and holds at the commit. A transaction that
//     fails only because another write came between is retried from the
//     reads; of racing conditional creators exactly one wins.
//  3. Durability order. A body is written to the data store (or kept
//     inline, up to Config.InlineMax) and verified (MD5, checksums, length)
//     before the metadata commit; on any failure nothing is committed and
//     the written data is deleted. Data a commit stops referring to
//     (a replaced null version, a deleted version, a replaced or unlisted
//     part) is deleted after the commit; a crash in between leaves an
//     orphan for garbage collection, never a record without data.
//  4. Versions. Version IDs are hybrid-logical-clock timestamps; a key's
//     versions are stored newest first and its latest version is the one
//     with the greatest timestamp. A new version always gets a timestamp
//     after every existing version of the key.
//  5. Multipart. Each UploadPart rewrites the upload record, so Complete
//     and Abort, conditional on that record, see every part committed
//     before them and no part can be added to a finished upload. An
//     upload created without a checksum algorithm keeps a CRC64NVME of
//     every part, and its object gets their FULL_OBJECT combination.
//  6. Buckets. A bucket's records carry its random incarnation ID, not its
//     name; a write racing DeleteBucket may land under the dead ID, where
//     no reader looks (ForEachRef still reports its data, so nothing it
//     names is freed before garbage collection removes the records).
//  7. Listing merges one bounded, batched scan per partition (see list.go):
//     a page costs O(page + partitions) record reads. Object listings read
//     head records only; a head copies its latest version's checksum so
//     that entries name it.
//
// Garbage collection (intent.go, gc.go) is safe by construction, not by
// waiting. Every data write of a Service gets a ref ID carrying its key's
// partition and one ref record 'r' ID there. (a) The record is committed as
// an intent (writer incarnation, time) before the first shard file
// exists. (b) The commit naming the Ref turns it live, conditional on the
// intent's revision; the commit deleting or replacing that name deletes it
// in the same Txn. (c) Nothing else ever writes it. A pass lists a drive's
// shard files first, then reads each ID's record linearizably: live means
// named, kept; an intent of a live incarnation is a write in flight, kept
// (unless it is this incarnation's and the write has ended: abandoned by a
// writer that could not drop it, TestAbandonedIntentIsCollected);
// an intent of a dead incarnation is deleted (conditionally), then its
// shards; no record removes the shards. That last case is final: a listed
// shard implies its intent was committed before the listing (a), so the
// record is absent at the read only after it was deleted, and by (b, c) a
// record never comes back and no commit can name the Ref without it. A
// wrong "dead" verdict on a writer costs it its write (errIntentLost),
// never committed data (on a collector reaping a moved Ref's old copies
// it could cost one new copy of a move that follows, which repair
// rebuilds; the default verdict, an older nonce of this node, is never
// wrong); an abandoned write drops its intent before its shards,
// so a commit whose answer was lost keeps its data. IDs of another shape
// (written before ref records, or by a store without blocks.IDWriter) are
// never collected.
//
// All methods are safe for concurrent use. Errors are the sentinels of
// api.go, wrapped with context; errors of the metadata store (including
// meta.ErrUnavailable) are passed through wrapped.
package objects
