// Package checksum names the additional checksums of the S3 API (CRC32,
// CRC32C, CRC64NVME, SHA1, SHA256) and makes their hashes; Combine joins
// the CRCs of two consecutive byte strings into the CRC of both, which
// gives a multipart object's full-object checksum from its parts'. It is
// pure: no I/O, no state beyond the hashes it returns.
package checksum

import (
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"hash"
	"hash/crc32"
	"hash/crc64"
	"strings"

	"github.com/minio/crc64nvme"
)

// Algorithm is an S3 checksum algorithm name in its canonical upper case.
type Algorithm string

const (
	CRC32     Algorithm = "CRC32"
	CRC32C    Algorithm = "CRC32C"
	CRC64NVME Algorithm = "CRC64NVME"
	SHA1      Algorithm = "SHA1"
	SHA256    Algorithm = "SHA256"
)

// All lists the algorithms in a fixed order.
var All = []Algorithm{CRC32, CRC32C, CRC64NVME, SHA1, SHA256}

var (
	castagnoli = crc32.MakeTable(crc32.Castagnoli)
	// nvme is CRC-64/NVME: polynomial 0xAD93D23594C93659, reflected, with
	// the same init and final xor as Go's crc64 package expects. Combine
	// uses it; New hashes with crc64nvme, which computes the same CRC with
	// carry-less multiplication (PCLMULQDQ, AVX-512, ARM PMULL): 64 MiB
	// PUTs, which the server checksums with CRC64NVME by default, spent a
	// fifth of their CPU in the table-driven hash/crc64.
	nvme = crc64.MakeTable(0x9a6c9329ac4bc9b5)
)

// Parse accepts an algorithm name in any case (as sent in
// x-amz-checksum-algorithm or x-amz-sdk-checksum-algorithm).
func Parse(name string) (Algorithm, error) {
	a := Algorithm(strings.ToUpper(strings.TrimSpace(name)))
	for _, b := range All {
		if a == b {
			return a, nil
		}
	}
	return "", fmt.Errorf("unknown checksum algorithm %q", name)
}

// New returns a fresh hash for a, or nil for an unknown algorithm.
func New(a Algorithm) hash.Hash {
	switch a {
	case CRC32:
		return crc32.NewIEEE()
	case CRC32C:
		return crc32.New(castagnoli)
	case CRC64NVME:
		return crc64nvme.New()
	case SHA1:
		return sha1.New()
	case SHA256:
		return sha256.New()
	}
	return nil
}

// Header is the HTTP header that carries a's value, in lower case, e.g.
// "x-amz-checksum-crc32c".
func (a Algorithm) Header() string { return "x-amz-checksum-" + strings.ToLower(string(a)) }

// FromHeader returns the algorithm whose value header is name (any case).
func FromHeader(name string) (Algorithm, bool) {
	n := strings.ToLower(name)
	if !strings.HasPrefix(n, "x-amz-checksum-") {
		return "", false
	}
	a, err := Parse(strings.TrimPrefix(n, "x-amz-checksum-"))
	if err != nil {
		return "", false
	}
	return a, true
}

// Encode returns the base64 form S3 uses for a checksum value.
func Encode(sum []byte) string { return base64.StdEncoding.EncodeToString(sum) }

// Size is the length in bytes of a's raw sum.
func (a Algorithm) Size() int {
	switch a {
	case CRC32, CRC32C:
		return 4
	case CRC64NVME:
		return 8
	case SHA1:
		return 20
	case SHA256:
		return 32
	}
	return 0
}
