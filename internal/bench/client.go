package bench

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go/logging"
	"github.com/aws/smithy-go/middleware"
)

// newTransport returns an HTTP/1.1 transport sized for the run: every
// worker keeps its own idle connection, so the run measures requests, not
// TCP and TLS handshakes.
func newTransport(cfg Config) *http.Transport {
	idle := 2*cfg.Concurrency + 8 // preload and cleanup add a few streams
	return &http.Transport{
		// A benchmark measures the endpoint, not a proxy from the environment.
		Proxy: nil,
		DialContext: (&net.Dialer{
			Timeout:   10 * time.Second,
			KeepAlive: 30 * time.Second,
		}).DialContext,
		MaxIdleConns:          idle,
		MaxIdleConnsPerHost:   idle,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
		// Transparent gzip would make GET lengths lie.
		DisableCompression: true,
		WriteBufferSize:    64 << 10,
		ReadBufferSize:     64 << 10,
		TLSClientConfig: &tls.Config{
			MinVersion:         tls.VersionTLS12,
			InsecureSkipVerify: cfg.Insecure, //nolint:gosec // asked for by the user
		},
	}
}

// newClient builds the S3 client from cfg alone: no shared AWS config
// files or environment, path-style addressing, and no retries so that every
// failure is counted.
func newClient(cfg Config, tr *http.Transport) *s3.Client {
	awsCfg := aws.Config{
		Region:     cfg.Region,
		HTTPClient: &http.Client{Transport: tr},
		Retryer:    func() aws.Retryer { return aws.NopRetryer{} },
		Logger:     logging.Nop{},
	}
	if cfg.AccessKey != "" {
		awsCfg.Credentials = credentials.NewStaticCredentialsProvider(cfg.AccessKey, cfg.SecretKey, "")
	} else {
		awsCfg.Credentials = aws.AnonymousCredentials{}
	}
	switch cfg.Checksum {
	case ChecksumWhenRequired:
		awsCfg.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
		awsCfg.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
	default:
		awsCfg.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenSupported
		awsCfg.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenSupported
	}
	return s3.NewFromConfig(awsCfg, func(o *s3.Options) {
		o.BaseEndpoint = aws.String(cfg.Endpoint)
		o.UsePathStyle = true
		o.DisableLogOutputChecksumValidationSkipped = true
		if cfg.UnsignedPayload {
			o.APIOptions = append(o.APIOptions, v4.SwapComputePayloadSHA256ForUnsignedPayloadMiddleware, presetUnsignedPayload)
		}
	})
}

// presetUnsignedPayload marks the payload unsigned before the checksum
// middleware runs; otherwise that middleware hashes the body with SHA-256
// on plain HTTP whatever the signer is told later.
func presetUnsignedPayload(stack *middleware.Stack) error {
	return stack.Finalize.Add(middleware.FinalizeMiddlewareFunc("RedoubtBenchUnsignedPayload",
		func(ctx context.Context, in middleware.FinalizeInput, next middleware.FinalizeHandler) (middleware.FinalizeOutput, middleware.Metadata, error) {
			return next.HandleFinalize(v4.SetPayloadHash(ctx, "UNSIGNED-PAYLOAD"), in)
		}), middleware.Before)
}
