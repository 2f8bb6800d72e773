// Package shardrpc reads and writes shard files on another node's drives,
// so that the data path can place the shards of one chunk on many nodes.
//
// It has two halves over a transport it does not implement:
//
//   - Server serves this node's drives (package store). The node registers
//     Server.Handle as the handler of service Service.
//   - RemoteDrive is one drive of another node, reached through a Caller,
//     the consumer-owned view of the transport. LocalDrive wraps a drive of
//     this node, so the data path holds both kinds in one []Drive.
//
// Contract:
//
//  1. Same shapes as the store. Create returns a ShardWriter whose bytes
//     are durable and visible only once Commit returns nil; OpenShard
//     returns a ShardReader whose ReadAt verifies every block it touches
//     (on the server) and fetches exactly the range asked for; Remove of
//     a missing shard is not an error.
//  2. Error classes cross the wire, not error values. Every error a
//     RemoteDrive returns wraps the store sentinel of its class:
//     store.ErrNotFound, store.ErrCorrupt, store.ErrInvalidName, or
//     store.ErrDriveFailed for a failed or unknown remote drive. A call
//     that did not complete (node unreachable, connection broken, garbled
//     response) also wraps store.ErrDriveFailed: an unreachable node is a
//     failed drive to the data path. So do the server's refusals, each
//     with its own sentinel as well: ErrUnknownSession, ErrBusy,
//     ErrTooLarge, ErrBadMessage. Other remote I/O errors wrap ErrRemoteIO
//     only, as the same local error wraps no store sentinel. A call whose
//     context ended returns the context's error and no class.
//  3. Online is the last known state: it turns false when a call fails in
//     transport or finds the drive failed, and true again on any other
//     answer or on a Refresh that finds the drive online.
//  4. Writes stream. A ShardWriter gathers ClientConfig.AppendSize bytes
//     per append call; Commit sends the tail and commits in one call. Each
//     append names the offset it starts at, so a lost or repeated append
//     ends the session instead of corrupting the shard. The first failed
//     call makes every later call of the writer fail with the same error;
//     Abort then asks the server to drop the shard, best effort.
//  5. The server bounds what peers may hold: at most MaxSessions write
//     sessions, at most MaxData bytes per append or read. A session is
//     private to the node that opened it and is aborted, its temp file
//     removed, when it sees no call for SessionTimeout, so a writer that
//     died leaves nothing behind. Readers are opened per call, never
//     cached: a removed or replaced shard is never served stale.
//  6. The wire format (wire.go) is binary, version byte first; decoders
//     reject unknown versions, ops, statuses and trailing bytes, and bound
//     every length before allocating.
//
// Server and RemoteDrive are safe for concurrent use; a ShardWriter
// belongs to one goroutine; a ShardReader's ReadAt may run concurrently.
// The writer and reader use the context given to Create and OpenShard for
// the calls of Write and ReadAt, which have none of their own.
package shardrpc
