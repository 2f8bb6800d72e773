package s3api_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"hash/crc32"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// The error documents of authentication failures carry the elements S3
// adds: the unknown access key, the unsigned headers.
func TestAuthErrorElements(t *testing.T) {
	ts := newSigV4Server(t, newMemAPI(), nil)
	const empty = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
	send := func(ak string, extra map[string]string) string {
		t.Helper()
		r, _ := http.NewRequest("GET", ts.URL+"/b/k", nil)
		r.Header.Set("X-Amz-Content-Sha256", empty)
		c := aws.Credentials{AccessKeyID: ak, SecretAccessKey: testSecret}
		if err := v4.NewSigner().SignHTTP(context.Background(), c, r, empty, "s3", "us-east-1", time.Now()); err != nil {
			t.Fatal(err)
		}
		for k, v := range extra {
			r.Header.Set(k, v)
		}
		resp, err := ts.Client().Do(r)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 403 {
			t.Fatalf("status %d: %s", resp.StatusCode, b)
		}
		return string(b)
	}
	if b := send("NOSUCHKEY", nil); !strings.Contains(b, "<Code>InvalidAccessKeyId</Code>") ||
		!strings.Contains(b, "<AWSAccessKeyId>NOSUCHKEY</AWSAccessKeyId>") {
		t.Fatalf("body %s", b)
	}
	if b := send(testAccess, map[string]string{"X-Amz-Tagging": "a=b"}); !strings.Contains(b, "<Code>AccessDenied</Code>") ||
		!strings.Contains(b, "<HeadersNotSigned>x-amz-tagging</HeadersNotSigned>") {
		t.Fatalf("body %s", b)
	}
}

// A write to a bucket with versioning suspended creates the null version
// and, as in S3, answers without x-amz-version-id; a read of it says
// "null".
func TestSuspendedWriteOmitsVersionID(t *testing.T) {
	ctx := context.Background()
	ts := newSigV4Server(t, newMemAPI(), nil)
	c := awsClient(t, ts.URL)
	if _, err := c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("sus")}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.PutBucketVersioning(ctx, &s3.PutBucketVersioningInput{Bucket: aws.String("sus"),
		VersioningConfiguration: &types.VersioningConfiguration{Status: types.BucketVersioningStatusSuspended}}); err != nil {
		t.Fatal(err)
	}
	put, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("sus"), Key: aws.String("k"), Body: strings.NewReader("x")})
	if err != nil || put.VersionId != nil {
		t.Fatalf("put: version %v, %v", aws.ToString(put.VersionId), err)
	}
	cp, err := c.CopyObject(ctx, &s3.CopyObjectInput{Bucket: aws.String("sus"), Key: aws.String("k2"), CopySource: aws.String("sus/k")})
	if err != nil || cp.VersionId != nil {
		t.Fatalf("copy: version %v, %v", aws.ToString(cp.VersionId), err)
	}
	head, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String("sus"), Key: aws.String("k")})
	if err != nil || aws.ToString(head.VersionId) != "null" {
		t.Fatalf("head: version %v, %v", aws.ToString(head.VersionId), err)
	}
}

func TestUploadPartCopyMissingBucket(t *testing.T) {
	ctx := context.Background()
	c := awsClient(t, newSigV4Server(t, newMemAPI(), nil).URL)
	_, err := c.UploadPartCopy(ctx, &s3.UploadPartCopyInput{Bucket: aws.String("nosuchbucket"), Key: aws.String("k"),
		CopySource: aws.String("Copy-Source"), UploadId: aws.String("u"), PartNumber: aws.Int32(1)})
	if apiCode(err) != "NoSuchBucket" {
		t.Fatalf("got %v", err)
	}
}

// Through the front end and the object layer: a FULL_OBJECT CRC32
// upload's checksum is the CRC32 of the whole object, a whole-object
// value sent with the completion is checked, and a composite value may
// carry its "-N" part count.
func TestServiceCompleteChecksums(t *testing.T) {
	ctx := context.Background()
	c := awsClient(t, newSigV4Server(t, newService(t), nil).URL)
	if _, err := c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("cksums")}); err != nil {
		t.Fatal(err)
	}
	data := bytes.Repeat([]byte("0123456789abcdef"), (5<<20)/16+100)
	upload := func(typ types.ChecksumType, alg types.ChecksumAlgorithm) (string, []types.CompletedPart) {
		mp, err := c.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: aws.String("cksums"), Key: aws.String("k"),
			ChecksumAlgorithm: alg, ChecksumType: typ})
		if err != nil {
			t.Fatal(err)
		}
		var parts []types.CompletedPart
		for i, p := range [][]byte{data[:5<<20], data[5<<20:]} {
			out, err := c.UploadPart(ctx, &s3.UploadPartInput{Bucket: aws.String("cksums"), Key: aws.String("k"), UploadId: mp.UploadId,
				PartNumber: aws.Int32(int32(i + 1)), Body: bytes.NewReader(p), ChecksumAlgorithm: alg})
			if err != nil {
				t.Fatal(err)
			}
			parts = append(parts, types.CompletedPart{PartNumber: aws.Int32(int32(i + 1)), ETag: out.ETag,
				ChecksumCRC32: out.ChecksumCRC32, ChecksumSHA256: out.ChecksumSHA256})
		}
		return aws.ToString(mp.UploadId), parts
	}
	sum := crc32.ChecksumIEEE(data)
	want := base64.StdEncoding.EncodeToString([]byte{byte(sum >> 24), byte(sum >> 16), byte(sum >> 8), byte(sum)})

	id, parts := upload(types.ChecksumTypeFullObject, types.ChecksumAlgorithmCrc32)
	complete := func(in s3.CompleteMultipartUploadInput) (*s3.CompleteMultipartUploadOutput, error) {
		in.Bucket, in.Key, in.UploadId = aws.String("cksums"), aws.String("k"), aws.String(id)
		in.MultipartUpload = &types.CompletedMultipartUpload{Parts: parts}
		return c.CompleteMultipartUpload(ctx, &in)
	}
	if _, err := complete(s3.CompleteMultipartUploadInput{ChecksumCRC32: aws.String("AAAAAA==")}); apiCode(err) != "BadDigest" {
		t.Fatalf("wrong whole checksum: %v", err)
	}
	if _, err := complete(s3.CompleteMultipartUploadInput{ChecksumType: types.ChecksumTypeComposite}); apiCode(err) != "InvalidRequest" {
		t.Fatalf("other checksum type: %v", err)
	}
	out, err := complete(s3.CompleteMultipartUploadInput{ChecksumCRC32: aws.String(want), ChecksumType: types.ChecksumTypeFullObject})
	if err != nil || aws.ToString(out.ChecksumCRC32) != want || out.ChecksumType != types.ChecksumTypeFullObject {
		t.Fatalf("complete: %v %v %v", aws.ToString(out.ChecksumCRC32), out.ChecksumType, err)
	}

	id, parts = upload("", types.ChecksumAlgorithmSha256)
	h := sha256.New()
	for _, p := range parts {
		raw, _ := base64.StdEncoding.DecodeString(aws.ToString(p.ChecksumSHA256))
		h.Write(raw)
	}
	composite := base64.StdEncoding.EncodeToString(h.Sum(nil)) + "-2"
	out, err = complete(s3.CompleteMultipartUploadInput{ChecksumSHA256: aws.String(composite)})
	if err != nil || aws.ToString(out.ChecksumSHA256) != composite || out.ChecksumType != types.ChecksumTypeComposite {
		t.Fatalf("composite: %v %v %v", aws.ToString(out.ChecksumSHA256), out.ChecksumType, err)
	}
}
