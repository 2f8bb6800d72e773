package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	mcreds "github.com/minio/minio-go/v7/pkg/credentials"
)

func minioClient(t *testing.T, s *server) *minio.Client {
	t.Helper()
	u, err := url.Parse(s.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	c, err := minio.New(u.Host, &minio.Options{
		Creds:        mcreds.NewStaticV4(testAccessKey, testSecretKey, ""),
		Secure:       false,
		Region:       testRegion,
		BucketLookup: minio.BucketLookupPath,
		MaxRetries:   1,
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func minioStatus(err error) (int, string) {
	r := minio.ToErrorResponse(err)
	return r.StatusCode, r.Code
}

// TestMinio drives a server with minio-go, which signs every chunk of its
// uploads (STREAMING-AWS4-HMAC-SHA256-PAYLOAD) over plain HTTP.
func TestMinio(t *testing.T) {
	s := startLogged(t, serverOptions{drives: 4})
	c := minioClient(t, s)
	ctx := context.Background()
	b := fmt.Sprintf("minio-%d", time.Now().UnixNano()%1e6)
	if err := c.MakeBucket(ctx, b, minio.MakeBucketOptions{Region: testRegion}); err != nil {
		t.Fatalf("MakeBucket: %v", err)
	}
	if ok, err := c.BucketExists(ctx, b); err != nil || !ok {
		t.Errorf("BucketExists: %v %v", ok, err)
	}

	objects := map[string][]byte{}
	for i, n := range []int{0, 1, 100 << 10, 5<<20 + 1, 40<<20 + 3} {
		data := payload(uint64(20000+i), n)
		key := fmt.Sprintf("dir%d/obj-%d", i%2, n)
		// Known size.
		info, err := c.PutObject(ctx, b, key, bytes.NewReader(data), int64(n), minio.PutObjectOptions{ContentType: "application/x-minio", UserMetadata: map[string]string{"Origin": "minio"}, PartSize: 16 << 20})
		if err != nil {
			t.Errorf("PutObject %d bytes: %v", n, err)
			continue
		}
		if info.Size != int64(n) {
			t.Errorf("PutObject %d bytes: size %d", n, info.Size)
		}
		objects[key] = data
		// Unknown size (-1): minio-go streams and switches to multipart past one part.
		skey := key + "-stream"
		if _, err := c.PutObject(ctx, b, skey, io.MultiReader(bytes.NewReader(data)), -1, minio.PutObjectOptions{PartSize: 16 << 20}); err != nil {
			t.Errorf("PutObject %d bytes of unknown size: %v", n, err)
			continue
		}
		objects[skey] = data
	}
	for key, data := range objects {
		st, err := c.StatObject(ctx, b, key, minio.StatObjectOptions{})
		if err != nil {
			t.Errorf("StatObject %s: %v", key, err)
			continue
		}
		if st.Size != int64(len(data)) {
			t.Errorf("StatObject %s: size %d, want %d", key, st.Size, len(data))
		}
		if !strings.HasSuffix(key, "-stream") && (st.ContentType != "application/x-minio" || st.UserMetadata["Origin"] != "minio") {
			t.Errorf("StatObject %s: content type %q metadata %v", key, st.ContentType, st.UserMetadata)
		}
		if len(data) > 16<<20 && strings.HasSuffix(key, "-stream") && !strings.HasSuffix(st.ETag, "-3") {
			t.Errorf("StatObject %s: ETag %s, want a 3-part multipart ETag", key, st.ETag)
		}
		obj, err := c.GetObject(ctx, b, key, minio.GetObjectOptions{})
		if err != nil {
			t.Errorf("GetObject %s: %v", key, err)
			continue
		}
		got, err := io.ReadAll(obj)
		obj.Close()
		if err != nil || !bytes.Equal(got, data) {
			t.Errorf("GetObject %s: %d bytes, want %d, err %v", key, len(got), len(data), err)
		}
		if len(data) > 1000 {
			opts := minio.GetObjectOptions{}
			start, end := int64(len(data)/3), int64(len(data)/3+999)
			opts.SetRange(start, end)
			obj, err := c.GetObject(ctx, b, key, opts)
			if err != nil {
				t.Errorf("GetObject %s range: %v", key, err)
				continue
			}
			got, err := io.ReadAll(obj)
			obj.Close()
			if err != nil || !bytes.Equal(got, data[start:end+1]) {
				t.Errorf("GetObject %s range %d-%d: %d bytes, err %v", key, start, end, len(got), err)
			}
		}
	}

	// ListObjects, recursive and not.
	var all []string
	for o := range c.ListObjects(ctx, b, minio.ListObjectsOptions{Recursive: true}) {
		if o.Err != nil {
			t.Fatalf("ListObjects: %v", o.Err)
		}
		all = append(all, o.Key)
	}
	var want []string
	for k := range objects {
		want = append(want, k)
	}
	slices.Sort(want)
	if !slices.Equal(all, want) {
		t.Errorf("ListObjects recursive: %q, want %q", all, want)
	}
	var top []string
	for o := range c.ListObjects(ctx, b, minio.ListObjectsOptions{Recursive: false, MaxKeys: 1}) {
		if o.Err != nil {
			t.Fatalf("ListObjects: %v", o.Err)
		}
		top = append(top, o.Key)
	}
	if !slices.Equal(top, []string{"dir0/", "dir1/"}) {
		t.Errorf("ListObjects non-recursive: %q, want [dir0/ dir1/]", top)
	}

	// CopyObject
	src := "dir0/obj-0"
	for k := range objects {
		if len(objects[k]) == 5<<20+1 && !strings.HasSuffix(k, "-stream") {
			src = k
		}
	}
	if _, err := c.CopyObject(ctx, minio.CopyDestOptions{Bucket: b, Object: "copy/of it"}, minio.CopySrcOptions{Bucket: b, Object: src}); err != nil {
		t.Errorf("CopyObject: %v", err)
	} else if obj, err := c.GetObject(ctx, b, "copy/of it", minio.GetObjectOptions{}); err == nil {
		got, err := io.ReadAll(obj)
		obj.Close()
		if err != nil || !bytes.Equal(got, objects[src]) {
			t.Errorf("GET copy: %d bytes, err %v", len(got), err)
		}
	}

	// Presigned GET.
	u, err := c.PresignedGetObject(ctx, b, src, 10*time.Minute, url.Values{"response-content-type": {"text/x-presigned"}})
	if err != nil {
		t.Fatalf("PresignedGetObject: %v", err)
	}
	resp, err := http.Get(u.String())
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !bytes.Equal(got, objects[src]) || resp.Header.Get("Content-Type") != "text/x-presigned" {
		t.Errorf("presigned GET: status %d, %d bytes, Content-Type %q", resp.StatusCode, len(got), resp.Header.Get("Content-Type"))
	}

	// Conditional GET.
	st, err := c.StatObject(ctx, b, src, minio.StatObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	condGet := func(name string, set func(*minio.GetObjectOptions) error, wantStatus int) {
		t.Helper()
		opts := minio.GetObjectOptions{}
		if err := set(&opts); err != nil {
			t.Fatal(err)
		}
		obj, err := c.GetObject(ctx, b, src, opts)
		if err == nil {
			_, err = io.ReadAll(obj)
			obj.Close()
		}
		if wantStatus == 0 {
			if err != nil {
				t.Errorf("GET %s: %v", name, err)
			}
			return
		}
		if code, _ := minioStatus(err); code != wantStatus {
			t.Errorf("GET %s: %v (status %d), want %d", name, err, code, wantStatus)
		}
	}
	condGet("If-Match right", func(o *minio.GetObjectOptions) error { return o.SetMatchETag(st.ETag) }, 0)
	condGet("If-Match wrong", func(o *minio.GetObjectOptions) error { return o.SetMatchETag("0123") }, 412)
	condGet("If-None-Match right", func(o *minio.GetObjectOptions) error { return o.SetMatchETagExcept(st.ETag) }, 304)
	condGet("If-Unmodified-Since before", func(o *minio.GetObjectOptions) error { return o.SetUnmodified(st.LastModified.Add(-time.Hour)) }, 412)
	condGet("If-Modified-Since before", func(o *minio.GetObjectOptions) error { return o.SetModified(st.LastModified.Add(-time.Hour)) }, 0)

	// RemoveObject and RemoveObjects.
	if err := c.RemoveObject(ctx, b, "copy/of it", minio.RemoveObjectOptions{}); err != nil {
		t.Errorf("RemoveObject: %v", err)
	}
	if _, err := c.StatObject(ctx, b, "copy/of it", minio.StatObjectOptions{}); err == nil {
		t.Errorf("StatObject after RemoveObject succeeded")
	} else if code, _ := minioStatus(err); code != 404 {
		t.Errorf("StatObject after RemoveObject: %v", err)
	}
	ch := make(chan minio.ObjectInfo, len(all))
	for _, k := range all {
		ch <- minio.ObjectInfo{Key: k}
	}
	close(ch)
	for e := range c.RemoveObjects(ctx, b, ch, minio.RemoveObjectsOptions{}) {
		t.Errorf("RemoveObjects %s: %v", e.ObjectName, e.Err)
	}
	n := 0
	for o := range c.ListObjects(ctx, b, minio.ListObjectsOptions{Recursive: true}) {
		if o.Err != nil {
			t.Fatal(o.Err)
		}
		n++
	}
	if n != 0 {
		t.Errorf("ListObjects after RemoveObjects: %d objects left", n)
	}
	if err := c.RemoveBucket(ctx, b); err != nil {
		t.Errorf("RemoveBucket: %v", err)
	}
}
