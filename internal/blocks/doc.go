// Package blocks is the data path: it stores object data as coded shards
// over drives of this node and of others, and reads it back verified.
//
// blocks.go states the contract every implementation keeps (Ref, Store).
// Set is the implementation, with the redundancy of a placement.Policy.
// It reaches drives as shardrpc.Drive values: this node's drives (given to
// New) directly, any other by ID through Config.Resolve.
//
// Contract of Set:
//
//  1. Layout. Data is cut into chunks of K*ChunkSize bytes (ChunkSize for
//     a mirror); each chunk is coded into K+M shards (package erasure). A
//     Ref's shard i of every chunk is concatenated into one shard file on
//     drive Ref.Drives[i], K+M distinct drives.
//  2. Placement. Write(ctx, p, r) asks Config.Place for the ordered
//     candidate drives of partition p and takes the first K+M that are
//     online; a drive whose Create fails is replaced by the next online
//     candidate before any byte is sent. Without Place the candidates are
//     a rotation over the local drives that starts at a hash of the Ref
//     ID. Fewer than Policy.WriteQuorum online candidates is ErrQuorum;
//     between that and K+M, the missing shards are named on offline
//     candidates and the Ref is noted for repair. SetPolicy changes the
//     policy of writes started afterwards.
//  3. Write streams: while one stripe is read and coded, the previous ones
//     are written to the K+M shard files in parallel. Memory per Write is
//     bounded by about (WriteAhead+2) stripes whatever the data size. Write
//     returns once at least Policy.WriteQuorum shards are durable; on any
//     error no Ref is returned and the durable shards it could reach are
//     removed.
//  4. Open reads only the chunks the range covers, data shards first, and
//     reconstructs from parity when a shard is missing, corrupt, or on a
//     failed, unknown or unreachable drive. Drives believed offline are
//     tried only when the others cannot give K shards, so a dead node does
//     not cost a timeout per read. Every block is verified (by the serving
//     node for a remote shard), against the Ref ID and shard index as well
//     as its bytes: a file of another shard or another object put in a
//     shard's place (store.ErrMisplaced), or of the wrong length, is
//     corrupt and never served (TestForeignShardFiles,
//     TestSwappedShardFilesOfTwoObjects). Corruption is counted and
//     logged with the Ref ID and drive; every Ref read with a bad or
//     missing shard is remembered for NeedsRepair and passed to
//     Config.OnNeedsRepair.
//  5. Repair verifies every shard of a Ref as VerifyShard does (the file
//     is that shard's, of the right length, every block good), trying
//     every drive it names, and rebuilds the missing or corrupt ones onto
//     those drives.
//  6. All methods are safe for concurrent use, SetPolicy with writes too.
//     The io.ReadCloser of Open is for one goroutine; Close it to release
//     its buffers and goroutine.
//
// Status, Drives, CheckDrives and Run are about this node's drives only;
// Run (or CheckDrives) brings those that recover back into service. The
// health of remote drives is their RemoteDrive's (see package shardrpc).
package blocks
