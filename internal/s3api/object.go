package s3api

import (
	"crypto/md5"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/redoubt-io/redoubt/internal/checksum"
	"github.com/redoubt-io/redoubt/internal/objects"
)

func (s *Server) putObject(w http.ResponseWriter, r *http.Request, rc *reqCtx) error {
	size, err := s.payloadSize(r)
	if err != nil {
		return err
	}
	opts, err := s.putOptions(r, rc)
	if err != nil {
		return err
	}
	body, err := s.sizedBody(r, rc, size)
	if err != nil {
		return err
	}
	if opts.ChecksumAlgorithm == "" {
		// As S3 does since 2025, every new object gets a whole-object
		// CRC64NVME when the client asked for no checksum, so that a
		// later GET with checksum mode can be verified end to end.
		opts.ChecksumAlgorithm = string(checksum.CRC64NVME)
	}
	info, err := s.api.PutObject(r.Context(), rc.bucket, rc.key, body, size, opts)
	if err != nil {
		return checksumError(s.bodyError(rc, err), opts.ChecksumAlgorithm)
	}
	h := w.Header()
	h.Set("ETag", info.ETag)
	setWriteVersion(h, info.VersionID)
	setCopies(h, info.Copies)
	setChecksums(h, wholeObject(info.Checksums))
	// S3 names the stored size of the new object; clients read it as the
	// PutObject result's Size.
	h.Set("X-Amz-Object-Size", strconv.FormatInt(info.Size, 10))
	h.Set("Content-Length", "0")
	w.WriteHeader(http.StatusOK)
	return nil
}

// checksumError names the algorithm in a checksum mismatch, as S3 does
// ("The CRC32 you specified did not match the calculated checksum.").
func checksumError(err error, algorithm string) error {
	if algorithm != "" && errors.Is(err, objects.ErrChecksumMismatch) {
		return apiErr("BadDigest", 400, "The "+algorithm+" you specified did not match the calculated checksum.")
	}
	return err
}

// wholeObject returns c with its type set for an object stored by one
// PUT: its checksums cover the whole object.
func wholeObject(c objects.Checksums) objects.Checksums {
	if c.Type == "" && c != (objects.Checksums{}) {
		c.Type = "FULL_OBJECT"
	}
	return c
}

func setVersion(h http.Header, v string) {
	if v != "" {
		h.Set("X-Amz-Version-Id", v)
	}
}

// setWriteVersion names the version a write created. A write to a bucket
// with versioning suspended makes the null version, and S3 answers it
// without x-amz-version-id (reads of that version do say "null").
func setWriteVersion(h http.Header, v string) {
	if v != "null" {
		setVersion(h, v)
	}
}

// setCopies says on how many nodes an available bucket's write was
// durable when it was acknowledged.
func setCopies(h http.Header, n int) {
	if n > 0 {
		h.Set(objects.CopiesHeader, strconv.Itoa(n))
	}
}

func setChecksums(h http.Header, c objects.Checksums) {
	for _, a := range checksum.All {
		if v := *c.Field(a); v != "" {
			h.Set(a.Header(), v)
		}
	}
	if c.Type != "" {
		h.Set("X-Amz-Checksum-Type", c.Type)
	}
}

// responseOverrides maps GetObject's response-* parameters to the header
// each one replaces.
var responseOverrides = [...][2]string{
	{"response-content-type", "Content-Type"},
	{"response-content-language", "Content-Language"},
	{"response-expires", "Expires"},
	{"response-cache-control", "Cache-Control"},
	{"response-content-disposition", "Content-Disposition"},
	{"response-content-encoding", "Content-Encoding"},
}

// getObject serves GetObject and HeadObject.
func (s *Server) getObject(w http.ResponseWriter, r *http.Request, rc *reqCtx) error {
	head := r.Method == http.MethodHead
	opts := objects.GetOptions{
		VersionID: rc.query.Get("versionId"),
		Cond:      preconditions(r.Header, ""),
		HeadOnly:  head,
	}
	if v := r.Header.Get("Range"); v != "" {
		rg, err := parseRange(v)
		switch {
		case errors.Is(err, errRangeUnsatisfiable):
			return errInvalidRange
		case err == nil:
			opts.Range = rg
		}
	}
	if v := rc.query.Get("partNumber"); v != "" {
		n, err := partNumber(v)
		if err != nil {
			return err
		}
		if opts.Range.Set {
			return invalidReq("Cannot specify both Range header and partNumber query parameter.")
		}
		opts.PartNumber = n
	}
	info, rd, err := s.api.GetObject(r.Context(), rc.bucket, rc.key, opts)
	if rd != nil {
		defer rd.Close()
	}
	h := w.Header()
	if err != nil && opts.PartNumber > 0 && errors.Is(err, objects.ErrInvalidRange) {
		// The object has fewer parts than asked for: S3 names the part
		// number, not a byte range.
		err = errInvalidPartNumber
	}
	if err != nil {
		if info.DeleteMarker {
			h.Set("X-Amz-Delete-Marker", "true")
			setVersion(h, info.VersionID)
		}
		if errors.Is(err, objects.ErrNotModified) {
			if info.ETag != "" {
				h.Set("ETag", info.ETag)
			}
			if !info.LastModified.IsZero() {
				h.Set("Last-Modified", httpTime(info.LastModified))
			}
		}
		return err
	}
	if head && rd != nil {
		rd.Close()
		rd = nil
	}
	h.Set("ETag", info.ETag)
	h.Set("Last-Modified", httpTime(info.LastModified))
	h.Set("Accept-Ranges", "bytes")
	ct := info.ContentType
	if ct == "" {
		ct = "binary/octet-stream"
	}
	h.Set("Content-Type", ct)
	for _, name := range storedHeaders {
		if v := info.Headers[name]; v != "" {
			h.Set(name, v)
		}
	}
	for k, v := range info.UserMeta {
		// Assigned, not Set: S3 returns the names in lower case and
		// boto3 shows them as sent back, so canonical case would show.
		h["x-amz-meta-"+strings.ToLower(k)] = []string{v}
	}
	setVersion(h, info.VersionID)
	if info.Parts > 0 && opts.PartNumber > 0 {
		h.Set("X-Amz-Mp-Parts-Count", strconv.Itoa(info.Parts))
	}
	ranged := opts.Range.Set || opts.PartNumber > 0
	// The stored checksums describe the whole object: they are sent for a
	// whole-object read, and for part 1 of an object that has no parts,
	// which is the whole object.
	whole := !opts.Range.Set && (opts.PartNumber == 0 || info.Parts == 0)
	if strings.EqualFold(r.Header.Get("X-Amz-Checksum-Mode"), "ENABLED") && whole {
		c := info.Checksums
		if info.Parts == 0 {
			c = wholeObject(c)
		}
		setChecksums(h, c)
	}
	for _, o := range responseOverrides {
		if v := rc.query.Get(o[0]); v != "" {
			h.Set(o[1], v)
		}
	}
	length := info.Size
	status := http.StatusOK
	// A part read is partial content even when the part is the whole
	// object, as in S3; only an empty object has no range to name.
	if ranged && info.Size > 0 {
		length = info.RangeLength
		status = http.StatusPartialContent
		end := info.RangeStart + info.RangeLength - 1
		h.Set("Content-Range", "bytes "+strconv.FormatInt(info.RangeStart, 10)+"-"+
			strconv.FormatInt(end, 10)+"/"+strconv.FormatInt(info.Size, 10))
	}
	h.Set("Content-Length", strconv.FormatInt(length, 10))
	w.WriteHeader(status)
	if head || rd == nil || length == 0 {
		return nil
	}
	bp := s.bufs.Get().(*[]byte)
	defer s.bufs.Put(bp)
	// The wrapper hides ReadFrom so that the pooled buffer is the one used.
	n, err := io.CopyBuffer(struct{ io.Writer }{w}, rd, *bp)
	if err != nil {
		return err
	}
	if n != length {
		return errors.New("s3api: object body shorter than its size")
	}
	return nil
}

func (s *Server) deleteObject(w http.ResponseWriter, r *http.Request, rc *reqCtx) error {
	res, err := s.api.DeleteObject(r.Context(), rc.bucket, rc.key, objects.DeleteOptions{
		VersionID: rc.query.Get("versionId"),
		IfMatch:   r.Header.Get("If-Match"),
	})
	if errors.Is(err, objects.ErrNoSuchKey) {
		err = nil // deleting an absent key succeeds in S3
	}
	if err != nil {
		return err
	}
	h := w.Header()
	setVersion(h, res.VersionID)
	setCopies(h, res.Copies)
	if res.DeleteMarker {
		h.Set("X-Amz-Delete-Marker", "true")
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// copySource parses x-amz-copy-source: "[/]bucket/key[?versionId=v]",
// URL-encoded. Without a literal "?", the decoded value is split at
// "?versionId=", so a percent-encoded separator ("key%3FversionId%3Dv")
// names a version too; a key that holds "?versionId=" is then a copy
// source only with a literal versionId query after it.
func copySource(v string) (objects.CopySource, error) {
	var src objects.CopySource
	path, query, literal := strings.Cut(v, "?")
	p, err := url.PathUnescape(path)
	if err != nil {
		return src, invalidArg("Invalid copy source encoding.")
	}
	if !literal {
		var vid string
		if p, vid, literal = strings.Cut(p, "?versionId="); literal {
			query = "versionId=" + url.QueryEscape(vid)
		}
	}
	p = strings.TrimPrefix(p, "/")
	b, k, ok := strings.Cut(p, "/")
	if !ok || b == "" || k == "" {
		return src, invalidArg("Invalid copy source object key")
	}
	if err := validKey(k); err != nil {
		return src, err
	}
	if !utfValid(k) {
		return src, invalidArg("Invalid copy source encoding.")
	}
	src.Bucket, src.Key = b, k
	if query != "" {
		q, err := url.ParseQuery(query)
		if err != nil {
			return src, invalidArg("Invalid copy source encoding.")
		}
		for name := range q {
			if name != "versionId" {
				return src, invalidArg("Invalid copy source: unknown parameter %s.", name)
			}
		}
		src.VersionID = q.Get("versionId")
		if src.VersionID == "" {
			return src, invalidArg("Invalid copy source version id.")
		}
	}
	return src, nil
}

type copyObjectResult struct {
	XMLName      struct{} `xml:"CopyObjectResult"`
	ETag         string   `xml:"ETag"`
	LastModified string   `xml:"LastModified"`
	checksumsXML
}

// checksumsXML are the checksum elements of result bodies.
type checksumsXML struct {
	ChecksumCRC32     string `xml:"ChecksumCRC32,omitempty"`
	ChecksumCRC32C    string `xml:"ChecksumCRC32C,omitempty"`
	ChecksumCRC64NVME string `xml:"ChecksumCRC64NVME,omitempty"`
	ChecksumSHA1      string `xml:"ChecksumSHA1,omitempty"`
	ChecksumSHA256    string `xml:"ChecksumSHA256,omitempty"`
	ChecksumType      string `xml:"ChecksumType,omitempty"`
}

func toChecksumsXML(c objects.Checksums) checksumsXML {
	return checksumsXML{c.CRC32, c.CRC32C, c.CRC64NVME, c.SHA1, c.SHA256, c.Type}
}

func (s *Server) copyObject(w http.ResponseWriter, r *http.Request, rc *reqCtx) error {
	src, err := copySource(r.Header.Get("X-Amz-Copy-Source"))
	if err != nil {
		return err
	}
	src.Cond = preconditions(r.Header, "X-Amz-Copy-Source-")
	switch d := r.Header.Get("X-Amz-Metadata-Directive"); d {
	case "", "COPY":
	case "REPLACE":
		src.ReplaceMetadata = true
	default:
		return invalidArg("Unknown metadata directive.")
	}
	if src.Bucket == rc.bucket && src.Key == rc.key && src.VersionID == "" && !src.ReplaceMetadata {
		return invalidReq("This copy request is illegal because it is trying to copy an object to itself without changing the object's metadata, storage class, website redirect location or encryption attributes.")
	}
	var opts objects.PutOptions
	if src.ReplaceMetadata {
		if opts, err = s.putOptions(r, rc); err != nil {
			return err
		}
	} else {
		// The COPY directive ignores the request's metadata, but S3 still
		// refuses a request carrying more than it would ever store.
		if _, err := s.userMeta(r.Header); err != nil {
			return err
		}
		cr, err := parseChecksumHeaders(r.Header)
		if err != nil {
			return err
		}
		opts.ChecksumAlgorithm = cr.algorithm
		opts.IfMatch = r.Header.Get("If-Match")
		opts.IfNoneMatch = r.Header.Get("If-None-Match")
	}
	opts.ContentMD5, opts.Checksums, opts.Trailer = nil, objects.Checksums{}, nil
	info, err := s.api.CopyObject(r.Context(), src, rc.bucket, rc.key, opts)
	if err != nil {
		return err
	}
	h := w.Header()
	setWriteVersion(h, info.VersionID)
	setCopies(h, info.Copies)
	if src.VersionID != "" {
		h.Set("X-Amz-Copy-Source-Version-Id", src.VersionID)
	}
	return s.writeXML(w, http.StatusOK, copyObjectResult{
		ETag: info.ETag, LastModified: isoTime(info.LastModified), checksumsXML: toChecksumsXML(info.Checksums),
	})
}

type deleteResultXML struct {
	XMLName struct{}         `xml:"DeleteResult"`
	NS      string           `xml:"xmlns,attr"`
	Deleted []deletedXML     `xml:"Deleted"`
	Errors  []deleteErrorXML `xml:"Error"`
}

// deletedXML is one Deleted entry. DeleteMarker is sent whenever it is
// known to mean something: true when a delete marker was made or removed,
// false when a named version that was not a marker was removed; a plain
// delete in an unversioned bucket sends neither, as S3 does.
type deletedXML struct {
	Key                   string `xml:"Key"`
	VersionID             string `xml:"VersionId,omitempty"`
	DeleteMarker          *bool  `xml:"DeleteMarker,omitempty"`
	DeleteMarkerVersionID string `xml:"DeleteMarkerVersionId,omitempty"`
}

type deleteErrorXML struct {
	Key       string `xml:"Key"`
	VersionID string `xml:"VersionId,omitempty"`
	Code      string `xml:"Code"`
	Message   string `xml:"Message"`
}

func (s *Server) deleteObjects(w http.ResponseWriter, r *http.Request, rc *reqCtx) error {
	md5sum, err := contentMD5(r.Header)
	if err != nil {
		return err
	}
	cr, err := parseChecksumHeaders(r.Header)
	if err != nil {
		return err
	}
	hasSum := cr.values != (objects.Checksums{}) || cr.trailer != ""
	if md5sum == nil && !hasSum {
		return invalidReq("Missing required header for this request: Content-MD5")
	}
	b, err := s.readXMLBody(r, rc)
	if err != nil {
		return err
	}
	if md5sum != nil {
		got := md5.Sum(b)
		if subtle.ConstantTimeCompare(got[:], md5sum) != 1 {
			return apiErr("BadDigest", 400, "The Content-MD5 you specified did not match what we received.")
		}
	}
	if hasSum {
		a := checksum.Algorithm(cr.algorithm)
		want := *cr.values.Field(a)
		if cr.trailer != "" {
			want = strings.TrimSpace(rc.principal.Trailers()[cr.trailer])
		}
		hh := checksum.New(a)
		hh.Write(b)
		if base64.StdEncoding.EncodeToString(hh.Sum(nil)) != want {
			return apiErr("BadDigest", 400, "The "+string(a)+" you specified did not match the calculated checksum.")
		}
	}
	quiet, objs, err := parseDelete(b)
	if err != nil {
		return err
	}
	if _, err := s.api.HeadBucket(r.Context(), rc.bucket); err != nil {
		return err
	}
	res := deleteResultXML{NS: s3NS}
	for _, o := range objs {
		var e *Error
		if o.Key == "" {
			e = invalidArg("Object key must not be empty.")
		} else if err := validKey(o.Key); err != nil {
			e, _ = toAPIError(err)
		}
		if e == nil {
			dr, err := s.api.DeleteObject(r.Context(), rc.bucket, o.Key, objects.DeleteOptions{VersionID: o.VersionID})
			if errors.Is(err, objects.ErrNoSuchKey) {
				err = nil
			}
			if err != nil {
				var internal bool
				e, internal = toAPIError(err)
				if internal {
					s.log.Error("s3 internal error", "request_id", rc.id, "op", "DeleteObjects", "key", o.Key, "err", err)
				}
			} else {
				if !quiet {
					d := deletedXML{Key: o.Key, VersionID: o.VersionID}
					if dr.DeleteMarker {
						d.DeleteMarker = &dr.DeleteMarker
						d.DeleteMarkerVersionID = dr.VersionID
					} else if o.VersionID != "" {
						d.DeleteMarker = &dr.DeleteMarker
					}
					res.Deleted = append(res.Deleted, d)
				}
				continue
			}
		}
		res.Errors = append(res.Errors, deleteErrorXML{Key: o.Key, VersionID: o.VersionID, Code: e.Code, Message: e.Message})
	}
	return s.writeXML(w, http.StatusOK, res)
}
