package meta

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"testing"

	"pgregory.net/rapid"
)

// TestLocalMatchesMem runs random operation sequences against Local and Mem
// and requires the same answers, revisions aside: Local numbers commits
// from one sequence for all partitions, Mem per partition, so revisions are
// compared through the mapping the commits establish. Reopening, with some
// replicas left behind first, is one of the operations. rapid prints the
// seed of a failing sequence (-rapid.seed replays it, -rapid.checks sets
// how many sequences run).
func TestLocalMatchesMem(t *testing.T) {
	// Each sequence opens and reopens Pebble databases, with fsyncs: run
	// fewer of them than rapid's default unless -rapid.checks says otherwise.
	defaultRapidChecks(t, 25)
	ctx := context.Background()
	rapid.Check(t, func(rt *rapid.T) {
		nrep := rapid.IntRange(1, 3).Draw(rt, "replicas")
		var dirs []string
		for range nrep {
			dirs = append(dirs, t.TempDir())
		}
		cfg := DefaultLocalConfig(dirs...)
		cfg.LogRing = 16 // reach both replay and rebuild
		// Every key is in the presence filter; keys under "o" are in the
		// ordered index, and are made partition-unique as it needs.
		cfg.FilterPrefixes = [][]byte{{}}
		cfg.OrderedPrefixes = [][]byte{[]byte("o")}
		open := func() *Local {
			l, err := OpenLocal(cfg)
			if err != nil {
				rt.Fatal(err)
			}
			return l
		}
		l := open()
		defer func() { l.Close() }()
		mem := NewMem()

		type prev struct {
			p   Partition
			rev uint64
		}
		memToLocal := make(map[prev]uint64)
		localToMem := make(map[uint64]uint64)
		parts := []Partition{0, 1, System}
		keys := []string{"", "a", "ab", "b", "c\x00", "d", "o", "oa", "oab", "ob"}
		genPart := rapid.SampledFrom(parts)
		genKeyOf := rapid.SampledFrom(keys)
		// p is the partition the key drawn next is for: an "o" key names
		// it, so that it lives in that partition only.
		var p Partition
		genKey := rapid.Custom(func(rt *rapid.T) string {
			k := genKeyOf.Draw(rt, "key")
			if strings.HasPrefix(k, "o") {
				k = "o" + strconv.FormatUint(uint64(p), 10) + k[1:]
			}
			return k
		})

		// translate maps a Local item's revision to Mem's.
		translate := func(rev uint64) uint64 {
			m, ok := localToMem[rev]
			if !ok {
				rt.Fatalf("Local returned revision %d that no commit produced", rev)
			}
			return m
		}

		rt.Repeat(map[string]func(*rapid.T){
			"commit": func(rt *rapid.T) {
				p = genPart.Draw(rt, "p")
				var mt, lt Txn
				for range rapid.IntRange(0, 3).Draw(rt, "nconds") {
					k := []byte(genKey.Draw(rt, "ck"))
					kind := rapid.IntRange(0, 2).Draw(rt, "ckind")
					var mrev uint64
					if it, err := mem.Get(ctx, p, k); err == nil {
						mrev = it.Rev
					}
					lrev := uint64(0)
					if mrev != 0 {
						lrev = memToLocal[prev{p, mrev}]
					}
					switch kind {
					case 1: // absent
						mrev, lrev = 0, 0
					case 2: // wrong
						mrev, lrev = mrev+1, lrev+1
					}
					mt.Conds = append(mt.Conds, Cond{Key: k, Rev: mrev})
					lt.Conds = append(lt.Conds, Cond{Key: k, Rev: lrev})
				}
				for range rapid.IntRange(0, 2).Draw(rt, "ndel") {
					k := []byte(genKey.Draw(rt, "dk"))
					mt.Deletes = append(mt.Deletes, k)
					lt.Deletes = append(lt.Deletes, k)
				}
				for range rapid.IntRange(0, 3).Draw(rt, "nput") {
					kv := KV{Key: []byte(genKey.Draw(rt, "pk")), Value: rapid.SliceOfN(rapid.Byte(), 0, 40).Draw(rt, "v")}
					mt.Puts = append(mt.Puts, kv)
					lt.Puts = append(lt.Puts, kv)
				}
				mrev, merr := mem.Commit(ctx, p, mt)
				lrev, lerr := l.Commit(ctx, p, lt)
				if !errors.Is(lerr, ErrConflict) != !errors.Is(merr, ErrConflict) || (lerr == nil) != (merr == nil) {
					rt.Fatalf("commit: Mem %v, Local %v", merr, lerr)
				}
				if merr == nil {
					memToLocal[prev{p, mrev}] = lrev
					localToMem[lrev] = mrev
				}
			},
			"get": func(rt *rapid.T) {
				p = genPart.Draw(rt, "p")
				k := []byte(genKey.Draw(rt, "k"))
				mi, merr := mem.Get(ctx, p, k)
				li, lerr := l.Get(ctx, p, k)
				if (merr == nil) != (lerr == nil) || (merr != nil && !errors.Is(lerr, ErrNotFound)) {
					rt.Fatalf("get %d/%q: Mem %v, Local %v", p, k, merr, lerr)
				}
				if merr == nil && (!bytes.Equal(mi.Value, li.Value) || translate(li.Rev) != mi.Rev) {
					rt.Fatalf("get %d/%q: Mem %q@%d, Local %q@%d", p, k, mi.Value, mi.Rev, li.Value, li.Rev)
				}
			},
			"scan": func(rt *rapid.T) {
				p = genPart.Draw(rt, "p")
				var start, end []byte
				if rapid.Bool().Draw(rt, "hasStart") {
					start = []byte(genKey.Draw(rt, "start"))
				}
				if rapid.Bool().Draw(rt, "hasEnd") {
					end = []byte(genKey.Draw(rt, "end"))
				}
				limit := rapid.IntRange(1, 8).Draw(rt, "limit")
				dump := func(s Store, local bool) string {
					var b bytes.Buffer
					n := 0
					err := s.Scan(ctx, p, start, end, func(k []byte, it Item) bool {
						rev := it.Rev
						if local {
							rev = translate(rev)
						}
						fmt.Fprintf(&b, "%q=%q@%d ", k, it.Value, rev)
						n++
						return n < limit
					})
					if err != nil {
						rt.Fatal(err)
					}
					return b.String()
				}
				if m, lo := dump(mem, false), dump(l, true); m != lo {
					rt.Fatalf("scan %d [%q,%q) limit %d:\nMem   %s\nLocal %s", p, start, end, limit, m, lo)
				}
			},
			"ordered": func(rt *rapid.T) {
				// The index reads as the partitions' "o" keys merged.
				start, end := []byte("o"), []byte("p")
				if rapid.Bool().Draw(rt, "hasStart") {
					p = genPart.Draw(rt, "sp")
					start = []byte("o" + genKey.Draw(rt, "start"))
				}
				if rapid.Bool().Draw(rt, "hasEnd") {
					p = genPart.Draw(rt, "ep")
					end = []byte("o" + genKey.Draw(rt, "end"))
				}
				type kv struct{ k, s string }
				var all []kv
				for _, q := range parts {
					err := mem.Scan(ctx, q, start, end, func(k []byte, it Item) bool {
						if bytes.HasPrefix(k, []byte("o")) {
							all = append(all, kv{string(k), fmt.Sprintf("%q=%q@%d", k, it.Value, it.Rev)})
						}
						return true
					})
					if err != nil {
						rt.Fatal(err)
					}
				}
				sort.Slice(all, func(i, j int) bool { return all[i].k < all[j].k })
				var want []string
				for _, e := range all {
					want = append(want, e.s)
				}
				var got []string
				err := l.ScanOrdered(ctx, start, end, func(k []byte, it Item) bool {
					got = append(got, fmt.Sprintf("%q=%q@%d", k, it.Value, translate(it.Rev)))
					return true
				})
				if err != nil {
					rt.Fatal(err)
				}
				if strings.Join(got, " ") != strings.Join(want, " ") {
					rt.Fatalf("ordered scan [%q,%q):\nMem   %v\nLocal %v", start, end, want, got)
				}
			},
			"diverge": func(rt *rapid.T) {
				// Leave replicas >= j out until the next reopen, as a crash
				// between replicas would.
				j := rapid.IntRange(1, 3).Draw(rt, "from")
				if l.testSkip == nil {
					l.testSkip = func(i int) bool { return i >= j }
				}
			},
			"reopen": func(rt *rapid.T) {
				// Reopening is slow (fsyncs); do it for one draw in four.
				if rapid.IntRange(0, 3).Draw(rt, "reopen") != 0 {
					rt.Skip()
				}
				if err := l.Close(); err != nil {
					rt.Fatal(err)
				}
				l = open()
				// Replicas left behind are caught up at open; reads only
				// reach replica 0, so compare the replicas directly.
				if err := l.Close(); err != nil {
					rt.Fatal(err)
				}
				checkIdentical(rt, dirs)
				for _, d := range dirs {
					checkIndexOf(rt, d, cfg.OrderedPrefixes)
				}
				l = open()
				for _, st := range l.Status() {
					if st.State != ReplicaHealthy {
						rt.Fatalf("after reopen: %+v", st)
					}
				}
			},
		})
	})
}

// defaultRapidChecks sets rapid's number of checks to n for this test when
// the command line did not set it.
func defaultRapidChecks(t *testing.T, n int) {
	f := flag.Lookup("rapid.checks")
	if f == nil {
		return
	}
	set := false
	flag.Visit(func(g *flag.Flag) { set = set || g.Name == "rapid.checks" })
	if set {
		return
	}
	old := f.Value.String()
	if err := f.Value.Set(strconv.Itoa(n)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.Value.Set(old) })
}
