package blocks

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redoubt-io/redoubt/internal/placement"
	"github.com/redoubt-io/redoubt/internal/shardrpc"
	"github.com/redoubt-io/redoubt/internal/store"
)

// stripe is one coded chunk shared by the shard writers; the last writer
// done with it returns its buffer to the pool.
type stripe struct {
	buf    *[]byte
	shards [][]byte
	refs   atomic.Int32
}

func (s *Set) release(st *stripe) {
	if st.refs.Add(-1) == 0 {
		s.putBuf(st.buf)
	}
}

// shardSink writes one shard file from a stream of stripes.
type shardSink struct {
	idx   int
	drive shardrpc.Drive
	w     shardrpc.ShardWriter
	in    chan *stripe
	err   error // set by the sink goroutine; read after done
	done  chan struct{}
}

// Write implements Store. See Config for its memory bound and Config.Place
// for where the shards go.
func (s *Set) Write(ctx context.Context, p uint32, r io.Reader) (Ref, error) {
	return s.WriteID(ctx, p, store.NewID(), r)
}

// WriteID implements IDWriter: Write, under an ID the caller chose.
func (s *Set) WriteID(ctx context.Context, p uint32, id string, r io.Reader) (Ref, error) {
	return s.writePolicy(ctx, p, id, s.Policy(), r)
}

// WriteDegraded implements DegradedWriter: a copy of the data on each of
// partition p's candidate drives that are online, as many as the policy
// has shards, at least one, all of them durable before it returns. It
// is for a write that must be taken when the policy's write quorum is
// out of reach (an available bucket's, in a minority of a partition);
// the Ref says it is a mirror, and whoever keeps it rewrites it under
// the policy once the drives are back (package objects, respread.go).
func (s *Set) WriteDegraded(ctx context.Context, p uint32, id string, r io.Reader) (Ref, error) {
	online := 0
	for _, did := range s.candidates(p, id) {
		if d, ok := s.drive(did); ok && d.Online() {
			online++
		}
	}
	n := min(online, s.Policy().Shards())
	if n == 0 {
		return Ref{}, fmt.Errorf("blocks: degraded write: %w: no drive online for partition %d", ErrQuorum, p)
	}
	pol := placement.Policy{K: 1, M: n - 1, Mirror: n > 1}
	ref, err := s.writeQuorum(ctx, p, id, pol, n, r)
	if err != nil {
		return Ref{}, fmt.Errorf("blocks: degraded write: %w", err)
	}
	return ref, nil
}

func (s *Set) writePolicy(ctx context.Context, p uint32, id string, pol placement.Policy, r io.Reader) (Ref, error) {
	return s.writeQuorum(ctx, p, id, pol, pol.WriteQuorum(), r)
}

// writeQuorum writes r under policy pol, returning once quorum shards are
// durable.
func (s *Set) writeQuorum(ctx context.Context, p uint32, id string, pol placement.Policy, quorum int, r io.Reader) (Ref, error) {
	if err := (store.Name{ID: id}).Validate(); err != nil {
		return Ref{}, fmt.Errorf("blocks: write: %w", err)
	}
	coder, err := s.coder(pol.K, pol.M, pol.Mirror)
	if err != nil {
		return Ref{}, err
	}
	n := pol.Shards()
	stripeLen := s.cfg.ChunkSize * pol.K
	ref := Ref{ID: id, K: pol.K, M: pol.M, Mirror: pol.Mirror, ChunkSize: int64(stripeLen), Drives: make([]string, n)}

	targets, spares, err := s.pick(p, id, n, quorum)
	if err != nil {
		return Ref{}, fmt.Errorf("blocks: write: %w", err)
	}
	// All the buffers this Write may hold, before any drive is asked for
	// anything: a Write refused for want of them leaves nothing to clean
	// up, and one admitted never waits for buffers again (budget.go).
	held, err := s.writeBudget.take(ctx, s.writeNeed(ctx, coder.StripeSize(stripeLen), stripeLen, n), s.cfg.BufferWait)
	if err != nil {
		return Ref{}, fmt.Errorf("blocks: write: %w", err)
	}
	defer s.writeBudget.give(held)
	// Commits are bounded by the caller's ctx, not by the sinks' one that
	// a sibling's failure cancels (runSink).
	commitCtx := ctx
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)

	var failed atomic.Int32
	var firstErr sync.Once
	var cause error
	fail := func(err error) {
		firstErr.Do(func() { cause = err })
		if int(failed.Add(1)) > n-quorum {
			cancel(fmt.Errorf("%w: %d of %d shards failed, last: %w", ErrQuorum, failed.Load(), n, err))
		}
	}
	sinks := s.openSinks(ctx, id, targets, spares, fail)
	for i, sk := range sinks {
		ref.Drives[i] = sk.drive.ID()
	}
	if err := context.Cause(ctx); err != nil {
		for _, sk := range sinks {
			if sk.w != nil {
				sk.w.Abort()
			}
		}
		return Ref{}, fmt.Errorf("blocks: write: %w", err)
	}
	var live []*shardSink
	for _, sk := range sinks {
		if sk.w != nil {
			live = append(live, sk)
		}
	}
	var written sync.WaitGroup
	written.Add(len(live))
	for _, sk := range live {
		go s.runSink(ctx, commitCtx, sk, fail, &written)
	}

	size, rerr := s.feed(ctx, r, coder, stripeLen, live)
	for _, sk := range live {
		close(sk.in)
	}
	for _, sk := range live {
		<-sk.done
	}
	if rerr == nil {
		rerr = context.Cause(ctx)
	}
	ok := 0
	for _, sk := range sinks {
		if sk.err == nil {
			ok++
		}
	}
	if rerr == nil && ok < quorum {
		rerr = fmt.Errorf("%w: %d of %d shards durable, need %d: %w", ErrQuorum, ok, n, quorum, cause)
	}
	if rerr != nil {
		// Nothing refers to the shards yet; remove the durable ones so no
		// orphan outlives a failed write where the drive lets us.
		for _, sk := range sinks {
			if sk.err == nil {
				_ = sk.drive.Remove(context.WithoutCancel(ctx), store.Name{ID: id, Shard: sk.idx})
			}
		}
		return Ref{}, fmt.Errorf("blocks: write: %w", rerr)
	}
	if ok < n {
		s.log.Warn("write stored fewer shards than the policy asks; it needs repair",
			"ref", id, "stored", ok, "shards", n, "err", cause)
		ref.Size = size
		s.noteRepair(ref)
	}
	ref.Size = size
	return ref, nil
}

// openSinks creates the shard files of a new ref, in parallel as each is a
// round trip on a remote drive. A drive that is offline or fails its Create
// is replaced by the next spare: no byte has been sent yet, so going
// elsewhere loses nothing, and a node that died since the last health
// check costs one failed call, not a shard. A shard left without a drive
// is reported to fail; its sink is done and has no writer.
//
// The creates go in rounds: every shard still without a file tries its
// drive at once, and once all have answered, the shards that failed take
// the next spares in shard order. So which spare a shard goes to does not
// depend on which of two shards that failed at once asked first, and a
// simulated run replays the same way.
func (s *Set) openSinks(ctx context.Context, id string, targets, spares []shardrpc.Drive, fail func(error)) []*shardSink {
	sinks := make([]*shardSink, len(targets))
	errs := make([][]error, len(targets))
	pending := make([]int, 0, len(targets))
	for i, d := range targets {
		sinks[i] = &shardSink{idx: i, drive: d, in: make(chan *stripe, s.cfg.WriteAhead), done: make(chan struct{})}
		pending = append(pending, i)
	}
	for len(pending) > 0 {
		var wg sync.WaitGroup
		for _, i := range pending {
			sk := sinks[i]
			wg.Go(func() {
				var err error
				if !sk.drive.Online() || s.suspect(sk.drive.ID()) {
					// Trying it could stall the write on an unreachable node.
					err = fmt.Errorf("drive %s offline: %w", sk.drive.ID(), store.ErrDriveFailed)
				} else if sk.w, err = s.createWithin(ctx, sk.drive, store.Name{ID: id, Shard: sk.idx}); err == nil {
					return
				}
				sk.w = nil
				errs[sk.idx] = append(errs[sk.idx], err)
			})
		}
		wg.Wait()
		next := pending[:0]
		for _, i := range pending {
			sk := sinks[i]
			if sk.w != nil {
				continue
			}
			if ctx.Err() != nil || len(spares) == 0 {
				sk.err = errors.Join(errs[i]...)
				fail(sk.err)
				close(sk.done)
				continue
			}
			sk.drive, spares = spares[0], spares[1:]
			next = append(next, i)
		}
		pending = next
	}
	return sinks
}

// createWithin is d.Create, given up after Config.CreateWait (TestWriteGoesAroundAHungDrive).
// The call goes on under ctx, which the writer must outlive; if it
// succeeds after all, its writer is aborted, so no shard file is left.
func (s *Set) createWithin(ctx context.Context, d shardrpc.Drive, name store.Name) (shardrpc.ShardWriter, error) {
	if s.cfg.CreateWait <= 0 {
		return d.Create(ctx, name)
	}
	type created struct {
		w   shardrpc.ShardWriter
		err error
	}
	got := make(chan created, 1)
	go func() {
		w, err := d.Create(ctx, name)
		got <- created{w, err}
	}()
	// The wait is Config.After's, so that in a simulation it is an event
	// of its queue, ordered with the answer's, not a timer of the
	// runtime's racing it (clustersim's TestSimulationReplays, seed
	// 7505514420942706425, ran two ways under load with time's timer).
	select {
	case c := <-got:
		if c.err == nil {
			s.unanswered.Delete(d.ID())
		}
		return c.w, c.err
	case <-s.cfg.After.Wait(s.cfg.CreateWait, "shard create"):
		s.unanswered.Store(d.ID(), time.Now())
		go func() {
			if c := <-got; c.err == nil {
				c.w.Abort()
			}
		}()
		return nil, fmt.Errorf("drive %s: no answer to create within %v: %w", d.ID(), s.cfg.CreateWait, store.ErrDriveFailed)
	}
}

// suspectFor is how long writes skip a drive whose Create went unanswered
// (unless a Create on it succeeds meanwhile): about a health check's
// interval, so that a node cut off costs each writer one wait while the
// cut lasts, not one per write.
const suspectFor = 30 * time.Second

// suspect reports whether drive id left a Create unanswered in the last
// suspectFor.
func (s *Set) suspect(id string) bool {
	at, ok := s.unanswered.Load(id)
	if !ok {
		return false
	}
	if time.Since(at.(time.Time)) >= suspectFor {
		s.unanswered.Delete(id)
		return false
	}
	return true
}

// feed reads stripes from r, codes them and hands them to the sinks, until
// EOF, a read error or cancellation. It returns the bytes read.
func (s *Set) feed(ctx context.Context, r io.Reader, coder interface {
	StripeSize(int) int
	Shards() int
	Encode([]byte, [][]byte) error
}, stripeLen int, live []*shardSink) (int64, error) {
	var size int64
	bufLen := coder.StripeSize(stripeLen)
	for {
		if err := ctx.Err(); err != nil {
			return size, context.Cause(ctx)
		}
		buf := s.getBuf(bufLen)
		n, err := io.ReadFull(r, (*buf)[:stripeLen])
		if n > 0 {
			size += int64(n)
			st := &stripe{buf: buf, shards: make([][]byte, coder.Shards())}
			if eerr := coder.Encode((*buf)[:n], st.shards); eerr != nil {
				s.putBuf(buf)
				return size, eerr
			}
			st.refs.Store(int32(len(live)))
			for _, sk := range live {
				select {
				case sk.in <- st:
				case <-ctx.Done():
					// This sink will never see st: drop its reference.
					s.release(st)
				}
			}
		} else {
			s.putBuf(buf)
		}
		switch {
		case err == nil:
		case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
			return size, nil
		default:
			return size, fmt.Errorf("reading data: %w", err)
		}
	}
}

func (s *Set) runSink(ctx, commitCtx context.Context, sk *shardSink, fail func(error), written *sync.WaitGroup) {
	defer close(sk.done)
	for st := range sk.in {
		if sk.err == nil && ctx.Err() == nil {
			if _, err := sk.w.Write(st.shards[sk.idx]); err != nil {
				sk.err = err
				fail(err)
			}
		}
		s.release(st)
	}
	// Every sink decides to commit or abort once all have written (or
	// failed to), so that the decision depends on what the writes did,
	// not on which sink's goroutine got further before another's failure
	// cancelled ctx (clustersim's TestSimulationReplays, seed
	// 7505514420942706425, diverged here under load: a sink aborted in
	// one run and committed, then aborted, in the other).
	written.Done()
	written.Wait()
	if sk.err == nil {
		if err := ctx.Err(); err != nil {
			sk.err = context.Cause(ctx)
		}
	}
	if sk.err != nil {
		sk.w.Abort()
		return
	}
	if err := sk.w.Commit(commitCtx); err != nil {
		sk.err = err
		fail(err)
	}
}
