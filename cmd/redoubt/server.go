package main

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/redoubt-io/redoubt/internal/node"
	"github.com/redoubt-io/redoubt/internal/placement"
)

func newServerCmd() *cobra.Command {
	cfg := node.DefaultConfig()
	var ec string
	var replicas int
	cmd := &cobra.Command{
		Use:   "server",
		Short: "Serve S3 from this machine's drives",
		Long: `Serve the S3 API on --s3-addr over data erasure-coded or mirrored across
the --data directories (one per drive), with /health, /status and /metrics on
--admin-addr.

Root credentials come from REDOUBT_ACCESS_KEY and REDOUBT_SECRET_KEY when both
are set; otherwise they are generated on first start and kept in every data
directory (redoubt-credentials.json, mode 0600).

Redundancy follows the drive count (1: single copy, 2: mirror, 3: EC 2+1,
4: EC 2+2, 5: EC 3+2, 6 or more: EC k+2 or k+3 with overhead at most 1.5x)
unless --ec or --replicas says otherwise. Every flag can also be set by the
environment variable named in its help; a flag on the command line wins.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if ec != "" && replicas != 0 {
				return fmt.Errorf("--ec and --replicas are alternatives; give one")
			}
			if ec != "" {
				p, err := placement.ParseEC(ec)
				if err != nil {
					return err
				}
				cfg.Policy = &p
			}
			if replicas != 0 {
				p, err := placement.Replicas(replicas)
				if err != nil {
					return err
				}
				cfg.Policy = &p
			}
			ak, sk := os.Getenv("REDOUBT_ACCESS_KEY"), os.Getenv("REDOUBT_SECRET_KEY")
			if (ak == "") != (sk == "") {
				return fmt.Errorf("set both REDOUBT_ACCESS_KEY and REDOUBT_SECRET_KEY, or neither")
			}
			if ak != "" {
				cfg.Credentials = &node.Credentials{AccessKey: ak, SecretKey: sk}
			}
			cfg.Version = version
			logger := newLogger(cmd)
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			n, err := node.Start(ctx, cfg, logger)
			if err != nil {
				return err
			}
			n.PrintBanner(cmd.OutOrStdout())
			return n.Serve(ctx)
		},
	}
	f := cmd.Flags()
	f.StringArrayVar(&cfg.DataDirs, "data", cfg.DataDirs, "a drive directory; give once per drive")
	f.StringVar(&cfg.S3Addr, "s3-addr", cfg.S3Addr, "S3 listen address")
	f.StringVar(&cfg.AdminAddr, "admin-addr", cfg.AdminAddr, "admin listen address (/health, /status, /metrics, /repair)")
	f.StringVar(&cfg.Region, "region", cfg.Region, "the region clients sign for")
	f.StringArrayVar(&cfg.Domains, "domain", nil, "a domain for virtual-host-style requests (bucket.DOMAIN); repeatable")
	f.StringVar(&ec, "ec", "", "erasure coding K+M, e.g. 4+2 (default: by drive count)")
	f.IntVar(&replicas, "replicas", 0, "mirror every object N times instead of erasure coding")
	f.IntVar(&cfg.InlineMax, "inline-max", cfg.InlineMax, "objects up to this many bytes are kept inside their metadata record")
	f.StringVar(&cfg.TLSCert, "tls-cert", "", "PEM certificate: serve S3 over TLS (with --tls-key)")
	f.StringVar(&cfg.TLSKey, "tls-key", "", "PEM private key for --tls-cert")
	f.DurationVar(&cfg.ShutdownTimeout, "shutdown-timeout", cfg.ShutdownTimeout, "how long in-flight requests may run after SIGTERM")
	f.BoolVar(&cfg.Pprof, "pprof", false, "serve runtime profiles under /debug/pprof/ on the admin address")
	return withEnv(cmd)
}
