package raftmeta

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/redoubt-io/redoubt/internal/blocks"
	"github.com/redoubt-io/redoubt/internal/meta"
	"github.com/redoubt-io/redoubt/internal/objects"
)

// The object layer over real Raft groups: reads that must not come from a
// replica that has not applied what an earlier read saw.

// inlineOnly is a data store for tests whose bodies all stay inline.
type inlineOnly struct{}

func (inlineOnly) Write(context.Context, uint32, io.Reader) (blocks.Ref, error) {
	return blocks.Ref{}, errors.New("inlineOnly: no data store")
}
func (inlineOnly) Open(context.Context, blocks.Ref, int64, int64) (io.ReadCloser, error) {
	return nil, errors.New("inlineOnly: no data store")
}
func (inlineOnly) Delete(context.Context, blocks.Ref) error { return nil }

// cutTo drops every message batch to node *to (0: none), as a slow or
// briefly cut link does; forwarded requests still get through.
type cutTo struct {
	inner Sender
	to    *atomic.Uint64
}

func (c cutTo) Send(to uint64, batch []byte) {
	if to != c.to.Load() {
		c.inner.Send(to, batch)
	}
}

// A version deleted (and acknowledged) through the leader is never served
// afterwards by a node whose replica has not applied the deletion: the
// version is read only from a replica that has applied what the
// linearizable head read saw.
func TestStaleReplicaDoesNotServeDeletedVersion(t *testing.T) {
	var cut atomic.Uint64
	c := newCluster(t, 3, []meta.Partition{meta.System, 0}, func(cfg *Config) {
		fastConfig(cfg)
		cfg.Send = cutTo{cfg.Send, &cut}
	})
	lead := c.leader(0)
	var lagging uint64
	for _, id := range c.ids {
		if id != lead && id != c.leader(meta.System) {
			lagging = id
			break
		}
	}
	svc := func(id uint64) *objects.Service {
		cfg := objects.DefaultConfig()
		cfg.Partitions = 1
		cfg.Incarnation.Node = fmt.Sprint(id)
		s, err := objects.New(cfg, c.host(id), inlineOnly{}, testLogger(t))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	a, b := svc(lead), svc(lagging)
	ctx := context.Background()
	if err := a.CreateBucket(ctx, "bkt"); err != nil {
		t.Fatal(err)
	}
	if err := a.SetVersioning(ctx, "bkt", objects.Enabled); err != nil {
		t.Fatal(err)
	}
	for round := range 5 {
		key := fmt.Sprint("k", round)
		v1, err := a.PutObject(ctx, "bkt", key, strings.NewReader("old"), 3, objects.PutOptions{})
		if err != nil {
			t.Fatal(err)
		}
		c.converged(0) // the lagging node's replica holds the version
		cut.Store(lagging)
		if _, err := a.DeleteObject(ctx, "bkt", key, objects.DeleteOptions{VersionID: v1.VersionID}); err != nil {
			t.Fatal(err)
		}
		_, rc, err := b.GetObject(ctx, "bkt", key, objects.GetOptions{VersionID: v1.VersionID})
		if err == nil {
			rc.Close()
			t.Fatalf("round %d: node %d served version %s after its deletion was acknowledged", round, lagging, v1.VersionID)
		}
		if !errors.Is(err, objects.ErrNoSuchVersion) {
			t.Fatalf("round %d: %v, want NoSuchVersion", round, err)
		}
		// A read of the latest version through the lagging node goes
		// to a view at least as new as the head it read.
		if _, _, err := b.GetObject(ctx, "bkt", key, objects.GetOptions{}); !errors.Is(err, objects.ErrNoSuchKey) {
			t.Fatalf("round %d: GET latest through node %d: %v, want NoSuchKey", round, lagging, err)
		}
		// The latest version, written while the node lags, is read
		// from a view that has it (the leader's, until the node
		// catches up), not looked for in the lagging copy.
		if _, err := a.PutObject(ctx, "bkt", key, strings.NewReader("new"), 3, objects.PutOptions{}); err != nil {
			t.Fatal(err)
		}
		_, rc, err = b.GetObject(ctx, "bkt", key, objects.GetOptions{})
		if err != nil {
			t.Fatalf("round %d: GET of the version written while node %d lags: %v", round, lagging, err)
		}
		got, _ := io.ReadAll(rc)
		rc.Close()
		if string(got) != "new" {
			t.Fatalf("round %d: GET through node %d = %q, want the latest", round, lagging, got)
		}
		cut.Store(0)
	}
	// The null version, replaced while the node lags, is read through
	// the head's timestamp from a view that has it.
	if err := a.SetVersioning(ctx, "bkt", objects.Suspended); err != nil {
		t.Fatal(err)
	}
	if _, err := a.PutObject(ctx, "bkt", "n", strings.NewReader("old"), 3, objects.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	c.converged(0)
	cut.Store(lagging)
	if _, err := a.PutObject(ctx, "bkt", "n", strings.NewReader("new"), 3, objects.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	_, rc, err := b.GetObject(ctx, "bkt", "n", objects.GetOptions{VersionID: "null"})
	if err != nil {
		t.Fatalf("GET of the null version replaced while node %d lags: %v", lagging, err)
	}
	got, _ := io.ReadAll(rc)
	rc.Close()
	if string(got) != "new" {
		t.Fatalf("null version through node %d = %q, want the one that replaced it", lagging, got)
	}
}
