package cluster

import (
	"context"
	"fmt"
	"sync"

	"github.com/redoubt-io/redoubt/internal/meta"
)

// guardedStore is the cluster's metadata for callers above: once Close has
// begun it answers ErrUnavailable instead of reaching a closed host, and
// Close waits for the operations already running.
type guardedStore struct {
	mu     sync.RWMutex
	closed bool
	s      meta.Store
}

var _ meta.Store = (*guardedStore)(nil)

func (g *guardedStore) enter() error {
	g.mu.RLock()
	if g.closed {
		g.mu.RUnlock()
		return fmt.Errorf("node is shutting down: %w", meta.ErrUnavailable)
	}
	return nil
}

// shut refuses new operations and waits for those in flight.
func (g *guardedStore) shut() {
	g.mu.Lock()
	g.closed = true
	g.mu.Unlock()
}

func (g *guardedStore) Get(ctx context.Context, p meta.Partition, key []byte) (meta.Item, error) {
	if err := g.enter(); err != nil {
		return meta.Item{}, err
	}
	defer g.mu.RUnlock()
	return g.s.Get(ctx, p, key)
}

func (g *guardedStore) Scan(ctx context.Context, p meta.Partition, start, end []byte, fn func(key []byte, item meta.Item) bool) error {
	if err := g.enter(); err != nil {
		return err
	}
	defer g.mu.RUnlock()
	return g.s.Scan(ctx, p, start, end, fn)
}

func (g *guardedStore) Commit(ctx context.Context, p meta.Partition, txn meta.Txn) (uint64, error) {
	if err := g.enter(); err != nil {
		return 0, err
	}
	defer g.mu.RUnlock()
	return g.s.Commit(ctx, p, txn)
}
