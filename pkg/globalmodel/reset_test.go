package globalmodel

import (
	"math"
	"testing"

	"github.com/stockcast/stockcast/pkg/backtest"
)

// TestPanelResetEqualsNew: a panel Reset to a data set, after serving
// others (larger, smaller, with and without a calendar), has the rows of
// NewPanel of that data set, bit for bit.
func TestPanelResetEqualsNew(t *testing.T) {
	ds := tail(loadM5(t), 3, 200)
	short := &backtest.Dataset{Name: "short", Start: ds.Start, Days: 112, Series: []backtest.Series{ds.Series[1]}}
	short.Series[0].Values, short.Series[0].Prices = short.Series[0].Values[:112], short.Series[0].Prices[:112]
	sets := []*backtest.Dataset{
		ds, // three series with a calendar
		{Name: "one", Start: ds.Start, Days: ds.Days, Events: ds.Events, Series: ds.Series[:1]},
		short, // one series, no calendar, fewer days
		{Name: "two", Start: ds.Start, Days: ds.Days, Series: ds.Series[1:]},
		ds,
		short,
	}
	reused := NewPanel(sets[len(sets)-1])
	got, want := make([]float64, len(FeatureNames())), make([]float64, len(FeatureNames()))
	for _, d := range sets {
		reused.Reset(d)
		fresh := NewPanel(d)
		for i := range d.Series {
			for day := range d.Days {
				reused.Row(i, day, got)
				fresh.Row(i, day, want)
				for k := range got {
					if math.Float64bits(got[k]) != math.Float64bits(want[k]) {
						t.Fatalf("%s series %d day %d feature %s: %v, want %v", d.Name, i, day, FeatureNames()[k], got[k], want[k])
					}
				}
			}
			if reused.first[i] != fresh.first[i] {
				t.Fatalf("%s series %d: first sale %d, want %d", d.Name, i, reused.first[i], fresh.first[i])
			}
		}
	}
}
