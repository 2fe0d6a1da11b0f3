package redisx_test

import (
	"context"
	"flag"
	"strings"
	"testing"
	"time"

	"github.com/stockcast/stockcast/pkg/redisx"
	"github.com/stockcast/stockcast/pkg/testenv"
)

func TestOpen(t *testing.T) {
	ctx := context.Background()
	rdb, err := redisx.Open(ctx, redisx.Config{Addr: testenv.Redis(t), DB: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer rdb.Close()
	if err := rdb.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if got, err := rdb.Get(ctx, "k").Result(); err != nil || got != "v" {
		t.Fatalf("Get = %q, %v", got, err)
	}
	info, err := rdb.Info(ctx, "keyspace").Result()
	if err != nil || !strings.Contains(info, "db2:keys=1") {
		t.Fatalf("key not in db 2: %q, %v", info, err)
	}
}

func TestOpenUnreachable(t *testing.T) {
	addr := testenv.FreeAddr(t)
	start := time.Now()
	_, err := redisx.Open(context.Background(), redisx.Config{Addr: addr, PingTimeout: 300 * time.Millisecond})
	if err == nil || !strings.Contains(err.Error(), addr) {
		t.Fatalf("Open on a closed port = %v, want an error naming %s", err, addr)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("Open took %s, want about the ping timeout", took)
	}
}

func TestConfigFlags(t *testing.T) {
	var cfg redisx.Config
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	cfg.RegisterFlags(fs)
	if err := fs.Parse([]string{"-redis.addr", "h:1", "-redis.db", "3"}); err != nil {
		t.Fatal(err)
	}
	if cfg.Addr != "h:1" || cfg.DB != 3 || cfg.Validate() != nil {
		t.Fatalf("cfg = %+v, Validate = %v", cfg, cfg.Validate())
	}
	cfg.DB = -1
	if cfg.Validate() == nil {
		t.Fatal("negative db accepted")
	}
}
