// Package erasure codes one chunk of object data into shards and rebuilds
// it from any sufficient subset: Reed-Solomon with k data and m parity
// shards (any k of the k+m rebuild the chunk), or mirroring (every shard is
// a full copy; any one rebuilds it).
//
// It is pure: no I/O, no goroutines of its own beyond those the
// Reed-Solomon library runs inside a call, no state after New. A Coder is
// safe for concurrent use.
//
// Buffers: Encode slices the shards out of the chunk's own backing array
// when its capacity is at least StripeSize(len(chunk)) bytes, so a caller
// that reads a chunk into such a buffer codes it without a copy; the shards
// alias that buffer and are valid until it is reused. Reconstruct rebuilds
// missing shards into their zero-length slices when those have enough
// capacity, and allocates otherwise. Data shard i of a chunk of length n
// holds bytes [i*s, (i+1)*s) of the chunk, s = ShardSize(n), zero-padded at
// the end, so the data shards of an aliased stripe are the chunk itself.
package erasure
