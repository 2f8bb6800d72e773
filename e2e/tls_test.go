package e2e

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// selfSigned writes a self-signed certificate for 127.0.0.1 and localhost
// into dir and returns the cert and key paths and a pool trusting it.
func selfSigned(t *testing.T, dir string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "redoubt e2e"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
		DNSNames:              []string{"localhost", boto3Domain, "*." + boto3Domain},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	os.WriteFile(certFile, certPEM, 0o644)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600)
	pool = x509.NewCertPool()
	pool.AppendCertsFromPEM(certPEM)
	return certFile, keyFile, pool
}

// TestSDKTLS serves S3 over TLS, where aws-sdk-go-v2 sends every upload
// as aws-chunked with a checksum trailer (STREAMING-UNSIGNED-PAYLOAD-TRAILER),
// CRC32 unless told otherwise.
func TestSDKTLS(t *testing.T) {
	certFile, keyFile, pool := selfSigned(t, t.TempDir())
	s := startLogged(t, serverOptions{drives: 4, args: []string{"--tls-cert", certFile, "--tls-key", keyFile}})
	if s.Endpoint[:8] != "https://" {
		t.Fatalf("server with --tls-cert prints endpoint %s, want https://", s.Endpoint)
	}
	c := sdkClient(s, func(o *s3.Options) {
		o.HTTPClient = &http.Client{Timeout: 5 * time.Minute, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	})
	ctx := context.Background()
	b := newBucket(t, c, "tls")
	algos := []types.ChecksumAlgorithm{"", types.ChecksumAlgorithmCrc32c, types.ChecksumAlgorithmCrc64nvme, types.ChecksumAlgorithmSha1, types.ChecksumAlgorithmSha256}
	for i, algo := range algos {
		for _, n := range []int{1, 100 << 10, 1<<20 + 3} {
			data := payload(uint64(40000+i*10+n), n)
			key := fmt.Sprintf("trailer-%s-%d", algo, n)
			want := algo
			if want == "" {
				want = types.ChecksumAlgorithmCrc32
			}
			if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(b), Key: aws.String(key), Body: bytes.NewReader(data), ChecksumAlgorithm: algo}); err != nil {
				t.Errorf("PutObject %s over TLS: %v", key, err)
				continue
			}
			get, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(b), Key: aws.String(key), ChecksumMode: types.ChecksumModeEnabled})
			if err != nil {
				t.Errorf("GetObject %s: %v", key, err)
				continue
			}
			got, err := io.ReadAll(get.Body)
			get.Body.Close()
			if err != nil || !bytes.Equal(got, data) {
				t.Errorf("GetObject %s: %d bytes, want %d, err %v (chunk framing stored as data?)", key, len(got), n, err)
			}
			if r := returnedChecksum(want, get.ChecksumCRC32, get.ChecksumCRC32C, get.ChecksumCRC64NVME, get.ChecksumSHA1, get.ChecksumSHA256); r != checksumOf(want, data) {
				t.Errorf("GetObject %s: x-amz-checksum-%s = %q, want %q", key, want, r, checksumOf(want, data))
			}
		}
	}
	// Multipart with trailers on every part.
	parts := [][]byte{payload(41001, 5<<20), payload(41002, 1000)}
	cr, err := c.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: aws.String(b), Key: aws.String("mpu")})
	if err != nil {
		t.Fatal(err)
	}
	var done []types.CompletedPart
	for i, p := range parts {
		out, err := c.UploadPart(ctx, &s3.UploadPartInput{Bucket: aws.String(b), Key: aws.String("mpu"), UploadId: cr.UploadId, PartNumber: aws.Int32(int32(i + 1)), Body: bytes.NewReader(p)})
		if err != nil {
			t.Fatalf("UploadPart %d over TLS: %v", i+1, err)
		}
		if want := `"` + md5hex(p) + `"`; aws.ToString(out.ETag) != want {
			t.Errorf("UploadPart %d over TLS: ETag %s, want %s", i+1, aws.ToString(out.ETag), want)
		}
		done = append(done, types.CompletedPart{PartNumber: aws.Int32(int32(i + 1)), ETag: out.ETag})
	}
	if _, err := c.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{Bucket: aws.String(b), Key: aws.String("mpu"), UploadId: cr.UploadId,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: done}}); err != nil {
		t.Fatalf("CompleteMultipartUpload over TLS: %v", err)
	}
	if got, err := getBytes(ctx, c, b, "mpu"); err != nil || !bytes.Equal(got, bytes.Join(parts, nil)) {
		t.Errorf("GET multipart over TLS: %d bytes, err %v", len(got), err)
	}
}
