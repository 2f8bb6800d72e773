package node

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// metric returns the value of the sample of /metrics whose name and
// labels are exactly series (`name{label="v"}`), or -1 if there is none.
func metric(t *testing.T, n *Node, series string) float64 {
	t.Helper()
	req, err := rootClient(n).NewRequest(t.Context(), http.MethodGet, n.AdminURL+"/metrics", nil)
	if err != nil {
		t.Fatal(err)
	}
	rep := sendAdmin(t, req)
	sc := bufio.NewScanner(strings.NewReader(rep.body))
	for sc.Scan() {
		name, v, ok := strings.Cut(sc.Text(), " ")
		if ok && name == series {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("%s: %v", series, err)
			}
			return f
		}
	}
	return -1
}

// With --request-memory set, uploads of objects stored outside their
// metadata hold no more data buffers than it allows: while one upload
// holds them all, the next waits (it shows on /metrics) rather than
// taking more memory, and goes on when they come free. Both are stored
// whole.
// The default bound is an eighth of the memory, from 256 MiB to 8 GiB,
// in whole MiB.
func TestDefaultRequestMemory(t *testing.T) {
	got := DefaultRequestMemory()
	if got < 256<<20 || got > 8<<30 || got%(1<<20) != 0 {
		t.Fatalf("DefaultRequestMemory() = %d", got)
	}
	if mem := memoryLimit(); mem > 0 && mem/8 >= 256<<20 && mem/8 <= 8<<30 && (got > mem/8 || got < mem/8-(1<<20)) {
		t.Fatalf("DefaultRequestMemory() = %d; an eighth of %d is %d", got, mem, mem/8)
	}
}

func TestRequestMemoryBoundsUploads(t *testing.T) {
	const bound = 2 << 20 // one node, one drive: stripes of 1 MiB, one for writes
	n := startNodeWith(t, func(c *Config) { c.RequestMemory = bound })
	if got := metric(t, n, `redoubt_request_buffer_limit_bytes{direction="write"}`); got != bound/2 {
		t.Fatalf("write buffer limit on /metrics: %v, want %d", got, bound/2)
	}
	cl := nodeClient(n)
	ctx := context.Background()
	if _, err := cl.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("bkt")}); err != nil {
		t.Fatal(err)
	}

	// The first upload sends part of its body, then waits, holding its
	// stripe's buffer.
	first := payload(21, 3<<20)
	pr, pw := io.Pipe()
	req := signedPut(t, ctx, n, "/bkt/first", pr, first)
	firstDone := make(chan error, 1)
	go func() {
		resp, err := http.DefaultTransport.RoundTrip(req)
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				err = &httpErr{resp.StatusCode, string(b)}
			}
		}
		firstDone <- err
	}()
	if _, err := pw.Write(first[:1<<19]); err != nil {
		t.Fatal(err)
	}
	if !pollUntil(10*time.Second, func() bool {
		return metric(t, n, `redoubt_request_buffer_bytes{direction="write"}`) == bound/2
	}) {
		t.Fatal("the first upload never held the write buffers")
	}

	second := payload(22, 3<<20)
	secondDone := make(chan error, 1)
	go func() {
		_, err := putBytes(ctx, cl, "bkt", "second", second)
		secondDone <- err
	}()
	if !pollUntil(10*time.Second, func() bool { return metric(t, n, "redoubt_request_buffer_waiting") == 1 }) {
		t.Fatal("the second upload did not wait for buffers")
	}
	if got := metric(t, n, `redoubt_request_buffer_bytes{direction="write"}`); got > bound/2 {
		t.Fatalf("uploads hold %v bytes of buffers, above the bound of %d", got, bound/2)
	}

	if _, err := pw.Write(first[1<<19:]); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	if err := <-firstDone; err != nil {
		t.Fatalf("first upload: %v", err)
	}
	if err := <-secondDone; err != nil {
		t.Fatalf("second upload: %v", err)
	}
	for key, want := range map[string][]byte{"first": first, "second": second} {
		got, err := getBytes(ctx, cl, "bkt", key)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("%s read back %d bytes (%v), not the %d written", key, len(got), err, len(want))
		}
	}
	if got := metric(t, n, `redoubt_request_buffer_bytes{direction="write"}`); got != 0 {
		t.Errorf("%v bytes of write buffers held after every upload ended", got)
	}
	if got := metric(t, n, "redoubt_request_buffer_busy_total"); got != 0 {
		t.Errorf("%v requests refused", got)
	}
}

type httpErr struct {
	status int
	body   string
}

func (e *httpErr) Error() string { return strconv.Itoa(e.status) + ": " + e.body }
