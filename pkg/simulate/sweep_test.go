package simulate

import (
	"strings"
	"testing"

	"github.com/stockcast/stockcast/pkg/forecasting"
)

// TestWriteClassComparison: each policy's row is its point nearest
// stockcast's achieved fill (93%): classic's 94% point (1 point away)
// rather than its 90% one; a class a point lacks is left blank.
func TestWriteClassComparison(t *testing.T) {
	res := func(sold, demand float64) Result { return Result{Series: 1, Days: 1, Sold: sold, Demand: demand} }
	points := []Point{
		{Policy: "stockcast", Target: 0.95, Total: res(93, 100), ByClass: map[forecasting.Class]Result{
			forecasting.ClassSmooth: res(45, 50), forecasting.ClassLumpy: res(48, 50)}},
		{Policy: "classic", Target: 0.9, Total: res(90, 100), ByClass: map[forecasting.Class]Result{
			forecasting.ClassSmooth: res(40, 50), forecasting.ClassLumpy: res(50, 50)}},
		{Policy: "classic", Target: 0.99, Total: res(94, 100), ByClass: map[forecasting.Class]Result{
			forecasting.ClassLumpy: res(47, 50)}},
	}
	specs := []Spec{{Name: "stockcast"}, {Name: "classic"}}
	var b strings.Builder
	writeClassComparison(&b, points, specs, 0.93)
	want := `
by demand class, each policy at its swept point nearest 93.00% overall:

| policy | target | fill rate | smooth | lumpy |
|---|---:|---:|---:|---:|
| stockcast | 0.95 | 93.00% | 90.00% | 96.00% |
| classic | 0.99 | 94.00% | | 94.00% |
`
	if got := b.String(); got != want {
		t.Errorf("table:\n%s\nwant:\n%s", got, want)
	}
	if _, ok := NearestPoint(points, "odoo-minmax", 0.93); ok {
		t.Error("NearestPoint found a point of a policy without points")
	}
}
