package main

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"

	"github.com/spf13/cobra"

	"github.com/redoubt-io/redoubt/internal/bench"
)

func newBenchCmd() *cobra.Command {
	cfg := bench.DefaultConfig()
	var (
		size, op, checksum string
		asJSON, progress   bool
	)
	cmd := &cobra.Command{
		Use:   "bench --endpoint URL [flags]",
		Short: "Drive load against any S3 endpoint and report throughput and latency",
		Long: `bench is an S3 load generator. It works against any S3 endpoint (Redoubt,
MinIO, Garage, AWS), using aws-sdk-go-v2 with path-style addressing and
retries turned off, so every failed request is counted.

Operations:
  put    PUT new objects of --size.
  get    preload --objects objects (untimed), then GET them whole; each body's
         length is checked.
  list   preload --objects objects (default 10000), then ListObjectsV2 pages of
         1000 keys from random start points; each page's length is checked.
  mixed  45% GET, 30% PUT (overwriting preloaded objects), 15% LIST, 10% HEAD.

Without --bucket a fresh bucket is made and removed afterwards. A named bucket
is created if missing. Either way bench writes only under bench/<run>/ and
deletes what it wrote unless --keep, even when interrupted.

Credentials default to AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, so they
need not appear on the command line. Progress goes to stderr when it is a
terminal (or with --progress); the report goes to stdout. The exit code is 1
when no request succeeded.`,
		Example: `  redoubt bench --endpoint http://127.0.0.1:9000 --op put --size 4KiB --concurrency 16 --duration 30s
  redoubt bench --endpoint http://127.0.0.1:9000 --op get --size 64MiB --objects 32 --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var err error
			if cfg.ObjectSize, err = bench.ParseSize(size); err != nil {
				return fmt.Errorf("--size: %w", err)
			}
			if cfg.Op, err = bench.ParseOp(op); err != nil {
				return fmt.Errorf("--op: %w", err)
			}
			cfg.Checksum = bench.ChecksumMode(checksum)
			if cfg.AccessKey == "" && cfg.SecretKey == "" {
				cfg.AccessKey, cfg.SecretKey = os.Getenv("AWS_ACCESS_KEY_ID"), os.Getenv("AWS_SECRET_ACCESS_KEY")
			}
			cfg.Logger = newLogger(cmd)
			if err := cfg.Validate(); err != nil {
				return err
			}
			return runBench(cmd, cfg, asJSON, progress || isTerminal(cmd.ErrOrStderr()))
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.Endpoint, "endpoint", "", "S3 endpoint URL, e.g. http://127.0.0.1:9000 (required)")
	f.StringVar(&cfg.AccessKey, "access-key", "", "access key (default $AWS_ACCESS_KEY_ID)")
	f.StringVar(&cfg.SecretKey, "secret-key", "", "secret key (default $AWS_SECRET_ACCESS_KEY)")
	f.StringVar(&cfg.Region, "region", cfg.Region, "region to sign requests for")
	f.StringVar(&size, "size", bench.FormatSize(cfg.ObjectSize), "object size, e.g. 4KiB, 1MiB, 64MiB, 1GiB (KB/MB/GB are powers of 1000)")
	f.IntVar(&cfg.Concurrency, "concurrency", cfg.Concurrency, "requests in flight")
	f.DurationVar(&cfg.Duration, "duration", cfg.Duration, "length of the timed phase")
	f.Int64Var(&cfg.Count, "count", 0, "end the timed phase after this many requests (failed ones included), or at --duration if that comes first; 0: no count")
	f.StringVar(&op, "op", string(cfg.Op), "operation: put, get, list or mixed")
	f.StringVar(&cfg.Bucket, "bucket", "", "bucket to use, created if missing (default: a fresh bucket, removed after)")
	f.BoolVar(&cfg.Keep, "keep", false, "keep the objects (and a bucket bench created) after the run")
	f.IntVar(&cfg.Objects, "objects", 0, "objects to preload for get, list and mixed (default: list 10000; get and mixed 1 GiB worth, at least --concurrency, at most 1000)")
	f.BoolVar(&asJSON, "json", false, "print the report as JSON")
	f.BoolVar(&progress, "progress", false, "show live progress on stderr even when it is not a terminal")
	f.StringVar(&checksum, "checksum", string(cfg.Checksum), "SDK checksums: when_supported (SDK default: CRC32 on every PUT, validated on GET) or when_required")
	f.StringVar(&cfg.Client, "client", cfg.Client, "what sends the timed requests: sdk (aws-sdk-go-v2) or http (plain signed requests, lighter on the CPU the server shares)")
	f.BoolVar(&cfg.UnsignedPayload, "unsigned-payload", false, "send UNSIGNED-PAYLOAD over plain HTTP instead of hashing each body with SHA-256")
	f.BoolVar(&cfg.Insecure, "insecure", false, "skip TLS certificate verification")
	f.DurationVar(&cfg.RequestTimeout, "timeout", cfg.RequestTimeout, "per-request timeout; a timed-out request counts as an error")
	f.IntSliceVar(&cfg.ServerPIDs, "server-pid", nil, "process ID of a local server behind the endpoint (repeatable): report the CPU time it uses per request (Linux)")
	f.Uint64Var(&cfg.Seed, "seed", 0, "seed for key choice and body bytes (default random; printed in the report)")
	_ = cmd.MarkFlagRequired("endpoint")
	return cmd
}

func runBench(cmd *cobra.Command, cfg bench.Config, asJSON, showProgress bool) error {
	var line *progressLine
	var onProgress func(bench.Snapshot)
	if showProgress {
		line = &progressLine{w: cmd.ErrOrStderr()}
		onProgress = line.show
		// Log lines go above the progress line, not into it.
		level, _ := logLevel(cmd)
		cfg.Logger = slog.New(slog.NewTextHandler(line, &slog.HandlerOptions{Level: level}))
	}
	res, runErr := bench.Run(cmd.Context(), cfg, onProgress)
	if line != nil {
		line.end()
	}
	if res.Elapsed > 0 {
		out := cmd.OutOrStdout()
		if asJSON {
			body, err := json.MarshalIndent(res, "", "  ")
			if err != nil {
				return err
			}
			if _, err := out.Write(append(body, '\n')); err != nil {
				return err
			}
		} else if err := bench.WriteTable(out, res); err != nil {
			return err
		}
	}
	switch {
	case runErr != nil:
		return runErr
	case res.Failed():
		return fmt.Errorf("every request failed (%d errors)", res.Total.Errors)
	}
	return nil
}

// progressLine rewrites one line of stderr in place. Other output written
// through it (logs) appears above the line.
type progressLine struct {
	w    io.Writer
	mu   sync.Mutex
	text string
}

func (p *progressLine) show(s bench.Snapshot) {
	p.mu.Lock()
	defer p.mu.Unlock()
	text := bench.FormatSnapshot(s)
	// Pad over a longer previous line rather than emit terminal escapes,
	// so the output stays readable when captured to a file.
	pad := max(0, len(p.text)-len(text))
	fmt.Fprintf(p.w, "\r%s%s", text, strings.Repeat(" ", pad))
	p.text = text
}

// Write prints b on its own line(s) and redraws the progress line below.
func (p *progressLine) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.text != "" {
		fmt.Fprintf(p.w, "\r%s\r", strings.Repeat(" ", len(p.text)))
	}
	n, err := p.w.Write(b)
	if p.text != "" {
		io.WriteString(p.w, p.text)
	}
	return n, err
}

func (p *progressLine) end() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.text != "" {
		fmt.Fprintln(p.w)
		p.text = ""
	}
}

// isTerminal reports whether w is a character device such as a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
