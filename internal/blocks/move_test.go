package blocks

import (
	"bytes"
	"context"
	"errors"
	"os"
	"slices"
	"testing"

	"github.com/redoubt-io/redoubt/internal/placement"
	"github.com/redoubt-io/redoubt/internal/store"
)

// shardFiles returns the bytes of every shard file on every drive, by
// drive ID and shard name.
func (e *env) shardFiles() map[string]map[store.Name][]byte {
	e.t.Helper()
	out := map[string]map[store.Name][]byte{}
	for i, d := range e.drives {
		if d.State() != store.Online {
			continue
		}
		files := map[store.Name][]byte{}
		err := d.Walk(context.Background(), func(si store.ShardInfo) error {
			b, err := os.ReadFile(e.shardFileOn(i, si.Name))
			if err != nil {
				return err
			}
			files[si.Name] = b
			return nil
		})
		if err != nil {
			e.t.Fatal(err)
		}
		out[d.ID()] = files
	}
	return out
}

func (e *env) shardFileOn(drive int, n store.Name) string {
	return e.shardFile(Ref{ID: n.ID, Drives: slices.Repeat([]string{e.drives[drive].ID()}, n.Shard+1)}, n.Shard)
}

// verifyShard opens shard i of ref on its drive and checks every block.
func (e *env) verifyShard(ref Ref, i int) {
	e.t.Helper()
	d := e.drives[e.driveIndex(ref.Drives[i])]
	r, err := d.OpenShard(context.Background(), store.Name{ID: ref.ID, Shard: i})
	if err != nil {
		e.t.Fatalf("shard %d of %s on %s: %v", i, ref.ID, ref.Drives[i], err)
	}
	defer r.Close()
	if bad, err := r.Verify(context.Background()); err != nil || bad != 0 {
		e.t.Fatalf("shard %d of %s on %s: %d bad blocks, %v", i, ref.ID, ref.Drives[i], bad, err)
	}
}

// unused returns the IDs of the drives that hold no shard of ref.
func (e *env) unused(ref Ref) []string {
	var out []string
	for _, d := range e.drives {
		if !slices.Contains(ref.Drives, d.ID()) {
			out = append(out, d.ID())
		}
	}
	return out
}

// sameFiles fails unless the shard files of before and after are the same
// set with the same bytes, apart from those named in added.
func sameFiles(t *testing.T, before, after map[string]map[store.Name][]byte, added map[string][]store.Name) {
	t.Helper()
	for d, files := range after {
		for n, b := range files {
			if slices.Contains(added[d], n) {
				continue
			}
			if old, ok := before[d][n]; !ok || !bytes.Equal(old, b) {
				t.Errorf("shard %s on %s appeared or changed", n, d)
			}
		}
	}
	for d, files := range before {
		for n := range files {
			if _, ok := after[d][n]; !ok {
				t.Errorf("shard %s on %s vanished", n, d)
			}
		}
	}
}

// TestMoveWritesNewCopiesAndKeepsOld moves coded refs to other drives:
// moved shards to free drives, and shards swapping drives with each
// other. Every new copy is verified and holds exactly the bytes of the
// copy it replaces; no old copy changes; the moved Ref reads back exact
// with every old copy gone.
func TestMoveWritesNewCopiesAndKeepsOld(t *testing.T) {
	rng := seeded(t)
	for _, pol := range []placement.Policy{{K: 2, M: 1}, {K: 3, M: 2}, {K: 1, M: 2, Mirror: true}} {
		t.Run(pol.String(), func(t *testing.T) {
			e := newEnv(t, 6, pol)
			data := randBytes(rng, 5*testChunk*pol.K+123)
			ref := e.write(data)
			free := e.unused(ref)
			to := slices.Clone(ref.Drives)
			// Shard 0 to a free drive; the last two shards swap drives.
			to[0] = free[0]
			n := len(to)
			to[n-1], to[n-2] = to[n-2], to[n-1]
			if len(free) > 1 {
				to[1] = free[1]
			}
			before := e.shardFiles()
			moved, err := e.set.Move(context.Background(), ref, to)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(moved.Drives, to) || moved.ID != ref.ID || moved.Size != ref.Size {
				t.Fatalf("moved ref %+v, want %+v on %v", moved, ref, to)
			}
			after := e.shardFiles()
			added := map[string][]store.Name{}
			for i := range n {
				if to[i] == ref.Drives[i] {
					continue
				}
				name := store.Name{ID: ref.ID, Shard: i}
				added[to[i]] = append(added[to[i]], name)
				e.verifyShard(moved, i)
				if !bytes.Equal(after[to[i]][name], before[ref.Drives[i]][name]) {
					t.Errorf("new copy of shard %d differs from the old one", i)
				}
			}
			sameFiles(t, before, after, added)
			e.mustRead(ref, data)
			// Old copies gone: the moved Ref stands on its own.
			for i := range n {
				if to[i] != ref.Drives[i] {
					if err := os.Remove(e.shardFile(ref, i)); err != nil {
						t.Fatal(err)
					}
				}
			}
			e.reopen()
			e.mustRead(moved, data)
			for i := range n {
				e.verifyShard(moved, i)
			}
			if need := e.set.NeedsRepair(); len(need) != 0 {
				t.Errorf("a read of the moved ref needed repair: %v", need)
			}
		})
	}
}

// TestMoveReconstructsMissingSource moves shards whose old copies are
// gone (the drive left) or corrupt: they are rebuilt from the others.
func TestMoveReconstructsMissingSource(t *testing.T) {
	rng := seeded(t)
	pol := placement.Policy{K: 3, M: 2}
	for _, fault := range []string{"missing", "corrupt", "drive-gone"} {
		t.Run(fault, func(t *testing.T) {
			e := newEnv(t, 8, pol)
			data := randBytes(rng, 4*testChunk*pol.K+5)
			ref := e.write(data)
			before := e.shardFiles()
			free := e.unused(ref)
			// Shards 0 and 3 lose their old copies and move; shard 1 moves
			// from a healthy copy.
			to := slices.Clone(ref.Drives)
			to[0], to[1], to[3] = free[0], free[1], free[2]
			for _, i := range []int{0, 3} {
				p := e.shardFile(ref, i)
				switch fault {
				case "missing":
					if err := os.Remove(p); err != nil {
						t.Fatal(err)
					}
				case "corrupt":
					b, err := os.ReadFile(p)
					if err != nil {
						t.Fatal(err)
					}
					b[len(b)/2] ^= 0x40
					if err := os.WriteFile(p, b, 0o644); err != nil {
						t.Fatal(err)
					}
				case "drive-gone":
					if err := os.RemoveAll(e.paths[e.driveIndex(ref.Drives[i])]); err != nil {
						t.Fatal(err)
					}
				}
			}
			if fault == "drive-gone" {
				e.set.CheckDrives()
			}
			moved, err := e.set.Move(context.Background(), ref, to)
			if err != nil {
				t.Fatal(err)
			}
			for _, i := range []int{0, 1, 3} {
				e.verifyShard(moved, i)
				name := store.Name{ID: ref.ID, Shard: i}
				got, err := os.ReadFile(e.shardFile(moved, i))
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, before[ref.Drives[i]][name]) {
					t.Errorf("rebuilt shard %d differs from the original", i)
				}
			}
			// Two more drives lost: the moved ref still reads, from the
			// new copies.
			for _, i := range []int{2, 4} {
				if err := os.RemoveAll(e.paths[e.driveIndex(ref.Drives[i])]); err != nil {
					t.Fatal(err)
				}
			}
			e.reopen()
			e.mustRead(moved, data)
		})
	}
}

// TestMoveToUnavailableDriveWritesNothing: a move naming an unknown or a
// failed drive fails before any shard is written; one that cannot read K
// shards fails without leaving a copy.
func TestMoveToUnavailableDriveWritesNothing(t *testing.T) {
	rng := seeded(t)
	pol := placement.Policy{K: 2, M: 1}
	e := newEnv(t, 6, pol)
	data := randBytes(rng, 3*testChunk*pol.K+1)
	ref := e.write(data)
	free := e.unused(ref)
	// The last free drive fails.
	failed := free[2]
	if err := os.RemoveAll(e.paths[e.driveIndex(failed)]); err != nil {
		t.Fatal(err)
	}
	e.set.CheckDrives()
	before := e.shardFiles()
	for name, to := range map[string][]string{
		"unknown": {free[0], "no-such-drive", ref.Drives[2]},
		"failed":  {free[0], free[1], failed},
	} {
		_, err := e.set.Move(context.Background(), ref, to)
		if !errors.Is(err, store.ErrDriveFailed) {
			t.Errorf("%s: move: %v, want ErrDriveFailed", name, err)
		}
		sameFiles(t, before, e.shardFiles(), nil)
	}
	// Fewer than K shards readable.
	for _, i := range []int{0, 1} {
		if err := os.Remove(e.shardFile(ref, i)); err != nil {
			t.Fatal(err)
		}
	}
	before = e.shardFiles()
	_, err := e.set.Move(context.Background(), ref, []string{free[0], free[1], ref.Drives[2]})
	if !errors.Is(err, ErrUnreadable) {
		t.Errorf("move of an unreadable ref: %v, want ErrUnreadable", err)
	}
	sameFiles(t, before, e.shardFiles(), nil)
}

// TestMoveRejectsBadDestinations: a drive list of the wrong length, or
// naming one drive for two shards, is refused; the same drives are no
// move at all.
func TestMoveRejectsBadDestinations(t *testing.T) {
	rng := seeded(t)
	e := newEnv(t, 5, placement.Policy{K: 2, M: 1})
	ref := e.write(randBytes(rng, 2*testChunk))
	free := e.unused(ref)
	before := e.shardFiles()
	for _, to := range [][]string{
		{free[0], free[1]},
		{free[0], free[1], ref.Drives[2], free[0]},
		{free[0], free[0], ref.Drives[2]},
		{ref.Drives[1], ref.Drives[1], ref.Drives[2]},
	} {
		if _, err := e.set.Move(context.Background(), ref, to); !errors.Is(err, ErrBadRef) {
			t.Errorf("move to %v: %v, want ErrBadRef", to, err)
		}
		if err := e.set.DropMoved(context.Background(), ref, to); !errors.Is(err, ErrBadRef) {
			t.Errorf("drop moved to %v: %v, want ErrBadRef", to, err)
		}
	}
	same, err := e.set.Move(context.Background(), ref, slices.Clone(ref.Drives))
	if err != nil || !slices.Equal(same.Drives, ref.Drives) {
		t.Errorf("move in place: %v, %v", same.Drives, err)
	}
	sameFiles(t, before, e.shardFiles(), nil)
}

// TestDropMovedRemovesOnlyMovedCopies: after a move, DropMoved removes the
// new copies and nothing else — not the old copies, not the shards of the
// ref that share a drive with a new copy — and the old Ref reads back.
func TestDropMovedRemovesOnlyMovedCopies(t *testing.T) {
	rng := seeded(t)
	pol := placement.Policy{K: 3, M: 2}
	e := newEnv(t, 6, pol)
	data := randBytes(rng, 3*testChunk*pol.K+77)
	ref := e.write(data)
	other := randBytes(rng, 2*testChunk)
	oref := e.write(other)
	free := e.unused(ref)
	to := slices.Clone(ref.Drives)
	// Shard 0 to the free drive; shards 1 and 2 swap drives.
	to[0], to[1], to[2] = free[0], ref.Drives[2], ref.Drives[1]
	before := e.shardFiles()
	if _, err := e.set.Move(context.Background(), ref, to); err != nil {
		t.Fatal(err)
	}
	if err := e.set.DropMoved(context.Background(), ref, to); err != nil {
		t.Fatal(err)
	}
	sameFiles(t, before, e.shardFiles(), nil)
	e.mustRead(ref, data)
	e.mustRead(oref, other)
	// Dropping again, or a move that never wrote, is harmless.
	if err := e.set.DropMoved(context.Background(), ref, to); err != nil {
		t.Fatal(err)
	}
	sameFiles(t, before, e.shardFiles(), nil)
	// A drive that failed meanwhile keeps its copy for garbage
	// collection, without failing the others' removal.
	if _, err := e.set.Move(context.Background(), ref, to); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(e.paths[e.driveIndex(free[0])]); err != nil {
		t.Fatal(err)
	}
	e.set.CheckDrives()
	if err := e.set.DropMoved(context.Background(), ref, to); err != nil {
		t.Fatal(err)
	}
	delete(before, free[0])
	sameFiles(t, before, e.shardFiles(), nil)
	e.mustRead(ref, data)
}
