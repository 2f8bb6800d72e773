// Package sigv4 authenticates S3 requests signed with AWS Signature Version 4
// and decodes their payloads, including aws-chunked streaming uploads.
//
// # Contract
//
//  1. [Verifier.Verify] authenticates a request from its Authorization header
//     (AWS4-HMAC-SHA256) or from presigned query parameters (X-Amz-Algorithm,
//     X-Amz-Credential, X-Amz-Date, X-Amz-Expires, X-Amz-SignedHeaders,
//     X-Amz-Signature). It reads no body. On failure it returns an *[Error]
//     carrying the S3 error code and HTTP status to answer with; the caller
//     writes the S3 XML error itself.
//  2. [Request.Body] returns the payload as the client meant it. Depending on
//     x-amz-content-sha256 it passes the bytes through (UNSIGNED-PAYLOAD,
//     presigned requests), checks their SHA-256 at EOF (a hex digest), or
//     decodes aws-chunked framing, verifying every chunk signature and the
//     trailer signature as it goes (STREAMING-AWS4-HMAC-SHA256-PAYLOAD,
//     STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER,
//     STREAMING-UNSIGNED-PAYLOAD-TRAILER). When the decoded length is known
//     the reader yields exactly that many bytes or fails.
//  3. Bytes are handed to the caller before the check that covers them has
//     run (a chunk's signature is known only at the chunk's end, a payload's
//     hash only at EOF). A caller must therefore treat the data as untrusted
//     until Read returns io.EOF, and discard it on any other error. Memory
//     does not depend on the sizes a client claims: data is streamed, lines
//     are bounded (4 KiB), trailers are bounded in number and size.
//  4. [Request.Trailers] returns the trailing headers (x-amz-checksum-*) once
//     the body reader has returned io.EOF. Checking those checksums against the
//     data is the caller's job.
//  5. The canonical request follows the SigV4 specification as S3 applies it:
//     the path is not double-encoded. The path is tried as the client sent it
//     and, if that does not match, in its normalised encoding (every byte
//     outside A-Z a-z 0-9 - . _ ~ / percent-encoded), so clients that send
//     a raw '$' but sign "%24" are accepted; both forms name the same key.
//  6. Signature comparisons run in constant time. SigV4a (ECDSA) and
//     Signature Version 2 are refused with InvalidRequest in the
//     Authorization header, and with AuthorizationQueryParametersError in
//     a presigned URL.
//  7. Every x-amz-* header present must be signed (x-amz-content-sha256
//     excepted, as in S3); otherwise the request is refused with
//     AccessDenied naming the unsigned headers in [Error.HeadersNotSigned].
//     A session token (X-Amz-Security-Token) is refused with InvalidToken:
//     only permanent keys exist here.
//
// # Concurrency
//
// A Verifier is immutable after New and safe for concurrent use. A Request
// and the reader returned by its Body belong to the goroutine serving that
// request.
//
// # Error codes
//
// The codes follow S3: InvalidAccessKeyId (403), SignatureDoesNotMatch (403),
// AuthorizationHeaderMalformed (400, for a bad Authorization header or a
// credential scoped to another region), AuthorizationQueryParametersError
// (400, the same for presigned URLs), AccessDenied (403, expired presigned
// URL, missing date, unsigned x-amz-* header), RequestTimeTooSkewed (403),
// InvalidRequest (400, missing x-amz-content-sha256, SigV2 or SigV4a,
// malformed aws-chunked framing), InvalidArgument (400, bad
// x-amz-content-sha256 value, an Authorization header without a space or
// with an unknown scheme), InvalidToken (400, any session token),
// MissingContentLength (411, streaming upload without
// x-amz-decoded-content-length), IncompleteBody (400, body shorter than
// declared), XAmzContentSHA256Mismatch (400) and MalformedTrailerError (400).
package sigv4
