// Package vfs is the file system as the storage layer sees it: a small FS
// interface, the real operating system behind it (OS), an in-memory twin
// that can crash and fill up (Mem), and a twin that injects faults (Faulty)
// so tests can make a drive fail, hang up or lie without a real disk going
// bad. Faulty wraps any FS, Mem included.
//
// Contract: every FS method is safe for concurrent use; a File is used by
// one goroutine at a time except ReadAt, which is safe concurrently. Errors
// from OS are the operating system's, wrapped as os.PathError, so
// errors.Is(err, fs.ErrNotExist) works; Mem returns the same errors
// (TestMemMatchesOS); injected errors wrap the error given to Faulty and
// name the operation and path.
//
// Durability: data written to a file is durable once File.Sync returns; a
// name created, renamed or removed in a directory is durable once SyncDir
// of that directory returns. Mem.CrashClone shows what is lost otherwise.
package vfs
