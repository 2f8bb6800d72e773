package sigv4

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/minio/minio-go/v7"
	miniocreds "github.com/minio/minio-go/v7/pkg/credentials"
)

// An x-amz-* header the signature does not cover could change what a
// captured or presigned request does; it must be refused, naming the
// headers, while headers SDKs leave unsigned on purpose pass.
func TestUnsignedAmzHeaders(t *testing.T) {
	v := newTestVerifier(t, signTime)
	header := func(extra map[string]string) *http.Request {
		r := httptest.NewRequest("PUT", "http://localhost/b/obj", nil)
		sdkSign(t, r, emptySHA256, "us-east-1", signTime)
		for k, val := range extra {
			r.Header.Set(k, val)
		}
		return r
	}
	presigned := func(extra map[string]string) *http.Request {
		r := httptest.NewRequest("PUT", "http://localhost/b/obj?X-Amz-Expires=600", nil)
		u, _, err := s3Signer().PresignHTTP(context.Background(), sdkCreds, r, unsignedPayload, "s3", "us-east-1", signTime)
		if err != nil {
			t.Fatal(err)
		}
		pr := httptest.NewRequest("PUT", u, nil)
		for k, val := range extra {
			pr.Header.Set(k, val)
		}
		return pr
	}
	for name, mk := range map[string]func(map[string]string) *http.Request{"header": header, "presigned": presigned} {
		t.Run(name, func(t *testing.T) {
			e := wantCode(t, v, mk(map[string]string{"X-Amz-Tagging": "a=b", "X-Amz-Copy-Source": "src/key"}), CodeAccessDenied, 403)
			if e.HeadersNotSigned != "x-amz-copy-source, x-amz-tagging" ||
				e.Message != "There were headers present in the request which were not signed" {
				t.Fatalf("got %+v", e)
			}
			e = wantCode(t, v, mk(map[string]string{"x-amz-meta-evil": "1"}), CodeAccessDenied, 403)
			if e.HeadersNotSigned != "x-amz-meta-evil" {
				t.Fatalf("got %+v", e)
			}
			// Left unsigned by SDKs on purpose, or not x-amz-*.
			mustVerify(t, v, mk(map[string]string{
				"User-Agent": "aws-sdk-go-v2", "X-Amzn-Trace-Id": "Root=1-abc", "Expect": "100-continue",
				"Content-Type": "text/plain", "X-Custom-Header": "value",
			}))
		})
	}
	// S3 tolerates an unsigned x-amz-content-sha256 next to a presigned
	// URL; the payload hash in force is still the signed one.
	mustVerify(t, v, presigned(map[string]string{"X-Amz-Content-Sha256": unsignedPayload}))
	// A header that is signed passes.
	r := httptest.NewRequest("PUT", "http://localhost/b/obj", nil)
	r.Header.Set("X-Amz-Tagging", "a=b")
	sdkSign(t, r, emptySHA256, "us-east-1", signTime)
	mustVerify(t, v, r)
}

func TestAuthErrorCodes(t *testing.T) {
	v := newTestVerifier(t, signTime)
	signed := func() *http.Request {
		r := httptest.NewRequest("GET", "http://localhost/b/k", nil)
		sdkSign(t, r, emptySHA256, "us-east-1", signTime)
		return r
	}
	t.Run("no space", func(t *testing.T) {
		for _, h := range []string{"invalid_header", "AWS4-HMAC-SHA256"} {
			r := signed()
			r.Header.Set("Authorization", h)
			e := wantCode(t, v, r, CodeInvalidArgument, 400)
			if e.ArgumentName != "Authorization" || e.ArgumentValue != h ||
				e.Message != "Authorization header is invalid -- one and only one ' ' (space) required." {
				t.Fatalf("got %+v", e)
			}
		}
	})
	t.Run("unknown scheme", func(t *testing.T) {
		r := signed()
		r.Header.Set("Authorization", strings.Replace(r.Header.Get("Authorization"), algorithm, "AWS2-HMAC-SHA1", 1))
		e := wantCode(t, v, r, CodeInvalidArgument, 400)
		if e.ArgumentValue != "AWS2-HMAC-SHA1" || e.Message != "Unsupported Authorization Type" {
			t.Fatalf("got %+v", e)
		}
	})
	t.Run("unknown access key", func(t *testing.T) {
		r := signed()
		re := regexp.MustCompile("Credential=[^/]+")
		r.Header.Set("Authorization", re.ReplaceAllString(r.Header.Get("Authorization"), "Credential=NOSUCHKEY"))
		if e := wantCode(t, v, r, CodeInvalidAccessKeyID, 403); e.AccessKeyID != "NOSUCHKEY" {
			t.Fatalf("got %+v", e)
		}
	})
	presign := func(alg string) *http.Request {
		r := httptest.NewRequest("DELETE", "http://localhost/b?X-Amz-Expires=60", nil)
		u, _, err := s3Signer().PresignHTTP(context.Background(), sdkCreds, r, unsignedPayload, "s3", "us-east-1", signTime)
		if err != nil {
			t.Fatal(err)
		}
		return httptest.NewRequest("DELETE", strings.Replace(u, algorithm, alg, 1), nil)
	}
	t.Run("presigned ecdsa", func(t *testing.T) {
		e := wantCode(t, v, presign("AWS4-ECDSA-P256-SHA256"), CodeAuthorizationQueryParametersError, 400)
		if e.Message != `X-Amz-Algorithm only supports "AWS4-HMAC-SHA256"` {
			t.Fatalf("got %+v", e)
		}
		wantCode(t, v, presign("AWS4-SHA256"), CodeAuthorizationQueryParametersError, 400)
	})
	t.Run("security token", func(t *testing.T) {
		r := presign(algorithm)
		r.URL.RawQuery += "&X-Amz-Security-Token=my_token"
		r.RequestURI += "&X-Amz-Security-Token=my_token"
		wantCode(t, v, r, CodeInvalidToken, 400)
		// A token signed in the header is no better.
		r = httptest.NewRequest("GET", "http://localhost/b/k", nil)
		r.Header.Set("X-Amz-Content-Sha256", emptySHA256)
		c := sdkCreds
		c.SessionToken = "token"
		if err := s3Signer().SignHTTP(context.Background(), c, r, emptySHA256, "s3", "us-east-1", signTime); err != nil {
			t.Fatal(err)
		}
		wantCode(t, v, r, CodeInvalidToken, 400)
	})
}

// Real clients still get through with the unsigned-header rule in force:
// aws-sdk-go-v2 (header-signed PUT and GET, presigned GET) and minio-go
// (streaming PUT, GET, presigned PUT).
func TestClientsSignEveryAmzHeader(t *testing.T) {
	ctx := context.Background()
	data := testData(70 << 10)
	t.Run("aws-sdk-go-v2", func(t *testing.T) {
		srv, ch := s3Server(t, true)
		c := sdkClient(srv, "us-east-1")
		_, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("bucket"), Key: aws.String("k"),
			Body: bytes.NewReader(data), Metadata: map[string]string{"color": "blue"},
			StorageClass: "STANDARD", ChecksumAlgorithm: "CRC32C", ContentType: aws.String("text/plain")})
		if s := recv(t, ch); err != nil || s.err != nil || !bytes.Equal(s.body, data) {
			t.Fatalf("PutObject: %v (server: %v)", err, s.err)
		}
		_, _ = c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("bucket"), Key: aws.String("k"),
			Range: aws.String("bytes=0-9"), ChecksumMode: "ENABLED", IfMatch: aws.String(`"x"`)})
		if s := recv(t, ch); s.err != nil {
			t.Fatalf("GetObject refused: %v", s.err)
		}
		_, _ = c.CopyObject(ctx, &s3.CopyObjectInput{Bucket: aws.String("bucket"), Key: aws.String("k2"),
			CopySource: aws.String("bucket/k"), MetadataDirective: "REPLACE", Metadata: map[string]string{"a": "b"}})
		if s := recv(t, ch); s.err != nil {
			t.Fatalf("CopyObject refused: %v", s.err)
		}
		p := s3.NewPresignClient(c)
		req, err := p.PresignGetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("bucket"), Key: aws.String("k")})
		if err != nil {
			t.Fatal(err)
		}
		hr, _ := http.NewRequest(req.Method, req.URL, nil)
		for k, vs := range req.SignedHeader {
			hr.Header[k] = vs
		}
		resp, err := srv.Client().Do(hr)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if s := recv(t, ch); resp.StatusCode != 200 {
			t.Fatalf("presigned GET: status %d, server %v", resp.StatusCode, s.err)
		}
	})
	t.Run("minio-go", func(t *testing.T) {
		srv, ch := s3Server(t, false)
		c, err := minio.New(strings.TrimPrefix(srv.URL, "http://"), &minio.Options{
			Creds: miniocreds.NewStaticV4(exampleAK, exampleSecret, ""), Region: "us-east-1",
			BucketLookup: minio.BucketLookupPath, MaxRetries: 1,
		})
		if err != nil {
			t.Fatal(err)
		}
		_, err = c.PutObject(ctx, "bucket", "obj", bytes.NewReader(data), int64(len(data)),
			minio.PutObjectOptions{UserMetadata: map[string]string{"color": "blue"}, ContentType: "text/plain",
				UserTags: map[string]string{"a": "b"}, StorageClass: "STANDARD"})
		if s := recv(t, ch); err != nil || s.err != nil {
			t.Fatalf("PutObject: %v (server: %v)", err, s.err)
		}
		o, err := c.GetObject(ctx, "bucket", "obj", minio.GetObjectOptions{})
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, o)
		o.Close()
		if s := recv(t, ch); s.err != nil {
			t.Fatalf("GetObject refused: %v", s.err)
		}
		u, err := c.PresignedPutObject(ctx, "bucket", "obj", time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := srv.Client().Do(must(http.NewRequest("PUT", u.String(), bytes.NewReader(data[:100]))))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if s := recv(t, ch); resp.StatusCode != 200 || s.err != nil {
			t.Fatalf("presigned PUT: status %d, server %v", resp.StatusCode, s.err)
		}
	})
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
