package node

import (
	"flag"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/redoubt-io/redoubt/internal/lincheck"
	"github.com/redoubt-io/redoubt/internal/lincheck/s3load"
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
	start := load.Start

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
	history, dropped := load.Finish()
	t.Logf("faults: %s", strings.Join(faults, ", "))

	t.Logf("%d failed reads, truncated version listings or refused connections left out of the history", dropped)
	t.Logf("answers: %s", s3load.Answers(history))
	lincheck.Check(t, history, seed)
}

// startS3Load starts clients sending mix's requests through random
// nodes of tc until Finish; each gives up on a request after patience.
func startS3Load(t *testing.T, tc *testCluster, mix *lincheck.Mix, rng *rand.Rand, nodes, clients int, patience time.Duration) *s3load.Load {
	return s3load.Run(s3load.Config{
		Mix: mix, Nodes: nodes, Clients: clients, Patience: patience,
		Client: tc.client,
		Bug: func(node int, in lincheck.Input, out lincheck.Output, err error) {
			t.Errorf("%s through node %d: %v", lincheck.Describe(in, out), node, err)
		},
	}, rng)
}
