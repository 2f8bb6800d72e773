package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
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
)

var bedAvailCycles = flag.Int("bed.availcycles", 10, "partition/heal cycles of TestBedAvailableThroughCuts")

// availWrite is one write a client made to an available bucket.
type availWrite struct {
	key     string
	digest  string // of the body; "" for a delete marker
	version string // "" when the answer never came
	large   bool   // a body beyond what its version record holds
}

// digestOf names a body by its SHA-256.
func digestOf(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// bedBody is a body no other write sends: small, or, for large, past
// what a version record holds inline (128 KiB), so that it goes to the
// drives.
func bedBody(cycle, node, seq int, large bool) []byte {
	b := []byte(fmt.Sprintf("cycle %d node %d write %d", cycle, node, seq))
	if large {
		b = append(b, payload(uint64(cycle<<32|node<<16|seq), 200<<10)...)
	}
	return b
}

// An available, versioned bucket on 5 nodes in 3 zones while the network
// is cut and healed at random (randomCut's harms), with a writer on every
// node throughout. After the last heal, once the replicas have caught up:
// every acknowledged write is a version of its key on every node, every
// node lists the same versions, the current version of every key is the
// greatest, and no node serves bytes no client wrote. Replay with
// -bed.seed; -bed.availcycles sets the cycles.
func TestBedAvailableThroughCuts(t *testing.T) {
	seed, rng := bedRand(t, 1)
	const nodes = 5
	b := startBed(t, nodes, bedZones)
	ctx := context.Background()
	clients := make([]*s3.Client, nodes)
	for i := range clients {
		// An impatient client: a request unanswered in 10 s is given up.
		clients[i] = sdkClient(b.nodes[i], func(o *s3.Options) { o.HTTPClient = &http.Client{Timeout: 10 * time.Second} })
	}
	const bucket = "bed-available"
	err := retryUnavailable(func() error {
		_, err := clients[0].CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(bucket)}, func(o *s3.Options) {
			o.APIOptions = append(o.APIOptions, smithyhttp.AddHeaderValue("X-Redoubt-Consistency", "available"))
		})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	err = retryUnavailable(func() error {
		_, err := clients[0].PutBucketVersioning(ctx, &s3.PutBucketVersioningInput{Bucket: aws.String(bucket),
			VersioningConfiguration: &types.VersioningConfiguration{Status: types.BucketVersioningStatusEnabled}})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	// Every node learns of the bucket, and of its versioning, before the
	// first cut.
	for i, c := range clients {
		err := retryUnavailable(func() error {
			out, err := c.GetBucketVersioning(ctx, &s3.GetBucketVersioningInput{Bucket: aws.String(bucket)})
			if err == nil && out.Status != types.BucketVersioningStatusEnabled {
				err = fmt.Errorf("versioning %q", out.Status)
			}
			return err
		})
		if err != nil {
			t.Fatalf("node %d: %v", i, err)
		}
		if _, err := c.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String(bucket)}); err != nil {
			t.Fatalf("node %d: %v", i, err)
		}
	}
	// Keys under a few prefixes, enough that listings page and a key keeps
	// a few dozen versions after 100 cycles, as real keys do, not
	// thousands (a read gets every version of its key).
	var keys []string
	for i := range 40 {
		keys = append(keys, fmt.Sprintf("%s/%02d", []string{"cart", "log", "photo"}[i%3], i))
	}
	var mu sync.Mutex
	var writes []availWrite
	failed, refused := 0, 0
	var slowest time.Duration
	writer := func(node int, stop <-chan struct{}, wrng *rand.Rand, cycle int, wg *sync.WaitGroup) {
		defer wg.Done()
		for seq := 0; ; seq++ {
			select {
			case <-stop:
				return
			default:
			}
			key := keys[wrng.IntN(len(keys))]
			w := availWrite{key: key}
			start := time.Now()
			var err error
			if wrng.IntN(8) == 0 {
				var out *s3.DeleteObjectOutput
				out, err = clients[node].DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
				if err == nil {
					w.version = aws.ToString(out.VersionId)
				}
			} else {
				w.large = wrng.IntN(10) == 0
				body := bedBody(cycle, node, seq, w.large)
				w.digest = digestOf(body)
				var out *s3.PutObjectOutput
				out, err = clients[node].PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(key), Body: bytes.NewReader(body)})
				if err == nil {
					w.version = aws.ToString(out.VersionId)
				}
			}
			took := time.Since(start)
			mu.Lock()
			writes = append(writes, w)
			if err != nil {
				failed++
				if errStatus(err) == 503 {
					refused++
				}
			} else {
				slowest = max(slowest, took)
			}
			mu.Unlock()
		}
	}

	var schedule []string
	for cycle := range *bedAvailCycles {
		desc, _, hold := b.randomCut(rng)
		schedule = append(schedule, desc)
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for n := range nodes {
			wg.Add(1)
			go writer(n, stop, rand.New(rand.NewPCG(seed, uint64(cycle*nodes+n+2))), cycle, &wg)
		}
		<-time.After(hold)
		close(stop)
		wg.Wait()
		b.heal()
	}
	t.Logf("cuts: %s", strings.Join(schedule, ", "))
	acked, large, largeAcked := 0, 0, 0
	for _, w := range writes {
		if w.version != "" {
			acked++
		}
		if w.large {
			large++
			if w.version != "" {
				largeAcked++
			}
		}
	}
	t.Logf("%d writes, %d acknowledged, %d failed (%d of them 503); %d of %d large bodies acknowledged; the slowest acknowledged write took %v",
		len(writes), acked, failed, refused, largeAcked, large, slowest.Round(time.Millisecond))
	if acked == 0 {
		t.Fatal("no write was acknowledged")
	}

	// Convergence: every node lists every acknowledged version.
	healed := time.Now()
	var lists [nodes]map[string][]types.ObjectVersion
	var markers [nodes]map[string][]types.DeleteMarkerEntry
	for n := range nodes {
		for {
			lists[n], markers[n], err = listAllVersions(ctx, clients[n], bucket)
			missing := 0
			if err == nil {
				missing = len(missingVersions(writes, lists[n], markers[n]))
			}
			if err == nil && missing == 0 {
				break
			}
			if time.Since(healed) > 2*time.Minute {
				t.Fatalf("node %d, 2 minutes after the heal: %d acknowledged writes missing (%v): %v", n, missing, err,
					missingVersions(writes, lists[n], markers[n]))
			}
			<-time.After(200 * time.Millisecond)
		}
	}
	t.Logf("every node lists every acknowledged write %v after the heal", time.Since(healed).Round(time.Millisecond))

	written := map[string]map[string]bool{} // key -> digests of the bodies any client sent
	for _, w := range writes {
		if written[w.key] == nil {
			written[w.key] = map[string]bool{}
		}
		written[w.key][w.digest] = true
	}
	for n := range nodes {
		for _, key := range keys {
			// The same versions everywhere.
			if !slices.Equal(versionIDs(lists[n][key], markers[n][key]), versionIDs(lists[0][key], markers[0][key])) {
				t.Fatalf("node %d lists other versions of %s than node 0", n, key)
			}
			ids := versionIDs(lists[n][key], markers[n][key])
			if len(ids) == 0 {
				continue
			}
			greatest := ids[len(ids)-1]
			latest := ""
			for _, v := range lists[n][key] {
				if aws.ToBool(v.IsLatest) {
					latest = aws.ToString(v.VersionId)
				}
			}
			for _, m := range markers[n][key] {
				if aws.ToBool(m.IsLatest) {
					latest = aws.ToString(m.VersionId)
				}
			}
			if latest != greatest {
				t.Fatalf("node %d: the current version of %s is %s, not the greatest %s", n, key, latest, greatest)
			}
			out, err := clients[n].GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
			isMarker := slices.ContainsFunc(markers[n][key], func(m types.DeleteMarkerEntry) bool { return aws.ToString(m.VersionId) == greatest })
			switch {
			case isMarker && errStatus(err) != 404:
				t.Fatalf("node %d: GET %s under a delete marker: %v", n, key, err)
			case !isMarker && err != nil:
				t.Fatalf("node %d: GET %s: %v", n, key, err)
			case !isMarker:
				body, _ := io.ReadAll(out.Body)
				out.Body.Close()
				if aws.ToString(out.VersionId) != greatest {
					t.Fatalf("node %d: GET %s served version %s, not the greatest %s", n, key, aws.ToString(out.VersionId), greatest)
				}
				if !written[key][digestOf(body)] {
					t.Fatalf("node %d: GET %s served %d bytes no client wrote", n, key, len(body))
				}
			}
			// No version holds bytes no client wrote (each version is
			// read through one node, in turn: every node lists the same).
			for i, v := range lists[n][key] {
				if i%nodes != n {
					continue
				}
				out, err := clients[n].GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key), VersionId: v.VersionId})
				if err != nil {
					t.Fatalf("node %d: GET %s version %s: %v", n, key, aws.ToString(v.VersionId), err)
				}
				body, _ := io.ReadAll(out.Body)
				out.Body.Close()
				if !written[key][digestOf(body)] {
					t.Fatalf("node %d: %s version %s holds %d bytes no client wrote", n, key, aws.ToString(v.VersionId), len(body))
				}
			}
		}
	}
}

// listAllVersions lists every version and delete marker of bucket, by key.
func listAllVersions(ctx context.Context, c *s3.Client, bucket string) (map[string][]types.ObjectVersion, map[string][]types.DeleteMarkerEntry, error) {
	vs := map[string][]types.ObjectVersion{}
	ms := map[string][]types.DeleteMarkerEntry{}
	in := &s3.ListObjectVersionsInput{Bucket: aws.String(bucket)}
	for {
		out, err := c.ListObjectVersions(ctx, in)
		if err != nil {
			return nil, nil, err
		}
		for _, v := range out.Versions {
			vs[aws.ToString(v.Key)] = append(vs[aws.ToString(v.Key)], v)
		}
		for _, m := range out.DeleteMarkers {
			ms[aws.ToString(m.Key)] = append(ms[aws.ToString(m.Key)], m)
		}
		if !aws.ToBool(out.IsTruncated) {
			return vs, ms, nil
		}
		in.KeyMarker, in.VersionIdMarker = out.NextKeyMarker, out.NextVersionIdMarker
	}
}

// versionIDs are the IDs of a key's versions and markers, in order (an
// available bucket's IDs sort as their versions do).
func versionIDs(vs []types.ObjectVersion, ms []types.DeleteMarkerEntry) []string {
	var ids []string
	for _, v := range vs {
		ids = append(ids, aws.ToString(v.VersionId))
	}
	for _, m := range ms {
		ids = append(ids, aws.ToString(m.VersionId))
	}
	slices.Sort(ids)
	return ids
}

// missingVersions are the acknowledged writes a node's listing lacks.
func missingVersions(writes []availWrite, vs map[string][]types.ObjectVersion, ms map[string][]types.DeleteMarkerEntry) []string {
	var out []string
	for _, w := range writes {
		if w.version == "" {
			continue
		}
		if !slices.Contains(versionIDs(vs[w.key], ms[w.key]), w.version) {
			out = append(out, w.key+"@"+w.version)
		}
	}
	return out
}
