// Package chx opens ClickHouse connections (native protocol) and applies
// schema statements. The SQL the services send must run on 18.16 (Debian)
// and on current releases: see docs/design.md, "Stores".
package chx

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"regexp"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// Config configures Open.
type Config struct {
	Addr        string // host:port of the native protocol
	Database    string
	Username    string
	Password    string
	DialTimeout time.Duration
	ReadTimeout time.Duration
}

// RegisterFlags registers the -clickhouse.* flags.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.Addr, "clickhouse.addr", "127.0.0.1:9000", "ClickHouse native protocol host:port")
	fs.StringVar(&c.Database, "clickhouse.database", "stockcast", "ClickHouse database (created if missing)")
	fs.StringVar(&c.Username, "clickhouse.username", "default", "ClickHouse user")
	fs.StringVar(&c.Password, "clickhouse.password", "", "ClickHouse password")
	fs.DurationVar(&c.DialTimeout, "clickhouse.dial-timeout", 5*time.Second, "ClickHouse connect timeout")
	fs.DurationVar(&c.ReadTimeout, "clickhouse.read-timeout", 30*time.Second, "ClickHouse query read timeout")
}

// identifier is what we accept as a database name, so it can be quoted safely.
var identifier = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// Validate checks the configuration.
func (c *Config) Validate() error {
	var errs []error
	if c.Addr == "" {
		errs = append(errs, errors.New("clickhouse addr: empty"))
	}
	if !identifier.MatchString(c.Database) {
		errs = append(errs, fmt.Errorf("clickhouse database %q: want letters, digits and _", c.Database))
	}
	if c.DialTimeout < 0 || c.ReadTimeout < 0 {
		errs = append(errs, errors.New("clickhouse timeouts: must not be negative"))
	}
	return errors.Join(errs...)
}

func (c Config) withDefaults() Config {
	if c.Username == "" {
		c.Username = "default"
	}
	if c.DialTimeout == 0 {
		c.DialTimeout = 5 * time.Second
	}
	if c.ReadTimeout == 0 {
		c.ReadTimeout = 30 * time.Second
	}
	return c
}

// Open connects to the "default" database to create cfg.Database if it is
// missing, then returns a connection pool on cfg.Database. It retries the
// first ping for up to DialTimeout, so that a server that is still starting
// does not fail the service.
func Open(ctx context.Context, cfg Config) (driver.Conn, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("validate clickhouse config: %w", err)
	}
	boot, err := open(ctx, cfg, "default")
	if err != nil {
		return nil, err
	}
	err = boot.Exec(ctx, "CREATE DATABASE IF NOT EXISTS `"+cfg.Database+"`")
	if cerr := boot.Close(); err == nil && cerr != nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("create clickhouse database %s on %s: %w", cfg.Database, cfg.Addr, err)
	}
	return open(ctx, cfg, cfg.Database)
}

func open(ctx context.Context, cfg Config, database string) (driver.Conn, error) {
	conn, err := clickhouse.Open(&clickhouse.Options{
		Addr:        []string{cfg.Addr},
		Auth:        clickhouse.Auth{Database: database, Username: cfg.Username, Password: cfg.Password},
		DialTimeout: cfg.DialTimeout,
		ReadTimeout: cfg.ReadTimeout,
	})
	if err != nil {
		return nil, fmt.Errorf("open clickhouse %s/%s: %w", cfg.Addr, database, err)
	}
	deadline := time.Now().Add(cfg.DialTimeout)
	for {
		err = conn.Ping(ctx)
		if err == nil {
			return conn, nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			conn.Close()
			return nil, fmt.Errorf("ping clickhouse %s/%s: %w", cfg.Addr, database, err)
		}
		t := time.NewTimer(100 * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
		case <-t.C:
		}
	}
}

// Migrate runs the schema statements in order (each must be idempotent,
// e.g. CREATE TABLE IF NOT EXISTS) and stops at the first error.
func Migrate(ctx context.Context, conn driver.Conn, stmts ...string) error {
	for i, stmt := range stmts {
		if err := conn.Exec(ctx, stmt); err != nil {
			return fmt.Errorf("run schema statement %d of %d (%.60s): %w", i+1, len(stmts), stmt, err)
		}
	}
	return nil
}
