package main

import (
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/redoubt-io/redoubt/internal/bench"
	"github.com/redoubt-io/redoubt/internal/node"
	"github.com/redoubt-io/redoubt/internal/placement"
)

func newServerCmd() *cobra.Command {
	cfg := node.DefaultConfig()
	var ec string
	var replicas int
	cl := node.DefaultClusterConfig()
	var secretFile string
	repairRate := bench.FormatSize(node.DefaultRepairRate)
	snapshotRate := bench.FormatSize(node.DefaultSnapshotRate)
	reserve := bench.FormatSize(node.DefaultReserve)
	requestMemory := bench.FormatSize(cfg.RequestMemory)
	cmd := &cobra.Command{
		Use:   "server",
		Short: "Serve S3 from this machine's drives",
		Long: `Serve the S3 API on --s3-addr over data erasure-coded or mirrored across
the --data directories (one per drive), with /health, /status and /metrics on
--admin-addr. The admin API answers only requests signed (AWS SigV4) with the
root credentials, as the redoubt verbs send them; /health is open, and /metrics
also opens to --metrics-token.

Root credentials come from REDOUBT_ACCESS_KEY and REDOUBT_SECRET_KEY when both
are set; otherwise they are generated on first start and kept in every data
directory (redoubt-credentials.json, mode 0600).

Redundancy follows the drive count (1: single copy, 2: mirror, 3: EC 2+1,
4: EC 2+2, 5: EC 3+2, 6 or more: EC k+2 or k+3 with overhead at most 1.5x)
unless --ec or --replicas says otherwise. Every flag can also be set by the
environment variable named in its help; a flag on the command line wins.

Cluster: give --rpc-addr to run as a cluster node (the first node needs no
--join; the others give --join with any member's RPC address). Every node needs
the cluster secret, from REDOUBT_CLUSTER_SECRET or --cluster-secret-file; a
process without it is refused by the other nodes. The first node waits for
--bootstrap-expect nodes before it lays the data out over them.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if ec != "" && replicas != 0 {
				return fmt.Errorf("--ec and --replicas are alternatives; give one")
			}
			var err error
			if cfg.RepairRate, err = parseRate("repair-rate", repairRate); err != nil {
				return err
			}
			if cfg.SnapshotRate, err = parseRate("snapshot-rate", snapshotRate); err != nil {
				return err
			}
			r, err := bench.ParseSize(reserve)
			if err != nil {
				return fmt.Errorf("--reserve %q: want bytes such as 1GiB, or 0 to turn it off", reserve)
			}
			cfg.Reserve = uint64(r)
			m, err := bench.ParseSize(requestMemory)
			if err != nil {
				return fmt.Errorf("--request-memory %q: want bytes such as 2GiB, or 0 for no bound", requestMemory)
			}
			cfg.RequestMemory = int64(m)
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
			if err := clusterFlags(cmd, &cfg, cl, secretFile); err != nil {
				return err
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
	f.StringVar(&cfg.AdminAddr, "admin-addr", cfg.AdminAddr, "admin listen address (/health, /status, /metrics, /repair); every endpoint but /health takes only requests signed with the root credentials")
	f.StringVar(&cfg.MetricsToken, "metrics-token", "", "bearer token that reads /metrics without a signature, for Prometheus (prefer the environment variable: flags show in ps); empty: /metrics needs a signed request")
	f.StringVar(&cfg.Region, "region", cfg.Region, "the region clients sign for")
	f.StringArrayVar(&cfg.Domains, "domain", nil, "a domain for virtual-host-style requests (bucket.DOMAIN); repeatable")
	f.StringVar(&ec, "ec", "", "erasure coding K+M, e.g. 4+2 (default: by drive count)")
	f.IntVar(&replicas, "replicas", 0, "mirror every object N times instead of erasure coding")
	f.IntVar(&cfg.InlineMax, "inline-max", cfg.InlineMax, "objects up to this many bytes are kept inside their metadata record")
	f.StringVar(&cfg.TLSCert, "tls-cert", "", "PEM certificate: serve S3 over TLS (with --tls-key)")
	f.StringVar(&cfg.TLSKey, "tls-key", "", "PEM private key for --tls-cert")
	f.DurationVar(&cfg.BodyIdleTimeout, "body-idle-timeout", cfg.BodyIdleTimeout, "an S3 request whose body sends nothing for this long ends with RequestTimeout and its connection is closed; slow but steady uploads are never cut; 0 disables")
	f.DurationVar(&cfg.ClockOffset, "clock-offset", 0, "for tests: stamp versions with the system clock moved by this much, as a node whose clock is off would")
	f.MarkHidden("clock-offset")
	f.DurationVar(&cfg.ShutdownTimeout, "shutdown-timeout", cfg.ShutdownTimeout, "how long in-flight requests may run after SIGTERM")
	f.BoolVar(&cfg.Pprof, "pprof", false, "serve runtime profiles under /debug/pprof/ on the admin address")
	f.DurationVar(&cfg.Scrub.Interval, "scrub-interval", cfg.Scrub.Interval, "longest time a scrub pass (re-reading and verifying every shard on this node's drives) may take; 0 disables scrubbing")
	f.DurationVar(&cfg.GC.Interval, "gc-interval", cfg.GC.Interval, "time between garbage collection passes, which remove orphan shards (left by crashed writes and failed deletes) from this node's drives; 0 disables")
	f.DurationVar(&cfg.MultipartExpiry, "multipart-expiry", cfg.MultipartExpiry, "abort incomplete multipart uploads older than this; 0 keeps them forever")
	f.StringVar(&reserve, "reserve", reserve, "free space kept on every drive (e.g. 1GiB) for reads, deletes and the metadata store: below it, new data is refused with 507 InsufficientStorage until space is freed; 0: off")
	f.StringVar(&requestMemory, "request-memory", requestMemory, "memory that uploads and downloads of large objects may hold in data buffers at once, half each way (default: an eighth of the memory, from 256MiB to 8GiB): past it requests wait up to 10s, then answer 503 SlowDown, which clients retry; 0: no bound")
	f.StringVar(&repairRate, "repair-rate", repairRate, "bytes per second that repair and rebalancing may write on this node (e.g. 64MiB), so that requests keep their latency; 0: no limit")
	f.StringVar(&snapshotRate, "snapshot-rate", snapshotRate, "bytes per second at which this node streams metadata snapshots to nodes catching up (e.g. 64MiB), so that requests keep their latency; 0: no limit")
	f.StringVar(&cl.RPCAddr, "rpc-addr", "", "node-to-node listen address; enables cluster mode")
	f.StringVar(&cl.GossipAddr, "gossip-addr", "", "gossip (membership) listen address (default: the RPC port + 1); a wildcard host such as 0.0.0.0 is advertised with the --rpc-addr host")
	f.StringArrayVar(&cl.Join, "join", nil, "RPC address of a cluster member to join; repeatable")
	f.StringVar(&cl.Zone, "zone", cl.Zone, "failure domain (site, room or rack) of this node")
	f.StringVar(&secretFile, "cluster-secret-file", "", "file holding the cluster secret (or set REDOUBT_CLUSTER_SECRET)")
	f.IntVar(&cl.BootstrapExpect, "bootstrap-expect", cl.BootstrapExpect, "nodes the first node waits for before the first layout")
	f.IntVar(&cl.Partitions, "partitions", cl.Partitions, "partitions of the key space (fixed when the cluster is created; their metadata splits later with redoubt layout split)")
	f.DurationVar(&cl.RepairAfter, "repair-after", cl.RepairAfter, "a node dead this long is taken out of the layout (and put back when it returns); 0: only by operators")
	f.IntVar(&cl.MetaReplicas, "meta-replicas", cl.MetaReplicas, "metadata Raft replicas per partition; 0: enough to survive as many node losses as the data (2M+1, 3 to 5)")
	return withEnv(cmd)
}

// clusterFlags turns the cluster flags into cfg.Cluster when --rpc-addr or
// --join is given.
func clusterFlags(cmd *cobra.Command, cfg *node.Config, cl node.ClusterConfig, secretFile string) error {
	if cl.RPCAddr == "" {
		if len(cl.Join) > 0 {
			return fmt.Errorf("--join needs --rpc-addr: the address other nodes reach this one at")
		}
		return nil
	}
	secret := os.Getenv("REDOUBT_CLUSTER_SECRET")
	if secretFile != "" {
		b, err := os.ReadFile(secretFile)
		if err != nil {
			return fmt.Errorf("reading the cluster secret: %w", err)
		}
		secret = strings.TrimSpace(string(b))
	}
	if secret == "" {
		return fmt.Errorf("cluster mode needs the cluster secret: set REDOUBT_CLUSTER_SECRET or --cluster-secret-file")
	}
	cl.Secret = []byte(secret)
	cfg.Cluster = &cl
	return cfg.Validate()
}

// parseRate reads the bytes-per-second value of flag name: a size such as
// 64MiB, or 0 (or empty) for no limit.
func parseRate(name, v string) (int64, error) {
	if v == "0" || v == "" {
		return 0, nil
	}
	r, err := bench.ParseSize(v)
	if err != nil || r < 0 {
		return 0, fmt.Errorf("--%s %q: want bytes per second such as 64MiB, or 0 for no limit", name, v)
	}
	return r, nil
}
