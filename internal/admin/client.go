package admin

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

// Client calls nodes' admin APIs with requests signed (SigV4, service
// "s3", the payload's SHA-256 signed too) with the given credentials, as
// the Guard requires. It is safe for concurrent use.
type Client struct {
	AccessKey, SecretKey string
	// Region is the region the nodes serve; "" means us-east-1.
	Region string
	// HTTP sends the requests; nil means http.DefaultClient.
	HTTP *http.Client
}

// maxAnswer bounds the answers Call reads.
const maxAnswer = 16 << 20

// Call sends method path to the admin API at addr (host:port or a URL)
// with in encoded as JSON (nil: no body) and decodes a 200 answer into
// out (nil: ignored). Requests that may change state always say
// Content-Type: application/json, as the Guard requires. A refused or
// failed call returns an *Error with the server's status, code and
// message.
func (c *Client) Call(ctx context.Context, addr, method, path string, in, out any) error {
	var body []byte
	if in != nil {
		var err error
		if body, err = json.Marshal(in); err != nil {
			return err
		}
	}
	req, err := c.NewRequest(ctx, method, BaseURL(addr)+path, body)
	if err != nil {
		return err
	}
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("reaching the server's admin endpoint: %w", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if resp.StatusCode != http.StatusOK {
		var e APIError
		if json.Unmarshal(b, &e) == nil && e.Error != "" {
			return &Error{Status: resp.StatusCode, Code: e.Code, Message: e.Error}
		}
		return &Error{Status: resp.StatusCode,
			Message: fmt.Sprintf("%s %s: %s: %s", method, path, resp.Status, strings.TrimSpace(string(b)))}
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("decoding the answer to %s %s: %w", method, path, err)
	}
	return nil
}

// NewRequest returns a signed request for url with body (nil: none).
func (c *Client) NewRequest(ctx context.Context, method, url string, body []byte) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, method, url, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	if len(body) == 0 {
		req.Body, req.GetBody, req.ContentLength = http.NoBody, nil, 0
	}
	if method != http.MethodGet && method != http.MethodHead {
		req.Header.Set("Content-Type", "application/json")
	}
	sum := sha256.Sum256(body)
	hash := hex.EncodeToString(sum[:])
	req.Header.Set("X-Amz-Content-Sha256", hash)
	region := c.Region
	if region == "" {
		region = "us-east-1"
	}
	creds := aws.Credentials{AccessKeyID: c.AccessKey, SecretAccessKey: c.SecretKey}
	if err := v4.NewSigner().SignHTTP(ctx, creds, req, hash, "s3", region, time.Now()); err != nil {
		return nil, fmt.Errorf("signing the admin request: %w", err)
	}
	return req, nil
}

// BaseURL is addr as a URL: http:// is added to a bare host:port.
func BaseURL(addr string) string {
	if strings.Contains(addr, "://") {
		return strings.TrimSuffix(addr, "/")
	}
	return "http://" + addr
}
