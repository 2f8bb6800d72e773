// Package blocks is the data path: it stores object data as coded shards
// over one node's drives and reads it back verified.
//
// blocks.go states the contract every implementation keeps (Ref, Store).
// Set is the implementation over local drives (package store), with the
// redundancy of a placement.Policy.
//
// Contract of Set:
//
//  1. Layout. Data is cut into chunks of K*ChunkSize bytes (ChunkSize for
//     a mirror); each chunk is coded into K+M shards (package erasure). A
//     Ref's shard i of every chunk is concatenated into one shard file on
//     drive Ref.Drives[i]; drives are chosen by a rotation that starts at a
//     hash of the Ref's ID, skipping failed drives while enough are healthy.
//  2. Write streams: while one stripe is read and coded, the previous ones
//     are written to the K+M shard files in parallel. Memory per Write is
//     bounded by about (WriteAhead+2) stripes whatever the data size. Write
//     returns once at least Policy.WriteQuorum shards are durable; on any
//     error no Ref is returned and the durable shards it could reach are
//     removed.
//  3. Open reads only the chunks the range covers, data shards first, and
//     reconstructs from parity when a shard is missing, corrupt, or on a
//     failed drive. Corruption is counted and logged with the Ref ID and
//     drive; every Ref read with a bad shard is remembered for NeedsRepair
//     and passed to Config.OnNeedsRepair.
//  4. Repair verifies every block of every shard of a Ref and rebuilds the
//     missing or corrupt ones onto the drives the Ref names.
//  5. All methods are safe for concurrent use. The io.ReadCloser of Open is
//     for one goroutine; Close it to release its buffers and goroutine.
//
// Run (or CheckDrives) brings drives that recover back into service.
package blocks
