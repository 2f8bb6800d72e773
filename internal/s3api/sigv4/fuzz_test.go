package sigv4

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"runtime"
	"strings"
	"testing"
)

// FuzzCanonicalRequest builds canonical requests from arbitrary parts (no
// panic), and checks that whatever path, query and header value the SDK
// signer signs, Verify accepts.
func FuzzCanonicalRequest(f *testing.F) {
	f.Add("GET", "bucket/key", "a", "b", "prefix", "x y", "value")
	f.Add("PUT", "b/a%2Fb/é ü/!$&'()*+,;=:@", "", "", "acl", "", " a  b ")
	f.Add("DELETE", "", "X-Amz-Foo", "%zz", "k;k", "+", "\tx\t")
	f.Add("POST", "b/%ZZ/%", "uploads", "", "uploadId", "a/b-c", "a \t  b")
	f.Fuzz(func(t *testing.T, method, path, k1, v1, k2, v2, hval string) {
		// Arbitrary input: no panic.
		raw := &http.Request{Method: method, URL: &url.URL{Path: "/" + path, RawQuery: k1 + "=" + v1 + "&" + k2},
			Header: http.Header{"X-Amz-Meta-F": {hval}}, Host: v2, RequestURI: "/" + path + "?" + k2}
		for _, u := range canonicalURIs(raw) {
			_ = buildCanonicalRequest(method, u, canonicalQuery(parseQuery(raw.URL.RawQuery), true),
				canonicalHeaders(raw, []string{"host", "x-amz-meta-f", k1}), "host", emptySHA256)
		}
		v := newTestVerifier(t, signTime)
		raw.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential="+k1+", SignedHeaders="+k2+", Signature="+v2)
		if _, err := v.Verify(raw); err == nil {
			t.Fatal("made-up request verified")
		}

		// SDK-signed: always verifies.
		if !validValue(hval) || !validName(method) {
			return
		}
		q := url.Values{}
		for _, kv := range [][2]string{{k1, v1}, {k2, v2}} {
			if strings.HasPrefix(strings.ToLower(kv[0]), "x-amz-") || kv[0] == "AWSAccessKeyId" || kv[0] == "Signature" {
				continue
			}
			q.Add(kv[0], kv[1])
		}
		r, err := http.NewRequest(method, "http://localhost:9000/", nil)
		if err != nil {
			return
		}
		r.URL.Path = "/" + path
		r.URL.RawPath = ""
		r.URL.RawQuery = q.Encode()
		r.Header.Set("X-Amz-Meta-F", hval)
		sdkSign(t, r, emptySHA256, "us-east-1", signTime)
		if _, err := v.Verify(r); err != nil {
			t.Fatalf("SDK-signed %s %q ?%s not verified: %v", method, r.URL.EscapedPath(), r.URL.RawQuery, err)
		}
	})
}

// FuzzChunkedDecode feeds arbitrary bytes as an aws-chunked body: no panic,
// never more than the declared length, exactly that length on success, and
// only *Error failures.
func FuzzChunkedDecode(f *testing.F) {
	data := testData(3000)
	for _, mode := range []string{streamingSigned, streamingSignedTrailer, streamingUnsignedTrailr} {
		r := streamingRequest(f, mode, data, func(e *testEncoder) {
			e.chunkSizeOrder = []int{1024}
			if mode != streamingSigned {
				e.trailers = [][2]string{crc32Trailer(data)}
				e.signTrailers = mode == streamingSignedTrailer
			}
		}, nil)
		body, _ := io.ReadAll(r.Body)
		f.Add(body, uint16(len(data)), uint8(len(mode)%3))
	}
	f.Add([]byte("5\r\nhello\r\n0\r\nx-amz-checksum-crc32:AAAAAA==\r\n\r\n"), uint16(5), uint8(2))
	f.Add([]byte("fffffffffffffff\r\nhello"), uint16(5), uint8(2))
	f.Add([]byte("0\r\n"), uint16(0), uint8(0))
	key := signingKey(exampleSecret, signTime.Format(yyyymmdd), "us-east-1")
	modes := []payloadMode{modeStreamingSigned, modeStreamingSignedTrailer, modeStreamingUnsignedTrailer}
	f.Fuzz(func(t *testing.T, body []byte, declared uint16, m uint8) {
		q := &Request{DecodedLength: int64(declared), mode: modes[int(m)%len(modes)], signingKey: key,
			seedSig: strings.Repeat("0", 64), amzDate: signTime.Format(iso8601),
			scope: signTime.Format(yyyymmdd) + "/us-east-1/s3/aws4_request"}
		r := &http.Request{Body: io.NopCloser(bytes.NewReader(body))}
		// Memory: the decoder's buffer and lines, never a claimed size.
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		defer func() {
			runtime.ReadMemStats(&after)
			if grew := after.TotalAlloc - before.TotalAlloc; grew > 256<<10+2*uint64(len(body)) {
				t.Fatalf("decoding %d bytes allocated %d", len(body), grew)
			}
		}()
		rd, err := q.Body(r)
		if err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 700)
		total := 0
		for {
			n, err := rd.Read(buf)
			total += n
			if total > int(declared) {
				t.Fatalf("decoded %d bytes, declared %d", total, declared)
			}
			if err == io.EOF {
				if total != int(declared) {
					t.Fatalf("EOF after %d bytes, declared %d", total, declared)
				}
				if q.Trailers() == nil {
					t.Fatal("no trailers after EOF")
				}
				return
			}
			if err != nil {
				var e *Error
				if !errors.As(err, &e) {
					t.Fatalf("error %v is not an *Error", err)
				}
				if q.Trailers() != nil {
					t.Fatal("trailers after an error")
				}
				return
			}
		}
	})
}

// FuzzAuthorizationHeader: the parser never panics, and what it accepts is
// well formed.
func FuzzAuthorizationHeader(f *testing.F) {
	f.Add(authHeaderFor("host;range;x-amz-content-sha256;x-amz-date", "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"))
	f.Add("AWS4-HMAC-SHA256 Credential=AK/20130524/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=00")
	f.Add("AWS4-ECDSA-P256-SHA256 Credential=AK/20130524/s3/aws4_request, SignedHeaders=host, Signature=00")
	f.Add("AWS AK:sig")
	f.Add("AWS4-HMAC-SHA256 Credential=,,,=,Signature=")
	f.Fuzz(func(t *testing.T, h string) {
		a, err := parseAuthorization(h)
		if err != nil {
			if err.Status != 400 || err.Code == "" || err.Message == "" {
				t.Fatalf("bad error %+v", err)
			}
			return
		}
		if a.cred.accessKey == "" || a.cred.service != "s3" || a.cred.terminal != "aws4_request" || len(a.cred.date) != 8 {
			t.Fatalf("accepted bad credential %+v", a.cred)
		}
		host := false
		for _, n := range a.signedHeaders {
			host = host || n == "host"
		}
		if !host {
			t.Fatal("accepted SignedHeaders without host")
		}
		// Verify on it never panics either.
		r, _ := http.NewRequestWithContext(context.Background(), "GET", "http://localhost/b/k", nil)
		r.Header.Set("Authorization", h)
		r.Header.Set("X-Amz-Date", signTime.Format(iso8601))
		r.Header.Set("X-Amz-Content-Sha256", emptySHA256)
		_, _ = newTestVerifier(t, signTime).Verify(r)
	})
}
