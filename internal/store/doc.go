// Package store keeps shard files on one node's drives.
//
// A drive is a directory, normally the mount point of one disk. Contract:
//
//  1. Identity. On first use every drive of a set gets a marker file
//     (redoubt-drive.json: format version, set ID, drive ID, slot and the
//     drive IDs of every slot), written atomically. A drive whose directory
//     is empty at start while the others know the set is formatted as the
//     slot it replaces, keeps that slot's drive ID, and is flagged as
//     needing repair until ClearNeedsRepair.
//  2. Layout. Shard files live at shards/<2 hex>/<2 hex>/<id>.<shard>, the
//     hex taken from the ID, so no directory grows huge. Names are built
//     only from validated lower-case hex IDs and shard numbers: nothing a
//     user sends ever becomes a path. In-flight files live in .tmp/, which
//     is emptied at start.
//  3. Durability. A Writer streams into .tmp/, and Commit fsyncs the file,
//     renames it into place and fsyncs every directory it created or
//     changed. Only after Commit returns is a shard durable. Commit then
//     evicts the file's pages from the page cache (unless
//     Config.KeepWrittenCache), so written data does not crowd out what is
//     read and each write reuses memory just freed.
//  4. Integrity. A shard file is a 96-byte header (magic, format version,
//     checksum algorithm, block size, data length, the ref ID and shard
//     index it was written as, header checksum), then the data in blocks of
//     BlockSize bytes, each followed by the CRC-32C of the ref ID, shard
//     index, block number and bytes (the format is in shard.go). Opening a
//     shard checks that its header names the shard asked for
//     (TestMisplacedFileRefusedOnOpen); every read verifies every block it
//     touches (TestEveryFlippedByteDetected, TestBlockFromElsewhereFails). A file of another shard is
//     ErrMisplaced (a *MisplacedError), and also ErrCorrupt like a bad
//     block, a bad header or a wrong length; a missing file is ErrNotFound
//     (all tested with errors.Is). Files of format 1, which name no shard,
//     are still read and their blocks verified. CRC-32C was chosen by
//     measurement (BenchmarkChecksum64KiB): it runs at about 20 GB/s with
//     the CPU's CRC instruction, several times faster than the disk, and
//     binding the shard costs nothing per block (BenchmarkBlockSum64KiB).
//     Unlike a general hash it is guaranteed to catch every error burst up
//     to 32 bits, so any single flipped byte. xxh3 is faster still but
//     only probabilistic; BLAKE3 is about 3 GB/s, worth its cost only
//     against an adversary, which a disk is not.
//  5. Health. An I/O error (other than a missing shard) triggers a check of
//     the drive; a drive whose directory vanished or whose marker cannot be
//     read is marked failed, logged once, and refuses I/O with
//     ErrDriveFailed until Check finds it healthy again. Counters of reads,
//     corrupt blocks and I/O errors are kept per drive.
//  6. Space. A full disk is not a failed one: a write that meets ENOSPC
//     fails with ErrNoSpace and the drive stays online, serving what it
//     holds and passing its check (TestDriveDiskFull). With
//     Config.Reserve set, Create refuses new shard files while the drive
//     has less free space, and a Writer under way stops at half of it
//     (TestDriveReserve), so that the rest stays for the metadata store
//     and for deletes; Room tells callers that refuse work earlier.
//     ErrNoSpace wraps syscall.ENOSPC.
//
// All file access goes through Config.FS (package vfs), so tests can inject
// I/O errors. Drive methods are safe for concurrent use. A Writer belongs
// to one goroutine; a Reader's ReadAt may be called concurrently.
package store
