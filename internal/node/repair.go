package node

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"sync"
	"time"

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
}

// repairer runs full repair passes: every data ref that committed metadata
// names is checked shard by shard and what is missing or corrupt is
// rebuilt from the survivors. One pass runs at a time.
type repairer struct {
	objects *objects.Service
	data    *blocks.Set
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
	return p
}

func (r *repairer) update(f func(p *RepairProgress)) {
	r.mu.Lock()
	f(&r.mu.p)
	r.mu.Unlock()
}

func (r *repairer) pass(ctx context.Context, done chan struct{}) {
	defer close(done)
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
