package planning_test

import (
	"math"
	"slices"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	demandv1 "github.com/stockcast/stockcast/proto/stockcast/demand/v1"
	forecastv1 "github.com/stockcast/stockcast/proto/stockcast/forecast/v1"

	"github.com/stockcast/stockcast/pkg/forecasting"
	"github.com/stockcast/stockcast/services/replenishment/internal/planning"
)

// countForecast is fullForecast with lead-time quantiles that are counts,
// as the forecast service publishes them (countDist.Quantiles: the smallest
// k with P(X <= k) >= level).
func countForecast(sku, id string, at time.Time, noAsOf bool) *forecastv1.ForecastEvent {
	ev := fullForecast(sku, id, snapshot(95), at, noAsOf)
	for _, lt := range ev.GetLeadTimeDemand() {
		for i, q := range lt.Quantiles {
			lt.Quantiles[i] = math.Ceil(q)
		}
	}
	return ev
}

func deterministic(t *testing.T, m proto.Message) []byte {
	t.Helper()
	raw, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// TestLatestLayoutRoundTrips: the compact layout of the latest forecast
// gives back LatestForecast's message bit for bit (every double, -0, NaN,
// infinities, integers beyond 2^53, non-default levels, without as_of or
// lead times), and a key written before it (protobuf) still reads.
func TestLatestLayoutRoundTrips(t *testing.T) {
	at := time.Date(2011, 3, 1, 9, 30, 0, 0, time.UTC)
	odd := countForecast("ODD", "e-odd", at, false)
	odd.QuantileLevels = []float64{0.05, 0.5, 0.95}
	odd.Daily = odd.Daily[:3]
	odd.Daily[0].Mean, odd.Daily[1].Mean, odd.Daily[2].Mean = math.Copysign(0, -1), math.NaN(), 3
	odd.LeadTimeDemand = []*forecastv1.LeadTimeDemand{
		{LeadTimeDays: 7, ReviewPeriodDays: 7, Mean: 12.25, Quantiles: []float64{0, 1 << 53, 1<<53 + 2}},
		{LeadTimeDays: -3, Mean: math.Inf(1), Quantiles: []float64{-5, 2.5, -1e300, math.Inf(-1), 7, math.Copysign(0, -1), 4}},
		{LeadTimeDays: math.MaxInt32, ReviewPeriodDays: math.MinInt32},
	}
	negZeroLevels := countForecast("Z", "e-z", at, false)
	negZeroLevels.QuantileLevels[0] = math.Copysign(0, -1)
	empty := &forecastv1.ForecastEvent{EventId: "e-empty", Cause: &demandv1.DemandEvent{}}
	cases := map[string]*forecastv1.ForecastEvent{
		"default":                   countForecast("A", "e-a", at, false),
		"without as_of":             countForecast("A", "e-a", at, true),
		"quantiles not counts":      fullForecast("B", "e-b", snapshot(95), at, false),
		"odd numbers":               odd,
		"-0 among default levels":   negZeroLevels,
		"nothing but an id":         empty,
		"as_of with negative nanos": {EventId: "n", AsOf: &timestamppb.Timestamp{Seconds: -62135596800, Nanos: -1}},
	}
	for name, ev := range cases {
		t.Run(name, func(t *testing.T) {
			want := deterministic(t, planning.LatestForecast(ev))
			raw := planning.EncodeLatest(planning.LatestForecast(ev))
			got, err := planning.DecodeLatest(raw)
			if err != nil {
				t.Fatal(err)
			}
			if g := deterministic(t, got); !slices.Equal(g, want) {
				t.Fatalf("decoded %v\nwant    %v", got, planning.LatestForecast(ev))
			}
			old, err := planning.DecodeLatest(want) // the layout before: protobuf
			if err != nil {
				t.Fatal(err)
			}
			if g := deterministic(t, old); !slices.Equal(g, want) {
				t.Fatalf("the protobuf layout decoded %v", old)
			}
		})
	}
}

// TestLatestLayoutSize: a default forecast (14 levels, 28 days, 9 lead
// times of count quantiles) is kept in at most 600 bytes; as protobuf
// (LatestForecast, session 6) it took 1,605.
func TestLatestLayoutSize(t *testing.T) {
	ev := planning.LatestForecast(countForecast("85123A", "order-line-536365-1", time.Date(2011, 3, 1, 9, 30, 0, 0, time.UTC), false))
	ev.ForecastId = "b1946ac92492d2347c6235b4d2611184"
	size, old := len(planning.EncodeLatest(ev)), len(deterministic(t, ev))
	t.Logf("compact %d bytes, protobuf %d", size, old)
	if size > 600 {
		t.Fatalf("compact layout %d bytes (protobuf %d), want at most 600", size, old)
	}
}

// TestLatestDefaultLevels: the layout's flag stands for the forecast
// service's default levels; when the default changes, the flag must keep
// meaning the old list (a new layout version for the new one).
func TestLatestDefaultLevels(t *testing.T) {
	ev := &forecastv1.ForecastEvent{EventId: "e", QuantileLevels: forecasting.DefaultQuantileLevels()}
	withDefault := len(planning.EncodeLatest(ev))
	ev.QuantileLevels = slices.Clone(ev.QuantileLevels)
	ev.QuantileLevels[0] = 0.001
	if other := len(planning.EncodeLatest(ev)); other-withDefault < 8*len(ev.QuantileLevels) {
		t.Fatalf("default levels take %d bytes, others %d: the default is not kept as a flag any more; "+
			"forecasting.DefaultQuantileLevels changed? Give the layout a new version", withDefault, other)
	}
}

// TestLatestLayoutRejectsMalformed: truncated or corrupt compact values are
// errors, not panics or wrong forecasts.
func TestLatestLayoutRejectsMalformed(t *testing.T) {
	raw := planning.EncodeLatest(planning.LatestForecast(countForecast("A", "e-a", time.Date(2011, 3, 1, 9, 30, 0, 0, time.UTC), false)))
	for n := 1; n < len(raw); n++ {
		if _, err := planning.DecodeLatest(raw[:n]); err == nil {
			t.Fatalf("truncated to %d of %d bytes: no error", n, len(raw))
		}
	}
	for name, bad := range map[string][]byte{
		"unknown version": {0, 2},
		"trailing bytes":  append(slices.Clone(raw), 0),
		"odd number":      {0, 1, 0, 0, 0, 0, 0, 0, 1, 3},
		"huge count":      {0, 1, 0, 0xff, 0xff, 0xff, 0xff, 0x0f},
	} {
		if _, err := planning.DecodeLatest(bad); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}
