package app

import (
	"bytes"
	"context"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stockcast/stockcast/pkg/chx"
	"github.com/stockcast/stockcast/pkg/testenv"
)

// TestMigrateOnly: STOCKCAST_MIGRATE_ONLY=true creates the service's tables
// in a real clickhouse-server and returns on its own, without Kafka or the
// feature service (their addresses point at closed ports); a second run is a no-op; an
// unreachable ClickHouse is an error.
func TestMigrateOnly(t *testing.T) {
	ch := testenv.ClickHouse(t)
	closed := testenv.FreeAddr(t) // nothing listens here
	args := []string{"-kafka.brokers", closed, "-feature.addr", closed, "-clickhouse.addr", ch.Addr, "-clickhouse.database", ch.Database}
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

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := chx.Open(ctx, ch)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	rows, err := conn.Query(ctx, fmt.Sprintf("SELECT name FROM system.tables WHERE database = '%s'", ch.Database))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			t.Fatal(err)
		}
		got = append(got, name)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	sort.Strings(got)
	if want := []string{"forecast_log", "models"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("tables = %v, want %v", got, want)
	}

	bad := []string{"-migrate-only", "-kafka.brokers", closed, "-clickhouse.addr", closed, "-clickhouse.dial-timeout", "300ms"}
	if err := Run(ctx, bad, func(string) string { return "" }, &bytes.Buffer{}); err == nil {
		t.Fatal("migrate-only against a closed ClickHouse port returned nil")
	}
}
