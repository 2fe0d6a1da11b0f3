package app

import (
	"bytes"
	"context"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/stockcast/stockcast/pkg/testenv"
)

// TestMigrateOnly: STOCKCAST_MIGRATE_ONLY=true creates the service's tables
// in a real clickhouse-server and returns on its own, without Redis or Kafka
// (their addresses point at closed ports); a second run is a no-op; an
// unreachable ClickHouse is an error.
func TestMigrateOnly(t *testing.T) {
	ch := testenv.ClickHouse(t)
	closed := testenv.FreeAddr(t) // nothing listens here
	args := []string{"-kafka.brokers", closed, "-redis.addr", closed, "-clickhouse.addr", ch.Addr, "-clickhouse.database", ch.Database}
	env := func(k string) string { return map[string]string{"STOCKCAST_MIGRATE_ONLY": "true"}[k] }
	for run := 1; run <= 2; run++ {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		var out bytes.Buffer
		err := Run(ctx, args, env, &out)
		ctxErr := ctx.Err()
		cancel()
		if err != nil || ctxErr != nil {
			t.Fatalf("run %d: err = %v, ctx = %v; logs:\n%s", run, err, ctxErr, out.String())
		}
		if !strings.Contains(out.String(), "clickhouse schema applied") {
			t.Errorf("run %d: no migration log line:\n%s", run, out.String())
		}
	}

	got := testenv.Tables(t, ch)
	if want := []string{"proposals", "stockouts"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("tables = %v, want %v", got, want)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	bad := []string{"-migrate-only", "-kafka.brokers", closed, "-clickhouse.addr", closed, "-clickhouse.dial-timeout", "300ms"}
	if err := Run(ctx, bad, func(string) string { return "" }, &bytes.Buffer{}); err == nil {
		t.Fatal("migrate-only against a closed ClickHouse port returned nil")
	}
}
