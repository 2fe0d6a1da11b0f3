// Package lifecycle runs a service's long-running parts together and serves
// its admin endpoints: /healthz (the process runs), /readyz (it should get
// traffic) and /metrics (Prometheus, from the telemetry registry).
package lifecycle

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/sync/errgroup"

	"github.com/stockcast/stockcast/pkg/telemetry"
)

// adminShutdownTimeout bounds the graceful shutdown of the admin server.
const adminShutdownTimeout = 5 * time.Second

// RunGroup runs every fn concurrently with a shared context; the first error
// cancels that context for the others. It returns when all have returned,
// with the first error (nil when all returned nil).
func RunGroup(ctx context.Context, fns ...func(context.Context) error) error {
	g, gctx := errgroup.WithContext(ctx)
	for _, fn := range fns {
		g.Go(func() error { return fn(gctx) })
	}
	return g.Wait()
}

// Readiness says whether the service should receive traffic. The zero value
// is not ready.
type Readiness struct{ ready atomic.Bool }

// Set marks the service ready or not.
func (r *Readiness) Set(ready bool) { r.ready.Store(ready) }

// Ready reports the current state.
func (r *Readiness) Ready() bool { return r.ready.Load() }

// AdminConfig configures the admin HTTP server.
type AdminConfig struct {
	Addr string
	// Pprof serves net/http/pprof under /debug/pprof/ (CPU and heap
	// profiles of a running service, the first thing to look at when a
	// consumer falls behind).
	Pprof bool
}

// RegisterFlags registers -admin.addr.
func (c *AdminConfig) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.Addr, "admin.addr", "127.0.0.1:9464", "admin HTTP address (/healthz, /readyz, /metrics)")
	fs.BoolVar(&c.Pprof, "admin.pprof", true, "serve profiles under /debug/pprof/ on the admin address")
}

// Validate checks the configuration.
func (c *AdminConfig) Validate() error {
	if _, _, err := net.SplitHostPort(c.Addr); err != nil {
		return fmt.Errorf("admin addr %q: %w", c.Addr, err)
	}
	return nil
}

// Admin is the admin HTTP server.
type Admin struct {
	cfg   AdminConfig
	mux   *http.ServeMux
	mu    sync.Mutex
	addr  string
	ready *Readiness
}

// NewAdmin creates the admin server; Run starts it.
func NewAdmin(cfg AdminConfig, tel *telemetry.Telemetry, ready *Readiness) *Admin {
	a := &Admin{cfg: cfg, mux: http.NewServeMux(), ready: ready}
	a.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	a.mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !a.ready.Ready() {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	a.mux.Handle("GET /metrics", promhttp.HandlerFor(tel.Registry, promhttp.HandlerOpts{}))
	if cfg.Pprof {
		a.mux.HandleFunc("/debug/pprof/", pprof.Index)
		a.mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		a.mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		a.mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		a.mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	return a
}

// Handle adds a handler (e.g. a debug page) before Run.
func (a *Admin) Handle(pattern string, h http.Handler) { a.mux.Handle(pattern, h) }

// Addr is the address the server listens on once Run has started ("" before);
// with port 0 in the config this is the port the system chose.
func (a *Admin) Addr() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.addr
}

// Run serves until ctx is done, then shuts down gracefully (bounded).
func (a *Admin) Run(ctx context.Context) error {
	ln, err := net.Listen("tcp", a.cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen admin on %s: %w", a.cfg.Addr, err)
	}
	a.mu.Lock()
	a.addr = ln.Addr().String()
	a.mu.Unlock()
	srv := &http.Server{Handler: a.mux, ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve admin on %s: %w", a.addr, err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), adminShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("shut down admin server: %w", err)
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve admin on %s: %w", a.addr, err)
	}
	return nil
}
