package replenish

import (
	"errors"
	"math"
	"testing"
)

// binomialPMF is C(n, k) p^k (1-p)^(n-k), from log-gamma.
func binomialPMF(n, k int, p float64) float64 {
	lg := func(x int) float64 { v, _ := math.Lgamma(float64(x) + 1); return v }
	return math.Exp(lg(n) - lg(k) - lg(n-k) + float64(k)*math.Log(p) + float64(n-k)*math.Log1p(-p))
}

// TestCompoundBernoulliFixedSize: iid occurrence p and one size m make the
// total over n days m times a binomial(n, p): every quantile and the mean
// against the binomial's.
func TestCompoundBernoulliFixedSize(t *testing.T) {
	levels := []float64{0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.999}
	for _, tc := range []struct {
		p float64
		m float64
		n int
	}{{0.2, 3, 14}, {0.05, 1, 7}, {0.6, 5, 21}, {0.35, 2, 1}} {
		c := Compound{P01: tc.p, P11: tc.p, Sizes: []float64{tc.m}}
		means, qs, err := c.LeadTime([]int{tc.n}, levels)
		if err != nil {
			t.Fatal(err)
		}
		if want := float64(tc.n) * tc.p * tc.m; math.Abs(means[0]-want) > 1e-9 {
			t.Errorf("%+v: mean %v, want %v", tc, means[0], want)
		}
		for i, l := range levels {
			// Smallest k with P(K <= k) >= l.
			cum, k := 0.0, 0
			for ; k <= tc.n; k++ {
				cum += binomialPMF(tc.n, k, tc.p)
				if cum >= l-1e-12 {
					break
				}
			}
			if want := float64(k) * tc.m; qs[0][i] != want {
				t.Errorf("%+v: quantile %v = %v, want %v", tc, l, qs[0][i], want)
			}
		}
	}
}

// TestCompoundMarkovTwoDays: the chain over two days, by hand. Starting
// after a day without demand: P(0) = (1-p01)^2, P(2) = p01 p11, P(1) the
// rest; after a day with demand p11 replaces the first p01.
func TestCompoundMarkovTwoDays(t *testing.T) {
	p01, p11 := 0.2, 0.7
	for _, last := range []bool{false, true} {
		first := p01
		if last {
			first = p11
		}
		want := []float64{(1 - first) * (1 - p01), 0, first * p11}
		want[1] = 1 - want[0] - want[2]
		got := occurrenceCounts(p01, p11, last, 2)[2]
		for k := range want {
			if math.Abs(got[k]-want[k]) > 1e-12 {
				t.Errorf("last %v: P(%d) = %v, want %v", last, k, got[k], want[k])
			}
		}
		// Sizes 1: the quantiles are the counts'. Levels between the
		// cumulative probabilities pick each count.
		c := Compound{P01: p01, P11: p11, Last: last, Sizes: []float64{1}}
		levels := []float64{want[0] - 0.01, want[0] + want[1] - 0.01, want[0] + want[1] + 0.01}
		means, qs, err := c.LeadTime([]int{2}, levels)
		if err != nil {
			t.Fatal(err)
		}
		if qs[0][0] != 0 || qs[0][1] != 1 || qs[0][2] != 2 {
			t.Errorf("last %v: quantiles %v, want [0 1 2]", last, qs[0])
		}
		if m := want[1] + 2*want[2]; math.Abs(means[0]-m) > 1e-12 {
			t.Errorf("last %v: mean %v, want %v", last, means[0], m)
		}
	}
}

// TestCompoundSizes: demand every day, sizes 1 or 3 equally likely: over
// two days 2, 4, 6 with probabilities 1/4, 1/2, 1/4; over one day 1 or 3.
func TestCompoundSizes(t *testing.T) {
	c := Compound{P01: 1, P11: 1, Sizes: []float64{1, 3}}
	means, qs, err := c.LeadTime([]int{2, 1}, []float64{0.2, 0.3, 0.7, 0.8})
	if err != nil {
		t.Fatal(err)
	}
	if want := []float64{2, 4, 4, 6}; !equal(qs[0], want) {
		t.Errorf("2 days: %v, want %v", qs[0], want)
	}
	if want := []float64{1, 1, 3, 3}; !equal(qs[1], want) {
		t.Errorf("1 day: %v, want %v", qs[1], want)
	}
	if means[0] != 4 || means[1] != 2 {
		t.Errorf("means %v, want [4 2]", means)
	}
}

func equal(a, b []float64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestCompoundWindows: the number of demand days comes from the record's
// windows: T F F T T F has 2-day windows with 1, 0, 1, 2, 1 demand days.
func TestCompoundWindows(t *testing.T) {
	occ := []bool{true, false, false, true, true, false}
	got := windowCounts(occ, []int{2}, 2)[2]
	want := []float64{0.2, 0.6, 0.2}
	for k := range want {
		if math.Abs(got[k]-want[k]) > 1e-12 {
			t.Errorf("P(%d) = %v, want %v", k, got[k], want[k])
		}
	}
	c := Compound{Occurred: occ, Sizes: []float64{4}}
	means, qs, err := c.LeadTime([]int{2}, []float64{0.1, 0.5, 0.9})
	if err != nil {
		t.Fatal(err)
	}
	if !equal(qs[0], []float64{0, 4, 8}) || math.Abs(means[0]-4) > 1e-12 {
		t.Errorf("quantiles %v mean %v, want [0 4 8] and 4", qs[0], means[0])
	}
	if _, _, err := (Compound{Occurred: occ[:1], Sizes: []float64{4}}).LeadTime([]int{2}, []float64{0.5}); err == nil {
		t.Error("1 day of record for 2 days: no error")
	}
}

// TestCompoundGrid: a total larger than CompoundBins steps goes on a
// coarser grid, a size between two steps split between them so that the
// mean is exact.
func TestCompoundGrid(t *testing.T) {
	c := Compound{P01: 1, P11: 1, Sizes: []float64{1001}}
	// Width ceil(1001/512) = 2: 1001 is half 1000, half 1002.
	means, qs, err := c.LeadTime([]int{1}, []float64{0.4, 0.6})
	if err != nil {
		t.Fatal(err)
	}
	if means[0] != 1001 || !equal(qs[0], []float64{1000, 1002}) {
		t.Errorf("mean %v quantiles %v, want 1001 and [1000 1002]", means[0], qs[0])
	}
}

// TestCompoundJitter: one size of 16, jittered: round(16 + 4Z). Its 0.9
// quantile is 21 (P(X <= 21) = Phi(5.5/4) = 0.915, P(X <= 20) =
// Phi(4.5/4) = 0.870), its median 16, its mean 16 up to the mass put back
// at 16 (below 1 and beyond 4 sd: 7e-5 of the probability, which moves the
// mean by less than 1e-3).
func TestCompoundJitter(t *testing.T) {
	c := Compound{P01: 1, P11: 1, Sizes: []float64{16}, Jitter: true}
	means, qs, err := c.LeadTime([]int{1}, []float64{0.1, 0.5, 0.9})
	if err != nil {
		t.Fatal(err)
	}
	if !equal(qs[0], []float64{11, 16, 21}) {
		t.Errorf("quantiles %v, want [11 16 21]", qs[0])
	}
	if math.Abs(means[0]-16) > 1e-3 {
		t.Errorf("mean %v, want 16", means[0])
	}
}

func TestCompoundErrors(t *testing.T) {
	if _, _, err := (Compound{P01: 0.5, P11: 0.5}).LeadTime([]int{7}, []float64{0.5}); !errors.Is(err, ErrNoSizes) {
		t.Errorf("no sizes: %v", err)
	}
	// No demand at all: every quantile 0.
	_, qs, err := Compound{}.LeadTime([]int{7, 0}, []float64{0.5, 0.99})
	if err != nil || !equal(qs[0], []float64{0, 0}) || !equal(qs[1], []float64{0, 0}) {
		t.Errorf("no demand: %v %v", qs, err)
	}
}
