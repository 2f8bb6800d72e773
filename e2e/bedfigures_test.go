package e2e

import (
	"context"
	"flag"
	"fmt"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/redoubt-io/redoubt/internal/bench"
)

var bedFigures = flag.Bool("bed.figures", false, "run TestBedAvailableFigures (BENCHMARKS.md, \"Available buckets\")")

// TestBedAvailableFigures measures PUT 4 KiB on the partition bed (5 nodes,
// 3 zones): to a strong and to an available bucket with every node up,
// then cut 2|3, through a node of each side. A measurement, not a check:
// it runs with -bed.figures.
func TestBedAvailableFigures(t *testing.T) {
	if !*bedFigures {
		t.Skip("a measurement: run with -bed.figures")
	}
	b := startBed(t, 5, bedZones)
	ctx := context.Background()
	client := sdkClient(b.nodes[2])
	for _, c := range []struct{ name, consistency string }{{"fig-strong", "strong"}, {"fig-available", "available"}} {
		err := retryUnavailable(func() error {
			_, err := client.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(c.name)}, func(o *s3.Options) {
				o.APIOptions = append(o.APIOptions, smithyhttp.AddHeaderValue("X-Redoubt-Consistency", c.consistency))
			})
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range b.nodes {
			if _, err := sdkClient(n).HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String(c.name)}); err != nil {
				t.Fatal(err)
			}
		}
	}
	run := func(what string, node int, bucket string) {
		cfg := bench.DefaultConfig()
		cfg.Endpoint, cfg.AccessKey, cfg.SecretKey, cfg.Region = b.nodes[node].Endpoint, testAccessKey, testSecretKey, testRegion
		cfg.Bucket, cfg.Op, cfg.ObjectSize, cfg.Concurrency, cfg.Duration = bucket, bench.OpPut, 4<<10, 16, 10*time.Second
		cfg.Client, cfg.Keep = "http", true
		cfg.RequestTimeout = 5 * time.Second
		res, err := bench.Run(ctx, cfg, nil)
		if err != nil && res.Total.Ops == 0 && len(res.Errors) == 0 {
			t.Logf("%-44s refused: %v", what, err)
			return
		}
		errs := ""
		for _, e := range res.Errors {
			errs += fmt.Sprintf("; %d× %s", e.Count, e.Message)
		}
		t.Logf("%-44s %8.0f PUT/s  p50 %6.1f ms  p99 %6.1f ms  %d errors%s", what, res.Total.OpsPerSec,
			float64(res.Total.Latency.P50.Microseconds())/1000, float64(res.Total.Latency.P99.Microseconds())/1000, res.Total.Errors, errs)
	}
	run("strong, all nodes up", 0, "fig-strong")
	run("available, all nodes up", 0, "fig-available")
	b.partition([]int{0, 1}, []int{2, 3, 4})
	run("available, cut 2|3, through the minority", 0, "fig-available")
	run("available, cut 2|3, through the majority", 2, "fig-available")
	run("strong, cut 2|3, through the minority", 0, "fig-strong")
	run("strong, cut 2|3, through the majority", 2, "fig-strong")
	b.heal()
}
