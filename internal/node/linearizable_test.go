package node

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/redoubt-io/redoubt/internal/lincheck"
	"github.com/redoubt-io/redoubt/internal/transport"
)

var (
	linSeed     = flag.Uint64("lin.seed", 0, "seed of the S3 linearizability test (0: from the clock)")
	linDuration = flag.Duration("lin.duration", 5*time.Second, "how long the S3 linearizability workload runs")
	linNodes    = flag.Int("lin.nodes", 5, "nodes of the S3 linearizability test's cluster")
)

// TestLinearizableS3UnderFaults has clients send every request whose
// semantics users rely on (PUT plain and conditional, GET and DELETE of the
// latest version or of one version, ListObjectsV2, ListObjectVersions,
// versioning changes, and DeleteBucket and CreateBucket of a second
// bucket) through random nodes, while a seeded schedule crashes and
// restarts nodes and splits and heals the network, and checks with
// porcupine that the history is linearizable under lincheck's model.
func TestLinearizableS3UnderFaults(t *testing.T) {
	rng, seed := testSeed(t, *linSeed, "lin.seed")
	nodes := *linNodes
	tc := startCluster(t, clusterOptions{nodes: nodes, zones: 3, raftTick: 20 * time.Millisecond})
	// "lin" has its versioning changed during the run; "lin2" is also
	// deleted (when a client finds it empty) and created again.
	tc.createBucket(0, "lin")
	tc.createBucket(0, "lin2")
	mix := &lincheck.Mix{
		Buckets:  []string{"lin", "lin", "lin2"},
		Churned:  []string{"lin2"},
		Keys:     []string{"a/1", "a/2", "b/3", "b/4"},
		Prefixes: []string{"", "a/", "b/"},
	}

	// Clients give up after 2 s, as impatient ones do, rather than wait
	// out a minority's proposal timeout: such a write has an unknown
	// outcome.
	load := startS3Load(t, tc, mix, rng, nodes, 8, 2*time.Second)
	start := load.start

	// The fault schedule: crash a node or bring the crashed one back;
	// split the network (one or two nodes cut off); heal. At most one
	// node is down at a time, so that most of the run has a majority.
	crashed := -1
	var faults []string
	deadline := time.Now().Add(*linDuration)
	for time.Now().Before(deadline) {
		faults = append(faults, fmt.Sprintf("@%dms", time.Since(start).Milliseconds()))
		switch rng.IntN(4) {
		case 0, 1:
			if crashed < 0 {
				crashed = rng.IntN(nodes)
				took := time.Now()
				tc.crash(crashed)
				faults = append(faults, fmt.Sprintf("crash %d (%v)", crashed, time.Since(took).Round(time.Millisecond)))
			} else {
				took := time.Now()
				tc.restart(crashed)
				faults = append(faults, fmt.Sprintf("restart %d (%v)", crashed, time.Since(took).Round(time.Millisecond)))
				crashed = -1
			}
		case 2:
			perm := rng.Perm(nodes)
			cut := 1 + rng.IntN((nodes-1)/2)
			var a, b []transport.NodeID
			for j, i := range perm {
				if j < cut {
					a = append(a, tc.nodes[i].id)
				} else {
					b = append(b, tc.nodes[i].id)
				}
			}
			tc.mem.Partition(a, b)
			faults = append(faults, fmt.Sprintf("cut off %v", perm[:cut]))
		default:
			tc.mem.Heal()
			faults = append(faults, "heal")
		}
		time.Sleep(time.Duration(200+rng.IntN(400)) * time.Millisecond) // the pace of faults, not a wait for an event
	}
	tc.mem.Heal()
	if crashed >= 0 {
		tc.restart(crashed)
	}
	history, dropped := load.finish()
	t.Logf("faults: %s", strings.Join(faults, ", "))

	t.Logf("%d failed reads, truncated version listings or refused connections left out of the history", dropped)
	t.Logf("answers: %s", answers(history))
	lincheck.Check(t, history, seed)
}

// s3Load is clients sending mix's requests through random nodes of a
// test cluster, each one at a time, and the history they record.
type s3Load struct {
	start   time.Time
	mu      sync.Mutex
	history []porcupine.Operation
	dropped atomic.Int64
	stop    chan struct{}
	wg      sync.WaitGroup
}

// startS3Load starts clients that run until finish. Each gives up on a
// request after patience; a write it gave up on has an unknown outcome.
func startS3Load(t *testing.T, tc *testCluster, mix *lincheck.Mix, rng *rand.Rand, nodes, clients int, patience time.Duration) *s3Load {
	l := &s3Load{start: time.Now(), stop: make(chan struct{})}
	var counter atomic.Int64
	var etags etagValues
	for cl := range clients {
		crng := rand.New(rand.NewPCG(rng.Uint64(), uint64(cl)))
		l.wg.Go(func() {
			for {
				select {
				case <-l.stop:
					return
				default:
				}
				in := mix.Next(crng, fmt.Sprintf("v%d", counter.Add(1)))
				node := crng.IntN(nodes)
				in.Node = node
				c := tc.client(node)
				if c == nil {
					continue // the node is down; a client would try another
				}
				call := time.Since(l.start).Nanoseconds()
				out, keep, bug := s3Do(c, in, &etags, patience)
				ret := time.Since(l.start).Nanoseconds()
				if bug != nil {
					t.Errorf("%s through node %d: %v", lincheck.Describe(in, out), node, bug)
				}
				if !keep {
					l.dropped.Add(1)
					continue
				}
				mix.Learn(in, out)
				if out.Unknown {
					ret = lincheck.Pending // may take effect at any time after its call
				}
				l.mu.Lock()
				l.history = append(l.history, porcupine.Operation{ClientId: cl, Input: in, Call: call, Output: out, Return: ret})
				l.mu.Unlock()
			}
		})
	}
	return l
}

// ops is how many operations the history holds so far.
func (l *s3Load) ops() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.history)
}

// finish stops the clients and returns the history and how many
// requests were left out of it (failed reads, truncated listings,
// refused connections).
func (l *s3Load) finish() ([]porcupine.Operation, int64) {
	close(l.stop)
	l.wg.Wait()
	return l.history, l.dropped.Load()
}

// answers counts the history's operations by kind and answer, for the log:
// a run that never saw, say, a versioned GET checked nothing about it.
func answers(history []porcupine.Operation) string {
	n := map[string]int{}
	for _, op := range history {
		in, out := op.Input.(lincheck.Input), op.Output.(lincheck.Output)
		kind := in.Op
		if in.VersionID != "" {
			kind += "?versionId"
		}
		if in.IfMatch != "" {
			kind += " if-match"
		}
		switch {
		case out.Unknown:
			kind += " ?"
		case out.Err != "":
			kind += " " + out.Err
		default:
			kind += " ok"
		}
		n[kind]++
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(n)) {
		parts = append(parts, fmt.Sprintf("%s %d", k, n[k]))
	}
	return strings.Join(parts, ", ")
}

// etagValues maps the ETag of every value written to the value, so that a
// listing, which shows ETags, says which write it shows.
type etagValues struct{ m sync.Map }

func etagOf(value string) string {
	sum := md5.Sum([]byte(value))
	return `"` + hex.EncodeToString(sum[:]) + `"`
}

func (e *etagValues) note(value string) string {
	etag := etagOf(value)
	e.m.Store(etag, value)
	return etag
}

// value is the value an ETag stands for; one no write made stands for
// itself, which no model state holds.
func (e *etagValues) value(etag string) string {
	if v, ok := e.m.Load(etag); ok {
		return v.(string)
	}
	return "etag " + etag
}

// errTruncated: a version listing had more than a page. Its pages are read
// at different times, so one key's versions may come from two of them,
// which S3 does not promise to be one state; such a listing is left out.
var errTruncated = errors.New("version listing truncated")

// s3Do runs one request. keep is false when the request cannot have had
// an effect and need not be in the history: a failed read, or a
// connection refused. bug is an answer no fault excuses.
func s3Do(c *s3.Client, in lincheck.Input, etags *etagValues, patience time.Duration) (out lincheck.Output, keep bool, bug error) {
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()
	out, err := s3Call(ctx, c, in, etags)
	switch {
	case err == nil:
		return out, true, nil
	case errors.Is(err, errTruncated):
		return out, false, nil
	case isRead(in.Op), notSent(err):
		return out, false, unexcused(err)
	}
	return out, true, unexcused(err)
}

func isRead(op string) bool {
	switch op {
	case lincheck.Get, lincheck.List, lincheck.ListVersions, lincheck.HeadBucket, lincheck.GetVersioning:
		return true
	}
	return false
}

// modelErrors are the S3 error codes that are answers of the model.
var modelErrors = []string{
	lincheck.NoSuchBucket, lincheck.NoSuchKey, lincheck.NoSuchVersion, lincheck.MethodNotAllowed,
	lincheck.PreconditionFailed, lincheck.BucketExists, lincheck.BucketNotEmpty,
}

// s3Call runs one request with in.Value as the body of a put or create
// (etags, if not nil, learns its ETag), and returns what a history records
// of it and the error that failed it. An answer of the model (NoSuchKey,
// PreconditionFailed, ...) is no error; a write that failed has an
// unknown outcome.
func s3Call(ctx context.Context, c *s3.Client, in lincheck.Input, etags *etagValues) (lincheck.Output, error) {
	out, err := s3Send(ctx, c, in, etags)
	if err == nil {
		return out, nil
	}
	code := errCode(err)
	if in.Op == lincheck.HeadBucket && errStatus(err) == http.StatusNotFound {
		code = lincheck.NoSuchBucket // a HEAD answer has no body to name it
	}
	if slices.Contains(modelErrors, code) {
		return lincheck.Output{Err: code}, nil
	}
	return lincheck.Output{Unknown: true}, err
}

// s3Send sends in as the request it stands for and returns its answer.
func s3Send(ctx context.Context, c *s3.Client, in lincheck.Input, etags *etagValues) (lincheck.Output, error) {
	bucket, key := aws.String(in.Bucket), aws.String(in.Key)
	switch in.Op {
	case lincheck.Get:
		gi := &s3.GetObjectInput{Bucket: bucket, Key: key}
		if in.VersionID != "" {
			gi.VersionId = aws.String(in.VersionID)
		}
		o, err := c.GetObject(ctx, gi)
		if err != nil {
			return lincheck.Output{}, err
		}
		defer o.Body.Close()
		b, err := io.ReadAll(o.Body)
		if err != nil {
			return lincheck.Output{}, err
		}
		return lincheck.Output{Value: string(b), VersionID: aws.ToString(o.VersionId)}, nil
	case lincheck.Put, lincheck.Create:
		if etags != nil {
			etags.note(in.Value)
		}
		pi := &s3.PutObjectInput{Bucket: bucket, Key: key, Body: strings.NewReader(in.Value)}
		if in.Op == lincheck.Create {
			pi.IfNoneMatch = aws.String("*")
		}
		if in.IfMatch != "" {
			pi.IfMatch = aws.String(etagOf(in.IfMatch))
		}
		o, err := c.PutObject(ctx, pi)
		if err != nil {
			return lincheck.Output{}, err
		}
		return lincheck.Output{VersionID: aws.ToString(o.VersionId)}, nil
	case lincheck.Delete:
		di := &s3.DeleteObjectInput{Bucket: bucket, Key: key}
		if in.VersionID != "" {
			di.VersionId = aws.String(in.VersionID)
		}
		o, err := c.DeleteObject(ctx, di)
		if err != nil {
			return lincheck.Output{}, err
		}
		out := lincheck.Output{DeleteMarker: aws.ToBool(o.DeleteMarker)}
		if in.VersionID == "" {
			out.VersionID = aws.ToString(o.VersionId)
		}
		return out, nil
	case lincheck.List:
		return s3List(ctx, c, in, etags)
	case lincheck.ListVersions:
		return s3ListVersions(ctx, c, in, etags)
	case lincheck.CreateBucket:
		_, err := c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: bucket})
		return lincheck.Output{}, err
	case lincheck.DeleteBucket:
		_, err := c.DeleteBucket(ctx, &s3.DeleteBucketInput{Bucket: bucket})
		return lincheck.Output{}, err
	case lincheck.HeadBucket:
		_, err := c.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: bucket})
		return lincheck.Output{}, err
	case lincheck.SetVersioning:
		_, err := c.PutBucketVersioning(ctx, &s3.PutBucketVersioningInput{
			Bucket:                  bucket,
			VersioningConfiguration: &types.VersioningConfiguration{Status: types.BucketVersioningStatus(in.Versioning)},
		})
		return lincheck.Output{}, err
	case lincheck.GetVersioning:
		o, err := c.GetBucketVersioning(ctx, &s3.GetBucketVersioningInput{Bucket: bucket})
		if err != nil {
			return lincheck.Output{}, err
		}
		return lincheck.Output{Versioning: string(o.Status)}, nil
	}
	return lincheck.Output{}, fmt.Errorf("unknown op %q", in.Op)
}

// s3List reads every page of a ListObjectsV2 under in.Prefix.
func s3List(ctx context.Context, c *s3.Client, in lincheck.Input, etags *etagValues) (lincheck.Output, error) {
	out := lincheck.Output{Objects: []lincheck.Object{}}
	p := s3.NewListObjectsV2Paginator(c, &s3.ListObjectsV2Input{Bucket: aws.String(in.Bucket), Prefix: aws.String(in.Prefix)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return lincheck.Output{}, err
		}
		for _, o := range page.Contents {
			out.Objects = append(out.Objects, lincheck.Object{Key: aws.ToString(o.Key), Value: etags.value(aws.ToString(o.ETag))})
		}
	}
	return out, nil
}

// listVersionsPage is the part of a ListVersionsResult the test reads. The
// SDK splits a page into versions and delete markers, losing their order
// within a key; the XML keeps it.
type listVersionsPage struct {
	IsTruncated bool
	Entries     []struct {
		XMLName   xml.Name // Version or DeleteMarker, and any other element
		Key       string
		VersionID string `xml:"VersionId"`
		ETag      string
	} `xml:",any"`
}

// s3ListVersions reads one page of ListObjectVersions under in.Prefix; a
// page that is not the whole listing is errTruncated.
func s3ListVersions(ctx context.Context, c *s3.Client, in lincheck.Input, etags *etagValues) (lincheck.Output, error) {
	var body bodyCapture
	_, err := c.ListObjectVersions(ctx, &s3.ListObjectVersionsInput{Bucket: aws.String(in.Bucket), Prefix: aws.String(in.Prefix)},
		func(o *s3.Options) { body.next, o.HTTPClient = o.HTTPClient, &body })
	if err != nil {
		return lincheck.Output{}, err
	}
	var page listVersionsPage
	if err := xml.Unmarshal(body.data, &page); err != nil {
		return lincheck.Output{}, fmt.Errorf("version listing: %w", err)
	}
	if page.IsTruncated {
		return lincheck.Output{}, errTruncated
	}
	out := lincheck.Output{Versions: []lincheck.Version{}}
	for _, e := range page.Entries {
		v := lincheck.Version{Key: e.Key, VersionID: e.VersionID}
		switch e.XMLName.Local {
		case "Version":
			v.Value = etags.value(e.ETag)
		case "DeleteMarker":
			v.DeleteMarker = true
		default:
			continue
		}
		out.Versions = append(out.Versions, v)
	}
	return out, nil
}

// bodyCapture is an HTTP client that keeps a copy of the body of the
// response it passes on.
type bodyCapture struct {
	next s3.HTTPClient
	data []byte
}

func (b *bodyCapture) Do(r *http.Request) (*http.Response, error) {
	resp, err := b.next.Do(r)
	if err != nil {
		return resp, err
	}
	b.data, err = io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	resp.Body = io.NopCloser(bytes.NewReader(b.data))
	return resp, nil
}

// unexcused returns err if it is an answer that no crash or partition
// explains: anything but 503, a timeout, a broken connection, or a
// conditional conflict (a change that kept meeting others).
func unexcused(err error) error {
	switch st := errStatus(err); {
	case st == 0, st == http.StatusServiceUnavailable:
		return nil
	case errors.Is(err, context.DeadlineExceeded):
		return nil
	case errCode(err) == "ConditionalRequestConflict":
		return nil
	}
	return err
}
