package s3api

import (
	"bytes"
	"encoding/xml"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/redoubt-io/redoubt/internal/objects"
)

const s3NS = "http://s3.amazonaws.com/doc/2006-03-01/"

func utfValid(s string) bool { return utf8.ValidString(s) }

// writeXML renders a list or result body. Only these bodies use
// encoding/xml; object data paths write headers only.
func (s *Server) writeXML(w http.ResponseWriter, status int, v any) error {
	var b bytes.Buffer
	b.WriteString(xml.Header)
	if err := xml.NewEncoder(&b).Encode(v); err != nil {
		return err
	}
	h := w.Header()
	h.Set("Content-Type", "application/xml")
	h.Set("Content-Length", strconv.Itoa(b.Len()))
	w.WriteHeader(status)
	_, _ = w.Write(b.Bytes())
	return nil
}

type ownerXML struct {
	ID          string `xml:"ID"`
	DisplayName string `xml:"DisplayName"`
}

func owner(rc *reqCtx) ownerXML {
	k := rc.principal.AccessKey()
	return ownerXML{ID: k, DisplayName: k}
}

type listBucketsXML struct {
	XMLName           xml.Name    `xml:"ListAllMyBucketsResult"`
	NS                string      `xml:"xmlns,attr"`
	Owner             ownerXML    `xml:"Owner"`
	Buckets           []bucketXML `xml:"Buckets>Bucket"`
	ContinuationToken string      `xml:"ContinuationToken,omitempty"`
	Prefix            string      `xml:"Prefix,omitempty"`
}

// maxBuckets bounds a ListBuckets page, as in S3.
const maxBuckets = 10000

type bucketXML struct {
	Name         string `xml:"Name"`
	CreationDate string `xml:"CreationDate"`
	BucketRegion string `xml:"BucketRegion,omitempty"`
}

func (s *Server) listBuckets(w http.ResponseWriter, r *http.Request, rc *reqCtx) error {
	bs, err := s.api.ListBuckets(r.Context())
	if err != nil {
		return err
	}
	q := rc.query
	limit := maxBuckets
	if v, ok := q["max-buckets"]; ok {
		n, err := strconv.Atoi(v[0])
		if err != nil || n < 1 || n > maxBuckets {
			return invalidArg("max-buckets must be an integer between 1 and 10000.")
		}
		limit = n
	}
	after := ""
	if t := q.Get("continuation-token"); t != "" {
		if after, err = decodeToken(t); err != nil {
			return err
		}
	}
	prefix := q.Get("prefix")
	res := listBucketsXML{NS: s3NS, Owner: owner(rc), Buckets: make([]bucketXML, 0, min(len(bs), limit)), Prefix: prefix}
	slices.SortFunc(bs, func(a, b objects.BucketInfo) int { return strings.Compare(a.Name, b.Name) })
	for _, b := range bs {
		if !strings.HasPrefix(b.Name, prefix) || b.Name <= after {
			continue
		}
		if len(res.Buckets) == limit {
			res.ContinuationToken = encodeToken(res.Buckets[len(res.Buckets)-1].Name)
			break
		}
		res.Buckets = append(res.Buckets, bucketXML{Name: b.Name, CreationDate: isoTime(b.Created), BucketRegion: s.cfg.Region})
	}
	return s.writeXML(w, http.StatusOK, res)
}

// validLocation reports whether c could name a region: lower-case
// letters, digits and dashes.
func validLocation(c string) bool {
	if len(c) == 0 || len(c) > 64 {
		return false
	}
	for i := 0; i < len(c); i++ {
		ch := c[i]
		if !(ch >= 'a' && ch <= 'z' || ch >= '0' && ch <= '9' || ch == '-') {
			return false
		}
	}
	return true
}

// objectOwnership checks CreateBucket's x-amz-object-ownership. Redoubt
// has no ACLs, which is S3's BucketOwnerEnforced; the settings that keep
// ACLs in force are not implemented.
func objectOwnership(h http.Header) error {
	switch v := h.Get("X-Amz-Object-Ownership"); v {
	case "", "BucketOwnerEnforced":
		return nil
	case "BucketOwnerPreferred", "ObjectWriter":
		return errNotImpl
	default:
		return invalidArg("Invalid x-amz-object-ownership header: %s", v)
	}
}

func (s *Server) createBucket(w http.ResponseWriter, r *http.Request, rc *reqCtx) error {
	if err := objectOwnership(r.Header); err != nil {
		return err
	}
	b, err := s.readXMLBody(r, rc)
	if err != nil {
		return err
	}
	loc, err := parseCreateBucket(b)
	if err != nil {
		return err
	}
	switch {
	case loc == "" || loc == s.cfg.Region:
	case !validLocation(loc):
		return apiErr("InvalidLocationConstraint", 400, "The specified location-constraint is not valid")
	default:
		return apiErrf("IllegalLocationConstraintException", 400,
			"The %s location constraint is incompatible for the region specific endpoint this request was sent to.", loc)
	}
	var cfg objects.BucketConfig
	if v, ok := r.Header[objects.ConsistencyHeader]; ok {
		if len(v) != 1 {
			return invalidArg("%s must be given once", objects.ConsistencyHeader)
		}
		if cfg.Consistency, err = objects.ParseConsistency(v[0]); err != nil {
			return invalidArg("%s must be strong or available, not %q", objects.ConsistencyHeader, v[0])
		}
	}
	if v, ok := r.Header[objects.WriteCopiesHeader]; ok {
		n, err := strconv.Atoi(strings.TrimSpace(v[0]))
		if len(v) != 1 || err != nil || n < 1 || n > objects.MaxWriteCopies {
			return invalidArg("%s must be one number from 1 to %d", objects.WriteCopiesHeader, objects.MaxWriteCopies)
		}
		cfg.WriteCopies = n
	}
	if v, ok := r.Header[objects.ConflictRetentionHeader]; ok {
		d, err := time.ParseDuration(strings.TrimSpace(v[0]))
		if len(v) != 1 || err != nil || d <= 0 {
			return invalidArg("%s must be one duration, such as 72h", objects.ConflictRetentionHeader)
		}
		cfg.ConflictRetention = d
	}
	if v, ok := r.Header[objects.ReplicateHeader]; ok {
		b, err := strconv.ParseBool(strings.TrimSpace(v[0]))
		if len(v) != 1 || err != nil {
			return invalidArg("%s must be true or false", objects.ReplicateHeader)
		}
		cfg.Replicate = b
	}
	if err := s.api.CreateBucketWith(r.Context(), rc.bucket, cfg); err != nil {
		return err
	}
	w.Header().Set("Location", "/"+rc.bucket)
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(http.StatusOK)
	return nil
}

func (s *Server) headBucket(w http.ResponseWriter, r *http.Request, rc *reqCtx) error {
	bi, err := s.api.HeadBucket(r.Context(), rc.bucket)
	if err != nil {
		return err
	}
	w.Header().Set("X-Amz-Bucket-Region", s.cfg.Region)
	w.Header().Set(objects.ConsistencyHeader, bi.Consistency.String())
	if bi.Consistency == objects.Available {
		w.Header().Set(objects.WriteCopiesHeader, strconv.Itoa(bi.WriteCopiesOrDefault()))
		if bi.ConflictRetention > 0 {
			w.Header().Set(objects.ConflictRetentionHeader, bi.ConflictRetention.String())
		}
		if bi.Replicate {
			w.Header().Set(objects.ReplicateHeader, "true")
		}
	}
	w.WriteHeader(http.StatusOK)
	return nil
}

func (s *Server) deleteBucket(w http.ResponseWriter, r *http.Request, rc *reqCtx) error {
	if err := s.api.DeleteBucket(r.Context(), rc.bucket); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

type locationXML struct {
	XMLName xml.Name `xml:"LocationConstraint"`
	NS      string   `xml:"xmlns,attr"`
	Region  string   `xml:",chardata"`
}

func (s *Server) getBucketLocation(w http.ResponseWriter, r *http.Request, rc *reqCtx) error {
	if _, err := s.api.HeadBucket(r.Context(), rc.bucket); err != nil {
		return err
	}
	region := s.cfg.Region
	if region == "us-east-1" {
		region = "" // S3 answers us-east-1 with an empty constraint; clients expect it
	}
	return s.writeXML(w, http.StatusOK, locationXML{NS: s3NS, Region: region})
}

type versioningOutXML struct {
	XMLName xml.Name `xml:"VersioningConfiguration"`
	NS      string   `xml:"xmlns,attr"`
	Status  string   `xml:"Status,omitempty"`
}

func (s *Server) getBucketVersioning(w http.ResponseWriter, r *http.Request, rc *reqCtx) error {
	bi, err := s.api.HeadBucket(r.Context(), rc.bucket)
	if err != nil {
		return err
	}
	res := versioningOutXML{NS: s3NS}
	switch bi.Versioning {
	case objects.Enabled:
		res.Status = "Enabled"
	case objects.Suspended:
		res.Status = "Suspended"
	}
	return s.writeXML(w, http.StatusOK, res)
}

func (s *Server) putBucketVersioning(w http.ResponseWriter, r *http.Request, rc *reqCtx) error {
	b, err := s.readXMLBody(r, rc)
	if err != nil {
		return err
	}
	v, err := parseVersioning(b)
	if err != nil {
		return err
	}
	if err := s.api.SetVersioning(r.Context(), rc.bucket, v); err != nil {
		return err
	}
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(http.StatusOK)
	return nil
}
