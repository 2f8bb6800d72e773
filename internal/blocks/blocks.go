package blocks

import (
	"context"
	"io"
)

// Ref locates the stored data of one object part (a whole single-PUT
// object, or one multipart part). It is kept in the object's metadata
// record, so its encoding (see MarshalBinary) is versioned.
type Ref struct {
	ID   string // unique, random; names the shard files
	Size int64  // bytes of object data
	// K data and M parity shards per chunk; Mirror means every shard is a
	// full copy (K is 1 and M+1 copies exist).
	K, M   int
	Mirror bool
	// ChunkSize is the object bytes per chunk (stripe) before coding.
	ChunkSize int64
	// Drives names the drive holding shard i, by drive ID.
	Drives []string
}

// Store is the data path: it writes object data as coded shards over the
// drives and reads it back, verified. All methods are safe for concurrent
// use; ctx cancels the I/O.
type Store interface {
	// Write reads r to EOF, stores it on drives chosen for partition p
	// (the metadata partition of the object's key), and returns once the
	// shards are durable on at least the write quorum (K+1 of K+M, or a
	// majority of mirrors). On error nothing referenced remains; orphans
	// may.
	Write(ctx context.Context, p uint32, r io.Reader) (Ref, error)
	// Open returns a reader of length bytes at offset off of the data,
	// verifying every block and reconstructing around missing or corrupt
	// shards.
	Open(ctx context.Context, ref Ref, off, length int64) (io.ReadCloser, error)
	// Delete removes the shards of ref from every drive it can reach.
	Delete(ctx context.Context, ref Ref) error
}

// IDWriter is implemented by stores that let the caller choose the Ref ID
// of a write, so that it can record the ID (a write intent, see package
// objects) before the first shard file exists. id must be a fresh, unique
// lower-case hex string of 8 to 64 characters; otherwise WriteID is Write.
type IDWriter interface {
	WriteID(ctx context.Context, p uint32, id string, r io.Reader) (Ref, error)
}

// DegradedWriter is implemented by stores that can take a write when the
// policy's write quorum is out of reach, as copies on the drives that
// are online (Set.WriteDegraded).
type DegradedWriter interface {
	WriteDegraded(ctx context.Context, p uint32, id string, r io.Reader) (Ref, error)
}

// Mover is implemented by stores that can move a Ref's shards to other
// drives (package objects relocates data with it).
type Mover interface {
	// Move writes shard i of ref to drive to[i] wherever that differs
	// from ref.Drives[i] and returns ref naming the new drives; the old
	// copies stay.
	Move(ctx context.Context, ref Ref, to []string) (Ref, error)
	// DropMoved removes the copies a Move of ref to 'to' wrote (shard i
	// on to[i] where that differs from ref.Drives[i]), for a move that
	// was not committed.
	DropMoved(ctx context.Context, ref Ref, to []string) error
}
