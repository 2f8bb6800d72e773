package node

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/redoubt-io/redoubt/internal/admin"
	"github.com/redoubt-io/redoubt/internal/lincheck/s3load"
	"github.com/redoubt-io/redoubt/internal/objects"
)

// siteLink is the link from one site to another's admin API, which a
// test can cut: while cut, every request fails as a dead link would.
type siteLink struct {
	srv *httptest.Server
	cut atomic.Bool
}

func newSiteLink(t *testing.T, target string) *siteLink {
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	l := &siteLink{}
	proxy := httputil.NewSingleHostReverseProxy(u)
	l.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if l.cut.Load() {
			if hj, ok := w.(http.Hijacker); ok {
				if c, _, err := hj.Hijack(); err == nil {
					c.Close()
					return
				}
			}
			http.Error(w, "cut", http.StatusBadGateway)
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(l.srv.Close)
	return l
}

// errRetry: not yet.
var errRetry = errors.New("not yet")

// eventually calls f until it succeeds or d has passed, and returns its
// last error. The replication between sites runs on the nodes' own
// loops, whose real timing is what these tests measure.
func eventually(d time.Duration, f func() error) error {
	deadline := time.Now().Add(d)
	for {
		err := f()
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// siteVersions is what a site lists of bucket: key -> its versions.
func siteVersions(t *testing.T, c *s3.Client, bucket string) map[string][]string {
	t.Helper()
	vs, err := s3load.Versions(context.Background(), c, bucket)
	if err != nil {
		t.Fatalf("list versions: %v", err)
	}
	return vs
}

// TestSitesReplicateBothWays links two clusters (sites) of three nodes,
// makes a replicated available bucket on one, and writes on both while
// the link between them is cut: overwrites of the same keys on both
// sides, deletes, a delete of a version by its ID. After the heal both
// sites list the same versions of every key, every acknowledged write
// among them, with the same current version, and the replication lag
// every node reports falls back to about its pass interval.
func TestSitesReplicateBothWays(t *testing.T) {
	rng, _ := testSeed(t, *clusterSeed, "cluster.seed")
	a := startCluster(t, clusterOptions{nodes: 3, zones: 3, raftTick: 20 * time.Millisecond})
	b := startCluster(t, clusterOptions{nodes: 3, zones: 3, raftTick: 20 * time.Millisecond})
	toB, toA := newSiteLink(t, b.node(0).AdminURL), newSiteLink(t, a.node(0).AdminURL)
	ctx := context.Background()
	link := func(from *testCluster, name, endpoint string) {
		err := retryUnavailable(20*time.Second, func() error {
			return rootClient(from.node(1)).Call(ctx, from.node(1).AdminURL, http.MethodPost, "/sites",
				SiteAdd{Name: name, Endpoint: endpoint, AccessKey: clusterAccessKey, SecretKey: clusterSecretKey}, nil)
		})
		if err != nil {
			t.Fatalf("linking site %s: %v", name, err)
		}
	}
	link(a, "site-b", toB.srv.URL)
	link(b, "site-a", toA.srv.URL)
	// A link to an address that does not answer is refused at once.
	dead := httptest.NewServer(http.NotFoundHandler())
	dead.Close()
	err := rootClient(a.node(0)).Call(ctx, a.node(0).AdminURL, http.MethodPost, "/sites",
		SiteAdd{Name: "nowhere", Endpoint: dead.URL, AccessKey: clusterAccessKey, SecretKey: clusterSecretKey}, nil)
	if e, ok := err.(*admin.Error); !ok || e.Code != "SiteUnreachable" {
		t.Fatalf("linking a site that does not answer: %v", err)
	}

	const bucket = "shared"
	err = retryUnavailable(10*time.Second, func() error {
		_, err := a.client(0).CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(bucket)}, func(o *s3.Options) {
			o.APIOptions = append(o.APIOptions,
				smithyhttp.AddHeaderValue(objects.ConsistencyHeader, "available"),
				smithyhttp.AddHeaderValue(objects.ReplicateHeader, "true"))
		})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	// Site B creates the bucket at its next exchange with A.
	start := time.Now()
	err = eventually(30*time.Second, func() error {
		_, err := b.client(2).HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String(bucket)})
		if err != nil {
			return fmt.Errorf("%w (%v)", errRetry, err)
		}
		return nil
	})
	if err != nil {
		bs, berr := a.node(0).objects.SiteBuckets(ctx)
		t.Logf("A's site buckets %+v %v; status %+v; B %+v", bs, berr, a.node(0).sites.Status(), b.node(0).sites.Status())
		t.Fatalf("site B never made the replicated bucket: %v", err)
	}
	t.Logf("site B had the bucket %v after it was made on A", time.Since(start).Round(time.Millisecond))
	// Versioning set on one site reaches the other at its next exchange.
	if _, err := a.client(0).PutBucketVersioning(ctx, &s3.PutBucketVersioningInput{Bucket: aws.String(bucket),
		VersioningConfiguration: &types.VersioningConfiguration{Status: types.BucketVersioningStatusEnabled}}); err != nil {
		t.Fatal(err)
	}
	err = eventually(30*time.Second, func() error {
		out, err := b.client(1).GetBucketVersioning(ctx, &s3.GetBucketVersioningInput{Bucket: aws.String(bucket)})
		if err != nil || out.Status != types.BucketVersioningStatusEnabled {
			return errRetry
		}
		return nil
	})
	if err != nil {
		t.Fatal("versioning enabled on site A never reached site B")
	}
	for _, tc := range []*testCluster{a, b} {
		// Each node reads the bucket again, rather than at its next
		// refresh (availRefresh).
		for i := range 3 {
			if _, err := tc.client(i).HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String(bucket)}); err != nil {
				t.Fatal(err)
			}
		}
	}
	// A replicated bucket is not deleted while sites are linked.
	if _, err := a.client(1).DeleteBucket(ctx, &s3.DeleteBucketInput{Bucket: aws.String(bucket)}); errCode(err) != "BucketReplicated" {
		t.Fatalf("DeleteBucket of a replicated bucket: %v", err)
	}

	type write struct {
		site, key string
		body      []byte
		vid       string
	}
	var acked []write
	put := func(site string, tc *testCluster, node int, key string, body []byte) write {
		out, err := tc.client(node).PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(key), Body: bytes.NewReader(body)})
		if err != nil {
			t.Fatalf("PUT %s on site %s: %v", key, site, err)
		}
		w := write{site, key, body, aws.ToString(out.VersionId)}
		acked = append(acked, w)
		return w
	}
	keys := make([]string, 24)
	for i := range keys {
		keys[i] = fmt.Sprintf("k%02d", i)
	}
	for i, k := range keys[:8] {
		put("a", a, i%3, k, payload(uint64(i), 1<<10))
	}
	toB.cut.Store(true)
	toA.cut.Store(true)
	// Both sites write while cut off from each other: keys of their own,
	// and the same keys (both writes survive, as concurrent versions).
	var removed []write
	for round := range 4 {
		for i, k := range keys {
			switch {
			case i%3 == 0:
				put("a", a, rng.IntN(3), k, payload(uint64(1000*round+i), 1<<10+rng.IntN(4<<10)))
			case i%3 == 1:
				put("b", b, rng.IntN(3), k, payload(uint64(5000+1000*round+i), 1<<10+rng.IntN(4<<10)))
			default:
				put("a", a, rng.IntN(3), k, payload(uint64(9000+1000*round+i), 2<<10))
				put("b", b, rng.IntN(3), k, payload(uint64(13000+1000*round+i), 2<<10))
			}
		}
	}
	// B removes, by its version ID, one of its own writes made during the cut.
	victim := acked[len(acked)-1]
	if _, err := b.client(0).DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(bucket), Key: aws.String(victim.key), VersionId: aws.String(victim.vid)}); err != nil {
		t.Fatalf("delete of version %s: %v", victim.vid, err)
	}
	removed = append(removed, victim)
	// Bodies too large to be inline live on the drives of the site that
	// took them; the other site copies them.
	var large []write
	for i := range 2 {
		large = append(large, put("a", a, i, fmt.Sprintf("big-a%d", i), payload(uint64(20000+i), 300<<10)))
		large = append(large, put("b", b, i, fmt.Sprintf("big-b%d", i), payload(uint64(21000+i), 300<<10)))
	}
	large = append(large, put("a", a, 2, "big-both", payload(22000, 200<<10)), put("b", b, 2, "big-both", payload(22001, 400<<10)))
	// The cut shows: some node of each site is behind, with an error.
	for _, tc := range []*testCluster{a, b} {
		err := eventually(20*time.Second, func() error {
			for i := range 3 {
				for _, s := range tc.node(i).Status(ctx).Sites {
					if s.Behind > 0 && s.LastError != "" {
						return nil
					}
				}
			}
			return errRetry
		})
		if err != nil {
			t.Fatal("no node reports its site behind while the link is cut")
		}
	}
	healed := time.Now()
	toB.cut.Store(false)
	toA.cut.Store(false)

	// Converged: both sites list the same versions, lag back down.
	var va, vb map[string][]string
	err = eventually(60*time.Second, func() error {
		va, vb = siteVersions(t, a.client(1), bucket), siteVersions(t, b.client(2), bucket)
		if fmt.Sprint(va) != fmt.Sprint(vb) {
			return errRetry
		}
		for _, tc := range []*testCluster{a, b} {
			for i := range 3 {
				for _, s := range tc.node(i).Status(ctx).Sites {
					if s.Behind > 0 || s.LagSeconds > 3 {
						return errRetry
					}
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("sites not in step 60 s after the heal:\nA %v\nB %v", va, vb)
	}
	t.Logf("both sites list the same %d keys, lag back under 3 s, %v after the heal", len(va), time.Since(healed).Round(time.Millisecond))
	// Every acknowledged write is a version on both sites, but the one
	// removed by its version ID, which is on neither.
	for _, w := range acked {
		want := !slices.ContainsFunc(removed, func(r write) bool { return r.vid == w.vid })
		for site, vs := range map[string]map[string][]string{"A": va, "B": vb} {
			has := slices.ContainsFunc(vs[w.key], func(s string) bool { return len(s) > len(w.vid) && s[:len(w.vid)] == w.vid })
			if has != want {
				t.Fatalf("site %s: version %s of %s (written on %s) listed: %v, want %v; lists %v", site, w.vid, w.key, w.site, has, want, vs[w.key])
			}
		}
	}
	// Each site copies the other's large bodies to its drives without
	// waiting for a read: once it has, each serves them all with the
	// link cut again.
	copied := func(tc *testCluster) int64 {
		var n int64
		for i := range 3 {
			for _, s := range tc.node(i).Status(ctx).Sites {
				n += s.DataCopied
			}
		}
		return n
	}
	err = eventually(60*time.Second, func() error {
		if copied(a) < 3 || copied(b) < 3 {
			return errRetry
		}
		return nil
	})
	if err != nil {
		t.Fatalf("large bodies not copied: A copied %d of B's 3, B %d of A's 3", copied(a), copied(b))
	}
	toB.cut.Store(true)
	toA.cut.Store(true)
	for _, w := range large {
		for site, tc := range map[string]*testCluster{"A": a, "B": b} {
			out, err := tc.client(rng.IntN(3)).GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(w.key), VersionId: aws.String(w.vid)})
			if err != nil {
				t.Fatalf("site %s, link cut: GET %s version %s (written on %s): %v", site, w.key, w.vid, w.site, err)
			}
			got, err := io.ReadAll(out.Body)
			out.Body.Close()
			if err != nil || !bytes.Equal(got, w.body) {
				t.Fatalf("site %s: GET %s version %s: %d bytes, %v; want the %d written on %s", site, w.key, w.vid, len(got), err, len(w.body), w.site)
			}
		}
	}
	toB.cut.Store(false)
	toA.cut.Store(false)
	// Both sites serve the same current bytes of every key.
	for _, k := range keys {
		ga, err := getBytes(ctx, a.client(0), bucket, k)
		if err != nil {
			t.Fatalf("GET %s on A: %v", k, err)
		}
		gb, err := getBytes(ctx, b.client(1), bucket, k)
		if err != nil || !bytes.Equal(ga, gb) {
			t.Fatalf("GET %s: sites A and B serve different current versions (%v)", k, err)
		}
	}
}
