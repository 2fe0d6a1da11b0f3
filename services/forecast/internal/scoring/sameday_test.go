package scoring

import (
	"fmt"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/stockcast/stockcast/pkg/forecasting"
)

// TestSameDayReuseEqualsRecompute: events later in a day (other times,
// other demand so far, a surge) take the days after today from the
// previous forecast; each is scored again by a new scorer (state rebuilt,
// everything computed): the daily forecasts, the lead times and the
// components are the same, with the ensemble alone and with a global model
// whose trees split on the price (the quantiles reused are the combined
// ones). The reuse must have happened: the later events share the
// previous event's quantile slices.
func TestSameDayReuseEqualsRecompute(t *testing.T) {
	src := testSeries{start: 19000, demand: weekly(400)}
	priced := pricedModel(t, src)
	for _, m := range []*Model{nil, priced} {
		sc := New(testConfig(10), src, fixedClock)
		sc.SetModel(m)
		reused := 0
		for _, day := range []int{320, 321, 325} {
			var prev *Result
			for k, at := range []struct {
				hour    int
				soFar   float64
				reshare bool
			}{{1, 0, false}, {9, 3, false}, {13, 40, false}, {18, 41, true}, {23, 41, false}} {
				snap := src.snapshot(day, fmt.Sprintf("d%d-%d", day, k))
				snap.Price = 2.5
				snap.OccurredAt = timestamppb.New(snap.GetOccurredAt().AsTime().Truncate(24 * time.Hour).Add(time.Duration(at.hour) * time.Hour))
				snap.RecentDaily[55] = at.soFar
				if at.reshare {
					cum := make([]float64, 24)
					for h := range cum {
						cum[h] = float64(h+1) / 24 * float64(h+1) / 24
					}
					snap.IntradayCumulative = cum
				}
				got := score(t, sc, snap)
				fresh := New(testConfig(10), src, fixedClock)
				fresh.SetModel(m)
				want := score(t, fresh, snap)
				if fmt.Sprint(got.Event.GetDaily()) != fmt.Sprint(want.Event.GetDaily()) ||
					fmt.Sprint(got.Event.GetLeadTimeDemand()) != fmt.Sprint(want.Event.GetLeadTimeDemand()) {
					t.Fatalf("model %v day %d event %d: forecast differs from the recompute", m != nil, day, k)
				}
				// the values (the global contributions' details say how
				// they moved since the previous forecast, which the new
				// scorer has not made)
				values := func(r *Result) string {
					out := ""
					for _, c := range r.Components {
						out += fmt.Sprint(c.Name, c.Value, " ")
					}
					return out
				}
				if values(got) != values(want) {
					t.Fatalf("model %v day %d event %d: components\n%v\nrecomputed\n%v", m != nil, day, k, got.Components, want.Components)
				}
				if prev != nil && &prev.Event.GetDaily()[5].GetQuantiles()[0] == &got.Event.GetDaily()[5].GetQuantiles()[0] {
					reused++
				}
				prev = got
			}
		}
		// the first event of each day computes; the other four reuse
		if reused != 3*4 {
			t.Errorf("model %v: %d of 12 later events reused the days after today", m != nil, reused)
		}
	}
}

// TestDayNames: the forecast's day names are Day.String's, also past the
// year 9999 (longer names).
func TestDayNames(t *testing.T) {
	for _, start := range []forecasting.Day{0, 19000, 2932880} { // 1970-01-01, 2022-01-08, 9999-12-15
		names := dayNames(start, 28)
		for h, name := range names {
			if want := (start + forecasting.Day(h)).String(); name != want {
				t.Fatalf("day %d: %q, want %q", start+forecasting.Day(h), name, want)
			}
		}
	}
}
