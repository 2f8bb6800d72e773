package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/redoubt-io/redoubt/internal/admin"
)

const testClusterSecret = "e2e-cluster-secret-0123456789abcdef"

// cluster is a set of real redoubt processes on loopback ports.
type cluster struct {
	t      *testing.T
	nodes  []*server
	rpc    []string
	secret string // path of the secret file
}

// freeAddrs returns n loopback addresses whose ports were free a moment
// ago. Cluster nodes advertise their RPC and gossip addresses, so they
// cannot ask for port 0. The ports come from below the kernel's ephemeral
// range: a port the kernel handed out for a listener on port 0 is also
// one it hands out as the source port of an outgoing connection, and the
// nodes already running make many, so such a port can be taken between
// the check and the new node's bind (a CI run failed on exactly that).
func freeAddrs(t *testing.T, n int) []string {
	t.Helper()
	portsMu.Lock()
	defer portsMu.Unlock()
	low := ephemeralLow()
	var out []string
	for tries := 0; len(out) < n; tries++ {
		if tries > 10000 {
			t.Fatalf("no free port below %d after %d tries", low, tries)
		}
		port := 10000 + rand.IntN(low-10000)
		if portsGiven[port] {
			continue
		}
		addr := fmt.Sprintf("127.0.0.1:%d", port)
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			continue
		}
		ln.Close()
		portsGiven[port] = true
		out = append(out, addr)
	}
	return out
}

var (
	portsMu    sync.Mutex
	portsGiven = map[int]bool{} // handed out already by this test binary
)

// ephemeralLow is the lowest port the kernel chooses for port 0 and for
// outgoing connections, or 32768 where that cannot be read.
func ephemeralLow() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 32768
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 32768
	}
	low, err := strconv.Atoi(f[0])
	if err != nil || low <= 11000 {
		return 32768
	}
	return low
}

// startCluster starts n nodes spread over zones, node 0 first, and waits
// until every node follows a layout with all of them and every partition
// group has a leader.
func startCluster(t *testing.T, n, zones int, extra ...string) *cluster {
	t.Helper()
	c := &cluster{t: t, secret: filepath.Join(t.TempDir(), "secret")}
	if err := os.WriteFile(c.secret, []byte(testClusterSecret), 0o600); err != nil {
		t.Fatal(err)
	}
	addrs := freeAddrs(t, 2*n)
	for i := range n {
		c.rpc = append(c.rpc, addrs[2*i])
	}
	for i := range n {
		args := c.nodeArgs(i, n, zones, addrs[2*i], addrs[2*i+1])
		c.nodes = append(c.nodes, startServer(t, serverOptions{drives: 2, args: append(args, extra...)}))
	}
	c.waitReady(c.nodes, n)
	return c
}

// nodeArgs are the flags of node i of n, spread over zones, that listens
// for its peers on rpc and gossip and joins through node 0.
func (c *cluster) nodeArgs(i, n, zones int, rpc, gossip string) []string {
	args := []string{"--rpc-addr", rpc, "--gossip-addr", gossip,
		"--zone", fmt.Sprintf("zone-%c", 'a'+i%zones), "--cluster-secret-file", c.secret,
		"--bootstrap-expect", fmt.Sprint(n)}
	if i > 0 {
		args = append(args, "--join", c.rpc[0])
	}
	return args
}

// clusterStatus fetches a node's /status.
func clusterStatus(ctx context.Context, s *server) (admin.Status, error) {
	var st admin.Status
	b, err := s.status(ctx)
	if err != nil {
		return st, err
	}
	err = json.Unmarshal(b, &st)
	return st, err
}

// waitReady polls until each of nodes sees a layout of want nodes, alive,
// and leaders for all the groups it hosts.
func (c *cluster) waitReady(nodes []*server, want int) {
	c.t.Helper()
	var last string
	ok := pollUntil(60*time.Second, func() bool {
		for i, s := range nodes {
			st, err := clusterStatus(context.Background(), s)
			switch {
			case err != nil:
				last = err.Error()
				return false
			case st.Cluster == nil || st.Cluster.LayoutVersion == 0:
				last = fmt.Sprintf("node %d has no layout", i)
				return false
			case st.Cluster.Groups.Leaderless > 0 || st.Cluster.System.Member && st.Cluster.System.Leader == "":
				last = fmt.Sprintf("node %d: %d groups without a leader", i, st.Cluster.Groups.Leaderless)
				return false
			}
			alive := 0
			for _, n := range st.Cluster.Nodes {
				if n.InLayout && n.State == admin.NodeAlive {
					alive++
				}
			}
			if alive < want {
				last = fmt.Sprintf("node %d sees %d of %d nodes alive in the layout", i, alive, want)
				return false
			}
		}
		return true
	})
	if !ok {
		c.t.Fatalf("cluster not ready: %s\n%s", last, tail(nodes[0].output(), 4000))
	}
}

type storedObject struct {
	key  string
	seed uint64
	size int
}

func TestClusterSurvivesTwoNodesAndAZone(t *testing.T) {
	if testing.Short() {
		t.Skip("starts five server processes")
	}
	c := startCluster(t, 5, 3)
	ctx := context.Background()
	first := sdkClient(c.nodes[0])
	bucket := newBucket(t, first, "cluster")

	// Objects of every kind: inline in metadata, one chunk, several
	// chunks; written through different nodes.
	var objs []storedObject
	sizes := []int{700, 200 << 10, 3<<20 + 12345}
	for i := range 24 {
		o := storedObject{key: fmt.Sprintf("obj/%02d", i), seed: uint64(1000 + i), size: sizes[i%len(sizes)]}
		cl := sdkClient(c.nodes[i%5])
		_, err := cl.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(o.key), Body: bytes.NewReader(payload(o.seed, o.size))})
		if err != nil {
			t.Fatalf("put %s via node %d: %v", o.key, i%5, err)
		}
		objs = append(objs, o)
	}
	readAll := func(s *server, what string) {
		t.Helper()
		cl := sdkClient(s)
		for _, o := range objs {
			got, err := getBytes(ctx, cl, bucket, o.key)
			if err != nil {
				t.Fatalf("%s: get %s: %v", what, o.key, err)
			}
			if !bytes.Equal(got, payload(o.seed, o.size)) {
				t.Fatalf("%s: %s differs (%d bytes, want %d)", what, o.key, len(got), o.size)
			}
		}
	}
	readAll(c.nodes[4], "all nodes up")

	// Zone a holds nodes 0 and 3: losing it is losing two nodes.
	c.nodes[0].kill()
	c.nodes[3].kill()
	readAll(c.nodes[1], "zone a down")
	readAll(c.nodes[2], "zone a down")

	// Writes go on: every metadata group has three of its five voters.
	cl := sdkClient(c.nodes[2])
	for i := range 10 {
		o := storedObject{key: fmt.Sprintf("after/%02d", i), seed: uint64(5000 + i), size: sizes[i%len(sizes)]}
		err := retryUnavailable(func() error {
			_, err := cl.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(o.key), Body: bytes.NewReader(payload(o.seed, o.size))})
			return err
		})
		if err != nil {
			t.Fatalf("put %s with zone a down: %v", o.key, err)
		}
		objs = append(objs, o)
	}
	readAll(c.nodes[4], "after writes with zone a down")

	// The killed nodes come back, catch up and serve.
	c.nodes[0].restart()
	c.nodes[3].restart()
	c.waitReady(c.nodes, 5)
	readAll(c.nodes[0], "restarted node 0")
	readAll(c.nodes[3], "restarted node 3")
}

// retryUnavailable retries a request that got 503 while a new Raft leader
// takes over, for at most 10 seconds, as an SDK with retries would.
func retryUnavailable(f func() error) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := f()
		if err == nil || errStatus(err) != 503 || time.Now().After(deadline) {
			return err
		}
		time.Sleep(100 * time.Millisecond) // client back-off between retries
	}
}

func TestClusterRefusesWrongSecret(t *testing.T) {
	if testing.Short() {
		t.Skip("starts server processes")
	}
	c := startCluster(t, 1, 1)
	addrs := freeAddrs(t, 2)
	bad := filepath.Join(t.TempDir(), "secret")
	os.WriteFile(bad, []byte("not-the-cluster-secret-0123456789"), 0o600)
	s := &server{t: t, opts: serverOptions{args: []string{"--rpc-addr", addrs[0], "--gossip-addr", addrs[1],
		"--cluster-secret-file", bad, "--join", c.rpc[0]}}}
	base := t.TempDir()
	s.Dirs = []string{filepath.Join(base, "d1")}
	out, err := s.runToExit(20 * time.Second)
	if err == nil {
		t.Fatalf("a node with the wrong secret started:\n%s", out)
	}
	if !strings.Contains(out, "refused") {
		t.Errorf("the intruder's error does not say it was refused:\n%s", out)
	}
	if !pollUntil(5*time.Second, func() bool { return strings.Contains(c.nodes[0].output(), "refused") }) {
		t.Errorf("the member did not log the refusal:\n%s", tail(c.nodes[0].output(), 3000))
	}
	st, err := clusterStatus(context.Background(), c.nodes[0])
	if err != nil || len(st.Cluster.Nodes) != 1 {
		t.Errorf("the cluster lists %d nodes after the intruder (err %v)", len(st.Cluster.Nodes), err)
	}
}

func TestDevCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts server processes")
	}
	// A base port whose ten-port blocks are free, below the ephemeral
	// range for the reason freeAddrs gives.
	var base int
	low := ephemeralLow()
	for range 100 {
		p := 10000 + rand.IntN(low-10000-40)
		free := true
		for i := range 40 {
			ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p+i))
			if err != nil {
				free = false
				break
			}
			ln.Close()
		}
		if free {
			base = p
			break
		}
	}
	// dev's default directory name, so that the admin verbs run beside it
	// find its credentials with no flag, as a new user runs them.
	cwd := t.TempDir()
	dir := filepath.Join(cwd, "redoubt-dev")
	d := &server{t: t}
	start := time.Now()
	out, err := d.runUntil([]string{"dev", "--nodes", "3", "--zones", "3", "--dir", dir, "--base-port", fmt.Sprint(base)},
		"Ctrl-C stops the cluster.", 30*time.Second)
	if err != nil {
		t.Fatalf("redoubt dev: %v\n%s", err, out)
	}
	ready := time.Since(start)
	t.Logf("dev cluster of 3 ready in %v", ready)
	if ready > 10*time.Second {
		t.Errorf("dev cluster took %v to be ready, want under 10s", ready)
	}
	for _, want := range []string{"S3 endpoint: http://127.0.0.1:", "Access key:", "Secret key:"} {
		if !strings.Contains(out, want) {
			t.Errorf("dev output lacks %q:\n%s", want, out)
		}
	}
	status := exec.Command(binary, "status", "--admin-addr", fmt.Sprintf("127.0.0.1:%d", base+13))
	status.Dir = cwd
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "REDOUBT_") {
			status.Env = append(status.Env, kv)
		}
	}
	if out, err := status.CombinedOutput(); err != nil || strings.Count(string(out), "alive") != 3 {
		t.Errorf("redoubt status beside the dev directory: %v\n%s", err, out)
	}
	if err := d.interruptAndWait(60 * time.Second); err != nil {
		t.Fatalf("dev did not stop cleanly on Ctrl-C: %v\n%s", err, d.output())
	}
	// No node outlives dev.
	for i := range 3 {
		conn, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", base+10*i))
		if err == nil {
			conn.Close()
			t.Errorf("node %d still listens after dev stopped", i+1)
		}
	}
}

// TestClusterLayoutVerbs grows a cluster the way an operator does: a new
// node joins, is staged, previewed and applied with the layout verbs.
func TestClusterLayoutVerbs(t *testing.T) {
	if testing.Short() {
		t.Skip("starts server processes")
	}
	c := startCluster(t, 3, 3)
	addrs := freeAddrs(t, 2)
	fourth := startServer(t, serverOptions{drives: 2, args: []string{"--rpc-addr", addrs[0], "--gossip-addr", addrs[1],
		"--zone", "zone-a", "--cluster-secret-file", c.secret, "--join", c.rpc[1]}})
	admin := strings.TrimPrefix(c.nodes[2].Admin, "http://")
	verb := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(binary, append(args, "--admin-addr", admin)...)
		cmd.Env = adminEnv()
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("redoubt %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	var show string
	if !pollUntil(20*time.Second, func() bool {
		show = verb("layout", "show")
		return strings.Contains(show, "Staged:") && strings.Contains(show, "add ")
	}) {
		t.Fatalf("the joined node is not staged:\n%s", show)
	}
	if out := verb("layout", "preview"); !strings.Contains(out, "v1 -> v2") || !strings.Contains(out, "shard slots move") {
		t.Errorf("preview:\n%s", out)
	}
	if out := verb("layout", "apply"); !strings.Contains(out, "layout v2 applied") {
		t.Fatalf("apply:\n%s", out)
	}
	c.waitReady(append(c.nodes, fourth), 4)
	if out := verb("status"); !strings.Contains(out, "layout v2") || strings.Count(out, "alive") < 4 {
		t.Errorf("status after the change:\n%s", out)
	}
	// The new node serves S3 like the others.
	cl := sdkClient(fourth)
	bucket := newBucket(t, cl, "grown")
	if _, err := cl.PutObject(context.Background(), &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String("k"), Body: bytes.NewReader(payload(9, 300<<10))}); err != nil {
		t.Fatal(err)
	}
	got, err := getBytes(context.Background(), sdkClient(c.nodes[0]), bucket, "k")
	if err != nil || !bytes.Equal(got, payload(9, 300<<10)) {
		t.Fatalf("read back through another node: %v", err)
	}
}
