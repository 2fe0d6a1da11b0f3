package localstack

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/template"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
)

// ClickHouseBinary is the server binary StartClickHouse runs.
const ClickHouseBinary = "clickhouse-server"

// ClickHouse is a running clickhouse-server.
type ClickHouse struct {
	proc     *process
	addr     string
	httpAddr string
	started  time.Duration
	// What Start needs to run the same server again.
	bin, cfgPath, dir string
	log               *slog.Logger
}

// StartClickHouse writes a config for clickhouse-server (18.16 and current
// releases) into dir, with the data under dir, starts it on free loopback
// ports and returns once the native protocol answers a ping. The data
// survives a Stop and a new StartClickHouse on the same dir.
func StartClickHouse(ctx context.Context, dir string, log *slog.Logger) (*ClickHouse, error) {
	bin, err := FindBinary(ClickHouseBinary)
	if err != nil {
		return nil, fmt.Errorf("start clickhouse: %w (install the clickhouse-server package)", err)
	}
	dir, err = filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("resolve clickhouse dir: %w", err)
	}
	for _, sub := range []string{"data", "tmp", "user_files", "format_schemas", "log"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o755); err != nil {
			return nil, fmt.Errorf("create clickhouse dir: %w", err)
		}
	}
	var lastErr error
	for range startAttempts {
		ports, err := FreePorts(3)
		if err != nil {
			return nil, err
		}
		cfgPath, err := writeClickHouseConfig(dir, ports[0], ports[1], ports[2])
		if err != nil {
			return nil, err
		}
		start := time.Now()
		proc, err := startProcess("clickhouse", bin, []string{"--config-file=" + cfgPath}, dir, filepath.Join(dir, "log", "stdout.log"), log)
		if err != nil {
			return nil, err
		}
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[0]))
		err = waitReady(ctx, proc, clickHouseStartTimeout, func(ctx context.Context) error { return pingClickHouse(ctx, addr) })
		if err == nil {
			took := time.Since(start)
			log.Info("clickhouse started", "addr", addr, "dir", dir, "pid", proc.cmd.Process.Pid, "took", took)
			return &ClickHouse{proc: proc, addr: addr, httpAddr: net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[1])), started: took,
				bin: bin, cfgPath: cfgPath, dir: dir, log: log}, nil
		}
		if errLog := tailFile(filepath.Join(dir, "log", "clickhouse-server.err.log"), 20); errLog != "" {
			err = fmt.Errorf("%w\nerror log:\n%s", err, errLog)
		}
		lastErr = err
		if stopErr := proc.stop(); stopErr != nil {
			log.Warn("stop clickhouse after failed start", "err", stopErr)
		}
		if ctx.Err() != nil {
			break
		}
	}
	return nil, fmt.Errorf("start clickhouse in %s: %w", dir, lastErr)
}

// Addr is the native protocol host:port.
func (c *ClickHouse) Addr() string { return c.addr }

// HTTPAddr is the HTTP interface host:port.
func (c *ClickHouse) HTTPAddr() string { return c.httpAddr }

// StartDuration is how long the server took from exec to the first ping.
func (c *ClickHouse) StartDuration() time.Duration { return c.started }

// Stop terminates the server (SIGTERM, then SIGKILL after a deadline).
func (c *ClickHouse) Stop() error { return c.proc.stop() }

// Start starts a stopped server again with the same configuration, ports
// and data (fault tests). It does nothing if the server runs.
func (c *ClickHouse) Start(ctx context.Context) error {
	if !c.proc.hasExited() {
		return nil
	}
	proc, err := startProcess("clickhouse", c.bin, []string{"--config-file=" + c.cfgPath}, c.dir, filepath.Join(c.dir, "log", "stdout.log"), c.log)
	if err != nil {
		return err
	}
	c.proc = proc
	addr := c.addr
	if err := waitReady(ctx, proc, clickHouseStartTimeout, func(ctx context.Context) error { return pingClickHouse(ctx, addr) }); err != nil {
		return fmt.Errorf("restart clickhouse on %s: %w", addr, err)
	}
	return nil
}

func pingClickHouse(ctx context.Context, addr string) error {
	conn, err := clickhouse.Open(&clickhouse.Options{
		Addr:        []string{addr},
		Auth:        clickhouse.Auth{Database: "default", Username: "default"},
		DialTimeout: time.Second,
	})
	if err != nil {
		return err
	}
	defer conn.Close()
	return conn.Ping(ctx)
}

// The root element <yandex> is what 18.16 reads; current releases still
// accept it. Caches are small: tests and the demo hold little data.
var clickHouseConfig = template.Must(template.New("config.xml").Parse(`<?xml version="1.0"?>
<yandex>
    <logger>
        <level>warning</level>
        <log>{{.Dir}}/log/clickhouse-server.log</log>
        <errorlog>{{.Dir}}/log/clickhouse-server.err.log</errorlog>
        <size>100M</size>
        <count>2</count>
        <console>0</console>
    </logger>
    <listen_host>127.0.0.1</listen_host>
    <tcp_port>{{.TCPPort}}</tcp_port>
    <http_port>{{.HTTPPort}}</http_port>
    <interserver_http_port>{{.InterserverPort}}</interserver_http_port>
    <interserver_http_host>127.0.0.1</interserver_http_host>
    <path>{{.Dir}}/data/</path>
    <tmp_path>{{.Dir}}/tmp/</tmp_path>
    <user_files_path>{{.Dir}}/user_files/</user_files_path>
    <format_schema_path>{{.Dir}}/format_schemas/</format_schema_path>
    <users_config>{{.Dir}}/users.xml</users_config>
    <default_profile>default</default_profile>
    <default_database>default</default_database>
    <timezone>UTC</timezone>
    <max_connections>256</max_connections>
    <max_concurrent_queries>64</max_concurrent_queries>
    <mark_cache_size>67108864</mark_cache_size>
    <uncompressed_cache_size>67108864</uncompressed_cache_size>
    <builtin_dictionaries_reload_interval>3600</builtin_dictionaries_reload_interval>
    <max_session_timeout>3600</max_session_timeout>
    <default_session_timeout>60</default_session_timeout>
</yandex>
`))

var clickHouseUsers = template.Must(template.New("users.xml").Parse(`<?xml version="1.0"?>
<yandex>
    <profiles>
        <default>
            <max_memory_usage>2000000000</max_memory_usage>
            <load_balancing>random</load_balancing>
        </default>
    </profiles>
    <users>
        <default>
            <password></password>
            <networks>
                <ip>::1</ip>
                <ip>127.0.0.1</ip>
            </networks>
            <profile>default</profile>
            <quota>default</quota>
        </default>
    </users>
    <quotas>
        <default>
            <interval>
                <duration>3600</duration>
                <queries>0</queries>
                <errors>0</errors>
                <result_rows>0</result_rows>
                <read_rows>0</read_rows>
                <execution_time>0</execution_time>
            </interval>
        </default>
    </quotas>
</yandex>
`))

// writeClickHouseConfig writes config.xml and users.xml into dir and returns
// the config path.
func writeClickHouseConfig(dir string, tcpPort, httpPort, interserverPort int) (string, error) {
	data := struct {
		Dir                                string
		TCPPort, HTTPPort, InterserverPort int
	}{Dir: strings.TrimRight(dir, "/"), TCPPort: tcpPort, HTTPPort: httpPort, InterserverPort: interserverPort}
	for _, f := range []struct {
		name string
		tmpl *template.Template
	}{{"config.xml", clickHouseConfig}, {"users.xml", clickHouseUsers}} {
		var b strings.Builder
		if err := f.tmpl.Execute(&b, data); err != nil {
			return "", fmt.Errorf("render clickhouse %s: %w", f.name, err)
		}
		if err := os.WriteFile(filepath.Join(dir, f.name), []byte(b.String()), 0o644); err != nil {
			return "", fmt.Errorf("write clickhouse %s: %w", f.name, err)
		}
	}
	return filepath.Join(dir, "config.xml"), nil
}
