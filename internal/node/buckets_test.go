package node

import (
	"errors"
	"net/http"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/redoubt-io/redoubt/internal/admin"
)

// TestAdminBuckets: a bucket's consistency, chosen through S3's
// CreateBucket header or the admin API, is shown by HeadBucket and GET
// /buckets; available is refused with NotImplemented on a standalone node,
// and a value that is neither is the caller's mistake.
func TestAdminBuckets(t *testing.T) {
	n := startNodeWith(t, nil)
	ctx := t.Context()
	root := rootClient(n)
	c := nodeClient(n)

	withConsistency := func(v string) func(*s3.Options) {
		return func(o *s3.Options) {
			o.APIOptions = append(o.APIOptions, smithyhttp.AddHeaderValue("X-Redoubt-Consistency", v))
		}
	}
	if _, err := c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("s3-strong")}, withConsistency("strong")); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("plain")}); err != nil {
		t.Fatal(err)
	}
	for v, code := range map[string]string{"available": "NotImplemented", "eventual": "InvalidArgument"} {
		_, err := c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("s3-" + v)}, withConsistency(v))
		var ae smithy.APIError
		if !errors.As(err, &ae) || ae.ErrorCode() != code {
			t.Errorf("S3 CreateBucket with consistency %q: %v, want %s", v, err, code)
		}
	}
	for _, b := range []string{"s3-strong", "plain"} {
		out, err := c.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String(b)})
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := awsmiddleware.GetRawResponse(out.ResultMetadata).(*smithyhttp.Response)
		if got := raw.Header.Get("X-Redoubt-Consistency"); got != "strong" {
			t.Errorf("HeadBucket %s: consistency header %q, want strong", b, got)
		}
	}

	var made admin.Bucket
	if err := root.Call(ctx, n.AdminURL, http.MethodPost, "/buckets", admin.BucketCreate{Name: "admin-made"}, &made); err != nil {
		t.Fatal(err)
	}
	if made.Name != "admin-made" || made.Consistency != "strong" || made.Versioning != "unversioned" {
		t.Errorf("POST /buckets answered %+v", made)
	}
	for _, tc := range []struct {
		in     admin.BucketCreate
		status int
		code   string
	}{
		{admin.BucketCreate{Name: "admin-avail", Consistency: "available"}, 501, "NotImplemented"},
		{admin.BucketCreate{Name: "admin-odd", Consistency: "sometimes"}, 400, "InvalidArgument"},
		{admin.BucketCreate{Name: "Bad_Name"}, 400, "InvalidBucketName"},
		{admin.BucketCreate{Name: "admin-made"}, 409, "BucketAlreadyOwnedByYou"},
	} {
		err := root.Call(ctx, n.AdminURL, http.MethodPost, "/buckets", tc.in, &made)
		var e *admin.Error
		if !errors.As(err, &e) || e.Status != tc.status || e.Code != tc.code {
			t.Errorf("POST /buckets %+v: %v, want %d %s", tc.in, err, tc.status, tc.code)
		}
	}
	var list []admin.Bucket
	if err := root.Call(ctx, n.AdminURL, http.MethodGet, "/buckets", nil, &list); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, b := range list {
		names = append(names, b.Name+":"+b.Consistency)
	}
	want := []string{"admin-made:strong", "plain:strong", "s3-strong:strong"}
	if len(names) != len(want) || names[0] != want[0] || names[1] != want[1] || names[2] != want[2] {
		t.Errorf("GET /buckets: %v, want %v", names, want)
	}
}
