package localstack

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
)

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), nil))
}

func TestStartRedis(t *testing.T) {
	ctx := context.Background()
	r, err := StartRedis(ctx, t.TempDir(), testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := pingRedis(ctx, r.Addr()); err != nil {
		t.Fatalf("ping running redis: %v", err)
	}
	pid := r.proc.cmd.Process.Pid
	if err := r.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := pingRedis(ctx, r.Addr()); err == nil {
		t.Fatal("redis still answers after Stop")
	}
	if !r.proc.hasExited() {
		t.Fatalf("redis pid %d still running after Stop", pid)
	}
	if err := r.Stop(); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
	if r.PID() != 0 {
		t.Fatalf("PID() = %d after Stop, want 0", r.PID())
	}

	// Start runs it again on the same address, without the data it had.
	if err := r.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer r.Stop()
	if err := pingRedis(ctx, r.Addr()); err != nil {
		t.Fatalf("ping restarted redis: %v", err)
	}
	if r.PID() == 0 || r.PID() == pid {
		t.Fatalf("PID() = %d after Start (was %d)", r.PID(), pid)
	}
	if err := r.Start(ctx); err != nil {
		t.Fatalf("Start of a running server: %v", err)
	}
}

// TestRedisStartLosesData: a restart without persistence is a Redis that
// lost its data (the fault suite's Redis loss).
func TestRedisStartLosesData(t *testing.T) {
	ctx := context.Background()
	r, err := StartRedis(ctx, t.TempDir(), testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Stop()
	cmd := func(line string) string {
		t.Helper()
		conn, err := net.Dial("tcp", r.Addr())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		if _, err := conn.Write([]byte(line + "\r\n")); err != nil {
			t.Fatal(err)
		}
		reply, err := bufio.NewReader(conn).ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(reply)
	}
	if got := cmd("SET k v"); got != "+OK" {
		t.Fatalf("SET: %q", got)
	}
	if got := cmd("DBSIZE"); got != ":1" {
		t.Fatalf("DBSIZE before the restart: %q", got)
	}
	if err := r.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := r.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if got := cmd("DBSIZE"); got != ":0" {
		t.Fatalf("DBSIZE after the restart: %q, want :0", got)
	}
}

func TestStartClickHouseKeepsData(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	ch, err := StartClickHouse(ctx, dir, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("clickhouse-server started in %s", ch.StartDuration())
	exec1 := func(ch *ClickHouse, query string) {
		t.Helper()
		conn, err := clickhouse.Open(&clickhouse.Options{Addr: []string{ch.Addr()}})
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		if err := conn.Exec(ctx, query); err != nil {
			t.Fatalf("%s: %v", query, err)
		}
	}
	exec1(ch, "CREATE TABLE default.kept (n UInt32) ENGINE = MergeTree ORDER BY n")
	conn, err := clickhouse.Open(&clickhouse.Options{Addr: []string{ch.Addr()}})
	if err != nil {
		t.Fatal(err)
	}
	batch, err := conn.PrepareBatch(ctx, "INSERT INTO default.kept (n)")
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if err := batch.Append(uint32(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := batch.Send(); err != nil {
		t.Fatal(err)
	}
	conn.Close()
	if err := ch.Stop(); err != nil {
		t.Fatal(err)
	}

	ch2, err := StartClickHouse(ctx, dir, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer ch2.Stop()
	conn, err = clickhouse.Open(&clickhouse.Options{Addr: []string{ch2.Addr()}})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var n uint64
	if err := conn.QueryRow(ctx, "SELECT count() FROM default.kept").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 3 {
		t.Fatalf("after restart: %d rows, want 3", n)
	}
	conn.Close()

	// Stop and Start: the same ports, the same data.
	addr := ch2.Addr()
	if err := ch2.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := ch2.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if ch2.Addr() != addr {
		t.Fatalf("address after Start %s, was %s", ch2.Addr(), addr)
	}
	conn, err = clickhouse.Open(&clickhouse.Options{Addr: []string{addr}})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := conn.QueryRow(ctx, "SELECT count() FROM default.kept").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 3 {
		t.Fatalf("after Stop and Start: %d rows, want 3", n)
	}
}

// TestChildDiesWithParent starts a helper process (this test binary) that
// starts redis and is then killed: Pdeathsig must take redis down with it.
func TestChildDiesWithParent(t *testing.T) {
	if dir := os.Getenv("LOCALSTACK_HELPER_DIR"); dir != "" {
		r, err := StartRedis(context.Background(), dir, testLogger(t))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "pid"), []byte(strconv.Itoa(r.proc.cmd.Process.Pid)), 0o644); err != nil {
			t.Fatal(err)
		}
		select {} // wait to be killed
	}
	dir := t.TempDir()
	helper := exec.Command(os.Args[0], "-test.run=^TestChildDiesWithParent$")
	helper.Env = append(os.Environ(), "LOCALSTACK_HELPER_DIR="+dir)
	if err := helper.Start(); err != nil {
		t.Fatal(err)
	}
	var pid int
	// The helper is a new process that starts redis-server (up to 15 s per
	// attempt): a minute, not 20 s, on a loaded machine.
	deadline := time.Now().Add(time.Minute)
	for pid == 0 {
		if b, err := os.ReadFile(filepath.Join(dir, "pid")); err == nil && len(b) > 0 {
			pid, _ = strconv.Atoi(string(b))
		} else if time.Now().After(deadline) {
			helper.Process.Kill()
			t.Fatal("helper did not start redis")
		} else {
			time.Sleep(20 * time.Millisecond)
		}
	}
	if !alive(pid) {
		t.Fatalf("redis pid %d not running", pid)
	}
	if err := helper.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = helper.Wait()
	deadline = time.Now().Add(10 * time.Second)
	for alive(pid) {
		if time.Now().After(deadline) {
			syscall.Kill(pid, syscall.SIGKILL)
			t.Fatalf("redis pid %d survived its killed parent", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// alive reports whether pid runs and is not a zombie.
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	fields := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	return len(fields) > 0 && fields[0] != "Z" && fields[0] != "X"
}

func TestMissingPackages(t *testing.T) {
	got := MissingPackages(map[string]string{
		"sh":                           "dash",
		"stockcast-no-such-binary":     "stockcast-fake",
		"stockcast-no-such-binary-two": "stockcast-fake",
	})
	if len(got) != 1 || got[0] != "stockcast-fake" {
		t.Fatalf("MissingPackages = %v, want [stockcast-fake]", got)
	}
	if _, err := exec.LookPath("sh"); err != nil {
		t.Fatal(err)
	}
}

func TestWaitReadyReportsEarlyExit(t *testing.T) {
	dir := t.TempDir()
	proc, err := startProcess("false", "/bin/sh", []string{"-c", "echo boom; exit 3"}, dir, filepath.Join(dir, "out.log"), testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	err = waitReady(context.Background(), proc, time.Minute, func(context.Context) error { return context.DeadlineExceeded }) // returns at the exit
	if err == nil || !strings.Contains(err.Error(), "exited during start") || !strings.Contains(err.Error(), "boom") {
		t.Fatalf("waitReady = %v, want an early-exit error with the log", err)
	}
}
