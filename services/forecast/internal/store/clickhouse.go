// Package store keeps the forecast log in ClickHouse.
package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	demandv1 "github.com/stockcast/stockcast/proto/stockcast/demand/v1"
	forecastv1 "github.com/stockcast/stockcast/proto/stockcast/forecast/v1"
	"github.com/stockcast/stockcast/services/forecast/internal/scoring"
)

// ForecastLogTable is the bitemporal forecast log: one row per forecast,
// what was forecast (start_day + the horizon arrays) and when it was known
// (as_of). ReplacingMergeTree makes a redelivered forecast (same
// forecast_id, same as_of) replace itself. The *_ns columns keep the exact
// timestamps (no DateTime64 on ClickHouse 18.16); cause holds the causing
// DemandEvent (protobuf) so a forecast read back is the one published.
const ForecastLogTable = `CREATE TABLE IF NOT EXISTS forecast_log (
	forecast_id String,
	event_id String,
	series_key String,
	sku String,
	location String,
	as_of DateTime,
	as_of_ns Int64,
	issued_at DateTime,
	issued_at_ns Int64,
	start_day Date,
	horizon UInt16,
	means Array(Float64),
	quantile_levels Array(Float64),
	quantiles Array(Array(Float64)),
	lead_times Array(Int32),
	lt_means Array(Float64),
	lt_quantiles Array(Array(Float64)),
	model String,
	model_version String,
	demand_class String,
	reason_code String,
	reason_detail String,
	reason_change Float64,
	component_names Array(String),
	component_values Array(Float64),
	component_details Array(String),
	cause String
) ENGINE = ReplacingMergeTree() PARTITION BY toYYYYMM(start_day) ORDER BY (series_key, as_of, forecast_id)`

const columns = `forecast_id, event_id, series_key, sku, location, as_of, as_of_ns, issued_at, issued_at_ns,
	start_day, horizon, means, quantile_levels, quantiles, lead_times, lt_means, lt_quantiles,
	model, model_version, demand_class, reason_code, reason_detail, reason_change,
	component_names, component_values, component_details, cause`

// ErrNotFound is returned by Latest when the series has no forecast.
var ErrNotFound = errors.New("no forecast")

// ForecastLog writes and reads forecast_log. It is safe for concurrent use
// (the Kafka consumer handles partitions concurrently): each Insert takes
// its own connection from the pool. Grouping concurrent Inserts into one was
// measured and dropped: it serialises the client-side encoding (most of the
// insert's CPU) on one goroutine and was not faster end to end
// (docs/benchmarks.md).
type ForecastLog struct {
	conn driver.Conn
}

// NewForecastLog returns the store; the table must exist (ForecastLogTable).
func NewForecastLog(conn driver.Conn) *ForecastLog { return &ForecastLog{conn: conn} }

// Insert writes the series forecasts of a batch in one insert (forecasts
// without daily values, for item events, are not logged).
func (l *ForecastLog) Insert(ctx context.Context, results []*scoring.Result) error {
	var rows []*scoring.Result
	for _, r := range results {
		if len(r.Event.GetDaily()) > 0 {
			rows = append(rows, r)
		}
	}
	if len(rows) == 0 {
		return nil
	}
	batch, err := l.conn.PrepareBatch(ctx, "INSERT INTO forecast_log ("+columns+")")
	if err != nil {
		return fmt.Errorf("prepare forecast_log insert: %w", err)
	}
	defer func() { _ = batch.Abort() }()
	for _, r := range rows {
		if err := batch.Append(rowValues(r)...); err != nil {
			return fmt.Errorf("append forecast %s: %w", r.Event.GetForecastId(), err)
		}
	}
	if err := batch.Send(); err != nil {
		return fmt.Errorf("insert %d forecasts into forecast_log: %w", len(rows), err)
	}
	return nil
}

func rowValues(r *scoring.Result) []any {
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
	cause, _ := proto.Marshal(ev.GetCause()) // a message just decoded always encodes
	asOf, issued := ev.GetAsOf().AsTime(), ev.GetIssuedAt().AsTime()
	return []any{
		ev.GetForecastId(), ev.GetEventId(), ev.GetSeriesKey(), ev.GetSku(), ev.GetLocation(),
		asOf, asOf.UnixNano(), issued, issued.UnixNano(),
		startDay, uint16(len(means)), means, nonNil(ev.GetQuantileLevels()), quantiles, leadTimes, ltMeans, ltQuantiles,
		ev.GetModel(), ev.GetModelVersion(), ev.GetDemandClass(),
		ev.GetReason().GetCode().String(), ev.GetReason().GetDetail(), ev.GetReason().GetChange(),
		names, values, details, string(cause),
	}
}

func nonNil(v []float64) []float64 {
	if v == nil {
		return []float64{}
	}
	return v
}

// Latest returns the latest forecast of a series (largest as_of; FINAL
// drops replaced duplicates), or ErrNotFound.
func (l *ForecastLog) Latest(ctx context.Context, seriesKey string) (*scoring.Result, error) {
	rows, err := l.conn.Query(ctx, "SELECT "+columns+" FROM forecast_log FINAL WHERE series_key = ? "+
		"ORDER BY as_of DESC, as_of_ns DESC, issued_at_ns DESC LIMIT 1", seriesKey)
	if err != nil {
		return nil, fmt.Errorf("query latest forecast of %s: %w", seriesKey, err)
	}
	defer rows.Close()
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("read latest forecast of %s: %w", seriesKey, err)
		}
		return nil, ErrNotFound
	}
	var (
		ev                              forecastv1.ForecastEvent
		asOf, issued, startDay          time.Time
		asOfNS, issuedNS                int64
		horizon                         uint16
		means, levels, ltMeans, values  []float64
		quantiles, ltQuantiles          [][]float64
		leadTimes                       []int32
		reasonCode, reasonDetail, cause string
		reasonChange                    float64
		names, details                  []string
	)
	if err := rows.Scan(&ev.ForecastId, &ev.EventId, &ev.SeriesKey, &ev.Sku, &ev.Location,
		&asOf, &asOfNS, &issued, &issuedNS, &startDay, &horizon, &means, &levels, &quantiles, &leadTimes, &ltMeans, &ltQuantiles,
		&ev.Model, &ev.ModelVersion, &ev.DemandClass, &reasonCode, &reasonDetail, &reasonChange,
		&names, &values, &details, &cause); err != nil {
		return nil, fmt.Errorf("scan latest forecast of %s: %w", seriesKey, err)
	}
	ev.AsOf = timestamppb.New(time.Unix(0, asOfNS).UTC())
	ev.IssuedAt = timestamppb.New(time.Unix(0, issuedNS).UTC())
	ev.StartDay = startDay.Format(time.DateOnly)
	ev.QuantileLevels = levels
	for i, m := range means {
		ev.Daily = append(ev.Daily, &forecastv1.DailyForecast{Day: startDay.AddDate(0, 0, i).Format(time.DateOnly), Mean: m, Quantiles: quantiles[i]})
	}
	for i, l := range leadTimes {
		ev.LeadTimeDemand = append(ev.LeadTimeDemand, &forecastv1.LeadTimeDemand{LeadTimeDays: l, Mean: ltMeans[i], Quantiles: ltQuantiles[i]})
	}
	ev.Reason = &forecastv1.ForecastReason{
		Code:   forecastv1.ReasonCode(forecastv1.ReasonCode_value[reasonCode]),
		Detail: reasonDetail,
		Change: reasonChange,
	}
	if cause != "" {
		var ce demandv1.DemandEvent
		if err := proto.Unmarshal([]byte(cause), &ce); err != nil {
			return nil, fmt.Errorf("decode cause of forecast %s: %w", ev.ForecastId, err)
		}
		ev.Cause = &ce
	}
	res := &scoring.Result{Event: &ev}
	for i := range names {
		res.Components = append(res.Components, scoring.Component{Name: names[i], Value: values[i], Detail: details[i]})
	}
	return res, nil
}
