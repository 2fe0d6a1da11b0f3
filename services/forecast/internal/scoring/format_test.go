package scoring

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"testing"

	"github.com/stockcast/stockcast/pkg/forecasting"
	forecastv1 "github.com/stockcast/stockcast/proto/stockcast/forecast/v1"
)

// formatValues are values the reasons and components format: ordinary,
// rounding halves, tiny, huge, signed zeros and the special values.
var formatValues = []float64{0, math.Copysign(0, -1), 1, -1, 0.5, 1.5, 2.5, -2.5, 0.125, 0.0005, -0.0005, 0.12345, 4.1, 4.25,
	-0.031, 1e-9, -1e-9, 123456.789, 1e21, -1e300, math.SmallestNonzeroFloat64, math.MaxFloat64,
	math.Inf(1), math.Inf(-1), math.NaN(), math.Float64frombits(math.Float64bits(math.NaN()) | 1<<63)}

// TestFormatsAsFmt: the appends that replaced fmt.Sprintf on the per-event
// path write what fmt wrote, byte for byte.
func TestFormatsAsFmt(t *testing.T) {
	for _, v := range formatValues {
		for prec := range 5 {
			if got, want := string(appendFixed(nil, v, prec)), fmt.Sprintf("%.*f", prec, v); got != want {
				t.Errorf("appendFixed(%v, %d) = %q, fmt %q", v, prec, got, want)
			}
			if got, want := string(appendSigned([]byte("x"), v, prec)), "x"+fmt.Sprintf("%+.*f", prec, v); got != want {
				t.Errorf("appendSigned(%v, %d) = %q, fmt %q", v, prec, got, want)
			}
		}
		for _, w := range formatValues {
			got := memberDetail("holt_winters", v, w)
			if want := fmt.Sprintf("%s has the largest weight (one-step RMSE %.3f, MAE %.3f)", "holt_winters", v, w); got != want {
				t.Errorf("memberDetail(%v, %v) = %q, want %q", v, w, got, want)
			}
		}
	}
	var attrs []*forecastv1.Attribution
	want := ""
	for i, v := range formatValues {
		a := &forecastv1.Attribution{Feature: fmt.Sprintf("f%d", i), Change: v}
		attrs = append(attrs, a)
		if i > 0 {
			want += ", "
		}
		want += fmt.Sprintf("%s %+.3f", a.GetFeature(), a.GetChange())
		if got := factorText(attrs); got != want {
			t.Fatalf("factorText = %q, want %q", got, want)
		}
	}
	shortest := append([]float64{999999, 1e6, -999999, 100000, 12, -7, 0.1, 1e-5, 2.5e5}, formatValues...)
	for i := -1000; i <= 1000; i++ {
		shortest = append(shortest, float64(i), float64(i)*997, float64(i)+0.5)
	}
	for _, v := range shortest {
		if got, want := string(appendShortest([]byte("x"), v)), "x"+strconv.FormatFloat(v, 'g', -1, 64); got != want {
			t.Errorf("appendShortest(%v) = %q, want %q", v, got, want)
		}
	}
}

// TestMovedMostAsSorted: the one-pass pick of the most moved attributions
// equals the first maxFactors of a stable sort, with ties, zeros, signs,
// NaN and fewer attributions than maxFactors.
func TestMovedMostAsSorted(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 5))
	choices := []float64{0, 0, 0.5, -0.5, 1, -1, 0.25, 2, -2, math.Copysign(0, -1), 1e-9}
	for trial := range 5000 {
		n := rng.IntN(25)
		attrs := make([]*forecastv1.Attribution, n)
		for k := range attrs {
			c := choices[rng.IntN(len(choices))]
			if trial%3 == 0 {
				c = rng.NormFloat64()
			}
			if trial%97 == 0 && k == n/2 {
				c = math.NaN()
			}
			attrs[k] = &forecastv1.Attribution{Feature: fmt.Sprint(k), Change: c}
		}
		got, want := movedMost(attrs), movedMostSorted(attrs)
		if len(got) != len(want) {
			t.Fatalf("trial %d: %d moved, want %d", trial, len(got), len(want))
		}
		for i := range got {
			if got[i] != want[i] {
				t.Fatalf("trial %d: moved[%d] = %s, want %s", trial, i, got[i].GetFeature(), want[i].GetFeature())
			}
		}
	}
}

// TestDetailTables: the component details made once are the texts made
// on every event before.
func TestDetailTables(t *testing.T) {
	for _, c := range []forecasting.Class{forecasting.ClassNew, forecasting.ClassSmooth, forecasting.ClassErratic,
		forecasting.ClassIntermittent, forecasting.ClassLumpy, "other"} {
		if got, want := classDetail(c), "average days between demands (class "+string(c)+")"; got != want {
			t.Errorf("classDetail(%s) = %q, want %q", c, got, want)
		}
	}
	for d := forecasting.Day(19000); d < 19007; d++ {
		if got, want := weekdayDetails[d.Time().Weekday()], "weekly-seasonal multiplier of "+d.Time().Weekday().String(); got != want {
			t.Errorf("weekday detail of %s = %q, want %q", d, got, want)
		}
	}
}
