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

// RedisHashMaxListpackValue is the hash-max-listpack-value StartRedis sets
// (Redis' default is 64); an external Redis needs the same setting.
const RedisHashMaxListpackValue = 2048

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
	// What Start needs to run the same server again.
	bin  string
	args []string
	dir  string
	log  *slog.Logger
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
			// Hashes with values up to 2 KB stay listpacks: a feature
			// series hash (its day ring up to 1600 bytes) takes ~0.7x the
			// memory of a hashtable (docs/operations.md, "Redis").
			"--hash-max-listpack-value", strconv.Itoa(RedisHashMaxListpackValue),
		}
		proc, err := startProcess("redis", bin, args, dir, filepath.Join(dir, "redis.log"), log)
		if err != nil {
			return nil, err
		}
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		err = waitReady(ctx, proc, redisStartTimeout, func(ctx context.Context) error { return pingRedis(ctx, addr) })
		if err == nil {
			log.Debug("redis started", "addr", addr, "dir", dir, "pid", proc.cmd.Process.Pid)
			return &Redis{proc: proc, addr: addr, bin: bin, args: args, dir: dir, log: log}, nil
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
// Without persistence its data is gone.
func (r *Redis) Stop() error { return r.proc.stop() }

// Start starts a stopped server again on the same address, empty (fault
// tests: a Redis restart without persistence). It does nothing if the
// server runs.
func (r *Redis) Start(ctx context.Context) error {
	if !r.proc.hasExited() {
		return nil
	}
	proc, err := startProcess("redis", r.bin, r.args, r.dir, filepath.Join(r.dir, "redis.log"), r.log)
	if err != nil {
		return err
	}
	r.proc = proc
	addr := r.addr
	if err := waitReady(ctx, proc, redisStartTimeout, func(ctx context.Context) error { return pingRedis(ctx, addr) }); err != nil {
		return fmt.Errorf("restart redis on %s: %w", addr, err)
	}
	return nil
}

// PID returns the server's process id, 0 when it is not running.
func (r *Redis) PID() int {
	if r.proc.hasExited() {
		return 0
	}
	return r.proc.cmd.Process.Pid
}

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
