package s3api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"syscall"

	"github.com/redoubt-io/redoubt/internal/meta"
	"github.com/redoubt-io/redoubt/internal/objects"
)

// Error is an S3 error answer: its code, message and HTTP status. An
// Authenticator returns one to reject a request; handlers return them for
// bad input.
type Error struct {
	Code    string
	Message string
	Status  int
	// Optional elements of the error document, written when not empty:
	// <AWSAccessKeyId>, <HeadersNotSigned>, <ArgumentName>, <ArgumentValue>.
	AccessKeyID, HeadersNotSigned, ArgumentName, ArgumentValue string
}

func (e *Error) Error() string { return "s3 " + e.Code + ": " + e.Message }

func apiErr(code string, status int, msg string) *Error {
	return &Error{Code: code, Message: msg, Status: status}
}

func apiErrf(code string, status int, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...), Status: status}
}

// Errors the front end itself produces.
var (
	errAccessDenied      = apiErr("AccessDenied", 403, "Access Denied")
	errNotImpl           = apiErr("NotImplemented", 501, "A header or query you provided implies functionality that is not implemented.")
	errMalformedXML      = apiErr("MalformedXML", 400, "The XML you provided was not well-formed or did not validate against our published schema.")
	errXMLTooLarge       = apiErr("MaxMessageLengthExceeded", 400, "Your request was too big.")
	errInvalidDig        = apiErr("InvalidDigest", 400, "The Content-MD5 you specified is not valid.")
	errMissingLen        = apiErr("MissingContentLength", 411, "You must provide the Content-Length HTTP header.")
	errIncomplete        = apiErr("IncompleteBody", 400, "You did not provide the number of bytes specified by the Content-Length HTTP header.")
	errTooLarge          = apiErr("EntityTooLarge", 400, "Your proposed upload exceeds the maximum allowed object size.")
	errHeadersLarge      = apiErr("RequestHeaderSectionTooLarge", 400, "Your request header section exceeds the maximum allowed size.")
	errMetaLarge         = apiErr("MetadataTooLarge", 400, "Your metadata headers exceed the maximum allowed metadata size.")
	errKeyTooLong        = apiErr("KeyTooLongError", 400, "Your key is too long.")
	errInvalidURI        = apiErr("InvalidURI", 400, "Couldn't parse the specified URI.")
	errMethod            = apiErr("MethodNotAllowed", 405, "The specified method is not allowed against this resource.")
	errInvalidRange      = apiErr("InvalidRange", 416, "The requested range is not satisfiable.")
	errInvalidPartNumber = apiErr("InvalidPartNumber", 416, "The requested partnumber is not satisfiable.")
	errNoSuchBucket      = apiErr("NoSuchBucket", 404, "The specified bucket does not exist.")
	errInternal          = apiErr("InternalError", 500, "We encountered an internal error. Please try again.")
	errUnavailable       = apiErr("ServiceUnavailable", 503, "Please reduce your request rate.")
	errNotModified       = apiErr("NotModified", 304, "Not Modified")
)

// errNoSpace is not retried by the SDKs, unlike a 503: waiting does not
// free space, deleting does.
var errNoSpace = apiErr("InsufficientStorage", http.StatusInsufficientStorage,
	"There is not enough free space on the server's drives to store this request. Reads and deletes still work: delete objects or abort multipart uploads to free space, then try again.")

func invalidArg(format string, args ...any) *Error {
	return apiErrf("InvalidArgument", 400, format, args...)
}

func invalidReq(format string, args ...any) *Error {
	return apiErrf("InvalidRequest", 400, format, args...)
}

// objectErrors maps each objects sentinel to its S3 answer.
var objectErrors = []struct {
	err error
	api *Error
}{
	{objects.ErrNoSuchBucket, errNoSuchBucket},
	{objects.ErrBucketExists, apiErr("BucketAlreadyOwnedByYou", 409, "Your previous request to create the named bucket succeeded and you already own it.")},
	{objects.ErrBucketNotEmpty, apiErr("BucketNotEmpty", 409, "The bucket you tried to delete is not empty.")},
	{objects.ErrBucketReplicated, apiErr("BucketReplicated", 409, "The bucket is replicated to the sites this cluster is linked with, which would create it again; remove the sites (redoubt site remove) before deleting it.")},
	{objects.ErrInvalidBucketName, apiErr("InvalidBucketName", 400, "The specified bucket is not valid.")},
	{objects.ErrNoSuchKey, apiErr("NoSuchKey", 404, "The specified key does not exist.")},
	{objects.ErrNoSuchVersion, apiErr("NoSuchVersion", 404, "The specified version does not exist.")},
	{objects.ErrInvalidKey, apiErr("InvalidArgument", 400, "The specified key is not valid.")},
	{objects.ErrMethodNotAllowed, errMethod},
	{objects.ErrPreconditionFailed, apiErr("PreconditionFailed", 412, "At least one of the pre-conditions you specified did not hold.")},
	{objects.ErrNotModified, errNotModified},
	{objects.ErrInvalidRange, errInvalidRange},
	{objects.ErrChecksumMismatch, apiErr("BadDigest", 400, "The checksum you specified did not match the calculated checksum.")},
	{objects.ErrBadDigest, apiErr("BadDigest", 400, "The Content-MD5 you specified did not match what we received.")},
	{objects.ErrIncompleteBody, errIncomplete},
	{objects.ErrEntityTooLarge, errTooLarge},
	{objects.ErrNoSuchUpload, apiErr("NoSuchUpload", 404, "The specified upload does not exist. The upload ID may be invalid, or the upload may have been aborted or completed.")},
	{objects.ErrInvalidPart, apiErr("InvalidPart", 400, "One or more of the specified parts could not be found. The part may not have been uploaded, or the specified entity tag may not match the part's entity tag.")},
	{objects.ErrInvalidPartOrder, apiErr("InvalidPartOrder", 400, "The list of parts was not in ascending order. Parts must be ordered by part number.")},
	{objects.ErrEntityTooSmall, apiErr("EntityTooSmall", 400, "Your proposed upload is smaller than the minimum allowed object size.")},
	{objects.ErrConditionalConflict, apiErr("ConditionalRequestConflict", 409, "A conflicting conditional operation is currently in progress against this resource. Try again.")},
	{objects.ErrInvalidArgument, apiErr("InvalidArgument", 400, "Invalid Argument")},
	{objects.ErrInvalidRequest, apiErr("InvalidRequest", 400, "Invalid Request")},
	{objects.ErrNotImplemented, errNotImpl},
	{objects.ErrSlowDown, apiErr("SlowDown", 503, "Please reduce your request rate.")},
}

// toAPIError maps any error to its S3 answer. internal reports whether
// the error is unexpected and must be logged.
func toAPIError(err error) (e *Error, internal bool) {
	if errors.As(err, &e) {
		return e, false
	}
	for _, m := range objectErrors {
		if errors.Is(err, m.err) {
			if m.err == objects.ErrInvalidArgument {
				// Keep the object layer's detail: it names the argument.
				return invalidArg("%s", detail(err, m.err)), false
			}
			if m.err == objects.ErrInvalidRequest {
				return invalidReq("%s", detail(err, m.err)), false
			}
			if m.err == objects.ErrNotImplemented {
				// Say what is missing, not the generic sentence.
				return apiErr(m.api.Code, m.api.Status, detail(err, m.err)), false
			}
			return m.api, false
		}
	}
	// Before ErrUnavailable: a write that found too few drives with room
	// is both, and the client must free space, not retry.
	if errors.Is(err, syscall.ENOSPC) {
		return errNoSpace, false
	}
	if errors.Is(err, meta.ErrUnavailable) {
		return errUnavailable, false
	}
	if errors.Is(err, meta.ErrMoved) {
		// The objects layer follows splits: one it could not follow is
		// worth a retry, and a look.
		return errUnavailable, true
	}
	if errors.Is(err, context.Canceled) {
		return errInternal, false
	}
	return errInternal, true
}

// detail returns what err says beyond its sentinel ("invalid argument:
// part number 0" gives "Part number 0"), as the sentence of an S3 message.
func detail(err, sentinel error) string {
	msg := err.Error()
	if i := strings.Index(msg, sentinel.Error()+": "); i >= 0 {
		msg = msg[i+len(sentinel.Error())+2:]
	}
	if msg != "" && msg[0] >= 'a' && msg[0] <= 'z' {
		msg = string(msg[0]-'a'+'A') + msg[1:]
	}
	return msg
}

// writeError answers with e. HEAD and 304 answers carry no body.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, rc *reqCtx, e *Error) {
	h := w.Header()
	if e.Status == http.StatusServiceUnavailable {
		h.Set("Retry-After", strconv.Itoa(s.cfg.RetryAfterSeconds))
	}
	if r.Method == http.MethodHead || e.Status == http.StatusNotModified {
		h.Del("Content-Type")
		w.WriteHeader(e.Status)
		return
	}
	var b strings.Builder
	b.Grow(256 + len(e.Message) + len(r.URL.Path))
	b.WriteString(`<?xml version="1.0" encoding="UTF-8"?>` + "\n<Error><Code>")
	xmlEscape(&b, e.Code)
	b.WriteString("</Code><Message>")
	xmlEscape(&b, e.Message)
	b.WriteString("</Message>")
	for _, el := range [...][2]string{
		{"AWSAccessKeyId", e.AccessKeyID}, {"HeadersNotSigned", e.HeadersNotSigned},
		{"ArgumentName", e.ArgumentName}, {"ArgumentValue", e.ArgumentValue},
	} {
		if el[1] != "" {
			b.WriteString("<" + el[0] + ">")
			xmlEscape(&b, el[1])
			b.WriteString("</" + el[0] + ">")
		}
	}
	if rc != nil && rc.bucket != "" {
		b.WriteString("<BucketName>")
		xmlEscape(&b, rc.bucket)
		b.WriteString("</BucketName>")
	}
	if rc != nil && rc.key != "" {
		b.WriteString("<Key>")
		xmlEscape(&b, rc.key)
		b.WriteString("</Key>")
	}
	b.WriteString("<Resource>")
	xmlEscape(&b, r.URL.Path)
	b.WriteString("</Resource><RequestId>")
	if rc != nil {
		xmlEscape(&b, rc.id)
	}
	b.WriteString("</RequestId></Error>")
	h.Set("Content-Type", "application/xml")
	h.Set("Content-Length", strconv.Itoa(b.Len()))
	w.WriteHeader(e.Status)
	_, _ = w.Write([]byte(b.String()))
}

// xmlEscape writes s as XML character data. Characters XML 1.0 cannot
// carry are written as U+FFFD, as encoding/xml does.
func xmlEscape(b *strings.Builder, s string) {
	for _, c := range s {
		switch {
		case c == '<':
			b.WriteString("&lt;")
		case c == '>':
			b.WriteString("&gt;")
		case c == '&':
			b.WriteString("&amp;")
		case c == '"':
			b.WriteString("&quot;")
		case c == '\'':
			b.WriteString("&apos;")
		case c == '\r':
			b.WriteString("&#xD;")
		case c == '\n' || c == '\t':
			b.WriteRune(c)
		case c < 0x20 || c == 0xFFFE || c == 0xFFFF || (c >= 0xD800 && c <= 0xDFFF):
			b.WriteRune('\uFFFD')
		default:
			b.WriteRune(c)
		}
	}
}
