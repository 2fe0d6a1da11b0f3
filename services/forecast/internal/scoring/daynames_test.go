package scoring

import (
	"slices"
	"testing"

	"github.com/stockcast/stockcast/pkg/forecasting"
)

// TestScorerDayNames: the scorer's day names (kept for the latest start
// day, shifted by one for the next) are dayNames' for any order of start
// days and horizons.
func TestScorerDayNames(t *testing.T) {
	sc := New(testConfig(10), nil, fixedClock)
	steps := []struct {
		start forecasting.Day
		n     int
	}{{19000, 28}, {19000, 28}, {19001, 28}, {19002, 28}, {19002, 7}, {19003, 7}, {18990, 28}, {18991, 28},
		{18991, 28}, {18992, 1}, {18993, 1}, {19059, 28}, {19060, 28}, {2932879, 28}, {2932880, 28}}
	for _, s := range steps {
		got, want := sc.dayNames(s.start, s.n), dayNames(s.start, s.n)
		if !slices.Equal(got, want) {
			t.Fatalf("start %d, %d days: %q, want %q", s.start, s.n, got, want)
		}
	}
}
