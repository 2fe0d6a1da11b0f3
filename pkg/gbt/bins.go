package gbt

import (
	"math"
	"slices"
)

// maxBins is the number of value bins per feature; bin 0 holds missing
// values (NaN), so a feature has at most maxBins-1 cut points.
const maxBins = 256

// binner maps a feature's raw values to bins by its cut points: value v is
// in bin 1 + (the number of cuts below v); bin 0 is NaN. A split "bin <= b
// goes left" is the raw test "v <= cuts[b-1]" (NaN left).
type binner struct {
	cuts [][]float64 // per feature, ascending
}

// newBinner picks up to maxBins-2 cut points per feature at the quantiles
// of (at most sampleRows of) its values: every distinct value when there
// are few. It is deterministic.
func newBinner(x Matrix, sampleRows int) binner {
	b := binner{cuts: make([][]float64, x.Cols)}
	step := max(1, x.Rows/max(sampleRows, 1))
	vals := make([]float64, 0, x.Rows/step+1)
	for f := range x.Cols {
		vals = vals[:0]
		for r := 0; r < x.Rows; r += step {
			if v := x.At(r, f); !math.IsNaN(v) {
				vals = append(vals, v)
			}
		}
		slices.Sort(vals)
		distinct := slices.Compact(slices.Clone(vals))
		var cuts []float64
		if len(distinct) <= maxBins-2 {
			cuts = distinct
		} else {
			k := maxBins - 2
			for i := 1; i <= k; i++ {
				v := vals[min(len(vals)-1, i*len(vals)/(k+1))]
				if len(cuts) == 0 || v > cuts[len(cuts)-1] {
					cuts = append(cuts, v)
				}
			}
		}
		b.cuts[f] = cuts
	}
	return b
}

func (b *binner) bin(f int, v float64) uint8 {
	if math.IsNaN(v) {
		return 0
	}
	c := b.cuts[f]
	i, _ := slices.BinarySearch(c, v) // first cut >= v
	return uint8(1 + i)
}

// threshold returns the raw-value threshold of "bin <= bn goes left".
func (b *binner) threshold(f int, bn int) float64 {
	c := b.cuts[f]
	// finite stand-ins for -Inf and +Inf, so that a model encodes as JSON
	if bn == 0 {
		return -math.MaxFloat64
	}
	if bn-1 >= len(c) {
		return math.MaxFloat64
	}
	return c[bn-1]
}

// binned returns the matrix's bins, column-major.
func (b *binner) binned(x Matrix) [][]uint8 {
	out := make([][]uint8, x.Cols)
	for f := range x.Cols {
		col := make([]uint8, x.Rows)
		for r := range x.Rows {
			col[r] = b.bin(f, x.At(r, f))
		}
		out[f] = col
	}
	return out
}
