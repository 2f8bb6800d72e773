package cluster

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/redoubt-io/redoubt/internal/admin"
	"github.com/redoubt-io/redoubt/internal/layout"
	"github.com/redoubt-io/redoubt/internal/meta"
)

// readStaged returns the staged edits and their record's revision.
func (c *Cluster) readStaged(ctx context.Context) ([]StageEdit, uint64, error) {
	it, err := c.store.Get(ctx, meta.System, []byte(stagedKey))
	if errors.Is(err, meta.ErrNotFound) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, err
	}
	e, err := decodeStaged(it.Value)
	return e, it.Rev, err
}

// stageIfAbsent stages e unless an edit of the same kind for the same node
// is staged already.
func (c *Cluster) stageIfAbsent(ctx context.Context, e StageEdit) error {
	edits, rev, err := c.readStaged(ctx)
	if err != nil {
		return err
	}
	if slices.ContainsFunc(edits, func(x StageEdit) bool { return x.Op == e.Op && x.Node == e.Node }) {
		return nil
	}
	return c.writeStaged(ctx, append(edits, e), rev)
}

func (c *Cluster) writeStaged(ctx context.Context, edits []StageEdit, rev uint64) error {
	txn := meta.Txn{Conds: []meta.Cond{{Key: []byte(stagedKey), Rev: rev}}}
	if len(edits) == 0 {
		txn.Deletes = [][]byte{[]byte(stagedKey)}
	} else {
		txn.Puts = []meta.KV{{Key: []byte(stagedKey), Value: encodeStaged(edits)}}
	}
	_, err := c.store.Commit(ctx, meta.System, txn)
	return err
}

// resolveNode turns an ID or a unique ID prefix into a known node's ID.
func (c *Cluster) resolveNode(ctx context.Context, id string) (NodeInfo, error) {
	nodes, err := c.readNodes(ctx)
	if err != nil {
		return NodeInfo{}, err
	}
	var match []NodeInfo
	for _, n := range nodes {
		if n.ID == id {
			return n, nil
		}
		if id != "" && strings.HasPrefix(n.ID, id) {
			match = append(match, n)
		}
	}
	switch len(match) {
	case 1:
		return match[0], nil
	case 0:
		return NodeInfo{}, fmt.Errorf("%w: no node %q has joined the cluster", ErrStage, id)
	}
	return NodeInfo{}, fmt.Errorf("%w: %q names %d nodes; give more of the ID", ErrStage, id, len(match))
}

// Stage adds one edit to the staged layout changes.
func (c *Cluster) Stage(ctx context.Context, e admin.LayoutEdit) (admin.LayoutView, error) {
	var se StageEdit
	if e.Op == "rebalance" {
		if e.Node != "" {
			return admin.LayoutView{}, fmt.Errorf("%w: rebalance names no node", ErrStage)
		}
		se.Op = e.Op
	} else {
		n, err := c.resolveNode(ctx, e.Node)
		if err != nil {
			return admin.LayoutView{}, err
		}
		se = StageEdit{Op: e.Op, Node: n.ID, Zone: e.Zone, Drive: e.Drive, Capacity: e.Capacity}
	}
	switch e.Op {
	case "add", "remove", "rebalance":
	case "zone":
		if e.Zone == "" {
			return admin.LayoutView{}, fmt.Errorf("%w: zone edit without a zone", ErrStage)
		}
	case "capacity":
		if e.Capacity == 0 {
			return admin.LayoutView{}, fmt.Errorf("%w: capacity edit without a capacity (remove the node instead)", ErrStage)
		}
	default:
		return admin.LayoutView{}, fmt.Errorf("%w: unknown edit %q: want add, remove, zone, capacity or rebalance", ErrStage, e.Op)
	}
	edits, rev, err := c.readStaged(ctx)
	if err != nil {
		return admin.LayoutView{}, err
	}
	if err := c.writeStaged(ctx, append(edits, se), rev); err != nil {
		return admin.LayoutView{}, err
	}
	return c.View(ctx)
}

// Revert drops the staged edits.
func (c *Cluster) Revert(ctx context.Context) error {
	_, rev, err := c.readStaged(ctx)
	if err != nil || rev == 0 {
		return err
	}
	return c.writeStaged(ctx, nil, rev)
}

// next computes the layout the staged edits lead to.
func (c *Cluster) next(ctx context.Context) (prev, next *layout.Layout, layoutRev, stagedRev uint64, err error) {
	prev, layoutRev, err = c.readLayout(ctx)
	if err != nil {
		return
	}
	if prev == nil {
		err = ErrNoLayout
		return
	}
	var edits []StageEdit
	edits, stagedRev, err = c.readStaged(ctx)
	if err != nil {
		return
	}
	if len(edits) == 0 {
		err = fmt.Errorf("%w: nothing is staged", ErrStage)
		return
	}
	next, err = c.computeNext(ctx, prev, edits)
	return
}

// computeNext is the layout prev becomes with edits applied.
func (c *Cluster) computeNext(ctx context.Context, prev *layout.Layout, edits []StageEdit) (*layout.Layout, error) {
	var st layout.Stage
	for _, e := range edits {
		switch e.Op {
		case "add":
			n, err := c.resolveNode(ctx, e.Node)
			if err != nil {
				return nil, err
			}
			ln := toLayoutNode(n)
			if e.Zone != "" {
				ln.Zone = e.Zone
			}
			if inLayout(prev, ln.ID) {
				continue
			}
			st.AddNode(ln)
		case "remove":
			st.RemoveNode(e.Node)
		case "zone":
			st.SetZone(e.Node, e.Zone)
		case "capacity":
			id := e.Node
			if e.Drive != "" {
				id = e.Drive
			}
			st.SetCapacity(id, e.Capacity)
		case "rebalance":
			// No edit of the nodes: Compute balances what it is given.
		}
	}
	nodes, err := st.Apply(prev.Nodes)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrStage, err)
	}
	next, err := layout.Compute(prev, nodes, c.layoutConfig(nodes, prev))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrStage, err)
	}
	return next, nil
}

// Preview shows what applying the staged edits would do.
func (c *Cluster) Preview(ctx context.Context) (admin.LayoutPreview, error) {
	prev, next, _, _, err := c.next(ctx)
	if err != nil {
		return admin.LayoutPreview{}, err
	}
	m := layout.Diff(prev, next, nil)
	edits, _, _ := c.readStaged(ctx)
	p := admin.LayoutPreview{From: view(prev, nil), To: view(next, edits), MovedSlots: m.Slots, TotalSlots: m.Total,
		Fraction: m.Fraction, PartitionsChanged: len(m.Parts), BytesToMove: int64(m.Bytes)}
	return p, nil
}

// Apply commits the staged edits as the next layout version. When
// wantVersion is not 0 the result must be that version.
func (c *Cluster) Apply(ctx context.Context, wantVersion uint64) (admin.LayoutView, error) {
	_, next, layoutRev, stagedRev, err := c.next(ctx)
	if err != nil {
		return admin.LayoutView{}, err
	}
	if wantVersion != 0 && next.Version != wantVersion {
		return admin.LayoutView{}, fmt.Errorf("%w: the result would be v%d, not v%d", ErrStage, next.Version, wantVersion)
	}
	b, err := next.MarshalBinary()
	if err != nil {
		return admin.LayoutView{}, err
	}
	_, err = c.store.Commit(ctx, meta.System, meta.Txn{
		Conds:   []meta.Cond{{Key: []byte(layoutKey), Rev: layoutRev}, {Key: []byte(stagedKey), Rev: stagedRev}},
		Puts:    []meta.KV{{Key: []byte(layoutKey), Value: b}},
		Deletes: [][]byte{[]byte(stagedKey)},
	})
	if errors.Is(err, meta.ErrConflict) {
		return admin.LayoutView{}, fmt.Errorf("%w: the layout or the staged edits changed meanwhile; preview again", ErrStage)
	}
	if err != nil {
		return admin.LayoutView{}, err
	}
	c.log.Info("layout applied", "version", next.Version, "nodes", len(next.Nodes))
	return view(next, nil), nil
}

// View is the current layout and the staged edits.
func (c *Cluster) View(ctx context.Context) (admin.LayoutView, error) {
	l, _, err := c.readLayout(ctx)
	if err != nil {
		return admin.LayoutView{}, err
	}
	if l == nil {
		return admin.LayoutView{}, ErrNoLayout
	}
	edits, _, err := c.readStaged(ctx)
	if err != nil {
		return admin.LayoutView{}, err
	}
	return view(l, edits), nil
}

func view(l *layout.Layout, edits []StageEdit) admin.LayoutView {
	v := admin.LayoutView{Version: l.Version, Policy: l.Policy.String(), Partitions: l.Partitions, MetaPartitions: l.Partitions << l.Depth,
		DataPartitions: l.DataPartitions()}
	for _, u := range l.Usage() {
		if u.Share > 0 {
			v.Fullest = max(v.Fullest, float64(u.Slots)/u.Share)
		}
	}
	slots := map[string]int{}
	for _, part := range l.Parts {
		for _, d := range part {
			slots[d]++
		}
	}
	for _, n := range l.Nodes {
		nv := admin.LayoutNodeView{ID: n.ID, Zone: n.Zone, Addr: n.Addr}
		for _, d := range n.Drives {
			nv.Drives = append(nv.Drives, admin.LayoutDriveView{ID: d.ID, Capacity: d.Capacity, Slots: slots[d.ID]})
			nv.Slots += slots[d.ID]
		}
		v.Nodes = append(v.Nodes, nv)
	}
	for _, e := range edits {
		v.Staged = append(v.Staged, admin.LayoutEdit{Op: e.Op, Node: e.Node, Zone: e.Zone, Drive: e.Drive, Capacity: e.Capacity})
	}
	return v
}
