package blocks

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redoubt-io/redoubt/internal/placement"
	"github.com/redoubt-io/redoubt/internal/shardrpc"
	"github.com/redoubt-io/redoubt/internal/store"
)

// fakeNet is an in-memory transport between nodes: it calls the servers'
// Handle directly, copying messages as a wire would. A node set down is
// unreachable, as after a crash or a cut link.
type fakeNet struct {
	servers map[string]*shardrpc.Server

	mu struct {
		sync.Mutex
		down  map[string]bool
		hung  map[string]bool // calls get no answer until their context ends
		calls map[string]int
	}
}

// setHung makes node's calls go unanswered, as across a link whose
// packets are dropped, until their context ends.
func (n *fakeNet) setHung(node string, hung bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.mu.hung[node] = hung
}

var _ shardrpc.Caller = (*fakeNet)(nil)

func (n *fakeNet) setDown(node string, down bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.mu.down[node] = down
}

// callsTo is how many calls were sent to node, answered or not.
func (n *fakeNet) callsTo(node string) int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.mu.calls[node]
}

func (n *fakeNet) Call(ctx context.Context, node, service string, req []byte) ([]byte, error) {
	if service != shardrpc.Service {
		return nil, fmt.Errorf("no service %q", service)
	}
	n.mu.Lock()
	n.mu.calls[node]++
	down, hung := n.mu.down[node], n.mu.hung[node]
	srv := n.servers[node]
	n.mu.Unlock()
	if hung {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	if down || srv == nil {
		return nil, fmt.Errorf("dial %s: connection refused", node)
	}
	resp, err := srv.Handle(ctx, "n0", bytes.Clone(req))
	if err != nil {
		return nil, errors.New(err.Error())
	}
	return bytes.Clone(resp), nil
}

// cluster is a Set on node n0 of five nodes, each with a store set of its
// own in its own directory; the drives of n1..n4 are reached through
// shardrpc over fakeNet.
type cluster struct {
	t      testing.TB
	net    *fakeNet
	nodes  [][]*store.Drive // nodes[i] are node ni's drives
	nodeOf map[string]int   // drive ID -> node
	remote map[string]*shardrpc.RemoteDrive
	table  [][]string // partition -> candidate drives, by ID
	set    *Set
}

const clusterNodes = 5

func nodeName(i int) string { return fmt.Sprintf("n%d", i) }

// newCluster builds the cluster; tune, if set, edits the configurations
// of the Set and of the drives before they are used.
func newCluster(t testing.TB, drivesPerNode int, pol placement.Policy, tune func(*Config, *store.Config)) *cluster {
	t.Helper()
	c := &cluster{t: t, nodeOf: map[string]int{}, remote: map[string]*shardrpc.RemoteDrive{}}
	c.net = &fakeNet{servers: map[string]*shardrpc.Server{}}
	c.net.mu.down = map[string]bool{}
	c.net.mu.hung = map[string]bool{}
	c.net.mu.calls = map[string]int{}
	scfg := store.DefaultConfig()
	scfg.BlockSize = 1024
	scfg.WriteBuffer = 4096
	cfg := DefaultConfig(pol)
	cfg.ChunkSize = testChunk
	if tune != nil {
		tune(&cfg, &scfg)
	}
	for n := range clusterNodes {
		root := t.TempDir()
		var paths []string
		for i := range drivesPerNode {
			paths = append(paths, filepath.Join(root, fmt.Sprintf("drive%d", i)))
		}
		ds, err := store.Open(context.Background(), scfg, paths, testLogger(t))
		if err != nil {
			t.Fatal(err)
		}
		c.nodes = append(c.nodes, ds)
		for _, d := range ds {
			c.nodeOf[d.ID()] = n
		}
		if n == 0 {
			continue
		}
		srv := shardrpc.NewServer(ds, shardrpc.DefaultServerConfig(), testLogger(t))
		t.Cleanup(srv.Close)
		c.net.servers[nodeName(n)] = srv
		for _, d := range ds {
			c.remote[d.ID()] = shardrpc.NewRemoteDrive(c.net, nodeName(n), d.ID(), shardrpc.DefaultClientConfig())
		}
	}
	// Partition p prefers one drive on each node, starting at node p mod
	// 5; every other drive follows, in the same node order.
	for p := range clusterNodes {
		var ids []string
		for i := range drivesPerNode {
			for j := range clusterNodes {
				ids = append(ids, c.nodes[(p+j)%clusterNodes][i].ID())
			}
		}
		c.table = append(c.table, ids)
	}
	cfg.Resolve = func(id string) (shardrpc.Drive, bool) {
		d, ok := c.remote[id]
		return d, ok
	}
	place := func(p uint32, _ string) []string { return c.table[int(p)%len(c.table)] }
	if cfg.Place == nil {
		cfg.Place = place
	} else {
		wrap := cfg.Place // counts calls, say, then defers to the table
		cfg.Place = func(p uint32, id string) []string { wrap(p, id); return place(p, id) }
	}
	s, err := New(cfg, c.nodes[0], testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	c.set = s
	return c
}

func (c *cluster) write(p uint32, data []byte) Ref {
	c.t.Helper()
	ref, err := c.set.Write(context.Background(), p, bytes.NewReader(data))
	if err != nil {
		c.t.Fatalf("write to partition %d: %v", p, err)
	}
	if ref.Size != int64(len(data)) {
		c.t.Fatalf("ref size %d, wrote %d", ref.Size, len(data))
	}
	return ref
}

func (c *cluster) read(ref Ref, off, n int64) ([]byte, error) {
	rc, err := c.set.Open(context.Background(), ref, off, n)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	var b bytes.Buffer
	_, err = b.ReadFrom(rc)
	return b.Bytes(), err
}

func (c *cluster) mustRead(ref Ref, want []byte) {
	c.t.Helper()
	got, err := c.read(ref, 0, -1)
	if err != nil {
		c.t.Fatalf("read %s: %v", ref.ID, err)
	}
	if !bytes.Equal(got, want) {
		c.t.Fatalf("read %s: %d bytes differ from the %d written", ref.ID, len(got), len(want))
	}
}

func (c *cluster) drive(id string) *store.Drive {
	for _, d := range c.nodes[c.nodeOf[id]] {
		if d.ID() == id {
			return d
		}
	}
	c.t.Fatalf("drive %s unknown", id)
	return nil
}

func (c *cluster) shardFile(ref Ref, i int) string {
	return filepath.Join(c.drive(ref.Drives[i]).Path(), "shards", ref.ID[0:2], ref.ID[2:4], fmt.Sprintf("%s.%d", ref.ID, i))
}

// shardFiles counts the files on node n's drives, temp files included.
func (c *cluster) shardFiles(n int) int {
	c.t.Helper()
	count := 0
	for _, d := range c.nodes[n] {
		err := filepath.WalkDir(d.Path(), func(p string, e os.DirEntry, err error) error {
			if err == nil && !e.IsDir() && filepath.Base(p) != "redoubt-drive.json" {
				count++
			}
			return err
		})
		if err != nil {
			c.t.Fatal(err)
		}
	}
	return count
}

// nodesOf returns the node of each shard of ref.
func (c *cluster) nodesOf(ref Ref) []int {
	out := make([]int, len(ref.Drives))
	for i, id := range ref.Drives {
		out[i] = c.nodeOf[id]
	}
	return out
}

func TestClusterWriteFollowsPlacement(t *testing.T) {
	rng := seeded(t)
	pol := placement.Policy{K: 3, M: 2}
	c := newCluster(t, 2, pol, nil)
	for p := range uint32(clusterNodes) {
		data := randBytes(rng, 7*3*testChunk+rng.IntN(3*testChunk))
		ref := c.write(p, data)
		if want := c.table[p][:pol.Shards()]; !slices.Equal(ref.Drives, want) {
			t.Fatalf("partition %d: shards on %v, want the first five candidates %v", p, ref.Drives, want)
		}
		for i := range ref.Drives {
			if _, err := os.Stat(c.shardFile(ref, i)); err != nil {
				t.Fatalf("partition %d shard %d: %v", p, i, err)
			}
		}
		c.mustRead(ref, data)
		for range 5 {
			off := rng.Int64N(ref.Size)
			n := rng.Int64N(ref.Size-off) + 1
			got, err := c.read(ref, off, n)
			if err != nil || !bytes.Equal(got, data[off:off+n]) {
				t.Fatalf("partition %d: range [%d, +%d): %v", p, off, n, err)
			}
		}
	}
	if need := c.set.NeedsRepair(); len(need) != 0 {
		t.Fatalf("healthy writes and reads noted %d refs for repair", len(need))
	}
}

func TestClusterReadWithTwoNodesDown(t *testing.T) {
	rng := seeded(t)
	c := newCluster(t, 1, placement.Policy{K: 3, M: 2}, nil)
	data := randBytes(rng, 10*3*testChunk+17)
	// Partition 1 puts data shards 0 and 1 on n1 and n2.
	ref := c.write(1, data)
	if got := c.nodesOf(ref); !slices.Equal(got, []int{1, 2, 3, 4, 0}) {
		t.Fatalf("shards on nodes %v", got)
	}
	c.net.setDown("n1", true)
	c.net.setDown("n2", true)
	c.mustRead(ref, data)
	need := c.set.NeedsRepair()
	if len(need) != 1 || need[0].ID != ref.ID {
		t.Fatalf("degraded read: NeedsRepair = %v", need)
	}
	// Known down now: reads go around them without calling.
	before := c.net.callsTo("n1") + c.net.callsTo("n2")
	c.mustRead(ref, data)
	got, err := c.read(ref, 3*testChunk+5, 2*testChunk)
	if err != nil || !bytes.Equal(got, data[3*testChunk+5:5*testChunk+5]) {
		t.Fatalf("degraded range read: %v", err)
	}
	if after := c.net.callsTo("n1") + c.net.callsTo("n2"); after != before {
		t.Fatalf("%d calls to nodes known down", after-before)
	}
	// A third node down: too few shards.
	c.net.setDown("n3", true)
	if _, err := c.read(ref, 0, -1); !errors.Is(err, ErrUnreadable) {
		t.Fatalf("three of five shards unreachable: %v, want ErrUnreadable", err)
	}
	// Back up: the shards were never lost, so repair has nothing to rebuild
	// and finds the nodes back.
	for _, n := range []string{"n1", "n2", "n3"} {
		c.net.setDown(n, false)
	}
	n, err := c.set.Repair(context.Background(), ref)
	if err != nil || n != 0 {
		t.Fatalf("repair after the nodes came back: %d, %v", n, err)
	}
	for _, id := range ref.Drives[:4] {
		if !c.remote[id].Online() {
			t.Fatalf("drive %s still offline after a repair reached it", id)
		}
	}
	c.mustRead(ref, data)
}

func TestClusterReadTriesOfflineDrivesAsLastResort(t *testing.T) {
	rng := seeded(t)
	c := newCluster(t, 1, placement.Policy{K: 3, M: 2}, nil)
	data := randBytes(rng, 4*3*testChunk)
	ref := c.write(1, data)
	// Three nodes went down and came back, but this node has not heard:
	// it holds their drives offline.
	for _, n := range []string{"n1", "n2", "n3"} {
		c.net.setDown(n, true)
	}
	if _, err := c.read(ref, 0, -1); !errors.Is(err, ErrUnreadable) {
		t.Fatalf("read with three nodes down: %v", err)
	}
	for _, n := range []string{"n1", "n2", "n3"} {
		c.net.setDown(n, false)
	}
	c.mustRead(ref, data)
}

func TestClusterWriteWithTwoNodesDown(t *testing.T) {
	rng := seeded(t)
	pol := placement.Policy{K: 3, M: 2}
	c := newCluster(t, 2, pol, nil)
	c.net.setDown("n1", true)
	c.net.setDown("n2", true)
	// This node has not noticed yet: the first write finds out, and goes
	// on to the spare candidates.
	var refs []Ref
	var datas [][]byte
	for i := range 4 {
		data := randBytes(rng, (i+1)*3*testChunk+rng.IntN(testChunk))
		ref := c.write(1, data)
		for j, n := range c.nodesOf(ref) {
			if n == 1 || n == 2 {
				t.Fatalf("write %d: shard %d on node %d, which is down", i, j, n)
			}
		}
		if len(slices.Compact(slices.Sorted(slices.Values(ref.Drives)))) != pol.Shards() {
			t.Fatalf("write %d: shards share drives: %v", i, ref.Drives)
		}
		refs, datas = append(refs, ref), append(datas, data)
	}
	if need := c.set.NeedsRepair(); len(need) != 0 {
		t.Fatalf("writes with enough spare drives noted %d refs for repair", len(need))
	}
	// Once known down, the nodes are not called at all.
	before := c.net.callsTo("n1") + c.net.callsTo("n2")
	refs, datas = append(refs, c.write(1, datas[0])), append(datas, datas[0])
	if after := c.net.callsTo("n1") + c.net.callsTo("n2"); after != before {
		t.Fatalf("%d calls to nodes known down", after-before)
	}
	for i, ref := range refs {
		c.mustRead(ref, datas[i])
	}

	// A third node down leaves four drives: a degraded write, at quorum.
	c.net.setDown("n3", true)
	data := randBytes(rng, 5*3*testChunk)
	ref := c.write(2, data)
	c.mustRead(ref, data)
	if need := c.set.NeedsRepair(); len(need) != 1 || need[0].ID != ref.ID {
		t.Fatalf("write at quorum: NeedsRepair = %v", need)
	}
	// A fourth: below quorum, and nothing left behind.
	c.net.setDown("n4", true)
	shards := c.shardFiles(0)
	for range 2 { // before and after the node is known down
		if _, err := c.set.Write(context.Background(), 3, bytes.NewReader(data)); !errors.Is(err, ErrQuorum) {
			t.Fatalf("write with two drives up: %v, want ErrQuorum", err)
		}
	}
	if got := c.shardFiles(0); got != shards {
		t.Fatalf("failed writes left %d shard files on the node up", got-shards)
	}
}

func TestClusterCorruptRemoteShard(t *testing.T) {
	rng := seeded(t)
	c := newCluster(t, 1, placement.Policy{K: 3, M: 2}, nil)
	data := randBytes(rng, 6*3*testChunk+99)
	ref := c.write(2, data) // shards 0, 1 on n2, n3
	for i := range 2 {
		p := c.shardFile(ref, i)
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		// One byte in a data block far from the header.
		b[store.HeaderSize+int(rng.IntN(int(len(b)-store.HeaderSize)))] ^= byte(1 + rng.IntN(255))
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	c.mustRead(ref, data)
	if got := c.set.CorruptShards(); got == 0 {
		t.Fatal("corruption of remote shards not counted")
	}
	need := c.set.NeedsRepair()
	if len(need) != 1 || need[0].ID != ref.ID {
		t.Fatalf("NeedsRepair = %v", need)
	}
	for _, id := range ref.Drives[:2] {
		if !c.remote[id].Online() {
			t.Fatalf("drive %s offline after serving a corrupt block", id)
		}
	}
	n, err := c.set.Repair(context.Background(), ref)
	if err != nil || n != 2 {
		t.Fatalf("Repair = %d, %v; want 2", n, err)
	}
	before := c.set.CorruptShards()
	// The rebuilt shards are good: with the nodes of shards 2 and 4 down
	// they are needed for every chunk.
	c.net.setDown("n4", true)
	c.net.setDown("n1", true)
	c.mustRead(ref, data)
	if c.set.CorruptShards() != before {
		t.Fatal("corruption found after repair")
	}
}

func TestClusterDelete(t *testing.T) {
	rng := seeded(t)
	c := newCluster(t, 1, placement.Policy{K: 3, M: 2}, nil)
	ref := c.write(0, randBytes(rng, 3*testChunk))
	files := make([]string, len(ref.Drives))
	for i := range ref.Drives {
		files[i] = c.shardFile(ref, i)
	}
	c.net.setDown("n1", true)
	if err := c.set.Delete(context.Background(), ref); err != nil {
		t.Fatalf("delete with a node down: %v", err)
	}
	for i, f := range files {
		_, err := os.Stat(f)
		if onDown := c.nodeOf[ref.Drives[i]] == 1; onDown != (err == nil) {
			t.Fatalf("shard %d (node %d) after delete: %v", i, c.nodeOf[ref.Drives[i]], err)
		}
	}
}

func TestClusterPolicyAndPlacement(t *testing.T) {
	rng := seeded(t)
	// Node n0 has two drives: with Place, a 3+2 policy is the cluster's.
	var places atomic.Int32
	c := newCluster(t, 2, placement.Policy{K: 3, M: 2}, func(cfg *Config, _ *store.Config) {
		cfg.Place = func(uint32, string) []string {
			places.Add(1)
			return nil
		}
	})
	if len(c.set.Drives()) != 2 || len(c.set.Status()) != 2 {
		t.Fatalf("Drives and Status are about this node's drives: %d, %d", len(c.set.Drives()), len(c.set.Status()))
	}
	c.set.SetPolicy(placement.Policy{K: 2, M: 1})
	data := randBytes(rng, 5*testChunk)
	ref := c.write(4, data)
	if ref.K != 2 || ref.M != 1 || !slices.Equal(ref.Drives, c.table[4][:3]) {
		t.Fatalf("after SetPolicy(2+1): %d+%d on %v", ref.K, ref.M, ref.Drives)
	}
	c.set.SetPolicy(placement.Policy{K: 0, M: 1}) // invalid: ignored
	if got := c.set.Policy(); got != (placement.Policy{K: 2, M: 1}) {
		t.Fatalf("invalid policy taken: %v", got)
	}
	c.mustRead(ref, data)

	// Writes go on while the policy changes under them.
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for w := range 4 {
		seed := rng.Uint64()
		wg.Go(func() {
			for i := range 4 {
				d := bytes.Repeat([]byte{byte(seed), byte(i), byte(w)}, 2*testChunk+i)
				r, err := c.set.Write(context.Background(), uint32(w+i), bytes.NewReader(d))
				if err == nil {
					var got []byte
					if got, err = c.read(r, 0, -1); err == nil && !bytes.Equal(got, d) {
						err = fmt.Errorf("ref %s (%d+%d) reads back wrong", r.ID, r.K, r.M)
					}
				}
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	for i := range 20 {
		c.set.SetPolicy([]placement.Policy{{K: 3, M: 2}, {K: 1, M: 2, Mirror: true}, {K: 2, M: 2}}[i%3])
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if places.Load() == 0 {
		t.Fatal("Place never asked")
	}

	// Place offering too few drives is a precise ErrQuorum.
	c.set.cfg.Place = func(uint32, string) []string {
		return append(slices.Clone(c.table[0][:2]), "no-such-drive", c.table[0][0])
	}
	c.set.SetPolicy(placement.Policy{K: 2, M: 1})
	if _, err := c.set.Write(context.Background(), 0, bytes.NewReader(data)); !errors.Is(err, ErrQuorum) {
		t.Fatalf("two candidates for three shards: %v, want ErrQuorum", err)
	}
}

func TestSetPolicyWithoutPlaceKeepsToLocalDrives(t *testing.T) {
	e := newEnv(t, 3, placement.Policy{K: 2, M: 1})
	e.set.SetPolicy(placement.Policy{K: 2, M: 2})
	if got := e.set.Policy(); got != (placement.Policy{K: 2, M: 1}) {
		t.Fatalf("policy for 4 drives taken on 3: %v", got)
	}
	e.set.SetPolicy(placement.Policy{K: 1, M: 2, Mirror: true})
	ref := e.write([]byte("three copies"))
	if !ref.Mirror || len(ref.Drives) != 3 {
		t.Fatalf("after SetPolicy(mirror 3): %+v", ref)
	}
}

// BenchmarkClusterWrite16MiB writes EC 3+2 over five nodes, four of them
// through shardrpc (in process, no network): the cost of the remote path
// over BenchmarkWrite64MiB's local one.
func BenchmarkClusterWrite16MiB(b *testing.B) {
	c := newCluster(b, 1, placement.Policy{K: 3, M: 2}, func(cfg *Config, scfg *store.Config) {
		*scfg = store.DefaultConfig()
		cfg.ChunkSize = 1 << 20
	})
	data := benchData(16 << 20)
	ctx := context.Background()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		ref, err := c.set.Write(ctx, 0, bytes.NewReader(data))
		if err != nil {
			b.Fatal(err)
		}
		if err := c.set.Delete(ctx, ref); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkClusterOpen16MiB(b *testing.B) {
	c := newCluster(b, 1, placement.Policy{K: 3, M: 2}, func(cfg *Config, scfg *store.Config) {
		*scfg = store.DefaultConfig()
		cfg.ChunkSize = 1 << 20
	})
	data := benchData(16 << 20)
	ctx := context.Background()
	ref, err := c.set.Write(ctx, 0, bytes.NewReader(data))
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		rc, err := c.set.Open(ctx, ref, 0, -1)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := io.Copy(io.Discard, rc); err != nil {
			b.Fatal(err)
		}
		rc.Close()
	}
}

// TestWriteGoesAroundAHungDrive: a node believed up that answers nothing
// (cut off since the last health check) holds a write's shard no longer
// than CreateWait: the shard goes to a spare, and the write completes in
// full, long before the request's deadline.
func TestWriteGoesAroundAHungDrive(t *testing.T) {
	c := newCluster(t, 1, placement.Policy{K: 2, M: 2}, func(cfg *Config, _ *store.Config) { cfg.CreateWait = 200 * time.Millisecond })
	c.net.setHung(nodeName(1), true)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	data := bytes.Repeat([]byte("x"), 3*testChunk)
	start := time.Now()
	ref, err := c.set.Write(ctx, 1, bytes.NewReader(data)) // partition 1 prefers n1's drive first
	if err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Fatalf("the write took %v with one node hung", took)
	}
	for _, d := range ref.Drives {
		if c.nodeOf[d] == 1 {
			t.Fatalf("shard placed on the hung node's drive %s", d)
		}
	}
	// The next write does not wait for the hung node again.
	start = time.Now()
	if _, err := c.set.Write(ctx, 1, bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took >= 200*time.Millisecond {
		t.Fatalf("a second write waited %v for the hung node", took)
	}
	c.net.setHung(nodeName(1), false)
	if got, err := c.read(ref, 0, int64(len(data))); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read back: %v", err)
	}
}
