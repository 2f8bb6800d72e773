package sigv4

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

// testEncoder is an aws-chunked encoder written from the specification,
// independent of the decoder under test.
type testEncoder struct {
	key            []byte // signing key; nil for unsigned chunks
	date, scope    string
	prev           string // previous signature (the seed at first)
	trailers       [][2]string
	signTrailers   bool
	noFinalCRLF    bool // end the body right after the trailers
	upperHex       bool
	chunkSizeOrder []int // chunk sizes to use in turn, the last repeating
}

func (e *testEncoder) sign(s string) string {
	m := hmac.New(sha256.New, e.key)
	io.WriteString(m, s)
	return hex.EncodeToString(m.Sum(nil))
}

func (e *testEncoder) chunk(out *bytes.Buffer, data []byte) {
	size := strconv.FormatInt(int64(len(data)), 16)
	if e.upperHex {
		size = strings.ToUpper(size)
	}
	out.WriteString(size)
	if e.key != nil {
		dh := sha256.Sum256(data)
		eh := sha256.Sum256(nil)
		sig := e.sign(strings.Join([]string{"AWS4-HMAC-SHA256-PAYLOAD", e.date, e.scope, e.prev,
			hex.EncodeToString(eh[:]), hex.EncodeToString(dh[:])}, "\n"))
		out.WriteString(";chunk-signature=" + sig)
		e.prev = sig
	}
	out.WriteString("\r\n")
	if len(data) > 0 {
		out.Write(data)
		out.WriteString("\r\n")
	}
}

func (e *testEncoder) encode(data []byte) []byte {
	var out bytes.Buffer
	for i := 0; len(data) > 0; i++ {
		n := e.chunkSizeOrder[min(i, len(e.chunkSizeOrder)-1)]
		n = min(n, len(data))
		e.chunk(&out, data[:n])
		data = data[n:]
	}
	e.chunk(&out, nil)
	var canon strings.Builder
	for _, t := range e.trailers {
		out.WriteString(t[0] + ":" + t[1] + "\r\n")
		canon.WriteString(t[0] + ":" + t[1] + "\n")
	}
	if e.signTrailers {
		th := sha256.Sum256([]byte(canon.String()))
		sig := e.sign("AWS4-HMAC-SHA256-TRAILER\n" + e.date + "\n" + e.scope + "\n" + e.prev + "\n" + hex.EncodeToString(th[:]))
		out.WriteString("x-amz-trailer-signature:" + sig + "\r\n")
	}
	if !e.noFinalCRLF {
		out.WriteString("\r\n")
	}
	return out.Bytes()
}

func crc32Trailer(data []byte) [2]string {
	var b [4]byte
	c := crc32.ChecksumIEEE(data)
	b[0], b[1], b[2], b[3] = byte(c>>24), byte(c>>16), byte(c>>8), byte(c)
	return [2]string{"x-amz-checksum-crc32", base64.StdEncoding.EncodeToString(b[:])}
}

// streamingRequest builds a request signed by the SDK signer with the
// streaming payload mode and a body from a testEncoder set up by setup.
// mutate, if set, changes the encoded body before it is attached.
func streamingRequest(t testing.TB, mode string, data []byte, setup func(e *testEncoder), mutate func([]byte) []byte) *http.Request {
	t.Helper()
	enc := func(seed string) (*testEncoder, []byte) {
		e := &testEncoder{date: signTime.Format(iso8601), scope: signTime.Format(yyyymmdd) + "/us-east-1/s3/aws4_request",
			prev: seed, chunkSizeOrder: []int{64 << 10}}
		if mode != streamingUnsignedTrailr {
			e.key = signingKey(exampleSecret, signTime.Format(yyyymmdd), "us-east-1")
		}
		if setup != nil {
			setup(e)
		}
		return e, e.encode(data)
	}
	e, dummy := enc(strings.Repeat("0", 64))
	r := httptest.NewRequest("PUT", "http://localhost:9000/bucket/object", nil)
	r.ContentLength = int64(len(dummy))
	r.Header.Set("Content-Encoding", "aws-chunked")
	r.Header.Set("X-Amz-Decoded-Content-Length", strconv.Itoa(len(data)))
	if len(e.trailers) > 0 {
		var names []string
		for _, tr := range e.trailers {
			names = append(names, tr[0])
		}
		r.Header.Set("X-Amz-Trailer", strings.Join(names, ","))
	}
	sdkSign(t, r, mode, "us-east-1", signTime)
	auth := r.Header.Get("Authorization")
	seed := auth[strings.LastIndex(auth, "=")+1:]
	_, body := enc(seed)
	if mutate != nil {
		body = mutate(body)
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	return r
}

func testData(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i>>8)
	}
	return b
}

func TestChunkedRoundTrip(t *testing.T) {
	v := newTestVerifier(t, signTime)
	sizes := []int{0, 1, 100, 8 << 10, 64 << 10, 64<<10 + 1, 200 << 10}
	for _, mode := range []string{streamingSigned, streamingSignedTrailer, streamingUnsignedTrailr} {
		for _, n := range sizes {
			for _, chunk := range []int{1 << 10, 64 << 10} {
				if n > 10<<10 && chunk < 8<<10 {
					continue
				}
				t.Run(fmt.Sprintf("%s/%d/%d", mode, n, chunk), func(t *testing.T) {
					data := testData(n)
					trailer := mode != streamingSigned
					r := streamingRequest(t, mode, data, func(e *testEncoder) {
						e.chunkSizeOrder = []int{chunk}
						if trailer {
							e.trailers = [][2]string{crc32Trailer(data)}
							e.signTrailers = mode == streamingSignedTrailer
						}
					}, nil)
					q := mustVerify(t, v, r)
					if q.DecodedLength != int64(n) {
						t.Fatalf("DecodedLength %d", q.DecodedLength)
					}
					if q.Trailers() != nil {
						t.Fatal("trailers before EOF")
					}
					got := readAll(t, q, r)
					if !bytes.Equal(got, data) {
						t.Fatalf("decoded %d bytes, want %d", len(got), n)
					}
					tr := q.Trailers()
					if trailer {
						if want := crc32Trailer(data); tr[want[0]] != want[1] || len(tr) != 1 {
							t.Fatalf("trailers %v", tr)
						}
					} else if tr == nil || len(tr) != 0 {
						t.Fatalf("trailers %v", tr)
					}
				})
			}
		}
	}
}

// The framings real SDKs produce for STREAMING-UNSIGNED-PAYLOAD-TRAILER:
// one chunk for a body of known length, upper- or lower-case sizes, and
// with or without the final empty line.
func TestUnsignedTrailerVariants(t *testing.T) {
	v := newTestVerifier(t, signTime)
	data := testData(300 << 10)
	for _, tc := range []struct {
		name  string
		setup func(e *testEncoder)
	}{
		{"one chunk", func(e *testEncoder) { e.chunkSizeOrder = []int{len(data)} }},
		{"uneven", func(e *testEncoder) { e.chunkSizeOrder = []int{1, 65535, 3, 100000} }},
		{"upper hex", func(e *testEncoder) { e.upperHex = true }},
		{"no final crlf", func(e *testEncoder) { e.noFinalCRLF = true }},
		{"signature ignored", func(e *testEncoder) { e.signTrailers = true; e.key = []byte("k") }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := streamingRequest(t, streamingUnsignedTrailr, data, func(e *testEncoder) {
				e.trailers = [][2]string{crc32Trailer(data)}
				tc.setup(e)
			}, nil)
			q := mustVerify(t, v, r)
			if got := readAll(t, q, r); !bytes.Equal(got, data) {
				t.Fatalf("decoded %d bytes", len(got))
			}
			if want := crc32Trailer(data); q.Trailers()[want[0]] != want[1] {
				t.Fatalf("trailers %v", q.Trailers())
			}
		})
	}
}

func TestChunkedErrors(t *testing.T) {
	v := newTestVerifier(t, signTime)
	data := testData(100 << 10)
	replace := func(old, new string) func([]byte) []byte {
		return func(b []byte) []byte { return bytes.Replace(b, []byte(old), []byte(new), 1) }
	}
	crc := crc32Trailer(data)
	for _, tc := range []struct {
		name   string
		mode   string
		setup  func(e *testEncoder)
		mutate func([]byte) []byte
		code   string
	}{
		{name: "truncated in data", mode: streamingSigned, mutate: func(b []byte) []byte { return b[:1000] }, code: CodeIncompleteBody},
		{name: "truncated in header", mode: streamingSigned, mutate: func(b []byte) []byte { return b[:64<<10+100] }, code: CodeIncompleteBody},
		{name: "truncated before final", mode: streamingUnsignedTrailr, mutate: func(b []byte) []byte { return b[:len(data)+10] }, code: CodeIncompleteBody},
		{name: "empty body", mode: streamingSigned, mutate: func([]byte) []byte { return nil }, code: CodeIncompleteBody},
		{name: "data tampered", mode: streamingSigned, mutate: func(b []byte) []byte { b[len(b)-200] ^= 1; return b }, code: CodeSignatureDoesNotMatch},
		{name: "size not hex", mode: streamingUnsignedTrailr, mutate: replace("10000\r\n", "1000g\r\n"), code: CodeInvalidRequest},
		{name: "size negative", mode: streamingUnsignedTrailr, mutate: replace("10000\r\n", "-1000\r\n"), code: CodeInvalidRequest},
		{name: "size overlong", mode: streamingUnsignedTrailr, mutate: replace("10000\r\n", "00000000000000010000\r\n"), code: CodeInvalidRequest},
		{name: "chunk past declared length", mode: streamingUnsignedTrailr, mutate: replace("10000\r\n", "20000\r\n"), code: CodeInvalidRequest},
		{name: "early final chunk", mode: streamingUnsignedTrailr, mutate: replace("10000\r\n", "0\r\n\r\n"), code: CodeIncompleteBody},
		{name: "long line", mode: streamingUnsignedTrailr, mutate: replace("10000\r\n", "10000;"+strings.Repeat("x", 5000)+"\r\n"), code: CodeInvalidRequest},
		{name: "no crlf after data", mode: streamingUnsignedTrailr, setup: func(e *testEncoder) { e.chunkSizeOrder = []int{1000} },
			mutate: replace("\r\n3e8\r\n", "xx3e8\r\n"), code: CodeInvalidRequest},
		{name: "missing chunk signature", mode: streamingSigned, mutate: func(b []byte) []byte {
			i := bytes.Index(b, []byte(";chunk-signature="))
			return append(b[:i:i], b[i+17+64:]...)
		}, code: CodeInvalidRequest},
		{name: "chunk signature swapped", mode: streamingSigned, mutate: func(b []byte) []byte {
			i := bytes.Index(b, []byte(";chunk-signature=")) + 17
			copy(b[i:], strings.Repeat("a", 64))
			return b
		}, code: CodeSignatureDoesNotMatch},
		{name: "unsigned trailer in signed payload", mode: streamingSigned,
			setup: func(e *testEncoder) { e.trailers = [][2]string{crc} }, code: CodeMalformedTrailerError},
		{name: "trailer tampered", mode: streamingSignedTrailer,
			setup:  func(e *testEncoder) { e.trailers = [][2]string{crc}; e.signTrailers = true },
			mutate: replace(crc[1], "AAAAAA=="), code: CodeSignatureDoesNotMatch},
		{name: "trailer signature missing", mode: streamingSignedTrailer,
			setup: func(e *testEncoder) { e.trailers = [][2]string{crc} }, code: CodeMalformedTrailerError},
		{name: "declared trailer missing", mode: streamingUnsignedTrailr,
			setup: func(e *testEncoder) { e.trailers = [][2]string{crc} }, mutate: replace(crc[0]+":"+crc[1]+"\r\n", ""), code: CodeMalformedTrailerError},
		{name: "trailer without colon", mode: streamingUnsignedTrailr,
			setup: func(e *testEncoder) { e.trailers = [][2]string{crc} }, mutate: replace(crc[0]+":", crc[0]+"="), code: CodeMalformedTrailerError},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := streamingRequest(t, tc.mode, data, tc.setup, tc.mutate)
			q := mustVerify(t, v, r)
			wantBodyCode(t, q, r, tc.code)
		})
	}
}

func TestStreamingHeaders(t *testing.T) {
	v := newTestVerifier(t, signTime)
	r := httptest.NewRequest("PUT", "http://localhost/b/k", strings.NewReader("0\r\n\r\n"))
	sdkSign(t, r, streamingUnsignedTrailr, "us-east-1", signTime)
	wantCode(t, v, r, CodeMissingContentLength, 411)
	r = httptest.NewRequest("PUT", "http://localhost/b/k", strings.NewReader("0\r\n\r\n"))
	r.Header.Set("X-Amz-Decoded-Content-Length", "-5")
	sdkSign(t, r, streamingUnsignedTrailr, "us-east-1", signTime)
	wantCode(t, v, r, CodeInvalidArgument, 400)
}

// Randomly cut and corrupted bodies never yield more than the declared
// length and, when they fail, fail with an *Error.
func TestChunkedCorruptionRandom(t *testing.T) {
	seed := time.Now().UnixNano()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(uint64(seed), 1))
	v := newTestVerifier(t, signTime)
	modes := []string{streamingSigned, streamingSignedTrailer, streamingUnsignedTrailr}
	for i := 0; i < 200; i++ {
		mode := modes[rng.IntN(len(modes))]
		data := testData(rng.IntN(20 << 10))
		chunk := 1 + rng.IntN(8<<10)
		r := streamingRequest(t, mode, data, func(e *testEncoder) {
			e.chunkSizeOrder = []int{chunk}
			if mode != streamingSigned {
				e.trailers = [][2]string{crc32Trailer(data)}
				e.signTrailers = mode == streamingSignedTrailer
			}
		}, func(b []byte) []byte {
			switch rng.IntN(3) {
			case 0:
				return b[:rng.IntN(len(b))]
			case 1:
				b[rng.IntN(len(b))] ^= byte(1 + rng.IntN(255))
				return b
			default:
				return append(b, []byte("0\r\n\r\n")...) // trailing garbage is ignored
			}
		})
		q := mustVerify(t, v, r)
		body, _ := q.Body(r)
		got, err := io.ReadAll(body)
		if len(got) > len(data) {
			t.Fatalf("seed %d case %d: %d bytes decoded, %d declared", seed, i, len(got), len(data))
		}
		var e *Error
		if err != nil && !errors.As(err, &e) {
			t.Fatalf("seed %d case %d: error %v is not an *Error", seed, i, err)
		}
		if err == nil && !bytes.Equal(got, data) {
			// Only unsigned data may change undetected (the checksum
			// trailer is the caller's to check).
			if mode != streamingUnsignedTrailr {
				t.Fatalf("seed %d case %d: corrupted signed body accepted", seed, i)
			}
		}
	}
}

// A client claiming a huge chunk must not make the decoder allocate it.
func TestChunkClaimsDoNotAllocate(t *testing.T) {
	v := newTestVerifier(t, signTime)
	r := httptest.NewRequest("PUT", "http://localhost/b/k", nil)
	r.Header.Set("X-Amz-Decoded-Content-Length", strconv.FormatInt(1<<60, 10))
	sdkSign(t, r, streamingUnsignedTrailr, "us-east-1", signTime)
	q := mustVerify(t, v, r)
	r.Body = io.NopCloser(strings.NewReader("fffffffffffffff\r\nshort"))
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	body, _ := q.Body(r)
	n, err := io.Copy(io.Discard, body)
	runtime.ReadMemStats(&after)
	if n != 5 || !errors.Is(err, &Error{Code: CodeIncompleteBody}) {
		t.Fatalf("copied %d, err %v", n, err)
	}
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 1<<20 {
		t.Fatalf("allocated %d bytes", grew)
	}
}

func BenchmarkChunkedSigned64K(b *testing.B) {
	v := newTestVerifier(b, signTime)
	data := testData(16 << 20)
	r := streamingRequest(b, streamingSigned, data, nil, nil)
	encoded, _ := io.ReadAll(r.Body)
	buf := make([]byte, 32<<10)
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	for b.Loop() {
		r.Body = io.NopCloser(bytes.NewReader(encoded))
		q, err := v.Verify(r)
		if err != nil {
			b.Fatal(err)
		}
		body, _ := q.Body(r)
		if _, err := io.CopyBuffer(io.Discard, struct{ io.Reader }{body}, buf); err != nil {
			b.Fatal(err)
		}
	}
}
