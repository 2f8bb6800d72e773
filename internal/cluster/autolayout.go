package cluster

import (
	"context"
	"sync"
	"time"

	"github.com/redoubt-io/redoubt/internal/membership"
	"github.com/redoubt-io/redoubt/internal/meta"
)

// deathWatch is what the System leader knows of nodes that gossip reports
// dead: since when, and which ones it took out of the layout itself.
type deathWatch struct {
	mu      sync.Mutex
	since   map[string]time.Time
	removed map[string]bool
	warned  map[string]bool // a change that cannot be made, logged once
}

// autoLayout runs on the System leader. A node of the layout that gossip
// has reported dead for Config.RepairAfter is taken out of the layout, so
// that every Raft group it was in gets a full set of voters again and new
// data goes to live nodes; a node this leader took out that is alive again
// is put back. One change per call, so the groups move step by step.
func (c *Cluster) autoLayout(ctx context.Context) {
	gossip := c.members()
	if c.cfg.RepairAfter <= 0 || gossip == nil {
		return
	}
	l, rev, err := c.readLayout(ctx)
	if err != nil || l == nil {
		return
	}
	states := map[string]membership.State{}
	for _, m := range gossip.List() {
		states[m.ID] = m.State
	}
	now := time.Now()
	d := &c.deaths
	d.mu.Lock()
	if d.since == nil {
		d.since, d.removed, d.warned = map[string]time.Time{}, map[string]bool{}, map[string]bool{}
	}
	var remove, readd string
	for _, n := range l.Nodes {
		// Only gossip's word that a node is dead or gone counts: a node it
		// does not list (this leader just started) is not suspected.
		st, known := states[n.ID]
		if n.ID == c.ID() || !known || st == membership.Alive || st == membership.Suspect {
			delete(d.since, n.ID)
			continue
		}
		if _, ok := d.since[n.ID]; !ok {
			d.since[n.ID] = now
		}
		if remove == "" && now.Sub(d.since[n.ID]) >= c.cfg.RepairAfter {
			remove = n.ID
		}
	}
	for id := range d.removed {
		if states[id] == membership.Alive && !inLayout(l, id) {
			readd = id
			break
		}
	}
	d.mu.Unlock()

	if remove != "" && c.answers(ctx, remove) {
		// Gossip is wrong or late: the node answers calls.
		d.mu.Lock()
		delete(d.since, remove)
		d.mu.Unlock()
		remove = ""
	}
	var edit StageEdit
	switch {
	case remove != "":
		edit = StageEdit{Op: "remove", Node: remove}
	case readd != "":
		edit = StageEdit{Op: "add", Node: readd}
	default:
		return
	}
	next, err := c.computeNext(ctx, l, []StageEdit{edit})
	if err != nil {
		d.mu.Lock()
		if !d.warned[edit.Node] {
			c.log.Warn("cannot change the layout around a node", "op", edit.Op, "node", edit.Node, "err", err)
			d.warned[edit.Node] = true
		}
		d.mu.Unlock()
		return
	}
	b, err := next.MarshalBinary()
	if err != nil {
		return
	}
	_, err = c.store.Commit(ctx, meta.System, meta.Txn{
		Conds: []meta.Cond{{Key: []byte(layoutKey), Rev: rev}},
		Puts:  []meta.KV{{Key: []byte(layoutKey), Value: b}},
	})
	if err != nil {
		c.log.Warn("layout change around a node not committed", "op", edit.Op, "node", edit.Node, "err", err)
		return
	}
	d.mu.Lock()
	if edit.Op == "remove" {
		d.removed[edit.Node] = true
		delete(d.since, edit.Node)
		c.log.Warn("node dead longer than the repair grace period: layout changed to route around it",
			"node", edit.Node, "after", c.cfg.RepairAfter, "version", next.Version)
	} else {
		delete(d.removed, edit.Node)
		c.log.Info("node back: layout changed to include it again", "node", edit.Node, "version", next.Version)
	}
	d.mu.Unlock()
}

// answers reports whether node takes a connection now.
func (c *Cluster) answers(ctx context.Context, node string) bool {
	p, ok := c.book.byNode(node)
	if !ok {
		return false
	}
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	id, err := c.net.Hello(ctx, p.Addr)
	return err == nil && string(id) == node
}
