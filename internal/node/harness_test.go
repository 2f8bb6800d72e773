package node

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/redoubt-io/redoubt/internal/admin"
	"github.com/redoubt-io/redoubt/internal/lincheck/s3load"
	"github.com/redoubt-io/redoubt/internal/placement"
	"github.com/redoubt-io/redoubt/internal/testlog"
	"github.com/redoubt-io/redoubt/internal/transport"
)

// The in-process cluster of these tests: real nodes (drives on disk, Raft,
// the S3 front end on a loopback port) joined by an in-memory network
// that can kill nodes and split the network, driven by aws-sdk-go-v2
// clients as a user's program would drive it.

const (
	clusterAccessKey = "clustertestaccesskey"
	clusterSecretKey = "clustertestsecretkey0123456789"
	clusterRegion    = "us-east-1"
)

type clusterOptions struct {
	nodes, zones int
	partitions   int
	// raftTick 0 keeps the default tick, for tests about the failover time
	// a real deployment gets.
	raftTick time.Duration
	// wrap, when set, stands between each node and the network.
	wrap func(*transport.MemEndpoint) transport.Caller
	// policy, when set, is the redundancy instead of the one the
	// cluster's size gives.
	policy *placement.Policy
}

// testCluster is a set of nodes on one MemNetwork. Node i is in zone
// "zone-<'a'+i%zones>". Its methods are called from the test goroutine,
// except client, which any goroutine may call.
type testCluster struct {
	t      *testing.T
	mem    *transport.MemNetwork
	opts   clusterOptions
	secret []byte
	// joinAddr is node 0's address, where new nodes join.
	joinAddr string
	http     *http.Client
	nodes    []*testNode
}

// testNode is one node of a testCluster, up or crashed.
type testNode struct {
	index int
	id    transport.NodeID
	zone  string
	cfg   Config
	log   *slog.Logger

	mu     sync.Mutex
	n      *Node // nil while crashed
	client *s3.Client
	cancel context.CancelFunc
	done   chan error
}

// startCluster starts opts.nodes nodes, node 0 first (it bootstraps the
// cluster; the others join through it), and waits until the cluster is
// ready (waitReady).
func startCluster(t *testing.T, opts clusterOptions) *testCluster {
	t.Helper()
	if opts.partitions == 0 {
		opts.partitions = 16
	}
	tc := &testCluster{t: t, mem: transport.NewMemNetwork(), opts: opts,
		http: &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 16}}}
	tc.secret = make([]byte, 32)
	rand.Read(tc.secret)
	start := time.Now()
	for i := range opts.nodes {
		tc.launch(tc.newNode(fmt.Sprintf("zone-%c", 'a'+i%opts.zones)))
	}
	t.Cleanup(func() {
		for _, tn := range tc.nodes {
			tc.stop(tn)
		}
		tc.http.CloseIdleConnections()
	})
	tc.waitReady(60 * time.Second)
	t.Logf("cluster of %d nodes in %d zones ready in %v", opts.nodes, opts.zones, time.Since(start).Round(time.Millisecond))
	return tc
}

// newNode makes the next node of the cluster, in zone, on new drives
// and a new identity; it joins through node 0 unless it is node 0. It is
// not started.
func (tc *testCluster) newNode(zone string) *testNode {
	t := tc.t
	t.Helper()
	i := len(tc.nodes)
	idn, err := transport.NewIdentity(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ep := tc.mem.Node(idn.ID())
	base := filepath.Join(t.TempDir(), fmt.Sprintf("node%d", i))
	cfg := DefaultConfig()
	cfg.DataDirs = []string{filepath.Join(base, "d1"), filepath.Join(base, "d2")}
	cfg.S3Addr, cfg.AdminAddr = "127.0.0.1:0", "127.0.0.1:0"
	cfg.Region = clusterRegion
	cfg.ShutdownTimeout = time.Second
	cfg.Credentials = &Credentials{AccessKey: clusterAccessKey, SecretKey: clusterSecretKey}
	cfg.Policy = tc.opts.policy
	cfg.RepairRate = 0
	cc := DefaultClusterConfig()
	cc.Zone, cc.Secret, cc.BootstrapExpect, cc.Partitions = zone, tc.secret, tc.opts.nodes, tc.opts.partitions
	cc.Net, cc.NoGossip, cc.RaftTick, cc.LayoutPoll = ep, true, tc.opts.raftTick, 50*time.Millisecond
	if tc.opts.wrap != nil {
		cc.Net = tc.opts.wrap(ep)
	}
	if i == 0 {
		tc.joinAddr = ep.Addr()
	} else {
		cc.Join = []string{tc.joinAddr}
	}
	cfg.Cluster = &cc
	logger := slog.New(slog.NewTextHandler(testlog.Writer(t), &slog.HandlerOptions{Level: slog.LevelWarn})).
		With("node", i)
	tn := &testNode{index: i, id: idn.ID(), zone: zone, cfg: cfg, log: logger}
	tc.nodes = append(tc.nodes, tn)
	return tn
}

// addNode starts a new node in zone that joins the running cluster,
// applies the layout that adds it (through node via), and returns its
// index and the new layout version. The cluster's expected node count
// (waitReady) grows by one.
func (tc *testCluster) addNode(via int, zone string) (int, uint64) {
	tc.t.Helper()
	tn := tc.newNode(zone)
	tc.launch(tn)
	c := tc.node(via).cluster
	var version uint64
	err := retryUnavailable(30*time.Second, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		v, err := c.Apply(ctx, 0)
		version = v.Version
		return err
	})
	if err != nil {
		tc.t.Fatalf("adding node %d to the layout: %v", tn.index, err)
	}
	tc.opts.nodes++
	return tn.index, version
}

// launch starts tn from its config and serves it until stop.
func (tc *testCluster) launch(tn *testNode) {
	t := tc.t
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	n, err := Start(ctx, tn.cfg, tn.log)
	cancel()
	if err != nil && tn.cfg.S3Addr != "127.0.0.1:0" {
		// The S3 port of the previous run was taken meanwhile: any will do,
		// clients follow the node.
		tn.cfg.S3Addr = "127.0.0.1:0"
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		n, err = Start(ctx, tn.cfg, tn.log)
		cancel()
	}
	if err != nil {
		t.Fatalf("starting node %d: %v", tn.index, err)
	}
	// A restart listens where the node listened before, so that a client
	// holding its address reaches it again, as with a real server.
	tn.cfg.S3Addr = strings.TrimPrefix(n.S3URL, "http://")
	sctx, scancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.Serve(sctx) }()
	tn.mu.Lock()
	tn.n, tn.cancel, tn.done = n, scancel, done
	tn.client = tc.newClient(n.S3URL)
	tn.mu.Unlock()
}

// stop ends tn's Serve and waits for it to return; a no-op on a node
// already stopped.
func (tc *testCluster) stop(tn *testNode) {
	tc.halt(tn)
	tc.reap(tn)
}

// halt makes tn stop serving without waiting for it to wind down: its
// listeners close at once, its in-flight work ends in the background.
func (tc *testCluster) halt(tn *testNode) {
	tn.mu.Lock()
	defer tn.mu.Unlock()
	if tn.n == nil {
		return
	}
	tn.cancel()
	tn.n, tn.client = nil, nil
}

// reap waits until a halted node has released its drives.
func (tc *testCluster) reap(tn *testNode) {
	tn.mu.Lock()
	done := tn.done
	tn.done = nil
	tn.mu.Unlock()
	if done == nil {
		return
	}
	select {
	case err := <-done:
		if err != nil {
			tc.t.Errorf("node %d stopped with: %v", tn.index, err)
		}
	case <-time.After(60 * time.Second):
		tc.t.Errorf("node %d did not stop within 60s", tn.index)
	}
}

// crash cuts node i off the network, as a dead process is, and stops
// what is left of it in this process; that winds down in the background
// (in-flight metadata calls wait for their timeout), so the crash takes
// no time.
func (tc *testCluster) crash(i int) {
	tc.t.Helper()
	tc.mem.Kill(tc.nodes[i].id)
	tc.halt(tc.nodes[i])
}

// restart starts a crashed node again on its drives, with its identity,
// once what was left of it has let go of them.
func (tc *testCluster) restart(i int) {
	tc.t.Helper()
	tc.reap(tc.nodes[i])
	tc.mem.Revive(tc.nodes[i].id)
	tc.launch(tc.nodes[i])
}

// up lists the nodes that are running.
func (tc *testCluster) up() []int {
	var out []int
	for i := range tc.nodes {
		if tc.node(i) != nil {
			out = append(out, i)
		}
	}
	return out
}

func (tc *testCluster) node(i int) *Node {
	tn := tc.nodes[i]
	tn.mu.Lock()
	defer tn.mu.Unlock()
	return tn.n
}

// client is an S3 client of node i, nil while it is down. It does not
// retry, so that every failure shows.
func (tc *testCluster) client(i int) *s3.Client {
	tn := tc.nodes[i]
	tn.mu.Lock()
	defer tn.mu.Unlock()
	return tn.client
}

func (tc *testCluster) newClient(url string) *s3.Client {
	return s3.New(s3.Options{
		Region:                     clusterRegion,
		Credentials:                credentials.NewStaticCredentialsProvider(clusterAccessKey, clusterSecretKey, ""),
		BaseEndpoint:               aws.String(url),
		UsePathStyle:               true,
		RetryMaxAttempts:           1,
		HTTPClient:                 tc.http,
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenSupported,
		ResponseChecksumValidation: aws.ResponseChecksumValidationWhenSupported,
	})
}

// waitReady polls the running nodes' status until each follows a layout
// of all the cluster's nodes and knows a leader for the System group and
// for every partition group it hosts, and the System group has the voters
// the layout gives it. That group grows one voter at a time after the
// nodes join, and may still have three or four when the partition groups
// have leaders: two of them lost then leave it without a quorum, though
// three nodes of five are up, and every object request, which reads its
// bucket there, answers 503 until one comes back. The cluster survives
// what its policy promises only once the group is whole.
func (tc *testCluster) waitReady(d time.Duration) time.Duration {
	tc.t.Helper()
	start := time.Now()
	var last string
	ok := pollUntil(d, func() bool {
		for _, i := range tc.up() {
			n := tc.node(i)
			if n == nil {
				continue
			}
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			st := n.Status(ctx).Cluster
			cancel()
			inLayout := 0
			if st != nil {
				for _, ns := range st.Nodes {
					if ns.InLayout {
						inLayout++
					}
				}
			}
			var system []string
			if l := n.cluster.Layout(); l != nil {
				system = l.SystemNodes()
			}
			switch {
			case st == nil || st.LayoutVersion == 0:
				last = fmt.Sprintf("node %d has no layout", i)
				return false
			case inLayout != tc.opts.nodes:
				last = fmt.Sprintf("node %d: layout has %d nodes, want %d", i, inLayout, tc.opts.nodes)
				return false
			case st.System.Member && st.System.Leader == "":
				last = fmt.Sprintf("node %d knows no System leader", i)
				return false
			case st.System.Member && !sameMembers(st.System.Voters, system):
				last = fmt.Sprintf("node %d: the System group's voters are %v, the layout gives it %v", i, st.System.Voters, system)
				return false
			case st.Groups.Leaderless > 0:
				last = fmt.Sprintf("node %d: %d of %d groups without a leader", i, st.Groups.Leaderless, st.Groups.Hosted)
				return false
			}
		}
		return true
	})
	if !ok {
		tc.t.Fatalf("cluster not ready within %v: %s", d, last)
	}
	return time.Since(start)
}

// sameMembers says whether a and b name the same nodes, in any order.
func sameMembers(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

// clusterStatus is node i's view of the cluster.
func (tc *testCluster) clusterStatus(i int) admin.ClusterStatus {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return tc.node(i).cluster.Status(ctx)
}

// pollUntil calls cond every 20 ms until it holds or d passes.
func pollUntil(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond) // polling a condition, not waiting for an event
	}
}

// createBucket makes a bucket through node i, retrying while the System
// group has no leader.
func (tc *testCluster) createBucket(i int, name string) {
	tc.t.Helper()
	err := retryUnavailable(10*time.Second, func() error {
		_, err := tc.client(i).CreateBucket(context.Background(), &s3.CreateBucketInput{Bucket: aws.String(name)})
		return err
	})
	if err != nil {
		tc.t.Fatalf("CreateBucket %s: %v", name, err)
	}
}

// partition cuts the network between the nodes of each side and those
// of the others (MemNetwork.Partition); the nodes are indexes.
func (tc *testCluster) partition(sides ...[]int) {
	var ids [][]transport.NodeID
	for _, side := range sides {
		var s []transport.NodeID
		for _, i := range side {
			s = append(s, tc.nodes[i].id)
		}
		ids = append(ids, s)
	}
	tc.mem.Partition(ids...)
}

// retryUnavailable retries f while it answers 503, as an SDK's retryer
// would, for at most d.
func retryUnavailable(d time.Duration, f func() error) error {
	deadline := time.Now().Add(d)
	for {
		err := f()
		if err == nil || errStatus(err) != http.StatusServiceUnavailable || time.Now().After(deadline) {
			return err
		}
		time.Sleep(50 * time.Millisecond) // client back-off between retries
	}
}

func putBytes(ctx context.Context, c *s3.Client, bucket, key string, body []byte) (*s3.PutObjectOutput, error) {
	return c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(key), Body: bytes.NewReader(body)})
}

func getBytes(ctx context.Context, c *s3.Client, bucket, key string) ([]byte, error) {
	out, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		return nil, err
	}
	defer out.Body.Close()
	return io.ReadAll(out.Body)
}

// errStatus and errCode read a failed SDK call: its HTTP status (0 when
// there was no response) and its S3 error code ("").
var errStatus, errCode = s3load.ErrStatus, s3load.ErrCode

// payload is n deterministic pseudo-random bytes derived from seed.
func payload(seed uint64, n int) []byte {
	b := make([]byte, n)
	x := seed*0x9e3779b97f4a7c15 + 1
	for i := 0; i < n; i += 8 {
		// splitmix64: cheap, and different for every (seed, offset).
		x += 0x9e3779b97f4a7c15
		z := x
		z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
		z = (z ^ (z >> 27)) * 0x94d049bb133111eb
		z ^= z >> 31
		for j := 0; j < 8 && i+j < n; j++ {
			b[i+j] = byte(z >> (8 * j))
		}
	}
	return b
}
