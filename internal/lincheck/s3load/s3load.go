// Package s3load drives lincheck's operations through real S3 clients and
// records the history porcupine checks: the linearizability tests of an
// in-process cluster (internal/node) and of real processes behind packet
// rules (e2e, the partition bed) share it.
//
// Clients send requests one at a time each, through nodes drawn at
// random; a request a client gave up on (after its patience) or that
// failed with 503 has an unknown outcome and is recorded as pending from
// its call on. A read that failed cannot have had an effect and is left
// out. Do reports, as a bug, an answer no crash or partition explains.
package s3load

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"

	"github.com/redoubt-io/redoubt/internal/lincheck"
)

// Answer is one request as a client saw it: for tests that judge more
// than the history, such as how soon a cut-off node refused.
type Answer struct {
	Node    int
	In      lincheck.Input
	Out     lincheck.Output
	Err     error
	Started time.Time
	Took    time.Duration
}

// Config says how a Load runs.
type Config struct {
	Mix     *lincheck.Mix
	Nodes   int
	Clients int
	// Client returns the client of node i, or nil while it is down.
	Client func(node int) *s3.Client
	// Patience is how long a client waits for an answer.
	Patience time.Duration
	// Bug is called with every answer no fault excuses.
	Bug func(node int, in lincheck.Input, out lincheck.Output, err error)
	// Observe, if set, sees every answer.
	Observe func(Answer)
}

// Load is clients sending a Mix's requests until Finish.
type Load struct {
	Start   time.Time
	mu      sync.Mutex
	history []porcupine.Operation
	dropped atomic.Int64
	stop    chan struct{}
	wg      sync.WaitGroup
}

// Run starts the clients; each draws its requests from its own stream of
// rng.
func Run(cfg Config, rng *rand.Rand) *Load {
	l := &Load{Start: time.Now(), stop: make(chan struct{})}
	var counter atomic.Int64
	var etags ETags
	for cl := range cfg.Clients {
		crng := rand.New(rand.NewPCG(rng.Uint64(), uint64(cl)))
		l.wg.Go(func() {
			for {
				select {
				case <-l.stop:
					return
				default:
				}
				in := cfg.Mix.Next(crng, fmt.Sprintf("v%d", counter.Add(1)))
				node := crng.IntN(cfg.Nodes)
				in.Node = node
				c := cfg.Client(node)
				if c == nil {
					continue // the node is down; a client would try another
				}
				started := time.Now()
				call := started.Sub(l.Start).Nanoseconds()
				out, keep, err, bug := do(c, in, &etags, cfg.Patience)
				ret := time.Since(l.Start).Nanoseconds()
				if cfg.Observe != nil {
					cfg.Observe(Answer{Node: node, In: in, Out: out, Err: err, Started: started, Took: time.Since(started)})
				}
				if bug != nil && cfg.Bug != nil {
					cfg.Bug(node, in, out, bug)
				}
				if !keep {
					l.dropped.Add(1)
					continue
				}
				cfg.Mix.Learn(in, out)
				if out.Unknown {
					ret = lincheck.Pending // may take effect at any time after its call
				}
				l.mu.Lock()
				l.history = append(l.history, porcupine.Operation{ClientId: cl, Input: in, Call: call, Output: out, Return: ret})
				l.mu.Unlock()
				if out.Unknown {
					// An SDK backs off before it tries again after a
					// 503 or a timeout. Without it, a side cut off from
					// a quorum, which refuses at once, would fill the
					// history with writes of unknown outcome, each of
					// which doubles what the checker must consider.
					select {
					case <-l.stop:
					case <-time.After(time.Duration(100+crng.IntN(400)) * time.Millisecond):
					}
				}
			}
		})
	}
	return l
}

// Ops is how many operations the history holds so far.
func (l *Load) Ops() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.history)
}

// Finish stops the clients and returns the history and how many
// requests were left out of it (failed reads, truncated listings,
// refused connections).
func (l *Load) Finish() ([]porcupine.Operation, int64) {
	close(l.stop)
	l.wg.Wait()
	return l.history, l.dropped.Load()
}

// Answers counts the history's operations by kind and answer, for the
// log: a run that never saw, say, a versioned GET checked nothing about
// it.
func Answers(history []porcupine.Operation) string {
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

// ETags maps the ETag of every value written to the value, so that a
// listing, which shows ETags, says which write it shows.
type ETags struct{ m sync.Map }

// ETagOf is the ETag of an object whose body is value.
func ETagOf(value string) string {
	sum := md5.Sum([]byte(value))
	return `"` + hex.EncodeToString(sum[:]) + `"`
}

func (e *ETags) note(value string) string {
	etag := ETagOf(value)
	e.m.Store(etag, value)
	return etag
}

// value is the value an ETag stands for; one no write made stands for
// itself, which no model state holds.
func (e *ETags) value(etag string) string {
	if e == nil {
		return "etag " + etag
	}
	if v, ok := e.m.Load(etag); ok {
		return v.(string)
	}
	return "etag " + etag
}

// errTruncated: a version listing had more than a page. Its pages are read
// at different times, so one key's versions may come from two of them,
// which S3 does not promise to be one state; such a listing is left out.
var errTruncated = errors.New("version listing truncated")

// Do runs one request. keep is false when the request cannot have had an
// effect and need not be in the history: a failed read, or a connection
// refused. bug is an answer no fault excuses.
func Do(c *s3.Client, in lincheck.Input, etags *ETags, patience time.Duration) (out lincheck.Output, keep bool, bug error) {
	out, keep, _, bug = do(c, in, etags, patience)
	return out, keep, bug
}

func do(c *s3.Client, in lincheck.Input, etags *ETags, patience time.Duration) (out lincheck.Output, keep bool, err, bug error) {
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()
	out, err = Call(ctx, c, in, etags)
	switch {
	case err == nil:
		return out, true, nil, nil
	case errors.Is(err, errTruncated):
		return out, false, err, nil
	case isRead(in.Op), notSent(err):
		return out, false, err, unexcused(err)
	}
	return out, true, err, unexcused(err)
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

// Call runs one request with in.Value as the body of a put or create
// (etags, if not nil, learns its ETag), and returns what a history records
// of it and the error that failed it. An answer of the model (NoSuchKey,
// PreconditionFailed, ...) is no error; a write that failed has an
// unknown outcome.
func Call(ctx context.Context, c *s3.Client, in lincheck.Input, etags *ETags) (lincheck.Output, error) {
	out, err := send(ctx, c, in, etags)
	if err == nil {
		return out, nil
	}
	code := ErrCode(err)
	if in.Op == lincheck.HeadBucket && ErrStatus(err) == http.StatusNotFound {
		code = lincheck.NoSuchBucket // a HEAD answer has no body to name it
	}
	if slices.Contains(modelErrors, code) {
		return lincheck.Output{Err: code}, nil
	}
	return lincheck.Output{Unknown: true}, err
}

// send sends in as the request it stands for and returns its answer.
func send(ctx context.Context, c *s3.Client, in lincheck.Input, etags *ETags) (lincheck.Output, error) {
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
			pi.IfMatch = aws.String(ETagOf(in.IfMatch))
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
		return list(ctx, c, in, etags)
	case lincheck.ListVersions:
		return listVersions(ctx, c, in, etags)
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

// list reads every page of a ListObjectsV2 under in.Prefix.
func list(ctx context.Context, c *s3.Client, in lincheck.Input, etags *ETags) (lincheck.Output, error) {
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

// listVersions reads one page of ListObjectVersions under in.Prefix; a
// page that is not the whole listing is errTruncated.
func listVersions(ctx context.Context, c *s3.Client, in lincheck.Input, etags *ETags) (lincheck.Output, error) {
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
	switch st := ErrStatus(err); {
	case st == 0, st == http.StatusServiceUnavailable:
		return nil
	case errors.Is(err, context.DeadlineExceeded):
		return nil
	case ErrCode(err) == "ConditionalRequestConflict":
		return nil
	}
	return err
}

// ErrStatus is the HTTP status of an S3 error, or 0.
func ErrStatus(err error) int {
	var re *awshttp.ResponseError
	if errors.As(err, &re) {
		return re.HTTPStatusCode()
	}
	return 0
}

// ErrCode is the S3 error code of err, or "".
func ErrCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

// notSent says the request never reached a server: the connection was
// refused, so it cannot have had an effect.
func notSent(err error) bool {
	var oe *net.OpError
	return errors.As(err, &oe) && oe.Op == "dial"
}

// Versions lists every version and delete marker of bucket through c, as
// key -> sorted "versionID ETag" ("versionID marker" for a marker): what
// tests compare between nodes, or sites, that should hold the same.
func Versions(ctx context.Context, c *s3.Client, bucket string) (map[string][]string, error) {
	out := map[string][]string{}
	in := &s3.ListObjectVersionsInput{Bucket: aws.String(bucket)}
	for {
		res, err := c.ListObjectVersions(ctx, in)
		if err != nil {
			return nil, err
		}
		for _, v := range res.Versions {
			k := aws.ToString(v.Key)
			out[k] = append(out[k], aws.ToString(v.VersionId)+" "+aws.ToString(v.ETag))
		}
		for _, m := range res.DeleteMarkers {
			k := aws.ToString(m.Key)
			out[k] = append(out[k], aws.ToString(m.VersionId)+" marker")
		}
		if !aws.ToBool(res.IsTruncated) {
			break
		}
		in.KeyMarker, in.VersionIdMarker = res.NextKeyMarker, res.NextVersionIdMarker
	}
	for _, vs := range out {
		sort.Strings(vs)
	}
	return out, nil
}
