package s3api

import (
	"errors"
	"io"
	"net/http"

	"github.com/redoubt-io/redoubt/internal/s3api/sigv4"
)

// SigV4 returns an Authenticator that verifies AWS Signature V4 (header
// and presigned forms, plain and aws-chunked payloads) with v, and refuses
// anonymous requests with AccessDenied.
func SigV4(v *sigv4.Verifier) Authenticator { return sigv4Auth{v: v} }

type sigv4Auth struct{ v *sigv4.Verifier }

func (a sigv4Auth) Authenticate(r *http.Request) (Principal, error) {
	if sigv4.Anonymous(r) {
		return nil, errAccessDenied
	}
	q, err := a.v.Verify(r)
	if err != nil {
		return nil, fromSigV4(err)
	}
	return sigv4Principal{q: q}, nil
}

// fromSigV4 turns a *sigv4.Error into the *Error it answers with.
func fromSigV4(err error) error {
	var se *sigv4.Error
	if errors.As(err, &se) {
		return &Error{Code: se.Code, Message: se.Message, Status: se.Status, AccessKeyID: se.AccessKeyID,
			HeadersNotSigned: se.HeadersNotSigned, ArgumentName: se.ArgumentName, ArgumentValue: se.ArgumentValue}
	}
	return err
}

type sigv4Principal struct{ q *sigv4.Request }

func (p sigv4Principal) AccessKey() string { return p.q.AccessKey }

func (p sigv4Principal) Trailers() map[string]string { return p.q.Trailers() }

func (p sigv4Principal) Body(r *http.Request) (io.Reader, error) {
	b, err := p.q.Body(r)
	if err != nil {
		return nil, fromSigV4(err)
	}
	return sigv4Body{b}, nil
}

type sigv4Body struct{ r io.Reader }

func (b sigv4Body) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if err != nil && err != io.EOF {
		err = fromSigV4(err)
	}
	return n, err
}
