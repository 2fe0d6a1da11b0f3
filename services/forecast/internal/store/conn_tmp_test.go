package store

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// clickHouse connects to a ClickHouse started by hand, in a fresh database
// (until pkg/testenv lands).
func clickHouse(t *testing.T) driver.Conn {
	ctx := context.Background()
	admin, err := clickhouse.Open(&clickhouse.Options{Addr: []string{"127.0.0.1:19123"}})
	if err != nil {
		t.Fatal(err)
	}
	db := fmt.Sprintf("fc_%d", time.Now().UnixNano())
	if err := admin.Exec(ctx, "CREATE DATABASE "+db); err != nil {
		t.Skipf("no clickhouse: %v", err)
	}
	conn, err := clickhouse.Open(&clickhouse.Options{Addr: []string{"127.0.0.1:19123"}, Auth: clickhouse.Auth{Database: db}})
	if err != nil {
		t.Fatal(err)
	}
	return conn
}
