package api

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/stockcast/stockcast/pkg/chx"
	"github.com/stockcast/stockcast/pkg/testenv"
)

func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }

// TestStoreHostileStrings: the console's reads bind their values, so sku
// strings with quotes, backslashes, SQL, LIKE wildcards and odd unicode
// find exactly their own rows (docs/security.md). The table has the
// columns of ingest's order_lines that the reads use.
func TestStoreHostileStrings(t *testing.T) {
	ctx := context.Background()
	conn, err := chx.Open(ctx, testenv.ClickHouse(t))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for _, q := range []string{
		`CREATE TABLE order_lines (event_id String, series_key String, sku String, location String,
			occurred_at DateTime('UTC'), type String, order_id String, quantity Float64, unit_price Float64,
			customer_id String, country String, description String, is_demand UInt8, ingested_at DateTime('UTC'))
			ENGINE = ReplacingMergeTree(ingested_at) ORDER BY (series_key, event_id)`,
		`CREATE TABLE inventory_events (event_id String, series_key String, occurred_at DateTime('UTC'), kind String,
			quantity Float64, reference String, supplier_id String, ingested_at DateTime('UTC'))
			ENGINE = ReplacingMergeTree(ingested_at) ORDER BY (series_key, event_id)`,
	} {
		if err := conn.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	skus := []string{`'; DROP TABLE order_lines; --`, `O'Brien\"x\\`, `100%_off`, `\`, "杯子☕e\u0301", "plain"}
	batch, err := conn.PrepareBatch(ctx, `INSERT INTO order_lines (event_id, series_key, sku, location, occurred_at, type,
		order_id, quantity, unit_price, customer_id, country, description, is_demand, ingested_at)`)
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2011, 12, 9, 10, 0, 0, 0, time.UTC)
	for i, sku := range skus {
		if err := batch.Append("e"+string(rune('a'+i)), sku+"|online", sku, "online", at.Add(time.Duration(i)*time.Hour), "placed",
			"o'"+sku, float64(i+1), 1.5, "c", "UK", "d", uint8(1), at); err != nil {
			t.Fatal(err)
		}
	}
	if err := batch.Send(); err != nil {
		t.Fatal(err)
	}
	s := NewStore(conn)
	for i, sku := range skus {
		events, err := s.SeriesEvents(ctx, sku+"|online", 10)
		if err != nil {
			t.Fatalf("events of %q: %v", sku, err)
		}
		if len(events) != 1 || events[0].Ref != "o'"+sku || events[0].Quantity != float64(i+1) {
			t.Fatalf("events of %q: %+v", sku, events)
		}
	}
	// Search treats its query as text: quotes, wildcards and backslashes
	// match themselves only.
	for _, tt := range []struct {
		q    string
		want []string
	}{
		{`'; drop`, []string{`'; DROP TABLE order_lines; --`}},
		{`o'brien\"x\\`, []string{`O'Brien\"x\\`}},
		{`%_`, []string{`100%_off`}},
		{`\`, []string{`\`, `O'Brien\"x\\`}}, // busiest first: quantity 4, then 2
		{"☕e\u0301", []string{"杯子☕e\u0301"}},
		{`_`, []string{`100%_off`, `'; DROP TABLE order_lines; --`}}, // order_lines has one too
		{`%`, []string{`100%_off`}},
	} {
		hits, err := s.SearchSeries(ctx, tt.q, 10)
		if err != nil {
			t.Fatalf("search %q: %v", tt.q, err)
		}
		var got []string
		for _, h := range hits {
			got = append(got, h.SKU)
		}
		if len(got) != len(tt.want) {
			t.Fatalf("search %q found %q, want %q", tt.q, got, tt.want)
		}
		for i := range got {
			if got[i] != tt.want[i] {
				t.Fatalf("search %q found %q, want %q", tt.q, got, tt.want)
			}
		}
	}
	var n uint64
	if err := conn.QueryRow(ctx, "SELECT count() FROM order_lines").Scan(&n); err != nil || n != uint64(len(skus)) {
		t.Fatalf("order_lines has %d rows (%v), want %d", n, err, len(skus))
	}
}
