package s3api_test

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

// Regression tests for answers that S3 clients and conformance suites
// depend on.

func TestPartNumberReads(t *testing.T) {
	_, ts := setupBucket(t) // bkt/obj holds 10 bytes, stored by one PUT
	// Part 1 of an object without parts is the whole object, served as
	// partial content with its range named.
	resp, body := do(t, "GET", ts.URL+"/bkt/obj?partNumber=1", nil, "X-Amz-Checksum-Mode", "ENABLED")
	if resp.StatusCode != 206 || body != "0123456789" || resp.Header.Get("Content-Range") != "bytes 0-9/10" {
		t.Fatalf("partNumber=1: %d %q Content-Range %q", resp.StatusCode, body, resp.Header.Get("Content-Range"))
	}
	if resp.Header.Get("X-Amz-Mp-Parts-Count") != "" {
		t.Fatalf("parts count sent for an object without parts")
	}
	// It is the whole object, so its whole-object checksum applies.
	if resp.Header.Get("X-Amz-Checksum-Crc64nvme") == "" || resp.Header.Get("X-Amz-Checksum-Type") != "FULL_OBJECT" {
		t.Fatalf("partNumber=1 with checksum mode: no whole-object checksum: %v", resp.Header)
	}
	// A part beyond the last names the part number, not a byte range.
	resp, body = do(t, "GET", ts.URL+"/bkt/obj?partNumber=2", nil)
	wantCode(t, resp, body, 416, "InvalidPartNumber")
	resp, _ = do(t, "HEAD", ts.URL+"/bkt/obj?partNumber=2", nil)
	if resp.StatusCode != 416 {
		t.Fatalf("HEAD partNumber=2: %d", resp.StatusCode)
	}

	// An empty object has no range to name.
	resp, body = do(t, "PUT", ts.URL+"/bkt/empty", strings.NewReader(""))
	wantCode(t, resp, body, 200, "")
	resp, body = do(t, "GET", ts.URL+"/bkt/empty?partNumber=1", nil)
	if resp.StatusCode != 200 || body != "" || resp.Header.Get("Content-Range") != "" {
		t.Fatalf("empty partNumber=1: %d %q Content-Range %q", resp.StatusCode, body, resp.Header.Get("Content-Range"))
	}
}

func TestMalformedRangeServesWholeObject(t *testing.T) {
	_, ts := setupBucket(t)
	for _, rg := range []string{"bytes= -1", "bytes=0 -1", "bytes=0- 1"} {
		resp, body := do(t, "GET", ts.URL+"/bkt/obj", nil, "Range", rg)
		if resp.StatusCode != 200 || body != "0123456789" || resp.Header.Get("Content-Range") != "" {
			t.Fatalf("Range %q: %d %q %q", rg, resp.StatusCode, body, resp.Header.Get("Content-Range"))
		}
	}
	resp, body := do(t, "GET", ts.URL+"/bkt/obj", nil, "Range", "bytes=-1")
	if resp.StatusCode != 206 || body != "9" {
		t.Fatalf("Range bytes=-1: %d %q", resp.StatusCode, body)
	}
}

func TestPutObjectAnswer(t *testing.T) {
	_, ts := setupBucket(t)
	resp, body := do(t, "PUT", ts.URL+"/bkt/sized", strings.NewReader("hello"))
	wantCode(t, resp, body, 200, "")
	if got := resp.Header.Get("X-Amz-Object-Size"); got != "5" {
		t.Fatalf("x-amz-object-size %q, want 5", got)
	}
	// Without a checksum from the client the object still gets one.
	if resp.Header.Get("X-Amz-Checksum-Crc64nvme") == "" || resp.Header.Get("X-Amz-Checksum-Type") != "FULL_OBJECT" {
		t.Fatalf("no default checksum: %v", resp.Header)
	}
	// A client-chosen algorithm replaces the default.
	resp, body = do(t, "PUT", ts.URL+"/bkt/sized", strings.NewReader("hello"), "X-Amz-Sdk-Checksum-Algorithm", "SHA256")
	wantCode(t, resp, body, 200, "")
	if resp.Header.Get("X-Amz-Checksum-Sha256") == "" || resp.Header.Get("X-Amz-Checksum-Crc64nvme") != "" {
		t.Fatalf("SHA256 put: %v", resp.Header)
	}
}

func TestChecksumMismatchNamesAlgorithm(t *testing.T) {
	_, ts := setupBucket(t)
	// "AAAAAA==" is the CRC32 of the empty string, not of "hello".
	resp, body := do(t, "PUT", ts.URL+"/bkt/x", strings.NewReader("hello"), "X-Amz-Checksum-Crc32", "AAAAAA==")
	wantCode(t, resp, body, 400, "BadDigest")
	if !strings.Contains(body, "The CRC32 you specified did not match the calculated checksum.") {
		t.Fatalf("message does not name the algorithm: %s", body)
	}
}

func TestNewerChecksumAlgorithmsNotImplemented(t *testing.T) {
	_, ts := setupBucket(t)
	for _, h := range [][2]string{
		{"X-Amz-Sdk-Checksum-Algorithm", "SHA512"},
		{"X-Amz-Checksum-Algorithm", "XXHASH64"},
		{"X-Amz-Sdk-Checksum-Algorithm", "md5"},
		{"X-Amz-Checksum-Xxhash3", "AAAAAAAAAAA="},
		{"X-Amz-Checksum-Sha512", "AAAA"},
		{"X-Amz-Trailer", "x-amz-checksum-xxhash128"},
	} {
		resp, body := do(t, "PUT", ts.URL+"/bkt/x", strings.NewReader("hello"), h[0], h[1])
		wantCode(t, resp, body, 501, "NotImplemented")
	}
	resp, body := do(t, "PUT", ts.URL+"/bkt/x", strings.NewReader("hello"), "X-Amz-Sdk-Checksum-Algorithm", "NOPE")
	wantCode(t, resp, body, 400, "InvalidRequest")
}

func TestCreateBucketOptionsNotSilentlyIgnored(t *testing.T) {
	api := newMemAPI()
	ts := newRawServer(t, api)
	tags := `<CreateBucketConfiguration><Tags><Tag><Key>k</Key><Value>v</Value></Tag></Tags></CreateBucketConfiguration>`
	resp, body := do(t, "PUT", ts.URL+"/tagged", strings.NewReader(tags))
	wantCode(t, resp, body, 501, "NotImplemented")
	resp, body = do(t, "PUT", ts.URL+"/owned", nil, "X-Amz-Object-Ownership", "ObjectWriter")
	wantCode(t, resp, body, 501, "NotImplemented")
	resp, body = do(t, "PUT", ts.URL+"/owned", nil, "X-Amz-Object-Ownership", "Anybody")
	wantCode(t, resp, body, 400, "InvalidArgument")
	for _, name := range []string{"tagged", "owned"} {
		if resp, _ := do(t, "HEAD", ts.URL+"/"+name, nil); resp.StatusCode != 404 {
			t.Fatalf("refused CreateBucket %s still created it: %d", name, resp.StatusCode)
		}
	}
	resp, body = do(t, "PUT", ts.URL+"/owned", nil, "X-Amz-Object-Ownership", "BucketOwnerEnforced")
	wantCode(t, resp, body, 200, "")
}

func TestListObjectsV1NextMarkerWithoutDelimiter(t *testing.T) {
	_, ts := setupBucket(t)
	resp, body := do(t, "PUT", ts.URL+"/bkt/obj2", strings.NewReader("x"))
	wantCode(t, resp, body, 200, "")
	resp, body = do(t, "GET", ts.URL+"/bkt?max-keys=1", nil)
	wantCode(t, resp, body, 200, "")
	if !strings.Contains(body, "<IsTruncated>true</IsTruncated>") || !strings.Contains(body, "<NextMarker>obj</NextMarker>") {
		t.Fatalf("truncated v1 list without NextMarker: %s", body)
	}
}

func TestExpectedBucketOwner(t *testing.T) {
	_, ts := setupBucket(t) // the fake principal's access key is "tester"
	resp, body := do(t, "GET", ts.URL+"/bkt/obj", nil, "X-Amz-Expected-Bucket-Owner", "tester")
	wantCode(t, resp, body, 200, "")
	resp, body = do(t, "DELETE", ts.URL+"/bkt/obj", nil, "X-Amz-Expected-Bucket-Owner", "123456789012")
	wantCode(t, resp, body, 403, "AccessDenied")
	resp, body = do(t, "PUT", ts.URL+"/bkt/copy", nil, "X-Amz-Copy-Source", "bkt/obj",
		"X-Amz-Source-Expected-Bucket-Owner", "someone-else")
	wantCode(t, resp, body, 403, "AccessDenied")
	if resp, _ := do(t, "GET", ts.URL+"/bkt/obj", nil); resp.StatusCode != 200 {
		t.Fatalf("refused delete removed the object: %d", resp.StatusCode)
	}
}

func TestUnevaluatedConditionsNotImplemented(t *testing.T) {
	_, ts := setupBucket(t)
	for _, h := range [][3]string{
		{"DELETE", "/bkt/obj", "X-Amz-If-Match-Size"},
		{"DELETE", "/bkt/obj", "X-Amz-If-Match-Last-Modified-Time"},
		{"DELETE", "/bkt/obj?uploadId=u", "X-Amz-If-Match-Initiated-Time"},
		{"POST", "/bkt/obj?uploadId=u", "X-Amz-Mp-Object-Size"},
	} {
		resp, body := do(t, h[0], ts.URL+h[1], nil, h[2], "1")
		wantCode(t, resp, body, 501, "NotImplemented")
	}
	if resp, _ := do(t, "GET", ts.URL+"/bkt/obj", nil); resp.StatusCode != 200 {
		t.Fatalf("refused delete removed the object: %d", resp.StatusCode)
	}
}

func TestListBucketsPrefixAndPages(t *testing.T) {
	api := newMemAPI()
	ts := newRawServer(t, api)
	for _, b := range []string{"a-1", "a-2", "a-3", "b-1"} {
		resp, body := do(t, "PUT", ts.URL+"/"+b, nil)
		wantCode(t, resp, body, 200, "")
	}
	resp, body := do(t, "GET", ts.URL+"/?prefix=a-&max-buckets=2", nil)
	wantCode(t, resp, body, 200, "")
	if !strings.Contains(body, "<Name>a-1</Name>") || !strings.Contains(body, "<Name>a-2</Name>") ||
		strings.Contains(body, "a-3") || !strings.Contains(body, "<Prefix>a-</Prefix>") {
		t.Fatalf("first page: %s", body)
	}
	_, tok, ok := strings.Cut(body, "<ContinuationToken>")
	tok, _, _ = strings.Cut(tok, "</ContinuationToken>")
	if !ok || tok == "" {
		t.Fatalf("no continuation token: %s", body)
	}
	resp, body = do(t, "GET", ts.URL+"/?prefix=a-&max-buckets=2&continuation-token="+tok, nil)
	wantCode(t, resp, body, 200, "")
	if !strings.Contains(body, "<Name>a-3</Name>") || strings.Contains(body, "a-2") || strings.Contains(body, "b-1") ||
		strings.Contains(body, "<ContinuationToken>") {
		t.Fatalf("second page: %s", body)
	}
	resp, body = do(t, "GET", ts.URL+"/?max-buckets=0", nil)
	wantCode(t, resp, body, 400, "InvalidArgument")
}

func TestMultipartChecksumTypeMustFitAlgorithm(t *testing.T) {
	_, ts := setupBucket(t)
	for _, c := range []struct{ typ, algo string }{
		{"FULL_OBJECT", ""}, {"FULL_OBJECT", "SHA1"}, {"FULL_OBJECT", "SHA256"}, {"COMPOSITE", "CRC64NVME"}, {"WHOLE", "CRC32"},
	} {
		hdr := []string{"X-Amz-Checksum-Type", c.typ}
		if c.algo != "" {
			hdr = append(hdr, "X-Amz-Checksum-Algorithm", c.algo)
		}
		resp, body := do(t, "POST", ts.URL+"/bkt/mp?uploads", nil, hdr...)
		wantCode(t, resp, body, 400, "InvalidRequest")
	}
	for _, c := range []struct{ typ, algo string }{
		{"FULL_OBJECT", "CRC32"}, {"FULL_OBJECT", "CRC64NVME"}, {"COMPOSITE", "SHA256"}, {"COMPOSITE", "CRC32C"},
	} {
		resp, body := do(t, "POST", ts.URL+"/bkt/mp?uploads", nil, "X-Amz-Checksum-Type", c.typ, "X-Amz-Checksum-Algorithm", c.algo)
		wantCode(t, resp, body, 200, "")
	}
}

func TestCompleteMultipartPartFieldsRequired(t *testing.T) {
	_, ts := setupBucket(t)
	for _, xml := range []string{
		`<CompleteMultipartUpload><Part><PartNumber>1</PartNumber></Part></CompleteMultipartUpload>`,
		`<CompleteMultipartUpload><Part><ETag>"abc"</ETag></Part></CompleteMultipartUpload>`,
	} {
		resp, body := do(t, "POST", ts.URL+"/bkt/obj?uploadId=u", strings.NewReader(xml))
		wantCode(t, resp, body, 400, "MalformedXML")
	}
}

func TestUnsignedFeaturesNotImplemented(t *testing.T) {
	_, ts := setupBucket(t)
	for _, c := range []struct {
		method, path string
		hdr          []string
	}{
		{"POST", "/bkt", []string{"Content-Type", "multipart/form-data; boundary=xyz"}},
		{"OPTIONS", "/bkt/obj", []string{"Origin", "http://example.test", "Access-Control-Request-Method", "GET"}},
	} {
		req, err := http.NewRequest(c.method, ts.URL+c.path, strings.NewReader("--xyz--\r\n"))
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i+1 < len(c.hdr); i += 2 {
			req.Header.Set(c.hdr[i], c.hdr[i+1])
		}
		resp, err := http.DefaultClient.Do(req) // unsigned, as browsers send them
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		wantCode(t, resp, string(b), 501, "NotImplemented")
	}
	// Any other unsigned request is still refused as anonymous.
	req, _ := http.NewRequest("POST", ts.URL+"/bkt?delete", strings.NewReader("<Delete/>"))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 403 {
		t.Fatalf("anonymous POST ?delete: %d", resp.StatusCode)
	}
}
