package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// ErrConfig is wrapped by every error Validate returns.
var ErrConfig = errors.New("invalid admin config")

// Config configures the admin endpoints.
type Config struct {
	// Registry is gathered by /metrics. It must not be nil; NewRegistry
	// makes one with the Go runtime and process collectors.
	Registry prometheus.Gatherer
	// StatusTimeout bounds one StatusSource.Status call, so that a stuck
	// component delays /status answers but cannot pile them up.
	StatusTimeout time.Duration
	// MetricsTimeout bounds one /metrics scrape. Prometheus sends its own
	// deadline header, which wins when shorter.
	MetricsTimeout time.Duration
}

// DefaultConfig has no registry; set Registry before use.
func DefaultConfig() Config {
	return Config{
		// Well under Prometheus's and most probes' 10 s default timeout.
		StatusTimeout:  5 * time.Second,
		MetricsTimeout: 10 * time.Second,
	}
}

func (c Config) Validate() error {
	if c.Registry == nil {
		return fmt.Errorf("%w: registry is nil", ErrConfig)
	}
	if c.StatusTimeout <= 0 || c.MetricsTimeout <= 0 {
		return fmt.Errorf("%w: timeouts must be positive", ErrConfig)
	}
	return nil
}

// NewRegistry returns a registry holding the Go runtime and process
// collectors, to which components add their own metrics.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return reg
}

// New returns the handler of /health, /status and /metrics. Zero timeouts
// in cfg take their defaults. A nil Registry or src is not a crash: the
// endpoint that needs it answers 503 and New logs why; call cfg.Validate
// first to catch it at startup.
func New(cfg Config, src StatusSource, logger *slog.Logger) http.Handler {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	def := DefaultConfig()
	if cfg.StatusTimeout <= 0 {
		cfg.StatusTimeout = def.StatusTimeout
	}
	if cfg.MetricsTimeout <= 0 {
		cfg.MetricsTimeout = def.MetricsTimeout
	}
	h := &handler{cfg: cfg, src: src, log: logger}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /health", h.health)
	mux.HandleFunc("GET /status", h.status)
	if cfg.Registry != nil {
		mux.Handle("GET /metrics", promhttp.HandlerFor(cfg.Registry, promhttp.HandlerOpts{
			ErrorLog:      promLogger{logger},
			ErrorHandling: promhttp.ContinueOnError,
			Timeout:       cfg.MetricsTimeout,
			// Bounds memory when scrapers pile up on a slow node.
			MaxRequestsInFlight: 4,
		}))
	} else {
		logger.Warn("admin: no metrics registry; /metrics answers 503")
		mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, "metrics not configured", http.StatusServiceUnavailable)
		})
	}
	if src == nil {
		logger.Warn("admin: no status source; /status answers 503")
	}
	return mux
}

type handler struct {
	cfg Config
	src StatusSource
	log *slog.Logger
}

func (h *handler) health(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	fmt.Fprintln(w, "ok")
}

func (h *handler) status(w http.ResponseWriter, r *http.Request) {
	if h.src == nil {
		http.Error(w, "status not configured", http.StatusServiceUnavailable)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), h.cfg.StatusTimeout)
	defer cancel()
	st := h.src.Status(ctx)
	// Lists are arrays in JSON even when empty, so clients need no null
	// check.
	if st.Drives == nil {
		st.Drives = []DriveStatus{}
	}
	if st.MetadataReplicas == nil {
		st.MetadataReplicas = []ReplicaStatus{}
	}
	body, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		h.log.Error("admin: encoding status", "err", err)
		http.Error(w, "encoding status failed", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Write(append(body, '\n'))
}

// promLogger sends promhttp's errors to slog.
type promLogger struct{ log *slog.Logger }

func (l promLogger) Println(v ...any) {
	l.log.Warn("admin: metrics", "err", fmt.Sprint(v...))
}
