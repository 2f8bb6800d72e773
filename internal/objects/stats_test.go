package objects

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/redoubt-io/redoubt/internal/blocks"
	"github.com/redoubt-io/redoubt/internal/meta"
)

func TestStatsAndForEachRef(t *testing.T) {
	e := newEnv(t)
	e.bucket("st1", Enabled)
	e.bucket("st2", Unversioned)
	e.put("st1", "a", big(100, 1)) // stored
	e.put("st1", "a", "xy")        // inline, second version
	e.s.DeleteObject(e.ctx, "st1", "a", DeleteOptions{})
	e.put("st2", "b", big(70, 2))
	id, _ := e.s.CreateMultipartUpload(e.ctx, "st2", "m", PutOptions{})
	e.part("st2", "m", id, 1, "pending")
	n, b, err := e.s.Stats(e.ctx)
	if err != nil || n != 3 || b != 172 {
		t.Fatalf("stats %d objects %d bytes %v", n, b, err)
	}
	var refs int
	if err := e.s.ForEachRef(e.ctx, func(blocks.Ref) error { refs++; return nil }); err != nil || refs != 3 {
		t.Fatalf("refs %d %v", refs, err)
	}
	stop := errors.New("stop")
	if err := e.s.ForEachRef(e.ctx, func(blocks.Ref) error { return stop }); !errors.Is(err, stop) {
		t.Fatalf("ForEachRef error %v", err)
	}
	e.s.AbortMultipartUpload(e.ctx, "st2", "m", id)
}

// flakyMeta fails commits, or everything, with ErrUnavailable on demand.
type flakyMeta struct {
	meta.Store
	failCommit, failAll bool
}

func (f *flakyMeta) Get(ctx context.Context, p meta.Partition, k []byte) (meta.Item, error) {
	if f.failAll {
		return meta.Item{}, meta.ErrUnavailable
	}
	return f.Store.Get(ctx, p, k)
}

func (f *flakyMeta) Scan(ctx context.Context, p meta.Partition, s, e []byte, fn func([]byte, meta.Item) bool) error {
	if f.failAll {
		return meta.ErrUnavailable
	}
	return f.Store.Scan(ctx, p, s, e, fn)
}

func (f *flakyMeta) Commit(ctx context.Context, p meta.Partition, txn meta.Txn) (uint64, error) {
	if f.failCommit || f.failAll {
		return 0, meta.ErrUnavailable
	}
	return f.Store.Commit(ctx, p, txn)
}

func TestUnavailableMetadata(t *testing.T) {
	md := meta.NewMem()
	fm := &flakyMeta{Store: md}
	data := newMemBlocks()
	cfg := DefaultConfig()
	cfg.Partitions = 4
	cfg.InlineMax = 8
	s, err := New(cfg, fm, data, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := s.CreateBucket(ctx, "una"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PutObject(ctx, "una", "k", strings.NewReader("hello world!"), 12, PutOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := s.SetVersioning(ctx, "una", Enabled); err != nil {
		t.Fatal(err)
	}
	id, err := s.CreateMultipartUpload(ctx, "una", "m", PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	stored := len(data.ids())
	fm.failCommit = true
	ops := map[string]func() error{
		"put": func() error {
			_, err := s.PutObject(ctx, "una", "k", strings.NewReader("another body"), 12, PutOptions{})
			return err
		},
		"delete": func() error { _, err := s.DeleteObject(ctx, "una", "k", DeleteOptions{}); return err },
		"part": func() error {
			_, err := s.UploadPart(ctx, "una", "m", id, 1, strings.NewReader("part data!"), 10, PartOptions{})
			return err
		},
		"copy": func() error {
			_, err := s.CopyObject(ctx, CopySource{Bucket: "una", Key: "k"}, "una", "k2", PutOptions{})
			return err
		},
		"abort":  func() error { return s.AbortMultipartUpload(ctx, "una", "m", id) },
		"create": func() error { return s.CreateBucket(ctx, "other") },
	}
	for name, op := range ops {
		if err := op(); !errors.Is(err, meta.ErrUnavailable) {
			t.Errorf("%s with commits failing: %v", name, err)
		}
		if n := len(data.ids()); n != stored {
			t.Errorf("%s left data: %d -> %d", name, stored, n)
		}
	}
	fm.failAll = true
	if _, _, err := s.GetObject(ctx, "una", "k", GetOptions{}); !errors.Is(err, meta.ErrUnavailable) {
		t.Errorf("get: %v", err)
	}
	if _, err := s.ListObjects(ctx, "una", ListOptions{}); !errors.Is(err, meta.ErrUnavailable) {
		t.Errorf("list: %v", err)
	}
	if _, _, err := s.Stats(ctx); !errors.Is(err, meta.ErrUnavailable) {
		t.Errorf("stats: %v", err)
	}
}

// countingMeta counts the items the scans through it visit, by tag.
type countingMeta struct {
	meta.Store
	visited map[byte]int
}

func (c *countingMeta) Scan(ctx context.Context, p meta.Partition, s, e []byte, fn func([]byte, meta.Item) bool) error {
	return c.Store.Scan(ctx, p, s, e, func(k []byte, it meta.Item) bool {
		if len(k) > 0 {
			c.visited[k[0]]++
		}
		return fn(k, it)
	})
}

// TestStatsReadsCounters: after a random mix of PUTs (inline and
// stored, overwriting null versions), copies, multipart uploads,
// deletes, deletes of versions and versioning changes, Stats equals a
// count of every version record, and it read only the partitions'
// counters to get it: its cost does not grow with the objects stored.
func TestStatsReadsCounters(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	e := newEnv(t)
	buckets := []string{"cnt-a", "cnt-b", "cnt-c"}
	for _, b := range buckets {
		e.bucket(b, Unversioned)
	}
	versions := map[string][]string{} // bucket/key -> version IDs seen
	for i := range 400 {
		b := buckets[rng.IntN(len(buckets))]
		key := fmt.Sprintf("k%d", rng.IntN(12))
		switch op := rng.IntN(10); {
		case op < 4:
			body := big(rng.IntN(120), byte(i))
			oi := e.put(b, key, body)
			versions[b+"/"+key] = append(versions[b+"/"+key], oi.VersionID)
		case op == 4:
			src := buckets[rng.IntN(len(buckets))]
			if oi, err := e.s.CopyObject(e.ctx, CopySource{Bucket: src, Key: key}, b, key+"c", PutOptions{}); err == nil {
				versions[b+"/"+key+"c"] = append(versions[b+"/"+key+"c"], oi.VersionID)
			}
		case op == 5:
			id, err := e.s.CreateMultipartUpload(e.ctx, b, key, PutOptions{})
			if err != nil {
				t.Fatal(err)
			}
			pi := e.part(b, key, id, 1, big(20+rng.IntN(80), byte(i)))
			oi, err := e.s.CompleteMultipartUpload(e.ctx, b, key, id, []CompletePart{{Number: 1, ETag: pi.ETag}}, CompleteOptions{})
			if err != nil {
				t.Fatal(err)
			}
			versions[b+"/"+key] = append(versions[b+"/"+key], oi.VersionID)
		case op == 6:
			_, _ = e.s.DeleteObject(e.ctx, b, key, DeleteOptions{})
		case op == 7:
			if vs := versions[b+"/"+key]; len(vs) > 0 {
				_, _ = e.s.DeleteObject(e.ctx, b, key, DeleteOptions{VersionID: vs[rng.IntN(len(vs))]})
			}
		case op == 8:
			v := []Versioning{Enabled, Suspended}[rng.IntN(2)]
			if err := e.s.SetVersioning(e.ctx, b, v); err != nil {
				t.Fatal(err)
			}
		default:
			if vs := versions[b+"/"+key]; len(vs) > 0 && rng.IntN(2) == 0 {
				_, _ = e.s.DeleteObject(e.ctx, b, key, DeleteOptions{VersionID: "null"})
			}
		}
	}
	// What a scan of every version record counts.
	var want, wantBytes int64
	for p := 0; p < e.s.cfg.Partitions; p++ {
		err := e.md.Scan(e.ctx, meta.Partition(p), []byte{tagVersion}, []byte{tagVersion + 1}, func(k []byte, it meta.Item) bool {
			v, err := versionItem(k, it)
			if err != nil {
				t.Fatal(err)
			}
			if !v.DeleteMarker {
				want++
				wantBytes += v.Size
			}
			return true
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	cm := &countingMeta{Store: e.md, visited: map[byte]int{}}
	s, err := New(e.s.cfg, cm, e.data, nil)
	if err != nil {
		t.Fatal(err)
	}
	n, b, err := s.Stats(e.ctx)
	if err != nil || n != want || b != wantBytes {
		t.Fatalf("Stats %d objects, %d bytes (%v); the version records hold %d objects, %d bytes", n, b, err, want, wantBytes)
	}
	if cm.visited[tagVersion] != 0 || cm.visited[tagHead] != 0 {
		t.Fatalf("Stats visited %d version and %d head records; it should read counters only", cm.visited[tagVersion], cm.visited[tagHead])
	}
	t.Logf("%d objects, %d bytes, from %d counter records", n, b, cm.visited[tagCount])
}
