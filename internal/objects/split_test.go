package objects

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/redoubt-io/redoubt/internal/blocks"
	"github.com/redoubt-io/redoubt/internal/meta"
	"github.com/redoubt-io/redoubt/internal/testlog"
)

// splitStore is a meta.Store whose partitions split as raftmeta's do:
// atomically, divided by a Splitter, the parent answering meta.ErrMoved
// from then on.
type splitStore struct {
	mu    sync.Mutex
	rev   uint64
	parts map[meta.Partition]map[string]meta.Item
	moved map[meta.Partition][2]meta.Partition
}

func newSplitStore(base int) *splitStore {
	s := &splitStore{parts: map[meta.Partition]map[string]meta.Item{meta.System: {}}, moved: map[meta.Partition][2]meta.Partition{}}
	for p := range base {
		s.parts[meta.Partition(p)] = map[string]meta.Item{}
	}
	return s
}

func (s *splitStore) part(p meta.Partition) (map[string]meta.Item, error) {
	if into, ok := s.moved[p]; ok {
		return nil, fmt.Errorf("test store: %w", &meta.MovedError{P: p, Into: into})
	}
	m, ok := s.parts[p]
	if !ok {
		return nil, fmt.Errorf("test store: no partition %d: %w", p, meta.ErrUnavailable)
	}
	return m, nil
}

func (s *splitStore) Get(_ context.Context, p meta.Partition, key []byte) (meta.Item, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, err := s.part(p)
	if err != nil {
		return meta.Item{}, err
	}
	it, ok := m[string(key)]
	if !ok {
		return meta.Item{}, meta.ErrNotFound
	}
	return meta.Item{Value: bytes.Clone(it.Value), Rev: it.Rev}, nil
}

func (s *splitStore) Scan(_ context.Context, p meta.Partition, start, end []byte, fn func([]byte, meta.Item) bool) error {
	s.mu.Lock()
	m, err := s.part(p)
	var keys []string
	for k := range m {
		if k >= string(start) && (end == nil || k < string(end)) {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	items := make([]meta.Item, len(keys))
	for i, k := range keys {
		items[i] = m[k]
	}
	s.mu.Unlock()
	if err != nil {
		return err
	}
	for i, k := range keys {
		if !fn([]byte(k), meta.Item{Value: bytes.Clone(items[i].Value), Rev: items[i].Rev}) {
			break
		}
	}
	return nil
}

func (s *splitStore) Commit(_ context.Context, p meta.Partition, txn meta.Txn) (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, err := s.part(p)
	if err != nil {
		return 0, err
	}
	for _, c := range txn.Conds {
		if m[string(c.Key)].Rev != c.Rev {
			return 0, meta.ErrConflict
		}
	}
	txn, err = meta.ResolveAdds(txn, func(k []byte) ([]byte, error) { return m[string(k)].Value, nil })
	if err != nil {
		return 0, err
	}
	s.rev++
	for _, k := range txn.Deletes {
		delete(m, string(k))
	}
	for _, kv := range txn.Puts {
		m[string(kv.Key)] = meta.Item{Value: bytes.Clone(kv.Value), Rev: s.rev}
	}
	return s.rev, nil
}

// split splits p as sp divides it.
func (s *splitStore) split(t testing.TB, sp *Splitter, p meta.Partition) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, err := s.part(p)
	if err != nil {
		t.Fatal(err)
	}
	into := sp.Children(p)
	kids := [2]map[string]meta.Item{{}, {}}
	last := [2]string{}
	scan := func(fn func([]byte, meta.Item) error) error {
		keys := slices.Sorted(func(yield func(string) bool) {
			for k := range m {
				if !yield(k) {
					return
				}
			}
		})
		for _, k := range keys {
			if err := fn([]byte(k), m[k]); err != nil {
				return err
			}
		}
		return nil
	}
	emit := func(c int, k []byte, it meta.Item) error {
		if last[c] != "" && string(k) <= last[c] {
			return fmt.Errorf("child %d: %x after %x", c, k, last[c])
		}
		last[c] = string(k)
		kids[c][string(k)] = meta.Item{Value: bytes.Clone(it.Value), Rev: it.Rev}
		return nil
	}
	if err := sp.Split(p, into, scan, emit); err != nil {
		t.Fatal(err)
	}
	delete(s.parts, p)
	s.moved[p] = into
	for i, c := range into {
		s.parts[c] = kids[i]
	}
}

// leaves is the partitions that hold keys.
func (s *splitStore) leaves() []meta.Partition {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []meta.Partition
	for p := range s.parts {
		if p != meta.System {
			out = append(out, p)
		}
	}
	slices.Sort(out)
	return out
}

// TestObjectsSurviveSplits: objects, versions, an upload in progress and
// the counters survive every partition splitting twice while a writer
// runs: each key reads back as last written, listings hold every key
// once and in order, Stats counts what a scan counts, and the data
// stored is exactly the data named.
func TestObjectsSurviveSplits(t *testing.T) {
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 1))
	const base = 4
	md := newSplitStore(base)
	data := newMemBlocks()
	cfg := DefaultConfig()
	cfg.Partitions = base
	cfg.InlineMax = 16
	cfg.MinPartSize = 10
	s, err := New(cfg, md, data, slog.New(slog.NewTextHandler(testlog.Writer(t), &slog.HandlerOptions{Level: slog.LevelWarn})))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, b := range []string{"plain", "versioned", "empty"} {
		if err := s.CreateBucket(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.SetVersioning(ctx, "versioned", Enabled); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{} // bucket/key: last body; "" deleted
	versions := 0
	put := func(b, k string) {
		body := strings.Repeat(fmt.Sprintf("%s-%d ", k, rng.IntN(1000)), 1+rng.IntN(5))
		if _, err := s.PutObject(ctx, b, k, strings.NewReader(body), int64(len(body)), PutOptions{}); err != nil {
			t.Fatalf("put %s/%s: %v", b, k, err)
		}
		if b == "versioned" {
			versions++
		}
		want[b+"/"+k] = body
	}
	upload, err := s.CreateMultipartUpload(ctx, "plain", "big", PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var parts []CompletePart
	addPart := func() {
		n := len(parts) + 1
		body := strings.Repeat(fmt.Sprintf("part %d ", n), 3)
		pi, err := s.UploadPart(ctx, "plain", "big", upload, n, strings.NewReader(body), int64(len(body)), PartOptions{})
		if err != nil {
			t.Fatalf("upload part %d: %v", n, err)
		}
		parts = append(parts, CompletePart{Number: n, ETag: pi.ETag})
	}
	sp := NewSplitter(base)
	// A writer runs through every split.
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Add(1)
	var bg []string
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			k := fmt.Sprintf("bg/%04d", i)
			body := strings.Repeat(k, 1+i%9)
			if _, err := s.PutObject(ctx, "plain", k, strings.NewReader(body), int64(len(body)), PutOptions{}); err != nil {
				t.Errorf("background put %s: %v", k, err)
				return
			}
			bg = append(bg, k)
		}
	}()
	for round := range 3 {
		for range 60 {
			b := []string{"plain", "versioned"}[rng.IntN(2)]
			k := fmt.Sprintf("k%02d", rng.IntN(40))
			if rng.IntN(6) == 0 {
				if _, err := s.DeleteObject(ctx, b, k, DeleteOptions{}); err != nil {
					t.Fatalf("delete %s/%s: %v", b, k, err)
				}
				if b == "versioned" {
					versions++ // a delete marker
				}
				want[b+"/"+k] = ""
				continue
			}
			put(b, k)
		}
		addPart()
		if round == 2 {
			break
		}
		for _, p := range md.leaves() {
			md.split(t, sp, p)
		}
	}
	close(stop)
	wg.Wait()
	for _, k := range bg {
		want["plain/"+k] = strings.Repeat(k, 1+len(want)%1) // checked below by length only
	}
	if _, err := s.CompleteMultipartUpload(ctx, "plain", "big", upload, parts, CompleteOptions{}); err != nil {
		t.Fatalf("complete an upload begun before the splits: %v", err)
	}
	if got := len(md.leaves()); got != base*4 {
		t.Fatalf("%d partitions, want %d", got, base*4)
	}
	// A node that knows of no split (it just started) learns them as it
	// meets them, in reads and in changes of every partition alike.
	s, err = New(cfg, md, data, slog.New(slog.NewTextHandler(testlog.Writer(t), &slog.HandlerOptions{Level: slog.LevelWarn})))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SetVersioning(ctx, "plain", Suspended); err != nil {
		t.Fatalf("versioning change after the splits: %v", err)
	}
	if err := s.DeleteBucket(ctx, "empty"); err != nil {
		t.Fatalf("delete an empty bucket after the splits: %v", err)
	}
	if err := s.DeleteBucket(ctx, "versioned"); !errors.Is(err, ErrBucketNotEmpty) {
		t.Fatalf("delete a bucket holding objects after the splits: %v", err)
	}
	for bk, body := range want {
		b, k, _ := strings.Cut(bk, "/")
		_, rc, err := s.GetObject(ctx, b, k, GetOptions{})
		if body == "" {
			if !errors.Is(err, ErrNoSuchKey) {
				t.Errorf("%s: deleted, read %v", bk, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", bk, err)
			continue
		}
		got, _ := io.ReadAll(rc)
		rc.Close()
		if strings.HasPrefix(k, "bg/") {
			if len(got) == 0 || !strings.HasPrefix(string(got), k) {
				t.Errorf("%s: %q", bk, got)
			}
		} else if string(got) != body {
			t.Errorf("%s: %q, want %q", bk, got, body)
		}
	}
	for _, b := range []string{"plain", "versioned"} {
		var listed []string
		marker := ""
		for {
			res, err := s.ListObjects(ctx, b, ListOptions{Marker: marker, MaxKeys: 7})
			if err != nil {
				t.Fatal(err)
			}
			for _, o := range res.Objects {
				listed = append(listed, o.Key)
			}
			if !res.IsTruncated {
				break
			}
			marker = listed[len(listed)-1]
		}
		var keys []string
		for bk, body := range want {
			if kb, k, _ := strings.Cut(bk, "/"); kb == b && body != "" {
				keys = append(keys, k)
			}
		}
		if b == "plain" {
			keys = append(keys, "big")
		}
		slices.Sort(keys)
		if strings.Join(listed, ",") != strings.Join(keys, ",") {
			t.Errorf("%s lists %d keys, want %d:\n%v\n%v", b, len(listed), len(keys), listed, keys)
		}
	}
	objs, byts, err := s.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	sobjs, sbyts, err := s.CountByScan(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if objs != sobjs || byts != sbyts {
		t.Errorf("Stats %d objects %d bytes, a scan counts %d, %d", objs, byts, sobjs, sbyts)
	}
	var refs []string
	if err := s.ForEachRef(ctx, func(r blocks.Ref) error { refs = append(refs, r.ID); return nil }); err != nil {
		t.Fatal(err)
	}
	slices.Sort(refs)
	if got := data.ids(); strings.Join(got, ",") != strings.Join(refs, ",") {
		t.Errorf("stored data %d IDs, named %d", len(got), len(refs))
	}
}

// TestRouteFollowsSplits: partition IDs of every depth are distinct and
// agree with children and parent, and a key's route resolves, split
// after split, to the child that Splitter gives the key's records.
func TestRouteFollowsSplits(t *testing.T) {
	for _, base := range []uint32{1, 3, 256} {
		tree := newPartTree(int(base))
		seen := map[meta.Partition]bool{}
		level := []meta.Partition{}
		for i := range base {
			level = append(level, meta.Partition(i))
		}
		for d := 0; d < 4; d++ {
			var next []meta.Partition
			for _, p := range level {
				if seen[p] || !tree.valid(p) {
					t.Fatalf("base %d depth %d: %d seen before or invalid", base, d, p)
				}
				seen[p] = true
				if got, _ := tree.pos(p); got != d {
					t.Fatalf("base %d: %d at depth %d, want %d", base, p, got, d)
				}
				for _, c := range tree.children(p) {
					if up, ok := tree.parent(c); !ok || up != p {
						t.Fatalf("base %d: parent of %d is %d, want %d", base, c, up, p)
					}
					next = append(next, c)
				}
			}
			level = next
		}
		r := newRouter(nil, int(base))
		for p := range seen {
			if d, _ := tree.pos(p); d < 3 {
				r.learn(p)
			}
		}
		for i := range 200 {
			key := fmt.Sprintf("key-%d", i)
			p0 := uint32(i) % base
			at := meta.Partition(p0)
			for d := range 3 {
				at = tree.children(at)[side(headKey(bucketID{1}, key), d)]
			}
			if got := r.resolve(routeOf(p0, key)); got != at {
				t.Fatalf("base %d: %q resolves to %d, its records go to %d", base, key, got, at)
			}
		}
		if n := len(r.parts()); n != int(base)*8 {
			t.Fatalf("base %d: %d leaves after three splits, want %d", base, n, base*8)
		}
	}
}
