package clustersim

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
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

// Buckets of the workload: one created before the history begins, one the
// workload deletes and creates again.
const churned = "simchurn"

// client is one actor of the workload.
type client struct {
	sim *Sim
	id  int
	rng *rand.Rand
	n   int // values written so far
}

// workload is what the clients share: the request mix (which learns the
// version IDs answers name) and the map from ETags back to values.
type workload struct {
	mix   *lincheck.Mix
	mu    sync.Mutex
	etags map[string]string
}

func newWorkload(cfg Config) *workload {
	keys := make([]string, cfg.Keys)
	for i := range keys {
		keys[i] = fmt.Sprintf("%c/%d", 'a'+i%2, i)
	}
	return &workload{
		mix:   &lincheck.Mix{Buckets: []string{bucket, churned}, Churned: []string{churned}, Keys: keys, Prefixes: []string{"", "a/", "b/"}},
		etags: map[string]string{},
	}
}

// etag is the ETag of the body written for value; the workload notes it
// before the write, so that a listing naming it is read back as value.
func (w *workload) etag(value string, inlineMax int) string {
	sum := md5.Sum(body(value, inlineMax))
	e := hex.EncodeToString(sum[:])
	w.mu.Lock()
	w.etags[e] = value
	w.mu.Unlock()
	return e
}

func (w *workload) value(etag string) string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.etags[strings.Trim(etag, `"`)]
}

// opTimeout bounds one operation; one that has not returned by then has
// an unknown outcome.
const opTimeout = 20 * time.Second

// run issues the client's operations, one at a time, each through a node
// drawn at random, until done.
func (c *client) run(ctx context.Context, nodes []*node, ops int, w *workload, h *history, fail func(error)) {
	name := fmt.Sprintf("client-%02d", c.id)
	ctx = withActor(ctx, name)
	for i := 0; i < ops && ctx.Err() == nil; i++ {
		c.sim.sleep(time.Duration(c.rng.IntN(50))*time.Millisecond, fmt.Sprintf("%s think %d", name, i))
		nd := nodes[c.rng.IntN(len(nodes))]
		c.n++
		in := w.mix.Next(c.rng, fmt.Sprintf("c%d-%d", c.id, c.n))
		in.Node = nd.i
		inc := nd.current()
		if inc == nil {
			continue // the node is down: the client cannot connect
		}
		call := time.Now()
		octx, cancel := context.WithTimeout(ctx, opTimeout)
		out, err := c.do(octx, inc, w, in)
		cancel()
		if errors.Is(err, errCorruptRead) {
			fail(fmt.Errorf("%s, %s through %s: %w", name, lincheck.Describe(in, out), nd.id, err))
			return
		}
		if err != nil && !out.Unknown {
			continue // failed without effect (or a read that failed): nothing to record
		}
		w.mix.Learn(in, out)
		h.add(c.id, in, call, time.Now(), out)
	}
}

// modelErrors maps the object layer's errors to the answers of the model.
var modelErrors = []struct {
	err  error
	code string
}{
	{objects.ErrNoSuchBucket, lincheck.NoSuchBucket},
	{objects.ErrNoSuchKey, lincheck.NoSuchKey},
	{objects.ErrNoSuchVersion, lincheck.NoSuchVersion},
	{objects.ErrMethodNotAllowed, lincheck.MethodNotAllowed},
	{objects.ErrPreconditionFailed, lincheck.PreconditionFailed},
	{objects.ErrBucketExists, lincheck.BucketExists},
	{objects.ErrBucketNotEmpty, lincheck.BucketNotEmpty},
}

// answer turns an operation's error into what the history records: an
// answer of the model, or, for a write, an unknown outcome (it may have
// taken effect); a read that failed otherwise is not recorded (err kept).
func answer(in lincheck.Input, err error) (lincheck.Output, error) {
	for _, m := range modelErrors {
		if errors.Is(err, m.err) {
			return lincheck.Output{Err: m.code}, nil
		}
	}
	switch in.Op {
	case lincheck.Get, lincheck.List, lincheck.ListVersions, lincheck.HeadBucket, lincheck.GetVersioning:
		return lincheck.Output{}, err
	}
	return lincheck.Output{Unknown: true}, err
}

// do runs one operation through the node's object layer.
func (c *client) do(ctx context.Context, inc *incarnation, w *workload, in lincheck.Input) (lincheck.Output, error) {
	s := inc.obj
	im := c.sim.cfg.InlineMax
	switch in.Op {
	case lincheck.Get:
		oi, rc, err := s.GetObject(ctx, in.Bucket, in.Key, objects.GetOptions{VersionID: in.VersionID})
		if err != nil {
			return answer(in, err)
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
		return lincheck.Output{Value: v, VersionID: oi.VersionID}, nil
	case lincheck.Put, lincheck.Create:
		b := body(in.Value, im)
		w.etag(in.Value, im)
		opts := objects.PutOptions{}
		if in.Op == lincheck.Create {
			opts.IfNoneMatch = "*"
		}
		if in.IfMatch != "" {
			opts.IfMatch = w.etag(in.IfMatch, im)
		}
		oi, err := s.PutObject(ctx, in.Bucket, in.Key, bytes.NewReader(b), int64(len(b)), opts)
		if err != nil {
			return answer(in, err)
		}
		return lincheck.Output{VersionID: oi.VersionID}, nil
	case lincheck.Delete:
		res, err := s.DeleteObject(ctx, in.Bucket, in.Key, objects.DeleteOptions{VersionID: in.VersionID})
		if err != nil {
			return answer(in, err)
		}
		out := lincheck.Output{DeleteMarker: res.DeleteMarker}
		if in.VersionID == "" {
			out.VersionID = res.VersionID
		}
		return out, nil
	case lincheck.List:
		out := lincheck.Output{Objects: []lincheck.Object{}}
		marker := ""
		for {
			page, err := s.ListObjects(ctx, in.Bucket, objects.ListOptions{Prefix: in.Prefix, Marker: marker})
			if err != nil {
				return answer(in, err)
			}
			for _, o := range page.Objects {
				out.Objects = append(out.Objects, lincheck.Object{Key: o.Key, Value: w.value(o.ETag)})
			}
			if !page.IsTruncated {
				return out, nil
			}
			marker = page.NextMarker
		}
	case lincheck.ListVersions:
		page, err := s.ListObjectVersions(ctx, in.Bucket, objects.ListVersionsOptions{Prefix: in.Prefix})
		if err != nil {
			return answer(in, err)
		}
		if page.IsTruncated {
			return lincheck.Output{}, errors.New("version listing longer than a page")
		}
		out := lincheck.Output{Versions: []lincheck.Version{}}
		for _, v := range page.Versions {
			lv := lincheck.Version{Key: v.Key, VersionID: v.VersionID, DeleteMarker: v.DeleteMarker}
			if !v.DeleteMarker {
				lv.Value = w.value(v.ETag)
			}
			out.Versions = append(out.Versions, lv)
		}
		return out, nil
	case lincheck.CreateBucket:
		return answer(in, s.CreateBucket(ctx, in.Bucket))
	case lincheck.DeleteBucket:
		return answer(in, s.DeleteBucket(ctx, in.Bucket))
	case lincheck.HeadBucket:
		_, err := s.HeadBucket(ctx, in.Bucket)
		return answer(in, err)
	case lincheck.SetVersioning:
		st := objects.Enabled
		if in.Versioning == lincheck.Suspended {
			st = objects.Suspended
		}
		return answer(in, s.SetVersioning(ctx, in.Bucket, st))
	case lincheck.GetVersioning:
		bi, err := s.HeadBucket(ctx, in.Bucket)
		if err != nil {
			return answer(in, err)
		}
		out := lincheck.Output{Versioning: lincheck.Unversioned}
		switch bi.Versioning {
		case objects.Enabled:
			out.Versioning = lincheck.Enabled
		case objects.Suspended:
			out.Versioning = lincheck.Suspended
		}
		return out, nil
	}
	return lincheck.Output{}, fmt.Errorf("unknown op %q", in.Op)
}
