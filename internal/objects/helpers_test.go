package objects

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"github.com/redoubt-io/redoubt/internal/testlog"
	"io"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redoubt-io/redoubt/internal/blocks"
	"github.com/redoubt-io/redoubt/internal/meta"
)

// memBlocks is the in-memory twin of blocks.Store used by these tests.
type memBlocks struct {
	mu struct {
		sync.Mutex
		objs  map[string][]byte
		parts map[string]uint32 // ref ID -> partition written to
		next  int
		fails map[string]error // op -> error injected once
	}
}

var _ blocks.Store = (*memBlocks)(nil)

var errInjected = errors.New("injected data store failure")

func newMemBlocks() *memBlocks {
	m := &memBlocks{}
	m.mu.objs = map[string][]byte{}
	m.mu.parts = map[string]uint32{}
	m.mu.fails = map[string]error{}
	return m
}

func (m *memBlocks) failNext(op string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.mu.fails[op] = errInjected
}

func (m *memBlocks) takeFail(op string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	err := m.mu.fails[op]
	delete(m.mu.fails, op)
	return err
}

func (m *memBlocks) Write(ctx context.Context, p uint32, r io.Reader) (blocks.Ref, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return blocks.Ref{}, fmt.Errorf("memblocks: read body: %w", err)
	}
	if err := m.takeFail("write"); err != nil {
		return blocks.Ref{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.mu.next++
	id := fmt.Sprintf("ref%06d", m.mu.next)
	m.mu.objs[id] = data
	m.mu.parts[id] = p
	return blocks.Ref{ID: id, Size: int64(len(data)), K: 1, M: 2, Mirror: true, ChunkSize: 1 << 20, Drives: []string{"d1", "d2", "d3"}}, nil
}

func (m *memBlocks) Open(ctx context.Context, ref blocks.Ref, off, length int64) (io.ReadCloser, error) {
	if err := m.takeFail("open"); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	d, ok := m.mu.objs[ref.ID]
	if !ok {
		return nil, fmt.Errorf("memblocks: %s: no such data", ref.ID)
	}
	if off < 0 || length < 0 || off+length > int64(len(d)) {
		return nil, fmt.Errorf("memblocks: %s: range %d+%d of %d", ref.ID, off, length, len(d))
	}
	return io.NopCloser(bytes.NewReader(d[off : off+length])), nil
}

func (m *memBlocks) Delete(ctx context.Context, ref blocks.Ref) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.mu.objs, ref.ID)
	return nil
}

func (m *memBlocks) ids() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []string
	for id := range m.mu.objs {
		out = append(out, id)
	}
	sort.Strings(out)
	return out
}

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

type env struct {
	t    testing.TB
	s    *Service
	md   *meta.Mem
	data *memBlocks
	clk  *fakeClock
	ctx  context.Context
	// moreRefs, when set, names data that records outside the metadata
	// store refer to (available buckets' versions); nil: none.
	moreRefs func() []string
}

// newEnv returns a service over fresh in-memory stores with small limits.
// At cleanup it checks that the stored data is exactly what committed
// metadata refers to: no leak, no dangling reference.
func newEnv(t testing.TB, edit ...func(*Config)) *env {
	t.Helper()
	return newEnvOn(t, nil, edit...)
}

// newEnvOn is newEnv with the service's store wrapped by wrap, if not nil.
func newEnvOn(t testing.TB, wrap func(md *meta.Mem, partitions int) meta.Store, edit ...func(*Config)) *env {
	t.Helper()
	clk := &fakeClock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	cfg := DefaultConfig()
	cfg.Partitions = 16
	cfg.InlineMax = 64
	cfg.MinPartSize = 10
	cfg.Now = clk.Now
	for _, f := range edit {
		f(&cfg)
	}
	md := meta.NewMem()
	data := newMemBlocks()
	log := slog.New(slog.NewTextHandler(testlog.Writer(t), &slog.HandlerOptions{Level: slog.LevelWarn}))
	var store meta.Store = md
	if wrap != nil {
		store = wrap(md, cfg.Partitions)
	}
	s, err := New(cfg, store, data, log)
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, s: s, md: md, data: data, clk: clk, ctx: context.Background()}
	t.Cleanup(func() { e.checkRefs() })
	return e
}

func (e *env) checkRefs() {
	e.t.Helper()
	var refs []string
	err := e.s.ForEachRef(e.ctx, func(r blocks.Ref) error {
		refs = append(refs, r.ID)
		return nil
	})
	if err != nil {
		e.t.Errorf("ForEachRef: %v", err)
		return
	}
	if e.moreRefs != nil {
		refs = append(refs, e.moreRefs()...)
	}
	sort.Strings(refs)
	for i := 1; i < len(refs); i++ {
		if refs[i] == refs[i-1] {
			e.t.Errorf("ref %s referenced twice", refs[i])
		}
	}
	if got := e.data.ids(); strings.Join(got, ",") != strings.Join(refs, ",") {
		e.t.Errorf("stored data %v, referenced %v", got, refs)
	}
}

func (e *env) bucket(name string, v Versioning) {
	e.t.Helper()
	if err := e.s.CreateBucket(e.ctx, name); err != nil {
		e.t.Fatal(err)
	}
	if v != Unversioned {
		if err := e.s.SetVersioning(e.ctx, name, v); err != nil {
			e.t.Fatal(err)
		}
	}
}

func (e *env) put(bucket, key, body string) ObjectInfo {
	e.t.Helper()
	oi, err := e.s.PutObject(e.ctx, bucket, key, strings.NewReader(body), int64(len(body)), PutOptions{})
	if err != nil {
		e.t.Fatalf("put %s/%s: %v", bucket, key, err)
	}
	return oi
}

func (e *env) get(bucket, key string, opts GetOptions) (ObjectInfo, string, error) {
	e.t.Helper()
	oi, rc, err := e.s.GetObject(e.ctx, bucket, key, opts)
	if err != nil {
		return oi, "", err
	}
	if rc == nil {
		return oi, "", nil
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	return oi, string(b), err
}

func (e *env) mustGet(bucket, key string, opts GetOptions) string {
	e.t.Helper()
	_, body, err := e.get(bucket, key, opts)
	if err != nil {
		e.t.Fatalf("get %s/%s %+v: %v", bucket, key, opts, err)
	}
	return body
}

// snapshot is every record of the metadata store, for checking that a
// failed operation committed nothing.
func (e *env) snapshot() string {
	e.t.Helper()
	var b strings.Builder
	parts := []meta.Partition{meta.System}
	for p := 0; p < e.s.cfg.Partitions; p++ {
		parts = append(parts, meta.Partition(p))
	}
	for _, p := range parts {
		err := e.md.Scan(e.ctx, p, nil, nil, func(k []byte, it meta.Item) bool {
			fmt.Fprintf(&b, "%d %x %d %x\n", p, k, it.Rev, it.Value)
			return true
		})
		if err != nil {
			e.t.Fatal(err)
		}
	}
	return b.String()
}

func big(n int, seed byte) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = seed + byte(i*7)
	}
	return string(b)
}
