package blocks

import (
	"context"
	"errors"
	"log/slog"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/redoubt-io/redoubt/internal/placement"
	"github.com/redoubt-io/redoubt/internal/store"
	"github.com/redoubt-io/redoubt/internal/vfs"
)

type countingHandler struct {
	slog.Handler
	errors *atomic.Int32
}

func (h countingHandler) Handle(ctx context.Context, r slog.Record) error {
	if r.Level >= slog.LevelError {
		h.errors.Add(1)
	}
	return h.Handler.Handle(ctx, r)
}

func (h countingHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return countingHandler{h.Handler.WithAttrs(as), h.errors}
}

// faultyEnv is an env whose drives sit on a fault-injecting file system
// and whose error log records are counted.
func faultyEnv(t *testing.T, pol placement.Policy) (*env, *vfs.Faulty, *atomic.Int32) {
	e := newEnv(t, pol.Shards(), pol)
	faulty := vfs.NewFaulty(vfs.OS())
	e.scfg.FS = faulty
	var errs atomic.Int32
	logger := slog.New(countingHandler{testLogger(t).Handler(), &errs})
	ds, err := store.Open(context.Background(), e.scfg, e.paths, logger)
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(e.cfg, ds, logger)
	if err != nil {
		t.Fatal(err)
	}
	e.set, e.drives = s, ds
	return e, faulty, &errs
}

func TestWriteSurvivesDriveFailingMidStream(t *testing.T) {
	rng := seeded(t)
	e, faulty, errs := faultyEnv(t, placement.Policy{K: 2, M: 2})
	bad := rng.IntN(4)
	faulty.Fail(e.paths[bad], vfs.OpWrite, syscall.EIO)
	data := randBytes(rng, 9*testChunk+3)
	ref := e.write(data)
	if e.drives[bad].State() != store.Failed {
		t.Fatal("drive with failing writes not marked failed")
	}
	if need := e.set.NeedsRepair(); len(need) != 1 || need[0].ID != ref.ID {
		t.Fatalf("degraded write not noted for repair: %v", need)
	}
	e.mustRead(ref, data)
	// Further writes skip the failed drive quickly and still meet quorum.
	data2 := randBytes(rng, 2*testChunk)
	ref2 := e.write(data2)
	if n := errs.Load(); n != 1 {
		t.Fatalf("%d error records for one failed drive, want 1", n)
	}
	faulty.Heal(e.paths[bad])
	e.set.CheckDrives()
	if e.drives[bad].State() != store.Online {
		t.Fatal("healed drive not back online")
	}
	for _, r := range []Ref{ref, ref2} {
		n, err := e.set.Repair(context.Background(), r)
		if err != nil || n != 1 {
			t.Fatalf("Repair = %d, %v; want 1", n, err)
		}
	}
	e.mustRead(ref, data)
	e.mustRead(ref2, data2)
}

func TestReadIOErrorReconstructsAndLogsOnce(t *testing.T) {
	rng := seeded(t)
	e, faulty, errs := faultyEnv(t, placement.Policy{K: 2, M: 2})
	data := randBytes(rng, 4*testChunk+1)
	ref := e.write(data)
	bad := e.driveIndex(ref.Drives[0])
	faulty.Fail(e.paths[bad], vfs.OpRead|vfs.OpOpen, syscall.EIO)
	for range 5 {
		e.mustRead(ref, data)
		got, err := e.read(ref, 10, 100)
		if err != nil || string(got) != string(data[10:110]) {
			t.Fatalf("range read with a failing drive: %v", err)
		}
	}
	if e.drives[bad].State() != store.Failed {
		t.Fatal("drive with read errors not marked failed")
	}
	if n := errs.Load(); n != 1 {
		t.Fatalf("%d error records, want 1", n)
	}
	if st := e.set.Status()[bad]; st.State != store.Failed || st.IOErrors == 0 {
		t.Fatalf("status of the failed drive: %+v", st)
	}
}

// Run brings a healed drive back at its next check, and waits for each
// check through Config.After, so that a simulation orders the checks
// among its own events.
func TestRunBringsAHealedDriveBack(t *testing.T) {
	e, faulty, _ := faultyEnv(t, placement.Policy{K: 2, M: 2})
	waits := make(chan time.Duration)
	fire := make(chan time.Time)
	e.set.cfg.After = func(d time.Duration, what string) <-chan time.Time {
		if what != "drive health" {
			return time.After(d) // a write's bound on a shard create
		}
		waits <- d
		return fire
	}
	faulty.Fail(e.paths[0], vfs.OpWrite, syscall.EIO)
	e.write(randBytes(seeded(t), 3*testChunk))
	if e.drives[0].State() != store.Failed {
		t.Fatal("drive with failing writes not marked failed")
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.set.Run(ctx) }()
	select {
	case d := <-waits:
		if d != e.set.cfg.HealthInterval {
			t.Fatalf("Run waited %v, want the health interval %v", d, e.set.cfg.HealthInterval)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not wait through Config.After")
	}
	faulty.Heal(e.paths[0])
	fire <- time.Time{}
	<-waits // the check ran; Run waits for the next
	if e.drives[0].State() != store.Online {
		t.Fatal("healed drive not back online after Run's check")
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Run = %v, want context.Canceled", err)
	}
}
