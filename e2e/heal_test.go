package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/redoubt-io/redoubt/internal/admin"
)

// repairState is the part of a node's GET /repair this test reads.
type repairState struct {
	Running       bool   `json:"running"`
	LayoutVersion uint64 `json:"layout_version"`
	RefsMoved     int64  `json:"refs_moved"`
	BytesMoved    int64  `json:"bytes_moved"`
	Relocation    struct {
		TotalBytesMoved int64 `json:"total_bytes_moved"`
	} `json:"relocation"`
	LastError string `json:"last_error"`
}

func repairOf(ctx context.Context, s *server) (repairState, error) {
	var st repairState
	b, err := s.adminGet(ctx, "/repair")
	if err != nil {
		return st, err
	}
	return st, json.Unmarshal(b, &st)
}

// TestClusterHealsALostNode is the self-healing acceptance case with real
// processes: six nodes in three zones, EC 3+2, --repair-after 3s. One
// node is killed for good; the cluster notices by gossip, takes it out of
// the layout by itself, rebuilds its shards on the others and replaces
// its metadata replicas, until /status says the metadata survives two
// more node losses; then two more nodes are killed, and every object
// still reads back byte-exact.
func TestClusterHealsALostNode(t *testing.T) {
	if testing.Short() {
		t.Skip("starts six server processes")
	}
	c := startCluster(t, 6, 3, "--ec", "3+2", "--repair-after", "3s")
	ctx := context.Background()
	bucket := newBucket(t, sdkClient(c.nodes[0]), "heal")
	var objs []storedObject
	sizes := []int{700, 200 << 10, 2<<20 + 4321}
	for i := range 18 {
		o := storedObject{key: fmt.Sprintf("obj/%02d", i), seed: uint64(7000 + i), size: sizes[i%len(sizes)]}
		cl := sdkClient(c.nodes[i%6])
		_, err := cl.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(o.key), Body: bytes.NewReader(payload(o.seed, o.size))})
		if err != nil {
			t.Fatalf("put %s via node %d: %v", o.key, i%6, err)
		}
		objs = append(objs, o)
	}
	st, err := clusterStatus(ctx, c.nodes[0])
	if err != nil || st.Cluster == nil {
		t.Fatalf("status: %v", err)
	}
	before := st.Cluster.LayoutVersion

	// Node 1 (zone b) dies for good.
	start := time.Now()
	c.nodes[1].kill()
	alive := []*server{c.nodes[0], c.nodes[2], c.nodes[3], c.nodes[4], c.nodes[5]}
	var last string
	healed := pollUntil(90*time.Second, func() bool {
		var version uint64
		for i, s := range alive {
			st, err := clusterStatus(ctx, s)
			if err != nil || st.Cluster == nil {
				last = fmt.Sprintf("status of a live node: %v", err)
				return false
			}
			for _, n := range st.Cluster.Nodes {
				if n.InLayout && n.State != admin.NodeAlive {
					last = fmt.Sprintf("node %s (%s) still in layout %d as seen by live node %d", n.ID, n.State, st.Cluster.LayoutVersion, i)
					return false
				}
			}
			if st.Cluster.LayoutVersion <= before {
				last = fmt.Sprintf("live node %d still follows layout %d", i, st.Cluster.LayoutVersion)
				return false
			}
			version = max(version, st.Cluster.LayoutVersion)
		}
		for i, s := range alive {
			r, err := repairOf(ctx, s)
			if err != nil || r.Running || r.LayoutVersion < version {
				last = fmt.Sprintf("live node %d has not moved its data in line with layout %d: %+v %v", i, version, r, err)
				return false
			}
		}
		// The metadata too: every partition's Raft group has its five
		// voters on live nodes again, so it survives two more losses.
		st, err := clusterStatus(ctx, c.nodes[0])
		if err != nil || st.Cluster == nil || st.Cluster.Redundancy == nil || st.Cluster.Redundancy.Metadata.NodeLosses < 2 {
			last = fmt.Sprintf("the metadata does not survive two more node losses yet: %v", err)
			if err == nil && st.Cluster != nil && st.Cluster.Redundancy != nil {
				last += " " + st.Cluster.Redundancy.Line()
			}
			return false
		}
		return true
	})
	if !healed {
		t.Fatalf("the cluster did not heal within 90s of losing node 1: %s\n%s", last, tail(c.nodes[0].output(), 4000))
	}
	var moved int64
	for _, s := range alive {
		if r, err := repairOf(ctx, s); err == nil {
			moved += r.Relocation.TotalBytesMoved
		}
	}
	if moved == 0 {
		t.Fatalf("no data was moved after node 1 was lost")
	}
	t.Logf("node 1 taken out of the layout and its data (%d bytes) rebuilt elsewhere %v after the kill",
		moved, time.Since(start).Round(time.Millisecond))

	// Then nodes 2 (zone c) and 3 (zone a) die too: three of six nodes
	// are left, one per zone.
	c.nodes[2].kill()
	c.nodes[3].kill()
	for _, s := range []*server{c.nodes[0], c.nodes[4], c.nodes[5]} {
		cl := sdkClient(s)
		for _, o := range objs {
			var got []byte
			err := retryUnavailable(func() error {
				var err error
				got, err = getBytes(ctx, cl, bucket, o.key)
				return err
			})
			if err != nil {
				t.Fatalf("nodes 1 (repaired), 2 and 3 lost: get %s via %s: %v", o.key, s.Endpoint, err)
			}
			if !bytes.Equal(got, payload(o.seed, o.size)) {
				t.Fatalf("nodes 1 (repaired), 2 and 3 lost: %s differs (%d bytes, want %d)", o.key, len(got), o.size)
			}
		}
	}
}
