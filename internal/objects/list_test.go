package objects

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/redoubt-io/redoubt/internal/meta"
	"pgregory.net/rapid"
)

func TestListObjectsBasic(t *testing.T) {
	e := newEnv(t)
	e.bucket("lst", Unversioned)
	for _, k := range []string{"a", "a/b", "a/c/d", "b", "c/", "c/x", "d.txt", "e/f/g"} {
		e.put("lst", k, "x")
	}
	tests := []struct {
		opts ListOptions
		want string // objects | prefixes | next marker
	}{
		{ListOptions{}, "a,a/b,a/c/d,b,c/,c/x,d.txt,e/f/g||"},
		{ListOptions{Delimiter: "/"}, "a,b,d.txt|a/,c/,e/|"},
		{ListOptions{Delimiter: "/", Prefix: "a/"}, "a/b|a/c/|"},
		{ListOptions{Delimiter: "/", MaxKeys: 2}, "a|a/|a/"},
		{ListOptions{Delimiter: "/", Marker: "a/"}, "b,d.txt|c/,e/|"},
		{ListOptions{Delimiter: "/", Marker: "a/b"}, "b,d.txt|c/,e/|"},
		{ListOptions{Marker: "c/"}, "c/x,d.txt,e/f/g||"},
		{ListOptions{Prefix: "c"}, "c/,c/x||"},
		{ListOptions{Prefix: "zz"}, "||"},
		{ListOptions{Marker: "zz"}, "||"},
		{ListOptions{Prefix: "c/", Marker: "a"}, "c/,c/x||"},
		{ListOptions{Prefix: "a", Marker: "b"}, "||"},
		{ListOptions{Delimiter: "."}, "a,a/b,a/c/d,b,c/,c/x,e/f/g|d.|"},
		{ListOptions{MaxKeys: 3}, "a,a/b,a/c/d||a/c/d"},
	}
	for _, tt := range tests {
		r, err := e.s.ListObjects(e.ctx, "lst", tt.opts)
		if err != nil {
			t.Fatal(err)
		}
		var ks []string
		for _, o := range r.Objects {
			ks = append(ks, o.Key)
			if o.Size != 1 || o.ETag != `"`+md5hex("x")+`"` {
				t.Fatalf("info %+v", o)
			}
		}
		got := strings.Join(ks, ",") + "|" + strings.Join(r.CommonPrefixes, ",") + "|" + r.NextMarker
		if got != tt.want || r.IsTruncated != (r.NextMarker != "") {
			t.Errorf("%+v: got %q truncated=%v, want %q", tt.opts, got, r.IsTruncated, tt.want)
		}
	}
	if _, err := e.s.ListObjects(e.ctx, "nope", ListOptions{}); err == nil {
		t.Fatal("listed a missing bucket")
	}
}

// modelList is the reference listing: keys (sorted, visible) filtered by
// prefix and marker, rolled up by delimiter, cut at max entries.
func modelList(keys []string, o ListOptions) (objs, cps []string, truncated bool, next string) {
	n := 0
	lastCP := ""
	markerCP := ""
	if strings.HasPrefix(o.Marker, o.Prefix) {
		markerCP = rollup(o.Marker, o.Prefix, o.Delimiter)
	}
	for _, k := range keys {
		if k <= o.Marker || !strings.HasPrefix(k, o.Prefix) {
			continue
		}
		cp := rollup(k, o.Prefix, o.Delimiter)
		if cp != "" && (cp == lastCP || cp == markerCP) {
			continue
		}
		if n == pageSize(o.MaxKeys) {
			return objs, cps, true, next
		}
		n++
		if cp != "" {
			cps = append(cps, cp)
			lastCP, next = cp, cp
		} else {
			objs = append(objs, k)
			next = k
		}
	}
	return objs, cps, false, ""
}

type modelVersion struct {
	id string
	dm bool
}

func TestListProperty(t *testing.T) {
	alphabet := rapid.SampledFrom([]string{"a", "b", "/", ".", "ab", "é"})
	genKey := rapid.Custom(func(t *rapid.T) string {
		parts := rapid.SliceOfN(alphabet, 1, 4).Draw(t, "parts")
		return strings.Join(parts, "")
	})
	rapid.Check(t, func(rt *rapid.T) {
		var wrap func(*meta.Mem, int) meta.Store
		if rapid.Bool().Draw(rt, "ordered") {
			wrap = func(md *meta.Mem, n int) meta.Store { return newOrderedMem(md, n) }
		}
		e := newEnvOn(t, wrap, func(c *Config) { c.Partitions = rapid.IntRange(1, 9).Draw(rt, "partitions") })
		e.bucket("prop", Enabled)
		model := map[string][]modelVersion{} // newest first
		nops := rapid.IntRange(0, 60).Draw(rt, "ops")
		for i := 0; i < nops; i++ {
			k := genKey.Draw(rt, "key")
			switch op := rapid.IntRange(0, 9).Draw(rt, "op"); {
			case op < 6:
				oi := e.put("prop", k, "v")
				model[k] = append([]modelVersion{{oi.VersionID, false}}, model[k]...)
			case op < 8:
				r, err := e.s.DeleteObject(e.ctx, "prop", k, DeleteOptions{})
				if err != nil {
					rt.Fatal(err)
				}
				model[k] = append([]modelVersion{{r.VersionID, true}}, model[k]...)
			default:
				vs := model[k]
				if len(vs) == 0 {
					continue
				}
				j := rapid.IntRange(0, len(vs)-1).Draw(rt, "version")
				if _, err := e.s.DeleteObject(e.ctx, "prop", k, DeleteOptions{VersionID: vs[j].id}); err != nil {
					rt.Fatal(err)
				}
				model[k] = append(vs[:j:j], vs[j+1:]...)
				if len(model[k]) == 0 {
					delete(model, k)
				}
			}
		}
		var all, visible []string
		for k, vs := range model {
			all = append(all, k)
			if !vs[0].dm {
				visible = append(visible, k)
			}
		}
		sort.Strings(all)
		sort.Strings(visible)

		for q := 0; q < 5; q++ {
			opts := ListOptions{
				Prefix:    rapid.SampledFrom([]string{"", "a", "b", "a/", "ab", "/"}).Draw(rt, "prefix"),
				Delimiter: rapid.SampledFrom([]string{"", "/", ".", "a", "b/"}).Draw(rt, "delimiter"),
				MaxKeys:   rapid.IntRange(1, 6).Draw(rt, "max"),
			}
			if rapid.Bool().Draw(rt, "withMarker") {
				opts.Marker = genKey.Draw(rt, "marker")
			}
			for page := 0; ; page++ {
				if page > 100 {
					rt.Fatal("paging does not end")
				}
				r, err := e.s.ListObjects(e.ctx, "prop", opts)
				if err != nil {
					rt.Fatal(err)
				}
				var got []string
				for _, o := range r.Objects {
					got = append(got, o.Key)
				}
				wo, wc, wt, wn := modelList(visible, opts)
				if fmt.Sprint(got, r.CommonPrefixes, r.IsTruncated, r.NextMarker) != fmt.Sprint(wo, wc, wt, wn) {
					rt.Fatalf("list %+v:\n got %q %q %v %q\nwant %q %q %v %q", opts, got, r.CommonPrefixes, r.IsTruncated, r.NextMarker, wo, wc, wt, wn)
				}
				if !r.IsTruncated {
					break
				}
				opts.Marker = r.NextMarker
			}

			// Versions: page through and compare with the model.
			vo := ListVersionsOptions{Prefix: opts.Prefix, Delimiter: opts.Delimiter, MaxKeys: opts.MaxKeys}
			var got []string
			for page := 0; ; page++ {
				if page > 200 {
					rt.Fatal("version paging does not end")
				}
				r, err := e.s.ListObjectVersions(e.ctx, "prop", vo)
				if err != nil {
					rt.Fatal(err)
				}
				for _, v := range r.Versions {
					got = append(got, fmt.Sprintf("%s@%s:%v:%v", v.Key, v.VersionID, v.DeleteMarker, v.IsLatest))
				}
				for _, cp := range r.CommonPrefixes {
					got = append(got, "cp:"+cp)
				}
				if !r.IsTruncated {
					break
				}
				vo.KeyMarker, vo.VersionIDMarker = r.NextKeyMarker, r.NextVersionIDMarker
			}
			var want []string
			lastCP := ""
			for _, k := range all {
				if !strings.HasPrefix(k, opts.Prefix) {
					continue
				}
				if cp := rollup(k, opts.Prefix, opts.Delimiter); cp != "" {
					if cp != lastCP {
						want = append(want, "cp:"+cp)
						lastCP = cp
					}
					continue
				}
				for i, v := range model[k] {
					want = append(want, fmt.Sprintf("%s@%s:%v:%v", k, v.id, v.dm, i == 0))
				}
			}
			// Pages interleave prefixes with versions; compare as sets of
			// lines in order within each kind.
			if fmt.Sprint(filterCP(got, false)) != fmt.Sprint(filterCP(want, false)) ||
				fmt.Sprint(filterCP(got, true)) != fmt.Sprint(filterCP(want, true)) {
				rt.Fatalf("versions %+v:\n got %q\nwant %q", vo, got, want)
			}
		}
	})
}

func filterCP(xs []string, cp bool) []string {
	var out []string
	for _, x := range xs {
		if strings.HasPrefix(x, "cp:") == cp {
			out = append(out, x)
		}
	}
	return out
}

// newCostService returns a service over md with bucket "cost" holding 20
// directories of 200 one-byte objects each.
func newCostService(t *testing.T, cfg Config, md meta.Store) *Service {
	t.Helper()
	s, err := New(cfg, md, newMemBlocks(), nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := s.CreateBucket(ctx, "cost"); err != nil {
		t.Fatal(err)
	}
	for d := range 20 {
		for f := range 200 {
			k := fmt.Sprintf("dir%02d/file%04d", d, f)
			if _, err := s.PutObject(ctx, "cost", k, strings.NewReader("x"), 1, PutOptions{}); err != nil {
				t.Fatal(err)
			}
		}
	}
	return s
}

// countingStore counts the records a listing reads.
type countingStore struct {
	meta.Store
	scans, items atomic.Int64
}

func (c *countingStore) Scan(ctx context.Context, p meta.Partition, start, end []byte, fn func([]byte, meta.Item) bool) error {
	c.scans.Add(1)
	return c.Store.Scan(ctx, p, start, end, func(k []byte, it meta.Item) bool {
		c.items.Add(1)
		return fn(k, it)
	})
}

// TestListCost checks that a page reads O(page + partitions) records, and
// that a delimiter skips the keys under each common prefix.
func TestListCost(t *testing.T) {
	const P = 16
	md := meta.NewMem()
	cs := &countingStore{Store: md}
	cfg := DefaultConfig()
	cfg.Partitions = P
	s := newCostService(t, cfg, cs)
	ctx := context.Background()
	for _, tt := range []struct {
		opts     ListOptions
		maxItems int64
	}{
		{ListOptions{MaxKeys: 1000}, 3*1000 + 4*P},
		{ListOptions{MaxKeys: 100, Marker: "dir05/file0100"}, 3*100 + 4*P},
		// 20 prefixes of 200 keys: a few records per partition each,
		// far fewer than the 4000 keys under them.
		{ListOptions{Delimiter: "/"}, 20 * 4 * P},
	} {
		cs.scans.Store(0)
		cs.items.Store(0)
		r, err := s.ListObjects(ctx, "cost", tt.opts)
		if err != nil {
			t.Fatal(err)
		}
		if tt.opts.Delimiter != "" && len(r.CommonPrefixes) != 20 {
			t.Fatalf("prefixes %d", len(r.CommonPrefixes))
		}
		if tt.opts.Delimiter == "" && len(r.Objects) != tt.opts.MaxKeys {
			t.Fatalf("objects %d", len(r.Objects))
		}
		t.Logf("%+v: %d scans, %d records", tt.opts, cs.scans.Load(), cs.items.Load())
		if got := cs.items.Load(); got > tt.maxItems {
			t.Errorf("%+v read %d records, bound %d", tt.opts, got, tt.maxItems)
		}
	}
}

// BenchmarkListObjects lists a page of 1000 from a bucket of 100,000
// objects over 256 partitions of meta.Mem.
func BenchmarkListObjects(b *testing.B) {
	md := meta.NewMem()
	s, err := New(DefaultConfig(), md, newMemBlocks(), nil)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	if err := s.CreateBucket(ctx, "bench"); err != nil {
		b.Fatal(err)
	}
	for i := 0; i < 100000; i++ {
		k := fmt.Sprintf("dir%03d/obj%06d", i%100, i)
		if _, err := s.PutObject(ctx, "bench", k, strings.NewReader("x"), 1, PutOptions{}); err != nil {
			b.Fatal(err)
		}
	}
	for _, bc := range []struct {
		name string
		opts ListOptions
	}{
		{"first-page", ListOptions{MaxKeys: 1000}},
		{"middle-page", ListOptions{MaxKeys: 1000, Marker: "dir050/obj050000"}},
		{"delimiter", ListOptions{MaxKeys: 1000, Delimiter: "/"}},
		{"prefix", ListOptions{MaxKeys: 1000, Prefix: "dir042/"}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			for b.Loop() {
				r, err := s.ListObjects(ctx, "bench", bc.opts)
				if err != nil {
					b.Fatal(err)
				}
				if len(r.Objects)+len(r.CommonPrefixes) == 0 {
					b.Fatal("empty page")
				}
			}
		})
	}
}

// BenchmarkRecordEncoding measures the hot version record's codec.
func BenchmarkRecordEncoding(b *testing.B) {
	v := sampleVersion()
	b.Run("encode", func(b *testing.B) {
		for b.Loop() {
			v.encode()
		}
	})
	enc := v.encode()
	b.Run("decode", func(b *testing.B) {
		for b.Loop() {
			if _, err := decodeVersion(v.TS, enc); err != nil {
				b.Fatal(err)
			}
		}
	})
	// The same record as JSON, for comparison.
	js, _ := json.Marshal(v)
	b.Logf("binary %d bytes, json %d bytes", len(enc), len(js))
	b.Run("json-encode", func(b *testing.B) {
		for b.Loop() {
			json.Marshal(v)
		}
	})
	b.Run("json-decode", func(b *testing.B) {
		for b.Loop() {
			var r versionRec
			if err := json.Unmarshal(js, &r); err != nil {
				b.Fatal(err)
			}
		}
	})
}
