package s3api_test

import (
	"bytes"
	"context"
	"hash/crc64"
	"io"
	"math/bits"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/redoubt-io/redoubt/internal/checksum"
)

// An upload created without a checksum algorithm gets a FULL_OBJECT
// CRC64NVME, whatever checksum the SDK sends with each part, and a
// whole-object value sent with the completion is ignored, as in S3.
func TestServiceMultipartDefaultChecksum(t *testing.T) {
	ctx := context.Background()
	c := awsClient(t, newSigV4Server(t, newService(t), nil).URL)
	b, k := aws.String("mpdef"), aws.String("obj")
	if _, err := c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: b}); err != nil {
		t.Fatal(err)
	}
	mp, err := c.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: b, Key: k})
	if err != nil {
		t.Fatal(err)
	}
	data := bytes.Repeat([]byte("redoubt!"), (5<<20)/8+1000)
	var parts []types.CompletedPart
	for i, p := range [][]byte{data[:5<<20], data[5<<20:]} {
		in := &s3.UploadPartInput{Bucket: b, Key: k, UploadId: mp.UploadId, PartNumber: aws.Int32(int32(i + 1)), Body: bytes.NewReader(p)}
		if i == 1 {
			in.ChecksumAlgorithm = types.ChecksumAlgorithmSha256
		}
		out, err := c.UploadPart(ctx, in)
		if err != nil {
			t.Fatal(err)
		}
		parts = append(parts, types.CompletedPart{PartNumber: aws.Int32(int32(i + 1)), ETag: out.ETag})
	}
	done, err := c.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{Bucket: b, Key: k, UploadId: mp.UploadId,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: parts}, ChecksumCRC64NVME: aws.String("vqf3hRLTlJw=")})
	if err != nil {
		t.Fatal(err)
	}
	h := crc64.New(crc64.MakeTable(bits.Reverse64(0xad93d23594c93659)))
	h.Write(data)
	want := checksum.Encode(h.Sum(nil))
	if aws.ToString(done.ChecksumCRC64NVME) != want || done.ChecksumSHA256 != nil || done.ChecksumCRC32 != nil {
		t.Fatalf("complete: crc64nvme %q, want %q", aws.ToString(done.ChecksumCRC64NVME), want)
	}
	head, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: b, Key: k, ChecksumMode: types.ChecksumModeEnabled})
	if err != nil {
		t.Fatal(err)
	}
	if aws.ToString(head.ChecksumCRC64NVME) != want || head.ChecksumType != types.ChecksumTypeFullObject {
		t.Fatalf("head: %q %q", aws.ToString(head.ChecksumCRC64NVME), head.ChecksumType)
	}
	// The SDK checks a FULL_OBJECT checksum against the body it reads.
	get, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: b, Key: k, ChecksumMode: types.ChecksumModeEnabled})
	if err != nil {
		t.Fatal(err)
	}
	defer get.Body.Close()
	got, err := io.ReadAll(get.Body)
	if err != nil || !bytes.Equal(got, data) || aws.ToString(get.ChecksumCRC64NVME) != want {
		t.Fatalf("get: %d bytes, %q, %v", len(got), aws.ToString(get.ChecksumCRC64NVME), err)
	}
}

// CopyObject and UploadPartCopy read a percent-encoded "?versionId=" in
// the copy source as the version separator: an invalid version ID there
// is InvalidArgument, not a missing key.
func TestServiceCopySourceEncodedVersionID(t *testing.T) {
	ctx := context.Background()
	c := awsClient(t, newSigV4Server(t, newService(t), nil).URL)
	b := aws.String("encvid")
	if _, err := c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: b}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: b, Key: aws.String("src"), Body: bytes.NewReader([]byte("data"))}); err != nil {
		t.Fatal(err)
	}
	bad := aws.String("encvid/src%3FversionId%3D..%2f..%2fsecret.txt")
	if _, err := c.CopyObject(ctx, &s3.CopyObjectInput{Bucket: b, Key: aws.String("dst"), CopySource: bad}); apiCode(err) != "InvalidArgument" {
		t.Fatalf("CopyObject: %v", err)
	}
	mp, err := c.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: b, Key: aws.String("dst")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.UploadPartCopy(ctx, &s3.UploadPartCopyInput{Bucket: b, Key: aws.String("dst"), UploadId: mp.UploadId,
		PartNumber: aws.Int32(1), CopySource: bad}); apiCode(err) != "InvalidArgument" {
		t.Fatalf("UploadPartCopy: %v", err)
	}
	// The null version of an unversioned bucket, named the same way.
	if _, err := c.CopyObject(ctx, &s3.CopyObjectInput{Bucket: b, Key: aws.String("dst"),
		CopySource: aws.String("encvid/src%3FversionId%3Dnull")}); err != nil {
		t.Fatalf("CopyObject of null version: %v", err)
	}
}
