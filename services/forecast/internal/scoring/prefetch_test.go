package scoring

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/stockcast/stockcast/pkg/forecasting"
	"github.com/stockcast/stockcast/pkg/topics"
	featurev1 "github.com/stockcast/stockcast/proto/stockcast/feature/v1"
)

// storedSeries is a feature store of synthetic series by key; it counts
// its calls.
type storedSeries struct {
	series        map[string]testSeries
	single, calls int
	asked         int
	fail          error
}

func (s *storedSeries) History(ctx context.Context, sku, location string) ([]DailyDemand, error) {
	s.single++
	if s.fail != nil {
		return nil, s.fail
	}
	ts, ok := s.series[topics.SeriesKey(sku, location)]
	if !ok {
		return nil, nil
	}
	return ts.History(ctx, sku, location)
}

func (s *storedSeries) Histories(ctx context.Context, refs []SeriesRef) ([][]DailyDemand, error) {
	s.calls++
	s.asked += len(refs)
	if s.fail != nil {
		return nil, s.fail
	}
	out := make([][]DailyDemand, len(refs))
	for i, r := range refs {
		if ts, ok := s.series[topics.SeriesKey(r.SKU, r.Location)]; ok {
			out[i], _ = ts.History(ctx, r.SKU, r.Location)
		}
	}
	return out, nil
}

// singleOnly hides Histories: the scorer fetches one series at a time.
type singleOnly struct{ s *storedSeries }

func (o singleOnly) History(ctx context.Context, sku, location string) ([]DailyDemand, error) {
	return o.s.History(ctx, sku, location)
}

// seriesSnapshot is ts's snapshot of day index i under another series key.
func seriesSnapshot(ts testSeries, key string, i int, eventID string) *featurev1.FeatureSnapshot {
	snap := ts.snapshot(i, eventID)
	sku, loc, _ := topics.SplitSeriesKey(key)
	snap.SeriesKey, snap.Sku, snap.Location, snap.Cause.SeriesKey = key, sku, loc, key
	return snap
}

// TestPrefetchSameForecasts: batches of snapshots of 700 series (new ones,
// ones in memory, one evicted, a gap, a replay of an older day, a series
// the store does not have, twice in a batch, item and invalid snapshots)
// give byte-equal forecasts and errors with the histories prefetched
// together as fetched one at a time, in a few GetHistories calls.
func TestPrefetchSameForecasts(t *testing.T) {
	store := &storedSeries{series: map[string]testSeries{}}
	keys := make([]string, 700)
	for i := range keys {
		keys[i] = fmt.Sprintf("S%d|L%d", i, i%3)
		demand := weekly(300)
		for d := range demand {
			demand[d] += float64((i * d) % 5)
		}
		store.series[keys[i]] = testSeries{start: forecasting.Day(19000 + i%10), demand: demand}
	}
	snap := func(k string, i int, id string) *featurev1.FeatureSnapshot {
		ts, ok := store.series[k]
		if !ok {
			ts = testSeries{start: 19000, demand: weekly(300)}
		}
		return seriesSnapshot(ts, k, i, id)
	}
	var batches [][]*featurev1.FeatureSnapshot
	var b1 []*featurev1.FeatureSnapshot
	for i, k := range keys[:600] {
		b1 = append(b1, snap(k, 100, fmt.Sprint("a", i)))
		if i%50 == 0 {
			b1 = append(b1, snap(k, 100, fmt.Sprint("a2-", i)), // the same day again: incremental
				&featurev1.FeatureSnapshot{EventId: fmt.Sprint("item", i), SeriesKey: "S1", AsOfDay: "2024-01-01"},
				&featurev1.FeatureSnapshot{EventId: fmt.Sprint("bad", i), SeriesKey: keys[600+i/50], AsOfDay: "not a day"})
		}
	}
	b1 = append(b1, snap("NEW|L0", 100, "new")) // not in the store
	batches = append(batches, b1)
	b2 := []*featurev1.FeatureSnapshot{
		snap(keys[0], 101, "b0"),   // evicted (600 cached at most): rebuilt
		snap(keys[599], 101, "b1"), // in memory: advanced
		snap(keys[598], 200, "b2"), // a gap: rebuilt, not prefetched
		snap(keys[597], 50, "b3"),  // a replay of an older day: rebuilt
		snap(keys[598], 201, "b4"),
	}
	for i, k := range keys[600:] {
		b2 = append(b2, snap(k, 150, fmt.Sprint("c", i)), snap(k, 151, fmt.Sprint("c2-", i)))
	}
	batches = append(batches, b2)

	run := func(src HistorySource, prefetch bool) (out []string, st Stats) {
		sc := New(testConfig(600), src, fixedClock)
		for _, snaps := range batches {
			b := sc.Begin()
			if prefetch {
				b.Prefetch(snaps)
			}
			for _, s := range snaps {
				res, err := b.Score(context.Background(), s)
				if err != nil {
					out = append(out, "error: "+err.Error())
					continue
				}
				raw, err := proto.MarshalOptions{Deterministic: true}.Marshal(res.Event)
				if err != nil {
					t.Fatal(err)
				}
				out = append(out, string(raw)+fmt.Sprint(res.Components))
			}
			b.Commit()
		}
		return out, sc.Stats()
	}
	alone := &storedSeries{series: store.series}
	want, wantStats := run(singleOnly{alone}, false)
	got, gotStats := run(store, true)
	if len(got) != len(want) {
		t.Fatalf("%d results with prefetching, %d without", len(got), len(want))
	}
	errs := 0
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("result %d differs with prefetching:\n%q\nwithout:\n%q", i, got[i], want[i])
		}
		if len(want[i]) > 6 && want[i][:6] == "error:" {
			errs++
		}
	}
	if errs != 12 || gotStats != wantStats || wantStats.Rebuilds != int64(alone.single) {
		t.Errorf("%d errors (want 12), stats %+v with prefetching, %+v without (%d calls)", errs, gotStats, wantStats, alone.single)
	}
	// 601 new series in batch 1 (256 + 256 + 89); in batch 2 the evicted
	// series and the 100 new ones together (101), the gap and the replay
	// alone (the prefetched ones not used yet).
	if store.calls != 4 || store.asked != 601+101 || store.single != 2 {
		t.Errorf("%d GetHistories calls of %d series and %d single calls, want 4 of 702 and 2", store.calls, store.asked, store.single)
	}
}

// TestPrefetchError: a failed fetch fails the snapshot's Score with a
// retryable error (not ErrInvalidSnapshot); the batch retried gives the
// forecasts of a batch that never failed.
func TestPrefetchError(t *testing.T) {
	store := &storedSeries{series: map[string]testSeries{}, fail: errors.New("feature service down")}
	var snaps []*featurev1.FeatureSnapshot
	for i := range 10 {
		k := fmt.Sprintf("S%d|L", i)
		store.series[k] = testSeries{start: 19000, demand: weekly(200)}
		snaps = append(snaps, seriesSnapshot(store.series[k], k, 150, fmt.Sprint("e", i)))
	}
	sc := New(testConfig(100), store, fixedClock)
	b := sc.Begin()
	b.Prefetch(snaps)
	if _, err := b.Score(context.Background(), snaps[0]); err == nil || errors.Is(err, ErrInvalidSnapshot) || !errors.Is(err, store.fail) {
		t.Fatalf("score with the store down: %v", err)
	}
	store.fail = nil
	fresh := New(testConfig(100), singleOnly{store}, fixedClock)
	for _, sc := range []*Scorer{sc, fresh} {
		b := sc.Begin()
		b.Prefetch(snaps)
		for _, s := range snaps {
			if _, err := b.Score(context.Background(), s); err != nil {
				t.Fatal(err)
			}
		}
		b.Commit()
	}
	for _, s := range snaps {
		a, _ := sc.Latest(s.GetSeriesKey())
		f, _ := fresh.Latest(s.GetSeriesKey())
		if a == nil || f == nil || !proto.Equal(a.Event, f.Event) {
			t.Fatalf("%s: retried %v, fresh %v", s.GetSeriesKey(), a, f)
		}
	}
	if store.calls != 2 {
		t.Errorf("%d GetHistories calls, want 2 (the failed one, the retry)", store.calls)
	}
}
