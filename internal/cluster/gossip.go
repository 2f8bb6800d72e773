package cluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redoubt-io/redoubt/internal/membership"
)

// Gossip runs as the "gossip" service. Start binds the first instance, so
// that a node that cannot bind its gossip port fails to start; from then
// on the service keeps gossip working: it takes the RPC addresses the
// members announce, joins the known nodes again when gossip lists fewer of
// them, and checks that the instance still answers. An instance that is
// closed or stops answering ends the run with an error, so that the
// supervisor counts the failure, logs it and paces the restarts; every
// run after the first begins by replacing the instance with a new one on
// the same address, whatever state a panic or an error left it in.

// gossipUpkeepInterval is how often the gossip service takes addresses
// from gossip, re-joins if needed and probes the instance.
const gossipUpkeepInterval = time.Second

// gossipUnanswered is how many probes of the instance in a row may go
// unanswered before it is taken for broken: a busy host misses one ack,
// not three a second apart.
const gossipUnanswered = 3

// gossipRetryPause is how long an unsupervised gossip service waits after
// a failed run before the next (a supervisor paces its own restarts).
const gossipRetryPause = time.Second

// errGossipStopped: the cluster is closing, and gossip is not restarted.
var errGossipStopped = errors.New("cluster: gossip stopped")

// gossipUpkeepHook, set only by tests, is called at every upkeep pass of
// the gossip service, to make it fail.
var gossipUpkeepHook func(*Cluster)

// gossipState is this node's gossip instance, which the gossip service
// replaces when it fails.
type gossipState struct {
	// cur is the current instance; nil when gossip is off.
	cur atomic.Pointer[membership.Members]
	// bind is the address the first instance bound, with the port it
	// got; set by Start. Later instances bind it too, so that the others
	// still reach this node where they know it.
	bind string
	// runs counts the gossip service's runs.
	runs atomic.Int64
	// mu orders replacing the instance with closing the cluster.
	mu struct {
		sync.Mutex
		stopped bool
	}
}

// members is the current gossip instance, nil when gossip is off. It may
// be replaced at any time: callers use the one they got for one task and
// ask again for the next.
func (c *Cluster) members() *membership.Members {
	if c == nil {
		return nil
	}
	return c.gossip.cur.Load()
}

// startGossip binds the first gossip instance.
func (c *Cluster) startGossip() error {
	m, err := c.newGossip(c.cfg.GossipAddr)
	if err != nil {
		return fmt.Errorf("starting gossip on %s: %w", c.cfg.GossipAddr, err)
	}
	c.gossip.bind = m.LocalAddr()
	c.gossip.cur.Store(m)
	return nil
}

// gossipAdvertised is the gossip address the others should use for bind:
// bind itself, unless its host is a wildcard (0.0.0.0 or ::, to listen on
// every interface, as in a container), which nobody can dial: then the
// host of this node's RPC address, which must be a dialable one, with the
// gossip port. Empty if the port is not known yet (0).
func (c *Cluster) gossipAdvertised(bind string) string {
	host, port, err := net.SplitHostPort(bind)
	if err != nil || port == "0" {
		return ""
	}
	if ip := net.ParseIP(host); host != "" && (ip == nil || !ip.IsUnspecified()) {
		return bind
	}
	rpcHost, _, err := net.SplitHostPort(c.net.Addr())
	if err != nil {
		return ""
	}
	return net.JoinHostPort(rpcHost, port)
}

func (c *Cluster) newGossip(bind string) (*membership.Members, error) {
	mcfg := membership.DefaultConfig()
	mcfg.NodeID = string(c.nodeID)
	mcfg.BindAddr = bind
	if adv := c.gossipAdvertised(bind); adv != bind {
		mcfg.AdvertiseAddr = adv
	}
	mcfg.Secret = c.cfg.Secret
	mcfg.Meta = membership.NodeMeta{Zone: c.cfg.Zone, RPCAddr: c.net.Addr(), S3Addr: c.cfg.S3Addr, AdminAddr: c.cfg.AdminAddr, Version: c.cfg.Version}
	mcfg.Logger = c.log.With("component", "gossip")
	return membership.Start(c.ctx, mcfg)
}

// restartGossip closes the current instance and starts a new one on the
// same address. It returns errGossipStopped once the cluster is closing.
func (c *Cluster) restartGossip() (*membership.Members, error) {
	g := &c.gossip
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.mu.stopped {
		return nil, errGossipStopped
	}
	// The old instance holds the port until it is closed. It sends no
	// leave message: the node is not leaving, and the new instance takes
	// its name and address before the others would miss it.
	if old := g.cur.Load(); old != nil {
		old.Close()
	}
	m, err := c.newGossip(g.bind)
	if err != nil {
		// The closed instance stays current: its list is stale but
		// readable, and the next run tries again.
		return nil, fmt.Errorf("restarting gossip on %s: %w", g.bind, err)
	}
	g.cur.Store(m)
	c.log.Warn("gossip restarted on the same address", "addr", g.bind)
	return m, nil
}

// stopGossip keeps the gossip service from starting another instance and
// returns the current one, for Close to leave and close.
func (c *Cluster) stopGossip() *membership.Members {
	g := &c.gossip
	g.mu.Lock()
	defer g.mu.Unlock()
	g.mu.stopped = true
	return g.cur.Load()
}

// superviseGossip runs the gossip service under Config.Supervise, or as a
// goroutine that runs it again after an error.
func (c *Cluster) superviseGossip() {
	if c.cfg.Supervise != nil {
		c.cfg.Supervise("gossip", c.runGossip)
		return
	}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		for {
			err := c.runGossip(c.ctx)
			if err == nil || c.ctx.Err() != nil {
				return
			}
			c.log.Warn("gossip service failed; running it again", "err", err, "after", gossipRetryPause)
			select {
			case <-c.ctx.Done():
				return
			case <-time.After(gossipRetryPause):
			}
		}
	}()
}

// runGossip is one run of the gossip service, until stop ends, the
// cluster closes, or the instance fails.
func (c *Cluster) runGossip(stop context.Context) error {
	ctx, cancel := context.WithCancel(stop)
	defer cancel()
	defer context.AfterFunc(c.ctx, cancel)()

	m := c.members()
	if c.gossip.runs.Add(1) > 1 {
		// The previous run failed or was stopped: whatever it left
		// behind, start afresh and find the others again.
		var err error
		if m, err = c.restartGossip(); err != nil {
			if errors.Is(err, errGossipStopped) {
				return nil
			}
			return err
		}
		c.joinGossip(ctx, m)
	}

	t := time.NewTicker(gossipUpkeepInterval)
	defer t.Stop()
	unanswered := 0
	for {
		select {
		case <-ctx.Done():
			if c.ctx.Err() != nil {
				return nil
			}
			return stop.Err()
		case <-m.Done():
			return c.gossipFailed(m, errors.New("gossip instance closed"))
		case <-t.C:
		}
		if hook := gossipUpkeepHook; hook != nil {
			hook(c)
		}
		if err := m.Probe(); err != nil {
			if errors.Is(err, membership.ErrClosed) {
				continue // Done is closed too
			}
			if unanswered++; unanswered >= gossipUnanswered {
				return c.gossipFailed(m, fmt.Errorf("gossip instance unanswered %d times in a row: %w", unanswered, err))
			}
			c.log.Debug("gossip probe unanswered", "err", err)
			continue
		}
		unanswered = 0
		c.learnFromGossip(m)
		if len(m.List()) < len(c.knownNodes()) {
			c.joinGossip(ctx, m)
		}
	}
}

// gossipFailed closes a failed instance, so that it frees its port while
// the supervisor waits to run the service again, and returns err; nil if
// the cluster is closing (its Close closed the instance).
func (c *Cluster) gossipFailed(m *membership.Members, err error) error {
	g := &c.gossip
	g.mu.Lock()
	stopped := g.mu.stopped
	g.mu.Unlock()
	if stopped || c.ctx.Err() != nil {
		return nil
	}
	m.Close()
	return err
}
