package sigv4

import (
	"bytes"
	"io"
	"math/rand/v2"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestHangTmp(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	key := signingKey(exampleSecret, signTime.Format(yyyymmdd), "us-east-1")
	data := testData(3000)
	r := streamingRequest(t, streamingSignedTrailer, data, func(e *testEncoder) {
		e.chunkSizeOrder = []int{1024}
		e.trailers = [][2]string{crc32Trailer(data)}
		e.signTrailers = true
	}, nil)
	base, _ := io.ReadAll(r.Body)
	for i := 0; i < 200000; i++ {
		body := bytes.Clone(base)
		for j := rng.IntN(4); j >= 0; j-- {
			switch rng.IntN(3) {
			case 0:
				body = body[:rng.IntN(len(body)+1)]
			case 1:
				if len(body) > 0 {
					body[rng.IntN(len(body))] = byte(rng.IntN(256))
				}
			case 2:
				k := rng.IntN(len(body) + 1)
				body = append(body[:k:k], body[rng.IntN(k+1):]...)
			}
		}
		declared := rng.IntN(4000)
		mode := []payloadMode{modeStreamingSigned, modeStreamingSignedTrailer, modeStreamingUnsignedTrailer}[rng.IntN(3)]
		q := &Request{DecodedLength: int64(declared), mode: mode, signingKey: key,
			seedSig: strings.Repeat("0", 64), amzDate: signTime.Format(iso8601),
			scope: signTime.Format(yyyymmdd) + "/us-east-1/s3/aws4_request"}
		done := make(chan struct{})
		go func() {
			rd, _ := q.Body(&http.Request{Body: io.NopCloser(bytes.NewReader(body))})
			io.Copy(io.Discard, rd)
			close(done)
		}()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatalf("hang: mode %d declared %d body %q", mode, declared, body)
		}
	}
}
