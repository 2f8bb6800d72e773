package objects

import (
	"crypto/md5"
	"io"
	"strings"
	"testing"

	"github.com/redoubt-io/redoubt/internal/checksum"
)

// oneByteReader hands out a body a byte or a few at a time, as a slow
// connection does, so the pipelined hashing sees writes of every size.
type oneByteReader struct {
	r io.Reader
	i int
}

func (o *oneByteReader) Read(p []byte) (int, error) {
	o.i++
	return o.r.Read(p[:min(len(p), 1+o.i%5)])
}

// Large bodies are hashed on a goroutine of their own: the ETag, the
// checksums and the Content-MD5 check must come out as for small ones,
// whatever the sizes of the reads and however the body ends.
func TestPutPipelinedDigests(t *testing.T) {
	e := newEnv(t)
	e.bucket("bkt", Unversioned)
	sizes := []int{pipelineMin - 1, pipelineMin, pipelineMin + 1,
		hashPipeBufs*hashPipeBuf + 17, 2*hashPipeBufs*hashPipeBuf + 1}
	for _, n := range sizes {
		body := big(n, byte(n))
		sum := md5.Sum([]byte(body))
		for _, size := range []int64{int64(n), -1} {
			for _, slow := range []bool{false, true} {
				if slow && n > 2*pipelineMin {
					continue // byte-sized reads of many MiB are slow under -race
				}
				var r io.Reader = strings.NewReader(body)
				if slow {
					r = &oneByteReader{r: r}
				}
				oi, err := e.s.PutObject(e.ctx, "bkt", "k", r, size, PutOptions{
					ContentMD5: sum[:], ChecksumAlgorithm: string(checksum.CRC64NVME)})
				if err != nil {
					t.Fatalf("n=%d size=%d slow=%v: %v", n, size, slow, err)
				}
				if oi.ETag != `"`+md5hex(body)+`"` {
					t.Fatalf("n=%d size=%d slow=%v: etag %s", n, size, slow, oi.ETag)
				}
				if got, want := oi.Checksums.CRC64NVME, sumOf(checksum.CRC64NVME, body); got != want {
					t.Fatalf("n=%d size=%d slow=%v: crc64nvme %s, want %s", n, size, slow, got, want)
				}
			}
		}
		bad := md5.Sum([]byte(body + "x"))
		if _, err := e.s.PutObject(e.ctx, "bkt", "k", strings.NewReader(body), int64(n),
			PutOptions{ContentMD5: bad[:]}); err == nil {
			t.Fatalf("n=%d: wrong content-md5 accepted", n)
		}
	}
}
