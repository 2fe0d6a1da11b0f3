package chx_test

import (
	"context"
	"flag"
	"strings"
	"testing"
	"time"

	"github.com/stockcast/stockcast/pkg/chx"
	"github.com/stockcast/stockcast/pkg/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

func TestOpenCreatesDatabaseAndMigrate(t *testing.T) {
	ctx := context.Background()
	cfg := testenv.ClickHouse(t)
	cfg.Database += "_app" // a database that does not exist yet
	conn, err := chx.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	t.Cleanup(func() { conn.Exec(context.Background(), "DROP DATABASE IF EXISTS "+cfg.Database) })

	schema := []string{
		`CREATE TABLE IF NOT EXISTS events (event_id String, qty Int64, version UInt64)
		 ENGINE = ReplacingMergeTree(version) ORDER BY event_id`,
	}
	for range 2 { // idempotent
		if err := chx.Migrate(ctx, conn, schema...); err != nil {
			t.Fatal(err)
		}
	}
	var db string
	if err := conn.QueryRow(ctx, "SELECT currentDatabase()").Scan(&db); err != nil || db != cfg.Database {
		t.Fatalf("connection on database %q (%v), want %q", db, err, cfg.Database)
	}
	batch, err := conn.PrepareBatch(ctx, "INSERT INTO events (event_id, qty, version)")
	if err != nil {
		t.Fatal(err)
	}
	for _, row := range []struct {
		id      string
		qty     int64
		version uint64
	}{{"a", 1, 1}, {"a", 5, 2}, {"b", 3, 1}} {
		if err := batch.Append(row.id, row.qty, row.version); err != nil {
			t.Fatal(err)
		}
	}
	if err := batch.Send(); err != nil {
		t.Fatal(err)
	}
	var total int64
	if err := conn.QueryRow(ctx, "SELECT sum(qty) FROM events FINAL").Scan(&total); err != nil {
		t.Fatal(err)
	}
	if total != 8 {
		t.Fatalf("sum(qty) FINAL = %d, want 8 (latest version of a + b)", total)
	}

	err = chx.Migrate(ctx, conn, "CREATE TABLE broken (")
	if err == nil || !strings.Contains(err.Error(), "statement 1 of 1") {
		t.Fatalf("Migrate of bad SQL = %v, want an error naming the statement", err)
	}
}

func TestOpenUnreachable(t *testing.T) {
	ctx := context.Background()
	start := time.Now()
	_, err := chx.Open(ctx, chx.Config{Addr: "127.0.0.1:1", Database: "x", DialTimeout: 300 * time.Millisecond})
	if err == nil || !strings.Contains(err.Error(), "127.0.0.1:1") {
		t.Fatalf("Open on a closed port = %v, want an error naming the address", err)
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Fatalf("Open took %s, want it bounded by the dial timeout", took)
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		args    []string
		wantErr bool
	}{
		{args: nil},
		{args: []string{"-clickhouse.database", "bad-name"}, wantErr: true},
		{args: []string{"-clickhouse.addr", ""}, wantErr: true},
	}
	for _, tt := range tests {
		var cfg chx.Config
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		cfg.RegisterFlags(fs)
		if err := fs.Parse(tt.args); err != nil {
			t.Fatal(err)
		}
		if err := cfg.Validate(); (err != nil) != tt.wantErr {
			t.Errorf("%v: Validate() = %v, wantErr %v", tt.args, err, tt.wantErr)
		}
	}
}
