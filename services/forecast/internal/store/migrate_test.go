package store

import (
	"context"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"google.golang.org/protobuf/proto"

	"github.com/stockcast/stockcast/pkg/chx"
	"github.com/stockcast/stockcast/pkg/testenv"
	forecastv1 "github.com/stockcast/stockcast/proto/stockcast/forecast/v1"
	"github.com/stockcast/stockcast/services/forecast/internal/scoring"
)

// insertV1 writes results as the previous version of the service did: the
// quantiles and components as arrays. It is the baseline of
// BenchmarkInsert and writes the old rows of TestMigrateKeepsOldRows.
func insertV1(ctx context.Context, conn driver.Conn, results []*scoring.Result) error {
	batch, err := conn.PrepareBatch(ctx, `INSERT INTO forecast_log (forecast_id, event_id, series_key, sku, location, as_of, as_of_ns,
		issued_at, issued_at_ns, start_day, horizon, means, quantile_levels, quantiles, lead_times, lt_means, lt_quantiles,
		model, model_version, demand_class, reason_code, reason_detail, reason_change,
		component_names, component_values, component_details, cause)`)
	if err != nil {
		return err
	}
	defer func() { _ = batch.Abort() }()
	for _, r := range results {
		ev := r.Event
		startDay, _ := time.Parse(time.DateOnly, ev.GetStartDay())
		means := make([]float64, len(ev.GetDaily()))
		quantiles := make([][]float64, len(ev.GetDaily()))
		for i, d := range ev.GetDaily() {
			means[i], quantiles[i] = d.GetMean(), nonNil(d.GetQuantiles())
		}
		leadTimes := make([]int32, len(ev.GetLeadTimeDemand()))
		ltMeans := make([]float64, len(ev.GetLeadTimeDemand()))
		ltQuantiles := make([][]float64, len(ev.GetLeadTimeDemand()))
		for i, lt := range ev.GetLeadTimeDemand() {
			leadTimes[i], ltMeans[i], ltQuantiles[i] = lt.GetLeadTimeDays(), lt.GetMean(), nonNil(lt.GetQuantiles())
		}
		names := make([]string, len(r.Components))
		values := make([]float64, len(r.Components))
		details := make([]string, len(r.Components))
		for i, c := range r.Components {
			names[i], values[i], details[i] = c.Name, c.Value, c.Detail
		}
		cause, _ := proto.Marshal(ev.GetCause())
		asOf, issued := ev.GetAsOf().AsTime(), ev.GetIssuedAt().AsTime()
		if err := batch.Append(ev.GetForecastId(), ev.GetEventId(), ev.GetSeriesKey(), ev.GetSku(), ev.GetLocation(),
			asOf, asOf.UnixNano(), issued, issued.UnixNano(),
			startDay, uint16(len(means)), means, nonNil(ev.GetQuantileLevels()), quantiles, leadTimes, ltMeans, ltQuantiles,
			ev.GetModel(), ev.GetModelVersion(), ev.GetDemandClass(),
			ev.GetReason().GetCode().String(), ev.GetReason().GetDetail(), ev.GetReason().GetChange(),
			names, values, details, string(cause)); err != nil {
			return err
		}
	}
	return batch.Send()
}

// TestMigrateKeepsOldRows writes a row into a log of the previous version
// (arrays), migrates it in place (twice), and reads the old row back from
// its arrays and a new row, with a global part and reason factors, from
// the encoded columns; the new row leaves the old array columns empty.
func TestMigrateKeepsOldRows(t *testing.T) {
	ctx := context.Background()
	conn, err := chx.Open(ctx, testenv.ClickHouse(t))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := chx.Migrate(ctx, conn, ForecastLogTable); err != nil { // the previous version's table
		t.Fatal(err)
	}
	day := time.Date(2011, 3, 4, 10, 30, 0, 500, time.UTC)
	old := result("f1", day, 3)
	old.Event.SeriesKey = "OLD|online"
	if err := insertV1(ctx, conn, []*scoring.Result{old}); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := Migrate(ctx, conn); err != nil {
			t.Fatal(err)
		}
	}
	log := NewForecastLog(conn)
	got, err := log.Latest(ctx, "OLD|online")
	if err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(got.Event, old.Event) || len(got.Components) != 1 || got.Components[0] != old.Components[0] {
		t.Errorf("old row\n got %v %v\nwant %v %v", got.Event, got.Components, old.Event, old.Components)
	}

	fresh := fullResult("f2", day)
	fresh.Event.SeriesKey = "NEW|online"
	fresh.Event.Global = &forecastv1.GlobalForecast{Version: "gbt-abc", Weight: 0.5, Means: []float64{1, 2}, Link: "log", Bias: 0.1,
		Attributions: []*forecastv1.Attribution{{Feature: "lag28", Value: 3, Contribution: 0.2, Change: 0.05}}}
	fresh.Event.Reason.Factors = fresh.Event.Global.Attributions
	fresh.Event.Reason.ModelVersion = "gbt-abc"
	if err := log.Insert(ctx, []*scoring.Result{fresh}); err != nil {
		t.Fatal(err)
	}
	got, err = log.Latest(ctx, "NEW|online")
	if err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(got.Event, fresh.Event) || len(got.Components) != 2 || got.Components[1] != fresh.Components[1] {
		t.Errorf("new row\n got %v %v\nwant %v %v", got.Event, got.Components, fresh.Event, fresh.Components)
	}
	var emptyArrays, encodedBytes uint64
	if err := conn.QueryRow(ctx, "SELECT length(quantiles) + length(lt_quantiles) + length(component_names), length(quantiles_le) FROM forecast_log WHERE series_key = 'NEW|online'").
		Scan(&emptyArrays, &encodedBytes); err != nil {
		t.Fatal(err)
	}
	if emptyArrays != 0 || encodedBytes != 28*14*8 {
		t.Errorf("new row: %d array values, %d quantile bytes; want 0 and %d", emptyArrays, encodedBytes, 28*14*8)
	}
}

func TestQuantileEncoding(t *testing.T) {
	b := appendFloats(nil, []float64{1.5, -2}, 3) // padded with NaN
	got, err := decodeFloats(string(appendFloats(b, []float64{7, 8, 9}, 3)), 3, 2)
	if err != nil {
		t.Fatal(err)
	}
	if got[0][0] != 1.5 || got[0][1] != -2 || got[0][2] == got[0][2] || got[1][0] != 7 || got[1][2] != 9 {
		t.Errorf("decoded %v", got)
	}
	if _, err := decodeFloats(string(b[:20]), 3, 1); err == nil {
		t.Error("a truncated encoding decoded")
	}
}
