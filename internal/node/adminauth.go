package node

import (
	"encoding/hex"
	"errors"
	"io"
	"net/http"

	"github.com/redoubt-io/redoubt/internal/admin"
	"github.com/redoubt-io/redoubt/internal/s3api/sigv4"
)

// adminAuth checks admin requests with the S3 API's SigV4 verifier, so
// that the admin API takes the same keys, region and clock skew as S3.
type adminAuth struct {
	v *sigv4.Verifier
	// root is the root access key.
	root string
}

var _ admin.Authenticator = adminAuth{}

// errPayloadUnsigned refuses what the S3 API accepts but the admin API
// does not: a body that is not covered by the signature.
var errPayloadUnsigned = &admin.Error{Status: http.StatusBadRequest, Code: sigv4.CodeInvalidRequest,
	Message: "admin requests must sign their payload: x-amz-content-sha256 must be the hex SHA-256 of the body, not UNSIGNED-PAYLOAD, an aws-chunked mode or a presigned URL"}

func (a adminAuth) Authenticate(r *http.Request) (admin.Identity, io.Reader, error) {
	if sigv4.Anonymous(r) {
		return admin.Identity{}, nil, admin.ErrUnsigned
	}
	q, err := a.v.Verify(r)
	if err != nil {
		return admin.Identity{}, nil, fromSigV4(err)
	}
	// A signature whose payload hash is a digest covers the body too: a
	// change cannot be replayed with another body
	// (TestAdminRefusesBadSignatures: unsigned payload, swapped body).
	if h := r.Header.Get("X-Amz-Content-Sha256"); len(h) != 64 || !isHex(h) {
		return admin.Identity{}, nil, errPayloadUnsigned
	}
	body, err := q.Body(r)
	if err != nil {
		return admin.Identity{}, nil, fromSigV4(err)
	}
	return admin.Identity{AccessKey: q.AccessKey, Root: q.AccessKey == a.root}, sigv4Body{body}, nil
}

func isHex(s string) bool {
	_, err := hex.DecodeString(s)
	return err == nil
}

// fromSigV4 turns the verifier's *sigv4.Error into the admin API's.
func fromSigV4(err error) error {
	var se *sigv4.Error
	if errors.As(err, &se) {
		return &admin.Error{Status: se.Status, Code: se.Code, Message: se.Message}
	}
	return err
}

// sigv4Body reports the body's verification failures as admin errors.
type sigv4Body struct{ r io.Reader }

func (b sigv4Body) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if err != nil && err != io.EOF {
		err = fromSigV4(err)
	}
	return n, err
}
