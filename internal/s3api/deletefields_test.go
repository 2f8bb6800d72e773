package s3api_test

import (
	"context"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// DeleteObjects names, for each key, what its delete did to versions, as
// S3 does: removing a named version says whether it was a delete marker
// (DeleteMarker false or true, and then DeleteMarkerVersionId too), a
// delete without a version in a versioned bucket names the marker it made,
// and a plain delete in an unversioned bucket names neither.
func TestServiceDeleteObjectsVersionFields(t *testing.T) {
	ctx := context.Background()
	c := awsClient(t, newSigV4Server(t, newService(t), nil).URL)
	b := aws.String("delver")
	if _, err := c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: b}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.PutBucketVersioning(ctx, &s3.PutBucketVersioningInput{Bucket: b,
		VersioningConfiguration: &types.VersioningConfiguration{Status: types.BucketVersioningStatusEnabled}}); err != nil {
		t.Fatal(err)
	}
	vids := map[string]string{}
	for _, k := range []string{"foo", "bar", "baz"} {
		out, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: b, Key: aws.String(k), Body: strings.NewReader(k)})
		if err != nil {
			t.Fatal(err)
		}
		vids[k] = aws.ToString(out.VersionId)
	}
	out, err := c.DeleteObjects(ctx, &s3.DeleteObjectsInput{Bucket: b, Delete: &types.Delete{Objects: []types.ObjectIdentifier{
		{Key: aws.String("foo"), VersionId: aws.String(vids["foo"])},
		{Key: aws.String("bar")},
		{Key: aws.String("baz")},
	}}})
	if err != nil || len(out.Errors) != 0 || len(out.Deleted) != 3 {
		t.Fatalf("DeleteObjects: %+v %v", out, err)
	}
	d := out.Deleted
	if aws.ToString(d[0].Key) != "foo" || aws.ToString(d[0].VersionId) != vids["foo"] ||
		d[0].DeleteMarker == nil || *d[0].DeleteMarker || d[0].DeleteMarkerVersionId != nil {
		t.Fatalf("named version: %s", deletedString(d[0]))
	}
	for _, o := range d[1:] {
		if o.VersionId != nil || !aws.ToBool(o.DeleteMarker) || aws.ToString(o.DeleteMarkerVersionId) == "" {
			t.Fatalf("delete without version: %s", deletedString(o))
		}
	}
	lv, err := c.ListObjectVersions(ctx, &s3.ListObjectVersionsInput{Bucket: b})
	if err != nil || len(lv.Versions) != 2 || len(lv.DeleteMarkers) != 2 {
		t.Fatalf("versions after delete: %+v %v", lv, err)
	}
	for _, m := range lv.DeleteMarkers {
		if aws.ToString(m.VersionId) != aws.ToString(d[1].DeleteMarkerVersionId) && aws.ToString(m.VersionId) != aws.ToString(d[2].DeleteMarkerVersionId) {
			t.Fatalf("listed marker %s %s was not named by DeleteObjects", aws.ToString(m.Key), aws.ToString(m.VersionId))
		}
	}

	// Removing a delete marker by its version.
	marker := d[1].DeleteMarkerVersionId
	out, err = c.DeleteObjects(ctx, &s3.DeleteObjectsInput{Bucket: b, Delete: &types.Delete{Objects: []types.ObjectIdentifier{
		{Key: aws.String("bar"), VersionId: marker},
	}}})
	if err != nil || len(out.Deleted) != 1 {
		t.Fatalf("DeleteObjects of a marker: %+v %v", out, err)
	}
	if o := out.Deleted[0]; aws.ToString(o.VersionId) != aws.ToString(marker) || !aws.ToBool(o.DeleteMarker) ||
		aws.ToString(o.DeleteMarkerVersionId) != aws.ToString(marker) {
		t.Fatalf("removed marker: %s", deletedString(o))
	}

	// Unversioned: nothing about versions.
	u := aws.String("delplain")
	if _, err := c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: u}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: u, Key: aws.String("k"), Body: strings.NewReader("x")}); err != nil {
		t.Fatal(err)
	}
	out, err = c.DeleteObjects(ctx, &s3.DeleteObjectsInput{Bucket: u, Delete: &types.Delete{Objects: []types.ObjectIdentifier{{Key: aws.String("k")}}}})
	if err != nil || len(out.Deleted) != 1 {
		t.Fatalf("DeleteObjects unversioned: %+v %v", out, err)
	}
	if o := out.Deleted[0]; o.VersionId != nil || o.DeleteMarker != nil || o.DeleteMarkerVersionId != nil {
		t.Fatalf("unversioned delete: %s", deletedString(o))
	}
}

func deletedString(o types.DeletedObject) string {
	dm := "<nil>"
	if o.DeleteMarker != nil {
		dm = map[bool]string{true: "true", false: "false"}[*o.DeleteMarker]
	}
	return "key " + aws.ToString(o.Key) + " version " + aws.ToString(o.VersionId) + " marker " + dm + " marker version " + aws.ToString(o.DeleteMarkerVersionId)
}

// Metadata above the limit is refused on a copy whatever its directive:
// with REPLACE it would be stored; with COPY it is ignored, but S3 refuses
// the request all the same.
func TestServiceCopyObjectMetadataTooLarge(t *testing.T) {
	ctx := context.Background()
	c := awsClient(t, newSigV4Server(t, newService(t), nil).URL)
	b := aws.String("cpmeta")
	if _, err := c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: b}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: b, Key: aws.String("src"), Body: strings.NewReader("data")}); err != nil {
		t.Fatal(err)
	}
	long := map[string]string{strings.Repeat("s", 2048): "value"}
	for _, d := range []types.MetadataDirective{"", types.MetadataDirectiveCopy, types.MetadataDirectiveReplace} {
		_, err := c.CopyObject(ctx, &s3.CopyObjectInput{Bucket: b, Key: aws.String("dst"), CopySource: aws.String("cpmeta/src"),
			Metadata: long, MetadataDirective: d})
		if apiCode(err) != "MetadataTooLarge" {
			t.Fatalf("directive %q: %v, want MetadataTooLarge", d, err)
		}
	}
	// Within the limit both directives still work.
	for _, d := range []types.MetadataDirective{types.MetadataDirectiveCopy, types.MetadataDirectiveReplace} {
		if _, err := c.CopyObject(ctx, &s3.CopyObjectInput{Bucket: b, Key: aws.String("dst"), CopySource: aws.String("cpmeta/src"),
			Metadata: map[string]string{"m": "v"}, MetadataDirective: d}); err != nil {
			t.Fatalf("directive %q: %v", d, err)
		}
	}
}
