package cluster

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/redoubt-io/redoubt/internal/admin"
	"github.com/redoubt-io/redoubt/internal/layout"
	"github.com/redoubt-io/redoubt/internal/meta"
	"github.com/redoubt-io/redoubt/internal/placement"
)

// splitFanOut bounds the groups a split works on at once.
const splitFanOut = 8

// Split splits every metadata partition once, online: each group of the
// layout's depth is split into its two children (raftmeta's Split: each
// replica makes them from its own copy, and objects.Splitter divides the
// records), then the layout's next version records the new depth
// (layout.Split), from which nodes route to the children and keep their
// members. Data does not move: the children keep their parent's drives
// and metadata nodes, and the data partitions split with them
// (layout.Split), to be placed apart by a later rebalance. Requests go on throughout: one that meets a split
// partition follows its keys to the child (objects, Partitions that
// split). Split may be called again after a failure: groups already
// split are skipped. TestSplitUnderLoad.
func (c *Cluster) Split(ctx context.Context) (admin.LayoutView, error) {
	l, rev, err := c.readLayout(ctx)
	if err != nil {
		return admin.LayoutView{}, err
	}
	if l == nil {
		return admin.LayoutView{}, ErrNoLayout
	}
	next, err := l.Split()
	if err != nil {
		return admin.LayoutView{}, fmt.Errorf("%w: %w", ErrStage, err)
	}
	for _, f := range []string{featureSplit, featureSplitData} {
		if err := c.allCan(ctx, l, f); err != nil {
			return admin.LayoutView{}, err
		}
	}
	start := time.Now()
	if err := c.splitGroups(ctx, l); err != nil {
		return admin.LayoutView{}, err
	}
	b, err := next.MarshalBinary()
	if err != nil {
		return admin.LayoutView{}, err
	}
	_, err = c.store.Commit(ctx, meta.System, meta.Txn{
		Conds: []meta.Cond{{Key: []byte(layoutKey), Rev: rev}},
		Puts:  []meta.KV{{Key: []byte(layoutKey), Value: b}},
	})
	if errors.Is(err, meta.ErrConflict) {
		return admin.LayoutView{}, fmt.Errorf("%w: the layout changed meanwhile; split again", ErrStage)
	}
	if err != nil {
		return admin.LayoutView{}, err
	}
	c.log.Info("metadata partitions split", "from", len(l.Groups()), "to", len(next.Groups()), "layout", next.Version,
		"took", time.Since(start).Round(time.Millisecond))
	edits, _, _ := c.readStaged(ctx)
	return view(next, edits), nil
}

// allCan checks that every node of l recorded feature at its last start.
func (c *Cluster) allCan(ctx context.Context, l *layout.Layout, feature string) error {
	nodes, err := c.readNodes(ctx)
	if err != nil {
		return err
	}
	can := map[string]bool{}
	for _, n := range nodes {
		can[n.ID] = slices.Contains(n.Features, feature)
	}
	for _, n := range l.Nodes {
		if !can[n.ID] {
			return fmt.Errorf("%w: node %s runs a version that cannot %s partitions; upgrade it (and restart it) first", ErrStage, n.ID, feature)
		}
	}
	return nil
}

// splitAttempts bounds the rounds splitGroups makes: a group whose split
// failed (its leader changing, a node busy) is tried again in the next.
const splitAttempts = 3

// splitGroups splits every group of l's depth, splitFanOut at a time.
func (c *Cluster) splitGroups(ctx context.Context, l *layout.Layout) error {
	todo := l.Groups()
	var errs []error
	for range splitAttempts {
		todo, errs = c.splitRound(ctx, l, todo)
		if len(todo) == 0 || ctx.Err() != nil {
			break
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if len(errs) > 0 {
		return fmt.Errorf("%d of %d partitions not split (split again to finish): %w", len(errs), len(l.Groups()), errors.Join(errs...))
	}
	return nil
}

// splitRound splits the groups todo and returns those that failed.
func (c *Cluster) splitRound(ctx context.Context, l *layout.Layout, todo []uint32) (failed []uint32, errs []error) {
	tree := placement.SplitTree{Base: uint32(l.Partitions)}
	sem := make(chan struct{}, splitFanOut)
	var wg sync.WaitGroup
	var mu sync.Mutex
	for _, g := range todo {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			ch := tree.Children(g)
			err := c.host.Split(ctx, meta.Partition(g), [2]meta.Partition{meta.Partition(ch[0]), meta.Partition(ch[1])})
			if err != nil {
				mu.Lock()
				failed = append(failed, g)
				errs = append(errs, fmt.Errorf("partition %d: %w", g, err))
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	slices.Sort(failed)
	return failed, errs
}
