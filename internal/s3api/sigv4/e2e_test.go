package sigv4

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awscreds "github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
	"github.com/minio/minio-go/v7"
	miniocreds "github.com/minio/minio-go/v7/pkg/credentials"
)

// seen is what the test server observed of one request.
type seen struct {
	mode     string // x-amz-content-sha256
	body     []byte
	trailers map[string]string
	err      error
}

// s3Server answers every request with Verify + Body and reports what it saw.
func s3Server(t *testing.T, tls bool) (*httptest.Server, <-chan seen) {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Creds = StaticCredentials{exampleAK: exampleSecret}
	v, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ch := make(chan seen, 16)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := seen{mode: r.Header.Get("X-Amz-Content-Sha256")}
		t.Logf("%s %s content-encoding=%q x-amz-trailer=%q decoded=%q length=%d", r.Method, r.URL, r.Header.Get("Content-Encoding"),
			r.Header.Get("X-Amz-Trailer"), r.Header.Get("X-Amz-Decoded-Content-Length"), r.ContentLength)
		defer func() { ch <- s }()
		q, err := v.Verify(r)
		if err == nil {
			var body io.Reader
			if body, err = q.Body(r); err == nil {
				s.body, err = io.ReadAll(body)
				s.trailers = q.Trailers()
			}
		}
		if err != nil {
			s.err = err
			var e *Error
			if !errors.As(err, &e) {
				e = &Error{Code: "InternalError", Message: err.Error(), Status: 500}
			}
			w.Header().Set("Content-Type", "application/xml")
			w.WriteHeader(e.Status)
			xml.NewEncoder(w).Encode(struct {
				XMLName xml.Name `xml:"Error"`
				Code    string
				Message string
			}{Code: e.Code, Message: e.Message})
			return
		}
		w.Header().Set("ETag", `"d41d8cd98f00b204e9800998ecf8427e"`)
		w.WriteHeader(http.StatusOK)
	})
	var srv *httptest.Server
	if tls {
		srv = httptest.NewTLSServer(h)
	} else {
		srv = httptest.NewServer(h)
	}
	t.Cleanup(srv.Close)
	return srv, ch
}

// recv waits for the server's report, with a deadline so that a client
// that never reaches the server fails the test instead of hanging it.
func recv(t *testing.T, ch <-chan seen) seen {
	t.Helper()
	select {
	case s := <-ch:
		return s
	case <-time.After(20 * time.Second):
		t.Fatal("the server saw no request")
		return seen{}
	}
}

func sdkClient(srv *httptest.Server, region string) *s3.Client {
	cfg := aws.Config{
		Region:           region,
		Credentials:      awscreds.NewStaticCredentialsProvider(exampleAK, exampleSecret, ""),
		HTTPClient:       srv.Client(),
		RetryMaxAttempts: 1,
		// What config.LoadDefaultConfig resolves when nothing is set.
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenSupported,
	}
	return s3.NewFromConfig(cfg, func(o *s3.Options) {
		o.BaseEndpoint = aws.String(srv.URL)
		o.UsePathStyle = true
	})
}

func TestEndToEndSDK(t *testing.T) {
	ctx := context.Background()
	data := testData(300 << 10)
	t.Run("tls trailer", func(t *testing.T) {
		srv, ch := s3Server(t, true)
		c := sdkClient(srv, "us-east-1")
		for _, body := range []io.Reader{bytes.NewReader(data), io.NopCloser(bytes.NewReader(data))} {
			_, err := c.PutObject(ctx, &s3.PutObjectInput{
				Bucket: aws.String("bucket"), Key: aws.String("dir/a key+é.bin"),
				Body: body, ContentLength: aws.Int64(int64(len(data))),
			})
			s := recv(t, ch)
			if err != nil {
				t.Fatalf("PutObject: %v (server: %v)", err, s.err)
			}
			t.Logf("%T body sent x-amz-content-sha256: %s", body, s.mode)
			if s.mode != streamingUnsignedTrailr {
				t.Fatalf("mode %q, want %s", s.mode, streamingUnsignedTrailr)
			}
			if !bytes.Equal(s.body, data) {
				t.Fatalf("decoded %d bytes, want %d", len(s.body), len(data))
			}
			if want := crc32Trailer(data); s.trailers[want[0]] != want[1] {
				t.Fatalf("trailers %v, want %v", s.trailers, want)
			}
		}
		// UploadPart and an empty object take the same path.
		_, err := c.UploadPart(ctx, &s3.UploadPartInput{Bucket: aws.String("bucket"), Key: aws.String("k"),
			UploadId: aws.String("u1"), PartNumber: aws.Int32(1), Body: bytes.NewReader(data[:5000])})
		if s := recv(t, ch); err != nil || !bytes.Equal(s.body, data[:5000]) {
			t.Fatalf("UploadPart: %v, %v, %d bytes", err, s.err, len(s.body))
		}
		_, err = c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("bucket"), Key: aws.String("empty/"),
			Body: bytes.NewReader(nil)})
		if s := recv(t, ch); err != nil || len(s.body) != 0 {
			t.Fatalf("empty PutObject: %v, %v, %d bytes", err, s.err, len(s.body))
		}
	})
	t.Run("plain http", func(t *testing.T) {
		srv, ch := s3Server(t, false)
		c := sdkClient(srv, "us-east-1")
		_, err := c.PutObject(ctx, &s3.PutObjectInput{
			Bucket: aws.String("bucket"), Key: aws.String("k"), Body: bytes.NewReader(data),
		})
		s := recv(t, ch)
		if err != nil {
			t.Fatalf("PutObject: %v (server: %v)", err, s.err)
		}
		if !bytes.Equal(s.body, data) {
			t.Fatalf("decoded %d bytes", len(s.body))
		}
		t.Logf("plain HTTP PutObject sent x-amz-content-sha256: %s", s.mode)
		_, err = c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("bucket"), Key: aws.String("k"),
			Range: aws.String("bytes=0-9")})
		if s := recv(t, ch); s.err != nil {
			t.Fatalf("GetObject refused: %v", s.err)
		}
		_ = err // the empty test answer is not a valid GetObject response; only the server side matters
	})
	t.Run("presigned", func(t *testing.T) {
		srv, ch := s3Server(t, true)
		p := s3.NewPresignClient(sdkClient(srv, "us-east-1"))
		req, err := p.PresignPutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("bucket"), Key: aws.String("p q")})
		if err != nil {
			t.Fatal(err)
		}
		hr, _ := http.NewRequest(req.Method, req.URL, bytes.NewReader(data[:1000]))
		for k, vs := range req.SignedHeader {
			hr.Header[k] = vs
		}
		resp, err := srv.Client().Do(hr)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if s := recv(t, ch); resp.StatusCode != 200 || !bytes.Equal(s.body, data[:1000]) {
			t.Fatalf("presigned PUT: status %d, server %v", resp.StatusCode, s.err)
		}
	})
	t.Run("wrong region", func(t *testing.T) {
		srv, ch := s3Server(t, true)
		_, err := sdkClient(srv, "eu-west-3").PutObject(ctx, &s3.PutObjectInput{
			Bucket: aws.String("bucket"), Key: aws.String("k"), Body: strings.NewReader("x")})
		recv(t, ch)
		var ae smithy.APIError
		if !errors.As(err, &ae) || ae.ErrorCode() != CodeAuthorizationHeaderMalformed ||
			!strings.Contains(ae.ErrorMessage(), "us-east-1") {
			t.Fatalf("got %v", err)
		}
	})
}

// minio-go signs streaming uploads chunk by chunk over plain HTTP: the real
// client check for STREAMING-AWS4-HMAC-SHA256-PAYLOAD(-TRAILER).
func TestEndToEndMinio(t *testing.T) {
	ctx := context.Background()
	srv, ch := s3Server(t, false)
	data := testData(200 << 10)
	modes := map[string]bool{}
	for _, trailing := range []bool{false, true} {
		c, err := minio.New(strings.TrimPrefix(srv.URL, "http://"), &minio.Options{
			Creds:           miniocreds.NewStaticV4(exampleAK, exampleSecret, ""),
			Region:          "us-east-1",
			BucketLookup:    minio.BucketLookupPath,
			MaxRetries:      1,
			TrailingHeaders: trailing,
		})
		if err != nil {
			t.Fatal(err)
		}
		opts := minio.PutObjectOptions{}
		if trailing {
			opts.Checksum = minio.ChecksumCRC32C
		}
		_, err = c.PutObject(ctx, "bucket", "obj", bytes.NewReader(data), int64(len(data)), opts)
		if err != nil {
			t.Fatalf("PutObject(trailing %v): %v", trailing, err)
		}
		s := recv(t, ch)
		if s.err != nil {
			t.Fatalf("PutObject(trailing %v): server: %v", trailing, s.err)
		}
		if !bytes.Equal(s.body, data) {
			t.Fatalf("decoded %d bytes", len(s.body))
		}
		modes[s.mode] = true
		t.Logf("minio-go sent %s with trailers %v", s.mode, s.trailers)
		if trailing && s.trailers["x-amz-checksum-crc32c"] == "" {
			t.Fatalf("trailers %v", s.trailers)
		}
	}
	if !modes[streamingSigned] || !modes[streamingSignedTrailer] {
		t.Fatalf("minio-go never used signed streaming: %v", modes)
	}
}
