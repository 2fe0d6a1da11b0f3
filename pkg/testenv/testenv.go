// Package testenv starts real servers for tests, on free loopback ports:
// a redis-server per test, one clickhouse-server per test binary (a fresh
// database per test) and an in-process Kafka broker per test.
//
// Use Main in TestMain so the shared ClickHouse is stopped at the end:
//
//	func TestMain(m *testing.M) { testenv.Main(m) }
//
// A missing server binary fails the test with the apt-get command that
// installs it; tests never skip.
package testenv

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"

	"github.com/stockcast/stockcast/pkg/chx"
	"github.com/stockcast/stockcast/pkg/kafkax"
	"github.com/stockcast/stockcast/pkg/localstack"
)

// startTimeout bounds the start of one server.
const startTimeout = 2 * time.Minute

// shared is the clickhouse-server of this test binary. It is package state
// on purpose: starting ClickHouse once per binary instead of once per test
// is what makes its tests affordable.
var shared struct {
	mu     sync.Mutex
	ch     *localstack.ClickHouse
	dir    string
	err    error
	nextDB atomic.Int64
}

// Main runs the tests and then stops the shared servers; it returns the exit
// code (Go's test runner exits with it when TestMain returns).
func Main(m *testing.M) int {
	code := m.Run()
	if err := stopShared(); err != nil {
		fmt.Fprintf(os.Stderr, "testenv: stop shared clickhouse: %v\n", err)
		if code == 0 {
			code = 1
		}
	}
	return code
}

func stopShared() error {
	shared.mu.Lock()
	defer shared.mu.Unlock()
	var err error
	if shared.ch != nil {
		err = shared.ch.Stop()
		shared.ch = nil
	}
	if shared.dir != "" {
		err = errors.Join(err, os.RemoveAll(shared.dir))
		shared.dir = ""
	}
	return err
}

// Redis starts a redis-server for this test alone, stopped in Cleanup, and
// returns its address.
func Redis(t testing.TB) string {
	t.Helper()
	requireBinary(t, localstack.RedisBinary)
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	r, err := localstack.StartRedis(ctx, t.TempDir(), logger(t))
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	t.Cleanup(func() {
		if err := r.Stop(); err != nil {
			t.Errorf("testenv: stop redis: %v", err)
		}
	})
	return r.Addr()
}

// ClickHouse returns the config of a fresh database t_<n> on the shared
// clickhouse-server (started on first use), dropped in Cleanup.
func ClickHouse(t testing.TB) chx.Config {
	t.Helper()
	requireBinary(t, localstack.ClickHouseBinary)
	addr, err := sharedClickHouse(t)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	cfg := chx.Config{
		Addr:        addr,
		Database:    "t_" + strconv.FormatInt(shared.nextDB.Add(1), 10),
		Username:    "default",
		DialTimeout: 5 * time.Second,
		ReadTimeout: 30 * time.Second,
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := execDefault(ctx, addr, "CREATE DATABASE IF NOT EXISTS "+cfg.Database); err != nil {
		t.Fatalf("testenv: create database %s: %v", cfg.Database, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := execDefault(ctx, addr, "DROP DATABASE IF EXISTS "+cfg.Database); err != nil {
			t.Errorf("testenv: drop database %s: %v", cfg.Database, err)
		}
	})
	return cfg
}

func sharedClickHouse(t testing.TB) (string, error) {
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if shared.ch != nil {
		return shared.ch.Addr(), nil
	}
	if shared.err != nil {
		return "", shared.err // do not retry a failed start for every test
	}
	dir, err := os.MkdirTemp("", "stockcast-testenv-clickhouse-")
	if err != nil {
		shared.err = fmt.Errorf("create clickhouse dir: %w", err)
		return "", shared.err
	}
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	// The shared server outlives this test: log only to stderr.
	ch, err := localstack.StartClickHouse(ctx, dir, slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	if err != nil {
		os.RemoveAll(dir)
		shared.err = err
		return "", err
	}
	shared.ch, shared.dir = ch, dir
	return ch.Addr(), nil
}

func execDefault(ctx context.Context, addr, query string) error {
	conn, err := clickhouse.Open(&clickhouse.Options{
		Addr: []string{addr},
		Auth: clickhouse.Auth{Database: "default", Username: "default"},
	})
	if err != nil {
		return err
	}
	defer conn.Close()
	return conn.Exec(ctx, query)
}

// Kafka starts an in-process Kafka broker (kfake, 6 partitions per topic by
// default) for this test alone, closed in Cleanup, and returns its brokers.
func Kafka(t testing.TB) []string {
	t.Helper()
	e, err := kafkax.StartEmbedded(kafkax.EmbeddedConfig{})
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	t.Cleanup(e.Close)
	return e.Brokers()
}

// FreeAddr returns "127.0.0.1:<port>" with a port that was free a moment ago,
// for servers that must be told their address up front.
func FreeAddr(t testing.TB) string {
	t.Helper()
	port, err := localstack.FreePort()
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
}

// Eventually polls cond every 10ms until it returns true, failing the test
// with what if timeout passes first. Use it instead of sleeping.
func Eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func requireBinary(t testing.TB, bin string) {
	t.Helper()
	if _, err := localstack.FindBinary(bin); err != nil {
		pkg := localstack.ServerPackages()[bin]
		t.Fatalf("testenv: %s is not installed; install it with `apt-get update && apt-get install -y %s`", bin, pkg)
	}
}

func logger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// testWriter sends server lifecycle logs to the test log.
type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p))
	return len(p), nil
}

// Tables returns the names of the tables in cfg's database, sorted.
func Tables(t testing.TB, cfg chx.Config) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := chx.Open(ctx, cfg)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	defer conn.Close()
	rows, err := conn.Query(ctx, "SELECT name FROM system.tables WHERE database = ?", cfg.Database)
	if err != nil {
		t.Fatalf("testenv: list tables: %v", err)
	}
	defer rows.Close()
	var names []string
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			t.Fatalf("testenv: list tables: %v", err)
		}
		names = append(names, name)
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("testenv: list tables: %v", err)
	}
	sort.Strings(names)
	return names
}
