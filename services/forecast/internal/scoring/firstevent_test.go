package scoring

import (
	"context"
	"fmt"
	"testing"

	"google.golang.org/protobuf/proto"

	featurev1 "github.com/stockcast/stockcast/proto/stockcast/feature/v1"
)

// TestFirstEventWithoutHistory: a series at its first event (applied,
// events_applied 1) is rebuilt without asking the feature service for its
// history, which holds only the event's day (the snapshot's as_of_day);
// its forecasts, and those of its next events in the batch and the next
// day, are equal to the ones made with the history fetched. A redelivered
// first event (applied false) still fetches it.
func TestFirstEventWithoutHistory(t *testing.T) {
	ctx := context.Background()
	const n = 300
	stored := func() *storedSeries {
		s := &storedSeries{series: map[string]testSeries{}}
		for i := range n {
			// what feature stores after the first event: its day
			s.series[fmt.Sprintf("S%d|online", i)] = testSeries{start: 19000, demand: []float64{float64(2 + i%5)}}
		}
		return s
	}
	// day 0: every series' first event, a second one of every third
	// series, and S7's first event redelivered; day 1: one event each
	var day0, day1 []*featurev1.FeatureSnapshot
	for i := range n {
		key := fmt.Sprintf("S%d|online", i)
		ts := testSeries{start: 19000, demand: []float64{float64(2 + i%5), float64(1 + i%3)}}
		first := seriesSnapshot(ts, key, 0, key+"-a")
		first.EventsApplied, first.Applied = 1, i != 7
		day0 = append(day0, first)
		if i%3 == 0 {
			second := seriesSnapshot(ts, key, 0, key+"-b")
			second.EventsApplied = 2
			day0 = append(day0, second)
		}
		next := seriesSnapshot(ts, key, 1, key+"-c")
		next.EventsApplied = 3
		day1 = append(day1, next)
	}
	run := func(firstEvents bool) ([]*Result, *storedSeries) {
		s := stored()
		sc := New(testConfig(1000), s, fixedClock)
		var out []*Result
		for _, snaps := range [][]*featurev1.FeatureSnapshot{day0, day1} {
			b := sc.Begin()
			if !firstEvents {
				c := make([]*featurev1.FeatureSnapshot, len(snaps))
				for i, snap := range snaps {
					c[i] = proto.CloneOf(snap)
					c[i].EventsApplied = 0 // unknown: not a proof
				}
				snaps = c
			}
			b.Prefetch(snaps)
			for _, snap := range snaps {
				res, err := b.Score(ctx, snap)
				if err != nil {
					t.Fatal(err)
				}
				out = append(out, res)
			}
			b.Commit()
		}
		return out, s
	}
	got, s := run(true)
	want, all := run(false)
	if s.single != 0 || s.calls != 1 || s.asked != 1 {
		t.Errorf("first events: %d calls asking %d series, %d single, want 1 call for S7's redelivery", s.calls, s.asked, s.single)
	}
	if all.asked != n || all.single != 0 {
		t.Errorf("without the proof: %d series asked in %d calls, %d single, want %d", all.asked, all.calls, all.single, n)
	}
	for i := range want {
		if !proto.Equal(got[i].Event, want[i].Event) {
			t.Fatalf("forecast %d (%s) differs without the history\n%v\nwith\n%v", i, want[i].Event.GetEventId(), got[i].Event, want[i].Event)
		}
	}
}
