package shardrpc

import (
	"context"

	"github.com/redoubt-io/redoubt/internal/store"
)

// Drive is a drive the data path can write shards to and read them from,
// on this node (LocalDrive) or another (RemoteDrive). Errors wrap the
// store sentinels by class; see the package doc.
type Drive interface {
	ID() string
	// Online is the last known health: false once a call found the drive
	// failed or its node unreachable.
	Online() bool
	Create(ctx context.Context, name store.Name) (ShardWriter, error)
	OpenShard(ctx context.Context, name store.Name) (ShardReader, error)
	Remove(ctx context.Context, name store.Name) error
}

// ShardWriter streams one shard; nothing is visible until Commit returns
// nil. Abort is safe after Commit and does nothing then. A ShardWriter
// belongs to one goroutine.
type ShardWriter interface {
	Write(p []byte) (int, error)
	Commit(ctx context.Context) error
	Abort()
}

// ShardReader reads one committed shard, verified. ReadAt follows
// io.ReaderAt and may be called concurrently.
type ShardReader interface {
	ReadAt(p []byte, off int64) (int, error)
	Size() int64
	Close() error
}

var (
	_ Drive       = (*RemoteDrive)(nil)
	_ Drive       = LocalDrive{}
	_ ShardWriter = (*store.Writer)(nil)
	_ ShardReader = (*store.Reader)(nil)
)

// LocalDrive is a drive of this node seen through the Drive interface.
type LocalDrive struct{ D *store.Drive }

func (l LocalDrive) ID() string   { return l.D.ID() }
func (l LocalDrive) Online() bool { return l.D.State() == store.Online }

func (l LocalDrive) Create(ctx context.Context, name store.Name) (ShardWriter, error) {
	w, err := l.D.Create(ctx, name)
	if err != nil {
		return nil, err // not a typed nil inside the interface
	}
	return w, nil
}

func (l LocalDrive) OpenShard(ctx context.Context, name store.Name) (ShardReader, error) {
	r, err := l.D.OpenShard(ctx, name)
	if err != nil {
		return nil, err
	}
	return r, nil
}

func (l LocalDrive) Remove(ctx context.Context, name store.Name) error {
	return l.D.Remove(ctx, name)
}
