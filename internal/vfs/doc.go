// Package vfs is the file system as the storage layer sees it: a small FS
// interface, the real operating system behind it (OS), and a twin that
// injects faults (Faulty) so tests can make a drive fail, hang up or lie
// without a real disk going bad.
//
// Contract: every FS method is safe for concurrent use; a File is used by
// one goroutine at a time except ReadAt, which is safe concurrently. Errors
// from OS are the operating system's, wrapped as os.PathError, so
// errors.Is(err, fs.ErrNotExist) works; injected errors wrap the error
// given to Faulty and name the operation and path.
package vfs
