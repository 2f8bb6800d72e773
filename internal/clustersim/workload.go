package clustersim

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/zeebo/xxh3"

	"github.com/redoubt-io/redoubt/internal/lincheck"
	"github.com/redoubt-io/redoubt/internal/meta"
	"github.com/redoubt-io/redoubt/internal/objects"
)

// bucket is the workload's bucket.
const bucket = "simbucket"

// history records operations as porcupine wants them, with the fake
// clock's times.
type history struct {
	mu  sync.Mutex
	ops []porcupine.Operation
}

func (h *history) add(client int, in lincheck.Input, call, ret time.Time, out lincheck.Output) {
	end := ret.UnixNano()
	if out.Unknown {
		end = lincheck.Pending // may take effect any time after its call
	}
	h.mu.Lock()
	h.ops = append(h.ops, porcupine.Operation{ClientId: client, Input: in, Call: call.UnixNano(), Output: out, Return: end})
	h.mu.Unlock()
}

// body is the deterministic content written for a value: the value, a
// newline, and filler drawn from the value, of a length drawn from it
// (from empty to a few chunks), so that a read proves its bytes exact.
func body(value string, inlineMax int) []byte {
	h := xxh3.HashString(value)
	n := int(h % uint64(3*inlineMax+9000))
	if h%5 == 0 {
		n = int(h % uint64(inlineMax)) // small: inline
	}
	var b bytes.Buffer
	b.WriteString(value)
	b.WriteByte('\n')
	r := newSplitMix(h)
	for b.Len() < len(value)+1+n {
		v := r.next()
		for i := 0; i < 8 && b.Len() < len(value)+1+n; i++ {
			b.WriteByte(byte(v >> (8 * i)))
		}
	}
	return b.Bytes()
}

// errCorruptRead: a read returned bytes that no write wrote.
var errCorruptRead = errors.New("read returned bytes no write wrote")

// valueOf checks that b is exactly what body wrote for some value, and
// returns the value.
func valueOf(b []byte, inlineMax int) (string, error) {
	v, _, ok := strings.Cut(string(b), "\n")
	if !ok || !bytes.Equal(body(v, inlineMax), b) {
		return "", fmt.Errorf("%w: %d bytes starting %q", errCorruptRead, len(b), b[:min(len(b), 40)])
	}
	return v, nil
}

// client is one actor of the workload.
type client struct {
	sim *Sim
	id  int
	rng *rand.Rand
	n   int // values written so far
}

// opTimeout bounds one operation; one that has not returned by then has
// an unknown outcome.
const opTimeout = 20 * time.Second

// run issues the client's operations, one at a time, each through a node
// drawn at random, until done.
func (c *client) run(ctx context.Context, nodes []*node, ops int, h *history, fail func(error)) {
	name := fmt.Sprintf("client-%02d", c.id)
	ctx = withActor(ctx, name)
	keys := make([]string, c.sim.cfg.Keys)
	for i := range keys {
		keys[i] = fmt.Sprintf("key-%d", i)
	}
	for i := 0; i < ops && ctx.Err() == nil; i++ {
		c.sim.sleep(time.Duration(c.rng.IntN(50))*time.Millisecond, fmt.Sprintf("%s think %d", name, i))
		nd := nodes[c.rng.IntN(len(nodes))]
		c.n++
		in := lincheck.RandomInput(c.rng, keys, fmt.Sprintf("c%d-%d", c.id, c.n))
		in.Node = nd.i
		inc := nd.current()
		if inc == nil {
			continue // the node is down: the client cannot connect
		}
		call := time.Now()
		octx, cancel := context.WithTimeout(ctx, opTimeout)
		out, err := c.do(octx, inc, in)
		cancel()
		if errors.Is(err, errCorruptRead) {
			fail(fmt.Errorf("%s, %s through %s: %w", name, in.Op, nd.id, err))
			return
		}
		if err != nil && !out.Unknown {
			continue // failed without effect: no operation to record
		}
		h.add(c.id, in, call, time.Now(), out)
	}
}

// do runs one operation. An error with a known outcome (nothing happened)
// leaves out.Unknown false; a failure that may have taken effect sets it.
func (c *client) do(ctx context.Context, inc *incarnation, in lincheck.Input) (lincheck.Output, error) {
	s := inc.obj
	im := c.sim.cfg.InlineMax
	switch in.Op {
	case lincheck.Get:
		_, rc, err := s.GetObject(ctx, bucket, in.Key, objects.GetOptions{})
		if errors.Is(err, objects.ErrNoSuchKey) {
			return lincheck.Output{}, nil
		}
		if err != nil {
			return lincheck.Output{}, err
		}
		b, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			return lincheck.Output{}, err
		}
		v, err := valueOf(b, im)
		if err != nil {
			return lincheck.Output{}, err
		}
		return lincheck.Output{Value: v, Found: true}, nil
	case lincheck.Put, lincheck.Create:
		b := body(in.Value, im)
		opts := objects.PutOptions{}
		if in.Op == lincheck.Create {
			opts.IfNoneMatch = "*"
		}
		_, err := s.PutObject(ctx, bucket, in.Key, bytes.NewReader(b), int64(len(b)), opts)
		switch {
		case err == nil:
			return lincheck.Output{OK: true}, nil
		case in.Op == lincheck.Create && errors.Is(err, objects.ErrPreconditionFailed):
			return lincheck.Output{OK: false}, nil
		}
		return lincheck.Output{Unknown: mayHaveHappened(err)}, err
	case lincheck.Delete:
		_, err := s.DeleteObject(ctx, bucket, in.Key, objects.DeleteOptions{})
		if err != nil {
			return lincheck.Output{Unknown: mayHaveHappened(err)}, err
		}
		return lincheck.Output{}, nil
	}
	return lincheck.Output{}, fmt.Errorf("unknown op %q", in.Op)
}

// mayHaveHappened reports whether a write that failed with err may still
// have taken effect: any failure after it could have been sent.
func mayHaveHappened(err error) bool {
	switch {
	case errors.Is(err, objects.ErrNoSuchBucket), errors.Is(err, objects.ErrPreconditionFailed),
		errors.Is(err, objects.ErrNoSuchKey), errors.Is(err, objects.ErrInvalidArgument):
		return false
	}
	return true
}

var _ = meta.ErrUnavailable
