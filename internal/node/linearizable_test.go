package node

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/redoubt-io/redoubt/internal/transport"
)

var (
	linSeed     = flag.Uint64("lin.seed", 0, "seed of the S3 linearizability test (0: from the clock)")
	linDuration = flag.Duration("lin.duration", 5*time.Second, "how long the S3 linearizability workload runs")
	linNodes    = flag.Int("lin.nodes", 5, "nodes of the S3 linearizability test's cluster")
)

// s3Input and s3Output are one S3 request of the history: PUT, GET,
// DELETE, or PUT with If-None-Match: * ("create") on one key.
type s3Input struct {
	Op    string // put, get, del, create
	Key   string
	Value string // the body a put or create writes
	Node  int    // the node the request went to
}

type s3Output struct {
	Value   string // get: the body
	Found   bool   // get: 200 rather than 404
	OK      bool   // create: 200 rather than 412
	Unknown bool   // a write that failed in a way that leaves its effect unknown
}

// s3Model is a register per key: a state is the key's body, "" when the
// key does not exist (bodies are never empty). A write whose outcome is
// unknown may have happened or not.
var s3Model = porcupine.NondeterministicModel{
	Partition: func(history []porcupine.Operation) [][]porcupine.Operation {
		byKey := map[string][]porcupine.Operation{}
		var keys []string
		for _, op := range history {
			k := op.Input.(s3Input).Key
			if _, ok := byKey[k]; !ok {
				keys = append(keys, k)
			}
			byKey[k] = append(byKey[k], op)
		}
		out := make([][]porcupine.Operation, 0, len(keys))
		for _, k := range keys {
			out = append(out, byKey[k])
		}
		return out
	},
	Init: func() []any { return []any{""} },
	Step: func(state, input, output any) []any {
		s, in, out := state.(string), input.(s3Input), output.(s3Output)
		var next string
		switch in.Op {
		case "get":
			if out.Found == (s != "") && out.Value == s {
				return []any{s}
			}
			return nil
		case "put":
			next = in.Value
		case "del":
			// DELETE of a missing key succeeds too.
			next = ""
		case "create":
			switch {
			case out.Unknown && s == "":
				return []any{s, in.Value}
			case out.Unknown:
				return []any{s}
			case out.OK != (s == ""):
				return nil
			case out.OK:
				return []any{in.Value}
			}
			return []any{s}
		}
		if out.Unknown {
			return []any{s, next}
		}
		return []any{next}
	},
	Equal: func(a, b any) bool { return a == b },
	DescribeOperation: func(input, output any) string {
		in, out := input.(s3Input), output.(s3Output)
		var desc string
		switch {
		case out.Unknown:
			desc = fmt.Sprintf("%s(%s) %s -> ?", in.Op, in.Key, in.Value)
		case in.Op == "get" && out.Found:
			desc = fmt.Sprintf("get(%s) -> %s", in.Key, out.Value)
		case in.Op == "get":
			desc = fmt.Sprintf("get(%s) -> 404", in.Key)
		case in.Op == "create" && !out.OK:
			desc = fmt.Sprintf("create(%s) %s -> 412", in.Key, in.Value)
		default:
			desc = fmt.Sprintf("%s(%s) %s", in.Op, in.Key, in.Value)
		}
		return fmt.Sprintf("%s via node %d", desc, in.Node)
	},
	DescribeState: func(state any) string {
		if state == "" {
			return "absent"
		}
		return state.(string)
	},
}

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
				in := s3Input{Key: keys[crng.IntN(len(keys))], Value: fmt.Sprintf("v%d", counter.Add(1))}
				switch r := crng.IntN(10); {
				case r < 4:
					in.Op = "get"
				case r < 7:
					in.Op = "put"
				case r < 8:
					in.Op = "del"
				default:
					in.Op = "create"
				}
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
					ret = 1 << 62 // may take effect at any time after its call
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

	unknown := 0
	for _, op := range history {
		if op.Output.(s3Output).Unknown {
			unknown++
		}
	}
	checkStart := time.Now()
	res, info := porcupine.CheckOperationsVerbose(s3Model.ToModel(), history, 60*time.Second)
	t.Logf("%d operations (%d of unknown outcome, %d failed reads or refused connections left out) checked in %v: %s",
		len(history), unknown, dropped.Load(), time.Since(checkStart).Round(time.Millisecond), res)
	if res != porcupine.Ok {
		path := filepath.Join(os.TempDir(), fmt.Sprintf("redoubt-s3-linearizability-%d.html", seed))
		if err := porcupine.VisualizePath(s3Model.ToModel(), info, path); err != nil {
			t.Logf("writing the visualization: %v", err)
		} else {
			t.Logf("visualization: %s", path)
		}
	}
	switch res {
	case porcupine.Illegal:
		t.Fatal("the history is not linearizable (see the seed above)")
	case porcupine.Unknown:
		t.Fatal("the checker timed out; rerun with the seed above and a shorter -lin.duration")
	}
}

// s3Do runs one request. keep is false when the request cannot have had
// an effect and need not be in the history: a failed read, or a
// connection refused. bug is an answer no fault excuses.
func s3Do(c *s3.Client, bucket string, in s3Input) (out s3Output, keep bool, bug error) {
	// A client that gives up after 2 s, as an impatient one does, rather
	// than waiting out a minority's proposal timeout: its write has an
	// unknown outcome.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	var err error
	switch in.Op {
	case "get":
		var o *s3.GetObjectOutput
		o, err = c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(in.Key)})
		if err == nil {
			b, rerr := io.ReadAll(o.Body)
			o.Body.Close()
			if rerr != nil {
				return s3Output{}, false, nil
			}
			return s3Output{Value: string(b), Found: true}, true, nil
		}
		if errCode(err) == "NoSuchKey" {
			return s3Output{}, true, nil
		}
		return s3Output{}, false, unexcused(err)
	case "put", "create":
		pi := &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(in.Key), Body: strings.NewReader(in.Value)}
		if in.Op == "create" {
			pi.IfNoneMatch = aws.String("*")
		}
		_, err = c.PutObject(ctx, pi)
		switch {
		case err == nil && in.Op == "create":
			return s3Output{OK: true}, true, nil
		case err == nil:
			return s3Output{}, true, nil
		case in.Op == "create" && errStatus(err) == http.StatusPreconditionFailed:
			return s3Output{OK: false}, true, nil
		}
	case "del":
		_, err = c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(bucket), Key: aws.String(in.Key)})
		if err == nil {
			return s3Output{}, true, nil
		}
	}
	if notSent(err) {
		return s3Output{}, false, nil
	}
	return s3Output{Unknown: true}, true, unexcused(err)
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
