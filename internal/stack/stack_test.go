package stack_test

import (
	"context"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stockcast/stockcast/internal/stack"
	"github.com/stockcast/stockcast/internal/stack/stacktest"
	"github.com/stockcast/stockcast/pkg/testenv"
)

func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// TestStackLifecycle starts the real stack with the real service binaries,
// checks every service's readiness and gRPC health and the topics, kills and
// restarts a service, and checks that Stop leaves no process behind.
func TestStackLifecycle(t *testing.T) {
	bin := stacktest.BuildServices(t)
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	st, err := stack.Start(ctx, stack.Config{
		Dir: dir, BinDir: bin, Partitions: 3,
		Logger: slog.New(slog.NewTextHandler(testWriter{t}, nil)), Stdout: testWriter{t},
	})
	if err != nil {
		t.Fatal(err)
	}
	stopped := false
	defer func() {
		if !stopped {
			_ = st.Stop()
		}
	}()

	for _, name := range stack.Services() {
		if err := st.Ready(ctx, name); err != nil {
			t.Errorf("%s: %v", name, err)
		}
		if st.PID(name) == 0 {
			t.Errorf("%s: no process", name)
		}
		if _, err := os.Stat(st.LogPath(name)); err != nil {
			t.Errorf("%s: log: %v", name, err)
		}
	}

	cl, err := kgo.NewClient(kgo.SeedBrokers(st.Brokers()...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	listed, err := kadm.NewClient(cl).ListTopics(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, topic := range stack.Topics() {
		if !listed.Has(topic) {
			t.Errorf("topic %s missing", topic)
		} else if n := len(listed[topic].Partitions); n != 3 {
			t.Errorf("topic %s has %d partitions, want 3", topic, n)
		}
	}

	// A crash, then a restart on the same addresses.
	grpcAddr, pid := st.GRPC(stack.Forecast), st.PID(stack.Forecast)
	if err := st.Kill(stack.Forecast); err != nil {
		t.Fatal(err)
	}
	if st.PID(stack.Forecast) != 0 || st.Ready(ctx, stack.Forecast) == nil {
		t.Fatal("forecast still running after Kill")
	}
	if err := st.Restart(ctx, stack.Forecast); err != nil {
		t.Fatal(err)
	}
	if err := st.Ready(ctx, stack.Forecast); err != nil {
		t.Fatalf("after restart: %v", err)
	}
	if st.GRPC(stack.Forecast) != grpcAddr || st.PID(stack.Forecast) == pid {
		t.Errorf("restart: addr %s (was %s), pid %d (was %d)", st.GRPC(stack.Forecast), grpcAddr, st.PID(stack.Forecast), pid)
	}
	// A graceful restart of a running service.
	if err := st.Restart(ctx, stack.Ingest); err != nil {
		t.Fatal(err)
	}

	before, err := stacktest.ProcessesMentioning(dir, bin)
	if err != nil {
		t.Fatal(err)
	}
	// redis-server rewrites its command line ("redis-server host:port"), so
	// it is checked by its port below.
	if len(before) < len(stack.Services())+1 { // + clickhouse-server
		t.Errorf("found %d processes of the stack before Stop, want at least %d", len(before), len(stack.Services())+1)
	}
	redisAddr := st.RedisAddr()
	if conn, err := net.DialTimeout("tcp", redisAddr, time.Second); err != nil {
		t.Errorf("redis not reachable before Stop: %v", err)
	} else {
		conn.Close()
	}
	stopped = true
	if err := st.Stop(); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if err := st.Stop(); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
	left, err := stacktest.ProcessesMentioning(dir, bin)
	if err != nil {
		t.Fatal(err)
	}
	if len(left) > 0 {
		t.Fatalf("processes left after Stop: %v", left)
	}
	if conn, err := net.DialTimeout("tcp", redisAddr, time.Second); err == nil {
		conn.Close()
		t.Errorf("redis still accepts connections on %s after Stop", redisAddr)
	}
	for _, name := range stack.Services() {
		if st.PID(name) != 0 {
			t.Errorf("%s still has a process", name)
		}
		if b, err := os.ReadFile(st.LogPath(name)); err != nil || len(b) == 0 {
			t.Errorf("%s wrote no log: %v", name, err)
		}
	}
	// The embedded broker kept its data under the stack directory.
	if entries, err := os.ReadDir(filepath.Join(dir, "kafka")); err != nil || len(entries) == 0 {
		t.Errorf("no broker data in %s/kafka: %v", dir, err)
	}
}

func TestStartFailsWithoutBinaries(t *testing.T) {
	_, err := stack.Start(context.Background(), stack.Config{Dir: t.TempDir(), BinDir: t.TempDir()})
	if err == nil || !strings.Contains(err.Error(), "make build") {
		t.Fatalf("Start without binaries = %v, want an error naming make build", err)
	}
}

func TestReset(t *testing.T) {
	foreign := t.TempDir()
	if err := os.WriteFile(filepath.Join(foreign, "precious"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := stack.Reset(foreign); err == nil {
		t.Fatal("Reset deleted a directory that is not a stack's")
	}
	if _, err := os.Stat(filepath.Join(foreign, "precious")); err != nil {
		t.Fatal(err)
	}
	if err := stack.Reset(filepath.Join(foreign, "missing")); err != nil {
		t.Fatalf("Reset of a missing dir = %v", err)
	}
	ours := filepath.Join(t.TempDir(), "stack")
	if err := os.MkdirAll(ours, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(ours, ".stockcast-stack"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := stack.Reset(ours); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(ours); !os.IsNotExist(err) {
		t.Fatalf("stack dir still there: %v", err)
	}
}

func TestTopics(t *testing.T) {
	got := stack.Topics()
	for _, want := range []string{"orders.v1", "replenishment.v1", "forecasts.v1.dlq", "orders.v1.dlq"} {
		if !slices.Contains(got, want) {
			t.Errorf("Topics() lacks %s: %v", want, got)
		}
	}
	sorted := slices.Clone(got)
	slices.Sort(sorted)
	if len(slices.Compact(sorted)) != len(got) {
		t.Errorf("Topics() has duplicates: %v", got)
	}
}
