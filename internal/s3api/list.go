package s3api

import (
	"encoding/base64"
	"encoding/xml"
	"net/http"
	"net/url"
	"strconv"

	"github.com/redoubt-io/redoubt/internal/objects"
)

const maxListKeys = 1000

// listLimit parses a max-keys style argument: default and cap 1000.
func listLimit(q url.Values, name string) (int, error) {
	v, ok := q[name]
	if !ok || len(v) == 0 || v[0] == "" {
		return maxListKeys, nil
	}
	n, err := strconv.Atoi(v[0])
	if err != nil || n < 0 {
		return 0, invalidArg("Provided %s not an integer or within integer range", name)
	}
	return min(n, maxListKeys), nil
}

// encoder applies encoding-type=url to names in list results.
type encoder bool

func listEncoder(q url.Values) (encoder, error) {
	switch q.Get("encoding-type") {
	case "":
		return false, nil
	case "url":
		return true, nil
	}
	return false, invalidArg("Invalid Encoding Method specified in Request")
}

func (e encoder) enc(s string) string {
	if !e {
		return s
	}
	return url.QueryEscape(s)
}

func (e encoder) typ() string {
	if e {
		return "url"
	}
	return ""
}

type objectXML struct {
	Key               string    `xml:"Key"`
	LastModified      string    `xml:"LastModified"`
	ETag              string    `xml:"ETag"`
	Size              int64     `xml:"Size"`
	StorageClass      string    `xml:"StorageClass"`
	Owner             *ownerXML `xml:"Owner,omitempty"`
	ChecksumAlgorithm []string  `xml:"ChecksumAlgorithm,omitempty"`
	ChecksumType      string    `xml:"ChecksumType,omitempty"`
}

type prefixXML struct {
	Prefix string `xml:"Prefix"`
}

type listV2XML struct {
	XMLName               xml.Name    `xml:"ListBucketResult"`
	NS                    string      `xml:"xmlns,attr"`
	Name                  string      `xml:"Name"`
	Prefix                string      `xml:"Prefix"`
	Delimiter             string      `xml:"Delimiter,omitempty"`
	MaxKeys               int         `xml:"MaxKeys"`
	EncodingType          string      `xml:"EncodingType,omitempty"`
	KeyCount              int         `xml:"KeyCount"`
	IsTruncated           bool        `xml:"IsTruncated"`
	ContinuationToken     string      `xml:"ContinuationToken,omitempty"`
	NextContinuationToken string      `xml:"NextContinuationToken,omitempty"`
	StartAfter            string      `xml:"StartAfter,omitempty"`
	Contents              []objectXML `xml:"Contents"`
	CommonPrefixes        []prefixXML `xml:"CommonPrefixes"`
}

type listV1XML struct {
	XMLName        xml.Name    `xml:"ListBucketResult"`
	NS             string      `xml:"xmlns,attr"`
	Name           string      `xml:"Name"`
	Prefix         string      `xml:"Prefix"`
	Marker         string      `xml:"Marker"`
	NextMarker     string      `xml:"NextMarker,omitempty"`
	Delimiter      string      `xml:"Delimiter,omitempty"`
	MaxKeys        int         `xml:"MaxKeys"`
	EncodingType   string      `xml:"EncodingType,omitempty"`
	IsTruncated    bool        `xml:"IsTruncated"`
	Contents       []objectXML `xml:"Contents"`
	CommonPrefixes []prefixXML `xml:"CommonPrefixes"`
}

func checksumAlgorithms(c objects.Checksums) []string {
	var out []string
	if c.CRC32 != "" {
		out = append(out, "CRC32")
	}
	if c.CRC32C != "" {
		out = append(out, "CRC32C")
	}
	if c.CRC64NVME != "" {
		out = append(out, "CRC64NVME")
	}
	if c.SHA1 != "" {
		out = append(out, "SHA1")
	}
	if c.SHA256 != "" {
		out = append(out, "SHA256")
	}
	return out
}

func toObjectXML(o objects.ObjectInfo, e encoder, own *ownerXML) objectXML {
	return objectXML{
		Key: e.enc(o.Key), LastModified: isoTime(o.LastModified), ETag: o.ETag, Size: o.Size,
		StorageClass: "STANDARD", Owner: own,
		ChecksumAlgorithm: checksumAlgorithms(o.Checksums), ChecksumType: listChecksumType(o.Checksums),
	}
}

// listChecksumType is the ChecksumType of a list entry: the stored type
// of a multipart object, FULL_OBJECT for one stored by a single PUT (its
// checksum covers the whole object), none without a checksum.
func listChecksumType(c objects.Checksums) string {
	return wholeObject(c).Type
}

func prefixes(ps []string, e encoder) []prefixXML {
	out := make([]prefixXML, len(ps))
	for i, p := range ps {
		out[i] = prefixXML{Prefix: e.enc(p)}
	}
	return out
}

// Continuation tokens are opaque to clients: base64url of the last key or
// prefix of the previous page, behind a version byte.
func encodeToken(marker string) string {
	return base64.RawURLEncoding.EncodeToString(append([]byte{1}, marker...))
}

func decodeToken(t string) (string, error) {
	b, err := base64.RawURLEncoding.DecodeString(t)
	if err != nil || len(b) == 0 || b[0] != 1 {
		return "", invalidArg("The continuation token provided is incorrect")
	}
	return string(b[1:]), nil
}

func (s *Server) listObjectsV2(w http.ResponseWriter, r *http.Request, rc *reqCtx) error {
	q := rc.query
	e, err := listEncoder(q)
	if err != nil {
		return err
	}
	maxKeys, err := listLimit(q, "max-keys")
	if err != nil {
		return err
	}
	opts := objects.ListOptions{Prefix: q.Get("prefix"), Delimiter: q.Get("delimiter"), MaxKeys: maxKeys, Marker: q.Get("start-after")}
	token, hasToken := q["continuation-token"]
	if hasToken {
		m, err := decodeToken(token[0])
		if err != nil {
			return err
		}
		if m > opts.Marker {
			opts.Marker = m
		}
	}
	res := listV2XML{
		NS: s3NS, Name: rc.bucket, Prefix: e.enc(opts.Prefix), Delimiter: e.enc(opts.Delimiter),
		MaxKeys: maxKeys, EncodingType: e.typ(), StartAfter: e.enc(q.Get("start-after")),
	}
	if hasToken {
		res.ContinuationToken = token[0]
	}
	var own *ownerXML
	if q.Get("fetch-owner") == "true" {
		o := owner(rc)
		own = &o
	}
	if maxKeys == 0 {
		return s.emptyPage(w, r, rc, res)
	}
	lr, err := s.api.ListObjects(r.Context(), rc.bucket, opts)
	if err != nil {
		return err
	}
	res.Contents = make([]objectXML, len(lr.Objects))
	for i, o := range lr.Objects {
		res.Contents[i] = toObjectXML(o, e, own)
	}
	res.CommonPrefixes = prefixes(lr.CommonPrefixes, e)
	res.KeyCount = len(lr.Objects) + len(lr.CommonPrefixes)
	res.IsTruncated = lr.IsTruncated
	if lr.IsTruncated {
		res.NextContinuationToken = encodeToken(lr.NextMarker)
	}
	return s.writeXML(w, http.StatusOK, res)
}

func (s *Server) listObjectsV1(w http.ResponseWriter, r *http.Request, rc *reqCtx) error {
	q := rc.query
	e, err := listEncoder(q)
	if err != nil {
		return err
	}
	maxKeys, err := listLimit(q, "max-keys")
	if err != nil {
		return err
	}
	opts := objects.ListOptions{Prefix: q.Get("prefix"), Delimiter: q.Get("delimiter"), MaxKeys: maxKeys, Marker: q.Get("marker")}
	res := listV1XML{
		NS: s3NS, Name: rc.bucket, Prefix: e.enc(opts.Prefix), Delimiter: e.enc(opts.Delimiter),
		Marker: e.enc(opts.Marker), MaxKeys: maxKeys, EncodingType: e.typ(),
	}
	if maxKeys == 0 {
		return s.emptyPage(w, r, rc, res)
	}
	lr, err := s.api.ListObjects(r.Context(), rc.bucket, opts)
	if err != nil {
		return err
	}
	o := owner(rc)
	res.Contents = make([]objectXML, len(lr.Objects))
	for i, obj := range lr.Objects {
		res.Contents[i] = toObjectXML(obj, e, &o)
	}
	res.CommonPrefixes = prefixes(lr.CommonPrefixes, e)
	res.IsTruncated = lr.IsTruncated
	if lr.IsTruncated {
		// S3 documents NextMarker only with a delimiter (without one the
		// last key is the marker), but clients that page on NextMarker
		// alone exist; sending it always costs nothing.
		res.NextMarker = e.enc(lr.NextMarker)
	}
	return s.writeXML(w, http.StatusOK, res)
}

type versionXML struct {
	XMLName      xml.Name // Version or DeleteMarker
	Key          string   `xml:"Key"`
	VersionID    string   `xml:"VersionId"`
	IsLatest     bool     `xml:"IsLatest"`
	LastModified string   `xml:"LastModified"`
	ETag         string   `xml:"ETag,omitempty"`
	Size         *int64   `xml:"Size,omitempty"`
	StorageClass string   `xml:"StorageClass,omitempty"`
	Owner        ownerXML `xml:"Owner"`
	// ChecksumAlgorithm and ChecksumType describe a version's stored
	// checksum, as in ListObjectsV2 entries; delete markers have none.
	ChecksumAlgorithm []string `xml:"ChecksumAlgorithm,omitempty"`
	ChecksumType      string   `xml:"ChecksumType,omitempty"`
}

type listVersionsXML struct {
	XMLName             xml.Name     `xml:"ListVersionsResult"`
	NS                  string       `xml:"xmlns,attr"`
	Name                string       `xml:"Name"`
	Prefix              string       `xml:"Prefix"`
	KeyMarker           string       `xml:"KeyMarker"`
	VersionIDMarker     string       `xml:"VersionIdMarker"`
	NextKeyMarker       string       `xml:"NextKeyMarker,omitempty"`
	NextVersionIDMarker string       `xml:"NextVersionIdMarker,omitempty"`
	Delimiter           string       `xml:"Delimiter,omitempty"`
	MaxKeys             int          `xml:"MaxKeys"`
	EncodingType        string       `xml:"EncodingType,omitempty"`
	IsTruncated         bool         `xml:"IsTruncated"`
	Versions            []versionXML `xml:"Version"`
	CommonPrefixes      []prefixXML  `xml:"CommonPrefixes"`
}

func (s *Server) listObjectVersions(w http.ResponseWriter, r *http.Request, rc *reqCtx) error {
	q := rc.query
	e, err := listEncoder(q)
	if err != nil {
		return err
	}
	maxKeys, err := listLimit(q, "max-keys")
	if err != nil {
		return err
	}
	opts := objects.ListVersionsOptions{
		Prefix: q.Get("prefix"), Delimiter: q.Get("delimiter"),
		KeyMarker: q.Get("key-marker"), VersionIDMarker: q.Get("version-id-marker"), MaxKeys: maxKeys,
	}
	if opts.VersionIDMarker != "" && opts.KeyMarker == "" {
		return invalidArg("A version-id marker cannot be specified without a key marker.")
	}
	res := listVersionsXML{
		NS: s3NS, Name: rc.bucket, Prefix: e.enc(opts.Prefix), Delimiter: e.enc(opts.Delimiter),
		KeyMarker: e.enc(opts.KeyMarker), VersionIDMarker: opts.VersionIDMarker, MaxKeys: maxKeys, EncodingType: e.typ(),
	}
	if maxKeys == 0 {
		return s.emptyPage(w, r, rc, res)
	}
	lr, err := s.api.ListObjectVersions(r.Context(), rc.bucket, opts)
	if err != nil {
		return err
	}
	own := owner(rc)
	res.Versions = make([]versionXML, len(lr.Versions))
	for i, v := range lr.Versions {
		vid := v.VersionID
		if vid == "" {
			vid = "null"
		}
		x := versionXML{Key: e.enc(v.Key), VersionID: vid, IsLatest: v.IsLatest, LastModified: isoTime(v.LastModified), Owner: own}
		if v.DeleteMarker {
			x.XMLName.Local = "DeleteMarker"
		} else {
			x.XMLName.Local = "Version"
			x.ETag, x.StorageClass = v.ETag, "STANDARD"
			x.ChecksumAlgorithm, x.ChecksumType = checksumAlgorithms(v.Checksums), listChecksumType(v.Checksums)
			size := v.Size
			x.Size = &size
		}
		res.Versions[i] = x
	}
	res.CommonPrefixes = prefixes(lr.CommonPrefixes, e)
	res.IsTruncated = lr.IsTruncated
	if lr.IsTruncated {
		res.NextKeyMarker = e.enc(lr.NextKeyMarker)
		res.NextVersionIDMarker = lr.NextVersionIDMarker
	}
	return s.writeXML(w, http.StatusOK, res)
}

// emptyPage answers a listing that asked for no entries (a page size of 0):
// the bucket must exist, and the answer is the page's header alone.
func (s *Server) emptyPage(w http.ResponseWriter, r *http.Request, rc *reqCtx, page any) error {
	if _, err := s.api.HeadBucket(r.Context(), rc.bucket); err != nil {
		return err
	}
	return s.writeXML(w, http.StatusOK, page)
}
