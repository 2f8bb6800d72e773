package node

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/redoubt-io/redoubt/internal/lincheck"
	"github.com/redoubt-io/redoubt/internal/transport"
)

var (
	linSeed     = flag.Uint64("lin.seed", 0, "seed of the S3 linearizability test (0: from the clock)")
	linDuration = flag.Duration("lin.duration", 5*time.Second, "how long the S3 linearizability workload runs")
	linNodes    = flag.Int("lin.nodes", 5, "nodes of the S3 linearizability test's cluster")
)

// TestLinearizableS3UnderFaults has clients PUT, GET, DELETE and
// create-if-absent a few keys through random nodes while a seeded
// schedule crashes and restarts nodes and splits and heals the network,
// and checks with porcupine that the history is linearizable.
func TestLinearizableS3UnderFaults(t *testing.T) {
	rng, seed := testSeed(t, *linSeed, "lin.seed")
	nodes := *linNodes
	tc := startCluster(t, clusterOptions{nodes: nodes, zones: 3, raftTick: 20 * time.Millisecond})
	const bucket = "lin"
	tc.createBucket(0, bucket)
	keys := []string{"a", "b", "c", "d"}

	start := time.Now()
	var (
		hmu     sync.Mutex
		history []porcupine.Operation
		counter atomic.Int64
		dropped atomic.Int64
		stop    = make(chan struct{})
		wg      sync.WaitGroup
	)
	const clients = 8
	for cl := range clients {
		wg.Add(1)
		crng := rand.New(rand.NewPCG(rng.Uint64(), uint64(cl)))
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				in := lincheck.RandomInput(crng, keys, fmt.Sprintf("v%d", counter.Add(1)))
				node := crng.IntN(nodes)
				in.Node = node
				c := tc.client(node)
				if c == nil {
					continue // the node is down; a client would try another
				}
				call := time.Since(start).Nanoseconds()
				out, keep, bug := s3Do(c, bucket, in)
				ret := time.Since(start).Nanoseconds()
				if bug != nil {
					t.Errorf("%s %s through node %d: %v", in.Op, in.Key, node, bug)
				}
				if !keep {
					dropped.Add(1)
					continue
				}
				if out.Unknown {
					ret = lincheck.Pending // may take effect at any time after its call
				}
				hmu.Lock()
				history = append(history, porcupine.Operation{ClientId: cl, Input: in, Call: call, Output: out, Return: ret})
				hmu.Unlock()
			}
		}()
	}

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
	close(stop)
	wg.Wait()
	t.Logf("faults: %s", strings.Join(faults, ", "))

	t.Logf("%d failed reads or refused connections left out of the history", dropped.Load())
	lincheck.Check(t, history, seed)
}

// s3Do runs one request. keep is false when the request cannot have had
// an effect and need not be in the history: a failed read, or a
// connection refused. bug is an answer no fault excuses.
func s3Do(c *s3.Client, bucket string, in lincheck.Input) (out lincheck.Output, keep bool, bug error) {
	// A client that gives up after 2 s, as an impatient one does, rather
	// than waiting out a minority's proposal timeout: its write has an
	// unknown outcome.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	out, err := s3Call(ctx, c, bucket, in)
	switch {
	case err == nil:
		return out, true, nil
	case in.Op == lincheck.Get, notSent(err):
		return out, false, unexcused(err)
	}
	return out, true, unexcused(err)
}

// s3Call runs one request with in.Value as the body of a put or create,
// and returns what a history records of it and the error that failed it.
// An answer of the model (absent on GET, 412 on create) is no error; a
// write that failed has an unknown outcome.
func s3Call(ctx context.Context, c *s3.Client, bucket string, in lincheck.Input) (lincheck.Output, error) {
	var err error
	switch in.Op {
	case lincheck.Get:
		var o *s3.GetObjectOutput
		o, err = c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(in.Key)})
		if err == nil {
			b, rerr := io.ReadAll(o.Body)
			o.Body.Close()
			if rerr != nil {
				return lincheck.Output{}, rerr
			}
			return lincheck.Output{Value: string(b)}, nil
		}
		if errCode(err) == lincheck.NoSuchKey {
			return lincheck.Output{Err: lincheck.NoSuchKey}, nil
		}
		return lincheck.Output{}, err
	case lincheck.Put, lincheck.Create:
		pi := &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(in.Key), Body: strings.NewReader(in.Value)}
		if in.Op == lincheck.Create {
			pi.IfNoneMatch = aws.String("*")
		}
		_, err = c.PutObject(ctx, pi)
		switch {
		case err == nil:
			return lincheck.Output{}, nil
		case in.Op == lincheck.Create && errStatus(err) == http.StatusPreconditionFailed:
			return lincheck.Output{Err: lincheck.PreconditionFailed}, nil
		}
	case lincheck.Delete:
		_, err = c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(bucket), Key: aws.String(in.Key)})
		if err == nil {
			return lincheck.Output{}, nil
		}
	default:
		err = fmt.Errorf("unknown op %q", in.Op)
	}
	return lincheck.Output{Unknown: true}, err
}

// unexcused returns err if it is an answer that no crash or partition
// explains: anything but 503, a timeout or a broken connection.
func unexcused(err error) error {
	switch st := errStatus(err); {
	case st == 0, st == http.StatusServiceUnavailable:
		return nil
	case errors.Is(err, context.DeadlineExceeded):
		return nil
	}
	return err
}
