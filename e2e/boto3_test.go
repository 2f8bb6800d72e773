package e2e

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// serverHasFlag reports whether `redoubt server --help` lists flag.
func serverHasFlag(flag string) bool {
	out, _ := exec.Command(binary, "server", "--help").CombinedOutput()
	return bytes.Contains(out, []byte(flag))
}

// boto3Domain is the --domain the boto3 suite's servers get, for
// virtual-host-style requests (the suite resolves it to 127.0.0.1 itself).
const boto3Domain = "s3.redoubt.test"

// TestBoto3 runs testdata/boto3_suite.py with the python3 on PATH, over
// plain HTTP and over TLS (where botocore sends checksum trailers).
func TestBoto3(t *testing.T) {
	if err := exec.Command("python3", "-c", "import boto3").Run(); err != nil {
		t.Skip("python3 with boto3 not on PATH")
	}
	withDomain := serverHasFlag("--domain")
	if !withDomain {
		t.Log("redoubt server has no --domain flag: virtual-host addressing is not tested")
	}
	for _, tlsOn := range []bool{false, true} {
		name := map[bool]string{false: "http", true: "tls"}[tlsOn]
		t.Run(name, func(t *testing.T) {
			var opts serverOptions
			opts.drives = 4
			if withDomain {
				opts.args = append(opts.args, "--domain", boto3Domain)
			}
			var ca string
			if tlsOn {
				var key string
				ca, key, _ = selfSigned(t, t.TempDir())
				opts.args = append(opts.args, "--tls-cert", ca, "--tls-key", key)
			}
			s := startLogged(t, opts)
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, "python3", "testdata/boto3_suite.py")
			cmd.Env = append(os.Environ(),
				"HOME="+t.TempDir(),
				"REDOUBT_ENDPOINT="+s.Endpoint,
				"REDOUBT_CA="+ca,
				"AWS_ACCESS_KEY_ID="+testAccessKey,
				"AWS_SECRET_ACCESS_KEY="+testSecretKey,
				"AWS_DEFAULT_REGION="+testRegion,
				"AWS_CONFIG_FILE=/dev/null",
				"AWS_SHARED_CREDENTIALS_FILE=/dev/null",
			)
			if withDomain {
				cmd.Env = append(cmd.Env, "REDOUBT_DOMAIN="+boto3Domain)
			}
			out, err := cmd.CombinedOutput()
			if err != nil || !strings.Contains(string(out), "\nOK\n") {
				t.Fatalf("boto3 suite failed: %v\n%s", err, out)
			}
			t.Logf("boto3 suite:\n%s", out)
		})
	}
}

// tail returns the last n bytes of s.
func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "..." + s[len(s)-n:]
}
