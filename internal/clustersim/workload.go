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

// A copy writes a value of its own (the history's values are unique) with
// its source's body: its name is "NEW<BASE>", BASE the value the body was
// written for. Every write stores its value's name in metaValue, which a
// read returns; the body must then be exactly BASE's.
const metaValue = "sim-value"

// base is the value whose body value has.
func base(value string) string {
	if i := strings.LastIndexByte(value, '<'); i >= 0 {
		return value[i+1:]
	}
	return value
}

// readValue checks an object read back: its name, and its bytes (unless
// b is nil, a HEAD) exactly the body of the name's base.
func readValue(oi objects.ObjectInfo, b []byte, inlineMax int) (string, error) {
	name := oi.UserMeta[metaValue]
	if name == "" {
		return "", fmt.Errorf("%w: an object without the name of its value", errCorruptRead)
	}
	if b == nil {
		return name, nil
	}
	v, err := valueOf(b, inlineMax)
	if err != nil {
		return "", err
	}
	if v != base(name) {
		return "", fmt.Errorf("%w: %s with the body of %s", errCorruptRead, name, v)
	}
	return name, nil
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
// version IDs answers name) and what each key was given to hold, by
// ETag, so that a listing (which shows ETags) reads as values.
type workload struct {
	mix *lincheck.Mix
	mu  sync.Mutex
	// names maps bucket/key and an ETag to the value written there with
	// that ETag; etagOf a value to its ETag; given, base and bucket/key
	// pairs: the bodies a key was given. A copy may give a key only a
	// body it was never given, so that an ETag names one value per key.
	names  map[[2]string]string
	etagOf map[string]string
	given  map[[2]string]bool
}

func newWorkload(cfg Config) *workload {
	keys := make([]string, cfg.Keys)
	for i := range keys {
		keys[i] = fmt.Sprintf("%c/%d", 'a'+i%2, i)
	}
	return &workload{
		mix:    &lincheck.Mix{Buckets: []string{bucket, churned}, Churned: []string{churned}, Keys: keys, Prefixes: []string{"", "a/", "b/"}},
		names:  map[[2]string]string{},
		etagOf: map[string]string{},
		given:  map[[2]string]bool{},
	}
}

func md5hex(b []byte) string {
	sum := md5.Sum(b)
	return hex.EncodeToString(sum[:])
}

// give notes, before the write, that bucket/key is given value with etag;
// false if the key was given that body before (a copy then does not go).
func (w *workload) give(bucket, key, value, etag string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	g := [2]string{base(value), bucket + "/" + key}
	if w.given[g] {
		return false
	}
	w.given[g] = true
	w.names[[2]string{bucket + "/" + key, etag}] = value
	w.etagOf[value] = etag
	return true
}

// value is the value bucket/key holds with etag.
func (w *workload) value(bucket, key, etag string) string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.names[[2]string{bucket + "/" + key, strings.Trim(etag, `"`)}]
}

func (w *workload) etag(value string) (string, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	e, ok := w.etagOf[value]
	return e, ok
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
		inc := nd.current()
		if inc == nil {
			continue // the node is down: the client cannot connect
		}
		call := time.Now()
		octx, cancel := context.WithTimeout(ctx, opTimeout)
		in, out, err := c.next(octx, inc, w)
		cancel()
		in.Node = nd.i
		if errors.Is(err, errCorruptRead) {
			fail(fmt.Errorf("%s, %s through %s: %w", name, lincheck.Describe(in, out), nd.id, err))
			return
		}
		if in.Op == "" || (err != nil && !out.Unknown) {
			continue // failed without effect (or a read that failed): nothing to record
		}
		w.mix.Learn(in, out)
		h.add(c.id, in, call, time.Now(), out)
	}
}

// next draws an operation and runs it: of 100, 6 copies and 5 multipart
// uploads, which the history records as the PUTs they are; the rest from
// the mix, a quarter of its GETs of the latest version as HEADs. An Input
// with no Op is nothing to record.
func (c *client) next(ctx context.Context, inc *incarnation, w *workload) (lincheck.Input, lincheck.Output, error) {
	c.n++
	value := fmt.Sprintf("c%d-%d", c.id, c.n)
	switch r := c.rng.IntN(100); {
	case r < 6:
		return c.copy(ctx, inc, w, value)
	case r < 11:
		return c.multipart(ctx, inc, w, value)
	}
	in := w.mix.Next(c.rng, value)
	head := in.Op == lincheck.Get && in.VersionID == "" && c.rng.IntN(4) == 0
	out, err := c.do(ctx, inc, w, in, head)
	return in, out, err
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

// userMeta is the metadata every write of value stores.
func userMeta(value string) map[string]string { return map[string]string{metaValue: value} }

// do runs one operation of the mix through the node's object layer; head
// makes a GET of the latest version a HEAD.
func (c *client) do(ctx context.Context, inc *incarnation, w *workload, in lincheck.Input, head bool) (lincheck.Output, error) {
	s := inc.obj
	im := c.sim.cfg.InlineMax
	switch in.Op {
	case lincheck.Get:
		oi, rc, err := s.GetObject(ctx, in.Bucket, in.Key, objects.GetOptions{VersionID: in.VersionID, HeadOnly: head})
		if err != nil {
			return answer(in, err)
		}
		var b []byte
		if rc != nil {
			b, err = io.ReadAll(rc)
			rc.Close()
			if err != nil {
				return lincheck.Output{}, err
			}
		}
		v, err := readValue(oi, b, im)
		if err != nil {
			return lincheck.Output{}, err
		}
		return lincheck.Output{Value: v, VersionID: oi.VersionID}, nil
	case lincheck.Put, lincheck.Create:
		b := body(in.Value, im)
		w.give(in.Bucket, in.Key, in.Value, md5hex(b))
		opts := objects.PutOptions{UserMeta: userMeta(in.Value)}
		if in.Op == lincheck.Create {
			opts.IfNoneMatch = "*"
		}
		if in.IfMatch != "" {
			opts.IfMatch = `"never-written"`
			if e, ok := w.etag(in.IfMatch); ok {
				opts.IfMatch = e
			}
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
				out.Objects = append(out.Objects, lincheck.Object{Key: o.Key, Value: w.value(in.Bucket, o.Key, o.ETag)})
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
				lv.Value = w.value(in.Bucket, v.Key, v.ETag)
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

// copy copies a key's latest known value to another key, on the
// condition (x-amz-copy-source-if-match) that the source still holds it,
// so that the body written is known; the history records the PUT of a
// value of its own that it is. A failed condition records nothing.
func (c *client) copy(ctx context.Context, inc *incarnation, w *workload, value string) (lincheck.Input, lincheck.Output, error) {
	keys, buckets := w.mix.Keys, w.mix.Buckets
	src := lincheck.Input{Bucket: buckets[c.rng.IntN(len(buckets))], Key: keys[c.rng.IntN(len(keys))]}
	dst := lincheck.Input{Op: lincheck.Put, Bucket: buckets[c.rng.IntN(len(buckets))], Key: keys[c.rng.IntN(len(keys))]}
	from, ok := w.mix.Latest(src.Bucket, src.Key)
	if !ok || src == (lincheck.Input{Bucket: dst.Bucket, Key: dst.Key}) {
		return lincheck.Input{}, lincheck.Output{}, nil
	}
	etag, ok := w.etag(from)
	dst.Value = value + "<" + base(from)
	if !ok || !w.give(dst.Bucket, dst.Key, dst.Value, md5hex(body(base(from), c.sim.cfg.InlineMax))) {
		return lincheck.Input{}, lincheck.Output{}, nil // the key had that body once: its ETag would name two values
	}
	oi, err := inc.obj.CopyObject(ctx, objects.CopySource{Bucket: src.Bucket, Key: src.Key, Cond: objects.Preconditions{IfMatch: etag}, ReplaceMetadata: true},
		dst.Bucket, dst.Key, objects.PutOptions{UserMeta: userMeta(dst.Value)})
	if errors.Is(err, objects.ErrPreconditionFailed) || errors.Is(err, objects.ErrNoSuchKey) || errors.Is(err, objects.ErrNoSuchBucket) {
		// The source holds another value now, or one of the buckets is
		// missing (which one, the answer does not say): no effect.
		return lincheck.Input{}, lincheck.Output{}, nil
	}
	if err != nil {
		out, err := answer(dst, err)
		return dst, out, err
	}
	return dst, lincheck.Output{VersionID: oi.VersionID}, nil
}

// partMin is the sim's least part size (S3: 5 MiB), for small bodies in
// several parts.
const partMin = 512

// multipart writes value in a multipart upload of up to three parts; a
// third of the time another actor aborts the upload while its parts go
// up or it completes. The history records the completion as a PUT.
func (c *client) multipart(ctx context.Context, inc *incarnation, w *workload, value string) (lincheck.Input, lincheck.Output, error) {
	keys, buckets := w.mix.Keys, w.mix.Buckets
	in := lincheck.Input{Op: lincheck.Put, Bucket: buckets[c.rng.IntN(len(buckets))], Key: keys[c.rng.IntN(len(keys))], Value: value}
	b := body(value, c.sim.cfg.InlineMax)
	var parts [][]byte
	for rest := b; len(rest) > 0 || len(parts) == 0; {
		n := len(rest)
		if len(parts) < 2 && n >= 2*partMin {
			n = partMin + c.rng.IntN(n-2*partMin+1)
		}
		parts, rest = append(parts, rest[:n]), rest[n:]
	}
	var sums []byte
	for _, p := range parts {
		sum := md5.Sum(p)
		sums = append(sums, sum[:]...)
	}
	w.give(in.Bucket, in.Key, value, fmt.Sprintf("%s-%d", md5hex(sums), len(parts)))
	s := inc.obj
	id, err := s.CreateMultipartUpload(ctx, in.Bucket, in.Key, objects.PutOptions{UserMeta: userMeta(value)})
	if err != nil {
		return lincheck.Input{}, lincheck.Output{}, nil // no upload, no effect
	}
	if c.rng.IntN(3) == 0 {
		wait := time.Duration(c.rng.IntN(12)) * time.Millisecond
		c.sim.spawn(func() {
			c.sim.sleep(wait, fmt.Sprintf("abort %s", id))
			actx, cancel := context.WithTimeout(withActor(context.WithoutCancel(ctx), "aborter"), opTimeout)
			defer cancel()
			_ = s.AbortMultipartUpload(actx, in.Bucket, in.Key, id)
		})
	}
	var done []objects.CompletePart
	for i, p := range parts {
		pi, err := s.UploadPart(ctx, in.Bucket, in.Key, id, i+1, bytes.NewReader(p), int64(len(p)), objects.PartOptions{})
		if err != nil {
			return lincheck.Input{}, lincheck.Output{}, nil // an upload never completed has no effect on the object
		}
		done = append(done, objects.CompletePart{Number: i + 1, ETag: pi.ETag})
	}
	oi, err := s.CompleteMultipartUpload(ctx, in.Bucket, in.Key, id, done, objects.CompleteOptions{})
	if errors.Is(err, objects.ErrNoSuchUpload) {
		return lincheck.Input{}, lincheck.Output{}, nil // aborted first
	}
	if err != nil {
		out, err := answer(in, err)
		return in, out, err
	}
	return in, lincheck.Output{VersionID: oi.VersionID}, nil
}
