package planning_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	demandv1 "github.com/stockcast/stockcast/proto/stockcast/demand/v1"
	forecastv1 "github.com/stockcast/stockcast/proto/stockcast/forecast/v1"

	"github.com/stockcast/stockcast/pkg/replenish"
	"github.com/stockcast/stockcast/pkg/testenv"
	"github.com/stockcast/stockcast/services/replenishment/internal/planning"
	"github.com/stockcast/stockcast/services/replenishment/internal/store"
)

// fullForecast is a forecast event as the forecast service publishes it:
// the default 14 quantile levels, 28 days with their quantiles, lead-time
// demand for the default 9 lead times, the global model's part, a reason
// and a demand class; without as_of when noAsOf (the cause's time then).
func fullForecast(sku, id string, cause *demandv1.DemandEvent, at time.Time, noAsOf bool) *forecastv1.ForecastEvent {
	levels := []float64{0.005, 0.025, 0.05, 0.1, 0.165, 0.25, 0.5, 0.75, 0.835, 0.9, 0.95, 0.975, 0.99, 0.995}
	ev := &forecastv1.ForecastEvent{
		ForecastId: "f-" + id, EventId: id, SeriesKey: sku + "|online", Sku: sku, Location: "online",
		AsOf: timestamppb.New(at), IssuedAt: timestamppb.New(at.Add(time.Second)), StartDay: at.Format(time.DateOnly),
		QuantileLevels: levels, Model: "ensemble", ModelVersion: "v7", DemandClass: "smooth",
		Reason: &forecastv1.ForecastReason{Code: forecastv1.ReasonCode_REASON_CODE_DEMAND_SHIFT, Detail: "more", Change: 0.25,
			Factors: []*forecastv1.Attribution{{Feature: "price", Value: 3.5, Contribution: 0.1, Change: -0.2}}},
		Global: &forecastv1.GlobalForecast{Version: "g1", Weight: 0.4, Means: []float64{9.5, 10.5}, Link: "log", Bias: 0.01},
		Cause:  cause,
	}
	for d := range 28 {
		day := &forecastv1.DailyForecast{Day: at.AddDate(0, 0, d).Format(time.DateOnly), Mean: 10 + float64(d%3)/3}
		for i := range levels {
			day.Quantiles = append(day.Quantiles, day.Mean*(0.2+float64(i)/7))
		}
		ev.Daily = append(ev.Daily, day)
	}
	for _, l := range []int32{1, 2, 3, 5, 7, 10, 14, 21, 28} {
		lt := &forecastv1.LeadTimeDemand{LeadTimeDays: l, Mean: 10.1 * float64(l)}
		for i := range levels {
			lt.Quantiles = append(lt.Quantiles, 10*float64(l)*(0.5+float64(i)/13))
		}
		ev.LeadTimeDemand = append(ev.LeadTimeDemand, lt)
	}
	cause.EventId = id
	cause.OccurredAt = timestamppb.New(at)
	if noAsOf {
		ev.AsOf = nil
	}
	return ev
}

// TestLatestForecastDecidesAsTheWholeEvent: the series' latest forecast is
// kept as planning.LatestForecast (a quarter of the event) in the compact
// layout (EncodeLatest; a tenth with count quantiles); a re-evaluation
// after SetPolicy and a portfolio allocation from it give byte for byte the
// proposals and allocations of the layout before (the whole event, the
// Kafka record's value), with and without as_of, with lead-time quantiles
// that are counts (as the forecast service's) and that are not.
func TestLatestForecastDecidesAsTheWholeEvent(t *testing.T) {
	ctx := context.Background()
	rdb := redis.NewClient(&redis.Options{Addr: testenv.Redis(t)})
	t.Cleanup(func() { _ = rdb.Close() })
	at := time.Date(2011, 3, 1, 9, 30, 0, 0, time.UTC)
	skus := []string{"A", "B", "C"}

	// run plans a snapshot of 95 for each series (above the built-in reorder
	// point q95(7) = 89), with oldLayout rewrites the kept forecasts as
	// before, then re-evaluates A and B under a stricter policy (q99(7) =
	// 99.6: they order) and allocates the location under a weekly policy.
	run := func(noAsOf, counts, oldLayout bool) (props [][]byte, alloc string, size int) {
		t.Helper()
		if err := rdb.FlushAll(ctx).Err(); err != nil {
			t.Fatal(err)
		}
		policies, err := planning.NewPolicies(store.NewPolicies(rdb), builtIn)
		if err != nil {
			t.Fatal(err)
		}
		planner := planning.NewPlanner(policies, store.NewState(rdb, time.Hour), slog.New(slog.NewTextHandler(io.Discard, nil)))
		for _, sku := range skus {
			full := fullForecast(sku, "e-"+sku, snapshot(95), at, noAsOf)
			if counts {
				full = countForecast(sku, "e-"+sku, at, noAsOf)
			}
			res, err := planner.Plan(ctx, events(t, full))
			if err != nil || len(res.Proposals) != 0 {
				t.Fatalf("snapshot of %s: %v, %d proposals", sku, err, len(res.Proposals))
			}
			key := store.ForecastKey(sku + "|online")
			if oldLayout {
				raw, err := proto.Marshal(full) // the record's value, as the consumer kept it
				if err != nil {
					t.Fatal(err)
				}
				if err := rdb.Set(ctx, key, raw, 0).Err(); err != nil {
					t.Fatal(err)
				}
			}
			n, err := rdb.StrLen(ctx, key).Result()
			if err != nil {
				t.Fatal(err)
			}
			size = int(n)
		}
		strict := builtIn
		strict.ServiceLevel = 0.99
		for _, sku := range skus[:2] {
			s := planning.Scope{SKU: sku, Location: "online"}
			if err := policies.Set(ctx, s, replenish.ServicePolicy{Policy: strict}); err != nil {
				t.Fatal(err)
			}
			res, err := planner.Reevaluate(ctx, s)
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range res.Proposals {
				raw, err := proto.MarshalOptions{Deterministic: true}.Marshal(p)
				if err != nil {
					t.Fatal(err)
				}
				props = append(props, raw)
			}
		}
		weekly := replenish.ServicePolicy{Policy: builtIn, Kind: replenish.KindPeriodic, ReviewWeekdays: 1 << time.Tuesday}
		weekly.ReviewPeriodDays = 7
		for _, sku := range skus {
			if err := policies.Set(ctx, planning.Scope{SKU: sku, Location: "online"}, weekly); err != nil {
				t.Fatal(err)
			}
		}
		values := map[planning.Scope]float64{{SKU: "A", Location: "online"}: 5, {SKU: "B", Location: "online"}: 1, {SKU: "C", Location: "online"}: 20}
		got, _, err := planner.AllocateLocation(ctx, "online", values, 0.95, 0)
		if err != nil {
			t.Fatal(err)
		}
		return props, fmt.Sprintf("%+v", got), size
	}
	for _, c := range []struct{ noAsOf, counts bool }{{false, false}, {true, false}, {false, true}, {true, true}} {
		t.Run(fmt.Sprintf("noAsOf=%v/counts=%v", c.noAsOf, c.counts), func(t *testing.T) {
			newProps, newAlloc, newSize := run(c.noAsOf, c.counts, false)
			oldProps, oldAlloc, oldSize := run(c.noAsOf, c.counts, true)
			if len(newProps) != 2 {
				t.Fatalf("%d proposals from the re-evaluation, want 2", len(newProps))
			}
			if fmt.Sprint(newProps) != fmt.Sprint(oldProps) {
				t.Fatalf("proposals differ from the old layout's:\n%x\n%x", newProps, oldProps)
			}
			if newAlloc != oldAlloc {
				t.Fatalf("allocation differs from the old layout's:\n%s\n%s", newAlloc, oldAlloc)
			}
			if newSize*3 > oldSize {
				t.Fatalf("kept forecast %d bytes, the old layout %d: want at most a third", newSize, oldSize)
			}
			t.Logf("kept forecast: %d bytes, old layout %d", newSize, oldSize)
		})
	}
}
