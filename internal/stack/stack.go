// Package stack starts the whole local stockcast system and stops it
// cleanly: redis-server and clickhouse-server (pkg/localstack), the
// in-process Kafka broker (or a given cluster), every topic, and the four
// services as separate processes built into a bin directory. The demo, the
// pipeline benchmark and the end-to-end tests use it.
package stack

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/stockcast/stockcast/pkg/chx"
	"github.com/stockcast/stockcast/pkg/kafkax"
	"github.com/stockcast/stockcast/pkg/localstack"
	"github.com/stockcast/stockcast/pkg/retail"
	"github.com/stockcast/stockcast/pkg/topics"
)

// Service names, in start order (forecast needs feature's gRPC address).
const (
	Ingest        = "ingest"
	Feature       = "feature"
	Forecast      = "forecast"
	Replenishment = "replenishment"
	// Console runs only when Config.ConsoleUsers is set (see console.go).
	Console = "console"
)

// Services returns the service names in start order.
func Services() []string { return []string{Ingest, Feature, Forecast, Replenishment} }

// Database is the ClickHouse database the services use.
const Database = "stockcast"

// marker marks a directory as a stack's, so that Reset never deletes
// anything else.
const marker = ".stockcast-stack"

// Config configures Start.
type Config struct {
	// Dir holds everything: redis/, clickhouse/, kafka/ (the embedded
	// broker's data, so topics survive a restart) and logs/<service>.log.
	Dir string
	// BinDir holds the service binaries (`make build` puts them in ./bin).
	BinDir string
	// KafkaBrokers selects an existing cluster; empty starts the embedded broker.
	KafkaBrokers []string
	// Partitions of the topics the stack creates; 0 means 6.
	Partitions int
	// ReadyTimeout bounds the wait for each service's /readyz; 0 means 60s.
	ReadyTimeout time.Duration
	// StopTimeout is how long a service may take to stop after SIGTERM
	// before it is killed; 0 means 30s.
	StopTimeout time.Duration
	// SessionTimeout is the services' consumer group session timeout: short,
	// so that a killed service's partitions move quickly; 0 means 3s.
	SessionTimeout time.Duration
	// ServiceFlags are extra flags per service, appended last (they win).
	ServiceFlags map[string][]string
	// ConsoleUsers, when set, also starts the web console with these users
	// (name:role:bcrypt-hash); ConsoleURL tells where it is.
	ConsoleUsers []string
	Logger       *slog.Logger
	// Stdout, when set, gets one line per started component.
	Stdout io.Writer
}

func (c Config) withDefaults() Config {
	if c.Partitions == 0 {
		c.Partitions = 6
	}
	if c.ReadyTimeout == 0 {
		c.ReadyTimeout = 60 * time.Second
	}
	if c.StopTimeout == 0 {
		c.StopTimeout = 30 * time.Second
	}
	if c.SessionTimeout == 0 {
		c.SessionTimeout = 3 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if c.Stdout == nil {
		c.Stdout = io.Discard
	}
	return c
}

// Stack is a running local system.
type Stack struct {
	cfg     Config
	log     *slog.Logger
	redis   *localstack.Redis
	ch      *localstack.ClickHouse
	broker  *kafkax.Embedded
	brokers []string

	mu       sync.Mutex
	services map[string]*service
	stopped  bool
}

// service is one service process and its addresses, kept across restarts.
type service struct {
	name      string
	bin       string
	grpcAddr  string
	adminAddr string
	logPath   string
	proc      *proc
}

// Topics returns every topic the stack creates: the raw, internal and
// output topics and the dead-letter topic of each consumed one.
func Topics() []string {
	consumed := []string{topics.Orders, topics.Inventory, topics.Catalog, topics.Demand, topics.Features, topics.Forecasts}
	out := append([]string{}, consumed...)
	out = append(out, topics.Proposals)
	for _, t := range consumed {
		out = append(out, topics.DLQ(t))
	}
	return out
}

// Reset deletes dir if it is a stack directory (or does not exist), so that
// the next Start begins with empty stores and topics.
func Reset(dir string) error {
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if _, err := os.Stat(filepath.Join(dir, marker)); err != nil {
		return fmt.Errorf("reset %s: not a stack directory (no %s); delete it yourself if you mean it", dir, marker)
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("reset %s: %w", dir, err)
	}
	return nil
}

// Start brings the system up and returns when every service is ready. On
// error, whatever was started is stopped again.
func Start(ctx context.Context, cfg Config) (_ *Stack, err error) {
	cfg = cfg.withDefaults()
	if cfg.Dir == "" || cfg.BinDir == "" {
		return nil, errors.New("start stack: Dir and BinDir are required")
	}
	var err1, err2 error
	cfg.Dir, err1 = filepath.Abs(cfg.Dir)
	cfg.BinDir, err2 = filepath.Abs(cfg.BinDir)
	if err := errors.Join(err1, err2); err != nil {
		return nil, fmt.Errorf("start stack: %w", err)
	}
	s := &Stack{cfg: cfg, log: cfg.Logger, services: make(map[string]*service)}
	defer func() {
		if err != nil {
			err = errors.Join(err, s.Stop())
		}
	}()
	if err := s.prepareDirs(); err != nil {
		return nil, err
	}
	if err := s.findBinaries(); err != nil {
		return nil, err
	}
	if err := localstack.EnsurePackages(ctx, s.log, localstack.ServerPackages()); err != nil {
		return nil, fmt.Errorf("start stack: %w", err)
	}
	if err := s.startStores(ctx); err != nil {
		return nil, err
	}
	if err := s.startKafka(ctx); err != nil {
		return nil, err
	}
	for _, name := range s.names() {
		if err := s.startService(ctx, s.services[name]); err != nil {
			return nil, err
		}
	}
	return s, nil
}

func (s *Stack) prepareDirs() error {
	for _, d := range []string{s.cfg.Dir, filepath.Join(s.cfg.Dir, "logs")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("create stack dir %s: %w", d, err)
		}
	}
	if err := os.WriteFile(filepath.Join(s.cfg.Dir, marker), []byte("created by stockcast internal/stack\n"), 0o644); err != nil {
		return fmt.Errorf("mark stack dir: %w", err)
	}
	return nil
}

// findBinaries checks every service binary before anything starts.
func (s *Stack) findBinaries() error {
	var errs []error
	for _, name := range s.names() {
		bin := filepath.Join(s.cfg.BinDir, name)
		st, err := os.Stat(bin)
		if err == nil && st.Mode()&0o111 == 0 {
			err = fmt.Errorf("%s is not executable", bin)
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		s.services[name] = &service{name: name, bin: bin, logPath: filepath.Join(s.cfg.Dir, "logs", name+".log")}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("find service binaries in %s (run `make build`): %w", s.cfg.BinDir, err)
	}
	return nil
}

func (s *Stack) startStores(ctx context.Context) error {
	r, err := localstack.StartRedis(ctx, filepath.Join(s.cfg.Dir, "redis"), s.log)
	if err != nil {
		return fmt.Errorf("start stack: %w", err)
	}
	s.redis = r
	fmt.Fprintf(s.cfg.Stdout, "redis-server       %s\n", r.Addr())
	ch, err := localstack.StartClickHouse(ctx, filepath.Join(s.cfg.Dir, "clickhouse"), s.log)
	if err != nil {
		return fmt.Errorf("start stack: %w", err)
	}
	s.ch = ch
	fmt.Fprintf(s.cfg.Stdout, "clickhouse-server  %s (native), %s (http)\n", ch.Addr(), ch.HTTPAddr())
	return nil
}

func (s *Stack) startKafka(ctx context.Context) error {
	s.brokers = s.cfg.KafkaBrokers
	if len(s.brokers) == 0 {
		b, err := kafkax.StartEmbedded(kafkax.EmbeddedConfig{DataDir: filepath.Join(s.cfg.Dir, "kafka"), Partitions: s.cfg.Partitions, Logger: s.log})
		if err != nil {
			return fmt.Errorf("start stack: %w", err)
		}
		s.broker = b
		s.brokers = b.Brokers()
		fmt.Fprintf(s.cfg.Stdout, "kafka (embedded)   %s\n", strings.Join(s.brokers, ","))
	} else {
		fmt.Fprintf(s.cfg.Stdout, "kafka              %s\n", strings.Join(s.brokers, ","))
	}
	if err := kafkax.EnsureTopics(ctx, s.Kafka(), Topics()...); err != nil {
		return fmt.Errorf("start stack: %w", err)
	}
	return nil
}

// Kafka returns the Kafka configuration of the stack's cluster.
func (s *Stack) Kafka() kafkax.Config {
	return kafkax.Config{Brokers: s.brokers, Partitions: s.cfg.Partitions, SessionTimeout: s.cfg.SessionTimeout}
}

// Brokers returns the Kafka bootstrap brokers.
func (s *Stack) Brokers() []string { return s.brokers }

// RedisAddr returns redis-server's host:port.
func (s *Stack) RedisAddr() string { return s.redis.Addr() }

// ClickHouse returns the configuration to reach the services' database.
func (s *Stack) ClickHouse() chx.Config {
	return chx.Config{Addr: s.ch.Addr(), Database: Database, DialTimeout: 5 * time.Second, ReadTimeout: 30 * time.Second}
}

// GRPC returns a service's gRPC address.
func (s *Stack) GRPC(name string) string { return s.service(name).grpcAddr }

// Admin returns a service's admin HTTP address (/healthz, /readyz, /metrics).
func (s *Stack) Admin(name string) string { return s.service(name).adminAddr }

// LogPath returns a service's log file.
func (s *Stack) LogPath(name string) string { return s.service(name).logPath }

// PID returns a service's process id, 0 when it is not running.
func (s *Stack) PID(name string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	svc := s.services[name]
	if svc == nil || svc.proc == nil || !svc.proc.running() {
		return 0
	}
	return svc.proc.pid()
}

func (s *Stack) service(name string) *service {
	s.mu.Lock()
	defer s.mu.Unlock()
	if svc := s.services[name]; svc != nil {
		return svc
	}
	return &service{}
}

// args returns a service's command line.
func (s *Stack) args(svc *service) []string {
	if svc.name == Console {
		return append(s.consoleArgs(svc), s.cfg.ServiceFlags[svc.name]...)
	}
	args := []string{
		"-kafka.brokers=" + strings.Join(s.brokers, ","),
		"-kafka.partitions=" + strconv.Itoa(s.cfg.Partitions),
		"-kafka.session-timeout=" + s.cfg.SessionTimeout.String(),
		"-grpc.addr=" + svc.grpcAddr,
		"-admin.addr=" + svc.adminAddr,
	}
	redis := "-redis.addr=" + s.redis.Addr()
	ch := []string{"-clickhouse.addr=" + s.ch.Addr(), "-clickhouse.database=" + Database}
	switch svc.name {
	case Ingest:
		args = append(args, redis)
		args = append(args, ch...)
		// The same list the replay uses to know which lines are not demand.
		args = append(args, "-ingest.non-product-skus="+strings.Join(retail.NonProductCodes(), ","))
	case Feature:
		args = append(args, redis)
		args = append(args, ch...) // to rebuild after a Redis loss
	case Forecast:
		args = append(args, ch...)
		args = append(args, "-feature.addr="+s.service(Feature).grpcAddr)
	case Replenishment:
		args = append(args, redis)
		args = append(args, ch...)
	}
	return append(args, s.cfg.ServiceFlags[svc.name]...)
}

// startAttempts bounds retries when a service dies at start, e.g. because
// another process took one of its free ports in the meantime.
const startAttempts = 3

// startService starts a service on fresh ports (keeping its ports on a
// restart) and waits until it is ready.
func (s *Stack) startService(ctx context.Context, svc *service) error {
	var lastErr error
	for attempt := range startAttempts {
		if svc.grpcAddr == "" || attempt > 0 {
			ports, err := localstack.FreePorts(2)
			if err != nil {
				return err
			}
			s.mu.Lock()
			svc.grpcAddr = net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[0]))
			svc.adminAddr = net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[1]))
			s.mu.Unlock()
		}
		args := s.args(svc)
		s.log.Debug("start service", "service", svc.name, "args", args)
		p, err := spawn(svc.bin, args, svc.logPath)
		if err != nil {
			return fmt.Errorf("start %s: %w", svc.name, err)
		}
		s.mu.Lock()
		svc.proc = p
		s.mu.Unlock()
		err = s.waitReady(ctx, svc, p)
		if err == nil {
			s.log.Info("service ready", "service", svc.name, "pid", p.pid(), "grpc_addr", svc.grpcAddr, "admin_addr", svc.adminAddr)
			kind := "grpc"
			if svc.name == Console {
				kind = "http" // the console serves HTTP on its first port
			}
			fmt.Fprintf(s.cfg.Stdout, "%-18s %s %s  admin http://%s  log %s\n", svc.name, kind, svc.grpcAddr, svc.adminAddr, svc.logPath)
			return nil
		}
		lastErr = err
		if p.running() {
			// Alive but not ready in time: a real problem, not a port race.
			_, _ = p.stop(s.cfg.StopTimeout)
			break
		}
		if ctx.Err() != nil {
			break
		}
		s.log.Warn("service exited during start, retrying on new ports", "service", svc.name, "err", err)
	}
	return fmt.Errorf("start %s: %w", svc.name, lastErr)
}

// waitReady polls GET /readyz until it answers 200.
func (s *Stack) waitReady(ctx context.Context, svc *service, p *proc) error {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.ReadyTimeout)
	defer cancel()
	client := &http.Client{Timeout: time.Second}
	url := "http://" + svc.adminAddr + "/readyz"
	for {
		err := getOK(ctx, client, url)
		if err == nil {
			return nil
		}
		if !p.running() {
			return fmt.Errorf("%s %s before it was ready; log %s:\n%s", svc.name, p.exitStatus(), svc.logPath, tail(svc.logPath, 15))
		}
		t := time.NewTimer(100 * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%s not ready after %v (last: %v); log %s:\n%s", svc.name, s.cfg.ReadyTimeout, err, svc.logPath, tail(svc.logPath, 15))
		case <-t.C:
		}
	}
}

func getOK(ctx context.Context, client *http.Client, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return nil
}

// Ready checks a service's /readyz and gRPC health now.
func (s *Stack) Ready(ctx context.Context, name string) error {
	svc := s.service(name)
	if svc.name == "" {
		return fmt.Errorf("unknown service %q", name)
	}
	if err := getOK(ctx, &http.Client{Timeout: 2 * time.Second}, "http://"+svc.adminAddr+"/readyz"); err != nil {
		return fmt.Errorf("%s readiness: %w", name, err)
	}
	conn, err := grpc.NewClient(svc.grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return fmt.Errorf("dial %s gRPC %s: %w", name, svc.grpcAddr, err)
	}
	defer conn.Close()
	resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
	if err != nil {
		return fmt.Errorf("%s gRPC health: %w", name, err)
	}
	if resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		return fmt.Errorf("%s gRPC health: %s", name, resp.GetStatus())
	}
	return nil
}

// Kill SIGKILLs a service (a crash, for fault tests) and waits for it to
// die. Kill and Restart of one service must not run concurrently.
func (s *Stack) Kill(name string) error {
	svc := s.service(name)
	if svc.proc == nil {
		return fmt.Errorf("kill %s: not started", name)
	}
	if err := svc.proc.kill(); err != nil {
		return fmt.Errorf("kill %s: %w", name, err)
	}
	s.log.Info("service killed", "service", name)
	return nil
}

// Restart stops a service gracefully (if it runs) and starts it again on the
// same addresses, waiting until it is ready.
func (s *Stack) Restart(ctx context.Context, name string) error {
	svc := s.service(name)
	if svc.name == "" {
		return fmt.Errorf("restart %q: unknown service", name)
	}
	if svc.proc != nil {
		if killed, err := svc.proc.stop(s.cfg.StopTimeout); err != nil {
			return fmt.Errorf("restart %s: %w", name, err)
		} else if killed {
			s.log.Warn("service did not stop in time, killed", "service", name)
		}
	}
	if err := s.startService(ctx, svc); err != nil {
		return fmt.Errorf("restart %s: %w", name, err)
	}
	return nil
}

// Stop stops the services (SIGTERM, SIGKILL after StopTimeout), then the
// broker, Redis and ClickHouse. It is safe to call more than once.
func (s *Stack) Stop() error {
	s.mu.Lock()
	if s.stopped {
		s.mu.Unlock()
		return nil
	}
	s.stopped = true
	svcs := make([]*service, 0, len(s.services))
	for _, svc := range s.services {
		svcs = append(svcs, svc)
	}
	s.mu.Unlock()

	var (
		wg   sync.WaitGroup
		emu  sync.Mutex
		errs []error
	)
	for _, svc := range svcs {
		if svc.proc == nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			wasRunning := svc.proc.running()
			killed, err := svc.proc.stop(s.cfg.StopTimeout)
			emu.Lock()
			defer emu.Unlock()
			switch {
			case err != nil:
				errs = append(errs, fmt.Errorf("stop %s: %w", svc.name, err))
			case killed:
				errs = append(errs, fmt.Errorf("stop %s: no exit %v after SIGTERM, killed", svc.name, s.cfg.StopTimeout))
			case wasRunning && svc.proc.waitErr != nil:
				// A graceful shutdown returns nil from Run: anything else is a bug.
				errs = append(errs, fmt.Errorf("stop %s: %s; log %s:\n%s", svc.name, svc.proc.exitStatus(), svc.logPath, tail(svc.logPath, 10)))
			}
		}()
	}
	wg.Wait()
	if s.broker != nil {
		s.broker.Close()
	}
	if s.redis != nil {
		if err := s.redis.Stop(); err != nil {
			errs = append(errs, fmt.Errorf("stop redis: %w", err))
		}
	}
	if s.ch != nil {
		if err := s.ch.Stop(); err != nil {
			errs = append(errs, fmt.Errorf("stop clickhouse: %w", err))
		}
	}
	return errors.Join(errs...)
}

// StopRedis stops redis-server (fault tests): it keeps nothing on disk, so
// its data is lost. The services keep running and retry.
func (s *Stack) StopRedis() error {
	if err := s.redis.Stop(); err != nil {
		return fmt.Errorf("stop redis: %w", err)
	}
	s.log.Info("redis stopped", "addr", s.redis.Addr())
	return nil
}

// StartRedis starts a stopped redis-server again, empty, on the same address.
func (s *Stack) StartRedis(ctx context.Context) error {
	if err := s.redis.Start(ctx); err != nil {
		return err
	}
	s.log.Info("redis started again", "addr", s.redis.Addr())
	return nil
}

// StopClickHouse stops clickhouse-server (fault tests); its data stays on disk.
func (s *Stack) StopClickHouse() error {
	if err := s.ch.Stop(); err != nil {
		return fmt.Errorf("stop clickhouse: %w", err)
	}
	s.log.Info("clickhouse stopped", "addr", s.ch.Addr())
	return nil
}

// StartClickHouse starts a stopped clickhouse-server again on the same ports
// with its data.
func (s *Stack) StartClickHouse(ctx context.Context) error {
	if err := s.ch.Start(ctx); err != nil {
		return err
	}
	s.log.Info("clickhouse started again", "addr", s.ch.Addr())
	return nil
}

// Binary returns the path of a service binary.
func (s *Stack) Binary(name string) string { return s.service(name).bin }
