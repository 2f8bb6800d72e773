package blocks

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/redoubt-io/redoubt/internal/shardrpc"
	"github.com/redoubt-io/redoubt/internal/store"
)

// Repair checks every shard of ref — present, the right length, every block
// verified — and rebuilds the missing or corrupt ones from K good shards
// onto the drives ref names. It returns how many shards it rebuilt. Shards
// whose drive is failed, unknown or unreachable cannot be rebuilt; Repair
// then returns what it rebuilt with an error wrapping store.ErrDriveFailed.
// Fewer than K good shards is ErrUnreadable. Every shard is tried, even on
// drives believed offline: repair is where they are found back.
func (s *Set) Repair(ctx context.Context, ref Ref) (rebuilt int, err error) {
	g, err := s.geometry(ref)
	if err != nil {
		return 0, err
	}
	n := ref.K + ref.M
	src := newShardSource(s, ref, g)
	src.noted = true // being repaired now
	defer src.close()
	var targets []int
	var unreachable []error
	for i := range n {
		d, ok := s.drive(ref.Drives[i])
		if !ok {
			unreachable = append(unreachable, fmt.Errorf("shard %d: drive %s unknown: %w", i, ref.Drives[i], store.ErrDriveFailed))
			src.state[i] = bad
			continue
		}
		r := src.open(ctx, i, true)
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		if r != nil {
			if verr := s.verify(ctx, r); verr != nil {
				if ctx.Err() != nil {
					return 0, ctx.Err()
				}
				src.markBad(i, verr)
			}
		}
		if src.state[i] == good {
			continue
		}
		if !d.Online() {
			unreachable = append(unreachable, fmt.Errorf("shard %d: drive %s: %w", i, driveName(d), store.ErrDriveFailed))
			continue
		}
		targets = append(targets, i)
	}
	nGood := 0
	for _, st := range src.state {
		if st == good {
			nGood++
		}
	}
	if nGood < ref.K {
		return 0, fmt.Errorf("blocks: repair %s: %w: %d of %d shards good, need %d", ref.ID, ErrUnreadable, nGood, n, ref.K)
	}
	if len(targets) > 0 {
		dest := make([]string, len(targets))
		for j, i := range targets {
			dest[j] = ref.Drives[i]
		}
		if err := s.rebuild(ctx, ref, g, src, targets, dest); err != nil {
			return 0, err
		}
		s.log.Info("repaired shards", "ref", ref.ID, "shards", targets)
	}
	if len(unreachable) > 0 {
		return len(targets), fmt.Errorf("blocks: repair %s: %w", ref.ID, errors.Join(unreachable...))
	}
	return len(targets), nil
}

// VerifyShard checks shard i of ref on the drive ref names, as Repair
// checks every shard: the file must be the one written as shard i of ref
// (else store.ErrMisplaced), hold the bytes ref implies, and every block
// must verify. It returns the data bytes of the shard when it could open
// it. Errors wrap the store sentinels: ErrNotFound, ErrCorrupt (a
// misplaced or wrong-length file too), ErrDriveFailed for a drive that is
// failed, unknown or unreachable (TestForeignShardFiles). It neither
// counts nor repairs what it finds: the caller decides (the scrubber
// counts, then calls Repair).
func (s *Set) VerifyShard(ctx context.Context, ref Ref, i int) (int64, error) {
	g, err := s.geometry(ref)
	if err != nil {
		return 0, err
	}
	if i < 0 || i >= len(ref.Drives) {
		return 0, fmt.Errorf("blocks: verify %s: shard %d of %d: %w", ref.ID, i, len(ref.Drives), ErrBadRef)
	}
	d, ok := s.drive(ref.Drives[i])
	if !ok {
		return 0, fmt.Errorf("blocks: verify %s shard %d: drive %s unknown: %w", ref.ID, i, ref.Drives[i], store.ErrDriveFailed)
	}
	r, err := d.OpenShard(ctx, store.Name{ID: ref.ID, Shard: i})
	if err != nil {
		return 0, err
	}
	defer r.Close()
	if want := g.shardLen(ref.Size); r.Size() != want {
		return r.Size(), fmt.Errorf("blocks: %s shard %d on drive %s holds %d bytes, want %d: %w",
			ref.ID, i, driveName(d), r.Size(), want, store.ErrCorrupt)
	}
	return r.Size(), s.verify(ctx, r)
}

// verify checks every block of a shard. A local shard checks itself; a
// remote one is read through, as the serving node verifies every block it
// sends.
func (s *Set) verify(ctx context.Context, r shardrpc.ShardReader) error {
	if v, ok := r.(interface {
		Verify(context.Context) (int, error)
	}); ok {
		_, err := v.Verify(ctx)
		return err
	}
	size := r.Size()
	bufp := s.getBuf(int(min(size, int64(s.cfg.ChunkSize))))
	defer s.putBuf(bufp)
	buf := *bufp
	for off := int64(0); off < size; off += int64(len(buf)) {
		if err := ctx.Err(); err != nil {
			return err
		}
		n := int(min(int64(len(buf)), size-off))
		if _, err := r.ReadAt(buf[:n], off); err != nil && !errors.Is(err, io.EOF) {
			return err
		}
	}
	return nil
}

// driveName is how logs and errors name a drive: its path when local.
func driveName(d shardrpc.Drive) string {
	if l, ok := d.(shardrpc.LocalDrive); ok {
		return l.D.Path()
	}
	if s, ok := d.(fmt.Stringer); ok {
		return s.String()
	}
	return d.ID()
}

// rebuild streams the chunks of ref from the good shards of src and writes
// shard targets[j] to drive dest[j].
func (s *Set) rebuild(ctx context.Context, ref Ref, g geometry, src *shardSource, targets []int, dest []string) error {
	writers := make([]shardrpc.ShardWriter, len(targets))
	abort := func() {
		for _, w := range writers {
			if w != nil {
				w.Abort()
			}
		}
	}
	for j, i := range targets {
		d, ok := s.drive(dest[j])
		if !ok {
			abort()
			return fmt.Errorf("blocks: repair %s shard %d: drive %s unknown: %w", ref.ID, i, dest[j], store.ErrDriveFailed)
		}
		w, err := d.Create(ctx, store.Name{ID: ref.ID, Shard: i})
		if err != nil {
			abort()
			return fmt.Errorf("blocks: repair %s shard %d: %w", ref.ID, i, err)
		}
		writers[j] = w
	}
	// Shards being rebuilt in place must not be read as sources; the old
	// copy of a shard written elsewhere is as good a source as any.
	for j, i := range targets {
		if dest[j] == ref.Drives[i] {
			src.state[i] = bad
		}
	}
	bufp := s.getBuf(g.coder.StripeSize(int(min(g.stripe, ref.Size))))
	defer s.putBuf(bufp)
	shards := make([][]byte, ref.K+ref.M)
	for c := range g.chunks {
		if _, err := src.fetch(ctx, c, *bufp, shards, true, 0, 0); err != nil {
			abort()
			return fmt.Errorf("blocks: repair: %w", err)
		}
		for j, i := range targets {
			if _, err := writers[j].Write(shards[i]); err != nil {
				abort()
				return fmt.Errorf("blocks: repair %s shard %d: %w", ref.ID, i, err)
			}
		}
	}
	var errs []error
	for j, w := range writers {
		if err := w.Commit(ctx); err != nil {
			errs = append(errs, fmt.Errorf("shard %d: %w", targets[j], err))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("blocks: repair %s: %w", ref.ID, errors.Join(errs...))
	}
	return nil
}
