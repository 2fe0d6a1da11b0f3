package planning_test

import (
	"context"
	"io"
	"log/slog"
	"math"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"google.golang.org/protobuf/types/known/timestamppb"

	demandv1 "github.com/stockcast/stockcast/proto/stockcast/demand/v1"
	forecastv1 "github.com/stockcast/stockcast/proto/stockcast/forecast/v1"
	replenishmentv1 "github.com/stockcast/stockcast/proto/stockcast/replenishment/v1"

	"github.com/stockcast/stockcast/pkg/replenish"
	"github.com/stockcast/stockcast/pkg/testenv"
	"github.com/stockcast/stockcast/services/replenishment/internal/planning"
	"github.com/stockcast/stockcast/services/replenishment/internal/store"
)

// seriesEvent is forecastEvent (daily mean 10; 7-day demand quantiles
// 0.5/0.9/0.95/0.99 = 69/81/85/92, mean 70; 14 days 139/156/162/172, mean
// 140) for the series sku|online, its cause happening at at.
func seriesEvent(sku, id string, cause *demandv1.DemandEvent, at time.Time) *forecastv1.ForecastEvent {
	ev := forecastEvent(sku+"-"+id, cause, true)
	ev.Sku, ev.SeriesKey = sku, sku+"|online"
	ev.AsOf = timestamppb.New(at)
	cause.OccurredAt = timestamppb.New(at)
	return ev
}

// TestPolicyKinds decides each policy kind and target on redis-server with
// the levels and quantities computed by hand in the comments.
func TestPolicyKinds(t *testing.T) {
	ctx := context.Background()
	rdb := redis.NewClient(&redis.Options{Addr: testenv.Redis(t)})
	t.Cleanup(func() { _ = rdb.Close() })
	policies, err := planning.NewPolicies(store.NewPolicies(rdb), builtIn)
	if err != nil {
		t.Fatal(err)
	}
	planner := planning.NewPlanner(policies, store.NewState(rdb, time.Hour), slog.New(slog.NewTextHandler(io.Discard, nil)))
	tue := time.Date(2011, 3, 1, 9, 30, 0, 0, time.UTC) // a Tuesday
	base := replenish.Policy{ServiceLevel: 0.95, LeadTimeDays: 7, MOQ: 1, PackSize: 1, OrderCoverDays: 14}

	type want struct {
		id                     string
		reason                 replenishmentv1.ProposalReason
		rop, upTo, qty, uncons float64
	}
	run := func(t *testing.T, sku string, pol replenish.ServicePolicy, evs []*forecastv1.ForecastEvent, wants []want) {
		t.Helper()
		if err := policies.Set(ctx, planning.Scope{SKU: sku, Location: "online"}, pol); err != nil {
			t.Fatal(err)
		}
		for round := range 2 { // the second is a redelivery: same proposals, nothing new applied
			res, err := planner.Plan(ctx, events(t, evs...))
			if err != nil {
				t.Fatal(err)
			}
			if round == 1 && res.Replayed != len(evs) {
				t.Fatalf("redelivery replayed %d of %d events", res.Replayed, len(evs))
			}
			if len(res.Proposals) != len(wants) {
				t.Fatalf("round %d: %d proposals, want %d: %v", round, len(res.Proposals), len(wants), res.Proposals)
			}
			for i, w := range wants {
				p := res.Proposals[i]
				if p.GetProposalId() != planning.ProposalID(sku+"|online", sku+"-"+w.id) || p.GetReason() != w.reason ||
					math.Abs(p.GetReorderPoint()-w.rop) > 1e-6 || math.Abs(p.GetOrderUpTo()-w.upTo) > 1e-6 ||
					math.Abs(p.GetQuantity()-w.qty) > 1e-9 || math.Abs(p.GetUnconstrainedQuantity()-w.uncons) > 1e-6 {
					t.Fatalf("round %d proposal %d = id %s event %s %v rop %v up-to %v qty %v (unconstrained %v), want %+v",
						round, i, p.GetProposalId(), p.GetEventId(), p.GetReason(), p.GetReorderPoint(), p.GetOrderUpTo(),
						p.GetQuantity(), p.GetUnconstrainedQuantity(), w)
				}
			}
		}
	}

	t.Run("s_Q fixed", func(t *testing.T) {
		// s = q95(7 days) = 85; position 80 < 85: floor((85-80)/50)+1 = 1 lot of 50; S shown as s + Q = 135.
		pol := replenish.ServicePolicy{Policy: base, Kind: replenish.KindReorderQuantity, FixedQuantity: 50}
		run(t, "SQ", pol, []*forecastv1.ForecastEvent{
			seriesEvent("SQ", "e1", snapshot(100), tue), seriesEvent("SQ", "e2", order(20), tue),
		}, []want{{"e2", replenishmentv1.ProposalReason_PROPOSAL_REASON_CROSSED_REORDER_POINT, 85, 135, 50, 50}})
	})
	t.Run("s_Q EOQ with pack", func(t *testing.T) {
		// EOQ = sqrt(2 * 10/day * 50 / 0.1 per unit-day) = 100; position 30 < 85: floor(55/100)+1 = 1 lot
		// of 100, rounded up to packs of 12: 108.
		pol := replenish.ServicePolicy{Policy: base, Kind: replenish.KindReorderQuantity, OrderCost: 50, HoldingCost: 0.1}
		pol.PackSize = 12
		run(t, "SQE", pol, []*forecastv1.ForecastEvent{
			seriesEvent("SQE", "e1", snapshot(100), tue), seriesEvent("SQE", "e2", order(70), tue),
		}, []want{{"e2", replenishmentv1.ProposalReason_PROPOSAL_REASON_CROSSED_REORDER_POINT, 85, 185, 108, 100}})
	})
	t.Run("s_S EOQ", func(t *testing.T) {
		// S = s + EOQ = 85 + 100 = 185; position 80: order 105.
		pol := replenish.ServicePolicy{Policy: base, Kind: replenish.KindReorderUpTo, OrderCost: 50, HoldingCost: 0.1}
		run(t, "SS", pol, []*forecastv1.ForecastEvent{
			seriesEvent("SS", "e1", snapshot(100), tue), seriesEvent("SS", "e2", order(20), tue),
		}, []want{{"e2", replenishmentv1.ProposalReason_PROPOSAL_REASON_CROSSED_REORDER_POINT, 85, 185, 105, 105}})
	})
	t.Run("newsvendor", func(t *testing.T) {
		// Critical ratio 9 / (9 + 0.125 * 8 cover days) = 0.9: s = q90(7 days) = 81; S = 81 + 8 days * 10 = 161;
		// position 80: order 81.
		pol := replenish.ServicePolicy{Policy: base, Target: replenish.TargetNewsvendor, ShortageCost: 9, HoldingCost: 0.125}
		pol.OrderCoverDays = 8
		run(t, "NV", pol, []*forecastv1.ForecastEvent{
			seriesEvent("NV", "e1", snapshot(100), tue), seriesEvent("NV", "e2", order(20), tue),
		}, []want{{"e2", replenishmentv1.ProposalReason_PROPOSAL_REASON_CROSSED_REORDER_POINT, 81, 161, 81, 81}})
	})
	t.Run("fill rate s_Q", func(t *testing.T) {
		// Smallest s with E[(D7 - s)+] <= (1 - 0.98) * 50 = 1. For s in [69, 81], with x = 81 - s, the
		// piecewise-linear quantile function gives E = x^2/60 + 0.1x + 0.51 (0.4 * x^2 / 24 on [0.5, 0.9],
		// 0.05 * (83 - s) on [0.9, 0.95], 0.04 * (88.5 - s) on [0.95, 0.99], 0.01 * (92 - s) above):
		// x^2 + 6x - 29.4 = 0, x = (-6 + sqrt(153.6)) / 2, s = 81 - x = 77.8032266...
		// Position 75 < s: one lot of 50.
		s := 81 - (-6+math.Sqrt(153.6))/2
		pol := replenish.ServicePolicy{Policy: base, Kind: replenish.KindReorderQuantity, FixedQuantity: 50,
			Target: replenish.TargetFillRate, FillRate: 0.98}
		run(t, "FR", pol, []*forecastv1.ForecastEvent{
			seriesEvent("FR", "e1", snapshot(100), tue), seriesEvent("FR", "e2", order(20), tue),
			seriesEvent("FR", "e3", order(5), tue),
		}, []want{{"e3", replenishmentv1.ProposalReason_PROPOSAL_REASON_CROSSED_REORDER_POINT, s, s + 50, 50, 50}})
	})
	t.Run("R_S weekly on Tuesdays", func(t *testing.T) {
		// S = q95(7 + 7 days) = 162. Tuesday: 200 >= 162, the day's review orders nothing, and the
		// later event that Tuesday is no second review; Wednesday is no review day (130 < 162, no
		// order); the next Tuesday reviews once: 130 -> order 32; the event after it that day does not.
		pol := replenish.ServicePolicy{Policy: base, Kind: replenish.KindPeriodic, ReviewWeekdays: 1 << time.Tuesday}
		pol.ReviewPeriodDays = 7
		run(t, "RS", pol, []*forecastv1.ForecastEvent{
			seriesEvent("RS", "e1", snapshot(200), tue),
			seriesEvent("RS", "e2", order(20), tue.Add(time.Hour)),
			seriesEvent("RS", "e3", order(50), tue.AddDate(0, 0, 1)),
			seriesEvent("RS", "e4", order(0), tue.AddDate(0, 0, 7)),
			seriesEvent("RS", "e5", order(10), tue.AddDate(0, 0, 7).Add(time.Hour)),
		}, []want{{"e4", replenishmentv1.ProposalReason_PROPOSAL_REASON_PERIODIC_REVIEW, 162, 162, 32, 32}})
	})
	t.Run("R_S every 3 days from an anchor", func(t *testing.T) {
		// Anchor 2011-02-26: review days 03-01, 03-04, 03-07, ... 03-02 and 03-03 are not.
		pol := replenish.ServicePolicy{Policy: base, Kind: replenish.KindPeriodic, ReviewAnchor: "2011-02-26"}
		pol.ReviewPeriodDays = 3
		// S = q95(7 + 3 days), interpolated between 7 and 14 days: 85 + (162 - 85) * 3/7 = 118.
		run(t, "RA", pol, []*forecastv1.ForecastEvent{
			seriesEvent("RA", "e1", snapshot(120), tue.Add(-24*time.Hour)), // 02-28: the series' first event, after 02-26: no review
			seriesEvent("RA", "e2", order(1), tue.AddDate(0, 0, 1)),        // 03-02: 03-01 had no event: reviewed now, 119 >= 118
			seriesEvent("RA", "e3", order(9), tue.AddDate(0, 0, 1)),        // 03-02 again: 03-01 is reviewed already
			seriesEvent("RA", "e4", order(10), tue.AddDate(0, 0, 3)),       // 03-04: review, 100 -> 18
			seriesEvent("RA", "e5", order(10), tue.AddDate(0, 0, 8)),       // 03-09: 03-07 had no event: reviewed now, 90 -> 28
		}, []want{
			{"e4", replenishmentv1.ProposalReason_PROPOSAL_REASON_PERIODIC_REVIEW, 118, 118, 18, 18},
			{"e5", replenishmentv1.ProposalReason_PROPOSAL_REASON_PERIODIC_REVIEW, 118, 118, 28, 28},
		})
	})
}

func TestServicePolicyValidation(t *testing.T) {
	base := replenish.Policy{ServiceLevel: 0.95, LeadTimeDays: 7}
	tests := []struct {
		name string
		pol  replenish.ServicePolicy
		want string
	}{
		{"s_Q without Q or costs", replenish.ServicePolicy{Policy: base, Kind: replenish.KindReorderQuantity}, "kind s_Q needs an order quantity"},
		{"R_S without period", replenish.ServicePolicy{Policy: base, Kind: replenish.KindPeriodic, ReviewWeekdays: 2}, "review period days >= 1"},
		{"fill rate 1", replenish.ServicePolicy{Policy: base, Target: replenish.TargetFillRate, FillRate: 1}, "fill rate 1: must be in (0, 1)"},
		{"newsvendor without costs", replenish.ServicePolicy{Policy: base, Target: replenish.TargetNewsvendor, ShortageCost: 3}, "needs shortage cost > 0 and holding cost > 0"},
		{"negative cost", replenish.ServicePolicy{Policy: base, OrderCost: -1}, "order cost -1: must be >= 0"},
	}
	for _, tt := range tests {
		err := tt.pol.Validate()
		if err == nil || !contains(err.Error(), tt.want) {
			t.Errorf("%s: %v, want %q", tt.name, err, tt.want)
		}
	}
	ok := replenish.ServicePolicy{Policy: base, Kind: replenish.KindPeriodic, ReviewAnchor: "2011-02-26"}
	ok.ReviewPeriodDays = 3
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
}

func contains(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return true
		}
	}
	return false
}
