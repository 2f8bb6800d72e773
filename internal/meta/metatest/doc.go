// Package metatest checks that a meta.Store keeps the contract stated in
// package meta's documentation. Every implementation (Mem, Local, the Raft
// groups of a cluster) runs the same suite through Run, so they cannot drift
// apart. It is test support: only _test.go files import it.
//
// The suite uses partitions 0 to 7, meta.System-1 and meta.System; a
// store that serves only some partitions must serve at least those.
package metatest
