package node

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/thejerf/suture/v4"

	"github.com/redoubt-io/redoubt/internal/admin"
)

// A node's front ends and background loops each run under a supervisor:
// a panic or an error in one restarts that one, never the node. Every
// service has a supervisor of its own under a root, so that one service
// failing over and over delays no other service's restart and counts
// against no other service's threshold.
//
// Suture restarts a failed service at once until its failure count (which
// halves every FailureDecay) exceeds FailureThreshold; it then waits
// FailureBackoff before restarting it again. Suture would do that forever;
// a service that crosses the threshold GiveUpAfter times is instead
// declared failed and left stopped, so that a broken service shows as
// failed on /status rather than spinning. A run that lasts FailureDecay or
// longer counts as a recovery and forgets the earlier crossings.
//
// An essential service (the S3 front end) that is declared failed ends
// Serve with an error: a node that cannot serve S3 should exit and be
// restarted by whatever runs it.

// SupervisionConfig sets how the node's services are restarted. Zero
// fields take the DefaultSupervisionConfig value.
type SupervisionConfig struct {
	// FailureThreshold is how many recent failures a service may have
	// before its restarts pause for FailureBackoff. With the default 5 and
	// FailureDecay 30 s, a service failing less often than about every
	// 10 s never pauses: 1/(1-0.5^(10/30)) ≈ 4.8.
	FailureThreshold float64
	// FailureDecay is the half-life of the failure count: how fast past
	// failures are forgiven. Default 30 s; a run lasting this long also
	// forgets earlier threshold crossings.
	FailureDecay time.Duration
	// FailureBackoff is the pause once the threshold is crossed, plus up
	// to 50% random jitter so that services broken by a shared cause do
	// not restart in lockstep. Default 15 s: long enough for a transient
	// cause (a full disk being cleaned, a peer restarting) to pass, short
	// enough that the service is back soon after.
	FailureBackoff time.Duration
	// GiveUpAfter is the number of threshold crossings after which a
	// service is failed and no longer restarted. Default 3: a service
	// that panics as soon as it starts is restarted about 17 times over
	// 30 to 45 s (two pauses), then reported failed. 1 gives up at the
	// first crossing, without a pause.
	GiveUpAfter int
	// StopTimeout bounds how long a service may take to stop once the
	// node shuts down; past it, the node goes on closing and logs the
	// laggard. Default 10 s. The front ends are drained before, within
	// Config.ShutdownTimeout.
	StopTimeout time.Duration
}

// DefaultSupervisionConfig is suture's own defaults, giving up after
// three crossings of the threshold.
func DefaultSupervisionConfig() SupervisionConfig {
	return SupervisionConfig{
		FailureThreshold: 5,
		FailureDecay:     30 * time.Second,
		FailureBackoff:   15 * time.Second,
		GiveUpAfter:      3,
		StopTimeout:      10 * time.Second,
	}
}

// Validate rejects negative values; zero means the default.
func (c SupervisionConfig) Validate() error {
	if c.FailureThreshold < 0 || math.IsNaN(c.FailureThreshold) || math.IsInf(c.FailureThreshold, 0) {
		return fmt.Errorf("supervision: failure threshold %v must be a positive number", c.FailureThreshold)
	}
	if c.FailureDecay < 0 || c.FailureBackoff < 0 || c.StopTimeout < 0 {
		return errors.New("supervision: durations must not be negative")
	}
	if c.GiveUpAfter < 0 {
		return fmt.Errorf("supervision: give-up count %d must not be negative", c.GiveUpAfter)
	}
	return nil
}

func (c SupervisionConfig) withDefaults() SupervisionConfig {
	d := DefaultSupervisionConfig()
	if c.FailureThreshold == 0 {
		c.FailureThreshold = d.FailureThreshold
	}
	if c.FailureDecay == 0 {
		c.FailureDecay = d.FailureDecay
	}
	if c.FailureBackoff == 0 {
		c.FailureBackoff = d.FailureBackoff
	}
	if c.GiveUpAfter == 0 {
		c.GiveUpAfter = d.GiveUpAfter
	}
	if c.StopTimeout == 0 {
		c.StopTimeout = d.StopTimeout
	}
	return c
}

// supervise runs run as a supervised service named name: restarted when it
// panics or returns an error, until it keeps failing (see
// SupervisionConfig). run should return only when ctx ends; returning nil
// before that means its work is done, and it is not restarted. Call it
// before Serve, or while the node serves.
func (n *Node) supervise(name string, run func(ctx context.Context) error) {
	n.services.add(name, run, false)
}

// supervisor is the node's tree of services. Its zero value is ready:
// services added before start wait for it.
type supervisor struct {
	mu struct {
		sync.Mutex
		services []*service
		root     *suture.Supervisor // nil until start
	}
	cfg   SupervisionConfig
	log   *slog.Logger
	fatal chan error   // an essential service failed
	done  <-chan error // the root's Serve returned
	stop  func()       // cancels the root's context
}

// service is one supervised service; it is a suture.Service.
type service struct {
	name      string
	run       func(ctx context.Context) error
	essential bool
	tree      *supervisor
	gaveUp    chan struct{} // closed when a failed service is dropped for good
	dropOnce  sync.Once

	mu struct {
		sync.Mutex
		state     admin.ServiceState
		since     time.Time
		runs      int64
		restarts  int64
		lastError string
		crossings int
		runStart  time.Time
	}
}

var _ suture.Service = (*service)(nil)

func (t *supervisor) add(name string, run func(ctx context.Context) error, essential bool) *service {
	s := &service{name: name, run: run, essential: essential, tree: t, gaveUp: make(chan struct{})}
	s.mu.state, s.mu.since = admin.ServiceRestarting, time.Now()
	t.mu.Lock()
	t.mu.services = append(t.mu.services, s)
	root := t.mu.root
	t.mu.Unlock()
	if root != nil {
		root.Add(t.subtree(s))
	}
	return s
}

// start runs every service added so far, and those added later, until ctx
// ends; the returned channel receives the error of an essential service
// that failed for good.
func (t *supervisor) start(ctx context.Context, cfg SupervisionConfig, logger *slog.Logger) <-chan error {
	t.cfg, t.log = cfg.withDefaults(), logger
	t.fatal = make(chan error, 1)
	ctx, t.stop = context.WithCancel(ctx)
	root := suture.New("redoubt", suture.Spec{
		EventHook: func(e suture.Event) { logger.Warn("supervisor: "+e.String(), "event", e.Map()) },
		Timeout:   t.cfg.StopTimeout,
	})
	t.mu.Lock()
	t.mu.root = root
	services := t.mu.services
	t.mu.Unlock()
	for _, s := range services {
		root.Add(t.subtree(s))
	}
	t.done = root.ServeBackground(ctx)
	return t.fatal
}

// shutdown stops every service and waits for the tree, each service for at
// most StopTimeout.
func (t *supervisor) shutdown() {
	if t.stop == nil {
		return
	}
	t.stop()
	<-t.done
}

// subtree gives s a supervisor of its own. It is wrapped so that the root
// does not see a *suture.Supervisor: suture would replace the child's
// event hook with the root's when it does.
func (t *supervisor) subtree(s *service) suture.Service {
	sub := suture.New(s.name, suture.Spec{
		EventHook:        s.event,
		FailureThreshold: t.cfg.FailureThreshold,
		FailureDecay:     t.cfg.FailureDecay.Seconds(),
		FailureBackoff:   t.cfg.FailureBackoff,
		Timeout:          t.cfg.StopTimeout,
	})
	sub.Add(s)
	return subtree{sub}
}

type subtree struct{ sup *suture.Supervisor }

func (st subtree) Serve(ctx context.Context) error { return st.sup.Serve(ctx) }
func (st subtree) String() string                  { return st.sup.Name }

func (s *service) String() string { return s.name }

// Serve runs the service once, under its supervisor.
func (s *service) Serve(ctx context.Context) error {
	s.mu.Lock()
	if s.mu.state == admin.ServiceFailed {
		s.mu.Unlock()
		s.dropOnce.Do(func() { close(s.gaveUp) })
		return fmt.Errorf("%s keeps failing: %w", s.name, suture.ErrDoNotRestart)
	}
	now := time.Now()
	if s.mu.runs > 0 {
		s.mu.restarts++
	}
	s.mu.runs++
	s.mu.state, s.mu.since, s.mu.runStart = admin.ServiceRunning, now, now
	s.mu.Unlock()

	finished := false
	defer func() {
		// Runs on a panic too, before suture recovers it.
		s.mu.Lock()
		defer s.mu.Unlock()
		if time.Since(s.mu.runStart) >= s.tree.cfg.FailureDecay {
			s.mu.crossings = 0
		}
		if s.mu.state != admin.ServiceRunning {
			return
		}
		s.mu.since = time.Now()
		s.mu.state = admin.ServiceRestarting
		if finished {
			s.mu.state = admin.ServiceStopped
		}
	}()
	err := s.run(ctx)
	if ctx.Err() != nil || err == nil || errors.Is(err, suture.ErrDoNotRestart) {
		// Stopped on request, or its work is done: not a failure.
		finished = true
		if err != nil && ctx.Err() == nil && !errors.Is(err, suture.ErrDoNotRestart) {
			s.log().Warn("service ended with an error while stopping", "err", err)
		}
		return fmt.Errorf("%s ended: %w", s.name, suture.ErrDoNotRestart)
	}
	return err
}

func (s *service) log() *slog.Logger { return s.tree.log.With("service", s.name) }

// event records and logs what the service's supervisor reports. Suture
// calls it from the supervisor's goroutine; for one failure it reports the
// back-off, if any, before the failure itself.
func (s *service) event(e suture.Event) {
	log := s.log()
	switch e := e.(type) {
	case suture.EventServicePanic:
		s.failed(log, e.PanicMsg, e.CurrentFailures, e.Restarting, "panic", e.PanicMsg, "stack", e.Stacktrace)
	case suture.EventServiceTerminate:
		msg := fmt.Sprint(e.Err)
		s.failed(log, msg, e.CurrentFailures, e.Restarting, "err", msg)
	case suture.EventBackoff:
		s.mu.Lock()
		s.mu.crossings++
		giveUp := s.mu.crossings >= s.tree.cfg.GiveUpAfter
		if giveUp {
			s.mu.state, s.mu.since = admin.ServiceFailed, time.Now()
		}
		s.mu.Unlock()
		if !giveUp {
			log.Warn("service fails too often; pausing its restarts", "backoff", s.tree.cfg.FailureBackoff)
		}
	case suture.EventResume:
		log.Info("restarting service after its back-off")
	case suture.EventStopTimeout:
		log.Warn("service did not stop in time", "timeout", s.tree.cfg.StopTimeout)
	default:
		log.Warn("supervisor: " + e.String())
	}
}

// failed records one failure of the service and logs it.
func (s *service) failed(log *slog.Logger, lastError string, failures float64, restarting bool, attrs ...any) {
	s.mu.Lock()
	s.mu.lastError = lastError
	state, restarts := s.mu.state, s.mu.restarts
	s.mu.Unlock()
	attrs = append(attrs, "restarts", restarts, "failures", math.Round(failures*100)/100,
		"threshold", s.tree.cfg.FailureThreshold)
	switch {
	case state == admin.ServiceFailed:
		log.Error("service keeps failing; it is stopped and no longer restarted", attrs...)
		if s.essential {
			select {
			case s.tree.fatal <- fmt.Errorf("%s failed: %s", s.name, lastError):
			default:
			}
		}
	case restarting:
		log.Warn("service failed; restarting it", attrs...)
	default:
		log.Warn("service failed; restarting it after a back-off", attrs...)
	}
}

// status is every service's state, in the order they were added.
func (t *supervisor) status() []admin.ServiceStatus {
	t.mu.Lock()
	services := t.mu.services
	t.mu.Unlock()
	out := make([]admin.ServiceStatus, 0, len(services))
	for _, s := range services {
		s.mu.Lock()
		out = append(out, admin.ServiceStatus{
			Name:      s.name,
			State:     s.mu.state,
			Restarts:  s.mu.restarts,
			LastError: s.mu.lastError,
			Since:     s.mu.since,
		})
		s.mu.Unlock()
	}
	return out
}

// frontEnd is an HTTP server as a restartable service. http.Server.Serve
// closes its listener when it returns, so a restart binds the address
// again, which also picks up a renewed TLS certificate.
type frontEnd struct {
	name   string
	srv    *http.Server
	addr   string
	listen func(addr string) (net.Listener, error)

	mu sync.Mutex
	ln net.Listener // the listener bound by Start, until first served
}

func (f *frontEnd) serve(context.Context) error {
	f.mu.Lock()
	ln := f.ln
	f.ln = nil
	f.mu.Unlock()
	if ln == nil {
		var err error
		if ln, err = f.listen(f.addr); err != nil {
			return fmt.Errorf("%s: binding %s again: %w", f.name, f.addr, err)
		}
	}
	// The node drains the server with Shutdown before it stops the
	// services, so ctx ending is not a reason to return.
	if err := f.srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("%s: %w", f.name, err)
	}
	return nil
}

// superviseServices adds the services every node runs.
func (n *Node) superviseServices() {
	s3 := &frontEnd{name: "S3 server", srv: n.s3Srv, addr: n.s3Ln.Addr().String(), ln: n.s3Ln, listen: n.listenS3}
	n.services.add("s3", s3.serve, true)
	adm := &frontEnd{name: "admin server", srv: n.adminSrv, addr: n.adminLn.Addr().String(), ln: n.adminLn,
		listen: func(addr string) (net.Listener, error) { return net.Listen("tcp", addr) }}
	n.services.add("admin", adm.serve, false)
	n.services.add("drive-health", n.data.Run, false)
}

// listenS3 binds the S3 address again after the S3 server failed.
func (n *Node) listenS3(addr string) (net.Listener, error) {
	var cfg *tls.Config
	if n.cfg.TLSCert != "" {
		cert, err := tls.LoadX509KeyPair(n.cfg.TLSCert, n.cfg.TLSKey)
		if err != nil {
			return nil, fmt.Errorf("loading TLS certificate: %w", err)
		}
		cfg = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	if cfg != nil {
		ln = tls.NewListener(ln, cfg)
	}
	return ln, nil
}
