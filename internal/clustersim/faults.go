package clustersim

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	"github.com/redoubt-io/redoubt/internal/admin"
	"github.com/redoubt-io/redoubt/internal/blocks"
	"github.com/redoubt-io/redoubt/internal/meta"
	"github.com/redoubt-io/redoubt/internal/objects"
)

// faulter injects the run's faults while the workload runs. Each kind is
// an actor with its own random source, so that what it does depends on
// the seed alone.
type faulter struct {
	s     *Sim
	nodes []*node
	ctx   context.Context
	stopc chan struct{}
	wg    sync.WaitGroup

	mu sync.Mutex
	// down counts nodes crashed and not yet up again.
	down int
	// zonesLost counts the zone losses (Faults.ZoneLoss).
	zonesLost int
	// lastErr is each node's last failed restart, for the report.
	lastErr map[string]error
	// starting tracks restarts under way.
	starting sync.WaitGroup
}

func newFaulter(s *Sim, nodes []*node) *faulter {
	return &faulter{s: s, nodes: nodes, stopc: make(chan struct{})}
}

func (f *faulter) rng(kind string) *rand.Rand {
	return rand.New(rand.NewPCG(f.s.cfg.Seed, hashString(f.s.cfg.Seed, kind)))
}

func (f *faulter) stopped() bool {
	select {
	case <-f.stopc:
		return true
	default:
		return false
	}
}

// loop runs fn as an actor until the faults stop or done closes.
func (f *faulter) loop(ctx context.Context, name string, done chan struct{}, fn func(ctx context.Context, r *rand.Rand, i int)) {
	f.wg.Add(1)
	f.s.spawn(func() {
		defer f.wg.Done()
		ctx := withActor(ctx, name)
		r := f.rng(name)
		for i := 0; !f.stopped() && !closed(done) && ctx.Err() == nil; i++ {
			fn(ctx, r, i)
		}
	})
}

func (f *faulter) start(ctx context.Context, done chan struct{}) {
	f.ctx = ctx
	fl := f.s.cfg.Faults
	if fl.ClockSkew {
		r := f.rng("skew")
		for _, n := range f.nodes {
			n.setSkew(time.Duration(r.IntN(6000)-3000) * time.Millisecond)
		}
		f.loop(ctx, "fault-clock", done, func(ctx context.Context, r *rand.Rand, i int) {
			f.s.sleep(time.Duration(1+r.IntN(5))*time.Second, fmt.Sprintf("clock jump %d", i))
			n := f.nodes[r.IntN(len(f.nodes))]
			n.setSkew(time.Duration(r.IntN(20000)-10000) * time.Millisecond) // back or forth, up to 10 s
		})
	}
	if fl.Crashes {
		f.loop(ctx, "fault-crash", done, func(ctx context.Context, r *rand.Rand, i int) {
			f.s.sleep(time.Duration(500+r.IntN(3000))*time.Millisecond, fmt.Sprintf("crash wait %d", i))
			n := f.nodes[r.IntN(len(f.nodes))]
			f.mu.Lock()
			// Keep a majority up, so that the workload makes progress.
			ok := n.current() != nil && f.down < (len(f.nodes)-1)/2
			if ok {
				f.down++
			}
			f.mu.Unlock()
			if !ok {
				return
			}
			n.crash(r)
			f.s.sleep(time.Duration(200+r.IntN(3000))*time.Millisecond, fmt.Sprintf("down %d", i))
			f.restart(n)
		})
	}
	if fl.ZoneLoss {
		f.loop(ctx, "fault-zone", done, func(ctx context.Context, r *rand.Rand, i int) {
			f.s.sleep(time.Duration(300+r.IntN(1000))*time.Millisecond, fmt.Sprintf("zone wait %d", i))
			zone := fmt.Sprintf("zone-%c", 'a'+r.IntN(max(1, f.s.cfg.Zones)))
			var lost []*node
			f.mu.Lock()
			if f.down == 0 { // one zone at a time
				for _, n := range f.nodes {
					if n.zone == zone && n.current() != nil {
						lost = append(lost, n)
					}
				}
				f.down += len(lost)
				if len(lost) > 0 {
					f.zonesLost++
				}
			}
			f.mu.Unlock()
			for _, n := range lost {
				n.crash(r)
			}
			if len(lost) == 0 {
				return
			}
			f.s.sleep(time.Duration(1000+r.IntN(3000))*time.Millisecond, fmt.Sprintf("zone %s down %d", zone, i))
			for _, n := range lost {
				f.restart(n)
			}
		})
	}
	if fl.Partitions {
		f.loop(ctx, "fault-partition", done, func(ctx context.Context, r *rand.Rand, i int) {
			f.s.sleep(time.Duration(1000+r.IntN(4000))*time.Millisecond, fmt.Sprintf("partition wait %d", i))
			f.partition(r)
			f.s.sleep(time.Duration(200+r.IntN(4000))*time.Millisecond, fmt.Sprintf("partition %d", i))
			f.s.net.heal()
		})
	}
	if fl.Disks {
		f.loop(ctx, "fault-disk", done, func(ctx context.Context, r *rand.Rand, i int) {
			f.s.sleep(time.Duration(500+r.IntN(3000))*time.Millisecond, fmt.Sprintf("disk wait %d", i))
			n := f.nodes[r.IntN(len(f.nodes))]
			dir := n.dirs()[r.IntN(drivesPerNode)]
			heal := n.diskFault(r, dir)
			f.s.sleep(time.Duration(200+r.IntN(3000))*time.Millisecond, fmt.Sprintf("disk fault %d", i))
			heal()
		})
	}
	if fl.Layout {
		f.loop(ctx, "fault-layout", done, func(ctx context.Context, r *rand.Rand, i int) {
			f.s.sleep(time.Duration(2000+r.IntN(4000))*time.Millisecond, fmt.Sprintf("layout wait %d", i))
			f.changeLayout(ctx, r)
		})
	}
	if fl.Splits {
		f.loop(ctx, "fault-split", done, func(ctx context.Context, r *rand.Rand, i int) {
			if i >= 2 {
				f.s.sleep(10*time.Second, fmt.Sprintf("split idle %d", i))
				return
			}
			f.s.sleep(time.Duration(1000+r.IntN(3000))*time.Millisecond, fmt.Sprintf("split wait %d", i))
			f.split(ctx, r)
		})
	}
	if fl.Background || fl.Layout {
		for _, n := range f.nodes {
			f.loop(ctx, fmt.Sprintf("relocate-%s", n.id), done, func(ctx context.Context, r *rand.Rand, i int) {
				f.s.sleep(time.Duration(1000+r.IntN(3000))*time.Millisecond, fmt.Sprintf("relocate %s %d", n.id, i))
				if inc := n.current(); inc != nil {
					octx, cancel := context.WithTimeout(ctx, time.Minute)
					inc.relocate(octx)
					cancel()
				}
			})
		}
	}
	if fl.Background {
		for _, n := range f.nodes {
			f.loop(ctx, fmt.Sprintf("gc-%s", n.id), done, func(ctx context.Context, r *rand.Rand, i int) {
				f.s.sleep(time.Duration(1000+r.IntN(4000))*time.Millisecond, fmt.Sprintf("gc %s %d", n.id, i))
				if inc := n.current(); inc != nil {
					octx, cancel := context.WithTimeout(ctx, time.Minute)
					_, _ = inc.collect(octx)
					cancel()
				}
			})
		}
	}
}

// partition cuts the network: a minority from the rest, or one link one
// way.
func (f *faulter) partition(r *rand.Rand) {
	ids := make([]int, len(f.nodes))
	for i := range ids {
		ids[i] = i
	}
	r.Shuffle(len(ids), func(i, j int) { ids[i], ids[j] = ids[j], ids[i] })
	if r.IntN(3) == 0 {
		a, b := f.nodes[ids[0]].id, f.nodes[ids[1]].id
		f.s.net.setCut(a, b, true)
		return
	}
	k := 1 + r.IntN(max(1, (len(ids)-1)/2))
	for _, i := range ids[:k] {
		for _, j := range ids[k:] {
			f.s.net.setCut(f.nodes[i].id, f.nodes[j].id, true)
			f.s.net.setCut(f.nodes[j].id, f.nodes[i].id, true)
		}
	}
}

// restart starts a crashed node again, on what its disks kept.
func (f *faulter) restart(n *node) {
	var join []string
	for _, o := range f.nodes {
		if o != n {
			join = append(join, "sim://"+string(o.id))
		}
	}
	f.starting.Add(1)
	f.s.spawn(func() {
		defer f.starting.Done()
		for attempt := 0; ; attempt++ {
			ctx, cancel := context.WithTimeout(f.ctx, 2*time.Minute)
			_, err := n.start(ctx, join)
			cancel()
			if err == nil || f.ctx.Err() != nil {
				break
			}
			f.s.log.Warn("restart failed; trying again", "node", n.id, "err", err)
			f.mu.Lock()
			if f.lastErr == nil {
				f.lastErr = map[string]error{}
			}
			f.lastErr[string(n.id)] = err
			f.mu.Unlock()
			n.crash(rand.New(rand.NewPCG(uint64(attempt), 0)))
			f.s.sleep(time.Second, fmt.Sprintf("restart %s %d", n.id, attempt))
		}
		f.mu.Lock()
		f.down--
		f.mu.Unlock()
	})
}

// stop ends fault injection; the network may still be cut and nodes down.
func (f *faulter) stop() {
	close(f.stopc)
}

// restartAll brings every node up; the channel closes when all are.
func (f *faulter) restartAll(ctx context.Context) chan struct{} {
	done := make(chan struct{})
	f.s.spawn(func() {
		defer close(done)
		f.wg.Wait()
		f.starting.Wait()
		for _, n := range f.nodes {
			if n.current() == nil {
				f.mu.Lock()
				f.down++
				f.mu.Unlock()
				f.restart(n)
			}
		}
		f.starting.Wait()
	})
	return done
}

func (n *node) setSkew(d time.Duration) {
	n.skewMu.Lock()
	n.skew = d
	n.skewMu.Unlock()
}

// collect runs one garbage collection pass over the node's drives.
func (inc *incarnation) collect(ctx context.Context) (objects.GCStats, error) {
	drives := make([]objects.GCDrive, len(inc.drives))
	for i, d := range inc.drives {
		drives[i] = d
	}
	return inc.obj.CollectGarbage(ctx, drives, objects.GCOptions{LeftoverGrace: 5 * time.Second})
}

// changeLayout takes a node out of the layout, or puts one back, through
// a node that is up.
// anyUp is a node that is up, drawn at random, or nil.
func (f *faulter) anyUp(r *rand.Rand) *incarnation {
	for _, i := range r.Perm(len(f.nodes)) {
		if via := f.nodes[i].current(); via != nil {
			return via
		}
	}
	return nil
}

func (f *faulter) changeLayout(ctx context.Context, r *rand.Rand) {
	via := f.anyUp(r)
	if via == nil {
		return
	}
	l := via.cl.Layout()
	if l == nil {
		return
	}
	in := map[string]bool{}
	for _, ln := range l.Nodes {
		in[ln.ID] = true
	}
	n := f.nodes[r.IntN(len(f.nodes))]
	edit := admin.LayoutEdit{Op: "add", Node: string(n.id), Zone: n.zone}
	if in[string(n.id)] {
		if len(l.Nodes) <= 3 {
			return // keep three: the groups' voters and the data's shards
		}
		edit = admin.LayoutEdit{Op: "remove", Node: string(n.id)}
	}
	f.applyEdit(ctx, via, edit)
}

// applyEdit stages edit alone through via and applies it.
func (f *faulter) applyEdit(ctx context.Context, via *incarnation, edit admin.LayoutEdit) {
	octx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	_ = via.cl.Revert(octx)
	if _, err := via.cl.Stage(octx, edit); err != nil {
		f.s.log.Info("layout stage failed", "edit", edit, "err", err)
		return
	}
	if _, err := via.cl.Apply(octx, 0); err != nil {
		f.s.log.Info("layout apply failed", "edit", edit, "err", err)
	}
}

// split splits every partition through a node that is up, and half the
// time then rebalances the data partitions' halves, which moves data
// while the other faults go on.
func (f *faulter) split(ctx context.Context, r *rand.Rand) {
	via := f.anyUp(r)
	if via == nil {
		return
	}
	octx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	v, err := via.cl.Split(octx)
	if err != nil {
		f.s.log.Info("split failed", "err", err)
		return
	}
	f.s.log.Info("partitions split", "metadata_partitions", v.MetaPartitions, "layout", v.Version)
	if r.IntN(2) == 0 {
		f.applyEdit(ctx, via, admin.LayoutEdit{Op: "rebalance"})
	}
}

// relocate moves the data of the partitions this node leads toward the
// layout, as the node's relocator does.
func (inc *incarnation) relocate(ctx context.Context) {
	l := inc.cl.Layout()
	if l == nil {
		return
	}
	plan := func(p meta.Partition, ref blocks.Ref) ([]string, bool) {
		to, move, _ := inc.cl.Relocation(l, objects.DataKeyOf(l.Partitions, p, ref.ID), ref.ID, ref.Drives)
		return to, move
	}
	for _, p := range l.Groups() {
		if inc.cl.Leads(meta.Partition(p)) {
			_, _ = inc.obj.Relocate(ctx, meta.Partition(p), objects.RelocateOptions{Plan: plan})
		}
	}
}

// restartErrors describes the restarts that keep failing.
func (f *faulter) restartErrors() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, n := range f.nodes {
		if n.current() == nil {
			out = append(out, fmt.Sprintf("%s: %v", n.id, f.lastErr[string(n.id)]))
		}
	}
	return strings.Join(out, "; ")
}
