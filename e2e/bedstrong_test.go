package e2e

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// A strong bucket cut 2|3: the side without a majority refuses, quickly
// (503 within 2 s, before clients' own timeouts), the majority side goes
// on writing, and after the heal every acknowledged write reads back
// through every node.
func TestBedStrongMinorityRefusesQuickly(t *testing.T) {
	b := startBed(t, 5, 3)
	ctx := context.Background()
	bucket := newBucket(t, sdkClient(b.nodes[2]), "bed-strong")
	acked := map[string][]byte{}
	put := func(node int, key string, body []byte) error {
		_, err := sdkClient(b.nodes[node]).PutObject(ctx, &s3.PutObjectInput{
			Bucket: aws.String(bucket), Key: aws.String(key), Body: bytes.NewReader(body)})
		if err == nil {
			acked[key] = body
		}
		return err
	}
	for i := range 10 {
		if err := put(i%5, fmt.Sprintf("before/%d", i), payload(uint64(i), 3000)); err != nil {
			t.Fatalf("put before the cut: %v", err)
		}
	}

	b.partition([]int{0, 1}, []int{2, 3, 4})
	var slowest time.Duration
	for i := range 12 {
		node := i % 2
		key := fmt.Sprintf("minority/%d", i)
		start := time.Now()
		var err error
		if i%3 == 2 {
			_, err = getBytes(ctx, sdkClient(b.nodes[node]), bucket, fmt.Sprintf("before/%d", i%10))
		} else {
			err = put(node, key, payload(uint64(100+i), 3000))
		}
		took := time.Since(start)
		slowest = max(slowest, took)
		if errStatus(err) != 503 {
			t.Fatalf("request %d through node %d in the minority: %v (status %d), want 503", i, node, err, errStatus(err))
		}
		if took > 2*time.Second {
			t.Errorf("request %d through node %d in the minority answered 503 after %v, want within 2s", i, node, took.Round(time.Millisecond))
		}
	}
	t.Logf("minority: slowest 503 after %v", slowest.Round(time.Millisecond))

	for i := range 10 {
		key := fmt.Sprintf("majority/%d", i)
		if err := retryUnavailable(func() error { return put(2+i%3, key, payload(uint64(200+i), 3000)) }); err != nil {
			t.Fatalf("put %s in the majority: %v", key, err)
		}
	}

	b.heal()
	b.waitReady(b.nodes, 5)
	for n := range b.nodes {
		cl := sdkClient(b.nodes[n])
		for key, want := range acked {
			var got []byte
			err := retryUnavailable(func() (err error) { got, err = getBytes(ctx, cl, bucket, key); return err })
			if err != nil || !bytes.Equal(got, want) {
				t.Fatalf("after the heal, %s through node %d: %d bytes, %v", key, n, len(got), err)
			}
		}
	}
}
