package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/redoubt-io/redoubt/internal/admin"
	"github.com/redoubt-io/redoubt/internal/node"
)

// devConfig is what `redoubt dev` starts.
type devConfig struct {
	nodes, zones, drives int
	dir                  string
	basePort             int
	ec                   string
	replicas             int
	ready                time.Duration
	repairAfter          time.Duration
}

func newDevCmd() *cobra.Command {
	c := devConfig{nodes: 3, zones: 3, drives: 2, dir: "redoubt-dev", basePort: 3900, ready: 30 * time.Second, repairAfter: time.Minute}
	cmd := &cobra.Command{
		Use:   "dev",
		Short: "Run a local cluster of separate server processes, for trying Redoubt out",
		Long: `Start a cluster of --nodes server processes on 127.0.0.1, spread over
--zones zones, each with --drives drive directories under --dir. Node i serves
S3 on port BASE+10*(i-1) (3900, 3910, ...), its node-to-node RPC on the next
port, gossip on the one after, and its admin API on BASE+10*(i-1)+3.

The nodes share one generated cluster secret and one pair of root credentials,
both kept in --dir, so running dev again on the same directory restarts the same
cluster with its data. The admin verbs (status, layout, repair) run from the
same directory find the credentials there (or give --data DIR). A status line shows the nodes that are up and the
layout version. Ctrl-C stops every node cleanly.

Kill a node (its pid is printed) and the data stays readable from the others;
leave it dead for --repair-after and the others take it out of the layout and
rebuild what it held (redoubt repair status --watch shows it).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runDev(cmd.Context(), c, cmd.OutOrStdout(), cmd.ErrOrStderr(), newLogLevelArg(cmd))
		},
	}
	f := cmd.Flags()
	f.IntVar(&c.nodes, "nodes", c.nodes, "server processes to start")
	f.IntVar(&c.zones, "zones", c.zones, "zones to spread them over (node i goes to zone i mod zones)")
	f.IntVar(&c.drives, "drives", c.drives, "drive directories per node")
	f.StringVar(&c.dir, "dir", c.dir, "where the nodes keep their data, the secret and the credentials")
	f.IntVar(&c.basePort, "base-port", c.basePort, "first port; node i uses BASE+10*(i-1) .. +3")
	f.StringVar(&c.ec, "ec", "", "erasure coding K+M (default: by cluster size)")
	f.IntVar(&c.replicas, "replicas", 0, "mirror every object N times instead of erasure coding")
	f.DurationVar(&c.repairAfter, "repair-after", c.repairAfter, "a node dead this long is taken out of the layout and its data rebuilt on the others (servers default to 10m; 0: never)")
	f.DurationVar(&c.ready, "ready-timeout", c.ready, "how long to wait for the cluster to be ready")
	return withEnv(cmd)
}

// newLogLevelArg passes the dev command's log level on to its servers.
func newLogLevelArg(cmd *cobra.Command) string {
	lvl, err := logLevel(cmd)
	if err != nil {
		return "info"
	}
	return strings.ToLower(lvl.String())
}

// devNode is one server process of a dev cluster.
type devNode struct {
	i                      int
	zone                   string
	s3, rpc, gossip, admin string
	cmd                    *exec.Cmd
	done                   chan struct{}
	err                    error
}

func (c devConfig) validate() error {
	switch {
	case c.nodes < 1 || c.nodes > 50:
		return fmt.Errorf("--nodes %d: give 1 to 50", c.nodes)
	case c.zones < 1 || c.zones > c.nodes:
		return fmt.Errorf("--zones %d: give 1 to --nodes", c.zones)
	case c.drives < 1 || c.drives > 16:
		return fmt.Errorf("--drives %d: give 1 to 16", c.drives)
	case c.basePort < 1024 || c.basePort+10*c.nodes > 65535:
		return fmt.Errorf("--base-port %d leaves no room for %d nodes", c.basePort, c.nodes)
	case c.ec != "" && c.replicas != 0:
		return errors.New("--ec and --replicas are alternatives; give one")
	}
	return nil
}

func runDev(ctx context.Context, c devConfig, out, errOut io.Writer, logLevel string) error {
	if err := c.validate(); err != nil {
		return err
	}
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(c.dir, 0o700); err != nil {
		return err
	}
	secretFile := filepath.Join(c.dir, "cluster-secret")
	if _, err := readOrCreateSecret(secretFile, 32); err != nil {
		return err
	}
	ak, err := readOrCreateSecret(filepath.Join(c.dir, "access-key"), 10)
	if err != nil {
		return err
	}
	sk, err := readOrCreateSecret(filepath.Join(c.dir, "secret-key"), 20)
	if err != nil {
		return err
	}
	ak = strings.ToUpper(ak)
	// The admin verbs, run from the same directory, sign with these.
	if err := node.WriteCredentials(c.dir, node.Credentials{AccessKey: ak, SecretKey: sk}); err != nil {
		return err
	}
	ac := &admin.Client{AccessKey: ak, SecretKey: sk, HTTP: devClient}

	nodes := make([]*devNode, c.nodes)
	for i := range nodes {
		p := c.basePort + 10*i
		nodes[i] = &devNode{
			i:      i + 1,
			zone:   fmt.Sprintf("zone-%c", 'a'+i%c.zones),
			s3:     fmt.Sprintf("127.0.0.1:%d", p),
			rpc:    fmt.Sprintf("127.0.0.1:%d", p+1),
			gossip: fmt.Sprintf("127.0.0.1:%d", p+2),
			admin:  fmt.Sprintf("127.0.0.1:%d", p+3),
		}
	}
	logDir := filepath.Join(c.dir, "logs")
	if err := os.MkdirAll(logDir, 0o700); err != nil {
		return err
	}
	started := time.Now()
	stopAll := func() {
		for _, n := range nodes {
			if n.cmd != nil && n.cmd.Process != nil {
				n.cmd.Process.Signal(syscall.SIGTERM)
			}
		}
		for _, n := range nodes {
			if n.cmd == nil {
				continue
			}
			select {
			case <-n.done:
			case <-time.After(40 * time.Second):
				n.cmd.Process.Kill()
				<-n.done
			}
		}
	}
	defer stopAll()
	for _, n := range nodes {
		args := []string{"server",
			"--s3-addr", n.s3, "--admin-addr", n.admin, "--rpc-addr", n.rpc, "--gossip-addr", n.gossip,
			"--zone", n.zone, "--cluster-secret-file", secretFile, "--log-level", logLevel,
			"--bootstrap-expect", fmt.Sprint(c.nodes), "--repair-after", c.repairAfter.String()}
		if n.i > 1 {
			args = append(args, "--join", nodes[0].rpc)
		}
		for d := range c.drives {
			args = append(args, "--data", filepath.Join(c.dir, fmt.Sprintf("node%d", n.i), fmt.Sprintf("drive%d", d+1)))
		}
		if c.ec != "" {
			args = append(args, "--ec", c.ec)
		}
		if c.replicas != 0 {
			args = append(args, "--replicas", fmt.Sprint(c.replicas))
		}
		logf, err := os.OpenFile(filepath.Join(logDir, fmt.Sprintf("node%d.log", n.i)), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
		if err != nil {
			return err
		}
		defer logf.Close()
		n.cmd = exec.Command(exe, args...)
		n.cmd.Env = append(os.Environ(), "REDOUBT_ACCESS_KEY="+ak, "REDOUBT_SECRET_KEY="+sk)
		n.cmd.Stdout, n.cmd.Stderr = logf, logf
		// Each node in its own process group, so that the terminal's
		// Ctrl-C reaches only dev, which then stops the nodes in order.
		n.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if err := n.cmd.Start(); err != nil {
			return fmt.Errorf("starting node %d: %w", n.i, err)
		}
		n.done = make(chan struct{})
		go func(n *devNode) { n.err = n.cmd.Wait(); close(n.done) }(n)
	}

	rctx, cancel := context.WithTimeout(ctx, c.ready)
	st, err := waitDevReady(rctx, ac, nodes)
	cancel()
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("cluster not ready: %w (logs in %s)", err, logDir)
	}
	fmt.Fprintf(out, "Redoubt dev cluster: %d nodes in %d zones, ready in %s\n", c.nodes, c.zones, time.Since(started).Round(10*time.Millisecond))
	fmt.Fprintf(out, "  Region:       us-east-1\n  Access key:   %s\n  Secret key:   %s\n  Redundancy:   %s\n", ak, sk, st.Policy)
	for _, n := range nodes {
		fmt.Fprintf(out, "  node %d  %-7s S3 endpoint: http://%s  admin: http://%s  pid %d\n", n.i, n.zone, n.s3, n.admin, n.cmd.Process.Pid)
	}
	fmt.Fprintf(out, "  Logs and data: %s\n", c.dir)
	fmt.Fprintf(out, "Try:\n  export AWS_ACCESS_KEY_ID=%s AWS_SECRET_ACCESS_KEY=%s AWS_REGION=us-east-1\n", ak, sk)
	fmt.Fprintf(out, "  aws --endpoint-url http://%s s3 mb s3://demo && aws --endpoint-url http://%s s3 cp README.md s3://demo/\n", nodes[0].s3, nodes[0].s3)
	fmt.Fprintf(out, "  kill -9 %d   # then read it back through another node:\n", nodes[len(nodes)-1].cmd.Process.Pid)
	fmt.Fprintf(out, "  aws --endpoint-url http://%s s3 cp s3://demo/README.md -\n", nodes[min(1, len(nodes)-1)].s3)
	fmt.Fprintln(out, "Ctrl-C stops the cluster.")

	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		fmt.Fprintf(errOut, "\r%s\033[K", devStatusLine(ctx, ac, nodes))
		select {
		case <-ctx.Done():
			fmt.Fprintln(errOut, "\nstopping the cluster")
			stopAll()
			return nil
		case <-tick.C:
		}
	}
}

// readOrCreateSecret returns the hex secret kept in path, creating it with
// n random bytes (mode 0600) on first use.
func readOrCreateSecret(path string, n int) (string, error) {
	if b, err := os.ReadFile(path); err == nil {
		s := strings.TrimSpace(string(b))
		if s == "" {
			return "", fmt.Errorf("%s is empty", path)
		}
		return s, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", err
	}
	b := make([]byte, n)
	rand.Read(b)
	s := hex.EncodeToString(b)
	if err := os.WriteFile(path, []byte(s+"\n"), 0o600); err != nil {
		return "", err
	}
	return s, nil
}

// waitDevReady polls the nodes until every one answers /health and the
// first one reports a layout, every node alive and every partition led.
func waitDevReady(ctx context.Context, ac *admin.Client, nodes []*devNode) (admin.Status, error) {
	var last string
	for {
		for _, n := range nodes {
			select {
			case <-n.done:
				return admin.Status{}, fmt.Errorf("node %d exited: %v", n.i, n.err)
			default:
			}
		}
		st, err := devStatus(ctx, ac, nodes[0])
		switch {
		case err != nil:
			last = err.Error()
		case st.Cluster == nil:
			last = "node 1 is not clustered"
		case st.Cluster.LayoutVersion == 0:
			last = "waiting for the nodes to join"
		default:
			alive := 0
			for _, ns := range st.Cluster.Nodes {
				if ns.State == admin.NodeAlive && ns.InLayout {
					alive++
				}
			}
			if alive == len(nodes) && allLed(ctx, ac, nodes) {
				return st, nil
			}
			last = fmt.Sprintf("%d of %d nodes alive in the layout, or partitions without leaders", alive, len(nodes))
		}
		select {
		case <-ctx.Done():
			return admin.Status{}, fmt.Errorf("%w: %s", ctx.Err(), last)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// allLed reports whether every node sees a leader for each group it hosts.
func allLed(ctx context.Context, ac *admin.Client, nodes []*devNode) bool {
	for _, n := range nodes {
		st, err := devStatus(ctx, ac, n)
		if err != nil || st.Cluster == nil || st.Cluster.Groups.Leaderless > 0 || st.Cluster.System.Member && st.Cluster.System.Leader == "" {
			return false
		}
	}
	return true
}

var devClient = &http.Client{Timeout: 2 * time.Second}

func devStatus(ctx context.Context, ac *admin.Client, n *devNode) (admin.Status, error) {
	var st admin.Status
	if err := ac.Call(ctx, n.admin, http.MethodGet, "/status", nil, &st); err != nil {
		return st, fmt.Errorf("node %d: %w", n.i, err)
	}
	return st, nil
}

// devStatusLine is one line: each node up or down, and the layout version
// the first live node reports.
func devStatusLine(ctx context.Context, ac *admin.Client, nodes []*devNode) string {
	var mu sync.Mutex
	up := make([]bool, len(nodes))
	var layout uint64
	var objects int64
	var wg sync.WaitGroup
	for i, n := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st, err := devStatus(ctx, ac, n)
			mu.Lock()
			defer mu.Unlock()
			up[i] = err == nil
			if err == nil && st.Cluster != nil && st.Cluster.LayoutVersion > layout {
				layout = st.Cluster.LayoutVersion
			}
			if err == nil && st.Objects > objects {
				objects = st.Objects
			}
		}()
	}
	wg.Wait()
	var b strings.Builder
	n := 0
	for i, u := range up {
		mark := "down"
		if u {
			mark = "up"
			n++
		}
		fmt.Fprintf(&b, "n%d %s  ", i+1, mark)
	}
	return fmt.Sprintf("%s| %d/%d up, layout v%d, %d objects", b.String(), n, len(nodes), layout, objects)
}
