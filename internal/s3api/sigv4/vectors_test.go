package sigv4

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// The example credentials and time of the AWS S3 Signature Version 4
// documentation.
const (
	exampleAK     = "AKIAIOSFODNN7EXAMPLE"
	exampleSecret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
)

var exampleTime = time.Date(2013, 5, 24, 0, 0, 0, 0, time.UTC)

func newTestVerifier(t testing.TB, now time.Time) *Verifier {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Creds = StaticCredentials{exampleAK: exampleSecret}
	cfg.Now = func() time.Time { return now }
	v, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func authHeaderFor(signed, sig string) string {
	return "AWS4-HMAC-SHA256 Credential=" + exampleAK + "/20130524/us-east-1/s3/aws4_request,SignedHeaders=" +
		signed + ",Signature=" + sig
}

func mustVerify(t *testing.T, v *Verifier, r *http.Request) *Request {
	t.Helper()
	q, err := v.Verify(r)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	return q
}

func readAll(t *testing.T, q *Request, r *http.Request) []byte {
	t.Helper()
	body, err := q.Body(r)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(body)
	if err != nil {
		t.Fatalf("reading body: %v", err)
	}
	return b
}

// The header-signed examples of the S3 SigV4 documentation ("Examples:
// Signature Calculations in AWS Signature Version 4").
func TestAWSDocHeaderExamples(t *testing.T) {
	v := newTestVerifier(t, exampleTime)
	t.Run("GetObject", func(t *testing.T) {
		r := httptest.NewRequest("GET", "http://examplebucket.s3.amazonaws.com/test.txt", nil)
		r.Header.Set("Range", "bytes=0-9")
		r.Header.Set("X-Amz-Content-Sha256", emptySHA256)
		r.Header.Set("X-Amz-Date", "20130524T000000Z")
		r.Header.Set("Authorization", authHeaderFor("host;range;x-amz-content-sha256;x-amz-date",
			"f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"))
		q := mustVerify(t, v, r)
		if q.AccessKey != exampleAK {
			t.Fatalf("access key %q", q.AccessKey)
		}
		if b := readAll(t, q, r); len(b) != 0 {
			t.Fatalf("body %q", b)
		}
	})
	t.Run("PutObject", func(t *testing.T) {
		payload := "Welcome to Amazon S3."
		r := httptest.NewRequest("PUT", "http://examplebucket.s3.amazonaws.com/test$file.text", strings.NewReader(payload))
		r.Header.Set("Date", "Fri, 24 May 2013 00:00:00 GMT")
		r.Header.Set("X-Amz-Date", "20130524T000000Z")
		r.Header.Set("X-Amz-Storage-Class", "REDUCED_REDUNDANCY")
		r.Header.Set("X-Amz-Content-Sha256", "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072")
		r.Header.Set("Authorization", authHeaderFor("date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class",
			"98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd"))
		q := mustVerify(t, v, r)
		if b := readAll(t, q, r); string(b) != payload {
			t.Fatalf("body %q", b)
		}
	})
	t.Run("GetBucketLifecycle", func(t *testing.T) {
		r := httptest.NewRequest("GET", "http://examplebucket.s3.amazonaws.com/?lifecycle", nil)
		r.Header.Set("X-Amz-Date", "20130524T000000Z")
		r.Header.Set("X-Amz-Content-Sha256", emptySHA256)
		r.Header.Set("Authorization", authHeaderFor("host;x-amz-content-sha256;x-amz-date",
			"fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543"))
		mustVerify(t, v, r)
	})
	t.Run("ListObjects", func(t *testing.T) {
		r := httptest.NewRequest("GET", "http://examplebucket.s3.amazonaws.com/?max-keys=2&prefix=J", nil)
		r.Header.Set("X-Amz-Date", "20130524T000000Z")
		r.Header.Set("X-Amz-Content-Sha256", emptySHA256)
		r.Header.Set("Authorization", authHeaderFor("host;x-amz-content-sha256;x-amz-date",
			"34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7"))
		mustVerify(t, v, r)
	})
	t.Run("TamperedRange", func(t *testing.T) {
		r := httptest.NewRequest("GET", "http://examplebucket.s3.amazonaws.com/test.txt", nil)
		r.Header.Set("Range", "bytes=0-10")
		r.Header.Set("X-Amz-Content-Sha256", emptySHA256)
		r.Header.Set("X-Amz-Date", "20130524T000000Z")
		r.Header.Set("Authorization", authHeaderFor("host;range;x-amz-content-sha256;x-amz-date",
			"f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"))
		wantCode(t, v, r, CodeSignatureDoesNotMatch, 403)
	})
}

func TestAWSDocPresignedExample(t *testing.T) {
	const u = "http://examplebucket.s3.amazonaws.com/test.txt?X-Amz-Algorithm=AWS4-HMAC-SHA256" +
		"&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request" +
		"&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host" +
		"&X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404"
	v := newTestVerifier(t, exampleTime.Add(time.Hour))
	r := httptest.NewRequest("GET", u, nil)
	if Anonymous(r) {
		t.Fatal("presigned request reported anonymous")
	}
	q := mustVerify(t, v, r)
	if q.AccessKey != exampleAK {
		t.Fatalf("access key %q", q.AccessKey)
	}
	// One second after the 86400 s expiry.
	v = newTestVerifier(t, exampleTime.Add(86401*time.Second))
	err := wantCode(t, v, httptest.NewRequest("GET", u, nil), CodeAccessDenied, 403)
	if !strings.Contains(err.Message, "Request has expired") {
		t.Fatalf("message %q", err.Message)
	}
	// Another signature fails.
	v = newTestVerifier(t, exampleTime)
	bad := strings.Replace(u, "aeeed9", "aeeed8", 1)
	wantCode(t, v, httptest.NewRequest("GET", bad, nil), CodeSignatureDoesNotMatch, 403)
}

// The streaming example of the documentation ("Signature Calculations for
// the Authorization Header: Transferring Payload in Multiple Chunks"):
// 66560 bytes of 'a' in a 64 KiB chunk and a 1 KiB chunk.
func TestAWSDocStreamingExample(t *testing.T) {
	const (
		seed   = "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9"
		sig1   = "ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648"
		sig2   = "0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497"
		sigEnd = "b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9"
	)
	var body bytes.Buffer
	body.WriteString("10000;chunk-signature=" + sig1 + "\r\n")
	body.Write(bytes.Repeat([]byte("a"), 65536))
	body.WriteString("\r\n400;chunk-signature=" + sig2 + "\r\n")
	body.Write(bytes.Repeat([]byte("a"), 1024))
	body.WriteString("\r\n0;chunk-signature=" + sigEnd + "\r\n\r\n")
	if body.Len() != 66824 {
		t.Fatalf("encoded length %d, want 66824", body.Len())
	}
	mk := func(b []byte) *http.Request {
		r := httptest.NewRequest("PUT", "http://s3.amazonaws.com/examplebucket/chunkObject.txt", bytes.NewReader(b))
		r.Header.Set("X-Amz-Date", "20130524T000000Z")
		r.Header.Set("X-Amz-Storage-Class", "REDUCED_REDUNDANCY")
		r.Header.Set("X-Amz-Content-Sha256", streamingSigned)
		r.Header.Set("Content-Encoding", "aws-chunked")
		r.Header.Set("X-Amz-Decoded-Content-Length", "66560")
		r.Header.Set("Content-Length", "66824")
		r.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential="+exampleAK+"/20130524/us-east-1/s3/aws4_request,"+
			"SignedHeaders=content-encoding;content-length;host;x-amz-content-sha256;x-amz-date;x-amz-decoded-content-length;x-amz-storage-class,"+
			"Signature="+seed)
		return r
	}
	v := newTestVerifier(t, exampleTime)
	r := mk(body.Bytes())
	q := mustVerify(t, v, r)
	if q.DecodedLength != 66560 {
		t.Fatalf("DecodedLength %d", q.DecodedLength)
	}
	got := readAll(t, q, r)
	if !bytes.Equal(got, bytes.Repeat([]byte("a"), 66560)) {
		t.Fatalf("decoded %d bytes, not the payload", len(got))
	}
	if tr := q.Trailers(); tr == nil || len(tr) != 0 {
		t.Fatalf("trailers %v", tr)
	}
	// Flipping one data byte breaks the first chunk's signature.
	tampered := bytes.Clone(body.Bytes())
	tampered[200] = 'b'
	r = mk(tampered)
	q = mustVerify(t, v, r)
	wantBodyCode(t, q, r, CodeSignatureDoesNotMatch)
}

func wantCode(t *testing.T, v *Verifier, r *http.Request, code string, status int) *Error {
	t.Helper()
	_, err := v.Verify(r)
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("Verify: got %v, want *Error %s", err, code)
	}
	if e.Code != code || e.Status != status {
		t.Fatalf("Verify: got %s/%d (%s), want %s/%d", e.Code, e.Status, e.Message, code, status)
	}
	if !errors.Is(err, &Error{Code: code}) {
		t.Fatalf("errors.Is does not match code %s", code)
	}
	return e
}

func wantBodyCode(t *testing.T, q *Request, r *http.Request, code string) *Error {
	t.Helper()
	body, err := q.Body(r)
	if err != nil {
		t.Fatal(err)
	}
	_, err = io.ReadAll(body)
	var e *Error
	if !errors.As(err, &e) || e.Code != code {
		t.Fatalf("reading body: got %v, want %s", err, code)
	}
	if q.Trailers() != nil {
		t.Fatalf("trailers after a failed body: %v", q.Trailers())
	}
	return e
}
