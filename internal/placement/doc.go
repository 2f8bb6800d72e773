// Package placement decides how object data is spread: the redundancy
// policy (Reed-Solomon k+m or mirroring) and the partition a key hashes to.
//
// It is pure: no I/O, no clock, no randomness, no state. Every function is
// deterministic and safe for concurrent use.
//
// Contract:
//
//  1. A Policy is either erasure coding (K data + M parity shards per chunk,
//     any K of which rebuild the chunk) or mirroring (K is 1, M+1 full
//     copies). A single copy is K=1, M=0.
//  2. DefaultPolicy(n) returns the policy a node with n drives uses unless
//     told otherwise: it never needs more than n drives; from four drives up
//     it survives the loss of any two; from six up its storage overhead
//     (K+M)/K is at most 1.5.
//  3. PartitionOf hashes (bucket, key) with 64-bit xxh3 over an unambiguous
//     encoding, so distinct pairs never feed the hash the same bytes; the
//     result is stable across releases, because it decides where data lives.
package placement
