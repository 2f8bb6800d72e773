package cluster

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redoubt-io/redoubt/internal/admin"
	"github.com/redoubt-io/redoubt/internal/meta"
	"github.com/redoubt-io/redoubt/internal/transport"
)

// dropRaft is a node's transport that, while drop is set, loses the Raft
// batches that reach the node: its replicas hear from no leader and stay
// empty.
type dropRaft struct {
	transport.Caller
	drop atomic.Bool
}

func (d *dropRaft) Handle(service string, h transport.Handler) {
	if service == svcRaft {
		inner := h
		h = func(ctx context.Context, from transport.NodeID, req []byte) ([]byte, error) {
			if d.drop.Load() {
				return nil, nil
			}
			return inner(ctx, from, req)
		}
	}
	d.Caller.Handle(service, h)
}

// redundancyNow is c's redundancy from answers asked for just now.
func redundancyNow(ctx context.Context, c *Cluster) (*admin.RedundancyStatus, admin.ClusterStatus) {
	c.usage.Lock()
	c.usage.m = nil
	c.usage.Unlock()
	st := c.Status(ctx)
	return c.Redundancy(st, nil), st
}

// A node that replaces another holds nothing until its replicas have
// caught up. Until then no node may count them: every group survives no
// more losses while its third voter is still empty. Before leaders
// reported their learners and snapshot followers, the new node counted
// the layout's voters and said the promise was kept at once.
func TestRedundancyCountsReplicasCatchingUp(t *testing.T) {
	tn := newTestNet(t, 3, 3)
	ctx := context.Background()
	for p := range 16 {
		eventually(t, 10*time.Second, "commit", func() error { return put(ctx, tn.nodes[0].Meta(), meta.Partition(p), "before", "x") })
	}
	eventually(t, 10*time.Second, "three nodes keep the promise", func() error {
		if r, _ := redundancyNow(ctx, tn.nodes[0]); r == nil || !r.Kept {
			return fmt.Errorf("redundancy %+v", r)
		}
		return nil
	})

	var cut *dropRaft
	// A node replaces node 2 in its zone.
	c4 := tn.addWith("zone-2", 3, func(cfg *Config) {
		cut = &dropRaft{Caller: cfg.Net}
		cut.drop.Store(true)
		cfg.Net = cut
	})
	eventually(t, 10*time.Second, "the new node is staged", func() error {
		view, err := tn.nodes[1].View(ctx)
		if err == nil && len(view.Staged) == 0 {
			err = errors.New("nothing staged")
		}
		return err
	})
	if _, err := tn.nodes[1].Stage(ctx, admin.LayoutEdit{Op: "remove", Node: tn.nodes[2].ID()}); err != nil {
		t.Fatal(err)
	}
	if _, err := tn.nodes[1].Apply(ctx, 2); err != nil {
		t.Fatal(err)
	}
	all := []*Cluster{tn.nodes[0], tn.nodes[1], c4}
	eventually(t, 20*time.Second, "every node sees the new node's replicas catching up", func() error {
		for _, c := range all {
			if l := c.Layout(); l == nil || l.Version != 2 {
				return fmt.Errorf("node %s not at v2", c.ID())
			}
			r, st := redundancyNow(ctx, c)
			var behind []string
			for _, n := range st.Nodes {
				if n.ID == c4.ID() {
					behind = n.CatchingUp
				}
			}
			switch {
			case len(behind) == 0:
				return fmt.Errorf("node %s: the new node catches up in no group", c.ID())
			case r.Metadata.NodeLosses != 0 || r.CatchingUp == 0 || r.Kept:
				return fmt.Errorf("node %s: redundancy %+v", c.ID(), r)
			case !slices.ContainsFunc(r.Reasons, func(s string) bool { return strings.Contains(s, "catching up") }):
				return fmt.Errorf("node %s: no reason names the replicas catching up: %q", c.ID(), r.Reasons)
			case !strings.Contains(r.Advice, "let the replicas catch up"):
				return fmt.Errorf("node %s: advice %q", c.ID(), r.Advice)
			}
		}
		return nil
	})

	cut.drop.Store(false)
	eventually(t, 30*time.Second, "once caught up, every node says the promise is kept", func() error {
		for _, c := range all {
			r, st := redundancyNow(ctx, c)
			for _, n := range st.Nodes {
				if len(n.CatchingUp) > 0 {
					return fmt.Errorf("node %s: %s still catching up in %v", c.ID(), n.ID, n.CatchingUp)
				}
			}
			if !r.Kept || r.CatchingUp != 0 {
				return fmt.Errorf("node %s: redundancy %+v", c.ID(), r)
			}
		}
		return nil
	})
}

func FuzzDecodeGroupsReport(f *testing.F) {
	f.Add(encodeGroupsReport([]catchUp{{P: 3, Node: 7}, {P: meta.System, Node: 9}}))
	f.Add(encodeGroupsReport(nil))
	f.Add([]byte(`{"format":1,"catching_up":[{"p":1,"node":0}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		list, err := decodeGroupsReport(b)
		if err != nil {
			return
		}
		again, err := decodeGroupsReport(encodeGroupsReport(list))
		if err != nil || !slices.Equal(again, list) {
			t.Fatalf("round trip: %v %v, want %v", again, err, list)
		}
	})
}

func TestDecodeGroupsReportRefusesBadAnswers(t *testing.T) {
	for _, b := range []string{`nonsense`, `{"format":2}`, `{"format":1,"catching_up":[{"p":1,"node":0}]}`} {
		if _, err := decodeGroupsReport([]byte(b)); !errors.Is(err, ErrBadRecord) {
			t.Errorf("%s: %v", b, err)
		}
	}
}

// A replica that two leaders report (one deposed) is named once, and a
// node's groups come in partition order.
func TestCatchingUpByNodeListsEachOnce(t *testing.T) {
	name := func(id uint64) string { return fmt.Sprintf("n%d", id) }
	got := catchingUpByNode([][]catchUp{
		{{P: 12, Node: 4}, {P: 2, Node: 4}, {P: meta.System, Node: 4}},
		{{P: 2, Node: 4}, {P: 3, Node: 5}},
		nil,
	}, name)
	want := map[string][]string{"n4": {"partition 2", "partition 12", "the System group"}, "n5": {"partition 3"}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("got %v, want %v", got, want)
	}
}
