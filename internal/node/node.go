package node

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/redoubt-io/redoubt/internal/admin"
	"github.com/redoubt-io/redoubt/internal/blocks"
	"github.com/redoubt-io/redoubt/internal/cluster"
	"github.com/redoubt-io/redoubt/internal/meta"
	"github.com/redoubt-io/redoubt/internal/objects"
	"github.com/redoubt-io/redoubt/internal/placement"
	"github.com/redoubt-io/redoubt/internal/raftmeta"
	"github.com/redoubt-io/redoubt/internal/s3api"
	"github.com/redoubt-io/redoubt/internal/s3api/sigv4"
	"github.com/redoubt-io/redoubt/internal/sites"
	"github.com/redoubt-io/redoubt/internal/store"
	"github.com/redoubt-io/redoubt/internal/vfs"
)

// Config is everything a node needs to start.
type Config struct {
	// DataDirs are the drives, one directory each, in any order: each
	// drive knows its slot in the set.
	DataDirs []string
	// S3Addr and AdminAddr are the listen addresses; port 0 picks one.
	S3Addr, AdminAddr string
	Region            string
	// Domains enable virtual-host-style bucket addressing.
	Domains []string
	// Policy overrides the redundancy chosen by drive count.
	Policy *placement.Policy
	// InlineMax is the largest object kept inside its metadata record.
	InlineMax int
	// TLSCert and TLSKey, when both set, serve S3 over TLS.
	TLSCert, TLSKey string
	// ShutdownTimeout bounds how long in-flight requests may take to
	// finish after a shutdown begins.
	ShutdownTimeout time.Duration
	// Credentials, when set, are the root credentials; otherwise they are
	// loaded from the data directories or generated on first start.
	Credentials *Credentials
	Version     string
	// Pprof serves the runtime profiles under /debug/pprof/ on the admin
	// address. Off by default: profiles expose internals and a CPU profile
	// costs a little while it runs.
	Pprof bool
	// Cluster, when set, makes the node a cluster member; see ClusterConfig.
	Cluster *ClusterConfig
	// Supervision sets how failed services are restarted and when they
	// are given up on; see SupervisionConfig.
	Supervision SupervisionConfig
	// Scrub paces the re-reading of every shard; see ScrubConfig.
	Scrub ScrubConfig
	// GC paces garbage collection of orphan shards; see GCConfig.
	GC GCConfig
	// MultipartExpiry is the age past which an incomplete multipart upload
	// is aborted and its parts' data freed; 0 keeps uploads forever.
	// 7 days: longer than any upload a client still means to finish.
	MultipartExpiry time.Duration
	// MetricsToken, when set, is the bearer token that reads /metrics
	// without a signature (Prometheus cannot sign); see admin.AuthConfig.
	MetricsToken string
	// ClockOffset moves the clock this node stamps versions and
	// modification times with away from the system's, to test what a
	// node whose clock is off does (the partition bed's skew); 0 in use.
	ClockOffset time.Duration
	// BodyIdleTimeout ends an S3 request whose body sends nothing for
	// this long with RequestTimeout and frees its connection; see
	// s3api.Config.BodyIdleTimeout. 0 disables it.
	BodyIdleTimeout time.Duration
	// RepairRate bounds, in bytes per second, the shards that repair and
	// relocation write, so that foreground requests keep their latency
	// while data is rebuilt or moved; 0 or less: no limit.
	RepairRate int64
	// RequestMemory bounds the bytes of data buffers that uploads and
	// downloads of objects stored outside their metadata hold at once,
	// half each way (blocks.Config.BufferBytes): past it a request waits
	// up to 10 s for buffers, then answers 503 SlowDown. So memory does
	// not grow with the number of large requests in flight. 0: no bound.
	// Default: DefaultRequestMemory.
	RequestMemory int64
	// SnapshotRate bounds, in bytes per second, the metadata snapshots
	// this node streams to nodes that catch up (a new or replaced node, or
	// one that fell behind a partition's log); 0 or less: no limit.
	SnapshotRate int64
	// Reserve is the free space, in bytes, kept on every drive for what
	// must go on when the drives are full: reads, listings, and the
	// deletes that free space, whose metadata commits need room, as does
	// the metadata store's WAL and compactions. While a drive holding
	// metadata, or too many drives for the redundancy, have less free,
	// requests that store new data (PUT, UploadPart, CompleteMultipartUpload,
	// CopyObject, CreateBucket...) are refused with 507
	// InsufficientStorage; they are accepted again as soon as space is
	// freed (TestFullDrivesDoNotAnswer503UntilRestart, TestOneDriveFull,
	// TestMetadataFilledBySmallObjects). The reserve must hold the writes
	// under way when the drives cross it. 1 GiB: the largest compactions
	// of a metadata store of tens of millions of objects, and a few
	// seconds of writes at a drive's speed. 0 turns it off: shard data may
	// then fill a drive until its metadata takes no more commits, deletes
	// included.
	Reserve uint64
	// FS is the file system of the drives. Nil is the operating
	// system's; tests and simulation give a vfs.Mem (standalone nodes
	// only, with Credentials set).
	FS vfs.FS
}

// DefaultConfig is a one-drive node on the standard loopback ports.
func DefaultConfig() Config {
	return Config{
		DataDirs:        []string{"redoubt-data"},
		S3Addr:          "127.0.0.1:3900",
		AdminAddr:       "127.0.0.1:3903",
		Region:          "us-east-1",
		InlineMax:       objects.DefaultConfig().InlineMax,
		ShutdownTimeout: 30 * time.Second,
		Version:         "dev",
		Supervision:     DefaultSupervisionConfig(),
		GC:              DefaultGCConfig(),
		Scrub:           DefaultScrubConfig(),
		MultipartExpiry: 7 * 24 * time.Hour,
		RepairRate:      DefaultRepairRate,
		SnapshotRate:    DefaultSnapshotRate,
		RequestMemory:   DefaultRequestMemory(),
		BodyIdleTimeout: s3api.DefaultConfig().BodyIdleTimeout,
		Reserve:         DefaultReserve,
	}
}

// DefaultReserve is Config.Reserve's default; see there.
const DefaultReserve = 1 << 30

// Validate checks the rules that span fields.
func (c Config) Validate() error {
	if len(c.DataDirs) == 0 {
		return errors.New("at least one data directory is needed")
	}
	seen := map[string]bool{}
	for _, d := range c.DataDirs {
		abs, err := filepath.Abs(d)
		if err != nil {
			return err
		}
		if seen[abs] {
			return fmt.Errorf("data directory %s given twice", d)
		}
		seen[abs] = true
	}
	if c.Region == "" {
		return errors.New("region must not be empty")
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		return errors.New("TLS needs both a certificate and a key")
	}
	if c.Policy != nil {
		if err := c.Policy.Validate(); err != nil {
			return err
		}
		if c.Cluster == nil && c.Policy.Shards() > len(c.DataDirs) {
			return fmt.Errorf("policy %s needs %d drives, %d given", c.Policy, c.Policy.Shards(), len(c.DataDirs))
		}
	}
	if c.Credentials != nil {
		if err := c.Credentials.Validate(); err != nil {
			return err
		}
	}
	if c.Cluster != nil {
		if err := c.Cluster.Validate(); err != nil {
			return err
		}
	}
	if err := c.GC.Validate(); err != nil {
		return err
	}
	if err := c.Supervision.Validate(); err != nil {
		return err
	}
	if err := c.Scrub.Validate(); err != nil {
		return err
	}
	if c.MultipartExpiry < 0 {
		return fmt.Errorf("multipart expiry %v is negative", c.MultipartExpiry)
	}
	if c.BodyIdleTimeout < 0 {
		return fmt.Errorf("body idle timeout %v is negative", c.BodyIdleTimeout)
	}
	if c.FS != nil && c.FS != vfs.OS() && (c.Cluster != nil || c.Credentials == nil) {
		return errors.New("a file system other than the operating system's is for standalone nodes with credentials given")
	}
	return nil
}

// Node is one running Redoubt server: its drives, metadata, object layer
// and front ends. Start it with Start; Serve runs it until ctx ends.
type Node struct {
	// sites replicates the buckets replicated to sites; nil on a node
	// that keeps no records (standalone).
	sites *sites.Replicator
	// siteHTTPClient is made once, by siteHTTP.
	siteClient     sync.Once
	siteHTTPClient *http.Client

	cfg     Config
	log     *slog.Logger
	started time.Time

	Credentials Credentials
	policyMu    sync.Mutex
	policy      placement.Policy
	cluster     *cluster.Cluster
	// S3URL and AdminURL are the bound endpoints.
	S3URL, AdminURL string

	drives []*store.Drive
	data   *blocks.Set
	md     *meta.Local
	// releaseHeap takes this node's caches from the heap governor
	// (governHeap).
	releaseHeap func()
	space       *space
	objects     *objects.Service
	repair      *repairer
	// fatal receives the failure of a part the node cannot go on without
	// and cannot restart in place (the Raft loop): Serve then ends with it.
	fatal  chan error
	upkeep upkeep
	// readRepair rebuilds what reads find damaged, at once.
	readRepair *readRepair
	gc         *collector
	// services runs the front ends and background loops; see supervise.
	services supervisor
	// census counts where a cluster's stored data is, for the redundancy
	// figures of /status; nil on a single node.
	census *census

	// stats caches the object count shown on /status; see objectStats.
	stats struct {
		sync.Mutex
		at             time.Time
		objects, bytes int64
	}

	// adminGuard admits admin requests; see admin.Protect.
	adminGuard *admin.Guard

	s3Srv, adminSrv *http.Server
	s3Ln, adminLn   net.Listener
}

// Start opens the drives and the metadata, cleans what a crash left behind,
// and binds the listeners. It serves nothing until Serve. Drives too full
// to open the metadata on make it fail at once, naming them, before any
// port is bound (TestStartOnFullDrivesFailsFast).
func Start(ctx context.Context, cfg Config, logger *slog.Logger) (_ *Node, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	n := &Node{cfg: cfg, log: logger, started: time.Now(), fatal: make(chan error, 1)}
	defer func() {
		if err != nil {
			n.close()
		}
	}()

	fsys := cfg.FS
	if fsys == nil {
		fsys = vfs.OS()
	}
	for _, d := range cfg.DataDirs {
		if err := fsys.MkdirAll(d, 0o700); err != nil {
			logger.Warn("cannot create data directory", "dir", d, "err", err)
		}
	}
	scfg := store.DefaultConfig()
	scfg.FS, scfg.Reserve = fsys, cfg.Reserve
	n.drives, err = store.Open(ctx, scfg, cfg.DataDirs, logger.With("component", "store"))
	if err != nil {
		return nil, fmt.Errorf("opening drives: %w", err)
	}

	// The metadata first: until it is open the node cannot answer, and a
	// client that finds the port open would wait on it.
	if cfg.Cluster == nil {
		if n.md, err = openLocalMeta(n.drives, fsys, cfg.Reserve, logger); err != nil {
			return nil, err
		}
		n.releaseHeap = governHeap(n.md.CacheCapacity())
	} else if err := checkRaftSpace(n.drives, fsys); err != nil {
		return nil, err
	} else {
		// The cluster's Raft host keeps raftmeta's default cache.
		r := raftmeta.DefaultConfig()
		n.releaseHeap = governHeap(meta.CacheCapacity(r.CacheBytes, r.MemTableBytes, 1))
	}
	n.space = newSpace(n.drives, cfg.Cluster != nil, logger.With("component", "space"))
	for _, d := range n.drives {
		if st := d.Stats(); st.TotalBytes > 0 && st.TotalBytes <= 2*cfg.Reserve {
			logger.Warn("drive small for the reserve: little or no new data will fit; lower --reserve",
				"drive", d.Path(), "size", vfs.FormatBytes(st.TotalBytes), "reserve", vfs.FormatBytes(cfg.Reserve))
		}
	}

	// Then bind: a cluster node advertises the addresses it serves on.
	if err := n.listen(); err != nil {
		return nil, err
	}

	policy := placement.DefaultPolicy(len(n.drives))
	if cfg.Policy != nil {
		policy = *cfg.Policy
	}
	ocfg := objects.DefaultConfig()
	ocfg.InlineMax = cfg.InlineMax
	if off := cfg.ClockOffset; off != 0 {
		ocfg.Now = func() time.Time { return time.Now().Add(off) }
	}
	var md meta.Store
	bcfg := blocks.DefaultConfig(policy)
	if cfg.Cluster != nil {
		if err := n.startCluster(ctx); err != nil {
			return nil, err
		}
		md = n.cluster.Meta()
		if l := n.cluster.Layout(); l != nil {
			policy = l.Policy
		}
		bcfg = blocks.DefaultConfig(policy)
		bcfg.Resolve, bcfg.Place = n.cluster.Drive, n.cluster.Place
		ocfg.Partitions = cfg.Cluster.Partitions
		ocfg.SharedMetadata = true
		if n.cluster.Records() != nil {
			ocfg.Records = n.cluster
			ocfg.SitesLinked = n.siteRegistry().Linked
			ocfg.SiteData = n.openSiteData
			ocfg.KnownDrive = func(id string) bool { _, ok := n.cluster.Drive(id); return ok }
		}
	}
	n.setPolicy(policy)
	n.readRepair = newReadRepair(nil, logger.With("component", "read-repair"))
	bcfg.OnNeedsRepair = n.readRepair.note
	bcfg.BufferBytes = max(cfg.RequestMemory, 0)
	bcfg.WriterBytes = scfg.WriteBuffer
	n.data, err = blocks.New(bcfg, n.drives, logger.With("component", "blocks"))
	if err != nil {
		return nil, fmt.Errorf("data path: %w", err)
	}
	if cfg.Cluster == nil {
		md = n.md
	}

	ocfg.Incarnation.Node = n.writerID()
	n.objects, err = objects.New(ocfg, md, n.data, logger.With("component", "objects"))
	if err != nil {
		return nil, fmt.Errorf("object layer: %w", err)
	}

	switch {
	case cfg.Cluster != nil:
		if n.Credentials, err = n.clusterCredentials(ctx); err != nil {
			return nil, err
		}
		n.cluster.OnLayout(n.followLayout)
		if cfg.Credentials == nil {
			// The admin tools look for the keys in the data directories.
			if err := keepCredentials(cfg.DataDirs, n.Credentials); err != nil {
				logger.Warn("cannot keep the root credentials in every data directory", "err", err)
			}
		}
	case cfg.Credentials != nil:
		n.Credentials = *cfg.Credentials
	default:
		var created bool
		n.Credentials, created, err = loadOrCreateCredentials(cfg.DataDirs)
		if err != nil {
			return nil, err
		}
		if created {
			logger.Info("generated root credentials", "dirs", cfg.DataDirs)
		}
	}

	verifier, err := sigv4.New(sigv4.Config{Region: cfg.Region, Creds: staticCreds(n.Credentials)})
	if err != nil {
		return nil, err
	}
	s3cfg := s3api.DefaultConfig()
	s3cfg.Region = cfg.Region
	s3cfg.Domains = cfg.Domains
	s3cfg.BodyIdleTimeout = cfg.BodyIdleTimeout
	gated := spaceGate{API: n.objects, space: n.space, policy: n.Policy}
	front, err := s3api.New(s3cfg, gated, s3api.SigV4(verifier), logger.With("component", "s3api"))
	if err != nil {
		return nil, err
	}
	n.repair = &repairer{objects: n.objects, data: n.data, limit: newRepairLimiter(cfg.RepairRate), log: logger.With("component", "repair")}
	if n.cluster != nil {
		n.repair.reloc = newRelocator(n.objects, n.cluster, cfg.RepairRate, logger.With("component", "relocate"))
	}

	n.upkeep.scrub = newScrubber(cfg.Scrub, n.objects, n.data, logger.With("component", "scrub"))
	n.s3Srv = &http.Server{
		Handler:           n.upkeep.scrub.track(front),
		MaxHeaderBytes:    s3cfg.MaxHeaderBytes + 4096,
		ReadHeaderTimeout: 30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelDebug),
	}

	// With the Go runtime and process collectors: resident memory, heap, GC.
	reg := admin.NewRegistry()
	registerBuffers(reg, n.data.Buffers)
	if c := n.cluster; c != nil {
		registerRaftMessages(reg, c)
		registerRecordMetrics(reg, c)
		reg.MustRegister(newEngineCollector(c.EngineStats))
	}
	if md := n.md; md != nil {
		reg.MustRegister(newEngineCollector(md.EngineStats))
	}
	acfg := admin.DefaultConfig()
	acfg.Registry = reg
	mux := http.NewServeMux()
	mux.Handle("/", admin.New(acfg, n, logger.With("component", "admin")))
	mux.HandleFunc("/repair", n.serveRepair)
	mux.HandleFunc("/scrub", n.serveScrub)
	registerBuckets(mux, gated)
	registerConflicts(mux, n.objects)
	if n.cluster != nil {
		n.registerCluster(mux)
		if n.cluster.Records() != nil {
			n.sites = n.newReplicator()
			n.registerSites(mux)
			registerSiteMetrics(reg, n.sites)
		}
	}
	if cfg.Pprof {
		registerPprof(mux)
	}
	n.adminGuard, err = admin.Protect(admin.AuthConfig{
		Authenticator: adminAuth{v: verifier, root: n.Credentials.AccessKey},
		MetricsToken:  cfg.MetricsToken,
		Registerer:    reg,
	}, mux, logger.With("component", "admin"))
	if err != nil {
		return nil, err
	}
	n.adminSrv = &http.Server{
		Handler:           n.adminGuard,
		ReadHeaderTimeout: 10 * time.Second,
		// Admin bodies are small JSON documents.
		ReadTimeout: 30 * time.Second,
		IdleTimeout: 2 * time.Minute,
	}
	n.readRepair.data = n.data
	n.supervise("read-repair", n.readRepair.Run)
	n.supervise("scrub", n.upkeep.scrub.Run)
	n.supervise("multipart-expiry", n.expireUploads)
	if n.cluster != nil && n.cluster.Records() != nil {
		n.supervise("conflict-retention", n.resolveOldConflicts)
		n.supervise("sites", n.sites.Run)
		n.supervise("respread", n.respread)
	}
	n.gc = newCollector(cfg.GC, n.objects, n.drives, logger.With("component", "gc"))
	n.supervise("gc", n.gc.Run)
	if r := n.repair.reloc; r != nil {
		n.supervise("relocate", r.Run)
		n.cluster.OnLayout(r.followLayout)
	}
	if n.cluster != nil {
		n.census = newCensus(n.objects, n.cluster, n.judgeCensus, logger.With("component", "census"))
		n.supervise("census", n.census.Run)
		n.cluster.OnLayout(n.census.followLayout)
	}
	return n, nil
}

// listen binds the S3 and admin listeners.
func (n *Node) listen() error {
	var err error
	n.s3Ln, err = net.Listen("tcp", n.cfg.S3Addr)
	if err != nil {
		return fmt.Errorf("S3 listener: %w", err)
	}
	scheme := "http"
	if n.cfg.TLSCert != "" {
		cert, err := tls.LoadX509KeyPair(n.cfg.TLSCert, n.cfg.TLSKey)
		if err != nil {
			return fmt.Errorf("loading TLS certificate: %w", err)
		}
		n.s3Ln = tls.NewListener(n.s3Ln, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
		scheme = "https"
	}
	n.S3URL = scheme + "://" + n.s3Ln.Addr().String()
	n.adminLn, err = net.Listen("tcp", n.cfg.AdminAddr)
	if err != nil {
		return fmt.Errorf("admin listener: %w", err)
	}
	n.AdminURL = "http://" + n.adminLn.Addr().String()
	return nil
}

// openLocalMeta opens a standalone node's metadata. The replicas live on
// the drives of the first three slots of the set, whatever order the
// directories are given in.
func openLocalMeta(drives []*store.Drive, fsys vfs.FS, reserve uint64, logger *slog.Logger) (*meta.Local, error) {
	var metaDirs []string
	smallest := uint64(math.MaxUint64)
	for _, d := range metaDrives(drives, false) {
		metaDirs = append(metaDirs, filepath.Join(d.Path(), "meta"))
		if t := d.Stats().TotalBytes; t > 0 {
			smallest = min(smallest, t)
		}
	}
	mcfg := meta.DefaultLocalConfig(metaDirs...)
	mcfg.Logger = logger.With("component", "meta")
	mcfg.FS = fsys
	mcfg.FilterPrefixes = objects.PresencePrefixes()
	mcfg.OrderedPrefixes = objects.OrderedPrefixes()
	// A memtable is flushed into a file of about its size, so a small
	// drive gets small ones: 1/64 of it, within [1 MiB, the default].
	mcfg.MemTableBytes = max(1<<20, min(mcfg.MemTableBytes, smallest/64))
	// Commits stop a quarter of the way into the reserve: the deletes that
	// come when new data is refused have the quarters above, Pebble's
	// flushes and compactions the last.
	mcfg.MinFree = max(2*mcfg.MemTableBytes, reserve/4)
	if reserve > 0 {
		mcfg.Reserve = max(reserve, mcfg.MinFree)
	}
	md, err := meta.OpenLocal(mcfg)
	if err != nil {
		return nil, fmt.Errorf("opening metadata: %w", err)
	}
	return md, nil
}

// metaDrives are the drives that hold metadata: on a standalone node the
// first three slots (the replicas of meta.Local), on a cluster node the
// first slot (the Raft state of all its groups).
func metaDrives(drives []*store.Drive, cluster bool) []*store.Drive {
	n := 3
	if cluster {
		n = 1
	}
	sorted := slices.SortedFunc(slices.Values(drives), func(a, b *store.Drive) int { return a.Slot() - b.Slot() })
	return sorted[:min(n, len(sorted))]
}

// checkRaftSpace fails at once if the drive of a cluster node's Raft
// state has no room to open it, before the node binds its ports and joins.
func checkRaftSpace(drives []*store.Drive, fsys vfs.FS) error {
	home := metaDrives(drives, true)[0]
	if err := meta.CheckOpenSpace(meta.PebbleFS(fsys), filepath.Join(home.Path(), "raft")); err != nil {
		return fmt.Errorf("opening raft state: %w", err)
	}
	return nil
}

// Policy is the redundancy new objects get: the node's own, or in a
// cluster the layout's.
func (n *Node) Policy() placement.Policy {
	n.policyMu.Lock()
	defer n.policyMu.Unlock()
	return n.policy
}

func (n *Node) setPolicy(p placement.Policy) {
	n.policyMu.Lock()
	n.policy = p
	n.policyMu.Unlock()
}

// PrintBanner tells a new user where the endpoint is and how to sign in.
func (n *Node) PrintBanner(w io.Writer) {
	fmt.Fprintf(w, "Redoubt %s is serving S3\n", n.cfg.Version)
	fmt.Fprintf(w, "  S3 endpoint:  %s\n", n.S3URL)
	fmt.Fprintf(w, "  Admin:        %s\n", n.AdminURL)
	fmt.Fprintf(w, "  Region:       %s\n", n.cfg.Region)
	fmt.Fprintf(w, "  Access key:   %s\n", n.Credentials.AccessKey)
	fmt.Fprintf(w, "  Secret key:   %s\n", n.Credentials.SecretKey)
	p := n.Policy()
	switch t := p.Tolerates(); {
	case n.cluster != nil:
		fmt.Fprintf(w, "  Cluster:      node %s in zone %s, RPC %s\n", n.cluster.ID(), n.cfg.Cluster.Zone, n.cfg.Cluster.RPCAddr)
		if l := n.cluster.Layout(); l != nil {
			fmt.Fprintf(w, "  Redundancy:   %s over %d nodes (layout v%d), survives the loss of any %d\n", p, len(l.Nodes), l.Version, t)
		} else {
			fmt.Fprintf(w, "  Redundancy:   set by the first layout, once %d node(s) have joined\n", n.cfg.Cluster.BootstrapExpect)
		}
	case t > 0:
		fmt.Fprintf(w, "  Redundancy:   %s over %d drives, survives the loss of any %d\n", p, len(n.drives), t)
	default:
		fmt.Fprintf(w, "  Redundancy:   %s on %d drive; give --data once per drive to survive losing one\n", p, len(n.drives))
	}
}

// Serve runs the front ends and background work, each under a supervisor
// (see SupervisionConfig), until ctx ends or the S3 front end fails for
// good; then it stops accepting, lets in-flight requests finish within the
// shutdown timeout, stops the services, and closes the metadata.
func (n *Node) Serve(ctx context.Context) error {
	n.superviseServices()
	// The services outlive ctx until the front ends are drained below.
	errc := n.services.start(context.WithoutCancel(ctx), n.cfg.Supervision, n.log.With("component", "supervisor"))

	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
	case err = <-n.fatal:
	}
	n.log.Info("shutting down")
	sctx, scancel := context.WithTimeout(context.Background(), n.cfg.ShutdownTimeout)
	defer scancel()
	if serr := n.s3Srv.Shutdown(sctx); serr != nil {
		n.log.Warn("in-flight S3 requests cut off at the shutdown deadline", "err", serr)
		n.s3Srv.Close()
	}
	n.adminSrv.Shutdown(sctx)
	n.services.shutdown()
	n.close()
	return err
}

// close releases what Start opened; safe on a partly started node.
func (n *Node) close() {
	if n.s3Ln != nil {
		n.s3Ln.Close()
	}
	if n.adminLn != nil {
		n.adminLn.Close()
	}
	if n.cluster != nil {
		if err := n.cluster.Close(); err != nil {
			n.log.Warn("closing cluster state", "err", err)
		}
		n.cluster = nil
	}
	if n.md != nil {
		if err := n.md.Close(); err != nil {
			n.log.Warn("closing metadata", "err", err)
		}
		n.md = nil
	}
	if n.releaseHeap != nil {
		n.releaseHeap()
	}
}

// staticCreds serves the root credentials to the SigV4 verifier.
type staticCreds Credentials

func (c staticCreds) Secret(accessKey string) (string, bool) {
	if accessKey == c.AccessKey {
		return c.SecretKey, true
	}
	return "", false
}
