//go:build cgo

package node

// cachesOnGoHeap reports whether Pebble's caches are on the Go heap: not
// where it can call malloc.
const cachesOnGoHeap = false
