// Package app wires the console: configuration, telemetry, users and
// sessions, ClickHouse, the gRPC clients of the other services, the live
// hub (metrics scraper and DLQ reader), the HTTP server and the admin
// endpoints.
package app

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"

	"github.com/stockcast/stockcast/pkg/chx"
	"github.com/stockcast/stockcast/pkg/config"
	"github.com/stockcast/stockcast/pkg/grpcx"
	"github.com/stockcast/stockcast/pkg/kafkax"
	"github.com/stockcast/stockcast/pkg/lifecycle"
	"github.com/stockcast/stockcast/pkg/modelregistry"
	"github.com/stockcast/stockcast/pkg/telemetry"
	"github.com/stockcast/stockcast/pkg/topics"
	featurev1 "github.com/stockcast/stockcast/proto/stockcast/feature/v1"
	forecastv1 "github.com/stockcast/stockcast/proto/stockcast/forecast/v1"
	replenishmentv1 "github.com/stockcast/stockcast/proto/stockcast/replenishment/v1"
	"github.com/stockcast/stockcast/services/console/internal/api"
	"github.com/stockcast/stockcast/services/console/internal/auth"
	"github.com/stockcast/stockcast/services/console/internal/insight"
	"github.com/stockcast/stockcast/services/console/internal/live"
	"github.com/stockcast/stockcast/services/console/internal/reports"
	"github.com/stockcast/stockcast/services/console/web"
)

// ServiceName names the service in logs and traces.
const ServiceName = "console"

// HTTPConfig configures the console's web server.
type HTTPConfig struct {
	Addr       string
	TLSCert    string
	TLSKey     string
	SessionTTL time.Duration
	// Users are "name:role:bcrypt-hash" entries.
	Users []string
	// UsersFile holds more entries, one a line (# comments).
	UsersFile string
}

// RegisterFlags registers the -http.* flags.
func (c *HTTPConfig) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.Addr, "http.addr", "127.0.0.1:8080", "console HTTP address")
	fs.StringVar(&c.TLSCert, "http.tls-cert", "", "certificate file: serve HTTPS (with -http.tls-key); session cookies become Secure")
	fs.StringVar(&c.TLSKey, "http.tls-key", "", "key file for -http.tls-cert")
	fs.DurationVar(&c.SessionTTL, "http.session-ttl", 12*time.Hour, "how long a login lasts")
	config.StringsVar(fs, &c.Users, "console.users", nil, "users as name:role:bcrypt-hash, comma-separated; roles viewer, planner, admin (hash with `console hash-password`)")
	fs.StringVar(&c.UsersFile, "console.users-file", "", "file of users, one name:role:bcrypt-hash a line")
}

// Validate checks the configuration.
func (c *HTTPConfig) Validate() error {
	var errs []error
	if _, _, err := net.SplitHostPort(c.Addr); err != nil {
		errs = append(errs, fmt.Errorf("http addr %q: %w", c.Addr, err))
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		errs = append(errs, errors.New("-http.tls-cert and -http.tls-key go together"))
	}
	if c.SessionTTL <= 0 {
		errs = append(errs, errors.New("-http.session-ttl must be positive"))
	}
	if len(c.Users) == 0 && c.UsersFile == "" {
		errs = append(errs, errors.New("no users: set -console.users or -console.users-file"))
	}
	return errors.Join(errs...)
}

// UpstreamConfig says where the other services are.
type UpstreamConfig struct {
	FeatureAddr, ForecastAddr, ReplenishmentAddr string
	// Admins are "name=host:port" admin addresses to scrape.
	Admins         []string
	ScrapeInterval time.Duration
	Brokers        []string
	TLS            grpcx.ClientTLSConfig
}

// RegisterFlags registers the upstream flags.
func (c *UpstreamConfig) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.FeatureAddr, "feature.addr", "127.0.0.1:9091", "feature gRPC address")
	fs.StringVar(&c.ForecastAddr, "forecast.addr", "127.0.0.1:9092", "forecast gRPC address")
	fs.StringVar(&c.ReplenishmentAddr, "replenishment.addr", "127.0.0.1:9093", "replenishment gRPC address")
	config.StringsVar(fs, &c.Admins, "console.admins", nil, "admin addresses of the services to scrape, name=host:port, comma-separated")
	fs.DurationVar(&c.ScrapeInterval, "console.scrape-interval", 2*time.Second, "how often live numbers are refreshed")
	config.StringsVar(fs, &c.Brokers, "kafka.brokers", []string{"127.0.0.1:9092"}, "Kafka brokers (the DLQ topics are read from them)")
	c.TLS.RegisterFlags(fs, "upstream.")
}

// Validate checks the configuration.
func (c *UpstreamConfig) Validate() error {
	var errs []error
	for _, a := range c.Admins {
		if name, addr, ok := strings.Cut(a, "="); !ok || name == "" || addr == "" {
			errs = append(errs, fmt.Errorf("admin %q: want name=host:port", a))
		}
	}
	if c.ScrapeInterval <= 0 {
		errs = append(errs, errors.New("-console.scrape-interval must be positive"))
	}
	if len(c.Brokers) == 0 {
		errs = append(errs, errors.New("-kafka.brokers is empty"))
	}
	return errors.Join(errs...)
}

// Config is the console's whole configuration.
type Config struct {
	HTTP       HTTPConfig
	Upstream   UpstreamConfig
	ClickHouse chx.Config
	Alerts     insight.AlertConfig
	Reports    reports.Config
	OIDC       api.OIDCConfig
	Admin      lifecycle.AdminConfig
	Telemetry  telemetry.Config

	PrintConfig bool
}

// RegisterFlags registers every flag of the service.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	c.HTTP.RegisterFlags(fs)
	c.Upstream.RegisterFlags(fs)
	c.ClickHouse.RegisterFlags(fs)
	c.Alerts.RegisterFlags(fs)
	c.Reports.RegisterFlags(fs)
	c.OIDC.RegisterFlags(fs)
	c.Admin.RegisterFlags(fs)
	c.Telemetry.RegisterFlags(fs)
	fs.BoolVar(&c.PrintConfig, "config.print", false, "print the effective configuration and exit")
}

// Validate checks every part of the configuration.
func (c *Config) Validate() error {
	return errors.Join(c.HTTP.Validate(), c.Upstream.Validate(), c.ClickHouse.Validate(), c.Alerts.Validate(), c.Reports.Validate(), c.OIDC.Validate(),
		c.Admin.Validate(), c.Telemetry.Validate())
}

// Run runs the console until ctx is done; a clean shutdown returns nil.
// `console hash-password` reads a password from stdin and prints its hash.
func Run(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout io.Writer) error {
	if len(args) > 0 && args[0] == "hash-password" {
		return hashPassword(stdin, stdout)
	}
	fs := flag.NewFlagSet(ServiceName, flag.ContinueOnError)
	fs.SetOutput(stdout)
	var cfg Config
	cfg.RegisterFlags(fs)
	if err := config.Parse(fs, args, getenv); err != nil {
		return fmt.Errorf("parse flags: %w", err)
	}
	if cfg.PrintConfig {
		config.Print(stdout, fs)
		return nil
	}
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("validate config: %w", err)
	}
	users, err := loadUsers(cfg.HTTP)
	if err != nil {
		return err
	}

	tel, shutdownTelemetry, err := telemetry.Setup(ctx, ServiceName, cfg.Telemetry, stdout)
	if err != nil {
		return fmt.Errorf("set up telemetry: %w", err)
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if err := shutdownTelemetry(sctx); err != nil {
			tel.Logger.Warn("flush telemetry", "err", err)
		}
	}()
	log := tel.Logger

	ch, err := chx.Open(ctx, cfg.ClickHouse)
	if err != nil {
		return fmt.Errorf("open clickhouse: %w", err)
	}
	defer ch.Close()

	dialOpts, err := grpcx.ClientOptions(cfg.Upstream.TLS) // TLS and the bearer token, when configured
	if err != nil {
		return err
	}
	conns := map[string]*grpc.ClientConn{}
	for name, addr := range map[string]string{"feature": cfg.Upstream.FeatureAddr, "forecast": cfg.Upstream.ForecastAddr, "replenishment": cfg.Upstream.ReplenishmentAddr} {
		c, err := grpcx.Dial(addr, tel, dialOpts...)
		if err != nil {
			return err
		}
		defer c.Close()
		conns[name] = c
	}

	var services []live.Service
	for _, a := range cfg.Upstream.Admins {
		name, addr, _ := strings.Cut(a, "=")
		services = append(services, live.Service{Name: name, Admin: addr})
	}
	hub := live.NewHub(services, cfg.Upstream.Brokers, cfg.Upstream.ScrapeInterval, log, time.Now)

	// Alerts go to alerts.v1; the console creates the topic if needed.
	kcfg := kafkax.Config{Brokers: cfg.Upstream.Brokers, ClientID: ServiceName}
	if err := kafkax.EnsureTopics(ctx, kcfg, topics.Alerts); err != nil {
		return fmt.Errorf("create topic %s: %w", topics.Alerts, err)
	}
	producer, err := kafkax.NewProducer(kcfg, tel)
	if err != nil {
		return err
	}
	defer producer.Close()
	reader := insight.NewReader(ch)
	evaluator := insight.NewEvaluator(cfg.Alerts, reader, hub.DLQTimes, producer, log, time.Now)
	// Alerts already on the topic (an earlier run) are not published again.
	sctx, scancel := context.WithTimeout(ctx, 30*time.Second)
	if n, err := evaluator.SeedPublished(sctx, cfg.Upstream.Brokers); err != nil {
		log.Warn("read published alerts", "err", err)
	} else {
		log.Info("published alerts found", "topic", topics.Alerts, "ids", n)
	}
	scancel()
	scheduler := reports.NewScheduler(cfg.Reports, reader, log, time.Now)

	handler := api.NewHandler(api.Deps{
		Users:         users,
		Sessions:      auth.NewSessions(cfg.HTTP.SessionTTL, cfg.HTTP.TLSCert != "", time.Now),
		Store:         api.NewStore(ch),
		Hub:           hub,
		Feature:       featurev1.NewFeatureServiceClient(conns["feature"]),
		Forecast:      forecastv1.NewForecastServiceClient(conns["forecast"]),
		Replenishment: replenishmentv1.NewReplenishmentServiceClient(conns["replenishment"]),
		Assets:        web.Assets(),
		Insight:       reader,
		Alerts:        evaluator,
		Models:        modelregistry.New(ch),
		ReportsDir:    cfg.Reports.Dir,
		Log:           log,
		Now:           time.Now,
	})
	if cfg.OIDC.Enabled() {
		if err := handler.EnableOIDC(cfg.OIDC, cfg.HTTP.TLSCert != ""); err != nil {
			return err
		}
	}
	srv := &webServer{cfg: cfg.HTTP, handler: handler}

	ready := &lifecycle.Readiness{}
	admin := lifecycle.NewAdmin(cfg.Admin, tel, ready)
	log.Info("console starting", "http_addr", cfg.HTTP.Addr, "admin_addr", cfg.Admin.Addr, "users", len(users))
	if err := srv.Listen(); err != nil {
		return err
	}
	ready.Set(true)
	err = lifecycle.RunGroup(ctx,
		admin.Run,
		srv.Run,
		hub.RunScraper,
		hub.RunDLQReader,
		evaluator.Run,
		scheduler.Run,
		func(ctx context.Context) error {
			<-ctx.Done()
			ready.Set(false)
			return nil
		},
	)
	log.Info("console stopped", "err", err)
	return err
}

// webServer serves the console over HTTP or HTTPS.
type webServer struct {
	cfg     HTTPConfig
	handler http.Handler

	mu   sync.Mutex
	ln   net.Listener // bound by Listen
	addr string
}

// Listen binds the address, once: the console calls it before it reports
// ready, so a caller who saw /readyz is never refused.
func (s *webServer) Listen() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln != nil {
		return nil
	}
	ln, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen http on %s: %w", s.cfg.Addr, err)
	}
	s.ln, s.addr = ln, ln.Addr().String()
	return nil
}

// Run serves (listening first unless Listen did) until ctx is done, then
// shuts down (SSE streams end with it).
func (s *webServer) Run(ctx context.Context) error {
	if err := s.Listen(); err != nil {
		return err
	}
	s.mu.Lock()
	ln := s.ln
	s.mu.Unlock()
	srv := &http.Server{
		Handler: s.handler, ReadHeaderTimeout: 10 * time.Second,
		BaseContext: func(net.Listener) context.Context { return ctx },
	}
	errc := make(chan error, 1)
	go func() {
		if s.cfg.TLSCert != "" {
			srv.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12}
			errc <- srv.ServeTLS(ln, s.cfg.TLSCert, s.cfg.TLSKey)
			return
		}
		errc <- srv.Serve(ln)
	}()
	select {
	case err := <-errc:
		return fmt.Errorf("serve http on %s: %w", s.cfg.Addr, err)
	case <-ctx.Done():
	}
	// Longer than the 5 s after which net/http counts a connection that never
	// sent a request (StateNew, e.g. a TLS handshake still in progress) as
	// idle: with 5 s, one such connection made Shutdown time out.
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("shut down http: %w", err)
	}
	return nil
}

func loadUsers(c HTTPConfig) (auth.Users, error) {
	entries := append([]string{}, c.Users...)
	if c.UsersFile != "" {
		f, err := os.Open(c.UsersFile)
		if err != nil {
			return nil, fmt.Errorf("open users file: %w", err)
		}
		defer f.Close()
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if l := strings.TrimSpace(sc.Text()); l != "" && !strings.HasPrefix(l, "#") {
				entries = append(entries, l)
			}
		}
		if err := sc.Err(); err != nil {
			return nil, fmt.Errorf("read users file: %w", err)
		}
	}
	us, err := auth.ParseUsers(entries)
	if err != nil {
		return nil, fmt.Errorf("load users: %w", err)
	}
	return us, nil
}

func hashPassword(stdin io.Reader, stdout io.Writer) error {
	line, err := bufio.NewReader(stdin).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("read password: %w", err)
	}
	pw := strings.TrimRight(line, "\r\n")
	if pw == "" {
		return errors.New("empty password on stdin")
	}
	h, err := auth.HashPassword(pw)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, h)
	return nil
}
