// Package grpcx builds gRPC servers and clients the same way in every
// service: OpenTelemetry stats handlers (traces and metrics), the standard
// health service, reflection, optional TLS or mTLS from files, bearer
// tokens with per-method roles, message size limits, and a Run that stops
// gracefully with a deadline. docs/security.md describes the model.
package grpcx

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"sync"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"

	"github.com/stockcast/stockcast/pkg/telemetry"
)

// gracefulStopTimeout bounds how long Run waits for in-flight RPCs.
const gracefulStopTimeout = 10 * time.Second

// Config configures a server.
type Config struct {
	Addr         string
	CertFile     string // server certificate (PEM); with KeyFile enables TLS
	KeyFile      string
	ClientCAFile string // CA of client certificates; when set, clients must present one (mTLS)
	MaxRecvBytes int    // largest request message accepted
	MaxSendBytes int    // largest response message sent
	Auth         AuthConfig
}

// RegisterFlags registers the flags under prefix, e.g. "grpc." gives
// -grpc.addr, -grpc.tls-cert, -grpc.tls-key, -grpc.tls-client-ca and
// -grpc.max-recv-bytes, -grpc.max-send-bytes and the -grpc.auth.* flags
// (see AuthConfig).
func (c *Config) RegisterFlags(fs *flag.FlagSet, prefix string) {
	fs.StringVar(&c.Addr, prefix+"addr", "127.0.0.1:9090", "gRPC listen address (port 0 picks a free port)")
	fs.StringVar(&c.CertFile, prefix+"tls-cert", "", "server TLS certificate file (PEM); empty serves plaintext")
	fs.StringVar(&c.KeyFile, prefix+"tls-key", "", "server TLS key file (PEM)")
	fs.StringVar(&c.ClientCAFile, prefix+"tls-client-ca", "", "CA file for client certificates; set to require mTLS")
	fs.IntVar(&c.MaxRecvBytes, prefix+"max-recv-bytes", 16<<20, "largest request message accepted, in bytes (0: gRPC's default, 4 MiB)")
	fs.IntVar(&c.MaxSendBytes, prefix+"max-send-bytes", 64<<20, "largest response message sent, in bytes (0: no limit)")
	c.Auth.RegisterFlags(fs, prefix)
}

// Validate checks the configuration.
func (c *Config) Validate() error {
	var errs []error
	if _, _, err := net.SplitHostPort(c.Addr); err != nil {
		errs = append(errs, fmt.Errorf("grpc addr %q: %w", c.Addr, err))
	}
	if (c.CertFile == "") != (c.KeyFile == "") {
		errs = append(errs, errors.New("grpc tls: give both the certificate and the key, or neither"))
	}
	if c.ClientCAFile != "" && c.CertFile == "" {
		errs = append(errs, errors.New("grpc tls client ca: requires a server certificate"))
	}
	if c.MaxRecvBytes < 0 {
		errs = append(errs, fmt.Errorf("grpc max recv bytes %d: must not be negative", c.MaxRecvBytes))
	}
	if c.MaxSendBytes < 0 {
		errs = append(errs, fmt.Errorf("grpc max send bytes %d: must not be negative", c.MaxSendBytes))
	}
	if err := c.Auth.Validate(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Server is a gRPC server with health and reflection.
type Server struct {
	cfg    Config
	srv    *grpc.Server
	health *health.Server

	mu   sync.Mutex
	ln   net.Listener // bound by Listen
	addr string
}

// NewServer builds the server; register services on GRPC() before Run.
func NewServer(cfg Config, tel *telemetry.Telemetry) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("validate grpc config: %w", err)
	}
	opts := []grpc.ServerOption{
		grpc.StatsHandler(otelgrpc.NewServerHandler(
			otelgrpc.WithTracerProvider(tel.Tracer),
			otelgrpc.WithMeterProvider(tel.Meter),
			otelgrpc.WithPropagators(tel.Propagator),
		)),
	}
	if cfg.MaxRecvBytes > 0 {
		opts = append(opts, grpc.MaxRecvMsgSize(cfg.MaxRecvBytes))
	}
	if cfg.MaxSendBytes > 0 {
		opts = append(opts, grpc.MaxSendMsgSize(cfg.MaxSendBytes))
	}
	auth, err := cfg.Auth.authorizer()
	if err != nil {
		return nil, err
	}
	if auth != nil {
		opts = append(opts, grpc.ChainUnaryInterceptor(auth.unary), grpc.ChainStreamInterceptor(auth.stream))
		names := make([]string, len(auth.tokens))
		for i, t := range auth.tokens {
			names[i] = t.name
		}
		tel.Logger.Info("grpc bearer-token authentication on", "tokens", names, "tls", cfg.CertFile != "", "mtls", cfg.ClientCAFile != "")
		if cfg.CertFile == "" {
			tel.Logger.Warn("grpc bearer tokens over plaintext: anyone on the network path can read them; set -grpc.tls-cert")
		}
	}
	if cfg.CertFile != "" {
		tlsCfg, err := serverTLS(cfg)
		if err != nil {
			return nil, err
		}
		opts = append(opts, grpc.Creds(credentials.NewTLS(tlsCfg)))
	}
	s := &Server{cfg: cfg, srv: grpc.NewServer(opts...), health: health.NewServer()}
	// Not serving until Run listens.
	s.health.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	healthpb.RegisterHealthServer(s.srv, s.health)
	reflection.Register(s.srv)
	return s, nil
}

func serverTLS(cfg Config) (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(cfg.CertFile, cfg.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("load grpc server certificate %s: %w", cfg.CertFile, err)
	}
	tlsCfg := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if cfg.ClientCAFile != "" {
		pool, err := loadPool(cfg.ClientCAFile)
		if err != nil {
			return nil, err
		}
		tlsCfg.ClientCAs = pool
		tlsCfg.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return tlsCfg, nil
}

func loadPool(file string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("read CA file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("read CA file %s: no PEM certificates", file)
	}
	return pool, nil
}

// GRPC is the underlying server, to register services on.
func (s *Server) GRPC() *grpc.Server { return s.srv }

// Addr is the listening address once Listen or Run has bound it ("" before); with
// port 0 in the config this is the port the system chose.
func (s *Server) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addr
}

// SetServing sets the health status of the server and of every registered
// service.
func (s *Server) SetServing(ok bool) {
	status := healthpb.HealthCheckResponse_NOT_SERVING
	if ok {
		status = healthpb.HealthCheckResponse_SERVING
	}
	s.health.SetServingStatus("", status)
	for name := range s.srv.GetServiceInfo() {
		s.health.SetServingStatus(name, status)
	}
}

// Listen binds the server's address, once: a service calls it before it
// reports ready, so that a caller who saw /readyz never gets "connection
// refused" (the port is bound; Run serves the calls queued on it), and a
// taken port fails the start instead of the run.
func (s *Server) Listen() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln != nil {
		return nil
	}
	ln, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen grpc on %s: %w", s.cfg.Addr, err)
	}
	s.ln, s.addr = ln, ln.Addr().String()
	return nil
}

// Run listens (unless Listen did), reports SERVING and serves until ctx is
// done; then it reports NOT_SERVING, waits up to 10s for in-flight RPCs and
// stops.
func (s *Server) Run(ctx context.Context) error {
	if err := s.Listen(); err != nil {
		return err
	}
	s.mu.Lock()
	ln := s.ln
	s.mu.Unlock()
	s.SetServing(true)

	errc := make(chan error, 1)
	go func() { errc <- s.srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve grpc on %s: %w", s.addr, err)
	case <-ctx.Done():
	}

	s.SetServing(false)
	stopped := make(chan struct{})
	go func() {
		s.srv.GracefulStop()
		close(stopped)
	}()
	t := time.NewTimer(gracefulStopTimeout)
	defer t.Stop()
	select {
	case <-stopped:
	case <-t.C:
		s.srv.Stop() // cancels the RPCs still running
		<-stopped
	}
	if err := <-errc; err != nil && !errors.Is(err, grpc.ErrServerStopped) {
		return fmt.Errorf("serve grpc on %s: %w", s.addr, err)
	}
	return nil
}

// ClientTLSConfig configures TLS for Dial.
type ClientTLSConfig struct {
	CAFile     string // CA of the server certificate; empty uses the system roots
	CertFile   string // client certificate for mTLS (with KeyFile)
	KeyFile    string
	ServerName string // overrides the name checked in the server certificate
	Auth       ClientAuthConfig
}

// Enabled reports whether any TLS setting is given.
func (c ClientTLSConfig) Enabled() bool {
	return c.CAFile != "" || c.CertFile != "" || c.ServerName != ""
}

// RegisterFlags registers the client TLS flags under prefix, e.g.
// "forecast." gives -forecast.tls-ca, -forecast.tls-cert, -forecast.tls-key
// and -forecast.tls-server-name, and the token flags -forecast.token-file
// and -forecast.token (see ClientOptions).
func (c *ClientTLSConfig) RegisterFlags(fs *flag.FlagSet, prefix string) {
	fs.StringVar(&c.CAFile, prefix+"tls-ca", "", "CA file of the server certificate; setting any tls flag enables TLS")
	fs.StringVar(&c.CertFile, prefix+"tls-cert", "", "client certificate file for mTLS")
	fs.StringVar(&c.KeyFile, prefix+"tls-key", "", "client key file for mTLS")
	fs.StringVar(&c.ServerName, prefix+"tls-server-name", "", "server name to verify in its certificate")
	c.Auth.RegisterFlags(fs, prefix)
}

// WithClientTLS returns the dial option for c: TLS with the given CA and
// optional client certificate.
func WithClientTLS(c ClientTLSConfig) (grpc.DialOption, error) {
	tlsCfg := &tls.Config{ServerName: c.ServerName, MinVersion: tls.VersionTLS12}
	if c.CAFile != "" {
		pool, err := loadPool(c.CAFile)
		if err != nil {
			return nil, err
		}
		tlsCfg.RootCAs = pool
	}
	if c.CertFile != "" || c.KeyFile != "" {
		cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("load grpc client certificate %s: %w", c.CertFile, err)
		}
		tlsCfg.Certificates = []tls.Certificate{cert}
	}
	return grpc.WithTransportCredentials(credentials.NewTLS(tlsCfg)), nil
}

// Dial creates a client connection (connecting lazily) with the
// OpenTelemetry client handler. It is plaintext unless opts carry transport
// credentials, e.g. from WithClientTLS.
func Dial(target string, tel *telemetry.Telemetry, opts ...grpc.DialOption) (*grpc.ClientConn, error) {
	all := append([]grpc.DialOption{
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithStatsHandler(otelgrpc.NewClientHandler(
			otelgrpc.WithTracerProvider(tel.Tracer),
			otelgrpc.WithMeterProvider(tel.Meter),
			otelgrpc.WithPropagators(tel.Propagator),
		)),
	}, opts...)
	conn, err := grpc.NewClient(target, all...)
	if err != nil {
		return nil, fmt.Errorf("dial grpc %s: %w", target, err)
	}
	return conn, nil
}
