package store

import (
	"bytes"
	"context"
	"fmt"
	"reflect"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/stockcast/stockcast/pkg/forecasting"
	demandv1 "github.com/stockcast/stockcast/proto/stockcast/demand/v1"
	featurev1 "github.com/stockcast/stockcast/proto/stockcast/feature/v1"
	forecastv1 "github.com/stockcast/stockcast/proto/stockcast/forecast/v1"
	"github.com/stockcast/stockcast/services/forecast/internal/grpcapi"
	"github.com/stockcast/stockcast/services/forecast/internal/scoring"
)

// demandOf is series i's demand on day d: intermittent, weekly.
func demandOf(i int, d forecasting.Day) float64 {
	v := (int(d)*7 + i*3) % 11
	if v < 4 {
		return 0
	}
	return float64(v - 3 + int(d)%7)
}

type histories struct{ start forecasting.Day }

func (h histories) History(_ context.Context, sku, _ string) ([]scoring.DailyDemand, error) {
	var i int
	if _, err := fmt.Sscanf(sku, "S%d", &i); err != nil {
		return nil, err
	}
	out := make([]scoring.DailyDemand, 0, 200)
	for d := h.start - 200; d < h.start; d++ {
		out = append(out, scoring.DailyDemand{Day: d, Quantity: demandOf(i, d)})
	}
	return out, nil
}

func snapshotOf(i int, asOf forecasting.Day, hour int) *featurev1.FeatureSnapshot {
	key := fmt.Sprintf("S%d|online", i)
	recent := make([]float64, 56)
	for j := range recent {
		recent[j] = demandOf(i, asOf-55+forecasting.Day(j))
	}
	recent[55] = float64(hour) / 24 * demandOf(i, asOf)
	id := fmt.Sprintf("%s-%s-%d", key, asOf, hour)
	return &featurev1.FeatureSnapshot{
		EventId: id, OccurredAt: timestamppb.New(asOf.Time().Add(time.Duration(hour)*time.Hour + 123456789)),
		SeriesKey: key, Sku: fmt.Sprintf("S%d", i), Location: "online", AsOfDay: asOf.String(), RecentDaily: recent, Applied: true,
		Cause: &demandv1.DemandEvent{EventId: id, SeriesKey: key, Day: asOf.String(),
			Change: &demandv1.DemandEvent_Demand{Demand: &demandv1.Demand{Quantity: 1}}},
	}
}

// TestUnkeptLatestFromLog: a scorer that keeps one series' latest forecast
// whole (-forecast.latest-series 1) answers GetForecast and Explain of the
// others from forecast_log: byte for byte the forecast it published, and
// its components, as when every latest forecast was kept in memory.
func TestUnkeptLatestFromLog(t *testing.T) {
	ctx := context.Background()
	log, _ := openLog(t)
	start := forecasting.Day(19500)
	cfg := scoring.Config{Horizon: 28, QuantileLevels: forecasting.DefaultQuantileLevels(), LeadTimes: forecasting.DefaultLeadTimes(),
		MaxSeries: 10, LatestSeries: 1}
	clock := func() time.Time { return time.Date(2024, 5, 1, 7, 8, 9, 987654321, time.UTC) }
	sc := scoring.New(cfg, histories{start}, clock)
	const n = 4
	published := map[string]*scoring.Result{}
	for _, at := range []struct {
		day  forecasting.Day
		hour int
	}{{start, 9}, {start, 15}, {start + 1, 10}, {start + 1, 20}} {
		for i := range n {
			batch := sc.Begin()
			res, err := batch.Score(ctx, snapshotOf(i, at.day, at.hour))
			if err != nil {
				t.Fatal(err)
			}
			if err := log.Insert(ctx, []*scoring.Result{res}); err != nil {
				t.Fatal(err)
			}
			batch.Commit()
			published[res.Event.GetSeriesKey()] = res
		}
	}
	api := grpcapi.New(sc, log)
	enc := proto.MarshalOptions{Deterministic: true}
	for i := range n {
		sku := fmt.Sprintf("S%d", i)
		want := published[sku+"|online"]
		if _, kept := sc.Latest(sku + "|online"); kept != (i == n-1) {
			t.Errorf("%s: kept whole %v, want only the last scored series", sku, kept)
		}
		got, err := api.GetForecast(ctx, &forecastv1.GetForecastRequest{Sku: sku, Location: "online"})
		if err != nil {
			t.Fatal(err)
		}
		a, err := enc.Marshal(got.GetForecast())
		if err != nil {
			t.Fatal(err)
		}
		b, err := enc.Marshal(want.Event)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(a, b) {
			t.Errorf("%s: GetForecast is not the published forecast byte for byte\n got %v\nwant %v", sku, got.GetForecast(), want.Event)
		}
		explained, err := api.Explain(ctx, &forecastv1.ExplainRequest{Sku: sku, Location: "online"})
		if err != nil {
			t.Fatal(err)
		}
		var comps []scoring.Component
		for _, c := range explained.GetComponents() {
			comps = append(comps, scoring.Component{Name: c.GetName(), Value: c.GetValue(), Detail: c.GetDetail()})
		}
		if !reflect.DeepEqual(comps, want.Components) || !proto.Equal(explained.GetForecast(), want.Event) {
			t.Errorf("%s: Explain is not the published forecast and components", sku)
		}
	}
}
