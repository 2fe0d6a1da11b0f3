package scoring

import (
	"math"
	"math/rand/v2"
	"strconv"
	"testing"
)

// TestFixedFastAsStrconv compares appendFixedFast with strconv's 'f'
// format, byte for byte, on edge cases (signed zeros, halves, numbers
// next to a rounding boundary, NaN, infinities, magnitudes beyond the
// integer path) and 500,000 random numbers of every scale.
func TestFixedFastAsStrconv(t *testing.T) {
	check := func(v float64, prec int) {
		t.Helper()
		got := string(appendFixedFast([]byte("x"), v, prec))
		if want := string(strconv.AppendFloat([]byte("x"), v, 'f', prec, 64)); got != want {
			t.Fatalf("%v (%#x) at %d decimals: %q, want %q", v, math.Float64bits(v), prec, got, want)
		}
	}
	edge := []float64{0, math.Copysign(0, -1), 1, -1, 0.5, -0.5, 1.5, 2.5, 0.125, 0.375, 0.00005, -0.00005, 0.00015,
		0.00025, 1e-300, -1e-300, 5e-324, 0.99995, 0.999949999, 9.99995, 1e10, 1e11, 123456789.12345, 1e15, 1e16,
		1e300, -1e300, math.MaxFloat64, math.Inf(1), math.Inf(-1), math.NaN(), 0.1, 0.2, 0.3, 1.0 / 3, 2.0 / 3}
	for _, v := range edge {
		for prec := -1; prec <= 8; prec++ {
			check(v, prec)
			check(math.Nextafter(v, math.Inf(1)), prec)
			check(math.Nextafter(v, math.Inf(-1)), prec)
		}
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 500_000 {
		prec := rng.IntN(7)
		var v float64
		switch rng.IntN(4) {
		case 0: // any scale
			v = math.Float64frombits(rng.Uint64())
		case 1: // the scales of the texts: errors, contributions, levels
			v = (rng.Float64() - 0.5) * math.Pow(10, float64(rng.IntN(16)-8))
		case 2: // next to a rounding boundary of prec decimals: k+0.5 units
			unit := math.Pow(10, -float64(prec))
			v = (float64(rng.IntN(2_000_000)-1_000_000) + 0.5) * unit
			v = math.Nextafter(v, math.Inf(rng.IntN(2)*2-1))
		default: // exact multiples of a unit and their neighbours
			unit := math.Pow(10, -float64(prec+rng.IntN(3)))
			v = float64(rng.IntN(2_000_000)-1_000_000) * unit
			if rng.IntN(2) == 0 {
				v = math.Nextafter(v, math.Inf(rng.IntN(2)*2-1))
			}
		}
		check(v, prec)
	}
}

func BenchmarkFixedFast(b *testing.B) {
	vals := []float64{0.123456789, -0.0371, 1.5e-5, 12.3456, 0.00012, -3.25, 0.9999951, 2.718281828}
	buf := make([]byte, 0, 64)
	b.Run("strconv", func(b *testing.B) {
		for i := range b.N {
			buf = strconv.AppendFloat(buf[:0], vals[i%len(vals)], 'f', 4, 64)
		}
	})
	b.Run("fast", func(b *testing.B) {
		for i := range b.N {
			buf = appendFixedFast(buf[:0], vals[i%len(vals)], 4)
		}
	})
}
