package objects

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/redoubt-io/redoubt/internal/meta"
)

// A node whose remembered fence is outdated (another node enabled
// versioning since) answers a GET by the new configuration, and still
// writes under it: the PUT
// adds a version and keeps the null version and its data. The hint only
// costs a conflict; without the commit's condition on the fence this
// PUT would replace the null version.
func TestFenceHintOutdatedCostsAConflict(t *testing.T) {
	md := &commitHook{Mem: meta.NewMem()}
	data := newMemBlocks()
	a, b := newHookService(t, md, data), newHookService(t, md, data)
	ctx := context.Background()
	if err := a.CreateBucket(ctx, "bkt"); err != nil {
		t.Fatal(err)
	}
	precious := strings.Repeat("precious ", 10)
	other := "k2" // a key of another partition than k's
	for i := 3; a.md.resolve(a.partition("bkt", other)) == a.md.resolve(a.partition("bkt", "k")); i++ {
		other = fmt.Sprintf("k%d", i)
	}
	for _, key := range []string{"k", other} {
		if _, err := a.PutObject(ctx, "bkt", key, strings.NewReader(precious), int64(len(precious)), PutOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.SetVersioning(ctx, "bkt", Enabled); err != nil {
		t.Fatal(err)
	}
	ob, err := a.openBucket(ctx, "bkt")
	if err != nil {
		t.Fatal(err)
	}
	p := a.partition("bkt", "k")
	h, ok := a.fences.get(ob.rec.ID, a.md.resolve(p))
	if !ok || h.f.Versioning != Unversioned {
		t.Fatalf("node a's hint = %+v, %v; the test needs an outdated one (unversioned)", h, ok)
	}
	// An answer without a commit never rests on a hint: a GET through
	// node a of a key in another partition, whose hint is as outdated,
	// shows its null version as "null", for the bucket is versioned now.
	if h, ok := a.fences.get(ob.rec.ID, a.md.resolve(a.partition("bkt", other))); !ok || h.f.Versioning != Unversioned {
		t.Fatalf("node a's hint for %q = %+v, %v; the test needs an outdated one", other, h, ok)
	}
	if oi, _, err := a.GetObject(ctx, "bkt", other, GetOptions{HeadOnly: true}); err != nil || oi.VersionID != "null" {
		t.Errorf("GET %q through node a: version %q, %v; want \"null\" (versioning is enabled)", other, oi.VersionID, err)
	}
	conflicts := 0
	md.hook(func(_ meta.Partition, txn meta.Txn) error {
		for _, c := range txn.Conds {
			if c.Key[0] == fenceKey(ob.rec.ID)[0] && c.Rev == h.rev && commitsVersion(txn) {
				conflicts++
			}
		}
		return nil
	})
	oi, err := a.PutObject(ctx, "bkt", "k", strings.NewReader("new body, stored"), 16, PutOptions{})
	md.hook(nil)
	if err != nil {
		t.Fatal(err)
	}
	if conflicts != 1 {
		t.Errorf("%d commits conditional on the outdated fence, want 1 (the hint was not used)", conflicts)
	}
	if oi.VersionID == "" || oi.VersionID == "null" {
		t.Errorf("PUT through the outdated hint made version %q, want a new version", oi.VersionID)
	}
	if got, err := readAll(t, a, "bkt", "k", "null"); err != nil || got != precious {
		t.Errorf("null version: %q, %v; want the first body", got, err)
	}
	if h, _ := a.fences.get(ob.rec.ID, a.md.resolve(p)); h.f.Versioning != Enabled {
		t.Errorf("hint after the conflict = %+v, want versioning enabled", h.f)
	}
}
