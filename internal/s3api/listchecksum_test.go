package s3api_test

import (
	"context"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// ListObjectsV2 and ListObjectVersions entries name the stored checksum's
// algorithm and type, as S3's do; delete markers name none.
func TestServiceListChecksumAlgorithm(t *testing.T) {
	ctx := context.Background()
	c := awsClient(t, newSigV4Server(t, newService(t), nil).URL)
	b := aws.String("lsck")
	if _, err := c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: b}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.PutBucketVersioning(ctx, &s3.PutBucketVersioningInput{Bucket: b,
		VersioningConfiguration: &types.VersioningConfiguration{Status: types.BucketVersioningStatusEnabled}}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: b, Key: aws.String("k"), Body: strings.NewReader("x"),
		ChecksumAlgorithm: types.ChecksumAlgorithmSha256}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: b, Key: aws.String("k"), Body: strings.NewReader("y")}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: b, Key: aws.String("gone")}); err != nil {
		t.Fatal(err)
	}
	l2, err := c.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: b})
	if err != nil {
		t.Fatal(err)
	}
	if len(l2.Contents) != 1 || len(l2.Contents[0].ChecksumAlgorithm) != 1 ||
		l2.Contents[0].ChecksumAlgorithm[0] != types.ChecksumAlgorithmCrc64nvme ||
		l2.Contents[0].ChecksumType != types.ChecksumTypeFullObject {
		t.Fatalf("ListObjectsV2 %+v", l2.Contents)
	}
	lv, err := c.ListObjectVersions(ctx, &s3.ListObjectVersionsInput{Bucket: b})
	if err != nil {
		t.Fatal(err)
	}
	if len(lv.Versions) != 2 || len(lv.DeleteMarkers) != 1 {
		t.Fatalf("ListObjectVersions %+v %+v", lv.Versions, lv.DeleteMarkers)
	}
	for i, want := range []types.ChecksumAlgorithm{types.ChecksumAlgorithmCrc64nvme, types.ChecksumAlgorithmSha256} {
		v := lv.Versions[i]
		if len(v.ChecksumAlgorithm) != 1 || v.ChecksumAlgorithm[0] != want || v.ChecksumType != types.ChecksumTypeFullObject {
			t.Fatalf("version %d: %v %v", i, v.ChecksumAlgorithm, v.ChecksumType)
		}
	}
}
