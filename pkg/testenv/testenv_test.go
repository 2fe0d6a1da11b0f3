package testenv

import (
	"context"
	"testing"

	"github.com/stockcast/stockcast/pkg/chx"
	"github.com/stockcast/stockcast/pkg/kafkax"
)

func TestMain(m *testing.M) { Main(m) }

func TestRedisPerTest(t *testing.T) {
	a := Redis(t)
	b := Redis(t)
	if a == b {
		t.Fatalf("two Redis calls returned the same server %s", a)
	}
}

func TestClickHouseFreshDatabasePerTest(t *testing.T) {
	ctx := context.Background()
	var names []string
	for range 2 {
		cfg := ClickHouse(t)
		names = append(names, cfg.Database)
		conn, err := chx.Open(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		if err := chx.Migrate(ctx, conn, "CREATE TABLE IF NOT EXISTS x (n UInt8) ENGINE = MergeTree ORDER BY n"); err != nil {
			t.Fatal(err)
		}
		var n uint64
		if err := conn.QueryRow(ctx, "SELECT count() FROM x").Scan(&n); err != nil || n != 0 {
			t.Fatalf("fresh database %s: count = %d, %v", cfg.Database, n, err)
		}
		conn.Close()
	}
	if names[0] == names[1] {
		t.Fatalf("both calls got database %s", names[0])
	}
}

func TestKafkaPerTest(t *testing.T) {
	brokers := Kafka(t)
	if err := kafkax.EnsureTopics(context.Background(), kafkax.Config{Brokers: brokers}, "t.v1"); err != nil {
		t.Fatal(err)
	}
}

func TestClickHouseDatabaseDroppedAfterTest(t *testing.T) {
	var cfg chx.Config
	t.Run("user", func(t *testing.T) { cfg = ClickHouse(t) })
	ctx := context.Background()
	if err := execDefault(ctx, cfg.Addr, "SELECT 1"); err != nil {
		t.Fatal(err)
	}
	conn, err := chx.Open(ctx, chx.Config{Addr: cfg.Addr, Database: "default"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var n uint64
	if err := conn.QueryRow(ctx, "SELECT count() FROM system.databases WHERE name = ?", cfg.Database).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Fatalf("database %s still exists after its test", cfg.Database)
	}
}
