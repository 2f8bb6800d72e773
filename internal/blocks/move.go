package blocks

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/redoubt-io/redoubt/internal/store"
)

// Move places the shards of ref on the drives to names: shard i is written
// to drive to[i] wherever that differs from ref.Drives[i]. The chunks are
// read from K good shards (the old copy of a moving shard among them, when
// it is readable) and the missing ones reconstructed, so a shard whose
// drive is gone is rebuilt, not copied. Move returns ref naming the new
// drives once every written shard is durable; the old copies stay where
// they are, for the caller to release after the new Ref is committed. A
// target drive that is unknown or offline fails the move before anything
// is written; fewer than K good shards (ErrUnreadable) fails it with
// nothing written; a drive failing while the new shards are committed
// may leave some of them, which DropMoved removes. to must name K+M
// distinct drives (ErrBadRef). A shard that stays on its drive is not
// checked: that is Repair's work.
func (s *Set) Move(ctx context.Context, ref Ref, to []string) (Ref, error) {
	g, err := s.geometry(ref)
	if err != nil {
		return Ref{}, err
	}
	if err := checkMoveTo(ref, to); err != nil {
		return Ref{}, fmt.Errorf("blocks: move %s: %w", ref.ID, err)
	}
	n := ref.K + ref.M
	var targets []int
	var dest []string
	for i := range n {
		if to[i] == ref.Drives[i] {
			continue
		}
		d, ok := s.drive(to[i])
		if !ok || !d.Online() {
			return Ref{}, fmt.Errorf("blocks: move %s shard %d: drive %s unknown or offline: %w", ref.ID, i, to[i], store.ErrDriveFailed)
		}
		targets, dest = append(targets, i), append(dest, to[i])
	}
	out := ref
	out.Drives = slices.Clone(to)
	if len(targets) == 0 {
		return out, nil
	}
	src := newShardSource(s, ref, g)
	src.noted = true // a move rebuilds what it finds bad anyway
	defer src.close()
	if err := s.rebuild(ctx, ref, g, src, targets, dest); err != nil {
		return Ref{}, err
	}
	return out, nil
}

// DropMoved removes the shards a Move of ref to 'to' wrote: shard i on
// drive to[i] wherever that differs from ref.Drives[i]. Shards on drives
// it cannot reach stay behind for garbage collection.
func (s *Set) DropMoved(ctx context.Context, ref Ref, to []string) error {
	if err := ref.validate(); err != nil {
		return err
	}
	if err := checkMoveTo(ref, to); err != nil {
		return fmt.Errorf("blocks: drop moved %s: %w", ref.ID, err)
	}
	var errs []error
	for i, id := range to {
		if id == ref.Drives[i] {
			continue
		}
		d, ok := s.drive(id)
		if !ok {
			continue
		}
		if err := d.Remove(ctx, store.Name{ID: ref.ID, Shard: i}); err != nil && !errors.Is(err, store.ErrDriveFailed) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// checkMoveTo reports ErrBadRef unless to names one drive per shard of
// ref, no drive twice: two shards of a chunk on one drive would be lost
// together.
func checkMoveTo(ref Ref, to []string) error {
	if n := ref.K + ref.M; len(to) != n {
		return fmt.Errorf("%d drives for %d shards: %w", len(to), n, ErrBadRef)
	}
	seen := make(map[string]bool, len(to))
	for _, id := range to {
		if id == "" || seen[id] {
			return fmt.Errorf("drive %q named twice or empty: %w", id, ErrBadRef)
		}
		seen[id] = true
	}
	return nil
}

var _ Mover = (*Set)(nil)
