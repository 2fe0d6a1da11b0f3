// Package loadgen generates synthetic but realistic order-line streams for
// load tests: a fixed number of series whose popularity follows a Zipf law,
// paced by a steady or bursty rate profile, deterministic for a seed. The
// `stockcast loadgen` command produces them into a running pipeline and
// measures what comes out (runner.go).
package loadgen

import (
	"fmt"
	"math"
	"sort"
)

// Zipf draws series ranks 0..n-1 with P(k) proportional to 1/(k+1)^s. Unlike
// math/rand's Zipf it accepts any s >= 0 (s = 0 is uniform; real catalogues
// are near s = 1, which math/rand excludes). It keeps the cumulative
// distribution, 8 bytes per series, and draws by binary search.
type Zipf struct {
	s   float64
	cdf []float64 // cdf[k] = P(rank <= k); cdf[n-1] = 1
}

// NewZipf returns the distribution over n ranks with exponent s.
func NewZipf(n int, s float64) (*Zipf, error) {
	if n < 1 {
		return nil, fmt.Errorf("zipf: %d series: want at least 1", n)
	}
	if s < 0 || math.IsNaN(s) || math.IsInf(s, 0) {
		return nil, fmt.Errorf("zipf: exponent %v: want a finite number >= 0", s)
	}
	cdf := make([]float64, n)
	var sum float64
	for k := range cdf {
		sum += math.Pow(float64(k+1), -s)
		cdf[k] = sum
	}
	for k := range cdf {
		cdf[k] /= sum
	}
	cdf[n-1] = 1
	return &Zipf{s: s, cdf: cdf}, nil
}

// N returns the number of ranks.
func (z *Zipf) N() int { return len(z.cdf) }

// Prob returns P(rank = k).
func (z *Zipf) Prob(k int) float64 {
	if k == 0 {
		return z.cdf[0]
	}
	return z.cdf[k] - z.cdf[k-1]
}

// Rank maps u in [0, 1) to its rank: the smallest k with u < cdf[k]
// (inverse transform sampling).
func (z *Zipf) Rank(u float64) int {
	k := sort.Search(len(z.cdf), func(i int) bool { return u < z.cdf[i] })
	return min(k, len(z.cdf)-1)
}
