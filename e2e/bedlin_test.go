package e2e

import (
	"flag"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/redoubt-io/redoubt/internal/lincheck"
	"github.com/redoubt-io/redoubt/internal/lincheck/s3load"
)

var (
	bedSeed   = flag.Uint64("bed.seed", 0, "seed of the partition bed's fault schedule and workload (0: from the clock)")
	bedCycles = flag.Int("bed.cycles", 12, "partition/heal cycles of TestBedStrongLinearizableThroughCuts")
)

// cyclesPerRound bounds the history the checker is given at once: a
// round of cycles writes to buckets of its own, and its history is
// checked on its own. One history of 100 cycles (7,501 operations, 869 of
// unknown outcome) was more than the checker could decide in a minute.
const cyclesPerRound = 10

// bedZones is the zones of the linearizability bed's five nodes.
const bedZones = 3

// bedRand returns the bed's seed (-bed.seed, or one from the clock),
// logged so that the run replays, and a generator of stream stream from it.
func bedRand(t *testing.T, stream uint64) (uint64, *rand.Rand) {
	seed := *bedSeed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("seed %d (replay the schedule with -bed.seed=%d)", seed, seed)
	return seed, rand.New(rand.NewPCG(seed, stream))
}

// A strong bucket on 5 nodes in 3 zones while the network is cut and
// healed at random, with clients on every side: 2|3, 1|4 and 1|1|3
// splits and a one-way cut. The history of every request (the lincheck
// mix: plain, conditional and versioned PUT, GET and DELETE, listings,
// versioning changes, DeleteBucket and CreateBucket) is linearizable,
// and every request refused with 503, or not answered, while a cut held
// was refused within 2 s of its start. Replay with -bed.seed.
func TestBedStrongLinearizableThroughCuts(t *testing.T) {
	seed, rng := bedRand(t, 0)
	const nodes = 5
	b := startBed(t, nodes, bedZones)
	clients := make([]*s3.Client, nodes)
	for i := range clients {
		clients[i] = sdkClient(b.nodes[i])
	}

	// cutSince is when the cut now in force began (zero while healed); a
	// request is judged only if one cut held from its start to its end.
	var mu sync.Mutex
	var cutSince time.Time
	var slow []string
	slowest := time.Duration(0)
	refused, ops := 0, 0
	observe := func(a s3load.Answer) {
		if a.Err == nil || (s3load.ErrStatus(a.Err) != 503 && s3load.ErrStatus(a.Err) != 0) {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		if cutSince.IsZero() || a.Started.Before(cutSince) {
			return // not under one cut from start to end
		}
		refused++
		slowest = max(slowest, a.Took)
		if a.Took > 2*time.Second {
			slow = append(slow, fmt.Sprintf("%s through node %d: %v after %v", lincheck.Describe(a.In, a.Out), a.Node, a.Err, a.Took.Round(time.Millisecond)))
		}
	}

	for round := 0; round*cyclesPerRound < *bedCycles; round++ {
		lin, lin2 := fmt.Sprintf("lin-%d", round), fmt.Sprintf("lin2-%d", round)
		for _, name := range []string{lin, lin2} {
			err := retryUnavailable(func() error {
				_, err := clients[0].CreateBucket(t.Context(), &s3.CreateBucketInput{Bucket: &name})
				return err
			})
			if err != nil {
				t.Fatalf("create %s: %v", name, err)
			}
		}
		load := s3load.Run(s3load.Config{
			Mix: &lincheck.Mix{
				Buckets:  []string{lin, lin, lin2},
				Churned:  []string{lin2},
				Keys:     []string{"a/1", "a/2", "b/3", "b/4"},
				Prefixes: []string{"", "a/", "b/"},
			},
			Nodes: nodes, Clients: 10, Patience: 5 * time.Second,
			Client: func(i int) *s3.Client { return clients[i] },
			Bug: func(node int, in lincheck.Input, out lincheck.Output, err error) {
				t.Errorf("%s through node %d: %v", lincheck.Describe(in, out), node, err)
			},
			Observe: observe,
		}, rng)
		var schedule []string
		for range min(cyclesPerRound, *bedCycles-round*cyclesPerRound) {
			desc, cut, hold := b.randomCut(rng)
			schedule = append(schedule, desc)
			if cut {
				mu.Lock()
				cutSince = time.Now()
				mu.Unlock()
			}
			<-time.After(hold)
			mu.Lock()
			cutSince = time.Time{}
			mu.Unlock()
			b.heal()
			<-time.After(time.Duration(1000+rng.IntN(1000)) * time.Millisecond) // and the heal
		}
		history, dropped := load.Finish()
		ops += len(history)
		t.Logf("round %d: cuts %s", round, strings.Join(schedule, ", "))
		t.Logf("round %d: %d operations, %d failed reads or truncated listings left out; answers: %s",
			round, len(history), dropped, s3load.Answers(history))
		lincheck.Check(t, history, seed)
	}
	t.Logf("%d operations in all; %d requests refused or unanswered under a cut, the slowest after %v",
		ops, refused, slowest.Round(time.Millisecond))
	for _, s := range slow {
		t.Errorf("refused too slowly: %s", s)
	}
}

// randomCut harms the bed at random until the heal and says how: a
// 2|3, 1|4 or 1|1|3 partition or one direction of one link cut (cuts:
// the side without a quorum must refuse within 2 s), or a node paused
// (SIGSTOP) for 8 s, longer than gossip takes to declare it dead, a link
// cut and restored every 300 ms, or 5% loss and (where the kernel has
// netem) 200 ms of delay between one zone and the others (harms that slow
// answers rather than refuse them). cut says which kind it was; the harm holds for hold.
func (b *bed) randomCut(rng *rand.Rand) (desc string, cut bool, hold time.Duration) {
	hold = time.Duration(1500+rng.IntN(1500)) * time.Millisecond
	perm := rng.Perm(len(b.nodes))
	switch rng.IntN(7) {
	case 0:
		b.partition(perm[:2], perm[2:])
		return fmt.Sprintf("%v|%v", perm[:2], perm[2:]), true, hold
	case 1:
		b.partition(perm[:1], perm[1:])
		return fmt.Sprintf("%v|%v", perm[:1], perm[1:]), true, hold
	case 2:
		b.partition(perm[:1], perm[1:2], perm[2:])
		return fmt.Sprintf("%v|%v|%v", perm[:1], perm[1:2], perm[2:]), true, hold
	case 3:
		b.cutOneWay(perm[0], perm[1])
		return fmt.Sprintf("%d→%d", perm[0], perm[1]), true, hold
	case 4:
		b.pause(perm[0])
		return fmt.Sprintf("%d paused", perm[0]), false, 8 * time.Second
	case 5:
		b.flapLink(perm[0], perm[1], 300*time.Millisecond)
		return fmt.Sprintf("%d~%d flapping", perm[0], perm[1]), false, hold
	}
	zone := rng.IntN(bedZones)
	var in, out []int
	for i := range b.nodes {
		if i%bedZones == zone {
			in = append(in, i)
		} else {
			out = append(out, i)
		}
	}
	how := b.degrade(in, out, 200*time.Millisecond, 0.05)
	return fmt.Sprintf("%v to %v: %s", in, out, how), false, hold
}
