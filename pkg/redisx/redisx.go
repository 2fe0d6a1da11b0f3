// Package redisx opens go-redis clients with stockcast's flags and waits for
// the server to answer before a service starts consuming.
package redisx

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// Config configures Open.
type Config struct {
	Addr        string
	Password    string
	DB          int
	PingTimeout time.Duration // how long Open retries the first PING
}

// RegisterFlags registers the -redis.* flags.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.Addr, "redis.addr", "127.0.0.1:6379", "Redis host:port")
	fs.StringVar(&c.Password, "redis.password", "", "Redis password")
	fs.IntVar(&c.DB, "redis.db", 0, "Redis database number")
	fs.DurationVar(&c.PingTimeout, "redis.ping-timeout", 10*time.Second, "how long to wait for Redis at start")
}

// Validate checks the configuration.
func (c *Config) Validate() error {
	var errs []error
	if c.Addr == "" {
		errs = append(errs, errors.New("redis addr: empty"))
	}
	if c.DB < 0 {
		errs = append(errs, fmt.Errorf("redis db %d: must not be negative", c.DB))
	}
	if c.PingTimeout < 0 {
		errs = append(errs, errors.New("redis ping timeout: must not be negative"))
	}
	return errors.Join(errs...)
}

// Open creates a client and PINGs until the server answers or PingTimeout
// (default 10s) passes.
func Open(ctx context.Context, cfg Config) (*redis.Client, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("validate redis config: %w", err)
	}
	if cfg.PingTimeout == 0 {
		cfg.PingTimeout = 10 * time.Second
	}
	rdb := redis.NewClient(&redis.Options{
		Addr:     cfg.Addr,
		Password: cfg.Password,
		DB:       cfg.DB,
		// Protocol stays go-redis' default (RESP3), the one the services'
		// store tests use: Lua replies convert differently under RESP2.
	})
	pctx, cancel := context.WithTimeout(ctx, cfg.PingTimeout)
	defer cancel()
	for {
		err := rdb.Ping(pctx).Err()
		if err == nil {
			return rdb, nil
		}
		t := time.NewTimer(100 * time.Millisecond)
		select {
		case <-pctx.Done():
			t.Stop()
			rdb.Close()
			return nil, fmt.Errorf("ping redis %s: %w", cfg.Addr, err)
		case <-t.C:
		}
	}
}
