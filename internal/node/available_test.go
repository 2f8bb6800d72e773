package node

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/redoubt-io/redoubt/internal/admin"
	"github.com/redoubt-io/redoubt/internal/objects"
	"github.com/redoubt-io/redoubt/internal/records"
)

// TestAvailableBucketThroughAPartition splits five nodes 2|3. Every node
// takes writes to an available bucket, on both sides, and says on how
// many nodes each is durable; each side reads its own writes; after the
// heal every node serves every acknowledged write as a version (both
// writes of a key written on both sides), and the greater as current.
func TestAvailableBucketThroughAPartition(t *testing.T) {
	rng, _ := testSeed(t, *clusterSeed, "cluster.seed")
	tc := startCluster(t, clusterOptions{nodes: 5, zones: 3, raftTick: 20 * time.Millisecond})
	const bucket = "avail"
	err := retryUnavailable(10*time.Second, func() error {
		_, err := tc.client(0).CreateBucket(context.Background(), &s3.CreateBucketInput{Bucket: aws.String(bucket)},
			func(o *s3.Options) {
				o.APIOptions = append(o.APIOptions, smithyhttp.AddHeaderValue(objects.ConsistencyHeader, "available"))
			})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	// The admin API makes one with a conflict retention, which HeadBucket
	// shows.
	var made admin.Bucket
	if err := rootClient(tc.node(1)).Call(context.Background(), tc.node(1).AdminURL, http.MethodPost, "/buckets",
		admin.BucketCreate{Name: "kept-briefly", Consistency: "available", WriteCopies: 3, ConflictRetention: "72h"}, &made); err != nil {
		t.Fatal(err)
	}
	if made.Consistency != "available" || made.WriteCopies != 3 || made.ConflictRetention != "72h0m0s" {
		t.Fatalf("POST /buckets answered %+v", made)
	}
	hb, err := tc.client(3).HeadBucket(context.Background(), &s3.HeadBucketInput{Bucket: aws.String("kept-briefly")})
	if err != nil {
		t.Fatal(err)
	}
	hraw, _ := awsmiddleware.GetRawResponse(hb.ResultMetadata).(*smithyhttp.Response)
	if hraw.Header.Get(objects.WriteCopiesHeader) != "3" || hraw.Header.Get(objects.ConflictRetentionHeader) != "72h0m0s" {
		t.Fatalf("HeadBucket headers %v", hraw.Header)
	}
	// Every node learns of the bucket before the cut.
	for i := range 5 {
		out, err := tc.client(i).HeadBucket(context.Background(), &s3.HeadBucketInput{Bucket: aws.String(bucket)})
		if err != nil {
			t.Fatalf("head through node %d: %v", i, err)
		}
		raw, _ := awsmiddleware.GetRawResponse(out.ResultMetadata).(*smithyhttp.Response)
		if got := raw.Header.Get(objects.ConsistencyHeader); got != "available" {
			t.Fatalf("node %d shows consistency %q", i, got)
		}
	}
	keys := keysByPartition("k", tc.opts.partitions)
	perm := rng.Perm(5)
	minority, majority := []int{perm[0], perm[1]}, []int{perm[2], perm[3], perm[4]}
	t.Logf("partition: %v | %v", minority, majority)
	tc.partition(minority, majority)

	type write struct {
		node int
		body []byte
	}
	var mu sync.Mutex
	acked := map[string][]write{}
	var wg sync.WaitGroup
	for side, nodes := range [][]int{minority, majority} {
		for j, node := range nodes {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i, k := range keys {
					if i%len(nodes) != j {
						continue
					}
					body := payload(uint64(1000*side+i), 2<<10)
					start := time.Now()
					out, err := tc.client(node).PutObject(context.Background(), &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(k), Body: bytes.NewReader(body)})
					if err != nil {
						t.Errorf("PUT %s through node %d (side %d): %v after %v", k, node, side, err, time.Since(start))
						return
					}
					raw, _ := awsmiddleware.GetRawResponse(out.ResultMetadata).(*smithyhttp.Response)
					copies, _ := strconv.Atoi(raw.Header.Get(objects.CopiesHeader))
					if copies < min(2, len(nodes)) || copies > len(nodes) {
						t.Errorf("PUT %s through node %d: %d copies said, want %d to %d", k, node, copies, min(2, len(nodes)), len(nodes))
					}
					mu.Lock()
					acked[k] = append(acked[k], write{node, body})
					mu.Unlock()
				}
			}()
		}
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	// Each side reads its own writes.
	for k, ws := range acked {
		for _, w := range ws {
			got, err := getBytes(context.Background(), tc.client(w.node), bucket, k)
			if err != nil || !bytes.Equal(got, w.body) {
				t.Fatalf("node %d does not read its own write of %s: %v", w.node, k, err)
			}
		}
	}
	tc.mem.Heal()
	// One anti-entropy pass on each node brings every replica up to date
	// (the nodes' own loop would within a second: RetryRecords).
	for n := range 5 {
		if st := tc.node(n).cluster.SyncRecords(context.Background()); st.Failed > 0 {
			t.Fatalf("node %d's pass after the heal: %+v", n, st)
		}
	}
	// Every node lists every acknowledged write as a version.
	for n := range 5 {
		for k, ws := range acked {
			res, err := tc.client(n).ListObjectVersions(context.Background(), &s3.ListObjectVersionsInput{Bucket: aws.String(bucket), Prefix: aws.String(k)})
			if err != nil {
				t.Fatal(err)
			}
			count := 0
			for _, v := range res.Versions {
				if aws.ToString(v.Key) == k {
					count++
				}
			}
			if count != len(ws) {
				t.Fatalf("node %d lists %d versions of %s, want the %d acknowledged", n, count, k, len(ws))
			}
		}
	}
	// Every key was written on both sides: each is in conflict, listed
	// with both writes by the admin API and counted by the metric.
	var cs admin.Conflicts
	if err := rootClient(tc.node(0)).Call(context.Background(), tc.node(0).AdminURL, http.MethodGet, "/buckets/"+bucket+"/conflicts", nil, &cs); err != nil {
		t.Fatal(err)
	}
	if len(cs.Keys) != len(acked) {
		t.Fatalf("GET /buckets/%s/conflicts lists %d keys, want the %d written on both sides", bucket, len(cs.Keys), len(acked))
	}
	for _, k := range cs.Keys {
		if len(k.Versions) != 2 || !k.Versions[0].Current {
			t.Fatalf("conflict %s: %+v, want both writes, the current first", k.Key, k.Versions)
		}
	}
	if n := tc.node(1).cluster.CountConflicts(context.Background()); n != len(acked) {
		t.Fatalf("node 1 counts %d keys in conflict, want %d", n, len(acked))
	}
	req, err := rootClient(tc.node(1)).NewRequest(context.Background(), "GET", tc.node(1).AdminURL+"/metrics", nil)
	if err != nil {
		t.Fatal(err)
	}
	if rep := sendAdmin(t, req); rep.status != 200 || !strings.Contains(rep.body, "redoubt_available_conflicts ") ||
		!strings.Contains(rep.body, "redoubt_records_clock_refused_total 0") {
		t.Fatalf("/metrics lacks the records' metrics: %d", rep.status)
	}
	for k, ws := range acked {
		var bodies [][]byte
		for _, w := range ws {
			bodies = append(bodies, w.body)
		}
		first, err := getBytes(context.Background(), tc.client(0), bucket, k)
		if err != nil || !slices.ContainsFunc(bodies, func(b []byte) bool { return bytes.Equal(b, first) }) {
			t.Fatalf("GET %s after the heal: %v, or bytes never written", k, err)
		}
		for n := 1; n < 5; n++ {
			got, err := getBytes(context.Background(), tc.client(n), bucket, k)
			if err != nil || !bytes.Equal(got, first) {
				t.Fatalf("node %d serves another current version of %s than node 0: %v", n, k, err)
			}
		}
	}
}

// TestAvailableDegradedPlacementRespread: a node cut off alone from the
// other two takes an available bucket's large PUT, which the layout's
// drives for it (EC 2+1 over the three nodes) cannot take; it writes it
// as copies on its own drives and serves it. After the heal the body is
// rewritten under the policy, so that once the lone node is lost for
// good the other two serve it.
func TestAvailableDegradedPlacementRespread(t *testing.T) {
	tc := startCluster(t, clusterOptions{nodes: 3, zones: 3, raftTick: 20 * time.Millisecond})
	ctx := context.Background()
	const bucket = "lone"
	err := retryUnavailable(10*time.Second, func() error {
		_, err := tc.client(0).CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(bucket)}, func(o *s3.Options) {
			o.APIOptions = append(o.APIOptions, smithyhttp.AddHeaderValue(objects.ConsistencyHeader, "available"))
		})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if _, err := tc.client(i).HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String(bucket)}); err != nil {
			t.Fatal(err)
		}
	}
	tc.partition([]int{0}, []int{1, 2})
	bodies := map[string][]byte{}
	for i := range 3 {
		k := fmt.Sprintf("big%d", i)
		bodies[k] = payload(uint64(100+i), 300<<10)
		start := time.Now()
		if _, err := putBytes(ctx, tc.client(0), bucket, k, bodies[k]); err != nil {
			t.Fatalf("PUT %s through the lone node: %v after %v", k, err, time.Since(start))
		}
		t.Logf("PUT %s through the lone node took %v", k, time.Since(start).Round(time.Millisecond))
		got, err := getBytes(ctx, tc.client(0), bucket, k)
		if err != nil || !bytes.Equal(got, bodies[k]) {
			t.Fatalf("the lone node does not serve its own write of %s: %v", k, err)
		}
	}
	tc.mem.Heal()
	// Re-spread: on the other nodes' records, every degraded placement's
	// note is removed and the rewritten body of each is noted.
	start := time.Now()
	respread := func() bool {
		for _, i := range []int{1, 2} {
			st := tc.node(i).cluster.Records()
			pending, spread := map[string]bool{}, 0
			for _, p := range st.Partitions() {
				if uint32(p)&records.DataFlag == 0 {
					continue
				}
				recs, _, err := st.Scan(p, nil, nil, 1000)
				if err != nil {
					t.Fatal(err)
				}
				for _, r := range recs {
					switch {
					case r.Key[0] == 'r' && !r.Removal:
						pending[string(r.Key[1:])] = true
					case r.Key[0] == 'd' && !r.Removal:
						spread++
					}
				}
				for _, r := range recs {
					if r.Key[0] == 'r' && r.Removal {
						delete(pending, string(r.Key[1:]))
					}
				}
			}
			if len(pending) > 0 || spread < len(bodies) {
				return false
			}
		}
		return true
	}
	deadline := time.Now().Add(60 * time.Second)
	for !respread() {
		if time.Now().After(deadline) {
			t.Fatal("the bodies written in a degraded placement were not rewritten a minute after the heal")
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("re-spread %v after the heal", time.Since(start).Round(time.Millisecond))
	tc.stop(tc.nodes[0])
	for k, want := range bodies {
		for _, i := range []int{1, 2} {
			got, err := getBytes(ctx, tc.client(i), bucket, k)
			if err != nil || !bytes.Equal(got, want) {
				t.Fatalf("with the lone node gone, node %d serves %s: %d bytes, %v", i, k, len(got), err)
			}
		}
	}
}
