package consumer

import (
	"context"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"

	"github.com/stockcast/stockcast/pkg/chx"
	"github.com/stockcast/stockcast/pkg/forecasting"
	"github.com/stockcast/stockcast/pkg/testenv"
	"github.com/stockcast/stockcast/pkg/topics"
	forecastv1 "github.com/stockcast/stockcast/proto/stockcast/forecast/v1"
	"github.com/stockcast/stockcast/services/forecast/internal/scoring"
	"github.com/stockcast/stockcast/services/forecast/internal/store"
)

// countingLog is the ClickHouse forecast log, with the series each
// Previous query asked about.
type countingLog struct {
	*store.ForecastLog
	asked [][]string
}

func (l *countingLog) Previous(ctx context.Context, refs []store.PreviousRef) (map[string]*scoring.Result, error) {
	keys := make([]string, len(refs))
	for i, r := range refs {
		keys[i] = r.SeriesKey
	}
	slices.Sort(keys)
	l.asked = append(l.asked, keys)
	return l.ForecastLog.Previous(ctx, refs)
}

// published keeps what the handler produces (forecasts.v1 and the DLQ).
type published struct{ recs []*kgo.Record }

func (p *published) Produce(_ context.Context, recs ...*kgo.Record) error {
	p.recs = append(p.recs, recs...)
	return nil
}

// forecasts decodes the forecasts produced, by event id.
func (p *published) forecasts(t *testing.T) map[string]*forecastv1.ForecastEvent {
	t.Helper()
	out := map[string]*forecastv1.ForecastEvent{}
	for _, r := range p.recs {
		ev := new(forecastv1.ForecastEvent)
		if err := proto.Unmarshal(r.Value, ev); err != nil {
			t.Fatal(err)
		}
		out[ev.GetEventId()] = ev
	}
	return out
}

// TestRestoreQueries counts the forecast_log queries of the restore
// (Log.Previous) exactly: none for a batch of brand-new series (each
// snapshot the first event the feature service applied to its series:
// nothing to restore), none for their next events while in memory, and
// after a restart one for the batch, asking about exactly the series that
// existed before it, not about a new one; a redelivered first event
// (applied false) is asked about too. The restarted forecasts equal the
// ones made with the series in memory, reason included, and the query the
// new series skipped finds nothing for them.
func TestRestoreQueries(t *testing.T) {
	ctx := context.Background()
	conn, err := chx.Open(ctx, testenv.ClickHouse(t))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := store.Migrate(ctx, conn); err != nil {
		t.Fatal(err)
	}
	log := &countingLog{ForecastLog: store.NewForecastLog(conn)}
	cfg := scoring.Config{Horizon: forecasting.DefaultHorizon, QuantileLevels: forecasting.DefaultQuantileLevels(),
		LeadTimes: forecasting.DefaultLeadTimes(), MaxSeries: 100}
	clock := func() time.Time { return time.Unix(1_700_000_000, 0) }
	first := forecasting.Day(19000)
	values := []float64{3, 5, 4}
	hist := histories{}
	var offset int64
	// snapshot makes the record of sku's event on day first+d, the
	// events_applied-th applied to its series (applied false: redelivered)
	snapshot := func(sku string, d int, events int64, applied bool) *kgo.Record {
		key := topics.SeriesKey(sku, "online")
		hist[key] = []scoring.DailyDemand{{Day: first, Quantity: values[0]}} // stored: the first day's demand
		snap := benchSnapshot(key, sku, sku+"-"+string(rune('0'+d)), values, first, first+forecasting.Day(d))
		snap.EventsApplied, snap.Applied = events, applied
		value, err := proto.Marshal(snap)
		if err != nil {
			t.Fatal(err)
		}
		offset++
		return &kgo.Record{Topic: topics.Features, Key: []byte(key), Value: value, Partition: 0, Offset: offset - 1}
	}
	handle := func(h *Handler, recs []*kgo.Record) {
		t.Helper()
		if err := h.Handle(ctx, recs); err != nil {
			t.Fatal(err)
		}
	}
	quiet := slog.New(slog.DiscardHandler)
	old := []string{"A", "B", "C"}

	out := &published{}
	mem := New(scoring.New(cfg, hist, clock), log, out, quiet)
	var news, nexts []*kgo.Record
	for _, sku := range old {
		news = append(news, snapshot(sku, 0, 1, true))
	}
	handle(mem, news)
	if len(log.asked) != 0 {
		t.Fatalf("brand-new series: %d queries %v, want none", len(log.asked), log.asked)
	}
	for _, sku := range old {
		nexts = append(nexts, snapshot(sku, 1, 2, true))
	}
	handle(mem, nexts)
	if len(log.asked) != 0 {
		t.Fatalf("series in memory: %d queries %v, want none", len(log.asked), log.asked)
	}
	if got := mem.Stats(); got.RestoreQueries != 0 || got.RestoreSeries != 0 {
		t.Errorf("stats %+v, want no restore", got)
	}
	// the proof: asked, the log has no forecast before the new series'
	// first snapshots
	refs := make([]store.PreviousRef, len(news))
	for i, r := range news {
		refs[i] = store.PreviousRef{SeriesKey: string(r.Key), At: store.Source{Partition: r.Partition, Offset: r.Offset}}
	}
	if prev, err := log.ForecastLog.Previous(ctx, refs); err != nil || len(prev) != 0 {
		t.Fatalf("previous forecasts of the new series: %d (%v), want none", len(prev), err)
	}

	// a restart before nexts' offsets committed: nexts again (their rows of
	// the first try are in the log, at the batch's offsets or later), with
	// a brand-new series D and a redelivered first event of E
	again := &published{}
	restarted := New(scoring.New(cfg, hist, clock), log, again, quiet)
	handle(restarted, append(slices.Clone(nexts), snapshot("D", 1, 1, true), snapshot("E", 1, 1, false)))
	want := []string{"A|online", "B|online", "C|online", "E|online"}
	if len(log.asked) != 1 || !slices.Equal(log.asked[0], want) {
		t.Fatalf("after a restart: queries %v, want one asking %v", log.asked, want)
	}
	if got := restarted.Stats(); got.RestoreQueries != 1 || got.RestoreSeries != int64(len(want)) {
		t.Errorf("stats %+v, want 1 query of %d series", got, len(want))
	}
	inMemory, afterRestart := out.forecasts(t), again.forecasts(t)
	for _, r := range nexts {
		id := string(r.Key)[:1] + "-1"
		a, b := inMemory[id], afterRestart[id]
		if a == nil || b == nil || !proto.Equal(a, b) {
			t.Errorf("%s: after a restart\n%v\nin memory\n%v", id, b.GetReason(), a.GetReason())
		}
		if a.GetReason().GetCode() == forecastv1.ReasonCode_REASON_CODE_NEW_SERIES {
			t.Errorf("%s: reason %v, want the change from the previous forecast", id, a.GetReason())
		}
	}
}
