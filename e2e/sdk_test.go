package e2e

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/minio/crc64nvme"
)

// TestSDK drives one server through the S3 surface with aws-sdk-go-v2.
func TestSDK(t *testing.T) {
	s := startLogged(t, serverOptions{drives: 4})
	var missingIDs atomic.Int64
	c := sdkClient(s, countMissingRequestIDs(&missingIDs))

	t.Run("Buckets", func(t *testing.T) { testBuckets(t, s, c) })
	t.Run("PutGetSizes", func(t *testing.T) { testPutGetSizes(t, c) })
	t.Run("Checksums", func(t *testing.T) { testChecksums(t, c) })
	t.Run("ChunkedTrailer", func(t *testing.T) { testChunkedTrailer(t, s, c) })
	t.Run("Range", func(t *testing.T) { testRange(t, c) })
	t.Run("Conditionals", func(t *testing.T) { testConditionals(t, c) })
	t.Run("HeadersAndOverrides", func(t *testing.T) { testHeaders(t, c) })
	t.Run("Delete", func(t *testing.T) { testDelete(t, c) })
	t.Run("Copy", func(t *testing.T) { testCopy(t, c) })
	t.Run("ConditionalPut", func(t *testing.T) { testConditionalPut(t, c) })
	t.Run("ListV2", func(t *testing.T) { testListV2(t, c) })
	t.Run("ListPaging", func(t *testing.T) { testListPaging(t, c) })
	t.Run("ListV1", func(t *testing.T) { testListV1(t, c) })
	t.Run("Multipart", func(t *testing.T) { testMultipart(t, c) })
	t.Run("MultipartErrors", func(t *testing.T) { testMultipartErrors(t, c) })
	t.Run("Versioning", func(t *testing.T) { testVersioning(t, c) })
	t.Run("Presigned", func(t *testing.T) { testPresigned(t, s, c) })
	t.Run("Auth", func(t *testing.T) { testAuth(t, s, c) })
	t.Run("NotImplemented", func(t *testing.T) { testNotImplemented(t, c) })
	t.Run("RequestIDs", func(t *testing.T) {
		if n := missingIDs.Load(); n != 0 {
			t.Errorf("%d responses had no x-amz-request-id header", n)
		}
	})
}

func testBuckets(t *testing.T, s *server, c *s3.Client) {
	ctx := context.Background()
	b := newBucket(t, c, "buckets")
	if _, err := c.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String(b)}); err != nil {
		t.Errorf("HeadBucket %s: %v", b, err)
	}
	lb, err := c.ListBuckets(ctx, &s3.ListBucketsInput{})
	if err != nil {
		t.Fatalf("ListBuckets: %v", err)
	}
	if !slices.ContainsFunc(lb.Buckets, func(x types.Bucket) bool { return aws.ToString(x.Name) == b }) {
		t.Errorf("ListBuckets does not list %s", b)
	}
	for _, x := range lb.Buckets {
		if x.CreationDate == nil || x.CreationDate.IsZero() {
			t.Errorf("ListBuckets: %s has no CreationDate", aws.ToString(x.Name))
		}
	}
	loc, err := c.GetBucketLocation(ctx, &s3.GetBucketLocationInput{Bucket: aws.String(b)})
	if err != nil {
		t.Errorf("GetBucketLocation: %v", err)
	} else if l := string(loc.LocationConstraint); l != "" && l != testRegion {
		t.Errorf("GetBucketLocation = %q, want \"\" or %q", l, testRegion)
	}

	_, err = c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(b), Key: aws.String("k"), Body: strings.NewReader("x")})
	if err != nil {
		t.Fatalf("PutObject: %v", err)
	}
	_, err = c.DeleteBucket(ctx, &s3.DeleteBucketInput{Bucket: aws.String(b)})
	wantErr(t, "DeleteBucket of a non-empty bucket", err, 409, "BucketNotEmpty")
	if _, err := c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(b), Key: aws.String("k")}); err != nil {
		t.Fatalf("DeleteObject: %v", err)
	}
	if _, err := c.DeleteBucket(ctx, &s3.DeleteBucketInput{Bucket: aws.String(b)}); err != nil {
		t.Errorf("DeleteBucket of an empty bucket: %v", err)
	}
	_, err = c.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String(b)})
	wantErr(t, "HeadBucket after DeleteBucket", err, 404, "")
	_, err = c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(b), Key: aws.String("k")})
	wantErr(t, "GetObject in a deleted bucket", err, 404, "NoSuchBucket")
	_, err = c.DeleteBucket(ctx, &s3.DeleteBucketInput{Bucket: aws.String(b)})
	wantErr(t, "DeleteBucket of a missing bucket", err, 404, "NoSuchBucket")

	for _, bad := range []string{"ab", "Upper-Case", "under_score", "-leading", "trailing-", "192.168.1.10", "double..dot", strings.Repeat("a", 64)} {
		_, err := c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(bad)})
		wantErr(t, "CreateBucket "+strconv.Quote(bad), err, 400, "InvalidBucketName")
	}

	b2 := newBucket(t, c, "buckets")
	_, err = c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(b2), Key: aws.String("missing")})
	wantErr(t, "GetObject of a missing key", err, 404, "NoSuchKey")
	_, err = c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(b2), Key: aws.String("missing")})
	wantErr(t, "HeadObject of a missing key", err, 404, "")
}

func testPutGetSizes(t *testing.T, c *s3.Client) {
	ctx := context.Background()
	b := newBucket(t, c, "sizes")
	for i, n := range []int{0, 1, 4 << 10, 128<<10 - 1, 128 << 10, 128<<10 + 1, 5 << 20, 33 << 20} {
		data := payload(uint64(1000+i), n)
		key := fmt.Sprintf("obj-%d", n)
		put, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(b), Key: aws.String(key), Body: bytes.NewReader(data)})
		if err != nil {
			t.Errorf("PutObject %d bytes: %v", n, err)
			continue
		}
		if want := `"` + md5hex(data) + `"`; aws.ToString(put.ETag) != want {
			t.Errorf("PutObject %d bytes: ETag %s, want %s", n, aws.ToString(put.ETag), want)
		}
		head, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(b), Key: aws.String(key)})
		if err != nil {
			t.Errorf("HeadObject %d bytes: %v", n, err)
		} else {
			if aws.ToInt64(head.ContentLength) != int64(n) {
				t.Errorf("HeadObject %d bytes: Content-Length %d", n, aws.ToInt64(head.ContentLength))
			}
			if aws.ToString(head.ETag) != aws.ToString(put.ETag) {
				t.Errorf("HeadObject %d bytes: ETag %s, PUT said %s", n, aws.ToString(head.ETag), aws.ToString(put.ETag))
			}
			if head.LastModified == nil || time.Since(*head.LastModified) > time.Hour {
				t.Errorf("HeadObject %d bytes: Last-Modified %v", n, head.LastModified)
			}
		}
		got, err := getBytes(ctx, c, b, key)
		if err != nil {
			t.Errorf("GetObject %d bytes: %v", n, err)
			continue
		}
		if !bytes.Equal(got, data) {
			t.Errorf("GetObject %d bytes: got %d bytes, content differs", n, len(got))
		}
	}
}

// checksumOf returns the base64 S3 checksum of data for algo.
func checksumOf(algo types.ChecksumAlgorithm, data []byte) string {
	var h hash.Hash
	switch algo {
	case types.ChecksumAlgorithmCrc32:
		h = crc32.NewIEEE()
	case types.ChecksumAlgorithmCrc32c:
		h = crc32.New(crc32.MakeTable(crc32.Castagnoli))
	case types.ChecksumAlgorithmCrc64nvme:
		h = crc64nvme.New()
	case types.ChecksumAlgorithmSha1:
		h = sha1.New()
	case types.ChecksumAlgorithmSha256:
		h = sha256.New()
	}
	h.Write(data)
	return base64.StdEncoding.EncodeToString(h.Sum(nil))
}

func returnedChecksum(algo types.ChecksumAlgorithm, crc32v, crc32c, crc64, sha1v, sha256v *string) string {
	switch algo {
	case types.ChecksumAlgorithmCrc32:
		return aws.ToString(crc32v)
	case types.ChecksumAlgorithmCrc32c:
		return aws.ToString(crc32c)
	case types.ChecksumAlgorithmCrc64nvme:
		return aws.ToString(crc64)
	case types.ChecksumAlgorithmSha1:
		return aws.ToString(sha1v)
	case types.ChecksumAlgorithmSha256:
		return aws.ToString(sha256v)
	}
	return ""
}

func testChecksums(t *testing.T, c *s3.Client) {
	ctx := context.Background()
	b := newBucket(t, c, "checksums")
	cases := []struct {
		name string
		algo types.ChecksumAlgorithm // "" = the SDK's default (CRC32)
	}{
		{"default", ""}, // over plain HTTP the SDK sends no checksum unless asked
		{"CRC32", types.ChecksumAlgorithmCrc32},
		{"CRC32C", types.ChecksumAlgorithmCrc32c},
		{"CRC64NVME", types.ChecksumAlgorithmCrc64nvme},
		{"SHA1", types.ChecksumAlgorithmSha1},
		{"SHA256", types.ChecksumAlgorithmSha256},
	}
	for i, tc := range cases {
		for _, n := range []int{1000, 300 << 10} {
			data := payload(uint64(2000+i*7+n), n)
			key := fmt.Sprintf("%s-%d", tc.name, n)
			algo := tc.algo
			if algo == "" {
				algo = types.ChecksumAlgorithmCrc32
			}
			_, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(b), Key: aws.String(key), Body: bytes.NewReader(data), ChecksumAlgorithm: tc.algo})
			if err != nil {
				t.Errorf("PutObject %s: %v", key, err)
				continue
			}
			want := checksumOf(algo, data)
			if tc.algo == "" {
				want = ""
			}
			get, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(b), Key: aws.String(key), ChecksumMode: types.ChecksumModeEnabled})
			if err != nil {
				t.Errorf("GetObject %s: %v", key, err)
				continue
			}
			got, err := io.ReadAll(get.Body)
			get.Body.Close()
			if err != nil || !bytes.Equal(got, data) {
				t.Errorf("GetObject %s: content differs (err %v)", key, err)
			}
			if r := returnedChecksum(algo, get.ChecksumCRC32, get.ChecksumCRC32C, get.ChecksumCRC64NVME, get.ChecksumSHA1, get.ChecksumSHA256); want != "" && r != want {
				t.Errorf("GetObject %s with checksum mode: x-amz-checksum-%s = %q, want %q", key, strings.ToLower(string(algo)), r, want)
			}
			head, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(b), Key: aws.String(key), ChecksumMode: types.ChecksumModeEnabled})
			if err != nil {
				t.Errorf("HeadObject %s: %v", key, err)
				continue
			}
			if r := returnedChecksum(algo, head.ChecksumCRC32, head.ChecksumCRC32C, head.ChecksumCRC64NVME, head.ChecksumSHA1, head.ChecksumSHA256); want != "" && r != want {
				t.Errorf("HeadObject %s with checksum mode: x-amz-checksum-%s = %q, want %q", key, strings.ToLower(string(algo)), r, want)
			}
		}
	}

	// A checksum that does not match the body is refused and stores nothing.
	data := payload(2099, 5000)
	_, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(b), Key: aws.String("bad-crc"), Body: bytes.NewReader(data),
		ChecksumCRC32: aws.String(checksumOf(types.ChecksumAlgorithmCrc32, data[1:]))})
	wantErr(t, "PutObject with a wrong x-amz-checksum-crc32", err, 400, "")
	_, err = c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(b), Key: aws.String("bad-md5"), Body: bytes.NewReader(data),
		ContentMD5: aws.String(base64.StdEncoding.EncodeToString(md5.New().Sum(nil)))})
	wantErr(t, "PutObject with a wrong Content-MD5", err, 400, "BadDigest")
	for _, k := range []string{"bad-crc", "bad-md5"} {
		_, err = c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(b), Key: aws.String(k)})
		wantErr(t, "HeadObject after a refused PUT of "+k, err, 404, "")
	}
}

// awsChunked frames data as an aws-chunked body of unsigned chunks followed
// by the given trailer, the way SDKs send STREAMING-UNSIGNED-PAYLOAD-TRAILER.
func awsChunked(data []byte, chunk int, trailer string) []byte {
	var buf bytes.Buffer
	for off := 0; off < len(data); off += chunk {
		end := min(off+chunk, len(data))
		fmt.Fprintf(&buf, "%x\r\n", end-off)
		buf.Write(data[off:end])
		buf.WriteString("\r\n")
	}
	buf.WriteString("0\r\n")
	buf.WriteString(trailer + "\r\n\r\n")
	return buf.Bytes()
}

// s3Signer signs the way S3 clients do: the path is escaped once, not twice.
func s3Signer() *v4.Signer {
	return v4.NewSigner(func(o *v4.SignerOptions) { o.DisableURIPathEscaping = true })
}

// signedRaw signs req with SigV4 for the test credentials and sends it.
func signedRaw(t *testing.T, req *http.Request, payloadHash string) *http.Response {
	t.Helper()
	req.Header.Set("X-Amz-Content-Sha256", payloadHash)
	creds := aws.Credentials{AccessKeyID: testAccessKey, SecretAccessKey: testSecretKey}
	if err := s3Signer().SignHTTP(context.Background(), creds, req, payloadHash, "s3", testRegion, time.Now()); err != nil {
		t.Fatalf("signing: %v", err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	return resp
}

// testChunkedTrailer sends what SDKs send over TLS by default: an unsigned
// aws-chunked body with a CRC trailer. Over plain HTTP the SDKs fall back to
// header checksums, so the request is built by hand.
func testChunkedTrailer(t *testing.T, s *server, c *s3.Client) {
	ctx := context.Background()
	b := newBucket(t, c, "trailer")
	for _, n := range []int{0, 100, 200<<10 + 17} {
		for _, algo := range []types.ChecksumAlgorithm{types.ChecksumAlgorithmCrc32, types.ChecksumAlgorithmCrc64nvme} {
			data := payload(uint64(3000+n), n)
			key := fmt.Sprintf("chunked-%s-%d", algo, n)
			name := "x-amz-checksum-" + strings.ToLower(string(algo))
			body := awsChunked(data, 64<<10, name+":"+checksumOf(algo, data))
			req, _ := http.NewRequest("PUT", s.Endpoint+"/"+b+"/"+key, bytes.NewReader(body))
			req.ContentLength = int64(len(body))
			req.Header.Set("Content-Encoding", "aws-chunked")
			req.Header.Set("X-Amz-Decoded-Content-Length", strconv.Itoa(n))
			req.Header.Set("X-Amz-Trailer", name)
			req.Header.Set("X-Amz-Sdk-Checksum-Algorithm", string(algo))
			resp := signedRaw(t, req, "STREAMING-UNSIGNED-PAYLOAD-TRAILER")
			msg, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Errorf("aws-chunked PUT %s: status %d: %s", key, resp.StatusCode, msg)
				continue
			}
			if want := `"` + md5hex(data) + `"`; resp.Header.Get("ETag") != want {
				t.Errorf("aws-chunked PUT %s: ETag %s, want %s (MD5 of the decoded body)", key, resp.Header.Get("ETag"), want)
			}
			get, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(b), Key: aws.String(key), ChecksumMode: types.ChecksumModeEnabled})
			if err != nil {
				t.Errorf("GetObject %s: %v", key, err)
				continue
			}
			got, err := io.ReadAll(get.Body)
			get.Body.Close()
			if err != nil || !bytes.Equal(got, data) {
				t.Errorf("GetObject %s: %d bytes, want %d; content equal: %v (err %v) — chunk framing stored as data?", key, len(got), n, bytes.Equal(got, data), err)
			}
			if r := returnedChecksum(algo, get.ChecksumCRC32, get.ChecksumCRC32C, get.ChecksumCRC64NVME, get.ChecksumSHA1, get.ChecksumSHA256); r != checksumOf(algo, data) {
				t.Errorf("GetObject %s: %s = %q, want %q", key, name, r, checksumOf(algo, data))
			}
		}
	}
	// A trailer that does not match the data is refused and stores nothing.
	data := payload(3999, 70000)
	body := awsChunked(data, 64<<10, "x-amz-checksum-crc32:"+checksumOf(types.ChecksumAlgorithmCrc32, data[:100]))
	// With and without x-amz-sdk-checksum-algorithm: aws-sdk-go-v2 sends it
	// only when the caller picked an algorithm.
	for _, withAlgo := range []bool{false, true} {
		key := fmt.Sprintf("bad-trailer-%v", withAlgo)
		req, _ := http.NewRequest("PUT", s.Endpoint+"/"+b+"/"+key, bytes.NewReader(body))
		req.ContentLength = int64(len(body))
		req.Header.Set("Content-Encoding", "aws-chunked")
		req.Header.Set("X-Amz-Decoded-Content-Length", strconv.Itoa(len(data)))
		req.Header.Set("X-Amz-Trailer", "x-amz-checksum-crc32")
		if withAlgo {
			req.Header.Set("X-Amz-Sdk-Checksum-Algorithm", "CRC32")
		}
		resp := signedRaw(t, req, "STREAMING-UNSIGNED-PAYLOAD-TRAILER")
		msg, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 400 {
			t.Errorf("aws-chunked PUT with a wrong trailer checksum (x-amz-sdk-checksum-algorithm set: %v): status %d, want 400: %s", withAlgo, resp.StatusCode, msg)
		}
		_, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(b), Key: aws.String(key)})
		wantErr(t, "HeadObject after a PUT with a wrong trailer", err, 404, "")
	}
}

func testRange(t *testing.T, c *s3.Client) {
	ctx := context.Background()
	b := newBucket(t, c, "range")
	for _, n := range []int{100 << 10, 3<<20 + 5} {
		data := payload(uint64(4000+n), n)
		key := fmt.Sprintf("r-%d", n)
		if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(b), Key: aws.String(key), Body: bytes.NewReader(data)}); err != nil {
			t.Fatalf("PutObject: %v", err)
		}
		cases := []struct {
			rng        string
			start, end int // inclusive
		}{
			{"bytes=0-9", 0, 9},
			{"bytes=0-0", 0, 0},
			{fmt.Sprintf("bytes=%d-%d", n/2-1000, n/2+1000), n/2 - 1000, n/2 + 1000},
			{"bytes=1048570-1048590", 1048570, 1048590},
			{"bytes=-50", n - 50, n - 1},
			{fmt.Sprintf("bytes=%d-", n-7), n - 7, n - 1},
			{fmt.Sprintf("bytes=%d-%d", n-10, n+1000), n - 10, n - 1},
			{fmt.Sprintf("bytes=-%d", n+10), 0, n - 1},
		}
		for _, tc := range cases {
			if tc.start >= n {
				continue
			}
			out, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(b), Key: aws.String(key), Range: aws.String(tc.rng)})
			if err != nil {
				t.Errorf("GET %s Range %s: %v", key, tc.rng, err)
				continue
			}
			got, err := io.ReadAll(out.Body)
			out.Body.Close()
			if err != nil || !bytes.Equal(got, data[tc.start:tc.end+1]) {
				t.Errorf("GET %s Range %s: %d bytes, want %d (bytes %d-%d), err %v", key, tc.rng, len(got), tc.end-tc.start+1, tc.start, tc.end, err)
			}
			if want := fmt.Sprintf("bytes %d-%d/%d", tc.start, tc.end, n); aws.ToString(out.ContentRange) != want {
				t.Errorf("GET %s Range %s: Content-Range %q, want %q", key, tc.rng, aws.ToString(out.ContentRange), want)
			}
			if aws.ToInt64(out.ContentLength) != int64(tc.end-tc.start+1) {
				t.Errorf("GET %s Range %s: Content-Length %d", key, tc.rng, aws.ToInt64(out.ContentLength))
			}
		}
		for _, bad := range []string{fmt.Sprintf("bytes=%d-", n), fmt.Sprintf("bytes=%d-%d", n+5, n+10)} {
			_, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(b), Key: aws.String(key), Range: aws.String(bad)})
			wantErr(t, "GET "+key+" Range "+bad, err, 416, "InvalidRange")
		}
	}
}

func testConditionals(t *testing.T, c *s3.Client) {
	ctx := context.Background()
	b := newBucket(t, c, "cond")
	data := payload(5000, 2000)
	put, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(b), Key: aws.String("k"), Body: bytes.NewReader(data)})
	if err != nil {
		t.Fatalf("PutObject: %v", err)
	}
	etag := aws.ToString(put.ETag)
	head, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(b), Key: aws.String("k")})
	if err != nil {
		t.Fatalf("HeadObject: %v", err)
	}
	lm := *head.LastModified
	before := lm.Add(-time.Hour)
	type cond struct {
		name   string
		get    s3.GetObjectInput
		status int // 0 = success
	}
	cases := []cond{
		{"If-Match right", s3.GetObjectInput{IfMatch: aws.String(etag)}, 0},
		{"If-Match *", s3.GetObjectInput{IfMatch: aws.String("*")}, 0},
		{"If-Match wrong", s3.GetObjectInput{IfMatch: aws.String(`"0123456789abcdef0123456789abcdef"`)}, 412},
		{"If-None-Match right", s3.GetObjectInput{IfNoneMatch: aws.String(etag)}, 304},
		{"If-None-Match *", s3.GetObjectInput{IfNoneMatch: aws.String("*")}, 304},
		{"If-None-Match other", s3.GetObjectInput{IfNoneMatch: aws.String(`"0123456789abcdef0123456789abcdef"`)}, 0},
		{"If-Modified-Since before", s3.GetObjectInput{IfModifiedSince: aws.Time(before)}, 0},
		{"If-Modified-Since at", s3.GetObjectInput{IfModifiedSince: aws.Time(lm)}, 304},
		{"If-Unmodified-Since before", s3.GetObjectInput{IfUnmodifiedSince: aws.Time(before)}, 412},
		{"If-Unmodified-Since at", s3.GetObjectInput{IfUnmodifiedSince: aws.Time(lm)}, 0},
		// S3 precedence: If-Match true wins over a failing If-Unmodified-Since;
		// If-None-Match false wins over a true If-Modified-Since.
		{"If-Match right + If-Unmodified-Since before", s3.GetObjectInput{IfMatch: aws.String(etag), IfUnmodifiedSince: aws.Time(before)}, 0},
		{"If-None-Match right + If-Modified-Since before", s3.GetObjectInput{IfNoneMatch: aws.String(etag), IfModifiedSince: aws.Time(before)}, 304},
	}
	for _, tc := range cases {
		in := tc.get
		in.Bucket, in.Key = aws.String(b), aws.String("k")
		out, err := c.GetObject(ctx, &in)
		if tc.status == 0 {
			if err != nil {
				t.Errorf("GET %s: %v", tc.name, err)
			} else {
				got, _ := io.ReadAll(out.Body)
				out.Body.Close()
				if !bytes.Equal(got, data) {
					t.Errorf("GET %s: content differs", tc.name)
				}
			}
		} else {
			code := ""
			if tc.status == 412 {
				code = "PreconditionFailed"
			}
			wantErr(t, "GET "+tc.name, err, tc.status, code)
		}
		hin := s3.HeadObjectInput{Bucket: aws.String(b), Key: aws.String("k"), IfMatch: in.IfMatch, IfNoneMatch: in.IfNoneMatch, IfModifiedSince: in.IfModifiedSince, IfUnmodifiedSince: in.IfUnmodifiedSince}
		_, err = c.HeadObject(ctx, &hin)
		if tc.status == 0 {
			if err != nil {
				t.Errorf("HEAD %s: %v", tc.name, err)
			}
		} else {
			wantErr(t, "HEAD "+tc.name, err, tc.status, "")
		}
	}
}

func testHeaders(t *testing.T, c *s3.Client) {
	ctx := context.Background()
	b := newBucket(t, c, "headers")
	expires := time.Date(2031, 3, 4, 5, 6, 7, 0, time.UTC)
	data := payload(6000, 333)
	_, err := c.PutObject(ctx, &s3.PutObjectInput{
		Bucket: aws.String(b), Key: aws.String("h"), Body: bytes.NewReader(data),
		ContentType:        aws.String("application/x-redoubt-test"),
		ContentEncoding:    aws.String("x-custom-enc"),
		ContentDisposition: aws.String(`attachment; filename="report.txt"`),
		ContentLanguage:    aws.String("de-CH"),
		CacheControl:       aws.String("max-age=3600, private"),
		Expires:            aws.Time(expires),
		Metadata:           map[string]string{"color": "blue", "Mixed-Case": "Some Value", "empty-ish": "-"},
	})
	if err != nil {
		t.Fatalf("PutObject: %v", err)
	}
	check := func(op, ctype, cenc, cdisp, clang, cc string, exp *string, md map[string]string) {
		t.Helper()
		if ctype != "application/x-redoubt-test" {
			t.Errorf("%s: Content-Type %q", op, ctype)
		}
		if cenc != "x-custom-enc" {
			t.Errorf("%s: Content-Encoding %q", op, cenc)
		}
		if cdisp != `attachment; filename="report.txt"` {
			t.Errorf("%s: Content-Disposition %q", op, cdisp)
		}
		if clang != "de-CH" {
			t.Errorf("%s: Content-Language %q", op, clang)
		}
		if cc != "max-age=3600, private" {
			t.Errorf("%s: Cache-Control %q", op, cc)
		}
		if e, err := http.ParseTime(aws.ToString(exp)); err != nil || !e.Equal(expires) {
			t.Errorf("%s: Expires %q, want %s", op, aws.ToString(exp), expires.Format(http.TimeFormat))
		}
		want := map[string]string{"color": "blue", "mixed-case": "Some Value", "empty-ish": "-"}
		for k, v := range want {
			if md[k] != v {
				t.Errorf("%s: metadata %s = %q, want %q (all: %v)", op, k, md[k], v, md)
			}
		}
	}
	head, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(b), Key: aws.String("h")})
	if err != nil {
		t.Fatalf("HeadObject: %v", err)
	}
	check("HEAD", aws.ToString(head.ContentType), aws.ToString(head.ContentEncoding), aws.ToString(head.ContentDisposition),
		aws.ToString(head.ContentLanguage), aws.ToString(head.CacheControl), head.ExpiresString, head.Metadata)
	get, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(b), Key: aws.String("h")})
	if err != nil {
		t.Fatalf("GetObject: %v", err)
	}
	got, _ := io.ReadAll(get.Body)
	get.Body.Close()
	if !bytes.Equal(got, data) {
		t.Errorf("GET: content differs")
	}
	check("GET", aws.ToString(get.ContentType), aws.ToString(get.ContentEncoding), aws.ToString(get.ContentDisposition),
		aws.ToString(get.ContentLanguage), aws.ToString(get.CacheControl), get.ExpiresString, get.Metadata)

	// response-* query parameters override the stored headers on GET.
	ovExp := time.Date(2032, 1, 2, 3, 4, 5, 0, time.UTC)
	ov, err := c.GetObject(ctx, &s3.GetObjectInput{
		Bucket: aws.String(b), Key: aws.String("h"),
		ResponseContentType:        aws.String("text/plain; charset=utf-8"),
		ResponseContentDisposition: aws.String(`inline; filename="x y.txt"`),
		ResponseContentEncoding:    aws.String("identity"),
		ResponseContentLanguage:    aws.String("fr"),
		ResponseCacheControl:       aws.String("no-cache"),
		ResponseExpires:            aws.Time(ovExp),
	})
	if err != nil {
		t.Fatalf("GetObject with response-* overrides: %v", err)
	}
	got, _ = io.ReadAll(ov.Body)
	ov.Body.Close()
	if !bytes.Equal(got, data) {
		t.Errorf("GET with overrides: content differs")
	}
	for name, pair := range map[string][2]string{
		"Content-Type":        {aws.ToString(ov.ContentType), "text/plain; charset=utf-8"},
		"Content-Disposition": {aws.ToString(ov.ContentDisposition), `inline; filename="x y.txt"`},
		"Content-Encoding":    {aws.ToString(ov.ContentEncoding), "identity"},
		"Content-Language":    {aws.ToString(ov.ContentLanguage), "fr"},
		"Cache-Control":       {aws.ToString(ov.CacheControl), "no-cache"},
	} {
		if pair[0] != pair[1] {
			t.Errorf("GET with response-* overrides: %s = %q, want %q", name, pair[0], pair[1])
		}
	}
	if e, err := http.ParseTime(aws.ToString(ov.ExpiresString)); err != nil || !e.Equal(ovExp) {
		t.Errorf("GET with response-expires: Expires %q, want %s", aws.ToString(ov.ExpiresString), ovExp.Format(http.TimeFormat))
	}
}

func testDelete(t *testing.T, c *s3.Client) {
	ctx := context.Background()
	b := newBucket(t, c, "delete")
	put := func(k string) {
		t.Helper()
		if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(b), Key: aws.String(k), Body: strings.NewReader("data of " + k)}); err != nil {
			t.Fatalf("PutObject %s: %v", k, err)
		}
	}
	put("one")
	if _, err := c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(b), Key: aws.String("one")}); err != nil {
		t.Errorf("DeleteObject: %v", err)
	}
	_, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(b), Key: aws.String("one")})
	wantErr(t, "GetObject after DeleteObject", err, 404, "NoSuchKey")
	if _, err := c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(b), Key: aws.String("never-existed")}); err != nil {
		t.Errorf("DeleteObject of a missing key: %v (S3 answers 204)", err)
	}

	for _, quiet := range []bool{false, true} {
		var ids []types.ObjectIdentifier
		for i := range 5 {
			k := fmt.Sprintf("multi-%v-%d", quiet, i)
			put(k)
			ids = append(ids, types.ObjectIdentifier{Key: aws.String(k)})
		}
		ids = append(ids, types.ObjectIdentifier{Key: aws.String(fmt.Sprintf("multi-%v-missing", quiet))})
		out, err := c.DeleteObjects(ctx, &s3.DeleteObjectsInput{Bucket: aws.String(b), Delete: &types.Delete{Objects: ids, Quiet: aws.Bool(quiet)}})
		if err != nil {
			t.Errorf("DeleteObjects quiet=%v: %v", quiet, err)
			continue
		}
		if len(out.Errors) != 0 {
			t.Errorf("DeleteObjects quiet=%v: errors %+v", quiet, out.Errors)
		}
		if quiet && len(out.Deleted) != 0 {
			t.Errorf("DeleteObjects quiet: %d Deleted entries, want none", len(out.Deleted))
		}
		if !quiet {
			var got []string
			for _, d := range out.Deleted {
				got = append(got, aws.ToString(d.Key))
			}
			sort.Strings(got)
			var want []string
			for _, id := range ids {
				want = append(want, aws.ToString(id.Key))
			}
			sort.Strings(want)
			if !slices.Equal(got, want) {
				t.Errorf("DeleteObjects: Deleted %v, want %v", got, want)
			}
		}
		for _, id := range ids {
			_, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(b), Key: id.Key})
			wantErr(t, "HeadObject after DeleteObjects", err, 404, "")
		}
	}
}

func copySource(bucket, key string) *string {
	parts := strings.Split(key, "/")
	for i, p := range parts {
		parts[i] = url.PathEscape(p)
	}
	return aws.String(bucket + "/" + strings.Join(parts, "/"))
}

func testCopy(t *testing.T, c *s3.Client) {
	ctx := context.Background()
	b := newBucket(t, c, "copy")
	b2 := newBucket(t, c, "copy-dst")
	for _, n := range []int{1234, 2<<20 + 3} {
		data := payload(uint64(7000+n), n)
		src := fmt.Sprintf("src dir/ünï %d", n)
		put, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(b), Key: aws.String(src), Body: bytes.NewReader(data),
			ContentType: aws.String("image/x-src"), Metadata: map[string]string{"origin": "source"}})
		if err != nil {
			t.Fatalf("PutObject: %v", err)
		}
		// COPY (the default directive) keeps content type and metadata.
		cp, err := c.CopyObject(ctx, &s3.CopyObjectInput{Bucket: aws.String(b2), Key: aws.String("copied"), CopySource: copySource(b, src)})
		if err != nil {
			t.Errorf("CopyObject: %v", err)
		} else if aws.ToString(cp.CopyObjectResult.ETag) != aws.ToString(put.ETag) {
			t.Errorf("CopyObject: ETag %s, want the source's %s", aws.ToString(cp.CopyObjectResult.ETag), aws.ToString(put.ETag))
		}
		got, err := getBytes(ctx, c, b2, "copied")
		if err != nil || !bytes.Equal(got, data) {
			t.Errorf("GET copy of %d bytes: %d bytes, err %v, equal %v", n, len(got), err, bytes.Equal(got, data))
		}
		h, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(b2), Key: aws.String("copied")})
		if err != nil {
			t.Errorf("HeadObject copy: %v", err)
		} else if aws.ToString(h.ContentType) != "image/x-src" || h.Metadata["origin"] != "source" {
			t.Errorf("COPY directive: Content-Type %q metadata %v, want the source's", aws.ToString(h.ContentType), h.Metadata)
		}
		// REPLACE takes the request's headers.
		_, err = c.CopyObject(ctx, &s3.CopyObjectInput{Bucket: aws.String(b2), Key: aws.String("replaced"), CopySource: copySource(b, src),
			MetadataDirective: types.MetadataDirectiveReplace, ContentType: aws.String("text/x-new"), Metadata: map[string]string{"fresh": "yes"}})
		if err != nil {
			t.Errorf("CopyObject REPLACE: %v", err)
		}
		h, err = c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(b2), Key: aws.String("replaced")})
		if err != nil {
			t.Errorf("HeadObject replaced: %v", err)
		} else {
			if aws.ToString(h.ContentType) != "text/x-new" || h.Metadata["fresh"] != "yes" {
				t.Errorf("REPLACE directive: Content-Type %q metadata %v", aws.ToString(h.ContentType), h.Metadata)
			}
			if _, ok := h.Metadata["origin"]; ok {
				t.Errorf("REPLACE directive kept the source's metadata: %v", h.Metadata)
			}
		}
		if got, err := getBytes(ctx, c, b2, "replaced"); err != nil || !bytes.Equal(got, data) {
			t.Errorf("GET replaced copy: err %v, equal %v", err, bytes.Equal(got, data))
		}
		// Copy onto itself with REPLACE updates metadata in place.
		_, err = c.CopyObject(ctx, &s3.CopyObjectInput{Bucket: aws.String(b), Key: aws.String(src), CopySource: copySource(b, src),
			MetadataDirective: types.MetadataDirectiveReplace, Metadata: map[string]string{"origin": "self"}})
		if err != nil {
			t.Errorf("CopyObject onto itself with REPLACE: %v", err)
		}
		// copy-source-if-match
		_, err = c.CopyObject(ctx, &s3.CopyObjectInput{Bucket: aws.String(b2), Key: aws.String("cond"), CopySource: copySource(b, src),
			CopySourceIfMatch: aws.String(`"00000000000000000000000000000000"`)})
		wantErr(t, "CopyObject with a wrong x-amz-copy-source-if-match", err, 412, "PreconditionFailed")
		_, err = c.CopyObject(ctx, &s3.CopyObjectInput{Bucket: aws.String(b2), Key: aws.String("cond"), CopySource: copySource(b, src),
			CopySourceIfMatch: put.ETag})
		if err != nil {
			t.Errorf("CopyObject with the right x-amz-copy-source-if-match: %v", err)
		}
	}
	_, err := c.CopyObject(ctx, &s3.CopyObjectInput{Bucket: aws.String(b2), Key: aws.String("x"), CopySource: copySource(b, "no such key")})
	wantErr(t, "CopyObject from a missing key", err, 404, "NoSuchKey")
	// Copying an object onto itself without changing anything is refused.
	if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(b), Key: aws.String("self"), Body: strings.NewReader("s")}); err != nil {
		t.Fatal(err)
	}
	_, err = c.CopyObject(ctx, &s3.CopyObjectInput{Bucket: aws.String(b), Key: aws.String("self"), CopySource: copySource(b, "self")})
	wantErr(t, "CopyObject onto itself with no change", err, 400, "InvalidRequest")
}

func testConditionalPut(t *testing.T, c *s3.Client) {
	ctx := context.Background()
	b := newBucket(t, c, "condput")
	const racers = 20
	var wg sync.WaitGroup
	results := make([]error, racers)
	for i := range racers {
		wg.Go(func() {
			_, results[i] = c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(b), Key: aws.String("race"),
				Body: bytes.NewReader(payload(uint64(8000+i), 1000+i)), IfNoneMatch: aws.String("*")})
		})
	}
	wg.Wait()
	winner := -1
	for i, err := range results {
		switch {
		case err == nil:
			if winner >= 0 {
				t.Errorf("If-None-Match: * race: writers %d and %d both succeeded", winner, i)
			}
			winner = i
		case errStatus(err) == 412 && errCode(err) == "PreconditionFailed":
		default:
			t.Errorf("If-None-Match: * race: writer %d: %v (status %d), want 412 PreconditionFailed", i, err, errStatus(err))
		}
	}
	if winner < 0 {
		t.Fatalf("If-None-Match: * race: no writer succeeded")
	}
	got, err := getBytes(ctx, c, b, "race")
	if err != nil || !bytes.Equal(got, payload(uint64(8000+winner), 1000+winner)) {
		t.Errorf("after the race the object is not the winner's (err %v)", err)
	}
	_, err = c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(b), Key: aws.String("race"), Body: strings.NewReader("late"), IfNoneMatch: aws.String("*")})
	wantErr(t, "PutObject If-None-Match: * on an existing key", err, 412, "PreconditionFailed")

	h, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(b), Key: aws.String("race")})
	if err != nil {
		t.Fatalf("HeadObject: %v", err)
	}
	_, err = c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(b), Key: aws.String("race"), Body: strings.NewReader("wrong"), IfMatch: aws.String(`"ffffffffffffffffffffffffffffffff"`)})
	wantErr(t, "PutObject If-Match with a wrong ETag", err, 412, "PreconditionFailed")
	if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(b), Key: aws.String("race"), Body: strings.NewReader("right"), IfMatch: h.ETag}); err != nil {
		t.Errorf("PutObject If-Match with the current ETag: %v", err)
	}
	if got, _ := getBytes(ctx, c, b, "race"); string(got) != "right" {
		t.Errorf("after If-Match PUT: %q, want %q", got, "right")
	}
	_, err = c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(b), Key: aws.String("absent"), Body: strings.NewReader("x"), IfMatch: h.ETag})
	wantErr(t, "PutObject If-Match on a missing key", err, 404, "NoSuchKey")
}

// listAllV2 pages through ListObjectsV2 and returns keys and common prefixes.
func listAllV2(t *testing.T, c *s3.Client, in s3.ListObjectsV2Input) (keys, prefixes []string, pages int) {
	t.Helper()
	for {
		out, err := c.ListObjectsV2(context.Background(), &in)
		if err != nil {
			t.Fatalf("ListObjectsV2: %v", err)
		}
		pages++
		for _, o := range out.Contents {
			keys = append(keys, aws.ToString(o.Key))
		}
		for _, p := range out.CommonPrefixes {
			prefixes = append(prefixes, aws.ToString(p.Prefix))
		}
		if max := aws.ToInt32(in.MaxKeys); max > 0 && len(out.Contents)+len(out.CommonPrefixes) > int(max) {
			t.Errorf("ListObjectsV2: page of %d entries with max-keys %d", len(out.Contents)+len(out.CommonPrefixes), max)
		}
		if int(aws.ToInt32(out.KeyCount)) != len(out.Contents)+len(out.CommonPrefixes) {
			t.Errorf("ListObjectsV2: KeyCount %d, page has %d entries", aws.ToInt32(out.KeyCount), len(out.Contents)+len(out.CommonPrefixes))
		}
		if !aws.ToBool(out.IsTruncated) {
			return
		}
		if out.NextContinuationToken == nil || *out.NextContinuationToken == "" {
			t.Fatalf("ListObjectsV2: truncated page without NextContinuationToken")
		}
		if pages > 10000 {
			t.Fatalf("ListObjectsV2: paging does not end")
		}
		in.ContinuationToken = out.NextContinuationToken
	}
}

func putKeys(t *testing.T, c *s3.Client, b string, keys []string) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, len(keys))
	sem := make(chan struct{}, 16)
	for _, k := range keys {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			if _, err := c.PutObject(context.Background(), &s3.PutObjectInput{Bucket: aws.String(b), Key: aws.String(k), Body: strings.NewReader(k)}); err != nil {
				errs <- fmt.Errorf("PutObject %q: %w", k, err)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

func testListV2(t *testing.T, c *s3.Client) {
	b := newBucket(t, c, "listv2")
	putKeys(t, c, b, []string{"a/1", "a/2", "a/b/3", "a/b/4", "b/1", "c", "d"})
	type tc struct {
		name           string
		in             s3.ListObjectsV2Input
		keys, prefixes []string
	}
	for _, x := range []tc{
		{"all", s3.ListObjectsV2Input{}, []string{"a/1", "a/2", "a/b/3", "a/b/4", "b/1", "c", "d"}, nil},
		{"prefix a/", s3.ListObjectsV2Input{Prefix: aws.String("a/")}, []string{"a/1", "a/2", "a/b/3", "a/b/4"}, nil},
		{"delimiter /", s3.ListObjectsV2Input{Delimiter: aws.String("/")}, []string{"c", "d"}, []string{"a/", "b/"}},
		{"prefix a/ delimiter /", s3.ListObjectsV2Input{Prefix: aws.String("a/"), Delimiter: aws.String("/")}, []string{"a/1", "a/2"}, []string{"a/b/"}},
		{"delimiter / max-keys 1", s3.ListObjectsV2Input{Delimiter: aws.String("/"), MaxKeys: aws.Int32(1)}, []string{"c", "d"}, []string{"a/", "b/"}},
		{"max-keys 2", s3.ListObjectsV2Input{MaxKeys: aws.Int32(2)}, []string{"a/1", "a/2", "a/b/3", "a/b/4", "b/1", "c", "d"}, nil},
		{"start-after a/2", s3.ListObjectsV2Input{StartAfter: aws.String("a/2")}, []string{"a/b/3", "a/b/4", "b/1", "c", "d"}, nil},
		{"start-after a/ delimiter /", s3.ListObjectsV2Input{StartAfter: aws.String("a/b/4"), Delimiter: aws.String("/")}, []string{"c", "d"}, []string{"b/"}},
		{"prefix none", s3.ListObjectsV2Input{Prefix: aws.String("zzz")}, nil, nil},
	} {
		x.in.Bucket = aws.String(b)
		keys, prefixes, _ := listAllV2(t, c, x.in)
		if !slices.Equal(keys, x.keys) || !slices.Equal(prefixes, x.prefixes) {
			t.Errorf("ListObjectsV2 %s: keys %q prefixes %q, want %q %q", x.name, keys, prefixes, x.keys, x.prefixes)
		}
	}
	// max-keys 2 truncates after exactly two keys.
	out, err := c.ListObjectsV2(context.Background(), &s3.ListObjectsV2Input{Bucket: aws.String(b), MaxKeys: aws.Int32(2)})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Contents) != 2 || !aws.ToBool(out.IsTruncated) {
		t.Errorf("ListObjectsV2 max-keys 2: %d keys, truncated %v", len(out.Contents), aws.ToBool(out.IsTruncated))
	}

	// fetch-owner
	out, err = c.ListObjectsV2(context.Background(), &s3.ListObjectsV2Input{Bucket: aws.String(b), FetchOwner: aws.Bool(true)})
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range out.Contents {
		if o.Owner == nil || aws.ToString(o.Owner.ID) == "" {
			t.Errorf("ListObjectsV2 fetch-owner: %s has no Owner ID", aws.ToString(o.Key))
			break
		}
		if o.Size == nil || *o.Size != int64(len(aws.ToString(o.Key))) || aws.ToString(o.ETag) == "" || o.LastModified == nil {
			t.Errorf("ListObjectsV2: entry %s: size %v etag %q modified %v", aws.ToString(o.Key), o.Size, aws.ToString(o.ETag), o.LastModified)
		}
	}
	out, err = c.ListObjectsV2(context.Background(), &s3.ListObjectsV2Input{Bucket: aws.String(b)})
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range out.Contents {
		if o.Owner != nil {
			t.Errorf("ListObjectsV2 without fetch-owner returned an Owner for %s", aws.ToString(o.Key))
			break
		}
	}

	// Binary (UTF-8 byte) order, and encoding-type=url.
	b2 := newBucket(t, c, "order")
	odd := []string{"B", "a", "A", "_x", "Z0", "z", "~tilde", "é", "日本語/ファイル", "with space", "with  two spaces/and more", "plus+sign", "percent%25", "ünï cödé", "tab\tkey", "0", "a b", "a-b", "a/b"}
	putKeys(t, c, b2, odd)
	want := slices.Clone(odd)
	sort.Strings(want)
	keys, _, _ := listAllV2(t, c, s3.ListObjectsV2Input{Bucket: aws.String(b2), MaxKeys: aws.Int32(4)})
	if !slices.Equal(keys, want) {
		t.Errorf("ListObjectsV2 order:\n got %q\nwant %q", keys, want)
	}
	enc, _, _ := listAllV2(t, c, s3.ListObjectsV2Input{Bucket: aws.String(b2), EncodingType: types.EncodingTypeUrl})
	var dec []string
	for _, k := range enc {
		if strings.ContainsAny(k, " \t") || !isASCII(k) {
			t.Errorf("ListObjectsV2 encoding-type=url returned a raw key %q", k)
		}
		d, err := url.QueryUnescape(k)
		if err != nil {
			t.Errorf("ListObjectsV2 encoding-type=url: key %q does not decode: %v", k, err)
		}
		dec = append(dec, d)
	}
	if !slices.Equal(dec, want) {
		t.Errorf("ListObjectsV2 encoding-type=url, decoded:\n got %q\nwant %q", dec, want)
	}
	for _, k := range odd {
		got, err := getBytes(context.Background(), c, b2, k)
		if err != nil || string(got) != k {
			t.Errorf("GET %q: %q, %v", k, got, err)
		}
	}
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

func testListPaging(t *testing.T, c *s3.Client) {
	b := newBucket(t, c, "paging")
	var keys []string
	for i := range 2500 {
		keys = append(keys, fmt.Sprintf("dir%d/key-%05d", i%3, i))
	}
	putKeys(t, c, b, keys)
	want := slices.Clone(keys)
	sort.Strings(want)
	got, _, pages := listAllV2(t, c, s3.ListObjectsV2Input{Bucket: aws.String(b)})
	if !slices.Equal(got, want) {
		t.Errorf("ListObjectsV2 over 2500 keys: got %d keys (first %q), want %d in order", len(got), first(got), len(want))
	}
	if pages != 3 {
		t.Errorf("ListObjectsV2 over 2500 keys with default max-keys: %d pages, want 3", pages)
	}
	got, _, pages = listAllV2(t, c, s3.ListObjectsV2Input{Bucket: aws.String(b), MaxKeys: aws.Int32(333)})
	if !slices.Equal(got, want) || pages != 8 {
		t.Errorf("ListObjectsV2 max-keys 333: %d keys in %d pages, want 2500 in 8", len(got), pages)
	}
	got, prefixes, _ := listAllV2(t, c, s3.ListObjectsV2Input{Bucket: aws.String(b), Delimiter: aws.String("/")})
	if len(got) != 0 || !slices.Equal(prefixes, []string{"dir0/", "dir1/", "dir2/"}) {
		t.Errorf("ListObjectsV2 delimiter /: keys %d prefixes %q", len(got), prefixes)
	}
	got, _, _ = listAllV2(t, c, s3.ListObjectsV2Input{Bucket: aws.String(b), Prefix: aws.String("dir1/"), MaxKeys: aws.Int32(100)})
	var want1 []string
	for _, k := range want {
		if strings.HasPrefix(k, "dir1/") {
			want1 = append(want1, k)
		}
	}
	if !slices.Equal(got, want1) {
		t.Errorf("ListObjectsV2 prefix dir1/ paged: %d keys, want %d", len(got), len(want1))
	}
}

func first(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return s[0]
}

func testListV1(t *testing.T, c *s3.Client) {
	b := newBucket(t, c, "listv1")
	all := []string{"k1", "k2", "k3", "k4", "k5", "k6", "k7", "x/1", "x/2"}
	putKeys(t, c, b, all)
	var got []string
	marker := ""
	for pages := 0; ; pages++ {
		out, err := c.ListObjects(context.Background(), &s3.ListObjectsInput{Bucket: aws.String(b), MaxKeys: aws.Int32(3), Marker: aws.String(marker)})
		if err != nil {
			t.Fatalf("ListObjects: %v", err)
		}
		if len(out.Contents) > 3 {
			t.Errorf("ListObjects max-keys 3: %d keys", len(out.Contents))
		}
		for _, o := range out.Contents {
			got = append(got, aws.ToString(o.Key))
		}
		if !aws.ToBool(out.IsTruncated) || pages > 10 {
			break
		}
		marker = aws.ToString(out.NextMarker)
		if marker == "" && len(out.Contents) > 0 {
			marker = aws.ToString(out.Contents[len(out.Contents)-1].Key)
		}
	}
	if !slices.Equal(got, all) {
		t.Errorf("ListObjects v1 paged with marker: %q, want %q", got, all)
	}
	out, err := c.ListObjects(context.Background(), &s3.ListObjectsInput{Bucket: aws.String(b), Marker: aws.String("k5"), Delimiter: aws.String("/")})
	if err != nil {
		t.Fatalf("ListObjects: %v", err)
	}
	var keys, prefixes []string
	for _, o := range out.Contents {
		keys = append(keys, aws.ToString(o.Key))
	}
	for _, p := range out.CommonPrefixes {
		prefixes = append(prefixes, aws.ToString(p.Prefix))
	}
	if !slices.Equal(keys, []string{"k6", "k7"}) || !slices.Equal(prefixes, []string{"x/"}) {
		t.Errorf("ListObjects marker k5 delimiter /: keys %q prefixes %q", keys, prefixes)
	}
	// With a delimiter, a truncated v1 page carries NextMarker.
	out, err = c.ListObjects(context.Background(), &s3.ListObjectsInput{Bucket: aws.String(b), MaxKeys: aws.Int32(2), Delimiter: aws.String("/")})
	if err != nil {
		t.Fatalf("ListObjects: %v", err)
	}
	if !aws.ToBool(out.IsTruncated) || aws.ToString(out.NextMarker) != "k2" {
		t.Errorf("ListObjects max-keys 2 delimiter /: truncated %v NextMarker %q, want true \"k2\"", aws.ToBool(out.IsTruncated), aws.ToString(out.NextMarker))
	}
}

// multipartETag is the S3 ETag of a multipart object: MD5 of the parts' MD5s, "-N".
func multipartETag(parts ...[]byte) string {
	var all []byte
	for _, p := range parts {
		s := md5.Sum(p)
		all = append(all, s[:]...)
	}
	return fmt.Sprintf(`"%s-%d"`, md5hex(all), len(parts))
}

func testMultipart(t *testing.T, c *s3.Client) {
	ctx := context.Background()
	b := newBucket(t, c, "mpu")
	key := "big/multi part"
	parts := [][]byte{payload(9001, 5<<20), payload(9002, 5<<20), payload(9003, 5<<20), payload(9004, 1234)}
	cr, err := c.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: aws.String(b), Key: aws.String(key),
		ContentType: aws.String("application/x-mpu"), Metadata: map[string]string{"mpu": "yes"}})
	if err != nil {
		t.Fatalf("CreateMultipartUpload: %v", err)
	}
	uid := cr.UploadId
	if aws.ToString(uid) == "" {
		t.Fatalf("CreateMultipartUpload: empty UploadId")
	}
	etags := make([]string, len(parts))
	for _, i := range []int{2, 0, 3, 1} { // out of order
		out, err := c.UploadPart(ctx, &s3.UploadPartInput{Bucket: aws.String(b), Key: aws.String(key), UploadId: uid,
			PartNumber: aws.Int32(int32(i + 1)), Body: bytes.NewReader(parts[i])})
		if err != nil {
			t.Fatalf("UploadPart %d: %v", i+1, err)
		}
		etags[i] = aws.ToString(out.ETag)
		if want := `"` + md5hex(parts[i]) + `"`; etags[i] != want {
			t.Errorf("UploadPart %d: ETag %s, want %s", i+1, etags[i], want)
		}
	}
	lp, err := c.ListParts(ctx, &s3.ListPartsInput{Bucket: aws.String(b), Key: aws.String(key), UploadId: uid})
	if err != nil {
		t.Errorf("ListParts: %v", err)
	} else {
		if len(lp.Parts) != 4 {
			t.Errorf("ListParts: %d parts, want 4", len(lp.Parts))
		}
		for i, p := range lp.Parts {
			if aws.ToInt32(p.PartNumber) != int32(i+1) || aws.ToInt64(p.Size) != int64(len(parts[min(i, 3)])) || aws.ToString(p.ETag) != etags[min(i, 3)] {
				t.Errorf("ListParts[%d]: number %d size %d etag %s", i, aws.ToInt32(p.PartNumber), aws.ToInt64(p.Size), aws.ToString(p.ETag))
			}
		}
	}
	lp2, err := c.ListParts(ctx, &s3.ListPartsInput{Bucket: aws.String(b), Key: aws.String(key), UploadId: uid, MaxParts: aws.Int32(2), PartNumberMarker: aws.String("1")})
	if err != nil {
		t.Errorf("ListParts paged: %v", err)
	} else if len(lp2.Parts) != 2 || aws.ToInt32(lp2.Parts[0].PartNumber) != 2 || !aws.ToBool(lp2.IsTruncated) {
		t.Errorf("ListParts max-parts 2 marker 1: %d parts, truncated %v", len(lp2.Parts), aws.ToBool(lp2.IsTruncated))
	}
	lu, err := c.ListMultipartUploads(ctx, &s3.ListMultipartUploadsInput{Bucket: aws.String(b)})
	if err != nil {
		t.Errorf("ListMultipartUploads: %v", err)
	} else if !slices.ContainsFunc(lu.Uploads, func(u types.MultipartUpload) bool {
		return aws.ToString(u.UploadId) == aws.ToString(uid) && aws.ToString(u.Key) == key
	}) {
		t.Errorf("ListMultipartUploads does not list %s %s: %+v", key, aws.ToString(uid), lu.Uploads)
	}
	_, err = c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(b), Key: aws.String(key)})
	wantErr(t, "HeadObject of an uncompleted upload", err, 404, "")

	completed := func(nums []int, tags []string) *types.CompletedMultipartUpload {
		var cp []types.CompletedPart
		for i, n := range nums {
			cp = append(cp, types.CompletedPart{PartNumber: aws.Int32(int32(n)), ETag: aws.String(tags[i])})
		}
		return &types.CompletedMultipartUpload{Parts: cp}
	}
	_, err = c.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{Bucket: aws.String(b), Key: aws.String(key), UploadId: uid,
		MultipartUpload: completed([]int{2, 1, 3, 4}, []string{etags[1], etags[0], etags[2], etags[3]})})
	wantErr(t, "CompleteMultipartUpload with parts out of order", err, 400, "InvalidPartOrder")
	_, err = c.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{Bucket: aws.String(b), Key: aws.String(key), UploadId: uid,
		MultipartUpload: completed([]int{1, 2, 3, 4}, []string{etags[0], `"00000000000000000000000000000000"`, etags[2], etags[3]})})
	wantErr(t, "CompleteMultipartUpload with a wrong ETag", err, 400, "InvalidPart")
	_, err = c.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{Bucket: aws.String(b), Key: aws.String(key), UploadId: uid,
		MultipartUpload: completed([]int{1, 2, 3, 5}, []string{etags[0], etags[1], etags[2], etags[3]})})
	wantErr(t, "CompleteMultipartUpload naming a part never uploaded", err, 400, "InvalidPart")

	done, err := c.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{Bucket: aws.String(b), Key: aws.String(key), UploadId: uid,
		MultipartUpload: completed([]int{1, 2, 3, 4}, etags)})
	if err != nil {
		t.Fatalf("CompleteMultipartUpload: %v", err)
	}
	if want := multipartETag(parts...); aws.ToString(done.ETag) != want {
		t.Errorf("CompleteMultipartUpload: ETag %s, want %s", aws.ToString(done.ETag), want)
	}
	whole := bytes.Join(parts, nil)
	got, err := getBytes(ctx, c, b, key)
	if err != nil || !bytes.Equal(got, whole) {
		t.Errorf("GET multipart object: %d bytes, want %d, err %v", len(got), len(whole), err)
	}
	h, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(b), Key: aws.String(key)})
	if err != nil {
		t.Errorf("HeadObject multipart: %v", err)
	} else {
		if aws.ToInt64(h.ContentLength) != int64(len(whole)) || aws.ToString(h.ETag) != multipartETag(parts...) {
			t.Errorf("HeadObject multipart: length %d etag %s", aws.ToInt64(h.ContentLength), aws.ToString(h.ETag))
		}
		if aws.ToString(h.ContentType) != "application/x-mpu" || h.Metadata["mpu"] != "yes" {
			t.Errorf("HeadObject multipart: Content-Type %q metadata %v, want those given at CreateMultipartUpload", aws.ToString(h.ContentType), h.Metadata)
		}
	}
	// A range that spans a part boundary.
	rg, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(b), Key: aws.String(key), Range: aws.String(fmt.Sprintf("bytes=%d-%d", 5<<20-100, 10<<20+100))})
	if err != nil {
		t.Errorf("GET range across parts: %v", err)
	} else {
		got, _ := io.ReadAll(rg.Body)
		rg.Body.Close()
		if !bytes.Equal(got, whole[5<<20-100:10<<20+101]) {
			t.Errorf("GET range across parts: content differs")
		}
	}
	pn, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(b), Key: aws.String(key), PartNumber: aws.Int32(2)})
	if err != nil {
		t.Errorf("GET partNumber=2: %v", err)
	} else {
		got, _ := io.ReadAll(pn.Body)
		pn.Body.Close()
		if !bytes.Equal(got, parts[1]) || aws.ToInt32(pn.PartsCount) != 4 {
			t.Errorf("GET partNumber=2: %d bytes (equal %v), PartsCount %d", len(got), bytes.Equal(got, parts[1]), aws.ToInt32(pn.PartsCount))
		}
	}
	lu, err = c.ListMultipartUploads(ctx, &s3.ListMultipartUploadsInput{Bucket: aws.String(b)})
	if err == nil && len(lu.Uploads) != 0 {
		t.Errorf("ListMultipartUploads after Complete: %d uploads, want 0", len(lu.Uploads))
	}
	_, err = c.UploadPart(ctx, &s3.UploadPartInput{Bucket: aws.String(b), Key: aws.String(key), UploadId: uid, PartNumber: aws.Int32(1), Body: strings.NewReader("late")})
	wantErr(t, "UploadPart after Complete", err, 404, "NoSuchUpload")

	// UploadPartCopy with a range.
	src := payload(9100, 6<<20+11)
	if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(b), Key: aws.String("copy-src"), Body: bytes.NewReader(src)}); err != nil {
		t.Fatal(err)
	}
	cr2, err := c.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: aws.String(b), Key: aws.String("assembled")})
	if err != nil {
		t.Fatal(err)
	}
	upc, err := c.UploadPartCopy(ctx, &s3.UploadPartCopyInput{Bucket: aws.String(b), Key: aws.String("assembled"), UploadId: cr2.UploadId,
		PartNumber: aws.Int32(1), CopySource: copySource(b, "copy-src"), CopySourceRange: aws.String(fmt.Sprintf("bytes=%d-%d", 1000, 1000+5<<20-1))})
	if err != nil {
		t.Fatalf("UploadPartCopy: %v", err)
	}
	tail := payload(9101, 777)
	up2, err := c.UploadPart(ctx, &s3.UploadPartInput{Bucket: aws.String(b), Key: aws.String("assembled"), UploadId: cr2.UploadId, PartNumber: aws.Int32(2), Body: bytes.NewReader(tail)})
	if err != nil {
		t.Fatal(err)
	}
	copied := src[1000 : 1000+5<<20]
	if want := `"` + md5hex(copied) + `"`; aws.ToString(upc.CopyPartResult.ETag) != want {
		t.Errorf("UploadPartCopy: ETag %s, want %s", aws.ToString(upc.CopyPartResult.ETag), want)
	}
	done2, err := c.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{Bucket: aws.String(b), Key: aws.String("assembled"), UploadId: cr2.UploadId,
		MultipartUpload: completed([]int{1, 2}, []string{aws.ToString(upc.CopyPartResult.ETag), aws.ToString(up2.ETag)})})
	if err != nil {
		t.Fatalf("CompleteMultipartUpload after UploadPartCopy: %v", err)
	}
	if want := multipartETag(copied, tail); aws.ToString(done2.ETag) != want {
		t.Errorf("CompleteMultipartUpload: ETag %s, want %s", aws.ToString(done2.ETag), want)
	}
	if got, err := getBytes(ctx, c, b, "assembled"); err != nil || !bytes.Equal(got, append(slices.Clone(copied), tail...)) {
		t.Errorf("GET object assembled by UploadPartCopy: %d bytes, err %v", len(got), err)
	}
}

func testMultipartErrors(t *testing.T, c *s3.Client) {
	ctx := context.Background()
	b := newBucket(t, c, "mpuerr")
	// Abort
	cr, err := c.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: aws.String(b), Key: aws.String("aborted")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.UploadPart(ctx, &s3.UploadPartInput{Bucket: aws.String(b), Key: aws.String("aborted"), UploadId: cr.UploadId, PartNumber: aws.Int32(1), Body: bytes.NewReader(payload(1, 300<<10))}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{Bucket: aws.String(b), Key: aws.String("aborted"), UploadId: cr.UploadId}); err != nil {
		t.Errorf("AbortMultipartUpload: %v", err)
	}
	_, err = c.ListParts(ctx, &s3.ListPartsInput{Bucket: aws.String(b), Key: aws.String("aborted"), UploadId: cr.UploadId})
	wantErr(t, "ListParts after Abort", err, 404, "NoSuchUpload")
	_, err = c.UploadPart(ctx, &s3.UploadPartInput{Bucket: aws.String(b), Key: aws.String("aborted"), UploadId: cr.UploadId, PartNumber: aws.Int32(2), Body: strings.NewReader("x")})
	wantErr(t, "UploadPart after Abort", err, 404, "NoSuchUpload")
	_, err = c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(b), Key: aws.String("aborted")})
	wantErr(t, "HeadObject of an aborted upload", err, 404, "")
	_, err = c.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{Bucket: aws.String(b), Key: aws.String("x"), UploadId: aws.String("no-such-upload-id"),
		MultipartUpload: &types.CompletedMultipartUpload{Parts: []types.CompletedPart{{PartNumber: aws.Int32(1), ETag: aws.String(`"x"`)}}}})
	wantErr(t, "CompleteMultipartUpload of an unknown upload", err, 404, "NoSuchUpload")

	// EntityTooSmall: every part but the last must be at least 5 MiB.
	cr, err = c.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: aws.String(b), Key: aws.String("small")})
	if err != nil {
		t.Fatal(err)
	}
	var cp []types.CompletedPart
	for i := 1; i <= 2; i++ {
		out, err := c.UploadPart(ctx, &s3.UploadPartInput{Bucket: aws.String(b), Key: aws.String("small"), UploadId: cr.UploadId, PartNumber: aws.Int32(int32(i)), Body: bytes.NewReader(payload(uint64(i), 1024))})
		if err != nil {
			t.Fatal(err)
		}
		cp = append(cp, types.CompletedPart{PartNumber: aws.Int32(int32(i)), ETag: out.ETag})
	}
	_, err = c.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{Bucket: aws.String(b), Key: aws.String("small"), UploadId: cr.UploadId, MultipartUpload: &types.CompletedMultipartUpload{Parts: cp}})
	wantErr(t, "CompleteMultipartUpload with a 1 KiB first part", err, 400, "EntityTooSmall")
	// A single small part is fine: the last part may be any size.
	one, err := c.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{Bucket: aws.String(b), Key: aws.String("small"), UploadId: cr.UploadId, MultipartUpload: &types.CompletedMultipartUpload{Parts: cp[:1]}})
	if err != nil {
		t.Errorf("CompleteMultipartUpload with one small part: %v", err)
	} else if want := multipartETag(payload(1, 1024)); aws.ToString(one.ETag) != want {
		t.Errorf("CompleteMultipartUpload with one part: ETag %s, want %s", aws.ToString(one.ETag), want)
	}
	_, err = c.UploadPart(ctx, &s3.UploadPartInput{Bucket: aws.String(b), Key: aws.String("small"), UploadId: aws.String("bogus"), PartNumber: aws.Int32(1), Body: strings.NewReader("x")})
	wantErr(t, "UploadPart to an unknown upload", err, 404, "NoSuchUpload")
	cr, err = c.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: aws.String(b), Key: aws.String("badnum")})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.UploadPart(ctx, &s3.UploadPartInput{Bucket: aws.String(b), Key: aws.String("badnum"), UploadId: cr.UploadId, PartNumber: aws.Int32(10001), Body: strings.NewReader("x")})
	wantErr(t, "UploadPart number 10001", err, 400, "InvalidArgument")
}

func testVersioning(t *testing.T, c *s3.Client) {
	ctx := context.Background()
	b := newBucket(t, c, "versions")
	if _, err := c.PutBucketVersioning(ctx, &s3.PutBucketVersioningInput{Bucket: aws.String(b),
		VersioningConfiguration: &types.VersioningConfiguration{Status: types.BucketVersioningStatusEnabled}}); err != nil {
		t.Fatalf("PutBucketVersioning Enabled: %v", err)
	}
	gv, err := c.GetBucketVersioning(ctx, &s3.GetBucketVersioningInput{Bucket: aws.String(b)})
	if err != nil || gv.Status != types.BucketVersioningStatusEnabled {
		t.Errorf("GetBucketVersioning: %v %v", gv, err)
	}
	var ids []string
	var datas [][]byte
	for i := range 3 {
		data := payload(uint64(10000+i), 1000*(i+1)+(i*200<<10))
		out, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(b), Key: aws.String("v"), Body: bytes.NewReader(data)})
		if err != nil {
			t.Fatalf("PutObject version %d: %v", i, err)
		}
		id := aws.ToString(out.VersionId)
		if id == "" || id == "null" || slices.Contains(ids, id) {
			t.Errorf("PutObject version %d: VersionId %q (earlier %q)", i, id, ids)
		}
		ids = append(ids, id)
		datas = append(datas, data)
	}
	for i, id := range ids {
		out, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(b), Key: aws.String("v"), VersionId: aws.String(id)})
		if err != nil {
			t.Errorf("GET versionId %s: %v", id, err)
			continue
		}
		got, _ := io.ReadAll(out.Body)
		out.Body.Close()
		if !bytes.Equal(got, datas[i]) || aws.ToString(out.VersionId) != id {
			t.Errorf("GET versionId %s: wrong content or VersionId %q", id, aws.ToString(out.VersionId))
		}
	}
	if got, _ := getBytes(ctx, c, b, "v"); !bytes.Equal(got, datas[2]) {
		t.Errorf("GET latest: not the last PUT")
	}
	del, err := c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(b), Key: aws.String("v")})
	if err != nil {
		t.Fatalf("DeleteObject: %v", err)
	}
	marker := aws.ToString(del.VersionId)
	if !aws.ToBool(del.DeleteMarker) || marker == "" || slices.Contains(ids, marker) {
		t.Errorf("DeleteObject on a versioned bucket: DeleteMarker %v VersionId %q", aws.ToBool(del.DeleteMarker), marker)
	}
	_, err = c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(b), Key: aws.String("v")})
	wantErr(t, "GET latest after a delete marker", err, 404, "NoSuchKey")
	var re *awshttp.ResponseError
	if asResponseError(err, &re) && re.Response.Header.Get("X-Amz-Delete-Marker") != "true" {
		t.Errorf("GET latest after a delete marker: x-amz-delete-marker %q, want true", re.Response.Header.Get("X-Amz-Delete-Marker"))
	}
	if got, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(b), Key: aws.String("v"), VersionId: aws.String(ids[0])}); err != nil {
		t.Errorf("GET an old version behind a delete marker: %v", err)
	} else {
		got.Body.Close()
	}
	lv, err := c.ListObjectVersions(ctx, &s3.ListObjectVersionsInput{Bucket: aws.String(b)})
	if err != nil {
		t.Fatalf("ListObjectVersions: %v", err)
	}
	var vids []string
	for _, v := range lv.Versions {
		vids = append(vids, aws.ToString(v.VersionId))
		if aws.ToBool(v.IsLatest) {
			t.Errorf("ListObjectVersions: version %s IsLatest, but the delete marker is", aws.ToString(v.VersionId))
		}
	}
	wantV := []string{ids[2], ids[1], ids[0]} // newest first
	if !slices.Equal(vids, wantV) {
		t.Errorf("ListObjectVersions: versions %q, want %q (newest first)", vids, wantV)
	}
	if len(lv.DeleteMarkers) != 1 || aws.ToString(lv.DeleteMarkers[0].VersionId) != marker || !aws.ToBool(lv.DeleteMarkers[0].IsLatest) {
		t.Errorf("ListObjectVersions: delete markers %+v, want one latest with id %s", lv.DeleteMarkers, marker)
	}
	l2, err := c.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String(b)})
	if err == nil && len(l2.Contents) != 0 {
		t.Errorf("ListObjectsV2 lists a key whose latest version is a delete marker")
	}
	// Removing the delete marker brings the object back.
	if _, err := c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(b), Key: aws.String("v"), VersionId: aws.String(marker)}); err != nil {
		t.Errorf("DELETE the delete marker by versionId: %v", err)
	}
	if got, err := getBytes(ctx, c, b, "v"); err != nil || !bytes.Equal(got, datas[2]) {
		t.Errorf("GET after removing the delete marker: err %v", err)
	}
	// DELETE by versionId removes that version for good.
	dv, err := c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(b), Key: aws.String("v"), VersionId: aws.String(ids[0])})
	if err != nil {
		t.Errorf("DELETE versionId %s: %v", ids[0], err)
	} else if aws.ToString(dv.VersionId) != ids[0] {
		t.Errorf("DELETE versionId: response VersionId %q, want %q", aws.ToString(dv.VersionId), ids[0])
	}
	_, err = c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(b), Key: aws.String("v"), VersionId: aws.String(ids[0])})
	wantErr(t, "GET a deleted versionId", err, 404, "")
	if got, err := getBytes(ctx, c, b, "v"); err != nil || !bytes.Equal(got, datas[2]) {
		t.Errorf("GET latest after deleting an old version: err %v", err)
	}

	// Suspended: new writes get the null version, overwritten in place.
	if _, err := c.PutBucketVersioning(ctx, &s3.PutBucketVersioningInput{Bucket: aws.String(b),
		VersioningConfiguration: &types.VersioningConfiguration{Status: types.BucketVersioningStatusSuspended}}); err != nil {
		t.Fatalf("PutBucketVersioning Suspended: %v", err)
	}
	gv, err = c.GetBucketVersioning(ctx, &s3.GetBucketVersioningInput{Bucket: aws.String(b)})
	if err != nil || gv.Status != types.BucketVersioningStatusSuspended {
		t.Errorf("GetBucketVersioning after suspend: %v %v", gv, err)
	}
	for i := range 2 {
		out, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(b), Key: aws.String("v"), Body: strings.NewReader(fmt.Sprintf("null %d", i))})
		if err != nil {
			t.Fatalf("PutObject while suspended: %v", err)
		}
		if v := aws.ToString(out.VersionId); v != "" && v != "null" {
			t.Errorf("PutObject while suspended: VersionId %q, want null", v)
		}
	}
	h, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(b), Key: aws.String("v")})
	if err != nil || aws.ToString(h.VersionId) != "null" {
		t.Errorf("HEAD while suspended: VersionId %q (err %v), want null", aws.ToString(h.VersionId), err)
	}
	if got, err := getBytes(ctx, c, b, "v"); err != nil || string(got) != "null 1" {
		t.Errorf("GET while suspended: %q %v", got, err)
	}
	lv, err = c.ListObjectVersions(ctx, &s3.ListObjectVersionsInput{Bucket: aws.String(b)})
	if err != nil {
		t.Fatalf("ListObjectVersions: %v", err)
	}
	nulls := 0
	for _, v := range lv.Versions {
		if aws.ToString(v.VersionId) == "null" {
			nulls++
		}
	}
	if nulls != 1 || len(lv.Versions) != 3 {
		t.Errorf("ListObjectVersions while suspended: %d versions, %d null; want 3 with 1 null", len(lv.Versions), nulls)
	}
	if got, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(b), Key: aws.String("v"), VersionId: aws.String("null")}); err != nil {
		t.Errorf("GET versionId=null: %v", err)
	} else {
		got.Body.Close()
	}
}

func asResponseError(err error, re **awshttp.ResponseError) bool {
	if err == nil {
		return false
	}
	var r *awshttp.ResponseError
	if !errors.As(err, &r) || r.Response == nil {
		return false
	}
	*re = r
	return true
}

// s3ErrorBody is the XML error document S3 answers with.
type s3ErrorBody struct {
	Code      string
	Message   string
	RequestID string `xml:"RequestId"`
}

// rawCheck sends req and checks status and S3 error code.
func rawCheck(t *testing.T, what string, req *http.Request, status int, code string) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Errorf("%s: %v", what, err)
		return
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.Header.Get("X-Amz-Request-Id") == "" {
		t.Errorf("%s: no x-amz-request-id header", what)
	}
	if resp.StatusCode != status {
		t.Errorf("%s: status %d, want %d: %s", what, resp.StatusCode, status, body)
		return
	}
	if code == "" {
		return
	}
	var e s3ErrorBody
	if err := xml.Unmarshal(body, &e); err != nil || e.Code != code {
		t.Errorf("%s: error code %q (%v), want %q: %s", what, e.Code, err, code, body)
	}
}

func testPresigned(t *testing.T, s *server, c *s3.Client) {
	ctx := context.Background()
	b := newBucket(t, c, "presign")
	data := payload(11000, 150<<10)
	if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(b), Key: aws.String("p q"), Body: bytes.NewReader(data)}); err != nil {
		t.Fatal(err)
	}
	pc := s3.NewPresignClient(c, s3.WithPresignExpires(15*time.Minute))
	pg, err := pc.PresignGetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(b), Key: aws.String("p q")})
	if err != nil {
		t.Fatalf("PresignGetObject: %v", err)
	}
	resp, err := http.Get(pg.URL)
	if err != nil {
		t.Fatalf("presigned GET: %v", err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !bytes.Equal(got, data) {
		t.Errorf("presigned GET: status %d, %d bytes (equal %v): %.300s", resp.StatusCode, len(got), bytes.Equal(got, data), got)
	}

	up := payload(11001, 70000)
	pp, err := pc.PresignPutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(b), Key: aws.String("uploaded")})
	if err != nil {
		t.Fatalf("PresignPutObject: %v", err)
	}
	req, _ := http.NewRequest(pp.Method, pp.URL, bytes.NewReader(up))
	for k, v := range pp.SignedHeader {
		if !strings.EqualFold(k, "host") {
			req.Header[k] = v
		}
	}
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("presigned PUT: %v", err)
	}
	msg, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("presigned PUT: status %d: %s", resp.StatusCode, msg)
	} else if got, err := getBytes(ctx, c, b, "uploaded"); err != nil || !bytes.Equal(got, up) {
		t.Errorf("GET after presigned PUT: err %v, equal %v", err, bytes.Equal(got, up))
	}

	// An expired URL: signed two hours ago, valid for one minute.
	exp, _ := http.NewRequest("GET", s.Endpoint+"/"+b+"/p%20q", nil)
	q := exp.URL.Query()
	q.Set("X-Amz-Expires", "60")
	exp.URL.RawQuery = q.Encode()
	creds := aws.Credentials{AccessKeyID: testAccessKey, SecretAccessKey: testSecretKey}
	u, _, err := s3Signer().PresignHTTP(ctx, creds, exp, "UNSIGNED-PAYLOAD", "s3", testRegion, time.Now().Add(-2*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	req, _ = http.NewRequest("GET", u, nil)
	rawCheck(t, "expired presigned GET", req, 403, "AccessDenied")
	// The same URL signed now works, so the expiry is what was refused.
	u, _, err = s3Signer().PresignHTTP(ctx, creds, exp, "UNSIGNED-PAYLOAD", "s3", testRegion, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	req, _ = http.NewRequest("GET", u, nil)
	rawCheck(t, "hand-presigned GET signed now", req, 200, "")
	// A presigned URL whose signature was tampered with.
	req, _ = http.NewRequest("GET", strings.Replace(u, "X-Amz-Signature=", "X-Amz-Signature=00", 1), nil)
	rawCheck(t, "presigned GET with a tampered signature", req, 403, "SignatureDoesNotMatch")
}

func testAuth(t *testing.T, s *server, c *s3.Client) {
	ctx := context.Background()
	b := newBucket(t, c, "auth")
	if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(b), Key: aws.String("k"), Body: strings.NewReader("secret")}); err != nil {
		t.Fatal(err)
	}
	wrongSecret := sdkClient(s, func(o *s3.Options) {
		o.Credentials = credentials.NewStaticCredentialsProvider(testAccessKey, "not-the-secret", "")
	})
	_, err := wrongSecret.ListBuckets(ctx, &s3.ListBucketsInput{})
	wantErr(t, "ListBuckets with a wrong secret", err, 403, "SignatureDoesNotMatch")
	_, err = wrongSecret.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(b), Key: aws.String("k")})
	wantErr(t, "GetObject with a wrong secret", err, 403, "SignatureDoesNotMatch")
	_, err = wrongSecret.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(b), Key: aws.String("k"), Body: strings.NewReader("overwritten")})
	wantErr(t, "PutObject with a wrong secret", err, 403, "SignatureDoesNotMatch")
	if got, _ := getBytes(ctx, c, b, "k"); string(got) != "secret" {
		t.Errorf("a refused PUT changed the object: %q", got)
	}
	unknown := sdkClient(s, func(o *s3.Options) {
		o.Credentials = credentials.NewStaticCredentialsProvider("AKIDUNKNOWNUNKNOWN00", testSecretKey, "")
	})
	_, err = unknown.ListBuckets(ctx, &s3.ListBucketsInput{})
	wantErr(t, "ListBuckets with an unknown access key", err, 403, "InvalidAccessKeyId")
	otherRegion := sdkClient(s, func(o *s3.Options) { o.Region = "eu-west-1" })
	_, err = otherRegion.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String(b)})
	wantErr(t, "ListObjectsV2 signed for eu-west-1", err, 400, "AuthorizationHeaderMalformed")
	if err != nil && !strings.Contains(err.Error(), testRegion) {
		t.Errorf("AuthorizationHeaderMalformed does not name the expected region %s: %v", testRegion, err)
	}

	for _, r := range []struct{ method, path string }{{"GET", "/"}, {"GET", "/" + b}, {"GET", "/" + b + "/k"}, {"PUT", "/" + b + "/anon"}, {"DELETE", "/" + b + "/k"}} {
		var body io.Reader
		if r.method == "PUT" {
			body = strings.NewReader("anonymous")
		}
		req, _ := http.NewRequest(r.method, s.Endpoint+r.path, body)
		rawCheck(t, "unsigned "+r.method+" "+r.path, req, 403, "AccessDenied")
	}
	if got, _ := getBytes(ctx, c, b, "k"); string(got) != "secret" {
		t.Errorf("an unsigned DELETE or PUT changed the bucket: %q", got)
	}
	// A signed request whose body does not match x-amz-content-sha256.
	req, _ := http.NewRequest("PUT", s.Endpoint+"/"+b+"/tampered", strings.NewReader("tampered body"))
	sum := sha256.Sum256([]byte("original body"))
	resp := signedRaw(t, req, fmt.Sprintf("%x", sum))
	resp.Body.Close()
	if resp.StatusCode != 400 && resp.StatusCode != 403 {
		t.Errorf("PUT whose body does not match x-amz-content-sha256: status %d, want 400 XAmzContentSHA256Mismatch", resp.StatusCode)
	}
	_, err = c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(b), Key: aws.String("tampered")})
	wantErr(t, "HeadObject after a PUT with a mismatched payload hash", err, 404, "")
}

func testNotImplemented(t *testing.T, c *s3.Client) {
	ctx := context.Background()
	b := newBucket(t, c, "notimpl")
	_, err := c.PutBucketPolicy(ctx, &s3.PutBucketPolicyInput{Bucket: aws.String(b), Policy: aws.String(`{"Version":"2012-10-17","Statement":[]}`)})
	wantErr(t, "PutBucketPolicy", err, 501, "NotImplemented")
	_, err = c.GetBucketPolicy(ctx, &s3.GetBucketPolicyInput{Bucket: aws.String(b)})
	wantErr(t, "GetBucketPolicy", err, 501, "NotImplemented")
	_, err = c.PutBucketLifecycleConfiguration(ctx, &s3.PutBucketLifecycleConfigurationInput{Bucket: aws.String(b),
		LifecycleConfiguration: &types.BucketLifecycleConfiguration{Rules: []types.LifecycleRule{{Status: types.ExpirationStatusEnabled, Filter: &types.LifecycleRuleFilter{Prefix: aws.String("")}, Expiration: &types.LifecycleExpiration{Days: aws.Int32(1)}}}}})
	wantErr(t, "PutBucketLifecycleConfiguration", err, 501, "NotImplemented")
}
