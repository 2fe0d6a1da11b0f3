package store

import (
	"context"
	"encoding/binary"
	"math"
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

// appendFloats appends n values of q (NaN past its end) as little-endian
// float64 bits: version 2's quantiles_le and lt_quantiles_le.
func appendFloats(b []byte, q []float64, n int) []byte {
	for k := range n {
		v := math.NaN()
		if k < len(q) {
			v = q[k]
		}
		b = binary.LittleEndian.AppendUint64(b, math.Float64bits(v))
	}
	return b
}

// insertV2 writes results as version 2 of the log did: the quantiles as
// float64 bytes (quantiles_le, lt_quantiles_le). It is the baseline of
// BenchmarkInsert and writes the version 2 rows of TestMigrateKeepsOldRows.
func insertV2(ctx context.Context, conn driver.Conn, results []*scoring.Result) error {
	batch, err := conn.PrepareBatch(ctx, `INSERT INTO forecast_log (forecast_id, event_id, series_key, sku, location, as_of, as_of_ns,
		issued_at, issued_at_ns, start_day, horizon, means, quantile_levels, lead_times, lt_means,
		model, model_version, demand_class, reason_code, reason_detail, reason_change,
		cause, quantiles_le, lt_quantiles_le, components_pb, global_pb, reason_pb)`)
	if err != nil {
		return err
	}
	defer func() { _ = batch.Abort() }()
	for _, r := range results {
		v := rowValues(r) // version 3's row, with the quantiles as version 2 wrote them
		ev := r.Event
		levels := len(ev.GetQuantileLevels())
		var q, lq []byte
		for _, d := range ev.GetDaily() {
			q = appendFloats(q, d.GetQuantiles(), levels)
		}
		for _, lt := range ev.GetLeadTimeDemand() {
			lq = appendFloats(lq, lt.GetQuantiles(), levels)
		}
		row := append(append(v[:22:22], string(q), string(lq)), v[23:]...)
		if err := batch.Append(row...); err != nil {
			return err
		}
	}
	return batch.Send()
}

// TestMigrateKeepsOldRows writes a row into a log of version 1 (arrays),
// migrates it in place (twice), writes a row as version 2 did (float64
// bytes), and reads the version 1 row back from its arrays, the version 2
// row from its bytes and a new row, with a global part and reason factors,
// from the packed quantiles and the encoded columns; the new row leaves the
// older columns empty.
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

	v2 := fullResult("f3", day)
	v2.Event.SeriesKey = "V2|online"
	v2.Event.Daily[3].Quantiles[2] = 2.5 // fractions and negatives read back too
	v2.Event.LeadTimeDemand[1].Quantiles[0] = -1
	if err := insertV2(ctx, conn, []*scoring.Result{v2}); err != nil {
		t.Fatal(err)
	}
	if got, err = log.Latest(ctx, "V2|online"); err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(got.Event, v2.Event) || len(got.Components) != 2 || got.Components[1] != v2.Components[1] {
		t.Errorf("version 2 row\n got %v %v\nwant %v %v", got.Event, got.Components, v2.Event, v2.Components)
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
	var emptyArrays, v2Bytes, packedBytes uint64
	if err := conn.QueryRow(ctx, "SELECT length(quantiles) + length(lt_quantiles) + length(component_names), length(quantiles_le) + length(lt_quantiles_le), length(quantiles_pk) FROM forecast_log WHERE series_key = 'NEW|online'").
		Scan(&emptyArrays, &v2Bytes, &packedBytes); err != nil {
		t.Fatal(err)
	}
	// fullResult's quantiles are whole numbers below 64: one byte each
	if emptyArrays != 0 || v2Bytes != 0 || packedBytes != (28+9)*14 {
		t.Errorf("new row: %d array values, %d version 2 bytes, %d packed bytes; want 0, 0 and %d", emptyArrays, v2Bytes, packedBytes, (28+9)*14)
	}
}

// TestPackedQuantiles: every float64 reads back bit for bit, whole numbers
// in [0, 2^62) as varints (one byte below 64), the rest as 9 bytes; short
// rows are padded with NaN; a truncated, overlong or corrupt encoding is an
// error.
func TestPackedQuantiles(t *testing.T) {
	values := []float64{0, 1, 63, 64, 127, 128, 1 << 53, 1<<62 - 512, 1 << 62, 1e300, 0.5, 2.5, -1, math.Copysign(0, -1),
		math.NaN(), math.Float64frombits(0x7ff8000000000bad), math.Inf(1), math.Inf(-1), 5e-324, math.MaxFloat64}
	wantSizes := []int{1, 1, 1, 2, 2, 2, 8, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9}
	for i, v := range values {
		b := appendPacked(nil, []float64{v}, 1)
		if len(b) != wantSizes[i] {
			t.Errorf("%v (%#x): %d bytes, want %d", v, math.Float64bits(v), len(b), wantSizes[i])
		}
		got, _, err := DecodeQuantiles(string(b), 1, 1, 0)
		if err != nil || math.Float64bits(got[0][0]) != math.Float64bits(v) {
			t.Errorf("%v (%#x): read back %v, %v", v, math.Float64bits(v), got, err)
		}
	}
	// 2 daily rows of 3 (the first short: NaN-padded) and 1 lead-time row
	b := appendPacked(nil, []float64{1.5, 7}, 3)
	b = appendPacked(b, []float64{0, 200, -3}, 3)
	b = appendPacked(b, []float64{9, 10, 11}, 3)
	daily, lt, err := DecodeQuantiles(string(b), 3, 2, 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(daily) != 2 || len(lt) != 1 || daily[0][0] != 1.5 || daily[0][1] != 7 || !math.IsNaN(daily[0][2]) ||
		daily[1][1] != 200 || daily[1][2] != -3 || lt[0][0] != 9 || lt[0][2] != 11 {
		t.Errorf("decoded %v %v", daily, lt)
	}
	for _, bad := range []struct {
		name string
		b    string
	}{
		{"truncated float", string(b[:3])},
		{"truncated varint", string(appendPacked(nil, []float64{200}, 1)[:1])},
		{"trailing bytes", string(b) + "\x00"},
		{"odd varint other than 1", "\x03" + string(b[1:])},
	} {
		if _, _, err := DecodeQuantiles(bad.b, 3, 2, 1); err == nil {
			t.Errorf("%s: decoded", bad.name)
		}
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

// TestNewLogStoresOnlyUsedColumns: a new log keeps the columns only older
// rows fill as ALIAS columns (no storage), an existing log keeps them
// stored, and both read back the same forecast.
func TestNewLogStoresOnlyUsedColumns(t *testing.T) {
	ctx := context.Background()
	legacy := []string{"quantiles", "lt_quantiles", "component_names", "component_values", "component_details", "quantiles_le", "lt_quantiles_le"}
	for _, migrated := range []bool{false, true} {
		conn, err := chx.Open(ctx, testenv.ClickHouse(t))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		if migrated {
			if err := chx.Migrate(ctx, conn, ForecastLogTable); err != nil {
				t.Fatal(err)
			}
		}
		if err := Migrate(ctx, conn); err != nil {
			t.Fatal(err)
		}
		var aliases, stored uint64
		if err := conn.QueryRow(ctx, "SELECT countIf(default_kind = 'ALIAS'), countIf(default_kind != 'ALIAS') FROM system.columns "+
			"WHERE database = currentDatabase() AND table = 'forecast_log' AND has(?, name)", legacy).Scan(&aliases, &stored); err != nil {
			t.Fatal(err)
		}
		if want := uint64(len(legacy)); migrated && (aliases != 0 || stored != want) || !migrated && (aliases != want || stored != 0) {
			t.Errorf("migrated=%v: %d ALIAS and %d stored of the %d columns only older rows fill", migrated, aliases, stored, want)
		}
		r := fullResult("f1", time.Date(2011, 3, 4, 10, 30, 0, 0, time.UTC))
		log := NewForecastLog(conn)
		if err := log.Insert(ctx, []*scoring.Result{r}); err != nil {
			t.Fatal(err)
		}
		got, err := log.Latest(ctx, r.Event.GetSeriesKey())
		if err != nil {
			t.Fatal(err)
		}
		if !proto.Equal(got.Event, r.Event) || len(got.Components) != len(r.Components) {
			t.Errorf("migrated=%v: read back\n got %v\nwant %v", migrated, got.Event, r.Event)
		}
	}
}
