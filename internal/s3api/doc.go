// Package s3api is Redoubt's S3 HTTP front end: the handler that aws CLI,
// boto3, the AWS SDKs, minio-go and rclone talk to unchanged.
//
// It holds no storage logic. For every request it
//
//  1. assigns a request ID, sent as x-amz-request-id and x-amz-id-2 on
//     every answer and logged with every internal error;
//  2. finds the bucket and key, from the Host ("bucket.DOMAIN", when
//     Config.Domains names DOMAIN) or else from the path;
//  3. authenticates through the Authenticator (SigV4 adapts the SigV4
//     verifier) before reading any byte of the body; anonymous requests get
//     AccessDenied;
//  4. validates the request (key names, query subresources, headers,
//     lengths, digests, XML bodies bounded by Config.MaxXMLBodyBytes);
//  5. calls objects.API, passing the decoded, verified payload as a
//     stream of exactly the announced length, and the checksum values the
//     client sent in headers or as aws-chunked trailers;
//  6. renders the answer: headers only for object data paths, S3 XML for
//     lists, results and errors.
//
// Error contract: each objects sentinel maps to its S3 code and status
// (see errors.go); errors wrapping syscall.ENOSPC (meta.ErrNoSpace,
// store.ErrNoSpace, a full disk) answer 507 InsufficientStorage, which
// SDKs do not retry, even when they also wrap meta.ErrUnavailable; other
// errors wrapping meta.ErrUnavailable answer 503 ServiceUnavailable with
// Retry-After; objects.ErrSlowDown (the node's data buffers stayed held
// by other large requests) answers 503 SlowDown with Retry-After, which
// SDKs retry with back-off; any other error answers 500 InternalError and is logged
// with the request ID. HEAD and 304 answers
// carry no body. Query subresources and headers that ask for features
// Redoubt does not implement answer 501 NotImplemented, never a success
// that silently ignores them; OPERATIONS.md lists both sides.
//
// Bodies: a handler that starts reading a body drains the rest (up to
// 1 MiB) before returning, so that a pooled client connection, in
// particular after an `Expect: 100-continue` request, carries on
// cleanly. An authenticated upload refused before any byte of its body
// was read (a full node's 507, a missing bucket) is answered at once,
// then up to 32 MiB of its body are drained for up to 5 s: a client that
// did not wait for 100 Continue reads the answer instead of a reset it
// would retry. Other refusals leave the body unread, and the HTTP server
// closes the connection instead of reading an unwanted upload. Uploads need Content-Length, or
// x-amz-decoded-content-length for aws-chunked bodies (else 411
// MissingContentLength); a shorter body is IncompleteBody.
//
// A body that sends nothing for Config.BodyIdleTimeout ends the request
// with RequestTimeout (400), which the client can still read; nothing is
// stored, and the connection is closed and its handler returns rather
// than waiting on a client that went quiet. The timeout bounds the
// silence between bytes, not an upload's length, so a slow but steady
// body is never cut (TestStalledPutTimesOut,
// TestStalledStreamingSignedPutTimesOut, TestStalledUploadPartTimesOut,
// TestSlowSteadyPutIsNotCut).
//
// A panic in a handler is recovered, logged with its stack and answered
// with InternalError when no header was sent yet; no input is meant to
// cause one.
//
// The http.Server in front should set MaxHeaderBytes above
// Config.MaxHeaderBytes, so that oversized headers reach this package and
// get RequestHeaderSectionTooLarge rather than a bare 431.
//
// A Server is safe for concurrent use; it keeps no state between requests
// beyond a pool of copy buffers.
package s3api
