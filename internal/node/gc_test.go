package node

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"testing"

	"github.com/redoubt-io/redoubt/internal/objects"
	"github.com/redoubt-io/redoubt/internal/store"
	"github.com/redoubt-io/redoubt/internal/testlog"
)

// writeShard leaves a committed shard file no metadata knows.
func writeShard(t *testing.T, d *store.Drive, id string) {
	t.Helper()
	w, err := d.Create(t.Context(), store.Name{ID: id, Shard: 0})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(bytes.Repeat([]byte{7}, 5000)); err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(t.Context()); err != nil {
		t.Fatal(err)
	}
}

func TestGCPassOnNode(t *testing.T) {
	cfg := upkeepConfig(t, 3, func(c *Config) {
		c.GC = GCConfig{} // passes are run by hand
	})
	logger := slog.New(slog.NewTextHandler(testlog.Writer(t), &slog.HandlerOptions{Level: slog.LevelInfo}))
	n, err := Start(t.Context(), cfg, logger)
	if err != nil {
		t.Fatal(err)
	}
	defer n.close()
	ctx := t.Context()
	if err := n.objects.CreateBucket(ctx, "bkt"); err != nil {
		t.Fatal(err)
	}
	data := bytes.Repeat([]byte("redoubt "), 64<<10)
	if _, err := n.objects.PutObject(ctx, "bkt", "k", bytes.NewReader(data), int64(len(data)), objects.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	orphan := "0123456789abcdef0123456789abcdef00000003" // a ref ID of partition 3
	if p, ok := objects.RefPartition(orphan); !ok || p != 3 {
		t.Fatalf("test ID is not a ref ID: %d %v", p, ok)
	}
	legacy := store.NewID()
	writeShard(t, n.drives[0], orphan)
	writeShard(t, n.drives[1], legacy)

	st := n.gc.Pass(ctx)
	if st.Removed != 1 || st.Untracked != 1 {
		t.Errorf("pass: %s, untracked %d; want the orphan removed and the untracked shard kept", st, st.Untracked)
	}
	var left []string
	for _, d := range n.drives {
		if err := d.Walk(ctx, func(si store.ShardInfo) error {
			left = append(left, si.Name.ID)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range left {
		if id == orphan {
			t.Error("orphan survived")
		}
	}
	_, rc, err := n.objects.GetObject(ctx, "bkt", "k", objects.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("object after gc: %d bytes, %v", len(got), err)
	}
	gs := n.Status(context.Background()).GC
	if gs.Passes != 1 || gs.OrphansRemoved != 1 || gs.BytesFreed == 0 || gs.LastPassFinished.IsZero() {
		t.Errorf("status: %+v", gs)
	}
}
