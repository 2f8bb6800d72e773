package s3api_test

import (
	"bytes"
	"context"
	"errors"
	"github.com/redoubt-io/redoubt/internal/testlog"
	"io"
	"log/slog"
	"net/http/httptest"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	"github.com/minio/minio-go/v7"
	miniocreds "github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/redoubt-io/redoubt/internal/objects"
	"github.com/redoubt-io/redoubt/internal/s3api"
	"github.com/redoubt-io/redoubt/internal/s3api/sigv4"
)

const (
	testAccess = "AKIDREDOUBTTEST"
	testSecret = "redoubt-test-secret-key"
)

// newSigV4Server serves api behind the real SigV4 verifier.
func newSigV4Server(t testing.TB, api objects.API, mod func(*s3api.Config)) *httptest.Server {
	t.Helper()
	v, err := sigv4.New(sigv4.Config{Region: "us-east-1", Creds: sigv4.StaticCredentials{testAccess: testSecret}})
	if err != nil {
		t.Fatal(err)
	}
	cfg := s3api.DefaultConfig()
	if mod != nil {
		mod(&cfg)
	}
	srv, err := s3api.New(cfg, api, s3api.SigV4(v), slog.New(slog.NewTextHandler(testlog.Writer(t), nil)))
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv)
	t.Cleanup(ts.Close)
	return ts
}

func awsClient(t testing.TB, url string) *s3.Client {
	return s3.New(s3.Options{
		Region:           "us-east-1",
		BaseEndpoint:     aws.String(url),
		UsePathStyle:     true,
		Credentials:      credentials.NewStaticCredentialsProvider(testAccess, testSecret, ""),
		RetryMaxAttempts: 1,
	})
}

func apiCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

func TestAWSSDKObjects(t *testing.T) { testAWSSDKObjects(t, newMemAPI()) }

func testAWSSDKObjects(t *testing.T, api objects.API) {
	ts := newSigV4Server(t, api, nil)
	c := awsClient(t, ts.URL)
	ctx := context.Background()
	if _, err := c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("photos")}); err != nil {
		t.Fatal(err)
	}
	_, err := c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("photos")})
	if apiCode(err) != "BucketAlreadyOwnedByYou" {
		t.Fatalf("second create: %v", err)
	}
	_, err = c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("elsewhere"),
		CreateBucketConfiguration: &types.CreateBucketConfiguration{LocationConstraint: "eu-west-1"}})
	if apiCode(err) != "IllegalLocationConstraintException" {
		t.Fatalf("create with other region: %v", err)
	}
	if _, err := c.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String("photos")}); err != nil {
		t.Fatal(err)
	}
	lb, err := c.ListBuckets(ctx, &s3.ListBucketsInput{})
	if err != nil || len(lb.Buckets) != 1 || *lb.Buckets[0].Name != "photos" {
		t.Fatalf("list buckets: %v %+v", err, lb)
	}

	body := []byte("hello, redoubt")
	put, err := c.PutObject(ctx, &s3.PutObjectInput{
		Bucket: aws.String("photos"), Key: aws.String("dir/a b+c.txt"), Body: bytes.NewReader(body),
		ContentType: aws.String("text/plain"), CacheControl: aws.String("max-age=60"),
		ContentDisposition: aws.String("inline"), Metadata: map[string]string{"colour": "blue"},
		ChecksumAlgorithm: types.ChecksumAlgorithmCrc32,
	})
	if err != nil {
		t.Fatal(err)
	}
	get, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("photos"), Key: aws.String("dir/a b+c.txt"),
		ChecksumMode: types.ChecksumModeEnabled})
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(get.Body)
	get.Body.Close()
	if !bytes.Equal(got, body) || *get.ETag != *put.ETag || *get.ContentType != "text/plain" ||
		*get.CacheControl != "max-age=60" || get.Metadata["colour"] != "blue" || *get.ContentDisposition != "inline" {
		t.Fatalf("get: %q %+v", got, get)
	}
	if get.ChecksumCRC32 == nil || *get.ChecksumCRC32 != *put.ChecksumCRC32 {
		t.Fatalf("checksum on get: %v vs %v", get.ChecksumCRC32, put.ChecksumCRC32)
	}

	rg, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("photos"), Key: aws.String("dir/a b+c.txt"), Range: aws.String("bytes=-7")})
	if err != nil {
		t.Fatal(err)
	}
	got, _ = io.ReadAll(rg.Body)
	rg.Body.Close()
	if string(got) != "redoubt" || *rg.ContentRange != "bytes 7-13/14" {
		t.Fatalf("suffix range: %q %v", got, *rg.ContentRange)
	}
	_, err = c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("photos"), Key: aws.String("dir/a b+c.txt"), Range: aws.String("bytes=100-")})
	if apiCode(err) != "InvalidRange" {
		t.Fatalf("range past end: %v", err)
	}
	_, err = c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("photos"), Key: aws.String("dir/a b+c.txt"), IfMatch: aws.String(`"nope"`)})
	if apiCode(err) != "PreconditionFailed" {
		t.Fatalf("if-match: %v", err)
	}
	_, err = c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String("photos"), Key: aws.String("dir/a b+c.txt"), IfNoneMatch: put.ETag})
	if err == nil || !strings.Contains(err.Error(), "304") {
		t.Fatalf("if-none-match on head: %v", err)
	}
	ov, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("photos"), Key: aws.String("dir/a b+c.txt"),
		ResponseContentType: aws.String("application/x-test"), ResponseContentDisposition: aws.String("attachment")})
	if err != nil {
		t.Fatal(err)
	}
	ov.Body.Close()
	if *ov.ContentType != "application/x-test" || *ov.ContentDisposition != "attachment" {
		t.Fatalf("overrides: %+v", ov)
	}

	// Conditional create.
	_, err = c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("photos"), Key: aws.String("dir/a b+c.txt"),
		Body: strings.NewReader("x"), IfNoneMatch: aws.String("*")})
	if apiCode(err) != "PreconditionFailed" {
		t.Fatalf("if-none-match put: %v", err)
	}

	// Copy with REPLACE.
	cp, err := c.CopyObject(ctx, &s3.CopyObjectInput{Bucket: aws.String("photos"), Key: aws.String("copy/x"),
		CopySource: aws.String("photos/dir/a%20b%2Bc.txt"), MetadataDirective: types.MetadataDirectiveReplace,
		ContentType: aws.String("text/x-copy")})
	if err != nil {
		t.Fatal(err)
	}
	if *cp.CopyObjectResult.ETag != *put.ETag {
		t.Fatalf("copy etag %v", *cp.CopyObjectResult.ETag)
	}
	hd, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String("photos"), Key: aws.String("copy/x")})
	if err != nil || *hd.ContentType != "text/x-copy" || *hd.ContentLength != int64(len(body)) {
		t.Fatalf("head copy: %v %+v", err, hd)
	}
	_, err = c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String("photos"), Key: aws.String("missing")})
	var nf *types.NotFound
	if !errors.As(err, &nf) {
		t.Fatalf("head missing: %v", err)
	}

	// Listing, with pagination and a delimiter.
	for _, k := range []string{"a/1", "a/2", "b", "c/d/e", "z"} {
		if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("photos"), Key: aws.String(k), Body: strings.NewReader(k)}); err != nil {
			t.Fatal(err)
		}
	}
	var seen []string
	p := s3.NewListObjectsV2Paginator(c, &s3.ListObjectsV2Input{Bucket: aws.String("photos"), Delimiter: aws.String("/"), MaxKeys: aws.Int32(2)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range page.Contents {
			seen = append(seen, *o.Key)
		}
		for _, cp := range page.CommonPrefixes {
			seen = append(seen, *cp.Prefix)
		}
	}
	sort.Strings(seen)
	if strings.Join(seen, ",") != "a/,b,c/,copy/,dir/,z" {
		t.Fatalf("list v2: %v", seen)
	}
	v1, err := c.ListObjects(ctx, &s3.ListObjectsInput{Bucket: aws.String("photos"), Prefix: aws.String("a/")})
	if err != nil || len(v1.Contents) != 2 {
		t.Fatalf("list v1: %v %+v", err, v1)
	}

	// DeleteObjects (the SDK sends a checksum, not Content-MD5).
	del, err := c.DeleteObjects(ctx, &s3.DeleteObjectsInput{Bucket: aws.String("photos"), Delete: &types.Delete{
		Objects: []types.ObjectIdentifier{{Key: aws.String("a/1")}, {Key: aws.String("a/2")}, {Key: aws.String("never")}},
	}})
	if err != nil || len(del.Deleted) != 3 || len(del.Errors) != 0 {
		t.Fatalf("delete objects: %v %+v", err, del)
	}
	if _, err := c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String("photos"), Key: aws.String("z")}); err != nil {
		t.Fatal(err)
	}
	_, err = c.DeleteBucket(ctx, &s3.DeleteBucketInput{Bucket: aws.String("photos")})
	if apiCode(err) != "BucketNotEmpty" {
		t.Fatalf("delete non-empty bucket: %v", err)
	}
	_, err = c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("nobucket"), Key: aws.String("k")})
	if apiCode(err) != "NoSuchBucket" {
		t.Fatalf("no bucket: %v", err)
	}
	loc, err := c.GetBucketLocation(ctx, &s3.GetBucketLocationInput{Bucket: aws.String("photos")})
	if err != nil || loc.LocationConstraint != "" {
		t.Fatalf("location: %v %+v", err, loc)
	}
}

func TestAWSSDKVersioning(t *testing.T) { testAWSSDKVersioning(t, newMemAPI()) }

func testAWSSDKVersioning(t *testing.T, api objects.API) {
	ts := newSigV4Server(t, api, nil)
	c := awsClient(t, ts.URL)
	ctx := context.Background()
	b := aws.String("vers")
	if _, err := c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: b}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.PutBucketVersioning(ctx, &s3.PutBucketVersioningInput{Bucket: b,
		VersioningConfiguration: &types.VersioningConfiguration{Status: types.BucketVersioningStatusEnabled}}); err != nil {
		t.Fatal(err)
	}
	gv, err := c.GetBucketVersioning(ctx, &s3.GetBucketVersioningInput{Bucket: b})
	if err != nil || gv.Status != types.BucketVersioningStatusEnabled {
		t.Fatalf("get versioning: %v %+v", err, gv)
	}
	p1, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: b, Key: aws.String("k"), Body: strings.NewReader("one")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: b, Key: aws.String("k"), Body: strings.NewReader("two")}); err != nil {
		t.Fatal(err)
	}
	d, err := c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: b, Key: aws.String("k")})
	if err != nil || d.DeleteMarker == nil || !*d.DeleteMarker || d.VersionId == nil {
		t.Fatalf("delete marker: %v %+v", err, d)
	}
	_, err = c.GetObject(ctx, &s3.GetObjectInput{Bucket: b, Key: aws.String("k")})
	if apiCode(err) != "NoSuchKey" {
		t.Fatalf("get after delete: %v", err)
	}
	old, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: b, Key: aws.String("k"), VersionId: p1.VersionId})
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(old.Body)
	old.Body.Close()
	if string(got) != "one" || *old.VersionId != *p1.VersionId {
		t.Fatalf("old version: %q", got)
	}
	lv, err := c.ListObjectVersions(ctx, &s3.ListObjectVersionsInput{Bucket: b})
	if err != nil || len(lv.Versions) != 2 || len(lv.DeleteMarkers) != 1 || !*lv.DeleteMarkers[0].IsLatest {
		t.Fatalf("list versions: %v %+v", err, lv)
	}
}

func TestAWSSDKMultipart(t *testing.T) { testAWSSDKMultipart(t, newMemAPI()) }

func testAWSSDKMultipart(t *testing.T, api objects.API) {
	ts := newSigV4Server(t, api, nil)
	c := awsClient(t, ts.URL)
	ctx := context.Background()
	b, k := aws.String("mpu"), aws.String("big/object")
	if _, err := c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: b}); err != nil {
		t.Fatal(err)
	}
	up, err := c.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: b, Key: k, ContentType: aws.String("video/mp4")})
	if err != nil {
		t.Fatal(err)
	}
	part1 := bytes.Repeat([]byte("a"), 5<<20)
	part2 := []byte("tail")
	var done []types.CompletedPart
	for i, data := range [][]byte{part1, part2} {
		r, err := c.UploadPart(ctx, &s3.UploadPartInput{Bucket: b, Key: k, UploadId: up.UploadId,
			PartNumber: aws.Int32(int32(i + 1)), Body: bytes.NewReader(data)})
		if err != nil {
			t.Fatal(err)
		}
		done = append(done, types.CompletedPart{PartNumber: aws.Int32(int32(i + 1)), ETag: r.ETag})
	}
	lp, err := c.ListParts(ctx, &s3.ListPartsInput{Bucket: b, Key: k, UploadId: up.UploadId})
	if err != nil || len(lp.Parts) != 2 {
		t.Fatalf("list parts: %v %+v", err, lp)
	}
	lu, err := c.ListMultipartUploads(ctx, &s3.ListMultipartUploadsInput{Bucket: b})
	if err != nil || len(lu.Uploads) != 1 || *lu.Uploads[0].UploadId != *up.UploadId {
		t.Fatalf("list uploads: %v %+v", err, lu)
	}
	_, err = c.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{Bucket: b, Key: k, UploadId: up.UploadId,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: []types.CompletedPart{done[1], done[0]}}})
	if apiCode(err) != "InvalidPartOrder" {
		t.Fatalf("complete out of order: %v", err)
	}
	cm, err := c.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{Bucket: b, Key: k, UploadId: up.UploadId,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: done}})
	if err != nil || !strings.HasSuffix(*cm.ETag, `-2"`) {
		t.Fatalf("complete: %v %+v", err, cm)
	}
	g, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: b, Key: k, PartNumber: aws.Int32(2)})
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(g.Body)
	g.Body.Close()
	if string(got) != "tail" || *g.PartsCount != 2 || *g.ContentType != "video/mp4" {
		t.Fatalf("part 2: %q %+v", got, g)
	}

	// UploadPartCopy of a range into a new upload, then abort it.
	up2, err := c.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: b, Key: aws.String("copy")})
	if err != nil {
		t.Fatal(err)
	}
	pc, err := c.UploadPartCopy(ctx, &s3.UploadPartCopyInput{Bucket: b, Key: aws.String("copy"), UploadId: up2.UploadId,
		PartNumber: aws.Int32(1), CopySource: aws.String("mpu/big/object"), CopySourceRange: aws.String("bytes=0-9")})
	if err != nil || pc.CopyPartResult == nil || *pc.CopyPartResult.ETag == "" {
		t.Fatalf("upload part copy: %v %+v", err, pc)
	}
	if _, err := c.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{Bucket: b, Key: aws.String("copy"), UploadId: up2.UploadId}); err != nil {
		t.Fatal(err)
	}
	_, err = c.ListParts(ctx, &s3.ListPartsInput{Bucket: b, Key: aws.String("copy"), UploadId: up2.UploadId})
	if apiCode(err) != "NoSuchUpload" {
		t.Fatalf("list parts after abort: %v", err)
	}
}

func TestMinioClient(t *testing.T) { testMinioClient(t, newMemAPI()) }

func testMinioClient(t *testing.T, api objects.API) {
	ts := newSigV4Server(t, api, nil)
	mc, err := minio.New(strings.TrimPrefix(ts.URL, "http://"), &minio.Options{
		Creds: miniocreds.NewStaticV4(testAccess, testSecret, ""), Region: "us-east-1", BucketLookup: minio.BucketLookupPath,
		MaxRetries: 1,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := mc.MakeBucket(ctx, "mbucket", minio.MakeBucketOptions{}); err != nil {
		t.Fatal(err)
	}
	small := []byte("minio small object")
	if _, err := mc.PutObject(ctx, "mbucket", "s", bytes.NewReader(small), int64(len(small)),
		minio.PutObjectOptions{ContentType: "text/plain", UserMetadata: map[string]string{"k": "v"}}); err != nil {
		t.Fatal(err)
	}
	// Unknown size: minio-go streams with aws-chunked signatures and parts.
	big := bytes.Repeat([]byte("0123456789abcdef"), (6<<20)/16)
	if _, err := mc.PutObject(ctx, "mbucket", "big", bytes.NewReader(big), -1, minio.PutObjectOptions{PartSize: 5 << 20}); err != nil {
		t.Fatal(err)
	}
	st, err := mc.StatObject(ctx, "mbucket", "s", minio.StatObjectOptions{})
	if err != nil || st.Size != int64(len(small)) || st.ContentType != "text/plain" || st.UserMetadata["K"] != "v" {
		t.Fatalf("stat: %v %+v", err, st)
	}
	o, err := mc.GetObject(ctx, "mbucket", "big", minio.GetObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(o)
	o.Close()
	if err != nil || !bytes.Equal(got, big) {
		t.Fatalf("get big: %v len %d", err, len(got))
	}
	var keys []string
	for oi := range mc.ListObjects(ctx, "mbucket", minio.ListObjectsOptions{Recursive: true}) {
		if oi.Err != nil {
			t.Fatal(oi.Err)
		}
		keys = append(keys, oi.Key)
	}
	if strings.Join(keys, ",") != "big,s" {
		t.Fatalf("minio list: %v", keys)
	}
	objs := make(chan minio.ObjectInfo, 2)
	objs <- minio.ObjectInfo{Key: "big"}
	objs <- minio.ObjectInfo{Key: "s"}
	close(objs)
	for e := range mc.RemoveObjects(ctx, "mbucket", objs, minio.RemoveObjectsOptions{}) {
		t.Fatalf("remove objects: %v", e.Err)
	}
	if err := mc.RemoveBucket(ctx, "mbucket"); err != nil {
		t.Fatal(err)
	}
}
