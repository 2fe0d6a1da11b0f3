package store

import (
	"context"
	"math"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	forecastv1 "github.com/stockcast/stockcast/proto/stockcast/forecast/v1"
	"github.com/stockcast/stockcast/services/forecast/internal/scoring"
)

// TestPrevious: the forecast Previous reads back for a series is the one
// logged from its latest snapshot on the same partition before the batch
// asked about (refs: the first snapshot of each series in it) with the
// latest start day (a late event's forecast does not replace it), the
// last one logged for a snapshot scored twice; rows of the snapshot asked
// about and later ones (a batch that did not commit), rows of another
// partition and rows without a source are not read. Its means, components
// and global version are the logged ones bit for bit; hostile keys are
// parameters.
func TestPrevious(t *testing.T) {
	ctx := context.Background()
	log, _ := openLog(t)
	day := time.Date(2011, 3, 4, 10, 30, 0, 0, time.UTC)
	mk := func(key, id string, start time.Time, mean float64, version string) *scoring.Result {
		r := result(id, start, mean)
		r.Event.SeriesKey = key
		// a mean whose sum with the next day's is not exact
		r.Event.Daily[1].Mean = mean/3 + 0.1
		r.Components = []scoring.Component{{Name: "trend", Value: -0.5}, {Name: "level", Value: mean / 7, Detail: "l"}}
		if version != "" {
			r.Event.Global = &forecastv1.GlobalForecast{Version: version, Means: []float64{1.5}}
		}
		return r
	}
	hostile := "x'); DROP TABLE forecast_log; --|on\\line"
	rows := []struct {
		res *scoring.Result
		src *Source // nil: Insert, without a source
	}{
		{mk("A|online", "a10", day, 3, ""), &Source{1, 10}},
		{mk("A|online", "a20", day, 4.1, "gbt-1"), &Source{1, 20}},
		{mk("A|online", "a25", day.AddDate(0, 0, -1), 9, ""), &Source{1, 25}}, // late: an earlier start
		{mk("A|online", "a30", day.AddDate(0, 0, 1), 5, "gbt-1"), &Source{1, 30}},
		{mk("A|online", "a30b", day.AddDate(0, 0, 1), 6.3, "gbt-2"), &Source{1, 30}}, // scored again after a model swap
		{mk("A|online", "a40", day.AddDate(0, 0, 2), 7, ""), &Source{1, 40}},         // not committed
		{mk("A|online", "a99", day.AddDate(0, 0, 5), 8, ""), nil},
		{mk("B|online", "b5", day, 2, ""), &Source{2, 5}},
		{mk(hostile, "h1", day, 1.7, ""), &Source{0, 3}},
	}
	for i, r := range rows {
		r.res.Event.IssuedAt = timestamppb.New(day.Add(time.Duration(i) * time.Millisecond))
		var err error
		if r.src == nil {
			err = log.Insert(ctx, []*scoring.Result{r.res})
		} else {
			err = log.InsertFrom(ctx, []*scoring.Result{r.res}, []Source{*r.src})
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct {
		name string
		refs []PreviousRef
		want map[string]*scoring.Result
	}{
		{"latest before the snapshot", []PreviousRef{{"A|online", Source{1, 40}}}, map[string]*scoring.Result{"A|online": rows[4].res}},
		{"a later row left out", []PreviousRef{{"A|online", Source{1, 30}}}, map[string]*scoring.Result{"A|online": rows[1].res}},
		{"none before", []PreviousRef{{"A|online", Source{1, 10}}}, map[string]*scoring.Result{}},
		{"several series, one query", []PreviousRef{{"A|online", Source{1, 26}}, {"B|online", Source{2, 6}}, {"C|online", Source{1, 27}}, {hostile, Source{0, 4}}},
			map[string]*scoring.Result{"A|online": rows[1].res, "B|online": rows[7].res, hostile: rows[8].res}},
		{"another partition", []PreviousRef{{"B|online", Source{1, 6}}}, map[string]*scoring.Result{}},
	} {
		got, err := log.Previous(ctx, c.refs)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if len(got) != len(c.want) {
			t.Errorf("%s: %d forecasts, want %d", c.name, len(got), len(c.want))
		}
		for key, want := range c.want {
			g := got[key]
			if g == nil {
				t.Errorf("%s: no forecast of %s", c.name, key)
				continue
			}
			if g.Event.GetStartDay() != want.Event.GetStartDay() || g.Event.GetGlobal().GetVersion() != want.Event.GetGlobal().GetVersion() ||
				len(g.Event.GetDaily()) != len(want.Event.GetDaily()) || len(g.Components) != len(want.Components) {
				t.Errorf("%s: %s: start %s, version %q, %d days, %d components; want the forecast of %s",
					c.name, key, g.Event.GetStartDay(), g.Event.GetGlobal().GetVersion(), len(g.Event.GetDaily()), len(g.Components), want.Event.GetEventId())
				continue
			}
			for i, d := range want.Event.GetDaily() {
				if math.Float64bits(g.Event.GetDaily()[i].GetMean()) != math.Float64bits(d.GetMean()) {
					t.Errorf("%s: %s: day %d mean %v, want %v", c.name, key, i, g.Event.GetDaily()[i].GetMean(), d.GetMean())
				}
			}
			for i, comp := range want.Components {
				if g.Components[i] != comp {
					t.Errorf("%s: %s: component %v, want %v", c.name, key, g.Components[i], comp)
				}
			}
		}
	}
	// more series than one query holds
	refs := make([]PreviousRef, PreviousChunk+1)
	for i := range refs {
		refs[i] = PreviousRef{SeriesKey: "none|" + string(rune('a'+i%26)) + time.Duration(i).String(), At: Source{1, 100}}
	}
	refs[PreviousChunk] = PreviousRef{"A|online", Source{1, 100}}
	got, err := log.Previous(ctx, refs)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got["A|online"].Event.GetStartDay() != rows[5].res.Event.GetStartDay() {
		t.Errorf("%d series over two queries: %v", len(refs), got)
	}
}
