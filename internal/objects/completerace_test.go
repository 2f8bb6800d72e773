package objects

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redoubt-io/redoubt/internal/meta"
	"github.com/redoubt-io/redoubt/internal/testlog"
)

// Completing one upload several times, concurrently or again after it
// succeeded, follows S3: every completion that names the parts the object
// was made of answers that object (same ETag, same version ID), as S3
// answers a retried completion; the object is made once, its data is
// stored once, and the upload is gone. A completion naming other parts
// after the upload was completed is NoSuchUpload.

func TestConcurrentCompleteSameUpload(t *testing.T) {
	for _, v := range []Versioning{Unversioned, Enabled} {
		for round := 0; round < 10; round++ {
			e := newEnv(t)
			e.bucket("mpb", v)
			id, err := e.s.CreateMultipartUpload(e.ctx, "mpb", "k", PutOptions{})
			if err != nil {
				t.Fatal(err)
			}
			bodies := []string{big(20, 1), big(30, 2), "tail"}
			var parts []CompletePart
			for i, b := range bodies {
				pi := e.part("mpb", "k", id, i+1, b)
				parts = append(parts, CompletePart{Number: i + 1, ETag: pi.ETag})
			}
			const G = 8
			infos := make([]ObjectInfo, G)
			errs := make([]error, G)
			var wg sync.WaitGroup
			start := make(chan struct{})
			for g := 0; g < G; g++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					<-start
					infos[g], errs[g] = e.s.CompleteMultipartUpload(e.ctx, "mpb", "k", id, parts, CompleteOptions{})
				}()
			}
			close(start)
			wg.Wait()
			want := multipartETag(bodies...)
			for g := 0; g < G; g++ {
				if errs[g] != nil {
					t.Fatalf("versioning %v round %d: completion %d: %v", v, round, g, errs[g])
				}
				if infos[g].ETag != want || infos[g].VersionID != infos[0].VersionID || infos[g].Size != 54 {
					t.Fatalf("versioning %v round %d: completion %d answered %+v, completion 0 %+v (want ETag %s)",
						v, round, g, infos[g], infos[0], want)
				}
			}
			vs, err := e.s.ListObjectVersions(e.ctx, "mpb", ListVersionsOptions{})
			if err != nil || len(vs.Versions) != 1 || vs.Versions[0].ETag != want {
				t.Fatalf("versioning %v round %d: versions %+v %v", v, round, vs.Versions, err)
			}
			if got := e.mustGet("mpb", "k", GetOptions{}); got != strings.Join(bodies, "") {
				t.Fatalf("versioning %v round %d: body of %d bytes differs", v, round, len(got))
			}
			if lu := mustUploads(t, e, ""); len(lu) != 0 {
				t.Fatalf("versioning %v round %d: uploads left %+v", v, round, lu)
			}
			// Again, sequentially: the same parts answer the same object;
			// other parts find no upload.
			again, err := e.s.CompleteMultipartUpload(e.ctx, "mpb", "k", id, parts, CompleteOptions{})
			if err != nil || again.ETag != want || again.VersionID != infos[0].VersionID {
				t.Fatalf("versioning %v round %d: repeated completion %+v %v", v, round, again, err)
			}
			if _, err := e.s.CompleteMultipartUpload(e.ctx, "mpb", "k", id, parts[:2], CompleteOptions{}); !errors.Is(err, ErrNoSuchUpload) {
				t.Fatalf("versioning %v round %d: completion with other parts after success: %v, want ErrNoSuchUpload", v, round, err)
			}
		}
	}
}

// hookStore runs beforeScan once, on the first scan that starts in
// [from, to), before that scan reads anything.
type hookStore struct {
	meta.Store
	from, to   []byte
	fired      atomic.Bool
	beforeScan func()
}

func (h *hookStore) Scan(ctx context.Context, p meta.Partition, start, end []byte, fn func([]byte, meta.Item) bool) error {
	if bytes.Compare(start, h.from) >= 0 && bytes.Compare(start, h.to) < 0 && h.fired.CompareAndSwap(false, true) {
		h.beforeScan()
	}
	return h.Store.Scan(ctx, p, start, end, fn)
}

// TestCompleteLosesRaceBetweenReads pins the narrowest interleaving of two
// completions: the first has read the upload record, the second then
// completes the upload (removing the record and its parts), and the first
// goes on to read the parts and finds none. The first must answer the
// object the second made, not InvalidPart.
func TestCompleteLosesRaceBetweenReads(t *testing.T) {
	clk := &fakeClock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	cfg := DefaultConfig()
	cfg.Partitions = 4
	cfg.InlineMax = 64
	cfg.MinPartSize = 10
	cfg.Now = clk.Now
	hs := &hookStore{Store: meta.NewMem()}
	data := newMemBlocks()
	log := slog.New(slog.NewTextHandler(testlog.Writer(t), &slog.HandlerOptions{Level: slog.LevelWarn}))
	s, err := New(cfg, hs, data, log)
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, s: s, data: data, clk: clk, ctx: context.Background()}
	t.Cleanup(func() { e.checkRefs() })
	e.bucket("mpb", Enabled)
	id, err := s.CreateMultipartUpload(e.ctx, "mpb", "k", PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	p1, p2 := big(20, 3), "end"
	parts := []CompletePart{{Number: 1, ETag: e.part("mpb", "k", id, 1, p1).ETag}, {Number: 2, ETag: e.part("mpb", "k", id, 2, p2).ETag}}

	b, _, err := s.getBucket(e.ctx, "mpb")
	if err != nil {
		t.Fatal(err)
	}
	hs.from = partPrefix(b.ID, "k", id)
	hs.to = prefixEnd(hs.from)
	var rival ObjectInfo
	var rivalErr error
	hs.beforeScan = func() {
		rival, rivalErr = s.CompleteMultipartUpload(e.ctx, "mpb", "k", id, parts, CompleteOptions{})
	}
	got, err := s.CompleteMultipartUpload(e.ctx, "mpb", "k", id, parts, CompleteOptions{})
	if !hs.fired.Load() {
		t.Fatal("the parts were never scanned: the interleaving was not exercised")
	}
	if rivalErr != nil {
		t.Fatalf("rival completion: %v", rivalErr)
	}
	if err != nil {
		t.Fatalf("completion that lost the race between its reads: %v", err)
	}
	if got.ETag != multipartETag(p1, p2) || got.ETag != rival.ETag || got.VersionID != rival.VersionID {
		t.Fatalf("loser answered %+v, winner %+v", got, rival)
	}
	if vs := versionsOf(t, e, "mpb"); len(vs) != 1 {
		t.Fatalf("%d versions, want 1", len(vs))
	}
}
