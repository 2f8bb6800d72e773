package node

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// TestStalledPutStoresNothing stalls a PUT of a multi-chunk object half way
// against a whole node: the client reads RequestTimeout, and no object
// and no version of it exist afterwards.
func TestStalledPutStoresNothing(t *testing.T) {
	const idle = 300 * time.Millisecond
	n := startNodeWith(t, func(c *Config) { c.BodyIdleTimeout = idle })
	cl := nodeClient(n)
	ctx := context.Background()
	if _, err := cl.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("bkt")}); err != nil {
		t.Fatal(err)
	}
	full := payload(11, 3<<20)
	release := make(chan struct{})
	defer close(release)
	body := io.MultiReader(bytes.NewReader(full[:3<<19]), stallUntil(release))
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req := signedPut(t, rctx, n, "/bkt/stalled", body, full)
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		t.Fatalf("no answer to the stalled PUT: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 400 || !strings.Contains(string(b), "<Code>RequestTimeout</Code>") {
		t.Fatalf("stalled PUT answered %d %s; want 400 RequestTimeout", resp.StatusCode, b)
	}
	if _, err := cl.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String("bkt"), Key: aws.String("stalled")}); errStatus(err) != 404 {
		t.Errorf("HEAD after the stalled PUT: %v; want 404", err)
	}
	vs, err := cl.ListObjectVersions(ctx, &s3.ListObjectVersionsInput{Bucket: aws.String("bkt")})
	if err != nil || len(vs.Versions)+len(vs.DeleteMarkers) != 0 {
		t.Errorf("versions after the stalled PUT: %+v, %v; want none", vs, err)
	}
}

// signedPut is a PUT of path on n, signed with the root credentials for
// the payload full, whose body is read from body: a test can send part
// of full and then stall.
func signedPut(t *testing.T, ctx context.Context, n *Node, path string, body io.Reader, full []byte) *http.Request {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, n.S3URL+path, body)
	if err != nil {
		t.Fatal(err)
	}
	req.ContentLength = int64(len(full))
	sum := sha256.Sum256(full)
	req.Header.Set("X-Amz-Content-Sha256", hex.EncodeToString(sum[:]))
	creds := aws.Credentials{AccessKeyID: n.Credentials.AccessKey, SecretAccessKey: n.Credentials.SecretKey}
	if err := v4.NewSigner().SignHTTP(ctx, creds, req, hex.EncodeToString(sum[:]), "s3", "us-east-1", time.Now()); err != nil {
		t.Fatal(err)
	}
	return req
}

// nodeClient is an S3 client of n with its root credentials, which
// does not retry.
func nodeClient(n *Node) *s3.Client {
	return s3.New(s3.Options{
		Region:           "us-east-1",
		Credentials:      credentials.NewStaticCredentialsProvider(n.Credentials.AccessKey, n.Credentials.SecretKey, ""),
		BaseEndpoint:     aws.String(n.S3URL),
		UsePathStyle:     true,
		RetryMaxAttempts: 1,
	})
}

// stallUntil is a reader that blocks until release is closed, or gives up
// after 10 s so that a client left waiting by a broken server lets go.
func stallUntil(release <-chan struct{}) io.Reader {
	return readerFunc(func([]byte) (int, error) {
		select {
		case <-release:
			return 0, errors.New("released")
		case <-time.After(10 * time.Second):
			return 0, errors.New("gave up waiting for an answer")
		}
	})
}

type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(p []byte) (int, error) { return f(p) }
