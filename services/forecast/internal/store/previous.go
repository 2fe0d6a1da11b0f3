package store

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"google.golang.org/protobuf/proto"

	forecastv1 "github.com/stockcast/stockcast/proto/stockcast/forecast/v1"
	"github.com/stockcast/stockcast/services/forecast/internal/scoring"
)

// Source is where a forecast's snapshot was read: its features.v1
// partition and offset. A series' snapshots come from one partition, in
// offset order, so the offsets order its forecasts as the scorer made them.
type Source struct {
	Partition int32
	Offset    int64
}

// PreviousRef asks for the forecast the scorer held of a series before
// its snapshot at At (scoring.Batch.Cold's).
type PreviousRef struct {
	SeriesKey string
	At        Source
}

// PreviousChunk bounds the series one Previous query asks for (the keys
// are in the query's text: ClickHouse's max_query_size is 256 KiB).
const PreviousChunk = 2000

// previousQuery reads, for each series asked for, the forecast logged
// from its latest snapshot before the ones being scored with the latest
// start day: what the scorer held in memory, which a forecast of an
// earlier start day (a late event) does not replace (scoring.Batch.Score).
// Rows logged again for one snapshot (a batch retried after a model swap)
// go by issued_at_ns, the last one being the published one. Rows from the
// snapshots being scored and later ones (logged by a batch whose offsets
// did not commit: not published) are left out by the offset (the %s: one
// "source_partition = ? AND source_offset < ?" per partition), and so are
// rows logged before sources were (source_partition -1; so every row read
// has components_pb). ClickHouse 18.16: LIMIT BY.
const previousQuery = `SELECT series_key, start_day, means, components_pb, global_pb
FROM forecast_log
WHERE series_key IN ? AND (%s)
ORDER BY series_key, start_day DESC, source_offset DESC, issued_at_ns DESC
LIMIT 1 BY series_key`

// Previous returns, by series key, the forecast published from each
// series' latest snapshot before refs' (scoring.Batch.Restore): its start
// day, daily means, components and global part. A series without one is
// left out. refs are the first snapshots of their series in one batch,
// which holds every record of their partitions from the first one asked
// about on: the offsets before the smallest of a partition's refs are
// those of every series of the partition (one condition per partition,
// not one per series: a query with a per-series bound, arrayElement(?,
// indexOf(?, series_key)), took 0.6 s for 256 series on ClickHouse 18.16,
// most of it for the literal arrays). One query per PreviousChunk series.
func (l *ForecastLog) Previous(ctx context.Context, refs []PreviousRef) (map[string]*scoring.Result, error) {
	out := make(map[string]*scoring.Result, len(refs))
	before := map[int32]int64{} // partition -> the smallest offset asked about
	for _, r := range refs {
		if o, ok := before[r.At.Partition]; !ok || r.At.Offset < o {
			before[r.At.Partition] = r.At.Offset
		}
	}
	parts := make([]int32, 0, len(before))
	for p := range before {
		parts = append(parts, p)
	}
	slices.Sort(parts)
	var cond strings.Builder
	bounds := make([]any, 0, 2*len(parts))
	for i, p := range parts {
		if i > 0 {
			cond.WriteString(" OR ")
		}
		cond.WriteString("source_partition = ? AND source_offset < ?")
		bounds = append(bounds, p, before[p])
	}
	query := fmt.Sprintf(previousQuery, cond.String())
	for len(refs) > 0 {
		chunk := refs[:min(len(refs), PreviousChunk)]
		refs = refs[len(chunk):]
		set := clickhouse.GroupSet{Value: make([]any, len(chunk))} // ('k1', 'k2', ...)
		for i, r := range chunk {
			set.Value[i] = r.SeriesKey
		}
		if err := l.previous(ctx, query, append([]any{set}, bounds...), len(chunk), out); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func (l *ForecastLog) previous(ctx context.Context, query string, args []any, n int, out map[string]*scoring.Result) error {
	rows, err := l.conn.Query(ctx, query, args...)
	if err != nil {
		return fmt.Errorf("query the previous forecasts of %d series: %w", n, err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			key, compEnc, globalEnc string
			startDay                time.Time
			means                   []float64
		)
		if err := rows.Scan(&key, &startDay, &means, &compEnc, &globalEnc); err != nil {
			return fmt.Errorf("scan a previous forecast: %w", err)
		}
		ev := &forecastv1.ForecastEvent{SeriesKey: key, StartDay: startDay.Format(time.DateOnly)}
		daily := make([]forecastv1.DailyForecast, len(means))
		ev.Daily = make([]*forecastv1.DailyForecast, len(means))
		for i, m := range means {
			daily[i].Mean = m
			ev.Daily[i] = &daily[i]
		}
		res := &scoring.Result{Event: ev}
		var comps forecastv1.ExplainResponse
		if err := proto.Unmarshal([]byte(compEnc), &comps); err != nil {
			return fmt.Errorf("decode the components of %s's previous forecast: %w", key, err)
		}
		for _, c := range comps.GetComponents() {
			res.Components = append(res.Components, scoring.Component{Name: c.GetName(), Value: c.GetValue(), Detail: c.GetDetail()})
		}
		if globalEnc != "" {
			ev.Global = new(forecastv1.GlobalForecast)
			if err := proto.Unmarshal([]byte(globalEnc), ev.Global); err != nil {
				return fmt.Errorf("decode the global part of %s's previous forecast: %w", key, err)
			}
		}
		out[key] = res
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read the previous forecasts of %d series: %w", n, err)
	}
	return nil
}
