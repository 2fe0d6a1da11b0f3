package localstack

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// RedisBinary is the server binary StartRedis runs.
const RedisBinary = "redis-server"

// startTimeout bounds how long a server may take to answer its first ping.
const (
	redisStartTimeout      = 15 * time.Second
	clickHouseStartTimeout = 90 * time.Second
	startAttempts          = 3
)

// Redis is a running redis-server.
type Redis struct {
	proc *process
	addr string
}

// StartRedis starts redis-server on a free loopback port with its working
// directory dir (created if missing), without persistence, and returns once
// it answers PING.
func StartRedis(ctx context.Context, dir string, log *slog.Logger) (*Redis, error) {
	bin, err := FindBinary(RedisBinary)
	if err != nil {
		return nil, fmt.Errorf("start redis: %w (install the redis-server package)", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create redis dir %s: %w", dir, err)
	}
	var lastErr error
	for range startAttempts {
		port, err := FreePort()
		if err != nil {
			return nil, err
		}
		args := []string{
			"--port", strconv.Itoa(port), "--bind", "127.0.0.1",
			"--save", "", "--appendonly", "no", "--dir", dir,
			"--daemonize", "no", "--protected-mode", "yes",
		}
		proc, err := startProcess("redis", bin, args, dir, filepath.Join(dir, "redis.log"), log)
		if err != nil {
			return nil, err
		}
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		err = waitReady(ctx, proc, redisStartTimeout, func(ctx context.Context) error { return pingRedis(ctx, addr) })
		if err == nil {
			log.Debug("redis started", "addr", addr, "dir", dir, "pid", proc.cmd.Process.Pid)
			return &Redis{proc: proc, addr: addr}, nil
		}
		lastErr = err
		if stopErr := proc.stop(); stopErr != nil {
			log.Warn("stop redis after failed start", "err", stopErr)
		}
		if ctx.Err() != nil {
			break
		}
	}
	return nil, fmt.Errorf("start redis in %s: %w", dir, lastErr)
}

// Addr is the server's host:port.
func (r *Redis) Addr() string { return r.addr }

// Stop terminates the server (SIGTERM, then SIGKILL after a deadline).
func (r *Redis) Stop() error { return r.proc.stop() }

// pingRedis sends an inline PING and expects +PONG.
func pingRedis(ctx context.Context, addr string) error {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(time.Second)); err != nil {
		return err
	}
	if _, err := conn.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return err
	}
	if strings.TrimSpace(line) != "+PONG" {
		return fmt.Errorf("redis answered %q to PING", strings.TrimSpace(line))
	}
	return nil
}

// waitReady polls ping until it succeeds, the process exits, ctx is done or
// timeout passes.
func waitReady(ctx context.Context, proc *process, timeout time.Duration, ping func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		pctx, pcancel := context.WithTimeout(ctx, 2*time.Second)
		err := ping(pctx)
		pcancel()
		if err == nil {
			return nil
		}
		if proc.hasExited() {
			return fmt.Errorf("%s exited during start (%v); log %s:\n%s", proc.name, proc.waitErr, proc.logPath, proc.logTail())
		}
		t := time.NewTimer(50 * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%s not ready after %s: %w (last ping: %v); log %s:\n%s", proc.name, timeout, ctx.Err(), err, proc.logPath, proc.logTail())
		case <-t.C:
		}
	}
}
