package e2e

import (
	"context"
	"io"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// A node whose clock runs 2 s ahead of the others' (past the 500 ms the
// records accept): its writes to an available bucket are refused by its
// peers, so they are acknowledged with one copy, and the node says why in
// its log and its metrics; the others do not see the write until their
// clocks pass its stamp, and then every node holds it: nothing is lost.
// A write made after reading it is greater, whatever the clocks.
func TestBedClockSkew(t *testing.T) {
	const skew = 2 * time.Second
	b := startBedWith(t, 3, 3, func(i int) []string {
		if i == 0 {
			return []string{"--clock-offset", skew.String()}
		}
		return nil
	})
	ctx := context.Background()
	fast, slow := sdkClient(b.nodes[0]), sdkClient(b.nodes[1])
	const bucket = "bed-skew"
	err := retryUnavailable(func() error {
		_, err := slow.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(bucket)}, func(o *s3.Options) {
			o.APIOptions = append(o.APIOptions, smithyhttp.AddHeaderValue("X-Redoubt-Consistency", "available"))
		})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	put := func(c *s3.Client, key, body string) (version string, copies int) {
		t.Helper()
		out, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(key), Body: strings.NewReader(body)})
		if err != nil {
			t.Fatalf("PUT %s: %v", key, err)
		}
		raw, _ := awsmiddleware.GetRawResponse(out.ResultMetadata).(*smithyhttp.Response)
		n, _ := strconv.Atoi(raw.Header.Get("X-Redoubt-Copies"))
		return aws.ToString(out.VersionId), n
	}

	start := time.Now()
	_, copies := put(fast, "k", "from the fast clock")
	if copies != 1 {
		t.Fatalf("the fast node's write: %d copies, want 1 (its peers refuse versions 2s ahead)", copies)
	}
	if _, err := getBytes(ctx, slow, bucket, "k"); time.Since(start) < time.Second && errStatus(err) != 404 {
		t.Fatalf("a slow node reads a version stamped 2s ahead of its clock: %v, want 404 until its clock passes it", err)
	}
	// The fast node says why.
	if !strings.Contains(b.nodes[0].output(), "clocks disagree by more than the maximum offset") {
		t.Fatalf("the fast node's log does not say its writes are refused:\n%s", b.nodes[0].output())
	}
	metrics, err := b.nodes[0].adminGet(ctx, "/metrics")
	if err != nil || strings.Contains(string(metrics), "redoubt_records_clock_refused_total 0") ||
		!strings.Contains(string(metrics), "redoubt_records_clock_refused_total") {
		t.Fatalf("the fast node's metrics do not count the refusals: %v", err)
	}

	// Once the slow clocks pass the stamp, anti-entropy's retries bring
	// the write to every node.
	var got []byte
	for deadline := time.Now().Add(20 * time.Second); ; {
		got, err = getBytes(ctx, slow, bucket, "k")
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("20s on, the slow node still does not read the fast node's write: %v", err)
		}
		<-time.After(200 * time.Millisecond)
	}
	if string(got) != "from the fast clock" {
		t.Fatalf("slow node reads %q", got)
	}
	t.Logf("the slow node reads the fast node's write %v after it was made", time.Since(start).Round(time.Millisecond))

	// A write that read it is greater, though its node's clock is behind.
	_, copies = put(slow, "k", "after reading it")
	if copies < 2 {
		t.Fatalf("the slow node's write: %d copies", copies)
	}
	for i, n := range b.nodes {
		out, err := sdkClient(n).GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String("k")})
		if err != nil {
			t.Fatalf("node %d: %v", i, err)
		}
		body, _ := io.ReadAll(out.Body)
		out.Body.Close()
		if string(body) != "after reading it" {
			t.Fatalf("node %d serves %q as current, want the write that saw the other", i, body)
		}
	}
}
