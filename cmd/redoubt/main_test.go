package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime/debug"
	"strings"
	"testing"
)

func runCLI(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(t.Context(), args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestVersion(t *testing.T) {
	code, out, _ := runCLI(t, "version")
	if code != 0 || !strings.HasPrefix(out, "redoubt dev\ngo       go1.") {
		t.Fatalf("version: exit %d, output %q", code, out)
	}
	text := versionText("v1.0.0", &debug.BuildInfo{GoVersion: "go1.26.8", Settings: []debug.BuildSetting{
		{Key: "vcs.revision", Value: "abc123"}, {Key: "vcs.modified", Value: "true"}, {Key: "vcs.time", Value: "2026-01-01T00:00:00Z"},
	}})
	want := "redoubt v1.0.0\ngo       go1.26.8\nrevision abc123 (modified)\ntime     2026-01-01T00:00:00Z\n"
	if text != want {
		t.Errorf("versionText = %q; want %q", text, want)
	}
}

func TestLogLevel(t *testing.T) {
	t.Setenv(logLevelEnv, "loud")
	if code, _, errOut := runCLI(t, "version"); code != 1 || !strings.Contains(errOut, `bad log level "loud"`) {
		t.Errorf("bad env level: exit %d, stderr %q", code, errOut)
	}
	// The flag wins over the environment.
	if code, _, errOut := runCLI(t, "--log-level", "debug", "version"); code != 0 {
		t.Errorf("flag over bad env: exit %d, stderr %q", code, errOut)
	}
	if code, _, _ := runCLI(t, "--log-level", "chatty", "version"); code != 1 {
		t.Errorf("bad flag level: exit %d", code)
	}
}

func TestBenchFlagErrors(t *testing.T) {
	for _, args := range [][]string{
		{"bench"},
		{"bench", "--endpoint", "http://127.0.0.1:1", "--size", "3QB"},
		{"bench", "--endpoint", "http://127.0.0.1:1", "--op", "delete"},
		{"bench", "--endpoint", "http://127.0.0.1:1", "--checksum", "always"},
		{"bench", "--endpoint", "127.0.0.1:1"},
	} {
		if code, out, errOut := runCLI(t, args...); code != 1 || out != "" || !strings.HasPrefix(errOut, "redoubt: ") {
			t.Errorf("%v: exit %d, stdout %q, stderr %q", args, code, out, errOut)
		}
	}
}

// tinyS3 accepts PUTs into one bucket without storing them; failPuts makes
// every object PUT fail.
func tinyS3(failPuts bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		isObject := strings.Count(strings.Trim(r.URL.Path, "/"), "/") > 0
		switch {
		case r.Method == http.MethodPut && isObject && failPuts:
			w.WriteHeader(http.StatusInternalServerError)
			io.WriteString(w, `<Error><Code>InternalError</Code><Message>no</Message></Error>`)
		case r.Method == http.MethodGet && r.URL.Query().Get("list-type") == "2":
			io.WriteString(w, `<ListBucketResult><KeyCount>0</KeyCount><IsTruncated>false</IsTruncated></ListBucketResult>`)
		case r.Method == http.MethodDelete:
			w.WriteHeader(http.StatusNoContent)
		}
	})
}

func TestBenchAgainstServer(t *testing.T) {
	srv := httptest.NewServer(tinyS3(false))
	defer srv.Close()
	base := []string{"bench", "--endpoint", srv.URL, "--access-key", "k", "--secret-key", "s", "--duration", "200ms", "--concurrency", "2"}

	code, out, errOut := runCLI(t, base...)
	if code != 0 || !strings.Contains(out, "ops/s") || !strings.Contains(out, "put") {
		t.Fatalf("table: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	if strings.Contains(errOut, "\r") {
		t.Errorf("progress shown though stderr is not a terminal: %q", errOut)
	}

	code, out, errOut = runCLI(t, append(base, "--json", "--progress")...)
	var res struct {
		Op    string `json:"op"`
		Total struct {
			Ops     int64 `json:"ops"`
			Latency struct {
				P50 float64 `json:"p50_ms"`
			} `json:"latency"`
		} `json:"total"`
		Elapsed float64 `json:"elapsed_seconds"`
	}
	if err := json.Unmarshal([]byte(out), &res); code != 0 || err != nil {
		t.Fatalf("json: exit %d, %v\nstdout:\n%s\nstderr:\n%s", code, err, out, errOut)
	}
	if res.Op != "put" || res.Total.Ops == 0 || res.Total.Latency.P50 <= 0 || res.Elapsed < 0.2 {
		t.Errorf("json report: %+v", res)
	}
	if !strings.Contains(errOut, "\rrun ") {
		t.Errorf("--progress showed no progress line: %q", errOut)
	}
}

func TestBenchAllFailedExitsNonZero(t *testing.T) {
	srv := httptest.NewServer(tinyS3(true))
	defer srv.Close()
	code, out, errOut := runCLI(t, "bench", "--endpoint", srv.URL, "--access-key", "k", "--secret-key", "s", "--duration", "100ms", "--concurrency", "2")
	if code != 1 || !strings.Contains(errOut, "every request failed") || !strings.Contains(out, "InternalError") {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
}
