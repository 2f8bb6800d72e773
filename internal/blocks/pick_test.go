package blocks

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/redoubt-io/redoubt/internal/placement"
	"github.com/redoubt-io/redoubt/internal/shardrpc"
	"github.com/redoubt-io/redoubt/internal/store"
)

// pickSet is a Set whose placement lists 400 remote drives (100 nodes of
// 4), counting the drives it resolves.
func pickSet(tb testing.TB, resolved *int) *Set {
	net := &fakeNet{servers: map[string]*shardrpc.Server{}}
	net.mu.down = map[string]bool{}
	net.mu.calls = map[string]int{}
	remote := map[string]shardrpc.Drive{}
	var all []string
	for n := range 100 {
		for d := range 4 {
			id := fmt.Sprintf("n%03d-d%d", n, d)
			remote[id] = shardrpc.NewRemoteDrive(net, fmt.Sprintf("n%03d", n), id, shardrpc.DefaultClientConfig())
			all = append(all, id)
		}
	}
	local, err := store.Open(context.Background(), store.DefaultConfig(), []string{filepath.Join(tb.TempDir(), "d")}, testLogger(tb))
	if err != nil {
		tb.Fatal(err)
	}
	cfg := DefaultConfig(placement.Policy{K: 4, M: 2})
	cfg.Resolve = func(id string) (shardrpc.Drive, bool) {
		*resolved++
		d, ok := remote[id]
		return d, ok
	}
	cfg.Place = func(p uint32, _ string) []string { return all }
	s, err := New(cfg, local, testLogger(tb))
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

// TestPickStopsAtItsSpares: a write given every drive of a large cluster
// takes its shards' drives and a bounded number of spares, in the
// placement's order, and looks at no more drives than that.
func TestPickStopsAtItsSpares(t *testing.T) {
	resolved := 0
	s := pickSet(t, &resolved)
	targets, spares, err := s.pick(0, "id", 6, 5)
	if err != nil {
		t.Fatal(err)
	}
	if len(targets) != 6 || len(spares) != maxSpares(6) {
		t.Fatalf("%d targets and %d spares, want 6 and %d", len(targets), len(spares), maxSpares(6))
	}
	for i, d := range append(targets, spares...) {
		if want := fmt.Sprintf("n%03d-d%d", i/4, i%4); d.ID() != want {
			t.Fatalf("drive %d is %s, want %s", i, d.ID(), want)
		}
	}
	if want := 6 + maxSpares(6); resolved != want {
		t.Fatalf("resolved %d drives, want %d", resolved, want)
	}
}

// BenchmarkPick measures choosing a write's drives from a placement that
// lists every drive of a large cluster (100 nodes of 4 drives, EC 4+2).
func BenchmarkPick(b *testing.B) {
	resolved := 0
	s := pickSet(b, &resolved)
	for b.Loop() {
		if _, _, err := s.pick(0, "id", 6, 5); err != nil {
			b.Fatal(err)
		}
	}
}
