package objects

import (
	"context"
	"errors"
	"strings"
	"testing"

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
