package raftmeta

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/datadriven"
	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/redoubt-io/redoubt/internal/meta"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// TestInteraction runs the scripts of testdata/*.txt: a few hosts driven
// step by step, without Run, wall-clock ticks or a real network, and the
// exact state they reach. Rewrite the expected output with
// `go test -run TestInteraction -rewrite` and read the diff.
//
// Commands (nodes and groups are numbers; a link is FROM-TO):
//
//	hosts nodes=N groups=(P...) [snapshot-entries=K]
//	                                  start hosts 1..N, each an initial voter of the groups
//	campaign node=N group=P           N starts an election of P
//	propose node=N group=P key=K value=V
//	                                  N, which leads P, proposes a put (see results)
//	add-replica node=N group=P target=T [learner]
//	remove-replica node=N group=P target=T
//	                                  N, which leads P, proposes a membership change
//	split node=N group=P into=(A,B)   N, which leads P, proposes to split P into A and B
//	step node=N                       one cycle of N's event loop
//	tick node=(N...) [n=K]            K ticks of the nodes' loops (1)
//	deliver [from=N] [to=M]           delivers the messages queued on the matching
//	                                  open links, once; what they cause is queued
//	stabilize                         cycles and deliveries until nothing is left to do
//	drop links=(N-M...)               the links lose their queued and future messages
//	stall links=(N-M...)              the links hold their messages
//	heal [links=(N-M...)]             the links (all) deliver again
//	crash node=N [before-sync]        N loses power now, or in its next cycle between
//	                                  its unsynced batches and the sync; it keeps
//	                                  what it had synced and is down until restarted
//	restart node=N                    N starts again from what it kept
//	compact node=N group=P [to=I]     N discards P's log up to I (its applied index)
//	read node=N group=P key=K         a linearizable read of K through N, answered at
//	                                  once if N can answer it without the loop's help
//	                                  (else "no answer": it needs a quorum round)
//	check-replica node=N group=P      N asks P's leader whether its replica is still
//	                                  a member, and has it deleted if not
//	state [node=(N...)] [group=P]     the durable state of each node's replica of P
//	results                           the outcome of every proposal
func TestInteraction(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "*.txt"))
	if err != nil {
		t.Fatal(err)
	}
	for _, file := range files {
		t.Run(strings.TrimSuffix(filepath.Base(file), ".txt"), func(t *testing.T) {
			e := newInteractionEnv(t)
			defer e.close()
			datadriven.RunTest(t, file, func(t *testing.T, d *datadriven.TestData) string {
				return e.handle(t, d)
			})
		})
	}
}

// interactionEnv is the world of a script: its hosts and the messages in
// flight between them.
type interactionEnv struct {
	t     *testing.T
	cfg   Config
	nodes map[uint64]*envNode
	ids   []uint64
	parts []meta.Partition

	mu    sync.Mutex
	queue []envBatch              // in the order sent
	links map[[2]uint64]linkState // absent: open

	props []*envProp
}

type linkState int

const (
	linkOpen linkState = iota
	linkStalled
	linkDropped
)

type envBatch struct {
	from, to uint64
	batch    []byte
}

type envNode struct {
	id   uint64
	fs   *vfs.MemFS
	h    *Host
	down bool // crashed: it neither sends nor receives
	// kept is what a crash left of fs, to restart from.
	kept *vfs.MemFS
}

type envProp struct {
	desc string
	ch   chan result
	res  *result
}

func newInteractionEnv(t *testing.T) *interactionEnv {
	return &interactionEnv{t: t, nodes: map[uint64]*envNode{}, links: map[[2]uint64]linkState{}}
}

func (e *interactionEnv) close() {
	for _, n := range e.nodes {
		if n.h != nil {
			_ = n.h.Close()
		}
	}
}

type envSender struct {
	e    *interactionEnv
	from uint64
}

func (s envSender) Send(to uint64, batch []byte) {
	s.e.mu.Lock()
	defer s.e.mu.Unlock()
	if n := s.e.nodes[s.from]; n == nil || n.down {
		return // a crashed node sends nothing more
	}
	if s.e.links[[2]uint64{s.from, to}] == linkDropped {
		return
	}
	s.e.queue = append(s.e.queue, envBatch{s.from, to, batch})
}

type envForwarder struct {
	e    *interactionEnv
	from uint64
}

// Forward serves the request at once, on the caller's goroutine, over an
// open link; the script's stabilize runs the loops that serve it.
func (f envForwarder) Forward(ctx context.Context, to uint64, req []byte) ([]byte, error) {
	f.e.mu.Lock()
	n := f.e.nodes[to]
	open := n != nil && !n.down && f.e.links[[2]uint64{f.from, to}] == linkOpen && f.e.links[[2]uint64{to, f.from}] == linkOpen
	var h *Host
	if open {
		h = n.h
	}
	f.e.mu.Unlock()
	if h == nil {
		return nil, fmt.Errorf("node %d unreachable: %w", to, ErrNotDelivered)
	}
	return h.HandleForward(ctx, req)
}

func (e *interactionEnv) config(id uint64, fs vfs.FS) Config {
	cfg := e.cfg
	cfg.NodeID = id
	cfg.Dir = "/raft"
	cfg.FS = fs
	cfg.Send = envSender{e, id}
	cfg.Forward = envForwarder{e, id}
	cfg.Logger = testLogger(e.t).With("node", id)
	return cfg
}

func (e *interactionEnv) start(n *envNode) {
	e.t.Helper()
	h, err := New(e.config(n.id, n.fs))
	if err != nil {
		e.t.Fatalf("node %d: %v", n.id, err)
	}
	// Snapshots stream in the cycle that sends them, so that a script
	// runs the same every time.
	h.goStream = func(fn func()) { fn() }
	n.h, n.down = h, false
}

func (e *interactionEnv) handle(t *testing.T, d *datadriven.TestData) string {
	e.t = t
	var out strings.Builder
	var err error
	switch d.Cmd {
	case "hosts":
		err = e.cmdHosts(t, d)
	case "campaign":
		g := e.group(t, d)
		g.mu.Lock()
		err = g.rn.Campaign()
		g.mu.Unlock()
		g.h.markDirty(g)
	case "propose":
		err = e.cmdPropose(t, d)
	case "add-replica", "remove-replica":
		err = e.cmdConf(t, d)
	case "split":
		err = e.cmdSplit(t, d)
	case "step":
		for _, n := range e.nodeArgs(t, d) {
			if err = e.stepNode(n); err != nil {
				break
			}
		}
	case "tick":
		k := 1
		d.MaybeScanArgs(t, "n", &k)
		for _, n := range e.nodeArgs(t, d) {
			for range k {
				n.h.tick()
				if err = e.stepNode(n); err != nil {
					break
				}
			}
		}
	case "deliver":
		var from, to uint64
		d.MaybeScanArgs(t, "from", &from)
		d.MaybeScanArgs(t, "to", &to)
		fmt.Fprintf(&out, "%d batches delivered\n", e.deliver(from, to))
	case "stabilize":
		err = e.stabilize(nil)
	case "drop", "stall", "heal":
		e.cmdLinks(t, d)
	case "crash":
		n := e.node(t, d)
		if d.HasArg("before-sync") {
			n.h.beforeSync = func() { e.crash(n) }
		} else {
			e.crash(n)
		}
	case "restart":
		n := e.node(t, d)
		if !n.down {
			t.Fatalf("node %d is not down", n.id)
		}
		_ = n.h.Close()
		n.fs, n.kept = n.kept, nil
		e.start(n)
	case "compact":
		err = e.cmdCompact(t, d)
	case "read":
		e.cmdRead(t, d, &out)
	case "check-replica":
		if err = e.cmdCheckReplica(t, d); errors.Is(err, meta.ErrUnavailable) {
			// Which member it tried last depends on the wall clock.
			err = errors.New("unavailable: no leader answered")
		}
	case "state":
		e.printState(t, d, &out)
	case "results":
		e.printResults(&out)
	default:
		t.Fatalf("unknown command %q", d.Cmd)
	}
	if err != nil {
		fmt.Fprintf(&out, "error: %v\n", err)
	}
	if out.Len() == 0 {
		return "ok\n"
	}
	return out.String()
}

func (e *interactionEnv) cmdHosts(t *testing.T, d *datadriven.TestData) error {
	var n int
	d.ScanArgs(t, "nodes", &n)
	if arg, ok := d.Arg("groups"); ok {
		for i := range arg.Vals {
			var p uint32
			arg.Scan(t, i, &p)
			e.parts = append(e.parts, meta.Partition(p))
		}
	}
	e.cfg = DefaultConfig()
	e.cfg.SnapshotEntries = 1000
	// Only waits on the wall clock use these (a check that finds no
	// leader); ticks come from the script.
	e.cfg.TickInterval = 5 * time.Millisecond
	e.cfg.ProposalTimeout = 100 * time.Millisecond
	d.MaybeScanArgs(t, "snapshot-entries", &e.cfg.SnapshotEntries)
	for i := range n {
		id := uint64(i + 1)
		e.ids = append(e.ids, id)
		nd := &envNode{id: id, fs: vfs.NewCrashableMem()}
		e.nodes[id] = nd
		e.start(nd)
		for _, p := range e.parts {
			voters := make([]uint64, n)
			for j := range voters {
				voters[j] = uint64(j + 1)
			}
			if err := nd.h.EnsureGroup(p, voters); err != nil {
				return err
			}
		}
	}
	return nil
}

func (e *interactionEnv) cmdPropose(t *testing.T, d *datadriven.TestData) error {
	var key, value string
	d.ScanArgs(t, "key", &key)
	d.ScanArgs(t, "value", &value)
	g := e.group(t, d)
	return e.propose(g, proposal{txn: meta.Txn{Puts: []meta.KV{{Key: []byte(key), Value: []byte(value)}}}},
		fmt.Sprintf("%s=%s via %d", key, value, g.h.cfg.NodeID))
}

// propose has g, whose host leads it, propose prop (given an ID of the
// host's), described in results by desc.
func (e *interactionEnv) propose(g *group, prop proposal, desc string) error {
	h := g.h
	prop.node, prop.id = h.cfg.NodeID, h.newID()
	data := encodeProposal(&prop)
	ch := h.register(prop.id)
	g.mu.Lock()
	err := g.rn.Propose(data)
	g.mu.Unlock()
	if err != nil {
		h.unregister(prop.id)
		return err
	}
	h.markDirty(g)
	e.props = append(e.props, &envProp{desc: desc, ch: ch})
	return nil
}

// cmdRead reads a key through a node, giving it a little wall-clock time
// to answer on its own: the loops do not run meanwhile, so a read that
// needs a quorum round (a read index) is not answered, and only a host
// that serves reads from its own state without one answers.
func (e *interactionEnv) cmdRead(t *testing.T, d *datadriven.TestData, out *strings.Builder) {
	var key string
	d.ScanArgs(t, "key", &key)
	g := e.group(t, d)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	it, err := g.h.Get(ctx, g.p, []byte(key))
	switch {
	case errors.Is(err, meta.ErrNotFound):
		fmt.Fprintf(out, "%s not found\n", key)
	case err != nil:
		fmt.Fprintf(out, "no answer\n")
	default:
		fmt.Fprintf(out, "%s=%s at %d\n", key, it.Value, it.Rev)
	}
}

func (e *interactionEnv) cmdConf(t *testing.T, d *datadriven.TestData) error {
	var target uint64
	d.ScanArgs(t, "target", &target)
	g := e.group(t, d)
	h := g.h
	change := raftpb.ConfChangeType_ConfChangeRemoveNode
	if d.Cmd == "add-replica" {
		change = raftpb.ConfChangeType_ConfChangeAddNode
		if d.HasArg("learner") {
			change = raftpb.ConfChangeType_ConfChangeAddLearnerNode
		}
	}
	id := h.newID()
	ch := h.register(id)
	g.mu.Lock()
	cc, err := h.confChange(g, change, target, id)
	if err == nil {
		err = g.rn.ProposeConfChange(cc)
	}
	g.mu.Unlock()
	if err != nil {
		h.unregister(id)
		return err
	}
	h.markDirty(g)
	e.props = append(e.props, &envProp{desc: fmt.Sprintf("%s %d via %d", d.Cmd, target, h.cfg.NodeID), ch: ch})
	return nil
}

func (e *interactionEnv) cmdSplit(t *testing.T, d *datadriven.TestData) error {
	var a, b uint32
	d.ScanArgs(t, "into", &a, &b)
	g := e.group(t, d)
	into := [2]meta.Partition{meta.Partition(a), meta.Partition(b)}
	return e.propose(g, proposal{split: &into}, fmt.Sprintf("split into %d,%d via %d", a, b, g.h.cfg.NodeID))
}

func (e *interactionEnv) cmdCompact(t *testing.T, d *datadriven.TestData) error {
	g := e.group(t, d)
	to := g.applied.Load()
	d.MaybeScanArgs(t, "to", &to)
	return g.h.compact(g, to)
}

func (e *interactionEnv) cmdCheckReplica(t *testing.T, d *datadriven.TestData) error {
	n := e.node(t, d)
	var p uint32
	d.ScanArgs(t, "group", &p)
	done := make(chan error, 1)
	go func() { done <- n.h.checkReplica(context.Background(), meta.Partition(p)) }()
	return e.stabilize(done)
}

func (e *interactionEnv) cmdLinks(t *testing.T, d *datadriven.TestData) {
	e.mu.Lock()
	defer e.mu.Unlock()
	arg, ok := d.Arg("links")
	if !ok {
		if d.Cmd != "heal" {
			t.Fatalf("%s: links are required", d.Cmd)
		}
		clear(e.links)
		return
	}
	state := map[string]linkState{"drop": linkDropped, "stall": linkStalled, "heal": linkOpen}[d.Cmd]
	for _, v := range arg.Vals {
		a, b, ok := strings.Cut(v, "-")
		from, err1 := strconv.ParseUint(a, 10, 64)
		to, err2 := strconv.ParseUint(b, 10, 64)
		if !ok || err1 != nil || err2 != nil {
			t.Fatalf("bad link %q", v)
		}
		e.links[[2]uint64{from, to}] = state
	}
	if d.Cmd == "drop" {
		e.queue = slices.DeleteFunc(e.queue, func(b envBatch) bool { return e.links[[2]uint64{b.from, b.to}] == linkDropped })
	}
}

// crash takes what n's file system holds synced as what n restarts from,
// and takes n down: the rest of what it does is lost.
func (e *interactionEnv) crash(n *envNode) {
	e.mu.Lock()
	defer e.mu.Unlock()
	n.kept = n.fs.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: 0})
	n.down = true
	n.h.beforeSync = nil
	e.queue = slices.DeleteFunc(e.queue, func(b envBatch) bool { return b.to == n.id })
}

func (e *interactionEnv) stepNode(n *envNode) error {
	if n.down {
		return nil
	}
	if err := n.h.step(); err != nil {
		return fmt.Errorf("node %d: %w", n.id, err)
	}
	return nil
}

// deliver hands the batches queued on open links (matching from and to
// where not 0) to their hosts, once, and returns how many.
func (e *interactionEnv) deliver(from, to uint64) int {
	e.mu.Lock()
	var now []envBatch
	e.queue = slices.DeleteFunc(e.queue, func(b envBatch) bool {
		if (from != 0 && b.from != from) || (to != 0 && b.to != to) {
			return false
		}
		switch e.links[[2]uint64{b.from, b.to}] {
		case linkStalled:
			return false
		case linkDropped:
			return true
		}
		if n := e.nodes[b.to]; n == nil || n.down {
			return true
		}
		now = append(now, b)
		return true
	})
	e.mu.Unlock()
	for _, b := range now {
		if err := e.nodes[b.to].h.Step(context.Background(), b.from, b.batch); err != nil {
			e.t.Errorf("node %d: step from %d: %v", b.to, b.from, err)
		}
	}
	return len(now)
}

// stabilize runs cycles and deliveries until no host has work and no
// message can be delivered, and, with done set, until it is closed: a
// goroutine of the test waits for what the hosts do.
func (e *interactionEnv) stabilize(done chan error) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		busy := false
		for _, id := range e.ids {
			n := e.nodes[id]
			for !n.down && n.h.pending() {
				busy = true
				if err := e.stepNode(n); err != nil {
					return err
				}
			}
		}
		if e.deliver(0, 0) > 0 {
			busy = true
		}
		if busy {
			continue
		}
		if done == nil {
			return nil
		}
		// Quiet, but the goroutine may yet give a host work: poll.
		select {
		case err := <-done:
			done = nil
			if err != nil {
				return err
			}
		case <-time.After(time.Millisecond):
			if time.Now().After(deadline) {
				return errors.New("the hosts stayed idle while the request waited")
			}
		}
	}
}

func (e *interactionEnv) node(t *testing.T, d *datadriven.TestData) *envNode {
	t.Helper()
	var id uint64
	d.ScanArgs(t, "node", &id)
	n := e.nodes[id]
	if n == nil {
		t.Fatalf("no node %d", id)
	}
	return n
}

func (e *interactionEnv) nodeArgs(t *testing.T, d *datadriven.TestData) []*envNode {
	t.Helper()
	arg, ok := d.Arg("node")
	if !ok {
		var all []*envNode
		for _, id := range e.ids {
			all = append(all, e.nodes[id])
		}
		return all
	}
	var out []*envNode
	for i := range arg.Vals {
		var id uint64
		arg.Scan(t, i, &id)
		if e.nodes[id] == nil {
			t.Fatalf("no node %d", id)
		}
		out = append(out, e.nodes[id])
	}
	return out
}

func (e *interactionEnv) group(t *testing.T, d *datadriven.TestData) *group {
	t.Helper()
	n := e.node(t, d)
	var p uint32
	d.ScanArgs(t, "group", &p)
	g := n.h.replica(meta.Partition(p))
	if g == nil {
		t.Fatalf("node %d has no replica of group %d", n.id, p)
	}
	return g
}

func (e *interactionEnv) printResults(out *strings.Builder) {
	for i, p := range e.props {
		if p.res == nil {
			select {
			case r := <-p.ch:
				p.res = &r
			default:
			}
		}
		switch {
		case p.res == nil:
			fmt.Fprintf(out, "%d %s: pending\n", i+1, p.desc)
		case p.res.err != nil:
			fmt.Fprintf(out, "%d %s: %v\n", i+1, p.desc, p.res.err)
		default:
			fmt.Fprintf(out, "%d %s: applied at %d\n", i+1, p.desc, p.res.rev)
		}
	}
}

// printState prints what each node holds durably of a group (or of every
// group of the script), read from its database.
func (e *interactionEnv) printState(t *testing.T, d *datadriven.TestData, out *strings.Builder) {
	parts := e.parts
	if d.HasArg("group") {
		var p uint32
		d.ScanArgs(t, "group", &p)
		parts = []meta.Partition{meta.Partition(p)}
	}
	for _, n := range e.nodeArgs(t, d) {
		for _, p := range parts {
			fmt.Fprintf(out, "n%d g%d: %s\n", n.id, p, e.replicaState(n, p))
		}
	}
}

func (e *interactionEnv) replicaState(n *envNode, p meta.Partition) string {
	if n.down {
		return "down"
	}
	s, err := describeReplica(n.h, p)
	if err != nil {
		return "error: " + err.Error()
	}
	return s
}

// describeReplica is one line on h's copy of group p, from its database,
// and its items.
func describeReplica(h *Host, p meta.Partition) (string, error) {
	var b strings.Builder
	get := func(k []byte) ([]byte, error) {
		v, closer, err := h.db.Get(k)
		if errors.Is(err, pebble.ErrNotFound) {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		defer closer.Close()
		return bytes.Clone(v), nil
	}
	rec, err := get(groupRecordKey(p))
	if err != nil {
		return "", err
	}
	if rec == nil {
		b.WriteString("no replica")
	} else {
		r, err := decodeGroupRecord(rec, h.cfg.NodeID)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(&b, "replica %d gen %d", r.id, r.gen)
		hs := &raftpb.HardState{}
		if v, err := get(groupKey(p, kindHard)); err != nil {
			return "", err
		} else if v != nil {
			if err := proto.Unmarshal(v, hs); err != nil {
				return "", err
			}
		}
		fmt.Fprintf(&b, " term %d vote %d commit %d", hs.GetTerm(), hs.GetVote(), hs.GetCommit())
		av, err := get(groupKey(p, kindApply))
		if err != nil {
			return "", err
		}
		applied, cs, err := decodeApplyState(av)
		if err != nil {
			return "", err
		}
		bv, err := get(groupKey(p, kindBase))
		if err != nil {
			return "", err
		}
		base, _, err := decodeBase(bv)
		if err != nil {
			return "", err
		}
		last := base
		it, err := h.db.NewIter(&pebble.IterOptions{LowerBound: logKey(p, 0), UpperBound: logKey(p, 1<<64-1)})
		if err != nil {
			return "", err
		}
		if it.Last() {
			last = binary64(it.Key()[len(it.Key())-8:])
		}
		if err := it.Close(); err != nil {
			return "", err
		}
		fmt.Fprintf(&b, " applied %d log (%d,%d] voters %v learners %v", applied, base, last, cs.GetVoters(), cs.GetLearners())
	}
	if v, err := get(tombstoneKey(p)); err != nil {
		return "", err
	} else if v != nil {
		gen, err := decodeTombstone(v)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(&b, " tombstone %d", gen)
	}
	if v, err := get(splitKey(p)); err != nil {
		return "", err
	} else if v != nil {
		rec, err := decodeSplitRec(v)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(&b, " split into %d,%d at %d", rec.into[0], rec.into[1], rec.index)
	}
	var items []string
	err = h.scanLocal(p, nil, nil, func(k []byte, it meta.Item) bool {
		items = append(items, fmt.Sprintf("%s=%s@%d", k, it.Value, it.Rev))
		return true
	})
	if err != nil {
		return "", err
	}
	if len(items) > 0 {
		fmt.Fprintf(&b, "\n  items %s", strings.Join(items, " "))
	}
	h.streams.mu.Lock()
	for _, in := range h.streams.in {
		if in.p == p && in.done {
			fmt.Fprintf(&b, "\n  staged: a snapshot of %d items from node %d", in.items, in.node)
		}
	}
	h.streams.mu.Unlock()
	return b.String(), nil
}

func binary64(b []byte) uint64 {
	var v uint64
	for _, c := range b {
		v = v<<8 | uint64(c)
	}
	return v
}
