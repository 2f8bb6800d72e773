package s3api

import (
	"crypto/md5"
	"encoding/base64"
	"errors"
	"io"
	"net/http"
	"net/textproto"
	"strconv"
	"strings"
	"time"

	"github.com/redoubt-io/redoubt/internal/checksum"
	"github.com/redoubt-io/redoubt/internal/objects"
)

// body returns the authenticated payload reader. Read errors are recorded
// in rc.bodyErr.
func (s *Server) body(r *http.Request, rc *reqCtx) (io.Reader, error) {
	rc.bodyTouched = true
	b, err := rc.principal.Body(r)
	if err != nil {
		return nil, err
	}
	return &recordingReader{r: b, rc: rc}, nil
}

type recordingReader struct {
	r  io.Reader
	rc *reqCtx
}

func (b *recordingReader) Read(p []byte) (int, error) {
	b.rc.bodyRead = true
	n, err := b.r.Read(p)
	if err != nil && err != io.EOF && b.rc.bodyErr == nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			err = errIncomplete
		}
		b.rc.bodyErr = err
	}
	return n, err
}

// bodyError returns the payload's own error when reading it failed, else
// err: a truncated or forged body is reported as such, whatever the
// object layer made of it.
func (s *Server) bodyError(rc *reqCtx, err error) error {
	if rc.bodyErr != nil {
		return rc.bodyErr
	}
	return err
}

// payloadSize returns the size of an upload's decoded payload: the
// x-amz-decoded-content-length of an aws-chunked body, else Content-Length.
func (s *Server) payloadSize(r *http.Request) (int64, error) {
	var size int64
	if strings.HasPrefix(r.Header.Get("X-Amz-Content-Sha256"), "STREAMING-") {
		v := r.Header.Get("X-Amz-Decoded-Content-Length")
		if v == "" {
			return 0, errMissingLen
		}
		n, ok := parseDigits(v)
		if !ok {
			return 0, invalidArg("x-amz-decoded-content-length is not a valid length.")
		}
		size = n
	} else {
		if r.ContentLength < 0 || (r.ContentLength == 0 && r.Header.Get("Content-Length") == "") {
			return 0, errMissingLen
		}
		size = r.ContentLength
	}
	if size > s.cfg.MaxPutSize {
		return 0, errTooLarge
	}
	return size, nil
}

// sizedBody returns the payload of an upload, which must be exactly size
// bytes long.
func (s *Server) sizedBody(r *http.Request, rc *reqCtx, size int64) (io.Reader, error) {
	b, err := s.body(r, rc)
	if err != nil {
		return nil, err
	}
	return &exactReader{r: b, left: size, rc: rc}, nil
}

// exactReader fails with IncompleteBody when the payload ends before left
// bytes, and refuses a payload longer than announced.
type exactReader struct {
	r    io.Reader
	left int64
	rc   *reqCtx
	done bool
}

func (e *exactReader) Read(p []byte) (int, error) {
	if e.done {
		return 0, io.EOF
	}
	if e.left == 0 {
		var one [1]byte
		n, err := io.ReadFull(e.r, one[:])
		if n > 0 {
			return 0, e.fail(invalidReq("The decoded payload is longer than its announced length."))
		}
		if err != nil && err != io.EOF && err != io.ErrUnexpectedEOF {
			return 0, err
		}
		e.done = true
		return 0, io.EOF
	}
	if int64(len(p)) > e.left {
		p = p[:e.left]
	}
	n, err := e.r.Read(p)
	e.left -= int64(n)
	if err == io.EOF && e.left > 0 {
		return n, e.fail(errIncomplete)
	}
	if err == io.EOF {
		err = nil // check for trailing bytes on the next call
	}
	return n, err
}

func (e *exactReader) fail(err error) error {
	if e.rc.bodyErr == nil {
		e.rc.bodyErr = err
	}
	return err
}

// contentMD5 decodes the Content-MD5 header, if any.
func contentMD5(h http.Header) ([]byte, error) {
	v, ok := h["Content-Md5"]
	if !ok {
		return nil, nil
	}
	if len(v) != 1 {
		return nil, errInvalidDig
	}
	b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(v[0]))
	if err != nil || len(b) != md5.Size {
		return nil, errInvalidDig
	}
	return b, nil
}

// checksumRequest is what a request says about additional checksums.
type checksumRequest struct {
	algorithm string
	values    objects.Checksums
	// trailer names the header the client promised to send as an
	// aws-chunked trailer, "" if none.
	trailer string
}

func parseChecksumHeaders(h http.Header) (checksumRequest, error) {
	var c checksumRequest
	var algo checksum.Algorithm
	for _, name := range []string{"X-Amz-Checksum-Algorithm", "X-Amz-Sdk-Checksum-Algorithm"} {
		if v := h.Get(name); v != "" {
			a, err := checksum.Parse(v)
			if err != nil && newerChecksum(v) {
				return c, apiErrf("NotImplemented", 501, "The %s checksum algorithm is not implemented; use CRC32, CRC32C, CRC64NVME, SHA1 or SHA256.", strings.ToUpper(v))
			}
			if err != nil {
				return c, invalidReq("Checksum algorithm provided is unsupported. Please try again with any of the valid types: [CRC32, CRC32C, CRC64NVME, SHA1, SHA256]")
			}
			if algo != "" && algo != a {
				return c, invalidReq("Expecting a single checksum algorithm.")
			}
			algo = a
		}
	}
	var seen checksum.Algorithm
	// A header sent empty is a bad value, not an absent one, as S3 answers
	// it; two headers are refused whatever their values.
	for _, a := range checksum.All {
		if _, present := h[textproto.CanonicalMIMEHeaderKey(a.Header())]; !present {
			continue
		}
		if seen != "" {
			return c, invalidReq("Expecting a single x-amz-checksum- header. Multiple checksum Types are not allowed.")
		}
		seen = a
	}
	if a := seen; a != "" {
		v := h.Get(a.Header())
		raw, err := base64.StdEncoding.DecodeString(v)
		if v == "" || err != nil || len(raw) != a.Size() {
			return c, invalidReq("Value for %s header is invalid.", a.Header())
		}
		*c.values.Field(a) = v
	}
	if t := strings.TrimSpace(h.Get("X-Amz-Trailer")); t != "" {
		a, ok := checksum.FromHeader(t)
		if l := strings.ToLower(t); !ok && strings.HasPrefix(l, "x-amz-checksum-") && newerChecksum(l[len("x-amz-checksum-"):]) {
			return c, apiErrf("NotImplemented", 501, "The %s trailer is not implemented; use a CRC32, CRC32C, CRC64NVME, SHA1 or SHA256 trailer.", l)
		}
		if !ok || strings.Contains(t, ",") {
			return c, invalidReq("The value specified in the x-amz-trailer header is not supported")
		}
		if seen != "" && seen != a {
			return c, invalidReq("Expecting a single x-amz-checksum- header. Multiple checksum Types are not allowed.")
		}
		seen = a
		c.trailer = strings.ToLower(t)
	}
	if seen != "" {
		if algo != "" && algo != seen {
			return c, invalidReq("Value for x-amz-checksum-algorithm does not match the checksum header sent.")
		}
		algo = seen
	}
	c.algorithm = string(algo)
	return c, nil
}

// newerChecksum reports whether name is a checksum algorithm S3 accepts
// that Redoubt does not compute: a request naming one asks for a feature
// that is missing, not for something invalid.
func newerChecksum(name string) bool {
	switch strings.ToUpper(strings.TrimSpace(name)) {
	case "SHA512", "MD5", "XXHASH64", "XXHASH3", "XXHASH128":
		return true
	}
	return false
}

// trailerFunc returns the objects Trailer callback for c, or nil.
func trailerFunc(c checksumRequest, p Principal) func() objects.Checksums {
	if c.trailer == "" {
		return nil
	}
	a, _ := checksum.FromHeader(c.trailer)
	name := c.trailer
	return func() objects.Checksums {
		var out objects.Checksums
		if f := out.Field(a); f != nil {
			*f = strings.TrimSpace(p.Trailers()[name])
		}
		return out
	}
}

// storedHeaders are the standard headers stored with an object and
// returned on GET and HEAD.
var storedHeaders = [...]string{"Content-Encoding", "Content-Disposition", "Content-Language", "Cache-Control", "Expires"}

// putOptions reads the metadata, checksum and conditional headers of an
// upload.
func (s *Server) putOptions(r *http.Request, rc *reqCtx) (objects.PutOptions, error) {
	h := r.Header
	var o objects.PutOptions
	o.ContentType = h.Get("Content-Type")
	for _, name := range storedHeaders {
		v := h.Get(name)
		if name == "Content-Encoding" {
			v = stripAWSChunked(v)
		}
		if v != "" {
			if o.Headers == nil {
				o.Headers = make(map[string]string, len(storedHeaders))
			}
			o.Headers[name] = v
		}
	}
	meta, err := s.userMeta(h)
	if err != nil {
		return o, err
	}
	o.UserMeta = meta
	if o.ContentMD5, err = contentMD5(h); err != nil {
		return o, err
	}
	cr, err := parseChecksumHeaders(h)
	if err != nil {
		return o, err
	}
	o.ChecksumAlgorithm, o.Checksums = cr.algorithm, cr.values
	o.Trailer = trailerFunc(cr, rc.principal)
	o.IfMatch = h.Get("If-Match")
	o.IfNoneMatch = h.Get("If-None-Match")
	if o.IfNoneMatch != "" && o.IfNoneMatch != "*" {
		return o, apiErr("NotImplemented", 501, "If-None-Match on writes supports only \"*\".")
	}
	return o, nil
}

// stripAWSChunked removes the aws-chunked coding, which describes the
// transfer and is not part of the object.
func stripAWSChunked(v string) string {
	if !strings.Contains(strings.ToLower(v), "aws-chunked") {
		return v
	}
	var keep []string
	for _, c := range strings.Split(v, ",") {
		c = strings.TrimSpace(c)
		if c != "" && !strings.EqualFold(c, "aws-chunked") {
			keep = append(keep, c)
		}
	}
	return strings.Join(keep, ",")
}

func (s *Server) userMeta(h http.Header) (map[string]string, error) {
	var m map[string]string
	size := 0
	for name, vs := range h {
		if len(name) <= len("X-Amz-Meta-") || !strings.EqualFold(name[:len("X-Amz-Meta-")], "X-Amz-Meta-") {
			continue
		}
		k := strings.ToLower(name[len("X-Amz-Meta-"):])
		v := strings.Join(vs, ",")
		size += len(k) + len(v)
		if m == nil {
			m = make(map[string]string)
		}
		m[k] = v
	}
	if size > s.cfg.MaxUserMetadataBytes {
		return nil, errMetaLarge
	}
	return m, nil
}

// preconditions reads the conditional headers; prefix is "" for the
// request's own object and "X-Amz-Copy-Source-" for a copy source.
// Unparseable dates are ignored, as HTTP requires.
func preconditions(h http.Header, prefix string) objects.Preconditions {
	var c objects.Preconditions
	c.IfMatch = h.Get(prefix + "If-Match")
	c.IfNoneMatch = h.Get(prefix + "If-None-Match")
	if v := h.Get(prefix + "If-Modified-Since"); v != "" {
		if t, err := http.ParseTime(v); err == nil {
			c.IfModifiedSince = t
		}
	}
	if v := h.Get(prefix + "If-Unmodified-Since"); v != "" {
		if t, err := http.ParseTime(v); err == nil {
			c.IfUnmodifiedSince = t
		}
	}
	return c
}

// partNumber parses a partNumber argument: 1..10000.
func partNumber(v string) (int, error) {
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > maxParts {
		return 0, invalidArg("Part number must be an integer between 1 and 10000, inclusive.")
	}
	return n, nil
}

// httpTime formats t as HTTP wants it: RFC 1123 in GMT.
func httpTime(t time.Time) string { return t.UTC().Format(http.TimeFormat) }

// isoTime formats t as S3 XML wants it.
func isoTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }
