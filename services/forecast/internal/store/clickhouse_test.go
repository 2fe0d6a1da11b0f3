package store

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/stockcast/stockcast/pkg/chx"
	"github.com/stockcast/stockcast/pkg/testenv"
	demandv1 "github.com/stockcast/stockcast/proto/stockcast/demand/v1"
	forecastv1 "github.com/stockcast/stockcast/proto/stockcast/forecast/v1"
	"github.com/stockcast/stockcast/services/forecast/internal/scoring"
)

func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }

// openLog opens a migrated forecast_log on the test ClickHouse; the
// connection closes when the test ends.
func openLog(t *testing.T) (*ForecastLog, driver.Conn) {
	t.Helper()
	ctx := context.Background()
	conn, err := chx.Open(ctx, testenv.ClickHouse(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	if err := Migrate(ctx, conn); err != nil {
		t.Fatal(err)
	}
	return NewForecastLog(conn), conn
}

func result(id string, asOf time.Time, mean float64) *scoring.Result {
	return &scoring.Result{
		Event: &forecastv1.ForecastEvent{
			ForecastId: id, EventId: "ev-" + id, SeriesKey: "A|online", Sku: "A", Location: "online",
			AsOf: timestamppb.New(asOf), IssuedAt: timestamppb.New(asOf.Add(time.Second + 123)),
			StartDay: asOf.Format(time.DateOnly), QuantileLevels: []float64{0.5, 0.9},
			Daily: []*forecastv1.DailyForecast{
				{Day: asOf.Format(time.DateOnly), Mean: mean, Quantiles: []float64{mean, mean + 2}},
				{Day: asOf.AddDate(0, 0, 1).Format(time.DateOnly), Mean: mean + 1, Quantiles: []float64{mean + 1, mean + 3}},
			},
			LeadTimeDemand: []*forecastv1.LeadTimeDemand{{LeadTimeDays: 1, Mean: 2*mean + 1, Quantiles: []float64{2 * mean, 2*mean + 4}}},
			Model:          "m", ModelVersion: "m-1", DemandClass: "smooth",
			Reason: &forecastv1.ForecastReason{Code: forecastv1.ReasonCode_REASON_CODE_DAY_CLOSED, Detail: "level", Change: 0.25},
			Cause:  &demandv1.DemandEvent{EventId: "ev-" + id, Change: &demandv1.DemandEvent_Demand{Demand: &demandv1.Demand{Quantity: 3}}},
		},
		Components: []scoring.Component{{Name: "level", Value: mean, Detail: "d"}},
	}
}

func TestForecastLogRoundTrip(t *testing.T) {
	ctx := context.Background()
	log, conn := openLog(t)
	if _, err := log.Latest(ctx, "A|online"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("empty log: err %v, want ErrNotFound", err)
	}
	day := time.Date(2011, 3, 4, 10, 30, 0, 500, time.UTC)
	older, newer := result("f1", day, 3), result("f2", day.Add(time.Hour), 4)
	item := &scoring.Result{Event: &forecastv1.ForecastEvent{ForecastId: "item", SeriesKey: "A"}}
	for range 2 { // a redelivered batch
		if err := log.Insert(ctx, []*scoring.Result{newer, older, item}); err != nil {
			t.Fatal(err)
		}
	}
	got, err := log.Latest(ctx, "A|online")
	if err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(got.Event, newer.Event) {
		t.Errorf("latest forecast\n got %v\nwant %v", got.Event, newer.Event)
	}
	if len(got.Components) != 1 || got.Components[0] != newer.Components[0] {
		t.Errorf("components %v, want %v", got.Components, newer.Components)
	}
	var rows uint64
	if err := conn.QueryRow(ctx, "SELECT count() FROM forecast_log FINAL").Scan(&rows); err != nil {
		t.Fatal(err)
	}
	if rows != 2 {
		t.Errorf("%d rows after a redelivery, want 2 (item events are not logged)", rows)
	}
}

// Concurrent inserts (one per partition handler) all become durable, each
// readable by Latest.
func TestForecastLogConcurrentInserts(t *testing.T) {
	ctx := context.Background()
	log, conn := openLog(t)
	day := time.Date(2011, 3, 4, 10, 30, 0, 0, time.UTC)
	const callers, rounds, perCall = 6, 5, 7
	var wg sync.WaitGroup
	errs := make(chan error, callers*rounds)
	for c := range callers {
		wg.Go(func() {
			for r := range rounds {
				batch := make([]*scoring.Result, perCall)
				for i := range batch {
					batch[i] = fullResult(fmt.Sprintf("c%d-r%d-%d", c, r, i), day.Add(time.Duration(r)*time.Hour))
				}
				if err := log.Insert(ctx, batch); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	var rows uint64
	if err := conn.QueryRow(ctx, "SELECT count() FROM forecast_log FINAL").Scan(&rows); err != nil {
		t.Fatal(err)
	}
	if rows != callers*rounds*perCall {
		t.Errorf("%d rows, want %d", rows, callers*rounds*perCall)
	}
	for c := range callers {
		want := fullResult(fmt.Sprintf("c%d-r%d-%d", c, rounds-1, 0), day.Add(time.Duration(rounds-1)*time.Hour))
		got, err := log.Latest(ctx, want.Event.GetSeriesKey())
		if err != nil {
			t.Fatal(err)
		}
		if !proto.Equal(got.Event, want.Event) {
			t.Errorf("latest of %s\n got %v\nwant %v", want.Event.GetSeriesKey(), got.Event, want.Event)
		}
	}
}

// Inserts on a closed connection fail, each of the concurrent callers.
func TestForecastLogInsertFailsWhenDown(t *testing.T) {
	ctx := context.Background()
	conn, err := chx.Open(ctx, testenv.ClickHouse(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := Migrate(ctx, conn); err != nil {
		t.Fatal(err)
	}
	log := NewForecastLog(conn)
	conn.Close()
	var wg sync.WaitGroup
	var failed atomic.Int32
	for c := range 4 {
		wg.Go(func() {
			if err := log.Insert(ctx, []*scoring.Result{fullResult(fmt.Sprint("down", c), time.Now())}); err != nil {
				failed.Add(1)
			}
		})
	}
	wg.Wait()
	if failed.Load() != 4 {
		t.Errorf("%d of 4 inserts failed on a closed connection, want all", failed.Load())
	}
}
