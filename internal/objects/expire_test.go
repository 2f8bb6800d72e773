package objects

import (
	"errors"
	"testing"
	"time"
)

func TestExpireMultipartUploads(t *testing.T) {
	for _, batch := range []int{expireBatch, 1, 2} {
		e := newEnv(t) // InlineMax 64: parts of 100 bytes go to the data store
		e.bucket("one", Unversioned)
		e.bucket("two", Enabled)
		create := func(bucket, key string) string {
			t.Helper()
			id, err := e.s.CreateMultipartUpload(e.ctx, bucket, key, PutOptions{})
			if err != nil {
				t.Fatal(err)
			}
			e.part(bucket, key, id, 1, big(100, 1))
			e.part(bucket, key, id, 2, big(100, 2))
			return id
		}
		old := map[string][2]string{} // upload ID -> bucket, key
		for _, k := range []string{"a", "b/c", "d"} {
			old[create("one", k)] = [2]string{"one", k}
			old[create("two", k)] = [2]string{"two", k}
		}
		e.clk.Advance(2 * time.Hour)
		young := create("one", "a")
		youngData := len(e.data.ids())

		n, err := e.s.expireUploads(e.ctx, time.Hour, batch)
		if err != nil || n != len(old) {
			t.Fatalf("batch %d: expired %d, %v; want %d", batch, n, err, len(old))
		}
		for id, bk := range old {
			if _, err := e.s.ListParts(e.ctx, bk[0], bk[1], id, ListPartsOptions{}); !errors.Is(err, ErrNoSuchUpload) {
				t.Errorf("batch %d: old upload %s of %s/%s: %v, want ErrNoSuchUpload", batch, id, bk[0], bk[1], err)
			}
		}
		lp, err := e.s.ListParts(e.ctx, "one", "a", young, ListPartsOptions{})
		if err != nil || len(lp.Parts) != 2 {
			t.Fatalf("batch %d: young upload: %+v, %v", batch, lp, err)
		}
		// Only the young upload's two parts keep data; newEnv's cleanup
		// checks nothing else is stored or referenced.
		if got := len(e.data.ids()); got != 2 || youngData != 2*(len(old)+1) {
			t.Errorf("batch %d: %d data refs left (of %d), want 2", batch, got, youngData)
		}
		if n, err := e.s.expireUploads(e.ctx, time.Hour, batch); err != nil || n != 0 {
			t.Errorf("batch %d: second run expired %d, %v; want 0", batch, n, err)
		}
		for _, b := range []string{"one", "two"} {
			res, err := e.s.ListMultipartUploads(e.ctx, b, ListUploadsOptions{})
			want := map[string]int{"one": 1, "two": 0}[b]
			if err != nil || len(res.Uploads) != want {
				t.Errorf("batch %d: %s lists %+v, %v; want %d uploads", batch, b, res.Uploads, err, want)
			}
		}
	}
}

func TestExpireMultipartUploadsBadAge(t *testing.T) {
	e := newEnv(t)
	if _, err := e.s.ExpireMultipartUploads(e.ctx, 0); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("age 0: %v, want ErrInvalidArgument", err)
	}
}

func TestExpireMultipartUploadsNoBuckets(t *testing.T) {
	e := newEnv(t)
	if n, err := e.s.ExpireMultipartUploads(e.ctx, time.Hour); n != 0 || err != nil {
		t.Errorf("no buckets: %d, %v", n, err)
	}
}
