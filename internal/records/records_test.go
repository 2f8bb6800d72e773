package records

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	pebblevfs "github.com/cockroachdb/pebble/v2/vfs"
	"pgregory.net/rapid"

	"github.com/redoubt-io/redoubt/internal/hlc"
	"github.com/redoubt-io/redoubt/internal/vset"
)

func open(t interface {
	Fatal(...any)
	Cleanup(func())
}, fs pebblevfs.FS, dir string) *Store {
	s, err := Open(dir, fs, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func memStore(t interface {
	Fatal(...any)
	Cleanup(func())
}) *Store {
	return open(t, pebblevfs.NewMem(), "db")
}

func version(wall int64, node uint64, body string, saw ...vset.ID) vset.Version {
	return vset.Version{ID: vset.ID{TS: hlc.Timestamp{Wall: wall}, Node: node}, Saw: saw, Body: []byte(body)}
}

// TestPutGet: a key's state is its records merged, whatever other keys
// hold, and a record Put twice is added once.
func TestPutGet(t *testing.T) {
	s := memStore(t)
	a, b := version(1, 1, "a"), version(2, 2, "b", vset.ID{TS: hlc.Timestamp{Wall: 1}, Node: 1})
	n, err := s.Put(7, []Record{{Key: []byte("k"), Version: a}, {Key: []byte("k"), Version: b}, {Key: []byte("k2"), Version: a}})
	if err != nil || n != 3 {
		t.Fatalf("put: %d %v", n, err)
	}
	if n, err := s.Put(7, []Record{{Key: []byte("k"), Version: a}}); err != nil || n != 0 {
		t.Fatalf("put again: %d %v", n, err)
	}
	if _, err := s.Put(7, []Record{{Key: []byte("k"), Version: vset.Version{ID: a.ID}, Removal: true}}); err != nil {
		t.Fatal(err)
	}
	st, err := s.Get(7, []byte("k"))
	if err != nil {
		t.Fatal(err)
	}
	var want vset.State
	want.Add(a)
	want.Add(b)
	want.Remove(a.ID)
	if !st.Equal(want) {
		t.Fatalf("state of k: %v, want %v", st.Visible(), want.Visible())
	}
	// "k" is a prefix of "k2" and of nothing else: neither sees the other.
	if st, _ := s.Get(7, []byte("k2")); len(st.IDs()) != 1 || st.Removed(a.ID) {
		t.Fatalf("state of k2: %v", st.IDs())
	}
	if st, _ := s.Get(8, []byte("k")); len(st.IDs()) != 0 {
		t.Fatalf("partition 8 holds %v", st.IDs())
	}
}

// TestTreesRebuiltAtOpen: what a store's trees say after a restart is what
// it held before.
func TestTreesRebuiltAtOpen(t *testing.T) {
	fs := pebblevfs.NewMem()
	s, err := Open("db", fs, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 50 {
		if _, err := s.Put(Partition(i%3), []Record{{Key: fmt.Appendf(nil, "key%d", i), Version: version(int64(i), 1, "x")}}); err != nil {
			t.Fatal(err)
		}
	}
	roots := [3][16]byte{s.Root(0), s.Root(1), s.Root(2)}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2 := open(t, fs, "db")
	for p := range 3 {
		if s2.Root(Partition(p)) != roots[p] {
			t.Fatalf("partition %d: root after reopening differs", p)
		}
	}
}

// TestSyncConverges: two replicas that were written apart (each record on
// one side or both, versions of one ID with different bodies included)
// hold, after one Sync, the same records: every key's state is the union
// of the two, and their trees agree, so a second Sync finds nothing.
func TestSyncConverges(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		a, b := memStore(t), memStore(t)
		keys := rapid.IntRange(1, 30).Draw(rt, "keys")
		n := rapid.IntRange(0, 200).Draw(rt, "records")
		want := map[string]*vset.State{}
		for i := range n {
			key := fmt.Sprintf("key-%d", rapid.IntRange(0, keys-1).Draw(rt, "key"))
			id := vset.ID{TS: hlc.Timestamp{Wall: int64(rapid.IntRange(1, 40).Draw(rt, "wall"))}, Node: uint64(rapid.IntRange(1, 3).Draw(rt, "node"))}
			r := Record{Key: []byte(key), Version: vset.Version{ID: id, Body: []byte(fmt.Sprint("body", i%3))}}
			r.Removal = rapid.IntRange(0, 4).Draw(rt, "kind") == 0
			if r.Removal {
				r.Version = vset.Version{ID: id}
			}
			if want[key] == nil {
				want[key] = &vset.State{}
			}
			if r.Removal {
				want[key].Remove(id)
			} else {
				want[key].Add(r.Version)
			}
			side := rapid.IntRange(0, 2).Draw(rt, "side")
			if side != 1 {
				if _, err := a.Put(5, []Record{r}); err != nil {
					rt.Fatal(err)
				}
			}
			if side != 0 {
				if _, err := b.Put(5, []Record{r}); err != nil {
					rt.Fatal(err)
				}
			}
		}
		if _, err := Sync(a, AsPeer(b), 5); err != nil {
			rt.Fatal(err)
		}
		if a.Root(5) != b.Root(5) {
			rt.Fatal("roots differ after Sync")
		}
		for key, w := range want {
			for name, s := range map[string]*Store{"a": a, "b": b} {
				st, err := s.Get(5, []byte(key))
				if err != nil {
					rt.Fatal(err)
				}
				if !st.Equal(*w) {
					rt.Fatalf("%s's %s: %v removed %v; want %v removed %v", name, key, st.IDs(), st.RemovedIDs(), w.IDs(), w.RemovedIDs())
				}
			}
		}
		if st, err := Sync(b, AsPeer(a), 5); err != nil || st.Leaves != 0 {
			rt.Fatalf("a second Sync: %+v %v", st, err)
		}
	})
}

// TestSyncTime measures, for d records held by one replica only, the time
// one Sync takes to copy them across (in one process, on memory file
// systems): the convergence figure of BENCHMARKS.md.
func TestSyncTime(t *testing.T) {
	if testing.Short() {
		t.Skip("measures")
	}
	for _, d := range []int{1000, 10000, 100000} {
		a, b := memStore(t), memStore(t)
		common := make([]Record, 0, 1000)
		for i := range 1000 {
			common = append(common, Record{Key: fmt.Appendf(nil, "common-%d", i), Version: version(int64(i+1), 1, "c")})
		}
		for _, s := range []*Store{a, b} {
			if _, err := s.Put(1, common); err != nil {
				t.Fatal(err)
			}
		}
		only := make([]Record, 0, d)
		for i := range d {
			only = append(only, Record{Key: fmt.Appendf(nil, "apart-%d", i), Version: version(int64(i+1), 2, "a")})
		}
		if _, err := a.Put(1, only); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		st, err := Sync(b, AsPeer(a), 1)
		took := time.Since(start)
		if err != nil || st.Fetched != d || a.Root(1) != b.Root(1) {
			t.Fatalf("d=%d: %+v %v", d, st, err)
		}
		t.Logf("d=%d differing records: one Sync in %v (%d leaves, %d copied)", d, took.Round(time.Millisecond), st.Leaves, st.Fetched)
	}
}

// TestOneBatchTwoVersionsOfOneID: of two versions of one ID in one Put,
// the store keeps the one vset keeps, as it does when they come apart.
func TestOneBatchTwoVersionsOfOneID(t *testing.T) {
	a, b := memStore(t), memStore(t)
	lo, hi := version(9, 1, "a"), version(9, 1, "b")
	if _, err := a.Put(1, []Record{{Key: []byte("k"), Version: lo}, {Key: []byte("k"), Version: hi}}); err != nil {
		t.Fatal(err)
	}
	for _, v := range []vset.Version{lo, hi} {
		if _, err := b.Put(1, []Record{{Key: []byte("k"), Version: v}}); err != nil {
			t.Fatal(err)
		}
	}
	var want vset.State
	want.Add(lo)
	want.Add(hi)
	for name, s := range map[string]*Store{"one batch": a, "two puts": b} {
		if st, err := s.Get(1, []byte("k")); err != nil || !st.Equal(want) {
			t.Errorf("%s: %v %v", name, st.Visible(), err)
		}
	}
	if a.Root(1) != b.Root(1) {
		t.Error("the two stores' trees differ")
	}
}

// TestPutSurvivesACrash: what Put returned for is there after a crash
// that loses whatever was not synced, and the trees rebuilt at the
// reopening describe exactly what is there.
func TestPutSurvivesACrash(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		fs := pebblevfs.NewCrashableMem()
		s, err := Open("db", fs, nil)
		if err != nil {
			rt.Fatal(err)
		}
		n := rapid.IntRange(1, 40).Draw(rt, "records")
		for i := range n {
			if _, err := s.Put(2, []Record{{Key: fmt.Appendf(nil, "k%d", i%7), Version: version(int64(i+1), 1, "v")}}); err != nil {
				rt.Fatal(err)
			}
		}
		seed := rapid.Uint64().Draw(rt, "crash")
		crashed := fs.CrashClone(pebblevfs.CrashCloneCfg{UnsyncedDataPercent: int(seed % 101), RNG: rand.New(rand.NewPCG(seed, 0))})
		s.Close()
		s2, err := Open("db", crashed, nil)
		if err != nil {
			rt.Fatal(err)
		}
		defer s2.Close()
		fresh := memStore(t)
		for k := range 7 {
			recs, err := s2.Records(2, fmt.Appendf(nil, "k%d", k))
			if err != nil {
				rt.Fatal(err)
			}
			want := 0
			for i := range n {
				if i%7 == k {
					want++
				}
			}
			if len(recs) != want {
				rt.Fatalf("k%d after the crash: %d records, want %d", k, len(recs), want)
			}
			if _, err := fresh.Put(2, recs); err != nil {
				rt.Fatal(err)
			}
		}
		if s2.Root(2) != fresh.Root(2) {
			rt.Fatal("the rebuilt tree does not describe the records")
		}
	})
}
