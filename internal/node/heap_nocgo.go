//go:build !cgo

package node

// cachesOnGoHeap reports whether Pebble's caches are on the Go heap: they
// are where it cannot call malloc.
const cachesOnGoHeap = true
