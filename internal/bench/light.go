package bench

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

// lightClient sends the timed GET, HEAD and PUT requests as plain signed
// HTTP requests, without the SDK's middleware stack. On a small machine
// the generator shares the CPU with the server it measures; the SDK spends
// several times the CPU per small request that signing and sending does,
// so a light client leaves more of the machine to the server, as a load
// generator on another host would.
type lightClient struct {
	hc       *http.Client
	base     string // endpoint + "/" + bucket + "/"
	region   string
	creds    aws.Credentials
	signer   *v4.Signer
	unsigned bool
}

func newLightClient(cfg Config, tr *http.Transport, bucket string) *lightClient {
	return &lightClient{
		hc:       &http.Client{Transport: tr},
		base:     strings.TrimSuffix(cfg.Endpoint, "/") + "/" + bucket + "/",
		region:   cfg.Region,
		creds:    aws.Credentials{AccessKeyID: cfg.AccessKey, SecretAccessKey: cfg.SecretKey},
		signer:   v4.NewSigner(),
		unsigned: cfg.UnsignedPayload,
	}
}

// statusError is a non-2xx answer, with the S3 error code from its body.
type statusError struct {
	Status int
	Code   string
}

func (e *statusError) Error() string { return fmt.Sprintf("%s (HTTP %d)", e.Code, e.Status) }

var codeRE = regexp.MustCompile(`<Code>([^<]{1,64})</Code>`)

var emptySHA256 = hex.EncodeToString(sha256.New().Sum(nil))

// do sends one signed request; body, when not nil, is size bytes long.
func (c *lightClient) do(ctx context.Context, method, key string, body io.ReadSeeker, size int64) (*http.Response, error) {
	hash := emptySHA256
	switch {
	case body != nil && c.unsigned:
		hash = "UNSIGNED-PAYLOAD"
	case body != nil:
		// Hash in one pass and rewind, as the SDK does: memory stays flat
		// whatever the object size.
		h := sha256.New()
		if _, err := io.Copy(h, body); err != nil {
			return nil, err
		}
		if _, err := body.Seek(0, io.SeekStart); err != nil {
			return nil, err
		}
		hash = hex.EncodeToString(h.Sum(nil))
	}
	var rd io.Reader
	switch {
	case body != nil && size == 0:
		// An empty non-nil body would go out chunked, without the
		// Content-Length S3 requires; NoBody sends "Content-Length: 0".
		rd = http.NoBody
	case body != nil:
		rd = body
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+escapeKey(key), rd)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.ContentLength = size
	}
	req.Header.Set("X-Amz-Content-Sha256", hash)
	if err := c.signer.SignHTTP(ctx, c.creds, req, hash, "s3", c.region, time.Now()); err != nil {
		return nil, err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode/100 != 2 {
		defer resp.Body.Close()
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
		e := &statusError{Status: resp.StatusCode, Code: "HTTP" + strconv.Itoa(resp.StatusCode)}
		if m := codeRE.FindSubmatch(msg); m != nil {
			e.Code = string(m[1])
		}
		return nil, e
	}
	return resp, nil
}

// escapeKey escapes a key for a path, keeping its slashes.
func escapeKey(key string) string {
	parts := strings.Split(key, "/")
	for i, p := range parts {
		parts[i] = url.PathEscape(p)
	}
	return strings.Join(parts, "/")
}

func (c *lightClient) put(ctx context.Context, key string, body io.ReadSeeker, size int64) error {
	resp, err := c.do(ctx, http.MethodPut, key, body, size)
	if err != nil {
		return err
	}
	io.Copy(io.Discard, resp.Body)
	return resp.Body.Close()
}

// get reads the object into buf-sized reads and returns its length.
func (c *lightClient) get(ctx context.Context, key string, buf []byte) (int64, error) {
	resp, err := c.do(ctx, http.MethodGet, key, nil, 0)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var n int64
	for {
		m, err := resp.Body.Read(buf)
		n += int64(m)
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, fmt.Errorf("reading body: %w", err)
		}
	}
}

func (c *lightClient) head(ctx context.Context, key string) (int64, error) {
	resp, err := c.do(ctx, http.MethodHead, key, nil, 0)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.ContentLength, nil
}
