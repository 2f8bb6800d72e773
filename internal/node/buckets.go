package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"syscall"
	"time"

	"github.com/redoubt-io/redoubt/internal/admin"
	"github.com/redoubt-io/redoubt/internal/meta"
	"github.com/redoubt-io/redoubt/internal/objects"
	"github.com/redoubt-io/redoubt/internal/records"
	"github.com/redoubt-io/redoubt/internal/sites"
)

// registerBuckets adds the bucket endpoints to the admin API: GET
// /buckets lists every bucket with its configuration, POST /buckets
// creates one (admin.BucketCreate) through api, as an S3 CreateBucket
// would (TestAdminBuckets).
func registerBuckets(mux *http.ServeMux, api objects.API) {
	mux.HandleFunc("GET /buckets", func(w http.ResponseWriter, r *http.Request) {
		bs, err := api.ListBuckets(r.Context())
		out := make([]admin.Bucket, 0, len(bs))
		for _, b := range bs {
			out = append(out, adminBucket(b))
		}
		writeBucketAnswer(w, out, err)
	})
	mux.HandleFunc("POST /buckets", func(w http.ResponseWriter, r *http.Request) {
		var c admin.BucketCreate
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<16)).Decode(&c); err != nil {
			writeBucketAnswer(w, nil, fmt.Errorf("%w: body: %w", objects.ErrInvalidArgument, err))
			return
		}
		cons, err := objects.ParseConsistency(c.Consistency)
		if err != nil {
			writeBucketAnswer(w, nil, err)
			return
		}
		var retention time.Duration
		if c.ConflictRetention != "" {
			if retention, err = time.ParseDuration(c.ConflictRetention); err != nil || retention <= 0 {
				writeBucketAnswer(w, nil, fmt.Errorf("%w: conflict retention %q: want a duration such as 72h", objects.ErrInvalidArgument, c.ConflictRetention))
				return
			}
		}
		if err := api.CreateBucketWith(r.Context(), c.Name, objects.BucketConfig{Consistency: cons, WriteCopies: c.WriteCopies, ConflictRetention: retention, Replicate: c.Replicate}); err != nil {
			writeBucketAnswer(w, nil, err)
			return
		}
		b, err := api.HeadBucket(r.Context(), c.Name)
		writeBucketAnswer(w, adminBucket(b), err)
	})
}

// conflictLister lists an available bucket's conflicts (*objects.Service).
type conflictLister interface {
	Conflicts(ctx context.Context, bucket, prefix, after string, max int) ([]objects.Conflict, string, error)
}

// registerConflicts serves GET /buckets/NAME/conflicts[?prefix=&after=].
func registerConflicts(mux *http.ServeMux, l conflictLister) {
	mux.HandleFunc("GET /buckets/{name}/conflicts", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		cs, next, err := l.Conflicts(r.Context(), r.PathValue("name"), q.Get("prefix"), q.Get("after"), 0)
		out := admin.Conflicts{Keys: []admin.ConflictKey{}, Next: next}
		for _, c := range cs {
			k := admin.ConflictKey{Key: c.Key}
			for _, v := range c.Heads {
				k.Versions = append(k.Versions, admin.ConflictVersion{VersionID: v.VersionID, Current: v.IsLatest,
					DeleteMarker: v.DeleteMarker, Size: v.Size, ETag: v.ETag, Modified: v.LastModified})
			}
			out.Keys = append(out.Keys, k)
		}
		writeBucketAnswer(w, out, err)
	})
}

func adminBucket(b objects.BucketInfo) admin.Bucket {
	v := map[objects.Versioning]string{objects.Unversioned: "unversioned", objects.Enabled: "enabled", objects.Suspended: "suspended"}[b.Versioning]
	ab := admin.Bucket{Name: b.Name, Created: b.Created, Versioning: v, Consistency: b.Consistency.String()}
	if b.Consistency == objects.Available {
		ab.WriteCopies = b.WriteCopiesOrDefault()
		if b.ConflictRetention > 0 {
			ab.ConflictRetention = b.ConflictRetention.String()
		}
		ab.Replicate = b.Replicate
	}
	return ab
}

// bucketErrors are the admin API's answers to the object layer's (and the
// sites') errors, with the S3 code of each, so that a script can tell them
// apart.
var bucketErrors = []struct {
	err    error
	status int
	code   string
}{
	{objects.ErrInvalidBucketName, http.StatusBadRequest, "InvalidBucketName"},
	{objects.ErrInvalidArgument, http.StatusBadRequest, "InvalidArgument"},
	{objects.ErrBucketExists, http.StatusConflict, "BucketAlreadyOwnedByYou"},
	{objects.ErrNoSuchBucket, http.StatusNotFound, "NoSuchBucket"},
	{objects.ErrNotImplemented, http.StatusNotImplemented, "NotImplemented"},
	{objects.ErrBucketReplicated, http.StatusConflict, "BucketReplicated"},
	{sites.ErrInvalid, http.StatusBadRequest, "InvalidArgument"},
	{records.ErrInvalidRequest, http.StatusBadRequest, "InvalidArgument"},
	{sites.ErrExists, http.StatusConflict, "SiteExists"},
	{sites.ErrNotFound, http.StatusNotFound, "NoSuchSite"},
	{errSiteUnreachable, http.StatusBadGateway, "SiteUnreachable"},
	{syscall.ENOSPC, http.StatusInsufficientStorage, "InsufficientStorage"},
	{meta.ErrUnavailable, http.StatusServiceUnavailable, "ServiceUnavailable"},
}

func writeBucketAnswer(w http.ResponseWriter, v any, err error) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	if err != nil {
		status, code := http.StatusInternalServerError, "InternalError"
		for _, m := range bucketErrors {
			if errors.Is(err, m.err) {
				status, code = m.status, m.code
				break
			}
		}
		w.WriteHeader(status)
		json.NewEncoder(w).Encode(admin.APIError{Error: err.Error(), Code: code})
		return
	}
	json.NewEncoder(w).Encode(v)
}
