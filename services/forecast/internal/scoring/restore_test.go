package scoring

import (
	"context"
	"fmt"
	"testing"

	"google.golang.org/protobuf/proto"
)

// TestRestoreEqualsMemory scores a series' events with one scorer that
// keeps it in memory and, for each event, with a fresh scorer (a restart)
// given the forecast the first one published before (Restore): what the
// reason reads of it is what the memory held, bit for bit, before and after
// a global model is promoted; the forecasts are equal, reason included,
// while no model was in use before the event (with one, the global part's
// attribution changes need the previous part, which is not restored).
func TestRestoreEqualsMemory(t *testing.T) {
	src := testSeries{start: 19000, demand: weekly(400)}
	model, _ := testModel(t, src)
	type step struct {
		day     int
		promote bool
	}
	// two events on some days, a gap of a day, a late event (an earlier
	// day: not cached), the model promoted on day 356
	steps := []step{{350, false}, {350, false}, {351, false}, {353, false}, {352, false}, {353, false}, {354, false},
		{356, true}, {356, false}, {357, false}, {357, false}, {358, false}}
	mem := New(testConfig(10), src, fixedClock)
	var last *Result
	lastDay := 0
	for k, st := range steps {
		if st.promote {
			mem.SetModel(model)
		}
		snap := src.snapshot(st.day, fmt.Sprintf("e%d", k))
		fresh := New(testConfig(10), src, fixedClock)
		fresh.SetModel(mem.Model())
		fb := fresh.Begin()
		if last != nil {
			fb.Restore(map[string]*Result{"A|online": last})
			series, ok := mem.cache.peek("A|online")
			if !ok {
				t.Fatal("the series is not in memory")
			}
			if got := fb.restored["A|online"]; got.prev != series.prev || got.lastStart != series.lastStart {
				t.Errorf("event %d: restored %+v (start %v), memory held %+v (start %v)", k, got.prev, got.lastStart, series.prev, series.lastStart)
			}
		}
		got, err := fb.Score(context.Background(), snap)
		if err != nil {
			t.Fatal(err)
		}
		want := score(t, mem, snap)
		// what forecast_log's query returns: the latest of the latest
		// start day (a late event's forecast is not cached)
		if last == nil || st.day >= lastDay {
			last, lastDay = want, st.day
		}
		if mem.Model() != nil && !st.promote {
			continue // see above
		}
		if !proto.Equal(got.Event, want.Event) {
			t.Errorf("event %d (day %d): after a restart\n%v\nwithout\n%v", k, st.day, got.Event.GetReason(), want.Event.GetReason())
		}
	}
}
