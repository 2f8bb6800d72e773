package sigv4

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"strings"
)

// Limits on aws-chunked framing. They bound memory whatever a client sends.
const (
	maxLineLen       = 4 << 10 // a chunk header or trailer line
	maxTrailerLines  = 32
	maxTrailerBytes  = 16 << 10
	bufferSize       = 16 << 10
	trailerSignature = "x-amz-trailer-signature"
)

var errBodyTwice = errors.New("sigv4: body already taken")

// Body returns r's payload as the client meant it, decoded and verified while
// it is read (see the package documentation). The reader yields exactly
// DecodedLength bytes when that is known; fewer end in an *Error with code
// IncompleteBody, more in an *Error with code InvalidRequest. Errors from
// r.Body other than a premature end are returned wrapped. Body may be called
// once.
//
// Modes, from x-amz-content-sha256 (for presigned requests, from the
// X-Amz-Content-Sha256 query parameter, else UNSIGNED-PAYLOAD):
//   - hex SHA-256: the bytes pass through; at EOF the digest is compared
//     (XAmzContentSHA256Mismatch).
//   - UNSIGNED-PAYLOAD: the bytes pass through.
//   - STREAMING-AWS4-HMAC-SHA256-PAYLOAD: aws-chunked, every chunk signature
//     checked (SignatureDoesNotMatch); trailers are refused.
//   - STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER: the same, and the trailer
//     signature is required and checked.
//   - STREAMING-UNSIGNED-PAYLOAD-TRAILER: aws-chunked without signatures
//     (any chunk-signature or x-amz-trailer-signature is ignored).
//
// In the streaming modes every trailer named in x-amz-trailer must arrive
// (MalformedTrailerError). The caller stores Content-Encoding without
// aws-chunked (see StoredContentEncoding) and checks x-amz-checksum-*
// trailers against the data.
func (q *Request) Body(r *http.Request) (io.Reader, error) {
	if q.bodyCalled {
		return nil, errBodyTwice
	}
	q.bodyCalled = true
	body := r.Body
	if body == nil {
		body = http.NoBody
	}
	if !q.mode.chunked() {
		er := &exactReader{q: q, r: body, remaining: q.DecodedLength}
		if q.mode == modeHash {
			er.h = sha256.New()
		}
		return er, nil
	}
	cr := &chunkedReader{
		q:         q,
		br:        bufio.NewReaderSize(body, bufferSize),
		remaining: q.DecodedLength,
		prevSig:   q.seedSig,
		signed:    q.mode != modeStreamingUnsignedTrailer,
	}
	if cr.signed {
		cr.h = sha256.New()
	}
	return cr, nil
}

func readErr(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return errIncomplete()
	}
	return fmt.Errorf("sigv4: read body: %w", err)
}

func errTooLong() *Error {
	return newErr(CodeInvalidRequest, http.StatusBadRequest,
		"The request body is longer than the declared content length.")
}

// exactReader passes a plain body through, enforcing the declared length
// and, with h set, the declared SHA-256.
type exactReader struct {
	q         *Request
	r         io.Reader
	remaining int64 // -1: unknown
	h         hash.Hash
	err       error
}

func (e *exactReader) Read(p []byte) (int, error) {
	if e.err != nil {
		return 0, e.err
	}
	if e.remaining >= 0 && int64(len(p)) > e.remaining+1 {
		// Ask for one byte more than declared, to notice an overlong body.
		p = p[:e.remaining+1]
	}
	n, err := e.r.Read(p)
	if e.remaining >= 0 && int64(n) > e.remaining {
		e.err = errTooLong()
		return 0, e.err
	}
	if n > 0 {
		if e.h != nil {
			e.h.Write(p[:n])
		}
		if e.remaining >= 0 {
			e.remaining -= int64(n)
		}
	}
	switch {
	case err == io.EOF:
		if e.remaining > 0 {
			e.err = errIncomplete()
			return n, e.err
		}
		if e.h != nil && subtle.ConstantTimeCompare(e.h.Sum(nil), e.q.payloadHash) != 1 {
			e.err = newErr(CodeXAmzContentSHA256Mismatch, http.StatusBadRequest,
				"The provided 'x-amz-content-sha256' header does not match what was computed.")
			return n, e.err
		}
		e.err = io.EOF
		e.q.done = true
		return n, io.EOF
	case err != nil:
		e.err = readErr(err)
		return n, e.err
	}
	return n, nil
}

type chunkState int

const (
	stateHeader chunkState = iota
	stateData
	stateDone
)

// chunkedReader decodes aws-chunked:
//
//	hex-size[;chunk-signature=sig]\r\n data \r\n ... 0[;chunk-signature=sig]\r\n
//	[name:value\r\n ...] [x-amz-trailer-signature:sig\r\n] \r\n
//
// Chunk data is streamed; a chunk's signature is checked when its last byte
// has been read.
type chunkedReader struct {
	q         *Request
	br        *bufio.Reader
	signed    bool
	remaining int64 // decoded bytes still expected
	state     chunkState
	chunkLeft int64
	chunkSig  string
	prevSig   string
	h         hash.Hash
	err       error
}

func (c *chunkedReader) Read(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	for {
		switch c.state {
		case stateHeader:
			if err := c.readHeader(); err != nil {
				c.err = err
				return 0, err
			}
		case stateData:
			if c.chunkLeft == 0 {
				if err := c.endChunk(); err != nil {
					c.err = err
					return 0, err
				}
				continue
			}
			if len(p) == 0 {
				return 0, nil
			}
			if int64(len(p)) > c.chunkLeft {
				p = p[:c.chunkLeft]
			}
			n, err := c.br.Read(p)
			if n > 0 {
				if c.h != nil {
					c.h.Write(p[:n])
				}
				c.chunkLeft -= int64(n)
				c.remaining -= int64(n)
				return n, nil
			}
			if err == nil {
				continue
			}
			c.err = readErr(err)
			return 0, c.err
		case stateDone:
			c.err = io.EOF
			return 0, io.EOF
		}
	}
}

// readLine reads one line, without its "\r\n" (a bare "\n" is accepted).
// eof reports a clean end of input before any byte of the line.
func (c *chunkedReader) readLine() (line string, eof bool, err error) {
	b, err := c.br.ReadSlice('\n')
	if err == bufio.ErrBufferFull || len(b) > maxLineLen {
		return "", false, errFraming("line too long")
	}
	if err != nil {
		if err == io.EOF && len(b) == 0 {
			return "", true, nil
		}
		return "", false, readErr(err)
	}
	b = b[:len(b)-1]
	b = bytes.TrimSuffix(b, []byte{'\r'})
	return string(b), false, nil
}

// errFraming reports malformed aws-chunked framing. S3 has no dedicated code
// for it; it answers 400 InvalidRequest, the code used here.
func errFraming(detail string) *Error {
	return newErr(CodeInvalidRequest, http.StatusBadRequest,
		"Malformed aws-chunked encoding: %s.", detail)
}

func (c *chunkedReader) readHeader() error {
	line, eof, err := c.readLine()
	if err != nil {
		return err
	}
	if eof {
		return errIncomplete()
	}
	sizeStr, ext, _ := strings.Cut(line, ";")
	size, ok := parseHex(sizeStr)
	if !ok {
		return errFraming("chunk size is not hexadecimal")
	}
	c.chunkSig = ""
	for ext != "" {
		var e string
		e, ext, _ = strings.Cut(ext, ";")
		k, v, _ := strings.Cut(e, "=")
		if strings.TrimSpace(k) == "chunk-signature" {
			c.chunkSig = strings.TrimSpace(v)
		}
	}
	if c.signed && c.chunkSig == "" {
		return errFraming("chunk without chunk-signature")
	}
	if size > c.remaining {
		return errFraming("chunk extends past x-amz-decoded-content-length")
	}
	if c.h != nil {
		c.h.Reset()
	}
	if size == 0 {
		if err := c.checkChunkSig(); err != nil {
			return err
		}
		if c.remaining > 0 {
			return errIncomplete()
		}
		if err := c.readTrailers(); err != nil {
			return err
		}
		c.state = stateDone
		c.q.done = true
		return nil
	}
	c.chunkLeft = size
	c.state = stateData
	return nil
}

// parseHex parses a chunk size: 1 to 15 hex digits (no sign, no spaces), so
// that it cannot overflow int64.
func parseHex(s string) (int64, bool) {
	if len(s) == 0 || len(s) > 15 {
		return 0, false
	}
	var n int64
	for i := 0; i < len(s); i++ {
		if !ishex(s[i]) {
			return 0, false
		}
		n = n<<4 | int64(unhex(s[i]))
	}
	return n, true
}

// endChunk consumes the "\r\n" after a chunk's data and checks its signature.
func (c *chunkedReader) endChunk() error {
	b, err := c.br.ReadByte()
	if err == nil && b == '\r' {
		b, err = c.br.ReadByte()
	}
	if err != nil {
		return readErr(err)
	}
	if b != '\n' {
		return errFraming("chunk data not followed by CRLF")
	}
	if err := c.checkChunkSig(); err != nil {
		return err
	}
	c.state = stateHeader
	return nil
}

func (c *chunkedReader) checkChunkSig() error {
	if !c.signed {
		return nil
	}
	sts := "AWS4-HMAC-SHA256-PAYLOAD\n" + c.q.amzDate + "\n" + c.q.scope + "\n" +
		c.prevSig + "\n" + emptySHA256 + "\n" + hex.EncodeToString(c.h.Sum(nil))
	want := hex.EncodeToString(hmacSHA256(c.q.signingKey, []byte(sts)))
	if subtle.ConstantTimeCompare([]byte(want), []byte(c.chunkSig)) != 1 {
		return errSignature()
	}
	c.prevSig = c.chunkSig
	return nil
}

func errTrailer(detail string) *Error {
	return newErr(CodeMalformedTrailerError, http.StatusBadRequest,
		"The request contained trailing data that was not well-formed or did not conform to our published schema: %s.", detail)
}

// readTrailers reads the lines after the final chunk up to the empty line
// (or the end of the body, which some encoders leave out). The trailer
// signature covers the trailers in their canonical form "name:value\n".
func (c *chunkedReader) readTrailers() error {
	var canon strings.Builder
	sig := ""
	haveSig := false
	total := 0
	for i := 0; ; i++ {
		line, eof, err := c.readLine()
		if err != nil {
			return err
		}
		if i >= maxTrailerLines {
			return errTrailer("too many trailers")
		}
		if line == "" && !eof && c.q.mode == modeStreamingSignedTrailer && !haveSig {
			// Some encoders put an empty line between the trailers and
			// their signature.
			continue
		}
		if eof || line == "" {
			break
		}
		if total += len(line); total > maxTrailerBytes {
			return errTrailer("trailers too long")
		}
		if haveSig {
			return errTrailer("trailer after x-amz-trailer-signature")
		}
		name, value, ok := strings.Cut(line, ":")
		name = strings.ToLower(strings.TrimSpace(name))
		value = strings.TrimSpace(value)
		if !ok || !validName(name) || !validValue(value) {
			return errTrailer("trailer line is not name:value")
		}
		if name == trailerSignature {
			sig, haveSig = value, true
			continue
		}
		if c.q.mode == modeStreamingSigned {
			// Trailers were not announced by the payload mode and would be
			// unsigned: a client must not be able to slip in a checksum.
			return errTrailer("trailer in a payload without trailers")
		}
		if _, dup := c.q.trailers[name]; dup {
			return errTrailer("duplicate trailer " + truncate(name))
		}
		if c.q.trailers == nil {
			c.q.trailers = make(map[string]string)
		}
		c.q.trailers[name] = value
		canon.WriteString(name)
		canon.WriteByte(':')
		canon.WriteString(value)
		canon.WriteByte('\n')
	}
	for _, d := range c.q.declared {
		if _, ok := c.q.trailers[d]; !ok {
			return errTrailer("missing trailer " + truncate(d))
		}
	}
	if c.q.mode != modeStreamingSignedTrailer {
		return nil
	}
	if !haveSig {
		return errTrailer("missing x-amz-trailer-signature")
	}
	h := sha256.Sum256([]byte(canon.String()))
	sts := "AWS4-HMAC-SHA256-TRAILER\n" + c.q.amzDate + "\n" + c.q.scope + "\n" +
		c.prevSig + "\n" + hex.EncodeToString(h[:])
	want := hex.EncodeToString(hmacSHA256(c.q.signingKey, []byte(sts)))
	if subtle.ConstantTimeCompare([]byte(want), []byte(sig)) != 1 {
		return errSignature()
	}
	return nil
}

// validName reports whether s is an HTTP header name (an RFC 9110 token).
func validName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if unreserved(c) || strings.IndexByte("!#$%&'*+^`|", c) >= 0 {
			continue
		}
		return false
	}
	return true
}

// validValue reports whether s may be an HTTP header value: no control
// characters but tab.
func validValue(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < ' ' && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}
