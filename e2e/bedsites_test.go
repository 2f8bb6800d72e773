package e2e

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/redoubt-io/redoubt/internal/admin"
	"github.com/redoubt-io/redoubt/internal/lincheck/s3load"
)

var bedSitesCut = flag.Duration("bed.sitescut", 20*time.Second, "how long TestBedSites keeps the sites apart while both take writes")

// siteList is what one node lists of a bucket: key -> its versions.
func siteList(t *testing.T, c *s3.Client, bucket string) map[string][]string {
	t.Helper()
	vs, err := s3load.Versions(context.Background(), c, bucket)
	if err != nil {
		t.Fatalf("list versions: %v", err)
	}
	return vs
}

// siteStatus is every node's view of its replication to the other site.
func siteStatus(t *testing.T, b *bed) []admin.SiteStatus {
	t.Helper()
	var out []admin.SiteStatus
	for _, n := range b.nodes {
		var st admin.Status
		if err := rootAdmin.Call(context.Background(), n.Admin, http.MethodGet, "/status", nil, &st); err != nil {
			t.Fatalf("status of %s: %v", n.Admin, err)
		}
		out = append(out, st.Sites...)
	}
	return out
}

// Two sites of three nodes each, real processes on their own networks
// (127.0.1.0/24 and 127.0.2.0/24), linked both ways, sharing a
// replicated, versioned, available bucket. The link between the sites is
// cut (every packet between their addresses dropped) for -bed.sitescut
// (an hour compressed: what catching up costs depends on the records
// that differ, not on the time), while a writer on every node of both
// sites writes, overwrites and deletes keys of one pool, 1 write in 10 a
// body too large to be inline. After the heal: both sites list the same
// versions of every key, every acknowledged write among them; both serve
// every large body; every node's lag is back under 3 s. The time that
// takes is logged.
func TestBedSites(t *testing.T) {
	_, rng := bedRand(t, 3)
	a := startBedOn(t, 1, 3, 3, func(int) []string { return nil })
	b := startBedOn(t, 2, 3, 3, func(int) []string { return nil })
	ctx := context.Background()
	link := func(from *bed, name string, to *bed) {
		err := retryUnavailable(func() error {
			return rootAdmin.Call(ctx, from.nodes[0].Admin, http.MethodPost, "/sites",
				map[string]string{"name": name, "endpoint": to.nodes[0].Admin, "access_key": testAccessKey, "secret_key": testSecretKey}, nil)
		})
		if err != nil {
			t.Fatalf("linking %s: %v", name, err)
		}
	}
	link(a, "site-b", b)
	link(b, "site-a", a)
	clients := map[string][]*s3.Client{}
	for name, s := range map[string]*bed{"a": a, "b": b} {
		for _, n := range s.nodes {
			clients[name] = append(clients[name], sdkClient(n, func(o *s3.Options) { o.HTTPClient = &http.Client{Timeout: 20 * time.Second} }))
		}
	}
	const bucket = "bed-sites"
	err := retryUnavailable(func() error {
		_, err := clients["a"][0].CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(bucket)}, func(o *s3.Options) {
			o.APIOptions = append(o.APIOptions, smithyhttp.AddHeaderValue("X-Redoubt-Consistency", "available"),
				smithyhttp.AddHeaderValue("X-Redoubt-Site-Replication", "true"))
		})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	// Site B makes the bucket at its next exchange with A; versioning is
	// each site's to set, and each node reads it at once.
	if !pollUntil(30*time.Second, func() bool {
		_, err := clients["b"][1].HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String(bucket)})
		return err == nil
	}) {
		t.Fatal("site B never made the replicated bucket")
	}
	// Versioning set on one site reaches the other at its next exchange;
	// each node then reads it at once.
	if _, err := clients["b"][0].PutBucketVersioning(ctx, &s3.PutBucketVersioningInput{Bucket: aws.String(bucket),
		VersioningConfiguration: &types.VersioningConfiguration{Status: types.BucketVersioningStatusEnabled}}); err != nil {
		t.Fatal(err)
	}
	if !pollUntil(30*time.Second, func() bool {
		out, err := clients["a"][2].GetBucketVersioning(ctx, &s3.GetBucketVersioningInput{Bucket: aws.String(bucket)})
		return err == nil && out.Status == types.BucketVersioningStatusEnabled
	}) {
		t.Fatal("versioning enabled on site B never reached site A")
	}
	for _, cs := range clients {
		for _, c := range cs {
			if _, err := c.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String(bucket)}); err != nil {
				t.Fatal(err)
			}
		}
	}

	for _, x := range a.ips {
		for _, y := range b.ips {
			a.iptables("-A", a.chain, "-s", x, "-d", y, "-j", "DROP")
			a.iptables("-A", a.chain, "-s", y, "-d", x, "-j", "DROP")
		}
	}
	type write struct {
		site, key, vid string
		body           []byte
		marker         bool
	}
	var mu sync.Mutex
	var acked []write
	failed := 0
	var wg sync.WaitGroup
	stop := time.Now().Add(*bedSitesCut)
	seeds := map[string]uint64{}
	for site, cs := range clients {
		for i, c := range cs {
			seeds[fmt.Sprint(site, i)] = rng.Uint64()
			wg.Add(1)
			go func() {
				defer wg.Done()
				r := rand.New(rand.NewPCG(seeds[fmt.Sprint(site, i)], 3))
				for seq := 0; time.Now().Before(stop); seq++ {
					key := fmt.Sprintf("k%02d", r.IntN(40))
					w := write{site: site, key: key}
					var err error
					if r.IntN(10) == 0 {
						var out *s3.DeleteObjectOutput
						out, err = c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
						if err == nil {
							w.vid, w.marker = aws.ToString(out.VersionId), true
						}
					} else {
						w.body = []byte(fmt.Sprintf("site %s node %d write %d", site, i, seq))
						if r.IntN(10) == 0 {
							w.body = append(w.body, payload(r.Uint64(), 200<<10)...)
						}
						var out *s3.PutObjectOutput
						out, err = c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(key), Body: bytes.NewReader(w.body)})
						if err == nil {
							w.vid = aws.ToString(out.VersionId)
						}
					}
					mu.Lock()
					if err != nil {
						failed++
					} else {
						acked = append(acked, w)
					}
					mu.Unlock()
				}
			}()
		}
	}
	wg.Wait()
	large := 0
	for _, w := range acked {
		if len(w.body) > 128<<10 {
			large++
		}
	}
	t.Logf("%v apart: %d writes acknowledged (%d large, the rest small or deletes), %d failed", *bedSitesCut, len(acked), large, failed)
	if failed > 0 {
		t.Errorf("%d writes failed with every node of their site up", failed)
	}
	lagged := 0.0
	for _, s := range append(siteStatus(t, a), siteStatus(t, b)...) {
		lagged = max(lagged, s.LagSeconds)
	}
	if lagged < bedSitesCut.Seconds()/2 {
		t.Errorf("the greatest lag reported while apart is %.1f s, after %v apart", lagged, *bedSitesCut)
	}

	healed := time.Now()
	a.heal()
	var la, lb map[string][]string
	inStep := pollUntil(5*time.Minute, func() bool {
		la, lb = siteList(t, clients["a"][rng.IntN(3)], bucket), siteList(t, clients["b"][rng.IntN(3)], bucket)
		return fmt.Sprint(la) == fmt.Sprint(lb)
	})
	listed := time.Since(healed)
	if !inStep {
		t.Fatalf("the sites list different versions 5 min after the heal")
	}
	if !pollUntil(time.Minute, func() bool {
		for _, s := range append(siteStatus(t, a), siteStatus(t, b)...) {
			if s.Behind > 0 || s.LagSeconds > 3 {
				return false
			}
		}
		return true
	}) {
		t.Fatalf("lag not back under 3 s a minute after the sites listed the same versions: %+v", append(siteStatus(t, a), siteStatus(t, b)...))
	}
	t.Logf("after the heal: both sites list the same versions of %d keys in %v; every node's lag under 3 s in %v",
		len(la), listed.Round(100*time.Millisecond), time.Since(healed).Round(100*time.Millisecond))
	for _, w := range acked {
		has := slices.ContainsFunc(la[w.key], func(s string) bool { return strings.HasPrefix(s, w.vid+" ") })
		if !has {
			t.Fatalf("acknowledged write %s of %s on site %s is not listed", w.vid, w.key, w.site)
		}
	}
	// Both sites serve every large body, by version ID.
	for _, w := range acked {
		if len(w.body) <= 128<<10 {
			continue
		}
		for site, cs := range clients {
			out, err := cs[rng.IntN(3)].GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(w.key), VersionId: aws.String(w.vid)})
			if err != nil {
				t.Fatalf("site %s: GET %s version %s (written on %s): %v", site, w.key, w.vid, w.site, err)
			}
			got, err := io.ReadAll(out.Body)
			out.Body.Close()
			if err != nil || !bytes.Equal(got, w.body) {
				t.Fatalf("site %s: GET %s version %s: %d bytes, %v, want the %d written on %s", site, w.key, w.vid, len(got), err, len(w.body), w.site)
			}
		}
	}
}
