package store

import (
	"context"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/stockcast/stockcast/services/forecast/internal/scoring"
)

// TestForecastLogHostileKeys: series keys with quotes, backslashes, SQL
// and odd unicode are stored and read back exactly, each only by its own
// key (the queries bind values; docs/security.md).
func TestForecastLogHostileKeys(t *testing.T) {
	ctx := context.Background()
	log, conn := openLog(t)
	skus := []string{
		`'; DROP TABLE forecast_log; --`,
		`O'Brien\"x\\`,
		`a\' OR '1'='1`,
		`\`,
		"杯子☕e\u0301",
		`%_*?[`,
	}
	day := time.Date(2011, 3, 4, 10, 30, 0, 0, time.UTC)
	for i, sku := range skus {
		r := result("hostile-"+string(rune('a'+i)), day, float64(i+1))
		r.Event.Sku, r.Event.Location = sku, "loc'\\n"
		r.Event.SeriesKey = sku + "|loc'\\n"
		if err := log.Insert(ctx, []*scoring.Result{r}); err != nil {
			t.Fatalf("insert %q: %v", sku, err)
		}
		got, err := log.Latest(ctx, r.Event.SeriesKey)
		if err != nil {
			t.Fatalf("latest %q: %v", sku, err)
		}
		if !proto.Equal(got.Event, r.Event) {
			t.Fatalf("read back %q:\n got %v\nwant %v", sku, got.Event, r.Event)
		}
	}
	var rows uint64
	if err := conn.QueryRow(ctx, "SELECT count() FROM forecast_log FINAL").Scan(&rows); err != nil {
		t.Fatal(err)
	}
	if rows != uint64(len(skus)) {
		t.Fatalf("%d rows, want %d", rows, len(skus))
	}
}
