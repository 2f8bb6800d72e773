package node

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/redoubt-io/redoubt/internal/blocks"
	"github.com/redoubt-io/redoubt/internal/objects"
)

// RepairProgress is the state of the current or last repair pass.
type RepairProgress struct {
	Running    bool      `json:"running"`
	Started    time.Time `json:"started,omitzero"`
	Finished   time.Time `json:"finished,omitzero"`
	RefsTotal  int64     `json:"refs_total"`
	RefsDone   int64     `json:"refs_done"`
	BytesTotal int64     `json:"bytes_total"`
	BytesDone  int64     `json:"bytes_done"`
	Rebuilt    int64     `json:"shards_rebuilt"`
	Failed     int64     `json:"refs_failed"`
	LastError  string    `json:"last_error,omitempty"`
	ETASeconds float64   `json:"eta_seconds,omitempty"`
	Passes     int64     `json:"passes"`

	// A cluster node also moves data to where the layout wants it (see
	// relocator); these are its current or last relocation pass, and
	// Running is true while either kind of pass runs. LayoutVersion is the
	// layout the last pass that left nothing behind brought this node's
	// partitions in line with.
	LayoutVersion uint64              `json:"layout_version"`
	RefsToMove    int64               `json:"refs_to_move"`
	RefsMoved     int64               `json:"refs_moved"`
	BytesToMove   int64               `json:"bytes_to_move"`
	BytesMoved    int64               `json:"bytes_moved"`
	Relocation    *RelocationProgress `json:"relocation,omitempty"`
}

// DefaultRepairRate is 64 MiB/s: on a node where foreground traffic
// competes with it, rebuilds take a share of one disk's bandwidth.
const DefaultRepairRate = 64 << 20

// DefaultSnapshotRate is 64 MiB/s, for the same reason: a metadata
// snapshot of a gibibyte reaches a node catching up in about 16 s, and
// takes a fraction of a disk's bandwidth meanwhile.
const DefaultSnapshotRate = 64 << 20

// repairer runs full repair passes: every data ref that committed metadata
// names is checked shard by shard and what is missing or corrupt is
// rebuilt from the survivors. One pass runs at a time.
type repairer struct {
	objects *objects.Service
	data    *blocks.Set
	limit   *rate.Limiter // nil: no limit
	reloc   *relocator    // nil on a single node
	log     *slog.Logger

	mu struct {
		sync.Mutex
		p    RepairProgress
		done chan struct{} // closed when the running pass ends
	}
}

// Start begins a pass unless one is running, and returns a channel closed
// when the (new or running) pass ends.
func (r *repairer) Start(ctx context.Context) <-chan struct{} {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.mu.p.Running {
		return r.mu.done
	}
	r.mu.p = RepairProgress{Running: true, Started: time.Now(), Passes: r.mu.p.Passes + 1}
	r.mu.done = make(chan struct{})
	done := r.mu.done
	go r.pass(context.WithoutCancel(ctx), done)
	return done
}

// Progress returns a snapshot of the current or last pass.
func (r *repairer) Progress() RepairProgress {
	r.mu.Lock()
	defer r.mu.Unlock()
	p := r.mu.p
	if p.Running && p.BytesDone > 0 {
		el := time.Since(p.Started).Seconds()
		p.ETASeconds = el * float64(p.BytesTotal-p.BytesDone) / float64(p.BytesDone)
	}
	if r.reloc != nil {
		rp := r.reloc.Progress()
		p.Relocation = &rp
		p.LayoutVersion = rp.Settled
		p.RefsToMove, p.RefsMoved, p.BytesToMove, p.BytesMoved = rp.RefsToMove, rp.RefsMoved, rp.BytesToMove, rp.BytesMoved
		if rp.Running {
			if !p.Running && rp.BytesMoved > 0 {
				el := time.Since(rp.Started).Seconds()
				p.ETASeconds = el * float64(rp.BytesToMove-rp.BytesMoved) / float64(rp.BytesMoved)
			}
			p.Running = true
		}
		if p.LastError == "" && rp.LastError != "" {
			p.LastError = rp.LastError
		}
	}
	return p
}

func (r *repairer) update(f func(p *RepairProgress)) {
	r.mu.Lock()
	f(&r.mu.p)
	r.mu.Unlock()
}

func (r *repairer) pass(ctx context.Context, done chan struct{}) {
	defer close(done)
	if r.reloc != nil {
		// Data on drives the layout left cannot be repaired in place:
		// it moves first.
		r.reloc.pass(ctx)
	}
	// Count first so progress has a denominator; metadata scans are cheap
	// next to reading every shard.
	var refs, bytes int64
	err := r.objects.ForEachRef(ctx, func(ref blocks.Ref) error {
		refs++
		bytes += ref.Size
		return nil
	})
	r.update(func(p *RepairProgress) { p.RefsTotal, p.BytesTotal = refs, bytes })
	var failures []error
	if err == nil {
		err = r.objects.ForEachRef(ctx, func(ref blocks.Ref) error {
			n, rerr := r.data.Repair(ctx, ref)
			if n > 0 {
				// Paced after the fact: a rebuild's size is known once
				// it is done.
				if err := waitBytes(ctx, r.limit, int64(n)*(ref.Size/int64(max(ref.K, 1))+1)); err != nil {
					return err
				}
			}
			r.update(func(p *RepairProgress) {
				p.RefsDone++
				p.BytesDone += ref.Size
				p.Rebuilt += int64(n)
				if rerr != nil {
					p.Failed++
					p.LastError = rerr.Error()
				}
			})
			if rerr != nil {
				r.log.Warn("repair of a data ref failed", "ref", ref.ID, "err", rerr)
				if len(failures) < 16 {
					failures = append(failures, rerr)
				}
			}
			return ctx.Err()
		})
	}
	if err == nil && len(failures) == 0 {
		// Every referenced shard is whole again: replaced drives are full.
		for _, d := range r.data.Drives() {
			if d.NeedsRepair() {
				if cerr := d.ClearNeedsRepair(); cerr != nil {
					err = cerr
				}
			}
		}
	}
	if err == nil && len(failures) > 0 {
		err = errors.Join(failures...)
	}
	r.update(func(p *RepairProgress) {
		p.Running = false
		p.Finished = time.Now()
		if err != nil {
			p.LastError = err.Error()
		}
	})
	p := r.Progress()
	r.log.Info("repair pass finished", "refs", p.RefsDone, "bytes", p.BytesDone, "shards_rebuilt", p.Rebuilt, "failed", p.Failed, "took", p.Finished.Sub(p.Started))
}

// serveRepair is the admin API of repair: GET returns the progress of the
// current or last pass as JSON; POST starts a pass (or joins the running
// one) and returns its progress at once.
func (n *Node) serveRepair(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodGet:
	case http.MethodPost:
		n.repair.Start(r.Context())
	default:
		w.Header().Set("Allow", "GET, POST")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(n.repair.Progress())
}

// serveScrub answers /scrub: GET the scrubber's status, POST to start a
// pass now (unless one is running) and the status after.
func (n *Node) serveScrub(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodGet:
	case http.MethodPost:
		n.upkeep.scrub.Start()
	default:
		w.Header().Set("Allow", "GET, POST")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(n.upkeep.scrub.Status())
}
