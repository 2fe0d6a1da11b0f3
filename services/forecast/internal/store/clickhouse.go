// Package store keeps the forecast log in ClickHouse.
package store

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	demandv1 "github.com/stockcast/stockcast/proto/stockcast/demand/v1"
	forecastv1 "github.com/stockcast/stockcast/proto/stockcast/forecast/v1"
	"github.com/stockcast/stockcast/services/forecast/internal/scoring"
)

// ForecastLogTable is the bitemporal forecast log as version 1 created
// it: one row per forecast, what was forecast (start_day + the horizon
// arrays) and when it was known (as_of). ReplacingMergeTree makes a
// redelivered forecast (same forecast_id, same as_of) replace itself. The
// *_ns columns keep the exact timestamps (no DateTime64 on ClickHouse
// 18.16); cause holds the causing DemandEvent (protobuf) so a forecast
// read back is the one published. Migrate creates a new log as
// forecastLogTable and migrates a log of this shape in place.
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

// forecastLogTable is a new log (version 3): the columns of
// ForecastLogTable and encodedColumns, but the ones only older rows fill
// (version 1's arrays, version 2's float64 bytes) are ALIAS columns of
// empty values, which take no storage. ClickHouse's cost of an insert is
// mostly per part and per column file, not per row: 300-row inserts into
// this table cost it 0.53x the CPU of inserts into a table that stores
// the unused columns too (BenchmarkInsertServerCPU, docs/load.md).
const forecastLogTable = `CREATE TABLE IF NOT EXISTS forecast_log (
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
	quantiles Array(Array(Float64)) ALIAS arrayResize([emptyArrayFloat64()], 0),
	lead_times Array(Int32),
	lt_means Array(Float64),
	lt_quantiles Array(Array(Float64)) ALIAS arrayResize([emptyArrayFloat64()], 0),
	model String,
	model_version String,
	demand_class String,
	reason_code String,
	reason_detail String,
	reason_change Float64,
	component_names Array(String) ALIAS emptyArrayString(),
	component_values Array(Float64) ALIAS emptyArrayFloat64(),
	component_details Array(String) ALIAS emptyArrayString(),
	cause String,
	quantiles_le String ALIAS '',
	lt_quantiles_le String ALIAS '',
	components_pb String,
	global_pb String,
	reason_pb String,
	quantiles_pk String,
	source_partition Int32 DEFAULT -1,
	source_offset Int64 DEFAULT -1
) ENGINE = ReplacingMergeTree() PARTITION BY toYYYYMM(start_day) ORDER BY (series_key, as_of, forecast_id)`

// Encoded columns (version 2 of the log): the daily and lead-time
// quantiles as little-endian float64 bytes, row-major (day or lead time,
// then level), and the components and the global model's part as
// protobuf. One String per forecast instead of ~520 floats through
// clickhouse-go's per-value array encoding (docs/benchmarks.md). Rows
// written before keep their arrays and read back as before; rows written
// now leave the old array columns empty. means, lt_means and the rest stay
// columns for SQL.
//
// Version 3 writes the daily and then the lead-time quantiles packed into
// one String, quantiles_pk (appendPacked): the quantiles of a count
// distribution are whole numbers, mostly below 64, so a value takes one
// byte instead of eight, and the row about 2.6 KB instead of 6.2 KB
// (docs/load.md). Rows of version 2 keep quantiles_le and lt_quantiles_le
// and read back from them.
var encodedColumns = []struct{ name, typ string }{
	{"quantiles_le", "String"},
	{"lt_quantiles_le", "String"},
	{"components_pb", "String"},
	{"global_pb", "String"},
	{"reason_pb", "String"},
	{"quantiles_pk", "String"},
	{"source_partition", "Int32 DEFAULT -1"},
	{"source_offset", "Int64 DEFAULT -1"},
}

// Migrate creates forecast_log (forecastLogTable) or adds the encoded
// columns an existing log lacks: a log created by an earlier version is
// migrated in place, its rows kept (18.16 has no ADD COLUMN IF NOT EXISTS,
// so the columns are looked up in system.columns). Safe to run again, and
// by two processes at once (a column added meanwhile is not an error).
func Migrate(ctx context.Context, conn driver.Conn) error {
	if err := conn.Exec(ctx, forecastLogTable); err != nil {
		return fmt.Errorf("create forecast_log: %w", err)
	}
	for _, c := range encodedColumns {
		var n uint64
		if err := conn.QueryRow(ctx, "SELECT count() FROM system.columns WHERE database = currentDatabase() AND table = 'forecast_log' AND name = ?",
			c.name).Scan(&n); err != nil {
			return fmt.Errorf("read forecast_log columns: %w", err)
		}
		if n > 0 {
			continue
		}
		if err := conn.Exec(ctx, "ALTER TABLE forecast_log ADD COLUMN "+c.name+" "+c.typ); err != nil {
			if err2 := conn.QueryRow(ctx, "SELECT count() FROM system.columns WHERE database = currentDatabase() AND table = 'forecast_log' AND name = ?",
				c.name).Scan(&n); err2 == nil && n > 0 {
				continue // added by another process meanwhile
			}
			return fmt.Errorf("add column %s to forecast_log: %w", c.name, err)
		}
	}
	return nil
}

const columns = `forecast_id, event_id, series_key, sku, location, as_of, as_of_ns, issued_at, issued_at_ns,
	start_day, horizon, means, quantile_levels, lead_times, lt_means,
	model, model_version, demand_class, reason_code, reason_detail, reason_change,
	cause, quantiles_pk, components_pb, global_pb, reason_pb`

// insertColumns adds where the forecast's snapshot was read (Source).
const insertColumns = columns + `, source_partition, source_offset`

// readColumns adds version 2's quantile columns and version 1's arrays,
// read when the newer columns are empty.
const readColumns = columns + `, quantiles_le, lt_quantiles_le, quantiles, lt_quantiles, component_names, component_values, component_details`

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

// NewForecastLog returns the store; the table must exist (Migrate).
func NewForecastLog(conn driver.Conn) *ForecastLog { return &ForecastLog{conn: conn} }

// Insert writes the series forecasts of a batch in one insert (forecasts
// without daily values, for item events, are not logged), without their
// sources (InsertFrom).
func (l *ForecastLog) Insert(ctx context.Context, results []*scoring.Result) error {
	return l.InsertFrom(ctx, results, nil)
}

// InsertFrom is Insert that records where each forecast's snapshot was
// read (sources[i] of results[i]; none: nil), which Previous orders the
// forecasts of a series by.
func (l *ForecastLog) InsertFrom(ctx context.Context, results []*scoring.Result, sources []Source) error {
	var rows []*scoring.Result
	var from []Source
	for i, r := range results {
		if len(r.Event.GetDaily()) > 0 {
			rows = append(rows, r)
			src := Source{Partition: -1, Offset: -1}
			if sources != nil {
				src = sources[i]
			}
			from = append(from, src)
		}
	}
	if len(rows) == 0 {
		return nil
	}
	batch, err := l.conn.PrepareBatch(ctx, "INSERT INTO forecast_log ("+insertColumns+")")
	if err != nil {
		return fmt.Errorf("prepare forecast_log insert: %w", err)
	}
	defer func() { _ = batch.Abort() }()
	for i, r := range rows {
		if err := batch.Append(append(rowValues(r), from[i].Partition, from[i].Offset)...); err != nil {
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
	levels := len(ev.GetQuantileLevels())
	means := make([]float64, len(ev.GetDaily()))
	// daily, then lead-time quantiles; mostly one byte each
	quantiles := make([]byte, 0, 2*levels*(len(ev.GetDaily())+len(ev.GetLeadTimeDemand())))
	for i, d := range ev.GetDaily() {
		means[i] = d.GetMean()
		quantiles = appendPacked(quantiles, d.GetQuantiles(), levels)
	}
	leadTimes := make([]int32, len(ev.GetLeadTimeDemand()))
	ltMeans := make([]float64, len(ev.GetLeadTimeDemand()))
	for i, lt := range ev.GetLeadTimeDemand() {
		leadTimes[i], ltMeans[i] = lt.GetLeadTimeDays(), lt.GetMean()
		quantiles = appendPacked(quantiles, lt.GetQuantiles(), levels)
	}
	comps := &forecastv1.ExplainResponse{Components: make([]*forecastv1.Component, len(r.Components))}
	for i, c := range r.Components {
		comps.Components[i] = &forecastv1.Component{Name: c.Name, Value: c.Value, Detail: c.Detail}
	}
	// messages just built or decoded always encode
	components, _ := proto.Marshal(comps)
	cause, _ := proto.Marshal(ev.GetCause())
	var global []byte
	if ev.GetGlobal() != nil {
		global, _ = proto.Marshal(ev.GetGlobal())
	}
	reason, _ := proto.Marshal(ev.GetReason())
	asOf, issued := ev.GetAsOf().AsTime(), ev.GetIssuedAt().AsTime()
	return []any{
		ev.GetForecastId(), ev.GetEventId(), ev.GetSeriesKey(), ev.GetSku(), ev.GetLocation(),
		asOf, asOf.UnixNano(), issued, issued.UnixNano(),
		startDay, uint16(len(means)), means, nonNil(ev.GetQuantileLevels()), leadTimes, ltMeans,
		ev.GetModel(), ev.GetModelVersion(), ev.GetDemandClass(),
		ev.GetReason().GetCode().String(), ev.GetReason().GetDetail(), ev.GetReason().GetChange(),
		string(cause), string(quantiles), string(components), string(global), string(reason),
	}
}

// maxPackedWhole bounds the whole numbers appendPacked writes as varints.
const maxPackedWhole = 1 << 62

// appendPacked appends n values of q (NaN past its end), each as a
// uvarint: a whole number k in [0, 2^62) as 2k (one byte below 64), any
// other value (fractions, negatives, -0, NaN, infinities) as 1 followed by
// its float64 bits, little-endian. Every value reads back bit for bit
// (DecodeQuantiles).
func appendPacked(b []byte, q []float64, n int) []byte {
	for k := range n {
		v := math.NaN()
		if k < len(q) {
			v = q[k]
		}
		if v >= 0 && v < maxPackedWhole && v == math.Trunc(v) && !math.Signbit(v) {
			b = binary.AppendUvarint(b, uint64(v)<<1)
			continue
		}
		b = append(b, 1)
		b = binary.LittleEndian.AppendUint64(b, math.Float64bits(v))
	}
	return b
}

// DecodeQuantiles reads a row's quantiles_pk: days rows of levels values
// (the daily quantiles), then leadTimes rows (the lead-time quantiles),
// and nothing after them.
func DecodeQuantiles(b string, levels, days, leadTimes int) (daily, leadTime [][]float64, err error) {
	n, want, wantLT := levels, days, leadTimes
	rows := make([][]float64, want+wantLT)
	off := 0
	for r := range rows {
		rows[r] = make([]float64, n)
		for k := range n {
			u, size := uvarint(b[off:])
			if size <= 0 {
				return nil, nil, fmt.Errorf("packed quantiles: bad varint at byte %d of %d", off, len(b))
			}
			off += size
			if u&1 == 0 {
				rows[r][k] = float64(u >> 1)
				continue
			}
			if u != 1 || off+8 > len(b) {
				return nil, nil, fmt.Errorf("packed quantiles: bad float at byte %d of %d", off, len(b))
			}
			rows[r][k] = math.Float64frombits(binary.LittleEndian.Uint64([]byte(b[off : off+8])))
			off += 8
		}
	}
	if off != len(b) {
		return nil, nil, fmt.Errorf("packed quantiles: %d bytes, %d read for %d x %d values", len(b), off, want+wantLT, n)
	}
	return rows[:want], rows[want:], nil
}

// uvarint is binary.Uvarint of a string, without copying it.
func uvarint(s string) (uint64, int) {
	var x uint64
	var shift uint
	for i := 0; i < len(s) && i < binary.MaxVarintLen64; i++ {
		c := s[i]
		if c < 0x80 {
			if i == binary.MaxVarintLen64-1 && c > 1 {
				return 0, -(i + 1) // overflow
			}
			return x | uint64(c)<<shift, i + 1
		}
		x |= uint64(c&0x7f) << shift
		shift += 7
	}
	return 0, 0
}

// decodeFloats splits version 2's quantiles_le or lt_quantiles_le (little-
// endian float64 bits) into rows of n values; want is the number of rows.
func decodeFloats(b string, n, want int) ([][]float64, error) {
	if len(b) != 8*n*want {
		return nil, fmt.Errorf("encoded quantiles: %d bytes, want %d x %d float64", len(b), want, n)
	}
	out := make([][]float64, want)
	for r := range out {
		out[r] = make([]float64, n)
		for k := range n {
			off := 8 * (r*n + k)
			out[r][k] = math.Float64frombits(binary.LittleEndian.Uint64([]byte(b[off : off+8])))
		}
	}
	return out, nil
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
	rows, err := l.conn.Query(ctx, "SELECT "+readColumns+" FROM forecast_log FINAL WHERE series_key = ? "+
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
		qPacked, compEnc, globalEnc     string
		qEnc, ltEnc, reasonEnc          string
	)
	if err := rows.Scan(&ev.ForecastId, &ev.EventId, &ev.SeriesKey, &ev.Sku, &ev.Location,
		&asOf, &asOfNS, &issued, &issuedNS, &startDay, &horizon, &means, &levels, &leadTimes, &ltMeans,
		&ev.Model, &ev.ModelVersion, &ev.DemandClass, &reasonCode, &reasonDetail, &reasonChange,
		&cause, &qPacked, &compEnc, &globalEnc, &reasonEnc, &qEnc, &ltEnc,
		&quantiles, &ltQuantiles, &names, &values, &details); err != nil {
		return nil, fmt.Errorf("scan latest forecast of %s: %w", seriesKey, err)
	}
	// a version 3 row: the packed quantiles and the encoded columns; a
	// version 2 row: the float64 bytes and the encoded columns; a version
	// 1 row: the arrays
	if len(quantiles) == 0 && len(means) > 0 {
		var q, lq [][]float64
		var err error
		if qPacked != "" {
			if q, lq, err = DecodeQuantiles(qPacked, len(levels), len(means), len(leadTimes)); err != nil {
				return nil, fmt.Errorf("decode forecast %s: %w", ev.ForecastId, err)
			}
		} else {
			if q, err = decodeFloats(qEnc, len(levels), len(means)); err != nil {
				return nil, fmt.Errorf("decode forecast %s: %w", ev.ForecastId, err)
			}
			if lq, err = decodeFloats(ltEnc, len(levels), len(leadTimes)); err != nil {
				return nil, fmt.Errorf("decode forecast %s lead times: %w", ev.ForecastId, err)
			}
		}
		quantiles, ltQuantiles = q, lq
		var comps forecastv1.ExplainResponse
		if err := proto.Unmarshal([]byte(compEnc), &comps); err != nil {
			return nil, fmt.Errorf("decode components of forecast %s: %w", ev.ForecastId, err)
		}
		names, values, details = nil, nil, nil
		for _, c := range comps.GetComponents() {
			names, values, details = append(names, c.GetName()), append(values, c.GetValue()), append(details, c.GetDetail())
		}
		if globalEnc != "" {
			var g forecastv1.GlobalForecast
			if err := proto.Unmarshal([]byte(globalEnc), &g); err != nil {
				return nil, fmt.Errorf("decode global part of forecast %s: %w", ev.ForecastId, err)
			}
			ev.Global = &g
		}
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
	if reasonEnc != "" { // version 2: the whole reason, factors included
		if err := proto.Unmarshal([]byte(reasonEnc), ev.Reason); err != nil {
			return nil, fmt.Errorf("decode reason of forecast %s: %w", ev.ForecastId, err)
		}
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
