package sigv4

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

var sdkCreds = aws.Credentials{AccessKeyID: exampleAK, SecretAccessKey: exampleSecret}

var signTime = time.Date(2026, 3, 14, 15, 9, 26, 0, time.UTC)

func s3Signer() *v4.Signer {
	return v4.NewSigner(func(o *v4.SignerOptions) { o.DisableURIPathEscaping = true })
}

func sha256Hex(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// sdkSign signs r with the SDK's signer as its S3 client does.
func sdkSign(t testing.TB, r *http.Request, payloadHash, region string, at time.Time) {
	t.Helper()
	r.Header.Set("X-Amz-Content-Sha256", payloadHash)
	if err := s3Signer().SignHTTP(context.Background(), sdkCreds, r, payloadHash, "s3", region, at); err != nil {
		t.Fatal(err)
	}
}

func TestSDKHeaderSigning(t *testing.T) {
	v := newTestVerifier(t, signTime.Add(3*time.Minute))
	cases := []struct {
		name, method, url string
		headers           map[string]string
		body              string
	}{
		{name: "plain", method: "GET", url: "http://127.0.0.1:9000/bucket/key.txt"},
		{name: "root", method: "GET", url: "http://127.0.0.1:9000/"},
		{name: "query", method: "GET", url: "http://localhost/bucket?list-type=2&prefix=a%20b%2Fc&delimiter=%2F&max-keys=10"},
		{name: "subresource", method: "PUT", url: "http://localhost/bucket/k?acl", body: "<x/>"},
		{name: "escaped key", method: "PUT", url: "http://localhost/bucket/a%20b/%C3%A9t%C3%A9%21%24%26%27%28%29%2A%2B%2C%3B%3D%3A%40.txt", body: "hello"},
		{name: "slash in key", method: "GET", url: "http://localhost/bucket/a%2Fb//c"},
		{name: "headers", method: "PUT", url: "http://localhost/b/k", body: "data",
			headers: map[string]string{"X-Amz-Meta-Spaces": "  a   b  c ", "Content-Type": "text/plain", "X-Amz-Storage-Class": "STANDARD"}},
		{name: "virtual host", method: "DELETE", url: "http://bucket.s3.example.com:8443/key"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var body []byte
			if c.body != "" {
				body = []byte(c.body)
			}
			r := httptest.NewRequest(c.method, c.url, bytes.NewReader(body))
			for k, val := range c.headers {
				r.Header.Set(k, val)
			}
			sdkSign(t, r, sha256Hex(body), "us-east-1", signTime)
			q := mustVerify(t, v, r)
			if got := readAll(t, q, r); !bytes.Equal(got, body) {
				t.Fatalf("body %q", got)
			}
			if q.Trailers() == nil {
				t.Fatal("no trailers map after EOF")
			}
			// Any change to what was signed fails.
			r2 := httptest.NewRequest(c.method, c.url, bytes.NewReader(body))
			for k, val := range c.headers {
				r2.Header.Set(k, val)
			}
			sdkSign(t, r2, sha256Hex(body), "us-east-1", signTime)
			r2.Method = "POST"
			wantCode(t, v, r2, CodeSignatureDoesNotMatch, 403)
		})
	}
}

func TestSDKPresign(t *testing.T) {
	v := newTestVerifier(t, signTime.Add(10*time.Minute))
	for _, raw := range []string{
		"http://localhost:9000/bucket/some%20key?versionId=3",
		"http://localhost:9000/bucket/x%2Fy%C3%A9",
	} {
		r := httptest.NewRequest("GET", raw, nil)
		q := r.URL.Query()
		q.Set("X-Amz-Expires", "3600")
		r.URL.RawQuery = q.Encode()
		u, _, err := s3Signer().PresignHTTP(context.Background(), sdkCreds, r, unsignedPayload, "s3", "us-east-1", signTime)
		if err != nil {
			t.Fatal(err)
		}
		pr := httptest.NewRequest("GET", u, nil)
		if Anonymous(pr) {
			t.Fatal("presigned request reported anonymous")
		}
		got := mustVerify(t, v, pr)
		if got.AccessKey != exampleAK || got.mode != modeUnsigned {
			t.Fatalf("request %+v", got)
		}
		// Expired an hour after signing.
		late := newTestVerifier(t, signTime.Add(time.Hour+time.Second))
		e := wantCode(t, late, httptest.NewRequest("GET", u, nil), CodeAccessDenied, 403)
		if e.Message != "Request has expired" {
			t.Fatalf("message %q", e.Message)
		}
		// Changing a signed parameter fails.
		tampered := strings.Replace(u, "X-Amz-Expires=3600", "X-Amz-Expires=3601", 1)
		wantCode(t, v, httptest.NewRequest("GET", tampered, nil), CodeSignatureDoesNotMatch, 403)
	}
}

func TestPresignLimits(t *testing.T) {
	v := newTestVerifier(t, signTime)
	presign := func(expires string) string {
		r := httptest.NewRequest("GET", "http://localhost/b/k?X-Amz-Expires="+expires, nil)
		u, _, err := s3Signer().PresignHTTP(context.Background(), sdkCreds, r, unsignedPayload, "s3", "us-east-1", signTime)
		if err != nil {
			t.Fatal(err)
		}
		return u
	}
	mustVerify(t, v, httptest.NewRequest("GET", presign("604800"), nil))
	wantCode(t, v, httptest.NewRequest("GET", presign("604801"), nil), CodeAuthorizationQueryParametersError, 400)
	wantCode(t, v, httptest.NewRequest("GET", presign("-1"), nil), CodeAuthorizationQueryParametersError, 400)
	// Missing parameters.
	u, _ := url.Parse(presign("60"))
	q := u.Query()
	q.Del("X-Amz-SignedHeaders")
	u.RawQuery = q.Encode()
	wantCode(t, v, httptest.NewRequest("GET", u.String(), nil), CodeAuthorizationQueryParametersError, 400)
	// Wrong region names the expected one.
	r := httptest.NewRequest("GET", "http://localhost/b/k?X-Amz-Expires=60", nil)
	s, _, _ := s3Signer().PresignHTTP(context.Background(), sdkCreds, r, unsignedPayload, "s3", "eu-west-1", signTime)
	e := wantCode(t, v, httptest.NewRequest("GET", s, nil), CodeAuthorizationQueryParametersError, 400)
	if !strings.Contains(e.Message, "'us-east-1'") {
		t.Fatalf("message %q", e.Message)
	}
	// Signed in the future, beyond the allowed skew.
	early := newTestVerifier(t, signTime.Add(-20*time.Minute))
	wantCode(t, early, httptest.NewRequest("GET", presign("600"), nil), CodeAccessDenied, 403)
	// Both a query signature and an Authorization header.
	both := httptest.NewRequest("GET", presign("60"), nil)
	both.Header.Set("Authorization", authHeaderFor("host", strings.Repeat("0", 64)))
	wantCode(t, v, both, CodeInvalidArgument, 400)
}

func TestHeaderAuthErrors(t *testing.T) {
	now := signTime
	v := newTestVerifier(t, now)
	signed := func(mut func(r *http.Request)) *http.Request {
		r := httptest.NewRequest("GET", "http://localhost/b/k", nil)
		sdkSign(t, r, emptySHA256, "us-east-1", now)
		if mut != nil {
			mut(r)
		}
		return r
	}
	mustVerify(t, v, signed(nil))

	t.Run("unknown access key", func(t *testing.T) {
		r := httptest.NewRequest("GET", "http://localhost/b/k", nil)
		r.Header.Set("X-Amz-Content-Sha256", emptySHA256)
		c := aws.Credentials{AccessKeyID: "NOPE", SecretAccessKey: "x"}
		if err := s3Signer().SignHTTP(context.Background(), c, r, emptySHA256, "s3", "us-east-1", now); err != nil {
			t.Fatal(err)
		}
		wantCode(t, v, r, CodeInvalidAccessKeyID, 403)
	})
	t.Run("wrong secret", func(t *testing.T) {
		r := httptest.NewRequest("GET", "http://localhost/b/k", nil)
		r.Header.Set("X-Amz-Content-Sha256", emptySHA256)
		c := aws.Credentials{AccessKeyID: exampleAK, SecretAccessKey: "wrong"}
		if err := s3Signer().SignHTTP(context.Background(), c, r, emptySHA256, "s3", "us-east-1", now); err != nil {
			t.Fatal(err)
		}
		wantCode(t, v, r, CodeSignatureDoesNotMatch, 403)
	})
	t.Run("other region", func(t *testing.T) {
		r := httptest.NewRequest("GET", "http://localhost/b/k", nil)
		sdkSign(t, r, emptySHA256, "eu-central-1", now)
		e := wantCode(t, v, r, CodeAuthorizationHeaderMalformed, 400)
		if !strings.Contains(e.Message, "expecting 'us-east-1'") || !strings.Contains(e.Message, "'eu-central-1'") {
			t.Fatalf("message %q", e.Message)
		}
	})
	t.Run("skew", func(t *testing.T) {
		r := httptest.NewRequest("GET", "http://localhost/b/k", nil)
		sdkSign(t, r, emptySHA256, "us-east-1", now.Add(-16*time.Minute))
		wantCode(t, v, r, CodeRequestTimeTooSkewed, 403)
		r = httptest.NewRequest("GET", "http://localhost/b/k", nil)
		sdkSign(t, r, emptySHA256, "us-east-1", now.Add(16*time.Minute))
		wantCode(t, v, r, CodeRequestTimeTooSkewed, 403)
		r = httptest.NewRequest("GET", "http://localhost/b/k", nil)
		sdkSign(t, r, emptySHA256, "us-east-1", now.Add(14*time.Minute))
		mustVerify(t, v, r)
	})
	t.Run("missing content sha256", func(t *testing.T) {
		r := httptest.NewRequest("GET", "http://localhost/b/k", nil)
		if err := s3Signer().SignHTTP(context.Background(), sdkCreds, r, emptySHA256, "s3", "us-east-1", now); err != nil {
			t.Fatal(err)
		}
		e := wantCode(t, v, r, CodeInvalidRequest, 400)
		if !strings.Contains(e.Message, "x-amz-content-sha256") {
			t.Fatalf("message %q", e.Message)
		}
	})
	t.Run("bad content sha256", func(t *testing.T) {
		r := httptest.NewRequest("GET", "http://localhost/b/k", nil)
		sdkSign(t, r, "not-a-hash", "us-east-1", now)
		wantCode(t, v, r, CodeInvalidArgument, 400)
	})
	t.Run("sigv4a", func(t *testing.T) {
		r := signed(func(r *http.Request) {
			r.Header.Set("Authorization", "AWS4-ECDSA-P256-SHA256 Credential="+exampleAK+"/20260314/s3/aws4_request, SignedHeaders=host;x-amz-date;x-amz-region-set, Signature=3045022100")
		})
		e := wantCode(t, v, r, CodeInvalidRequest, 400)
		if !strings.Contains(e.Message, "AWS4-HMAC-SHA256") {
			t.Fatalf("message %q", e.Message)
		}
		r = signed(nil)
		r.Header.Set("X-Amz-Content-Sha256", "STREAMING-AWS4-ECDSA-P256-SHA256-PAYLOAD")
		wantCode(t, v, r, CodeInvalidRequest, 400)
	})
	t.Run("sigv2", func(t *testing.T) {
		wantCode(t, v, signed(func(r *http.Request) { r.Header.Set("Authorization", "AWS AKID:c2lnbmF0dXJl") }), CodeInvalidRequest, 400)
		r := httptest.NewRequest("GET", "http://localhost/b/k?AWSAccessKeyId=AKID&Expires=1&Signature=abc", nil)
		if Anonymous(r) {
			t.Fatal("SigV2 presigned request reported anonymous")
		}
		wantCode(t, v, r, CodeInvalidRequest, 400)
	})
	t.Run("date mismatch with scope", func(t *testing.T) {
		r := signed(func(r *http.Request) { r.Header.Set("X-Amz-Date", now.Add(24*time.Hour).Format(iso8601)) })
		wantCode(t, v, r, CodeAuthorizationHeaderMalformed, 400)
	})
	t.Run("no date", func(t *testing.T) {
		wantCode(t, v, signed(func(r *http.Request) { r.Header.Del("X-Amz-Date") }), CodeAccessDenied, 403)
		wantCode(t, v, signed(func(r *http.Request) { r.Header.Set("X-Amz-Date", "yesterday") }), CodeAccessDenied, 403)
	})
	t.Run("host not signed", func(t *testing.T) {
		r := signed(func(r *http.Request) {
			r.Header.Set("Authorization", strings.Replace(r.Header.Get("Authorization"), "SignedHeaders=host;", "SignedHeaders=", 1))
		})
		wantCode(t, v, r, CodeAuthorizationHeaderMalformed, 400)
	})
	t.Run("malformed", func(t *testing.T) {
		for _, h := range []string{
			"AWS4-HMAC-SHA256 Credential=" + exampleAK + "/20260314/us-east-1/s3/aws4_request",
			"AWS4-HMAC-SHA256 Credential=" + exampleAK + "/20260314/us-east-1/s3, SignedHeaders=host, Signature=00",
			"AWS4-HMAC-SHA256 Credential=" + exampleAK + "/20260314/us-east-1/ec2/aws4_request, SignedHeaders=host, Signature=00",
			"AWS4-HMAC-SHA256 Credential=" + exampleAK + "/2026-03-14/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=00",
			"AWS4-HMAC-SHA256 Credential=" + exampleAK + "/20260314/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=00, Foo=1",
			"AWS4-HMAC-SHA256 Credential=" + exampleAK + "/20260314/us-east-1/s3/aws4_request, SignedHeaders=Host, Signature=00",
		} {
			wantCode(t, v, signed(func(r *http.Request) { r.Header.Set("Authorization", h) }), CodeAuthorizationHeaderMalformed, 400)
		}
	})
	t.Run("not authenticated", func(t *testing.T) {
		r := httptest.NewRequest("GET", "http://localhost/b/k", nil)
		if !Anonymous(r) {
			t.Fatal("plain request not anonymous")
		}
		wantCode(t, v, r, CodeAccessDenied, 403)
	})
}

func TestPayloadHashChecked(t *testing.T) {
	v := newTestVerifier(t, signTime)
	body := []byte("the payload")
	r := httptest.NewRequest("PUT", "http://localhost/b/k", bytes.NewReader([]byte("the paylaod")))
	sdkSign(t, r, sha256Hex(body), "us-east-1", signTime)
	q := mustVerify(t, v, r)
	wantBodyCode(t, q, r, CodeXAmzContentSHA256Mismatch)

	// A body shorter than Content-Length.
	r = httptest.NewRequest("PUT", "http://localhost/b/k", bytes.NewReader(body[:4]))
	r.ContentLength = int64(len(body))
	sdkSign(t, r, unsignedPayload, "us-east-1", signTime)
	q = mustVerify(t, v, r)
	wantBodyCode(t, q, r, CodeIncompleteBody)

	// A body longer than Content-Length.
	r = httptest.NewRequest("PUT", "http://localhost/b/k", bytes.NewReader(body))
	r.ContentLength = 4
	sdkSign(t, r, unsignedPayload, "us-east-1", signTime)
	q = mustVerify(t, v, r)
	wantBodyCode(t, q, r, CodeInvalidRequest)
	if _, err := q.Body(r); err == nil {
		t.Fatal("second Body call succeeded")
	}
}

func TestConfig(t *testing.T) {
	if _, err := New(Config{Region: "us-east-1"}); err == nil {
		t.Fatal("nil Creds accepted")
	}
	if _, err := New(Config{Creds: StaticCredentials{}}); err == nil {
		t.Fatal("empty region accepted")
	}
	if _, err := New(Config{Region: "r", Creds: StaticCredentials{}, MaxSkew: -1}); err == nil {
		t.Fatal("negative skew accepted")
	}
	if got := StoredContentEncoding("aws-chunked,gzip"); got != "gzip" {
		t.Fatalf("StoredContentEncoding = %q", got)
	}
	if got := StoredContentEncoding("aws-chunked"); got != "" {
		t.Fatalf("StoredContentEncoding = %q", got)
	}
}

// A request dated by the Date header alone (no x-amz-date): the string to
// sign carries that time in ISO 8601 form. The canonical request is written
// out by hand here.
func TestDateHeaderOnly(t *testing.T) {
	v := newTestVerifier(t, signTime.Add(time.Minute))
	creq := "GET\n/b/k\n\ndate:Sat, 14 Mar 2026 15:09:26 GMT\nhost:localhost\nx-amz-content-sha256:" + emptySHA256 +
		"\n\ndate;host;x-amz-content-sha256\n" + emptySHA256
	scope := "20260314/us-east-1/s3/aws4_request"
	e := &testEncoder{key: signingKey(exampleSecret, "20260314", "us-east-1")}
	sig := e.sign("AWS4-HMAC-SHA256\n20260314T150926Z\n" + scope + "\n" + sha256Hex([]byte(creq)))
	r := httptest.NewRequest("GET", "http://localhost/b/k", nil)
	r.Header.Set("Date", "Sat, 14 Mar 2026 15:09:26 GMT")
	r.Header.Set("X-Amz-Content-Sha256", emptySHA256)
	r.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential="+exampleAK+"/"+scope+", SignedHeaders=date;host;x-amz-content-sha256, Signature="+sig)
	mustVerify(t, v, r)
	r.Header.Set("Date", "Sat, 14 Mar 2026 15:09:27 GMT")
	wantCode(t, v, r, CodeSignatureDoesNotMatch, 403)
}
