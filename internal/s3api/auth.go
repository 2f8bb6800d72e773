package s3api

import (
	"io"
	"net/http"
)

// Authenticator checks a request's signature before the front end reads
// any byte of its body. It returns an *Error (AccessDenied,
// SignatureDoesNotMatch, AuthorizationHeaderMalformed, ...) to reject the
// request; any other error is answered with InternalError. Anonymous
// requests must be rejected with AccessDenied: Redoubt has no public
// buckets. Implementations must be safe for concurrent use.
//
// SigV4 adapts the SigV4 verifier to this interface.
type Authenticator interface {
	Authenticate(r *http.Request) (Principal, error)
}

// Principal is an authenticated request.
type Principal interface {
	// AccessKey names the caller; it is shown as the owner of buckets,
	// objects and uploads.
	AccessKey() string
	// Body returns the request's payload, decoded from aws-chunked
	// framing where the client used it, and verified against its
	// signature as it is read: Read returns an error (an *Error for a bad
	// signature or a bad chunk) instead of unverified bytes.
	Body(r *http.Request) (io.Reader, error)
	// Trailers returns the aws-chunked trailers (lower-case names, e.g.
	// "x-amz-checksum-crc32") once Body has reached EOF.
	Trailers() map[string]string
}
