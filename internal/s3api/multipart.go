package s3api

import (
	"encoding/xml"
	"net/http"
	"strconv"
	"strings"

	"github.com/redoubt-io/redoubt/internal/checksum"
	"github.com/redoubt-io/redoubt/internal/objects"
)

type initiateXML struct {
	XMLName  xml.Name `xml:"InitiateMultipartUploadResult"`
	NS       string   `xml:"xmlns,attr"`
	Bucket   string   `xml:"Bucket"`
	Key      string   `xml:"Key"`
	UploadID string   `xml:"UploadId"`
}

func (s *Server) createMultipartUpload(w http.ResponseWriter, r *http.Request, rc *reqCtx) error {
	opts, err := s.putOptions(r, rc)
	if err != nil {
		return err
	}
	if opts.IfMatch != "" || opts.IfNoneMatch != "" {
		return apiErr("NotImplemented", 501, "Conditional headers are accepted on CompleteMultipartUpload, not here.")
	}
	// Values cannot be known before the parts are sent.
	opts.ContentMD5, opts.Trailer = nil, nil
	opts.Checksums = objects.Checksums{}
	t := strings.ToUpper(r.Header.Get("X-Amz-Checksum-Type"))
	if err := checksumTypeFits(t, opts.ChecksumAlgorithm); err != nil {
		return err
	}
	opts.Checksums.Type = t
	id, err := s.api.CreateMultipartUpload(r.Context(), rc.bucket, rc.key, opts)
	if err != nil {
		return err
	}
	if opts.ChecksumAlgorithm != "" {
		w.Header().Set("X-Amz-Checksum-Algorithm", opts.ChecksumAlgorithm)
		if opts.Checksums.Type != "" {
			w.Header().Set("X-Amz-Checksum-Type", opts.Checksums.Type)
		}
	}
	return s.writeXML(w, http.StatusOK, initiateXML{NS: s3NS, Bucket: rc.bucket, Key: rc.key, UploadID: id})
}

// checksumTypeFits checks CreateMultipartUpload's x-amz-checksum-type
// against its algorithm, as S3 does: a type needs an algorithm, a
// whole-object checksum of a multipart upload can only be a CRC (CRCs
// combine across parts, hashes do not), and CRC64NVME exists only as a
// whole-object checksum.
func checksumTypeFits(typ, algorithm string) error {
	switch typ {
	case "":
		return nil
	case "COMPOSITE", "FULL_OBJECT":
	default:
		return invalidReq("Value for x-amz-checksum-type header is invalid.")
	}
	if algorithm == "" {
		return invalidReq("The x-amz-checksum-type header can only be used with the x-amz-checksum-algorithm header.")
	}
	a := checksum.Algorithm(algorithm)
	crc := a == checksum.CRC32 || a == checksum.CRC32C || a == checksum.CRC64NVME
	if (typ == "FULL_OBJECT" && !crc) || (typ == "COMPOSITE" && a == checksum.CRC64NVME) {
		return invalidReq("The %s checksum type cannot be used with the %s checksum algorithm.", strings.ToLower(typ), strings.ToLower(algorithm))
	}
	return nil
}

func (s *Server) uploadArgs(rc *reqCtx) (uploadID string, part int, err error) {
	uploadID = rc.query.Get("uploadId")
	if uploadID == "" {
		return "", 0, invalidArg("This operation requires an uploadId.")
	}
	part, err = partNumber(rc.query.Get("partNumber"))
	return uploadID, part, err
}

func (s *Server) uploadPart(w http.ResponseWriter, r *http.Request, rc *reqCtx) error {
	uploadID, part, err := s.uploadArgs(rc)
	if err != nil {
		return err
	}
	size, err := s.payloadSize(r)
	if err != nil {
		return err
	}
	md5sum, err := contentMD5(r.Header)
	if err != nil {
		return err
	}
	cr, err := parseChecksumHeaders(r.Header)
	if err != nil {
		return err
	}
	body, err := s.sizedBody(r, rc, size)
	if err != nil {
		return err
	}
	pi, err := s.api.UploadPart(r.Context(), rc.bucket, rc.key, uploadID, part, body, size, objects.PartOptions{
		ContentMD5: md5sum, Checksums: cr.values, ChecksumAlgorithm: cr.algorithm,
		Trailer: trailerFunc(cr, rc.principal),
	})
	if err != nil {
		return checksumError(s.bodyError(rc, err), cr.algorithm)
	}
	h := w.Header()
	h.Set("ETag", pi.ETag)
	setChecksums(h, pi.Checksums)
	h.Set("Content-Length", "0")
	w.WriteHeader(http.StatusOK)
	return nil
}

type copyPartXML struct {
	XMLName      xml.Name `xml:"CopyPartResult"`
	NS           string   `xml:"xmlns,attr"`
	ETag         string   `xml:"ETag"`
	LastModified string   `xml:"LastModified"`
	checksumsXML
}

// copySourceRange parses x-amz-copy-source-range: only "bytes=a-b".
func copySourceRange(v string) (objects.Range, error) {
	rg, err := parseRange(v)
	if err != nil || rg.Suffix > 0 || rg.End < 0 {
		return objects.Range{}, invalidArg("The x-amz-copy-source-range value must be of the form bytes=first-last where first and last are the zero-based offsets of the first and last bytes to copy")
	}
	return rg, nil
}

func (s *Server) uploadPartCopy(w http.ResponseWriter, r *http.Request, rc *reqCtx) error {
	uploadID, part, err := s.uploadArgs(rc)
	if err != nil {
		return err
	}
	src, err := copySource(r.Header.Get("X-Amz-Copy-Source"))
	if err != nil {
		// S3 names a missing bucket before a malformed copy source.
		if _, berr := s.api.HeadBucket(r.Context(), rc.bucket); berr != nil {
			return berr
		}
		return err
	}
	src.Cond = preconditions(r.Header, "X-Amz-Copy-Source-")
	if v := r.Header.Get("X-Amz-Copy-Source-Range"); v != "" {
		if src.Range, err = copySourceRange(v); err != nil {
			return err
		}
	}
	pi, err := s.api.UploadPartCopy(r.Context(), src, rc.bucket, rc.key, uploadID, part)
	if err != nil {
		return err
	}
	if src.VersionID != "" {
		w.Header().Set("X-Amz-Copy-Source-Version-Id", src.VersionID)
	}
	return s.writeXML(w, http.StatusOK, copyPartXML{
		NS: s3NS, ETag: pi.ETag, LastModified: isoTime(pi.LastModified), checksumsXML: toChecksumsXML(pi.Checksums),
	})
}

type completeResultXML struct {
	XMLName  xml.Name `xml:"CompleteMultipartUploadResult"`
	NS       string   `xml:"xmlns,attr"`
	Location string   `xml:"Location"`
	Bucket   string   `xml:"Bucket"`
	Key      string   `xml:"Key"`
	ETag     string   `xml:"ETag"`
	checksumsXML
}

func (s *Server) completeMultipartUpload(w http.ResponseWriter, r *http.Request, rc *reqCtx) error {
	uploadID := rc.query.Get("uploadId")
	if uploadID == "" {
		return invalidArg("This operation requires an uploadId.")
	}
	b, err := s.readXMLBody(r, rc)
	if err != nil {
		return err
	}
	parts, err := parseComplete(b)
	if err != nil {
		return err
	}
	inm := r.Header.Get("If-None-Match")
	if inm != "" && inm != "*" {
		return apiErr("NotImplemented", 501, "If-None-Match on writes supports only \"*\".")
	}
	co := objects.CompleteOptions{IfMatch: r.Header.Get("If-Match"), IfNoneMatch: inm}
	// The whole-object checksum and its type; the object layer checks
	// their syntax (a composite value carries a "-N" suffix).
	co.Checksums.Type = strings.ToUpper(r.Header.Get("X-Amz-Checksum-Type"))
	if t := co.Checksums.Type; t != "" && t != "COMPOSITE" && t != "FULL_OBJECT" {
		return invalidReq("Value for x-amz-checksum-type header is invalid.")
	}
	for _, a := range checksum.All {
		*co.Checksums.Field(a) = r.Header.Get(a.Header())
	}
	info, err := s.api.CompleteMultipartUpload(r.Context(), rc.bucket, rc.key, uploadID, parts, co)
	if err != nil {
		return err
	}
	setWriteVersion(w.Header(), info.VersionID)
	setCopies(w.Header(), info.Copies)
	loc := "/" + rc.bucket + "/" + rc.key
	if r.Host != "" {
		scheme := "http"
		if r.TLS != nil {
			scheme = "https"
		}
		loc = scheme + "://" + r.Host + r.URL.EscapedPath()
	}
	return s.writeXML(w, http.StatusOK, completeResultXML{
		NS: s3NS, Location: loc, Bucket: rc.bucket, Key: rc.key, ETag: info.ETag, checksumsXML: toChecksumsXML(info.Checksums),
	})
}

func (s *Server) abortMultipartUpload(w http.ResponseWriter, r *http.Request, rc *reqCtx) error {
	uploadID := rc.query.Get("uploadId")
	if uploadID == "" {
		return invalidArg("This operation requires an uploadId.")
	}
	if err := s.api.AbortMultipartUpload(r.Context(), rc.bucket, rc.key, uploadID); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

type partXML struct {
	PartNumber   int    `xml:"PartNumber"`
	LastModified string `xml:"LastModified"`
	ETag         string `xml:"ETag"`
	Size         int64  `xml:"Size"`
	checksumsXML
}

type listPartsXML struct {
	XMLName              xml.Name  `xml:"ListPartsResult"`
	NS                   string    `xml:"xmlns,attr"`
	Bucket               string    `xml:"Bucket"`
	Key                  string    `xml:"Key"`
	UploadID             string    `xml:"UploadId"`
	Initiator            ownerXML  `xml:"Initiator"`
	Owner                ownerXML  `xml:"Owner"`
	StorageClass         string    `xml:"StorageClass"`
	PartNumberMarker     int       `xml:"PartNumberMarker"`
	NextPartNumberMarker int       `xml:"NextPartNumberMarker"`
	MaxParts             int       `xml:"MaxParts"`
	IsTruncated          bool      `xml:"IsTruncated"`
	ChecksumAlgorithm    string    `xml:"ChecksumAlgorithm,omitempty"`
	Parts                []partXML `xml:"Part"`
}

func (s *Server) listParts(w http.ResponseWriter, r *http.Request, rc *reqCtx) error {
	q := rc.query
	uploadID := q.Get("uploadId")
	if uploadID == "" {
		return invalidArg("This operation requires an uploadId.")
	}
	maxParts, err := listLimit(q, "max-parts")
	if err != nil {
		return err
	}
	marker := 0
	if v := q.Get("part-number-marker"); v != "" {
		if marker, err = strconv.Atoi(v); err != nil || marker < 0 {
			return invalidArg("Provided part-number-marker not an integer or within integer range")
		}
	}
	lp, err := s.api.ListParts(r.Context(), rc.bucket, rc.key, uploadID, objects.ListPartsOptions{PartNumberMarker: marker, MaxParts: maxParts})
	if err != nil {
		return err
	}
	own := owner(rc)
	res := listPartsXML{
		NS: s3NS, Bucket: rc.bucket, Key: rc.key, UploadID: uploadID, Initiator: own, Owner: own,
		StorageClass: "STANDARD", PartNumberMarker: marker, NextPartNumberMarker: lp.NextPartNumberMarker,
		MaxParts: maxParts, IsTruncated: lp.IsTruncated, ChecksumAlgorithm: lp.ChecksumAlgorithm,
		Parts: make([]partXML, len(lp.Parts)),
	}
	for i, p := range lp.Parts {
		res.Parts[i] = partXML{PartNumber: p.Number, LastModified: isoTime(p.LastModified), ETag: p.ETag, Size: p.Size, checksumsXML: toChecksumsXML(p.Checksums)}
	}
	return s.writeXML(w, http.StatusOK, res)
}

type uploadXML struct {
	Key          string   `xml:"Key"`
	UploadID     string   `xml:"UploadId"`
	Initiator    ownerXML `xml:"Initiator"`
	Owner        ownerXML `xml:"Owner"`
	StorageClass string   `xml:"StorageClass"`
	Initiated    string   `xml:"Initiated"`
}

type listUploadsXML struct {
	XMLName            xml.Name    `xml:"ListMultipartUploadsResult"`
	NS                 string      `xml:"xmlns,attr"`
	Bucket             string      `xml:"Bucket"`
	KeyMarker          string      `xml:"KeyMarker"`
	UploadIDMarker     string      `xml:"UploadIdMarker"`
	NextKeyMarker      string      `xml:"NextKeyMarker,omitempty"`
	NextUploadIDMarker string      `xml:"NextUploadIdMarker,omitempty"`
	Prefix             string      `xml:"Prefix"`
	Delimiter          string      `xml:"Delimiter,omitempty"`
	MaxUploads         int         `xml:"MaxUploads"`
	EncodingType       string      `xml:"EncodingType,omitempty"`
	IsTruncated        bool        `xml:"IsTruncated"`
	Uploads            []uploadXML `xml:"Upload"`
	CommonPrefixes     []prefixXML `xml:"CommonPrefixes"`
}

func (s *Server) listMultipartUploads(w http.ResponseWriter, r *http.Request, rc *reqCtx) error {
	q := rc.query
	e, err := listEncoder(q)
	if err != nil {
		return err
	}
	maxUploads, err := listLimit(q, "max-uploads")
	if err != nil {
		return err
	}
	opts := objects.ListUploadsOptions{
		Prefix: q.Get("prefix"), Delimiter: q.Get("delimiter"),
		KeyMarker: q.Get("key-marker"), UploadIDMarker: q.Get("upload-id-marker"), MaxUploads: maxUploads,
	}
	res := listUploadsXML{
		NS: s3NS, Bucket: rc.bucket, KeyMarker: e.enc(opts.KeyMarker), UploadIDMarker: opts.UploadIDMarker,
		Prefix: e.enc(opts.Prefix), Delimiter: e.enc(opts.Delimiter), MaxUploads: maxUploads, EncodingType: e.typ(),
	}
	if maxUploads == 0 {
		return s.emptyPage(w, r, rc, res)
	}
	lu, err := s.api.ListMultipartUploads(r.Context(), rc.bucket, opts)
	if err != nil {
		return err
	}
	own := owner(rc)
	res.Uploads = make([]uploadXML, len(lu.Uploads))
	for i, u := range lu.Uploads {
		res.Uploads[i] = uploadXML{Key: e.enc(u.Key), UploadID: u.UploadID, Initiator: own, Owner: own, StorageClass: "STANDARD", Initiated: isoTime(u.Initiated)}
	}
	res.CommonPrefixes = prefixes(lu.CommonPrefixes, e)
	res.IsTruncated = lu.IsTruncated
	if lu.IsTruncated {
		res.NextKeyMarker = e.enc(lu.NextKeyMarker)
		res.NextUploadIDMarker = lu.NextUploadIDMarker
	}
	return s.writeXML(w, http.StatusOK, res)
}
