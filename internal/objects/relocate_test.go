package objects

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/zeebo/xxh3"

	"github.com/redoubt-io/redoubt/internal/blocks"
	"github.com/redoubt-io/redoubt/internal/hlc"
	"github.com/redoubt-io/redoubt/internal/meta"
	"github.com/redoubt-io/redoubt/internal/placement"
	"github.com/redoubt-io/redoubt/internal/store"
)

// stored names one object version a test wrote; vid "" is the latest.
type stored struct{ bucket, key, vid string }

// relocFixture is what populate wrote: every readable version, and an
// upload left pending.
type relocFixture struct {
	want       map[stored][]byte
	pendingID  string
	pendingETg string
	pending    []byte
}

// populate writes, with s, single PUTs of several sizes (one inline), a
// multipart object, two versions of a key in a versioned bucket, and one
// part of an upload it leaves pending.
func populate(t *testing.T, s *Service, rng *rand.Rand) *relocFixture {
	t.Helper()
	ctx := context.Background()
	f := &relocFixture{want: map[stored][]byte{}}
	for _, b := range []string{"bkt", "ver"} {
		if err := s.CreateBucket(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.SetVersioning(ctx, "ver", Enabled); err != nil {
		t.Fatal(err)
	}
	put := func(bucket, key string, n int) {
		v := body(rng, n)
		oi, err := s.PutObject(ctx, bucket, key, bytes.NewReader(v), int64(len(v)), PutOptions{})
		if err != nil {
			t.Fatal(err)
		}
		f.want[stored{bucket, key, ""}] = v
		if oi.VersionID != "" {
			f.want[stored{bucket, key, oi.VersionID}] = v
		}
	}
	put("bkt", "a", 2<<10)
	put("bkt", "b", 70<<10)
	put("bkt", "c", 300<<10)
	put("bkt", "tiny", 100)
	put("ver", "v", 130<<10)
	put("ver", "v", 90<<10)
	uid, err := s.CreateMultipartUpload(ctx, "bkt", "mp", PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var parts []CompletePart
	var all []byte
	for n := 1; n <= 3; n++ {
		v := body(rng, 70<<10+n)
		pi, err := s.UploadPart(ctx, "bkt", "mp", uid, n, bytes.NewReader(v), int64(len(v)), PartOptions{})
		if err != nil {
			t.Fatal(err)
		}
		parts = append(parts, CompletePart{Number: n, ETag: pi.ETag})
		all = append(all, v...)
	}
	if _, err := s.CompleteMultipartUpload(ctx, "bkt", "mp", uid, parts, CompleteOptions{}); err != nil {
		t.Fatal(err)
	}
	f.want[stored{"bkt", "mp", ""}] = all
	if f.pendingID, err = s.CreateMultipartUpload(ctx, "bkt", "pend", PutOptions{}); err != nil {
		t.Fatal(err)
	}
	f.pending = body(rng, 80<<10)
	pi, err := s.UploadPart(ctx, "bkt", "pend", f.pendingID, 1, bytes.NewReader(f.pending), int64(len(f.pending)), PartOptions{})
	if err != nil {
		t.Fatal(err)
	}
	f.pendingETg = pi.ETag
	return f
}

// completePending completes the upload populate left pending.
func (f *relocFixture) completePending(t *testing.T, s *Service) {
	t.Helper()
	_, err := s.CompleteMultipartUpload(context.Background(), "bkt", "pend", f.pendingID,
		[]CompletePart{{Number: 1, ETag: f.pendingETg}}, CompleteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	f.want[stored{"bkt", "pend", ""}] = f.pending
}

// readBack fails unless every version of want reads back exact.
func readBack(t *testing.T, s *Service, want map[stored][]byte) {
	t.Helper()
	for o, data := range want {
		_, rc, err := s.GetObject(context.Background(), o.bucket, o.key, GetOptions{VersionID: o.vid})
		if err != nil {
			t.Errorf("get %s/%s@%q: %v", o.bucket, o.key, o.vid, err)
			continue
		}
		got, err := io.ReadAll(rc)
		rc.Close()
		if err != nil || !bytes.Equal(got, data) {
			t.Errorf("get %s/%s@%q: %d bytes, err %v; want %d bytes", o.bucket, o.key, o.vid, len(got), err, len(data))
		}
	}
}

// versionRefs returns the Refs every committed version names (pending
// parts are not versions).
func (e *gcEnv) versionRefs(s *Service) []blocks.Ref {
	e.t.Helper()
	var out []blocks.Ref
	for p := range s.cfg.Partitions {
		pre := []byte{tagVersion}
		err := e.md.Scan(context.Background(), meta.Partition(p), pre, prefixEnd(pre), func(k []byte, it meta.Item) bool {
			_, ts, _ := splitVersionKey(k)
			v, err := decodeVersion(ts, it.Value)
			if err != nil {
				e.t.Fatalf("version %x: %v", k, err)
			}
			out = append(out, v.refs()...)
			return true
		})
		if err != nil {
			e.t.Fatal(err)
		}
	}
	return out
}

// naming returns the version Refs with a shard on drive x.
func (e *gcEnv) naming(s *Service, x string) []blocks.Ref {
	var out []blocks.Ref
	for _, r := range e.versionRefs(s) {
		if slices.Contains(r.Drives, x) {
			out = append(out, r)
		}
	}
	return out
}

// busiest returns the drive holding shards of the most versions.
func (e *gcEnv) busiest(s *Service) string {
	best, n := "", -1
	for _, d := range e.drives {
		if c := len(e.naming(s, d.ID())); c > n {
			best, n = d.ID(), c
		}
	}
	return best
}

// moveBed is a populated service on a crashing store, and a plan moving
// everything off its busiest drive x: the setting of the tests that
// break a move.
type moveBed struct {
	e    *gcEnv
	c    *crash
	md   *crashMeta
	data *crashData
	s1   *Service
	f    *relocFixture
	x    string
	plan RelocatePlan
}

func newMoveBed(t *testing.T) moveBed {
	t.Helper()
	b := moveBed{e: newGCEnvWith(t, 6, placement.Policy{K: 2, M: 1})}
	b.c, b.md, b.data = b.e.crashing()
	b.s1 = b.e.service(b.md, b.data)
	b.f = populate(t, b.s1, rand.New(rand.NewPCG(7, 8)))
	b.x = b.e.busiest(b.s1)
	b.plan = b.e.offDrive(b.x)
	return b
}

// offDrive is a plan moving every shard on drive x to a drive holding no
// shard of its Ref, chosen by a hash of the Ref ID to spread the load.
func (e *gcEnv) offDrive(x string) RelocatePlan {
	var ids []string
	for _, d := range e.drives {
		ids = append(ids, d.ID())
	}
	return func(_ meta.Partition, ref blocks.Ref) ([]string, bool) {
		i := slices.Index(ref.Drives, x)
		if i < 0 {
			return nil, false
		}
		start := int(xxh3.HashString(ref.ID) % uint64(len(ids)))
		for j := range ids {
			d := ids[(start+j)%len(ids)]
			if d != x && !slices.Contains(ref.Drives, d) {
				to := slices.Clone(ref.Drives)
				to[i] = d
				return to, true
			}
		}
		return nil, false
	}
}

// shuffled is a plan putting every Ref chosen by seed on other drives:
// a permutation of all drives, drawn from the Ref ID and seed, so that a
// plan asked twice about a Ref answers the same.
func (e *gcEnv) shuffled(seed uint64) RelocatePlan {
	var ids []string
	for _, d := range e.drives {
		ids = append(ids, d.ID())
	}
	return func(_ meta.Partition, ref blocks.Ref) ([]string, bool) {
		h := xxh3.HashString(ref.ID)
		rng := rand.New(rand.NewPCG(h, seed))
		if rng.IntN(2) == 0 {
			return nil, false
		}
		perm := slices.Clone(ids)
		rng.Shuffle(len(perm), func(i, j int) { perm[i], perm[j] = perm[j], perm[i] })
		to := perm[:len(ref.Drives)]
		if slices.Equal(to, ref.Drives) {
			return nil, false
		}
		return to, true
	}
}

// relocate runs Relocate over every partition and adds up what it did.
func (e *gcEnv) relocate(s *Service, opts RelocateOptions) (RelocateStats, error) {
	var total RelocateStats
	for p := range s.cfg.Partitions {
		st, err := s.Relocate(context.Background(), meta.Partition(p), opts)
		total.Refs += st.Refs
		total.Bytes += st.Bytes
		total.Moved += st.Moved
		total.MovedBytes += st.MovedBytes
		total.Busy += st.Busy
		total.Failed += st.Failed
		if err != nil {
			return total, err
		}
	}
	e.t.Logf("relocate: %+v", total)
	return total, nil
}

func (e *gcEnv) mustRelocate(s *Service, opts RelocateOptions) RelocateStats {
	e.t.Helper()
	st, err := e.relocate(s, opts)
	if err != nil {
		e.t.Fatalf("relocate: %v", err)
	}
	return st
}

func (e *gcEnv) gcWith(s *Service, opts GCOptions) GCStats {
	e.t.Helper()
	st, err := s.CollectGarbage(context.Background(), e.gcDrives(), opts)
	if err != nil {
		e.t.Fatalf("gc: %v", err)
	}
	e.t.Logf("gc: %s", st)
	return st
}

// copiesOn counts the shard files on drive x.
func (e *gcEnv) copiesOn(x string) int {
	n := 0
	for _, on := range e.files() {
		if slices.Contains(on, x) {
			n++
		}
	}
	return n
}

// TestRelocateMovesDataOffADrive moves every shard off one drive: a dry
// run counts and moves nothing; the move leaves every version naming
// other drives and reading back exact; garbage collection keeps the old
// copies for the grace and then removes exactly them.
func TestRelocateMovesDataOffADrive(t *testing.T) {
	for _, pol := range []placement.Policy{{K: 2, M: 1}, {K: 3, M: 2}, {K: 1, M: 2, Mirror: true}} {
		t.Run(pol.String(), func(t *testing.T) {
			e := newGCEnvWith(t, 6, pol)
			s := e.service(nil, nil)
			f := populate(t, s, rand.New(rand.NewPCG(5, 6)))
			x := e.busiest(s)
			on := e.naming(s, x)
			if len(on) < 2 {
				t.Fatalf("only %d versions on drive %s", len(on), x)
			}
			plan := e.offDrive(x)

			before := e.files()
			dry := e.mustRelocate(s, RelocateOptions{Plan: plan, DryRun: true})
			if dry.Refs != int64(len(on)) || dry.Bytes == 0 || dry.Moved != 0 {
				t.Errorf("dry run: %+v; want %d refs", dry, len(on))
			}
			if got := e.files(); !mapsEqual(got, before) {
				t.Error("a dry run changed shard files")
			}
			if n := len(e.naming(s, x)); n != len(on) {
				t.Errorf("after a dry run %d versions on %s, want %d", n, x, len(on))
			}

			var after int64
			st := e.mustRelocate(s, RelocateOptions{Plan: plan, After: func(_ blocks.Ref, n int64, err error) {
				if err != nil {
					t.Errorf("move: %v", err)
				}
				after += n
			}})
			if st.Refs != dry.Refs || st.Bytes != dry.Bytes || st.Moved != st.Refs || st.MovedBytes != st.Bytes ||
				st.Failed != 0 || st.Busy != 0 || after != st.Bytes {
				t.Errorf("relocate: %+v (after: %d bytes); dry run: %+v", st, after, dry)
			}
			if left := e.naming(s, x); len(left) != 0 {
				t.Errorf("%d versions still name drive %s", len(left), x)
			}
			readBack(t, s, f.want)

			// Within the grace the old copies stay, counted.
			onX := e.copiesOn(x)
			gst := e.gcWith(s, GCOptions{LeftoverGrace: time.Hour})
			if gst.Removed != 0 || gst.Superseded != st.Moved {
				t.Errorf("gc within the grace: %s; want %d copies kept", gst, st.Moved)
			}
			if e.copiesOn(x) != onX {
				t.Error("gc within the grace removed copies")
			}
			readBack(t, s, f.want)

			// After it, exactly the old copies go.
			gst = e.gcWith(s, GCOptions{})
			if gst.Removed != st.Moved || gst.Leftovers != st.Moved || gst.Superseded != 0 || gst.Errors != 0 {
				t.Errorf("gc: %s; want the %d old copies removed", gst, st.Moved)
			}
			if n := e.copiesOn(x); n != onX-int(st.Moved) {
				t.Errorf("%d copies left on %s, want %d (the pending part's)", n, x, onX-int(st.Moved))
			}
			e.check(s, "bkt", nil)
			readBack(t, s, f.want)
			if again := e.mustRelocate(s, RelocateOptions{Plan: plan}); again.Refs != 0 {
				t.Errorf("second pass found %d refs to move", again.Refs)
			}

			// A pending part is not moved; once completed it is.
			f.completePending(t, s)
			e.mustRelocate(s, RelocateOptions{Plan: plan})
			e.gcWith(s, GCOptions{})
			if left := e.naming(s, x); len(left) != 0 {
				t.Errorf("%d versions still name drive %s", len(left), x)
			}
			if n := e.copiesOn(x); n != 0 {
				t.Errorf("%d copies left on %s", n, x)
			}
			e.check(s, "bkt", nil)
			readBack(t, s, f.want)
		})
	}
}

func mapsEqual(a, b map[store.Name][]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		w, ok := b[k]
		if !ok || !slices.Equal(slices.Sorted(slices.Values(v)), slices.Sorted(slices.Values(w))) {
			return false
		}
	}
	return true
}

// refRecords counts ref records in state st.
func (e *gcEnv) refRecords(s *Service, st byte) int {
	n := 0
	for p := range s.cfg.Partitions {
		_ = e.md.Scan(context.Background(), meta.Partition(p), []byte{tagRef}, []byte{tagRef + 1}, func(_ []byte, it meta.Item) bool {
			if rec, err := decodeRefRec(it.Value); err == nil && rec.State == st {
				n++
			}
			return true
		})
	}
	return n
}

// putsRef reports whether txn writes a ref record in state st.
func putsRef(txn meta.Txn, st byte) bool {
	for _, kv := range txn.Puts {
		if len(kv.Key) > 0 && kv.Key[0] == tagRef {
			if rec, err := decodeRefRec(kv.Value); err == nil && rec.State == st {
				return true
			}
		}
	}
	return false
}

// nth returns a predicate true from the n-th Txn pred matches on.
func nth(n int, pred func(meta.Txn) bool) func(meta.Txn) bool {
	seen := 0
	return func(txn meta.Txn) bool {
		if pred(txn) {
			seen++
		}
		return seen >= n && pred(txn)
	}
}

// TestRelocateCrash kills a mover at each step of a move (and of the
// undoing of a failed one), restarts, and runs a pass: nothing referenced
// is lost, nothing orphaned is left, no record stays in flight, every
// version reads back; a second Relocate completes the move.
func TestRelocateCrash(t *testing.T) {
	steps := []string{"intent", "move-none", "move-some", "move-all", "before-commit", "after-commit",
		"answer-lost", "undo-held", "undo-dropped", "undo-drop-fails"}
	for _, step := range steps {
		t.Run(step, func(t *testing.T) {
			b := newMoveBed(t)
			e, c, md, data, s1, f, x, plan := b.e, b.c, b.md, b.data, b.s1, b.f, b.x, b.plan
			crashes := true
			switch step {
			case "intent":
				md.after = func(txn meta.Txn) bool { return putsRef(txn, refMoving) }
			case "move-none", "move-some", "move-all":
				data.moveAt = step
			case "before-commit":
				md.before = isVersionCommit
			case "after-commit":
				md.after = isVersionCommit
			case "answer-lost":
				md.lost = isVersionCommit
				crashes = false
			case "undo-held":
				// The failed move's record is held again, then the crash.
				data.moveAt = "move-fail"
				md.after = nth(2, func(txn meta.Txn) bool { return putsRef(txn, refMoving) })
			case "undo-dropped":
				// The new copies are dropped; the crash comes before the
				// record is put back.
				data.moveAt = "move-fail"
				md.before = func(txn meta.Txn) bool { return putsRef(txn, refPlaced) }
			case "undo-drop-fails":
				data.moveAt = "move-fail"
				data.failDeletes.Store(true)
				crashes = false
			}
			st, err := e.relocate(s1, RelocateOptions{Plan: plan})
			t.Logf("relocate: %+v, %v", st, err)
			if c.dead.Load() != crashes {
				t.Fatalf("crashed: %v, want %v", c.dead.Load(), crashes)
			}
			if st.Moved != 0 {
				t.Errorf("%d moves reported done", st.Moved)
			}
			data.failDeletes.Store(false)

			s2 := e.service(nil, nil)
			e.gcWith(s2, GCOptions{})
			e.check(s2, "bkt", nil)
			readBack(t, s2, f.want)
			if n := e.refRecords(s2, refMoving) + e.refRecords(s2, refReaping); n != 0 {
				t.Errorf("%d records left moving or reaping", n)
			}

			st = e.mustRelocate(s2, RelocateOptions{Plan: plan})
			if st.Failed != 0 || st.Busy != 0 {
				t.Errorf("second relocate: %+v", st)
			}
			if left := e.naming(s2, x); len(left) != 0 {
				t.Errorf("%d versions still name drive %s", len(left), x)
			}
			e.gcWith(s2, GCOptions{})
			e.check(s2, "bkt", nil)
			readBack(t, s2, f.want)
		})
	}
}

// versionOf reads the version of bucket/key named by vid ("" the latest).
func versionOf(t *testing.T, s *Service, bucket, key, vid string) (versionRec, bool) {
	t.Helper()
	ctx := context.Background()
	b, _, err := s.getBucket(ctx, bucket)
	if err != nil {
		t.Fatal(err)
	}
	p := s.partition(bucket, key)
	var ts hlc.Timestamp
	if vid == "" {
		it, err := s.md.Get(ctx, p, headKey(b.ID, key))
		if err != nil && !errors.Is(err, meta.ErrNotFound) {
			t.Fatal(err)
		}
		h, rev, err := decodeHeadItem(it, key)
		if err != nil {
			t.Fatal(err)
		}
		if rev == 0 {
			return versionRec{}, false
		}
		ts = h.Latest
	} else if ts, _, err = parseVersionID(vid); err != nil {
		t.Fatal(err)
	}
	v, _, ok, err := s.getVersion(ctx, p, b.ID, key, ts, 0)
	if err != nil {
		t.Fatal(err)
	}
	return v, ok
}

// only restricts plan to the Refs of the latest version of bucket/key at
// the time of the call.
func only(t *testing.T, s *Service, bucket, key string, plan RelocatePlan) RelocatePlan {
	v, ok := versionOf(t, s, bucket, key, "")
	if !ok || len(v.Parts) == 0 {
		t.Fatalf("%s/%s has no data", bucket, key)
	}
	var ids []string
	for _, p := range v.Parts {
		ids = append(ids, p.Ref.ID)
	}
	return func(p meta.Partition, ref blocks.Ref) ([]string, bool) {
		if !slices.Contains(ids, ref.ID) {
			return nil, false
		}
		return plan(p, ref)
	}
}

// writesVersionOf reports whether txn deletes (del) or puts, with the head,
// a version of bucket/key: a DELETE's or a PUT's commit, not a move's.
func writesVersionOf(t *testing.T, s *Service, bucket, key string, del bool) func(meta.Txn) bool {
	b, _, err := s.getBucket(context.Background(), bucket)
	if err != nil {
		t.Fatal(err)
	}
	pre := versionPrefix(b.ID, key)
	hk := headKey(b.ID, key)
	return func(txn meta.Txn) bool {
		if del {
			return slices.ContainsFunc(txn.Deletes, func(k []byte) bool { return bytes.HasPrefix(k, pre) })
		}
		return slices.ContainsFunc(txn.Puts, func(kv meta.KV) bool { return bytes.HasPrefix(kv.Key, pre) }) &&
			slices.ContainsFunc(txn.Puts, func(kv meta.KV) bool { return bytes.Equal(kv.Key, hk) })
	}
}

// once returns a Txn predicate that runs fn the first time it matches and
// never kills the process.
func once(match func(meta.Txn) bool, fn func()) func(meta.Txn) bool {
	done := false
	return func(txn meta.Txn) bool {
		if !done && match(txn) {
			done = true
			fn()
		}
		return false
	}
}

// TestRelocateRaces runs deletes, overwrites, other movers and garbage
// collection in the middle of a move of one object: no acknowledged write
// is lost, no version names a missing shard, and a pass leaves no orphan.
func TestRelocateRaces(t *testing.T) {
	ctx := context.Background()
	type raceEnv struct {
		e    *gcEnv
		s    *Service
		md   *crashMeta
		data *crashData
		f    *relocFixture
		plan RelocatePlan // moves the victim's data off one of its drives
	}
	put := func(t *testing.T, r *raceEnv, bucket, key string, seed uint64) {
		v := body(rand.New(rand.NewPCG(seed, seed)), 150<<10)
		if _, err := r.s.PutObject(ctx, bucket, key, bytes.NewReader(v), int64(len(v)), PutOptions{}); err != nil {
			t.Fatal(err)
		}
		r.f.want[stored{bucket, key, ""}] = v
	}
	del := func(t *testing.T, r *raceEnv, bucket, key string) {
		if _, err := r.s.DeleteObject(ctx, bucket, key, DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		delete(r.f.want, stored{bucket, key, ""})
	}
	races := []struct {
		name   string
		victim stored
		// race runs the mover's pass (or has it run), racing it with
		// something; it checks what the pass reported.
		race func(t *testing.T, r *raceEnv)
	}{
		{"delete-before-commit", stored{"bkt", "c", ""}, func(t *testing.T, r *raceEnv) {
			r.data.afterMove = func(blocks.Ref) { del(t, r, "bkt", "c") }
			if st := r.e.mustRelocate(r.s, RelocateOptions{Plan: r.plan}); st.Moved != 0 || st.Busy != 1 {
				t.Errorf("relocate: %+v; want the move lost to the delete", st)
			}
		}},
		{"overwrite-before-commit", stored{"bkt", "c", ""}, func(t *testing.T, r *raceEnv) {
			r.data.afterMove = func(blocks.Ref) { put(t, r, "bkt", "c", 1) }
			if st := r.e.mustRelocate(r.s, RelocateOptions{Plan: r.plan}); st.Moved != 0 || st.Busy != 1 {
				t.Errorf("relocate: %+v; want the move lost to the overwrite", st)
			}
		}},
		{"multipart-overwrite-before-commit", stored{"bkt", "mp", ""}, func(t *testing.T, r *raceEnv) {
			r.data.afterMove = func(blocks.Ref) { put(t, r, "bkt", "mp", 2) }
			if st := r.e.mustRelocate(r.s, RelocateOptions{Plan: r.plan}); st.Moved != 0 || st.Busy != 1 {
				t.Errorf("relocate: %+v; want the move lost to the overwrite", st)
			}
		}},
		{"delete-marker-before-commit", stored{"ver", "v", ""}, func(t *testing.T, r *raceEnv) {
			// A delete marker leaves the version: the move commits.
			r.data.afterMove = func(blocks.Ref) { del(t, r, "ver", "v") }
			if st := r.e.mustRelocate(r.s, RelocateOptions{Plan: r.plan}); st.Moved != 1 {
				t.Errorf("relocate: %+v; want the move done", st)
			}
		}},
		{"delete-read-before-move", stored{"bkt", "c", ""}, func(t *testing.T, r *raceEnv) {
			// The delete reads the version, the whole move commits, then
			// the delete commits and removes the data it read of.
			var inner RelocateStats
			r.md.before = once(writesVersionOf(t, r.s, "bkt", "c", true), func() {
				inner = r.e.mustRelocate(r.s, RelocateOptions{Plan: r.plan})
			})
			del(t, r, "bkt", "c")
			if inner.Moved != 1 {
				t.Errorf("relocate: %+v; want the move done", inner)
			}
		}},
		{"overwrite-read-before-move", stored{"bkt", "c", ""}, func(t *testing.T, r *raceEnv) {
			var inner RelocateStats
			r.md.before = once(writesVersionOf(t, r.s, "bkt", "c", false), func() {
				inner = r.e.mustRelocate(r.s, RelocateOptions{Plan: r.plan})
			})
			put(t, r, "bkt", "c", 3)
			if inner.Moved != 1 {
				t.Errorf("relocate: %+v; want the move done", inner)
			}
		}},
		{"live-mover-elsewhere", stored{"bkt", "c", ""}, func(t *testing.T, r *raceEnv) {
			// Another node's mover finds this move in flight and waits.
			other := r.e.serviceOn("n2", nil, nil)
			r.data.afterMove = func(blocks.Ref) {
				if st := r.e.mustRelocate(other, RelocateOptions{Plan: r.plan}); st.Busy != 1 || st.Moved != 0 {
					t.Errorf("other mover: %+v; want it busy", st)
				}
			}
			if st := r.e.mustRelocate(r.s, RelocateOptions{Plan: r.plan}); st.Moved != 1 {
				t.Errorf("relocate: %+v; want the move done", st)
			}
		}},
		{"stale-scan", stored{"bkt", "c", ""}, func(t *testing.T, r *raceEnv) {
			// Between this pass's scan and its move, another node's mover
			// makes the same move: this pass finds the version changed,
			// moves nothing, and drops none of the copies the other
			// committed.
			other := r.e.serviceOn("n2", nil, nil)
			first := true
			st := r.e.mustRelocate(r.s, RelocateOptions{Plan: r.plan, Before: func(context.Context, int64) error {
				if first {
					first = false
					if st := r.e.mustRelocate(other, RelocateOptions{Plan: r.plan}); st.Moved != 1 {
						t.Errorf("other mover: %+v; want the move done", st)
					}
				}
				return nil
			}})
			if st.Moved != 0 || st.Busy != 1 {
				t.Errorf("relocate: %+v; want the stale move skipped", st)
			}
		}},
		{"mover-while-failed-move-drops", stored{"bkt", "c", ""}, func(t *testing.T, r *raceEnv) {
			// A failed move drops its copies while it still holds the
			// record: another mover making the same move waits, so none
			// of the copies it writes is dropped.
			other := r.e.serviceOn("n2", nil, nil)
			r.data.moveAt = "move-fail"
			r.data.beforeDrop = func() {
				if st := r.e.mustRelocate(other, RelocateOptions{Plan: r.plan}); st.Busy != 1 || st.Moved != 0 {
					t.Errorf("other mover: %+v; want it busy", st)
				}
			}
			if st := r.e.mustRelocate(r.s, RelocateOptions{Plan: r.plan}); st.Failed != 1 {
				t.Errorf("relocate: %+v; want the move failed", st)
			}
			r.data.moveAt = ""
			if st := r.e.mustRelocate(other, RelocateOptions{Plan: r.plan}); st.Moved != 1 {
				t.Errorf("other mover, afterwards: %+v; want the move done", st)
			}
		}},
		{"gc-during-move", stored{"bkt", "c", ""}, func(t *testing.T, r *raceEnv) {
			// A pass while the new copies await their commit keeps them.
			r.data.afterMove = func(blocks.Ref) {
				if st := r.e.gcWith(r.s, GCOptions{}); st.Removed != 0 {
					t.Errorf("gc during a move removed %d copies", st.Removed)
				}
			}
			if st := r.e.mustRelocate(r.s, RelocateOptions{Plan: r.plan}); st.Moved != 1 {
				t.Errorf("relocate: %+v; want the move done", st)
			}
		}},
		{"gc-wrongly-judges-mover-dead", stored{"bkt", "c", ""}, func(t *testing.T, r *raceEnv) {
			// The collector takes the move's record and its new copies: the
			// move fails, the data stays where it was.
			r.data.afterMove = func(blocks.Ref) {
				st := r.e.gcWith(r.e.serviceOn("n2", nil, nil), GCOptions{Dead: func(Incarnation) bool { return true }})
				if st.Settled != 1 || st.Leftovers == 0 {
					t.Errorf("gc: %s; want the move settled and its copies removed", st)
				}
			}
			if st := r.e.mustRelocate(r.s, RelocateOptions{Plan: r.plan}); st.Moved != 0 || st.Busy != 1 {
				t.Errorf("relocate: %+v; want the move lost to the collector", st)
			}
		}},
	}
	for _, rc := range races {
		t.Run(rc.name, func(t *testing.T) {
			e := newGCEnvWith(t, 6, placement.Policy{K: 2, M: 1})
			_, md, data := e.crashing()
			s := e.service(md, data)
			f := populate(t, s, rand.New(rand.NewPCG(9, 10)))
			v, _ := versionOf(t, s, rc.victim.bucket, rc.victim.key, rc.victim.vid)
			x := v.Parts[0].Ref.Drives[0]
			r := &raceEnv{e: e, s: s, md: md, data: data, f: f,
				plan: only(t, s, rc.victim.bucket, rc.victim.key, e.offDrive(x))}
			rc.race(t, r)
			md.before, data.afterMove = nil, nil

			e.gcWith(s, GCOptions{})
			e.check(s, "bkt", nil)
			readBack(t, s, f.want)
			// Whatever was not moved moves now.
			e.mustRelocate(s, RelocateOptions{Plan: e.offDrive(x)})
			e.gcWith(s, GCOptions{})
			if left := e.naming(s, x); len(left) != 0 {
				t.Errorf("%d versions still name drive %s", len(left), x)
			}
			e.check(s, "bkt", nil)
			readBack(t, s, f.want)
		})
	}
}

// TestRelocateWaitsForReaping: a move of a Ref whose old copies a
// collector is removing waits for the next pass, then goes ahead.
func TestRelocateWaitsForReaping(t *testing.T) {
	e := newGCEnvWith(t, 6, placement.Policy{K: 2, M: 1})
	_, md, data := e.crashing()
	s := e.service(md, data)
	f := populate(t, s, rand.New(rand.NewPCG(11, 12)))
	v, _ := versionOf(t, s, "bkt", "c", "")
	x, y := v.Parts[0].Ref.Drives[0], v.Parts[0].Ref.Drives[1]
	if st := e.mustRelocate(s, RelocateOptions{Plan: only(t, s, "bkt", "c", e.offDrive(x))}); st.Moved != 1 {
		t.Fatalf("relocate: %+v", st)
	}
	other := e.serviceOn("n2", nil, nil)
	plan := only(t, s, "bkt", "c", e.offDrive(y))
	var inner RelocateStats
	md.after = once(func(txn meta.Txn) bool { return putsRef(txn, refReaping) }, func() {
		inner = e.mustRelocate(other, RelocateOptions{Plan: plan})
	})
	if st := e.gcWith(s, GCOptions{}); st.Leftovers != 1 {
		t.Errorf("gc: %s; want the old copy removed", st)
	}
	md.after = nil
	if inner.Busy != 1 || inner.Moved != 0 {
		t.Errorf("relocate during reaping: %+v; want it busy", inner)
	}
	if st := e.mustRelocate(other, RelocateOptions{Plan: plan}); st.Moved != 1 {
		t.Errorf("relocate after reaping: %+v", st)
	}
	e.gcWith(s, GCOptions{})
	e.check(s, "bkt", nil)
	readBack(t, s, f.want)
}

// TestRelocateRandomized mixes PUTs, DELETEs, multipart uploads,
// relocations (off a drive, or shuffling whole Refs) crashing at random
// steps or racing writes, collection passes with and without a grace, and
// crashed PUTs; every acknowledged write reads back after every step, and
// after a restart and one pass nothing is orphaned or left in flight.
func TestRelocateRandomized(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	defer func() {
		if t.Failed() {
			t.Logf("failed with seed %d", seed)
		}
	}()
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	ctx := context.Background()
	e := newGCEnvWith(t, 6, placement.Policy{K: 2, M: 1})
	c, md, data := e.crashing()
	s := e.service(md, data)
	restart := func() {
		c, md, data = e.crashing()
		s = e.service(md, data)
	}
	if err := s.CreateBucket(ctx, "bkt"); err != nil {
		t.Fatal(err)
	}
	if rng.IntN(2) == 0 {
		if err := s.SetVersioning(ctx, "bkt", Enabled); err != nil {
			t.Fatal(err)
		}
	}
	want := map[string][]byte{}
	keys := []string{"a", "b", "c", "d", "e", "f"}
	sizes := []int{100, 2 << 10, 70 << 10, 300 << 10}
	var moved, crashes, removed int64
	put := func(k string) error {
		v := body(rng, sizes[rng.IntN(len(sizes))])
		_, err := s.PutObject(ctx, "bkt", k, bytes.NewReader(v), int64(len(v)), PutOptions{})
		if err == nil {
			want[k] = v
		}
		return err
	}
	for step := range 80 {
		k := keys[rng.IntN(len(keys))]
		switch op := rng.IntN(12); {
		case op < 3:
			if err := put(k); err != nil {
				t.Fatalf("seed %d step %d: put: %v", seed, step, err)
			}
		case op < 4:
			if _, err := s.DeleteObject(ctx, "bkt", k, DeleteOptions{}); err != nil {
				t.Fatalf("seed %d step %d: delete: %v", seed, step, err)
			}
			delete(want, k)
		case op < 5:
			uid, err := s.CreateMultipartUpload(ctx, "bkt", k, PutOptions{})
			if err != nil {
				t.Fatal(err)
			}
			var parts []CompletePart
			var all []byte
			for n := 1; n <= 1+rng.IntN(3); n++ {
				v := body(rng, sizes[1+rng.IntN(len(sizes)-1)])
				pi, err := s.UploadPart(ctx, "bkt", k, uid, n, bytes.NewReader(v), int64(len(v)), PartOptions{})
				if err != nil {
					t.Fatalf("seed %d step %d: part: %v", seed, step, err)
				}
				parts = append(parts, CompletePart{Number: n, ETag: pi.ETag})
				all = append(all, v...)
			}
			if rng.IntN(4) == 0 {
				break // left pending
			}
			if _, err := s.CompleteMultipartUpload(ctx, "bkt", k, uid, parts, CompleteOptions{}); err != nil {
				t.Fatalf("seed %d step %d: complete: %v", seed, step, err)
			}
			want[k] = all
		case op < 8:
			plan := e.offDrive(e.drives[rng.IntN(len(e.drives))].ID())
			if rng.IntN(2) == 0 {
				plan = e.shuffled(rng.Uint64())
			}
			fault := []string{"", "", "race", "intent", "move-none", "move-some", "move-all", "move-fail",
				"before-commit", "after-commit", "answer-lost"}[rng.IntN(11)]
			switch fault {
			case "race":
				// A write to a random key lands between a move and its commit.
				rk := keys[rng.IntN(len(keys))]
				del := rng.IntN(3) == 0
				data.afterMove = func(blocks.Ref) {
					if del {
						if _, err := s.DeleteObject(ctx, "bkt", rk, DeleteOptions{}); err != nil {
							t.Errorf("seed %d step %d: racing delete: %v", seed, step, err)
						}
						delete(want, rk)
					} else if err := put(rk); err != nil {
						t.Errorf("seed %d step %d: racing put: %v", seed, step, err)
					}
				}
			case "intent":
				md.after = func(txn meta.Txn) bool { return putsRef(txn, refMoving) }
			case "move-none", "move-some", "move-all", "move-fail":
				data.moveAt = fault
			case "before-commit":
				md.before = isVersionCommit
			case "after-commit":
				md.after = isVersionCommit
			case "answer-lost":
				md.lost = isVersionCommit
			}
			st, err := e.relocate(s, RelocateOptions{Plan: plan})
			moved += st.Moved
			if c.dead.Load() {
				crashes++
				restart()
				break
			}
			if err != nil {
				t.Fatalf("seed %d step %d: relocate (%s): %v", seed, step, fault, err)
			}
			if fault == "" && (st.Failed != 0 || st.Busy != 0 || st.Moved != st.Refs) {
				t.Errorf("seed %d step %d: relocate: %+v", seed, step, st)
			}
			md.before, md.after, md.lost = nil, nil, nil
			data.moveAt, data.afterMove = "", nil
		case op < 10:
			opts := GCOptions{}
			if rng.IntN(3) == 0 {
				opts.LeftoverGrace = time.Hour
			}
			st, err := s.CollectGarbage(ctx, e.gcDrives(), opts)
			if err != nil {
				t.Fatalf("seed %d step %d: gc: %v", seed, step, err)
			}
			removed += st.Leftovers
		case op < 11:
			// A PUT crashes, then the process restarts.
			data.at = []string{"intent", "some", "all"}[rng.IntN(3)]
			v := body(rng, sizes[rng.IntN(len(sizes))])
			if _, err := s.PutObject(ctx, "bkt", k, bytes.NewReader(v), int64(len(v)), PutOptions{}); err == nil {
				if len(v) > 1<<10 {
					t.Fatalf("seed %d step %d: put survived a crash", seed, step)
				}
				want[k] = v // inline: no data write to crash in
			}
			restart()
		default:
			restart()
		}
		readBackKeys(t, s, want)
		if t.Failed() {
			t.FailNow()
		}
	}
	restart()
	st := e.gcWith(s, GCOptions{})
	t.Logf("%d refs moved, %d crashed relocations, %d moved copies collected before the last pass, %d by it",
		moved, crashes, removed, st.Leftovers)
	e.check(s, "bkt", want)
	if n := e.refRecords(s, refMoving) + e.refRecords(s, refReaping); n != 0 {
		t.Errorf("%d records left moving or reaping", n)
	}
}

// readBackKeys fails unless every key of want reads back exact in bkt.
func readBackKeys(t *testing.T, s *Service, want map[string][]byte) {
	t.Helper()
	w := map[stored][]byte{}
	for k, v := range want {
		w[stored{"bkt", k, ""}] = v
	}
	readBack(t, s, w)
}

// TestRelocateToUnavailableDrive: moves to a drive that does not exist
// fail, leave no copy, and leave every record settled where it was.
func TestRelocateToUnavailableDrive(t *testing.T) {
	e := newGCEnvWith(t, 6, placement.Policy{K: 2, M: 1})
	s := e.service(nil, nil)
	f := populate(t, s, rand.New(rand.NewPCG(13, 14)))
	x := e.busiest(s)
	plan := func(_ meta.Partition, ref blocks.Ref) ([]string, bool) {
		i := slices.Index(ref.Drives, x)
		if i < 0 {
			return nil, false
		}
		to := slices.Clone(ref.Drives)
		to[i] = "no-such-drive"
		return to, true
	}
	before, on := e.files(), len(e.naming(s, x))
	st := e.mustRelocate(s, RelocateOptions{Plan: plan})
	if st.Refs == 0 || st.Failed != st.Refs || st.Moved != 0 {
		t.Errorf("relocate: %+v; want every move failed", st)
	}
	if !mapsEqual(e.files(), before) {
		t.Error("failed moves changed shard files")
	}
	if n := len(e.naming(s, x)); n != on {
		t.Errorf("%d versions on %s, want %d", n, x, on)
	}
	e.check(s, "bkt", nil)
	readBack(t, s, f.want)
}

// TestAbandonedMoveFinishedAfterAnOutage: a move fails, and the metadata
// is out of reach when the mover would take the move back, so its record
// stays moving under the mover's live incarnation, which holds off every
// other mover. Once the metadata is back, the same mover's next pass
// finishes taking it back and moves the data: nothing stays moving, and
// the drive is emptied. Before, the record stayed moving until the
// process died, and every pass of every node found the data busy.
func TestAbandonedMoveFinishedAfterAnOutage(t *testing.T) {
	b := newMoveBed(t)
	e, md, data, s1, f, x, plan := b.e, b.md, b.data, b.s1, b.f, b.x, b.plan
	data.moveAt = "move-fail"
	// The hold of the failed move (its second moving record) is refused.
	md.unavailable = func(txn meta.Txn) bool { return putsRef(txn, refMoving) && md.seenMoving.Add(1) > 1 }
	st, _ := e.relocate(s1, RelocateOptions{Plan: plan})
	if st.Moved != 0 || e.refRecords(s1, refMoving) == 0 {
		t.Fatalf("relocate during the outage: %+v, %d records moving; want the failed move's record left moving", st, e.refRecords(s1, refMoving))
	}
	md.unavailable, data.moveAt = nil, ""
	st = e.mustRelocate(s1, RelocateOptions{Plan: plan})
	if st.Busy != 0 || st.Failed != 0 {
		t.Errorf("relocate after the outage: %+v", st)
	}
	if n := e.refRecords(s1, refMoving); n != 0 {
		t.Errorf("%d records still moving", n)
	}
	if left := e.naming(s1, x); len(left) != 0 {
		t.Errorf("%d versions still name drive %s", len(left), x)
	}
	readBack(t, s1, f.want)
}
