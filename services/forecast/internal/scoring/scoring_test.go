package scoring

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/stockcast/stockcast/pkg/forecasting"
	catalogv1 "github.com/stockcast/stockcast/proto/stockcast/catalog/v1"
	demandv1 "github.com/stockcast/stockcast/proto/stockcast/demand/v1"
	featurev1 "github.com/stockcast/stockcast/proto/stockcast/feature/v1"
	forecastv1 "github.com/stockcast/stockcast/proto/stockcast/forecast/v1"
)

// series is a synthetic series: demand on day d is demand[d-start].
type testSeries struct {
	start  forecasting.Day
	demand []float64
}

func (s testSeries) History(_ context.Context, _, _ string) ([]DailyDemand, error) {
	out := make([]DailyDemand, len(s.demand))
	for i, q := range s.demand {
		out[i] = DailyDemand{Day: s.start + forecasting.Day(i), Quantity: q}
	}
	return out, nil
}

// snapshot is the feature service's snapshot at noon of day index i, with
// half of day i's demand seen.
func (s testSeries) snapshot(i int, eventID string) *featurev1.FeatureSnapshot {
	asOf := s.start + forecasting.Day(i)
	recent := make([]float64, 56)
	for j := range recent {
		if k := i - 55 + j; k >= 0 {
			recent[j] = s.demand[k]
		}
	}
	recent[55] = s.demand[i] / 2
	at := asOf.Time().Add(12 * time.Hour)
	return &featurev1.FeatureSnapshot{
		EventId: eventID, OccurredAt: timestamppb.New(at), SeriesKey: "A|online", Sku: "A", Location: "online",
		AsOfDay: asOf.String(), RecentDaily: recent, Applied: true,
		Cause: &demandv1.DemandEvent{EventId: eventID, SeriesKey: "A|online", Day: asOf.String(),
			Change: &demandv1.DemandEvent_Demand{Demand: &demandv1.Demand{Quantity: 1}}},
	}
}

func weekly(n int) []float64 {
	out := make([]float64, n)
	for i := range out {
		out[i] = float64(2 + i%7 + (i*7)%5)
	}
	return out
}

func testConfig(maxSeries int) Config {
	return Config{Horizon: 28, QuantileLevels: forecasting.DefaultQuantileLevels(), LeadTimes: forecasting.DefaultLeadTimes(), MaxSeries: maxSeries}
}

func fixedClock() time.Time { return time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC) }

func score(t *testing.T, sc *Scorer, snap *featurev1.FeatureSnapshot) *Result {
	t.Helper()
	b := sc.Begin()
	res, err := b.Score(context.Background(), snap)
	if err != nil {
		t.Fatalf("score %s: %v", snap.GetEventId(), err)
	}
	b.Commit()
	return res
}

func TestIncrementalEqualsRebuilt(t *testing.T) {
	src := testSeries{start: 19000, demand: weekly(200)}
	warm := New(testConfig(10), src, fixedClock)
	var last *Result
	for i := 100; i < 200; i++ {
		last = score(t, warm, src.snapshot(i, fmt.Sprintf("e%d", i)))
	}
	if st := warm.Stats(); st.Rebuilds != 1 || st.Incremental != 99 {
		t.Fatalf("stats %+v, want 1 rebuild and 99 incremental", st)
	}
	cold := New(testConfig(10), src, fixedClock)
	rebuilt := score(t, cold, src.snapshot(199, "e199"))
	if cold.Stats().Rebuilds != 1 {
		t.Fatal("the cold scorer did not rebuild")
	}
	// Same forecast; only the reason may differ (no previous forecast).
	a, b := proto.Clone(last.Event).(*forecastv1.ForecastEvent), proto.Clone(rebuilt.Event).(*forecastv1.ForecastEvent)
	a.Reason, b.Reason = nil, nil
	if !proto.Equal(a, b) {
		t.Error("incrementally advanced and rebuilt states forecast differently")
	}
}

func TestGapInSnapshotsRebuilds(t *testing.T) {
	src := testSeries{start: 19000, demand: weekly(300)}
	sc := New(testConfig(10), src, fixedClock)
	score(t, sc, src.snapshot(100, "a"))
	score(t, sc, src.snapshot(101, "b"))
	score(t, sc, src.snapshot(200, "c")) // 99 days later: beyond the 56-day window
	if st := sc.Stats(); st.Rebuilds != 2 || st.Incremental != 1 {
		t.Errorf("stats %+v, want 2 rebuilds and 1 incremental", st)
	}
}

func TestReasonsAndIDs(t *testing.T) {
	src := testSeries{start: 19000, demand: weekly(120)}
	sc := New(testConfig(10), src, fixedClock)
	first := score(t, sc, src.snapshot(0, "e0"))
	if c := first.Event.GetReason().GetCode(); c != forecastv1.ReasonCode_REASON_CODE_NEW_SERIES {
		t.Errorf("first forecast reason %v, want NEW_SERIES", c)
	}
	closed := score(t, sc, src.snapshot(1, "e1"))
	if c := closed.Event.GetReason().GetCode(); c != forecastv1.ReasonCode_REASON_CODE_DAY_CLOSED {
		t.Errorf("next day reason %v (%s), want DAY_CLOSED", c, closed.Event.GetReason().GetDetail())
	}
	same := src.snapshot(1, "e1b")
	same.RecentDaily[55] = src.demand[1] / 2 // same day, nothing new
	if c := score(t, sc, same).Event.GetReason().GetCode(); c != forecastv1.ReasonCode_REASON_CODE_UNCHANGED {
		t.Errorf("same-day reason %v, want UNCHANGED", c)
	}
	surge := src.snapshot(1, "e1c")
	surge.RecentDaily[55] = 500
	res := score(t, sc, surge)
	if c := res.Event.GetReason().GetCode(); c != forecastv1.ReasonCode_REASON_CODE_DEMAND_SHIFT || res.Event.GetReason().GetChange() <= 0 {
		t.Errorf("surge reason %v change %v, want DEMAND_SHIFT and a positive change", c, res.Event.GetReason().GetChange())
	}
	price := src.snapshot(1, "e1d")
	price.Cause.Change = &demandv1.DemandEvent_Price{Price: &catalogv1.PriceChange{Price: 2.5, Currency: "GBP"}}
	if c := score(t, sc, price).Event.GetReason().GetCode(); c != forecastv1.ReasonCode_REASON_CODE_PRICE_CHANGED {
		t.Errorf("price reason %v, want PRICE_CHANGED", c)
	}
	sum := sha256.Sum256([]byte("A|online|e1|" + forecasting.ModelVersion))
	if got, want := closed.Event.GetForecastId(), hex.EncodeToString(sum[:16]); got != want {
		t.Errorf("forecast id %q, want %q", got, want)
	}
	if closed.Event.GetCause().GetEventId() != "e1" || closed.Event.GetEventId() != "e1" {
		t.Error("the cause was not passed through")
	}
}

func TestUncommittedBatchIsForgotten(t *testing.T) {
	src := testSeries{start: 19000, demand: weekly(120)}
	sc := New(testConfig(10), src, fixedClock)
	score(t, sc, src.snapshot(50, "a"))
	b := sc.Begin()
	first, err := b.Score(context.Background(), src.snapshot(51, "b"))
	if err != nil {
		t.Fatal(err)
	}
	// Not committed (say ClickHouse was down): the retry starts over.
	retry := score(t, sc, src.snapshot(51, "b"))
	if !proto.Equal(first.Event, retry.Event) {
		t.Error("a retried snapshot gave a different forecast or reason")
	}
}

func TestInvalidAndItemSnapshots(t *testing.T) {
	src := testSeries{start: 19000, demand: weekly(60)}
	sc := New(testConfig(10), src, fixedClock)
	for name, snap := range map[string]*featurev1.FeatureSnapshot{
		"no event id":    {SeriesKey: "A|online", AsOfDay: "2024-01-01"},
		"bad day":        {EventId: "x", SeriesKey: "A|online", AsOfDay: "yesterday"},
		"stockout index": {EventId: "x", SeriesKey: "A|online", AsOfDay: "2024-01-01", RecentDaily: []float64{1}, StockoutDays: []int32{3}},
	} {
		if _, err := sc.Begin().Score(context.Background(), snap); !errors.Is(err, ErrInvalidSnapshot) {
			t.Errorf("%s: err %v, want ErrInvalidSnapshot", name, err)
		}
	}
	item := &featurev1.FeatureSnapshot{EventId: "i1", SeriesKey: "A", Sku: "A", AsOfDay: "2024-01-01",
		Cause: &demandv1.DemandEvent{EventId: "i1"}}
	res := score(t, sc, item)
	if len(res.Event.GetDaily()) != 0 || res.Event.GetCause().GetEventId() != "i1" {
		t.Errorf("item snapshot: %v", res.Event)
	}
}

func TestCacheIsBounded(t *testing.T) {
	src := testSeries{start: 19000, demand: weekly(60)}
	sc := New(testConfig(2), src, fixedClock)
	for _, key := range []string{"A|x", "B|x", "C|x"} {
		snap := src.snapshot(30, "e-"+key)
		snap.SeriesKey = key
		score(t, sc, snap)
	}
	if n := sc.Series(); n != 2 {
		t.Errorf("%d series in memory, want 2", n)
	}
	if _, ok := sc.Latest("A|x"); ok {
		t.Error("the least recently used series was not evicted")
	}
	if _, ok := sc.Latest("C|x"); !ok {
		t.Error("the newest series is missing")
	}
}

func TestIntradayShare(t *testing.T) {
	asOf := forecasting.Day(19000)
	cum := make([]float64, 24)
	for h := range cum {
		cum[h] = float64(h+1) / 24
	}
	cum[9], cum[10] = 0.3, 0.5
	tests := []struct {
		at   time.Time
		cum  []float64
		want float64
	}{
		{asOf.Time().Add(10*time.Hour + 30*time.Minute), cum, 0.4},
		{asOf.Time().Add(6 * time.Hour), nil, 0.25},
		{asOf.Time().Add(-time.Hour), cum, 0},
	}
	for _, tt := range tests {
		snap := &featurev1.FeatureSnapshot{OccurredAt: timestamppb.New(tt.at), IntradayCumulative: tt.cum}
		if got := intradayShare(snap, asOf); got < tt.want-1e-9 || got > tt.want+1e-9 {
			t.Errorf("at %s: share %v, want %v", tt.at, got, tt.want)
		}
	}
}
