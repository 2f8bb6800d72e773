package s3api

import (
	"net/http"
	"strings"
)

// plainParam reports whether a query parameter is an argument of an
// implemented operation (or of SigV4 presigning) rather than a subresource.
// Any other parameter names a subresource or feature Redoubt does not
// implement, and the request is refused with NotImplemented instead of
// being served as if the parameter were absent.
func plainParam(name string) bool {
	switch name {
	case "versionId", "partNumber", "uploadId",
		"prefix", "delimiter", "max-keys", "marker", "continuation-token",
		"start-after", "fetch-owner", "encoding-type", "list-type",
		"key-marker", "version-id-marker", "upload-id-marker", "max-uploads",
		"max-parts", "part-number-marker",
		"response-content-type", "response-content-language", "response-expires",
		"response-cache-control", "response-content-disposition", "response-content-encoding",
		"x-id", "max-buckets":
		return true
	}
	l := strings.ToLower(name)
	return strings.HasPrefix(l, "x-amz-")
}

// subresources implemented somewhere in the router.
func implementedSub(name string) bool {
	switch name {
	case "versioning", "location", "versions", "uploads", "delete":
		return true
	}
	return false
}

func (s *Server) route(r *http.Request, rc *reqCtx) (handler, error) {
	q := rc.query
	for name := range q {
		if !plainParam(name) && !implementedSub(name) {
			return nil, errNotImpl
		}
	}
	if err := unsupportedHeaders(r); err != nil {
		return nil, err
	}
	has := func(k string) bool { _, ok := q[k]; return ok }
	only := func(allowed ...string) bool {
		for name := range q {
			if !implementedSub(name) {
				continue
			}
			ok := false
			for _, a := range allowed {
				ok = ok || a == name
			}
			if !ok {
				return false
			}
		}
		return true
	}
	switch {
	case rc.bucket == "":
		if r.Method == http.MethodGet && only() {
			return s.listBuckets, nil
		}
		if r.Method == http.MethodGet || r.Method == http.MethodHead {
			return nil, errNotImpl
		}
		return nil, errMethod
	case rc.key == "":
		switch r.Method {
		case http.MethodPut:
			switch {
			case has("versioning") && only("versioning"):
				return s.putBucketVersioning, nil
			case only():
				return s.createBucket, nil
			}
		case http.MethodGet:
			switch {
			case has("location") && only("location"):
				return s.getBucketLocation, nil
			case has("versioning") && only("versioning"):
				return s.getBucketVersioning, nil
			case has("versions") && only("versions"):
				return s.listObjectVersions, nil
			case has("uploads") && only("uploads"):
				return s.listMultipartUploads, nil
			case only() && q.Get("list-type") == "2":
				return s.listObjectsV2, nil
			case only() && !has("list-type"):
				return s.listObjectsV1, nil
			}
		case http.MethodHead:
			if only() {
				return s.headBucket, nil
			}
		case http.MethodDelete:
			if only() {
				return s.deleteBucket, nil
			}
		case http.MethodPost:
			if has("delete") && only("delete") {
				return s.deleteObjects, nil
			}
		default:
			return nil, errNotImpl
		}
	default:
		switch r.Method {
		case http.MethodPut:
			switch {
			case !only():
			case has("uploadId") || has("partNumber"):
				if r.Header.Get("X-Amz-Copy-Source") != "" {
					return s.uploadPartCopy, nil
				}
				return s.uploadPart, nil
			case r.Header.Get("X-Amz-Copy-Source") != "":
				return s.copyObject, nil
			default:
				return s.putObject, nil
			}
		case http.MethodGet:
			switch {
			case !only():
			case has("uploadId"):
				return s.listParts, nil
			default:
				return s.getObject, nil
			}
		case http.MethodHead:
			if only() {
				return s.getObject, nil
			}
		case http.MethodDelete:
			switch {
			case !only():
			case has("uploadId"):
				return s.abortMultipartUpload, nil
			default:
				return s.deleteObject, nil
			}
		case http.MethodPost:
			switch {
			case has("uploads") && only("uploads"):
				return s.createMultipartUpload, nil
			case has("uploadId") && only():
				return s.completeMultipartUpload, nil
			}
		default:
			return nil, errNotImpl
		}
	}
	return nil, errNotImpl
}

// unsupportedHeaders refuses headers that ask for behaviour Redoubt does
// not provide, so that no client believes its data got a protection or a
// visibility it did not get.
func unsupportedHeaders(r *http.Request) error {
	h := r.Header
	for name := range h {
		l := strings.ToLower(name)
		switch {
		case strings.HasPrefix(l, "x-amz-server-side-encryption"),
			strings.HasPrefix(l, "x-amz-copy-source-server-side-encryption"),
			strings.HasPrefix(l, "x-amz-object-lock-"),
			strings.HasPrefix(l, "x-amz-grant-"),
			l == "x-amz-tagging", l == "x-amz-website-redirect-location",
			l == "x-amz-bucket-object-lock-enabled" && !strings.EqualFold(h.Get(name), "false"),
			l == "x-amz-request-payer", l == "x-amz-write-offset-bytes",
			// Conditions and checks Redoubt does not evaluate: ignoring
			// them would delete or complete what the client meant to
			// protect.
			l == "x-amz-if-match-size", l == "x-amz-if-match-last-modified-time",
			l == "x-amz-if-match-initiated-time", l == "x-amz-mp-object-size",
			strings.HasPrefix(l, "x-amz-checksum-") && newerChecksum(l[len("x-amz-checksum-"):]):
			return errNotImpl
		case l == "x-amz-acl":
			switch h.Get(name) {
			case "private", "bucket-owner-full-control":
			default:
				return errNotImpl
			}
		case l == "x-amz-storage-class":
			if v := h.Get(name); v != "STANDARD" {
				return apiErr("InvalidStorageClass", 400, "The storage class you specified is not valid.")
			}
		case l == "x-amz-tagging-directive":
			if !strings.EqualFold(h.Get(name), "COPY") {
				return errNotImpl
			}
		}
	}
	return nil
}
