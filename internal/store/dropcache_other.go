//go:build !linux

package store

import "github.com/redoubt-io/redoubt/internal/vfs"

// dropCache is a no-op where posix_fadvise is not available.
func dropCache(vfs.File) {}
