package blocks

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/redoubt-io/redoubt/internal/placement"
)

// stripeBytes is the buffer of one stripe of an env's Set under pol.
func stripeBytes(e *env, pol placement.Policy) int64 {
	c, err := e.set.coder(pol.K, pol.M, pol.Mirror)
	if err != nil {
		e.t.Fatal(err)
	}
	return int64(c.StripeSize(e.cfg.ChunkSize * pol.K))
}

// Many large writes at once hold no more buffers than BufferBytes allows:
// the ones past it wait, and all of them complete whole. Without the
// bound, each Write holds up to WriteAhead+2 stripes.
func TestBufferBytesBoundLargeWrites(t *testing.T) {
	rng := seeded(t)
	pol := placement.Policy{K: 2, M: 2}
	e := newEnv(t, 4, pol)
	stripe := stripeBytes(e, pol)
	perWrite := int64(e.cfg.WriteAhead+2) * stripe
	e.cfg.BufferBytes = 2 * 2 * perWrite // two writes at a time
	e.cfg.WriterBytes = 0                // bufsOut counts stripes only
	e.cfg.BufferWait = 0                 // wait as long as it takes
	e.reopen()
	const writers = 12
	data := make([][]byte, writers)
	refs := make([]Ref, writers)
	errs := make([]error, writers)
	var wg sync.WaitGroup
	for i := range data {
		data[i] = randBytes(rng, 40*testChunk*pol.K+17)
		wg.Add(1)
		go func() {
			defer wg.Done()
			refs[i], errs[i] = e.set.Write(context.Background(), 0, bytes.NewReader(data[i]))
		}()
	}
	wg.Wait()
	if peak := e.set.bufsPeak.Load(); peak > 2*perWrite {
		t.Errorf("writes held %d bytes of buffers at once; the bound is %d", peak, 2*perWrite)
	}
	for i, err := range errs {
		if err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
		e.mustRead(refs[i], data[i])
	}
	if out := e.set.bufsOut.Load(); out != 0 {
		t.Errorf("%d bytes of buffers not given back", out)
	}
	if b := e.set.Buffers(); b.WriteHeld != 0 || b.ReadHeld != 0 {
		t.Errorf("budgets still hold %+v after every request ended", b)
	}
}

// A Write that finds every buffer taken for longer than BufferWait fails
// with ErrBusy before it has created anything on a drive, and succeeds
// once the buffers are free.
func TestWriteBusyPastBufferWait(t *testing.T) {
	rng := seeded(t)
	pol := placement.Policy{K: 2, M: 2}
	e := newEnv(t, 4, pol)
	stripe := stripeBytes(e, pol)
	e.cfg.BufferBytes = 2 * stripe // one stripe for writes
	e.cfg.BufferWait = 20 * time.Millisecond
	e.reopen()

	// A holds the only write buffer while its body waits.
	pr, pw := io.Pipe()
	aDone := make(chan error, 1)
	aData := randBytes(rng, 3*testChunk*pol.K)
	go func() {
		ref, err := e.set.Write(context.Background(), 0, pr)
		if err == nil {
			e.mustRead(ref, aData)
		}
		aDone <- err
	}()
	if _, err := pw.Write(aData[:10]); err != nil { // A has its buffer once it reads
		t.Fatal(err)
	}
	files := func() int {
		n := 0
		for _, p := range e.paths {
			filepath.WalkDir(p, func(_ string, d os.DirEntry, err error) error {
				if err == nil && !d.IsDir() {
					n++
				}
				return nil
			})
		}
		return n
	}
	before := files()
	_, err := e.set.Write(context.Background(), 0, bytes.NewReader(randBytes(rng, 100)))
	if !errors.Is(err, ErrBusy) {
		t.Fatalf("write while every buffer is held: %v, want ErrBusy", err)
	}
	if after := files(); after != before {
		t.Errorf("a refused write left %d shard files", after-before)
	}
	if busy := e.set.Buffers().Busy; busy != 1 {
		t.Errorf("Busy counts %d refusals, want 1", busy)
	}
	if _, err := pw.Write(aData[10:]); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	if err := <-aDone; err != nil {
		t.Fatal(err)
	}
	e.write(randBytes(rng, 100))
}

// Copies hold a reader while they wait for a Write's buffers, and a
// Write's body is then another reader. With both budgets far too small
// for the copies, plain reads and writes running at once, every request
// still completes: no request waits for buffers that only another waiting
// request could free (budget.go).
func TestBudgetCopiesDoNotDeadlock(t *testing.T) {
	rng := seeded(t)
	pol := placement.Policy{K: 2, M: 2}
	e := newEnv(t, 4, pol)
	stripe := stripeBytes(e, pol)
	e.cfg.BufferBytes = 2 * 4 * stripe // one reader's read-ahead; four write stripes
	e.cfg.BufferWait = 0
	e.reopen()
	const n = 8
	src := make([][]byte, n)
	refs := make([]Ref, n)
	for i := range src {
		src[i] = randBytes(rng, 9*testChunk*pol.K+5)
		refs[i] = e.write(src[i])
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, 3*n)
	for i := range n {
		wg.Add(3)
		go func() { // copy
			defer wg.Done()
			rc, err := e.set.Open(ctx, refs[i], 0, -1)
			if err != nil {
				errs <- err
				return
			}
			ref, err := e.set.Write(ctx, 0, rc)
			rc.Close()
			if err != nil {
				errs <- err
				return
			}
			errs <- readBack(ctx, e, ref, src[i])
		}()
		go func() { // read
			defer wg.Done()
			errs <- readBack(ctx, e, refs[(i+1)%n], src[(i+1)%n])
		}()
		go func() { // write
			defer wg.Done()
			_, err := e.set.Write(ctx, 0, bytes.NewReader(src[i]))
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err) // a deadlock ends here, with the context's deadline
		}
	}
	if b := e.set.Buffers(); b.WriteHeld != 0 || b.ReadHeld != 0 {
		t.Errorf("budgets still hold %+v", b)
	}
}

// readBack reads ref whole under ctx and compares it with want.
func readBack(ctx context.Context, e *env, ref Ref, want []byte) error {
	rc, err := e.set.Open(ctx, ref, 0, -1)
	if err != nil {
		return err
	}
	defer rc.Close()
	got, err := io.ReadAll(rc)
	if err == nil && !bytes.Equal(got, want) {
		err = errors.New("read back differs from what was written")
	}
	return err
}

// A reader takes what it may read ahead when it opens, small objects
// little, and gives it all back when closed, read to the end or not.
func TestReaderGivesBuffersBackOnClose(t *testing.T) {
	rng := seeded(t)
	pol := placement.Policy{K: 2, M: 2}
	e := newEnv(t, 4, pol)
	stripe := stripeBytes(e, pol)
	e.cfg.BufferBytes = 2 * 100 * stripe
	e.reopen()
	big := e.write(randBytes(rng, 20*testChunk*pol.K))
	small := e.write(randBytes(rng, 100))
	rc, err := e.set.Open(context.Background(), big, 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	if held := e.set.Buffers().ReadHeld; held != int64(e.cfg.ReadAhead+2)*stripe {
		t.Errorf("a reader of a large object holds %d bytes, want %d", held, int64(e.cfg.ReadAhead+2)*stripe)
	}
	if _, err := io.ReadFull(rc, make([]byte, 3*testChunk)); err != nil {
		t.Fatal(err)
	}
	rc.Close()
	if held := e.set.Buffers().ReadHeld; held != 0 {
		t.Errorf("a closed reader still holds %d bytes", held)
	}
	rc, err = e.set.Open(context.Background(), small, 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	if held := e.set.Buffers().ReadHeld; held > stripe/10 {
		t.Errorf("a reader of 100 bytes holds %d bytes", held)
	}
	rc.Close()
	if out := e.set.bufsOut.Load(); out != 0 {
		t.Errorf("%d bytes of buffers not given back", out)
	}
}

// A Write told its size takes buffers for that size: one stripe for a
// small object, one more than it fills for a larger one, never more than
// WriteAhead+2; without a size, the most a Write may hold.
func TestWriteNeedFollowsSizeHint(t *testing.T) {
	pol := placement.Policy{K: 2, M: 2}
	e := newEnv(t, 4, pol)
	stripe := stripeBytes(e, pol)
	stripeLen := int64(e.cfg.ChunkSize * pol.K)
	writers := int64(4 * e.cfg.WriterBytes)
	ctx := context.Background()
	for _, c := range []struct {
		size    int64 // -1: no hint
		stripes int64
	}{
		{-1, int64(e.cfg.WriteAhead + 2)},
		{0, 1},
		{100, 1},
		{stripeLen - 1, 1},
		{stripeLen, 2},
		{2*stripeLen + 1, 3},
		{1000 * stripeLen, int64(e.cfg.WriteAhead + 2)},
	} {
		wctx := ctx
		if c.size >= 0 {
			wctx = WithSizeHint(ctx, c.size)
		}
		if got, want := e.set.writeNeed(wctx, int(stripe), int(stripeLen), 4), c.stripes*stripe+writers; got != want {
			t.Errorf("size %d: need %d bytes, want %d (%d stripes and the writers)", c.size, got, want, c.stripes)
		}
	}
}
