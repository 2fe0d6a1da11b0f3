package forecasting

import (
	"math"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"
)

const day0 = Day(19000) // 2022-01-08, any day works

func observeAll(s *State, start Day, ys []float64) {
	for i, y := range ys {
		s.Observe(start+Day(i), y, false)
	}
}

func poissonSeries(seed uint64, n int, lambda float64) []float64 {
	rng := rand.New(rand.NewPCG(seed, seed+1))
	out := make([]float64, n)
	for i := range out {
		// Knuth's method: fine for the small means used here.
		l, k, p := math.Exp(-lambda), 0, 1.0
		for {
			p *= rng.Float64()
			if p <= l {
				break
			}
			k++
		}
		out[i] = float64(k)
	}
	return out
}

func constant(n int, v float64) []float64 {
	out := make([]float64, n)
	for i := range out {
		out[i] = v
	}
	return out
}

func TestDay(t *testing.T) {
	tests := []struct {
		in      string
		weekday int
	}{
		{"1970-01-01", 3}, {"2024-01-01", 0}, {"2011-12-09", 4}, {"2016-04-24", 6}, {"1969-12-31", 2},
	}
	for _, tt := range tests {
		d, err := ParseDay(tt.in)
		if err != nil {
			t.Fatal(err)
		}
		if d.String() != tt.in || d.Weekday() != tt.weekday {
			t.Errorf("%s: got %s weekday %d, want weekday %d", tt.in, d, d.Weekday(), tt.weekday)
		}
	}
	if _, err := ParseDay("2024-13-01"); err == nil {
		t.Error("ParseDay accepted month 13")
	}
	// String's own calendar arithmetic against time's, every day of
	// 1600-2400 (leap centuries included) and years outside 0-9999
	for d := Day(-135140); d <= Day(157000); d++ {
		if got, want := d.String(), d.Time().Format(time.DateOnly); got != want {
			t.Fatalf("day %d: %s, time says %s", d, got, want)
		}
	}
	for _, d := range []Day{-800000, -719529, -719528, 2932896, 2932897, 5000000} {
		if got, want := d.String(), d.Time().Format(time.DateOnly); got != want {
			t.Fatalf("day %d: %s, time says %s", d, got, want)
		}
	}
}

func TestConstantDemandConverges(t *testing.T) {
	tests := []struct {
		name   string
		series []float64
		want   float64
		tol    float64
	}{
		{"constant 5", constant(120, 5), 5, 1e-9},
		{"constant 0.5", constant(60, 0.5), 0.5, 1e-9},
		{"level shift 5 -> 12", append(constant(100, 5), constant(250, 12)...), 12, 0.12},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var s State
			observeAll(&s, day0, tt.series)
			f := s.Forecast(Request{StartDay: day0 + Day(len(tt.series))})
			if len(f.Means) != DefaultHorizon {
				t.Fatalf("%d means, want %d", len(f.Means), DefaultHorizon)
			}
			for h, m := range f.Means {
				if math.Abs(m-tt.want) > tt.tol {
					t.Fatalf("day %d mean %.6f, want %.6f ± %g", h, m, tt.want, tt.tol)
				}
			}
			if lt := f.LeadTime[len(f.LeadTime)-1]; math.Abs(lt.Mean-29*tt.want) > 29*tt.tol {
				t.Errorf("lead time %d mean %.4f, want %.4f", lt.Days, lt.Mean, 29*tt.want)
			}
		})
	}
}

func TestPoissonQuantilesKnownValues(t *testing.T) {
	levels := []float64{0.005, 0.05, 0.1, 0.5, 0.9, 0.95, 0.99, 0.995}
	tests := []struct {
		lambda float64
		want   []float64
	}{
		// P(X<=k) for Poisson(3): .0498 .1991 .4232 .6472 .8153 .9161 .9665 .9881 .9962
		{3, []float64{0, 1, 1, 3, 5, 6, 8, 8}},
		// Poisson(0.5): .6065 .9098 .9856 .9982
		{0.5, []float64{0, 0, 0, 0, 1, 2, 3, 3}},
		{0, []float64{0, 0, 0, 0, 0, 0, 0, 0}},
	}
	for _, tt := range tests {
		got := make([]float64, len(levels))
		countDist{Mean: tt.lambda, Dispersion: 1}.Quantiles(levels, got)
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("Poisson(%g) quantiles %v, want %v", tt.lambda, got, tt.want)
		}
	}
}

// bruteQuantiles sums the pmf from 0 with its closed form at every k.
func bruteQuantiles(mean, disp float64, levels []float64) []float64 {
	out := make([]float64, len(levels))
	cdf, k := 0.0, 0.0
	for i, q := range levels {
		for ; ; k++ {
			var logp float64
			if disp == 1 {
				logp = k*math.Log(mean) - mean - lgamma(k+1)
			} else {
				r, p := mean/(disp-1), 1/disp
				logp = lgamma(k+r) - lgamma(r) - lgamma(k+1) + r*math.Log(p) + k*math.Log(1-p)
			}
			if cdf+math.Exp(logp) >= q {
				break
			}
			cdf += math.Exp(logp)
		}
		out[i] = k
	}
	return out
}

func TestCountQuantilesMatchBruteForce(t *testing.T) {
	levels := DefaultQuantileLevels()
	for _, tt := range []struct{ mean, disp float64 }{
		{0.2, 1}, {7.5, 1}, {100, 1}, {650, 1}, {0.2, 3}, {4, 1.5}, {40, 6}, {300, 20},
	} {
		got := make([]float64, len(levels))
		countDist{Mean: tt.mean, Dispersion: tt.disp}.Quantiles(levels, got)
		if want := bruteQuantiles(tt.mean, tt.disp, levels); !reflect.DeepEqual(got, want) {
			t.Errorf("mean %g dispersion %g: quantiles %v, want %v", tt.mean, tt.disp, got, want)
		}
	}
}

// TestLargeSpreadApproximation bounds the error of the gamma approximation
// used beyond exactBelowSD against the exact quantiles, in standard
// deviations: small where the distribution has shape (mean/dispersion) of
// at least 1, larger for lumpy series with most mass at zero.
func TestLargeSpreadApproximation(t *testing.T) {
	levels := DefaultQuantileLevels()
	tests := []struct {
		mean, disp, maxErr float64
	}{
		{70000, 1, 0.01}, {60000, 5, 0.01}, {2000, 40, 0.01}, {1000, 300, 0.03}, {10000, 2000, 0.03},
		{356, 1595, 0.2},
	}
	for _, tt := range tests {
		c := countDist{Mean: tt.mean, Dispersion: tt.disp}
		if c.sd() <= exactBelowSD {
			t.Fatalf("mean %g dispersion %g: sd %.0f does not take the approximation", tt.mean, tt.disp, c.sd())
		}
		got := make([]float64, len(levels))
		c.Quantiles(levels, got)
		want := bruteQuantiles(tt.mean, tt.disp, levels)
		for i := range got {
			if err := math.Abs(got[i]-want[i]) / c.sd(); err > tt.maxErr {
				t.Errorf("mean %g dispersion %g level %g: %v, exact %v (%.3f sd off)", tt.mean, tt.disp, levels[i], got[i], want[i], err)
			}
		}
	}
}

func modelPart(s State) State {
	s.LastDay, s.HasDay, s.Censored = 0, false, 0
	s.RecentKnown, s.Week.Known, s.Month.Known, s.LeadKnown = 0, 0, 0, 0
	return s
}

func TestCensoredDaysLeaveModelUnchanged(t *testing.T) {
	var s State
	observeAll(&s, day0, poissonSeries(1, 200, 4))
	before := s
	req := Request{StartDay: day0 + 210}
	want := before.Forecast(req)
	for d := day0 + 200; d < day0+205; d++ {
		s.Observe(d, 0, true) // a stockout: zero sales say nothing about demand
	}
	if modelPart(s) != modelPart(before) {
		t.Fatal("censored days changed the model")
	}
	if s.LastDay != day0+204 || s.Censored != 5 {
		t.Errorf("LastDay %s Censored %d, want %s and 5", s.LastDay, s.Censored, day0+204)
	}
	if got := s.Forecast(req); !reflect.DeepEqual(got, want) {
		t.Error("censored days changed the forecast")
	}
	zeros := before
	for d := day0 + 200; d < day0+205; d++ {
		zeros.Observe(d, 0, false)
	}
	if zeros.Forecast(req).Means[0] >= want.Means[0] {
		t.Error("observing zeros instead did not lower the forecast: the test cannot tell censoring apart")
	}
}

func TestObserveIgnoresReplayedDays(t *testing.T) {
	var a, b State
	ys := poissonSeries(2, 90, 3)
	observeAll(&a, day0, ys)
	observeAll(&b, day0, ys[:60])
	observeAll(&b, day0, ys) // a replayed window: the first 60 days again
	if a != b {
		t.Error("replaying observed days changed the state")
	}
}

func TestForecastIsDeterministic(t *testing.T) {
	var a, b State
	ys := poissonSeries(3, 300, 2.5)
	observeAll(&a, day0, ys)
	observeAll(&b, day0, ys)
	req := Request{StartDay: day0 + 300, TodaySoFar: 1, IntradayShare: 0.3, LeadTimes: []int{3, 9}}
	if fa, fb := a.Forecast(req), b.Forecast(req); !reflect.DeepEqual(fa, fb) {
		t.Error("same history and request gave different forecasts")
	}
	data, err := a.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	var c State
	if err := c.UnmarshalBinary(data); err != nil {
		t.Fatal(err)
	}
	if c != a {
		t.Error("state changed in a marshal round trip")
	}
	if err := c.UnmarshalBinary(data[:len(data)-1]); err == nil {
		t.Error("UnmarshalBinary accepted a truncated state")
	}
}

func TestLeadTimeOfIIDPoissonIsPoisson(t *testing.T) {
	levels := DefaultQuantileLevels()
	// Slow series (say 0.3 a day) are left to TestLeadTimeCalibration: with
	// a handful of sales in the model's memory the level's own error is
	// large and their lead-time distributions rightly wider than Poisson.
	for _, lambda := range []float64{4, 25} {
		var s State
		observeAll(&s, day0, poissonSeries(uint64(lambda*10), 1500, lambda))
		f := s.Forecast(Request{StartDay: day0 + 1500, QuantileLevels: levels})
		for _, lt := range f.LeadTime {
			days := float64(lt.Days + 1) // the whole of today (share 0) and lt.Days more
			// The model estimates lambda from the last weeks: allow 4
			// standard errors of a 30-day mean.
			if se := days * math.Sqrt(lambda/30); math.Abs(lt.Mean-days*lambda) > 4*se {
				t.Errorf("lambda %g L=%d: mean %.3f, want %.3f ± %.3f", lambda, lt.Days, lt.Mean, days*lambda, 4*se)
			}
			if lt.Days > 7 {
				continue // further out the level's own error widens the distribution (see TestLeadTimeCalibration)
			}
			// Given the level, a sum of iid Poisson days is Poisson.
			want := make([]float64, len(levels))
			countDist{Mean: lt.Mean, Dispersion: 1}.Quantiles(levels, want)
			for i := range levels {
				if tol := max(1, 0.05*want[i]); math.Abs(lt.Quantiles[i]-want[i]) > tol {
					t.Errorf("lambda %g L=%d level %g: %v, want Poisson(%.1f) %v", lambda, lt.Days, levels[i], lt.Quantiles[i], lt.Mean, want[i])
				}
			}
		}
	}
}

// TestLeadTimeCalibration checks on many iid Poisson series that the
// lead-time quantiles cover the demand that follows as often as they claim,
// the level's estimation error included.
func TestLeadTimeCalibration(t *testing.T) {
	const series, history = 400, 400
	leadTimes := []int{7, 28}
	levels := []float64{0.05, 0.5, 0.95}
	for _, lambda := range []float64{0.3, 4} {
		covered := make([][]float64, len(leadTimes))
		for i := range covered {
			covered[i] = make([]float64, len(levels))
		}
		for n := range series {
			ys := poissonSeries(uint64(1000+n), history+29, lambda)
			var s State
			observeAll(&s, day0, ys[:history])
			f := s.Forecast(Request{StartDay: day0 + history, QuantileLevels: levels, LeadTimes: leadTimes})
			for i, lt := range f.LeadTime {
				actual := 0.0
				for _, y := range ys[history : history+lt.Days+1] {
					actual += y
				}
				for j, q := range lt.Quantiles {
					if actual <= q {
						covered[i][j] += 1.0 / series
					}
				}
			}
		}
		for i, l := range leadTimes {
			for j, level := range levels {
				// Discrete quantiles cover at least their level: the true
				// distribution's (Poisson of lambda*(L+1)) covers exact, up to
				// +0.07 here; the level is estimated per series, which costs a
				// few points of coverage (-0.06: at L=28 a level error weighs
				// 29 times) and can add a few (+0.04).
				q := make([]float64, 1)
				CountQuantiles(lambda*float64(l+1), 1, []float64{level}, q)
				exact := CountCDF(lambda*float64(l+1), 1, q[0])
				if got := covered[i][j]; got < level-0.06 || got > exact+0.04 {
					t.Errorf("lambda %g L=%d: quantile %.2f covered %.3f of outcomes", lambda, l, level, got)
				} else {
					t.Logf("lambda %g L=%d: quantile %.2f covered %.3f of outcomes", lambda, l, level, got)
				}
			}
		}
	}
}

func TestLeadTimeIsNotASumOfDailyQuantiles(t *testing.T) {
	var s State
	observeAll(&s, day0, poissonSeries(5, 400, 3))
	f := s.Forecast(Request{StartDay: day0 + 400, LeadTimes: []int{13}})
	sumHigh, sumLow := 0.0, 0.0
	last := len(f.QuantileLevels) - 1
	for h := 0; h <= 13; h++ {
		sumHigh += f.Quantiles[h][last]
		sumLow += f.Quantiles[h][0]
	}
	lt := f.LeadTime[0]
	if !(lt.Quantiles[last] < sumHigh && lt.Quantiles[0] > sumLow) {
		t.Errorf("lead-time 0.5%%..99.5%% = %v..%v, daily sums %v..%v: tails should pool", lt.Quantiles[0], lt.Quantiles[last], sumLow, sumHigh)
	}
}

func TestIntradayToday(t *testing.T) {
	var s State
	observeAll(&s, day0, constant(100, 10))
	tests := []struct {
		name              string
		soFar, share      float64
		wantMean, wantLT1 float64
	}{
		{"start of day", 0, 0, 10, 20},
		{"forty percent in", 6, 0.4, 12, 16},
		{"day over", 14, 1, 14, 10},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := s.Forecast(Request{StartDay: day0 + 100, TodaySoFar: tt.soFar, IntradayShare: tt.share, LeadTimes: []int{1}})
			if math.Abs(f.Means[0]-tt.wantMean) > 1e-9 {
				t.Errorf("today's mean %v, want %v", f.Means[0], tt.wantMean)
			}
			if math.Abs(f.LeadTime[0].Mean-tt.wantLT1) > 1e-9 {
				t.Errorf("lead time 1 mean %v, want %v (rest of today + 1 day)", f.LeadTime[0].Mean, tt.wantLT1)
			}
			for _, q := range f.Quantiles[0] {
				if q < tt.soFar {
					t.Fatalf("today's quantile %v below what was already sold (%v)", q, tt.soFar)
				}
			}
			if tt.share == 1 && f.Quantiles[0][0] != tt.soFar {
				t.Errorf("day over: quantiles %v, want all %v", f.Quantiles[0], tt.soFar)
			}
		})
	}
}

func TestQuantilesAreOrdered(t *testing.T) {
	var s State
	observeAll(&s, day0, poissonSeries(6, 200, 1.2))
	f := s.Forecast(Request{StartDay: day0 + 200})
	for h, q := range f.Quantiles {
		for i := 1; i < len(q); i++ {
			if q[i] < q[i-1] {
				t.Fatalf("day %d quantiles not ascending: %v", h, q)
			}
		}
	}
	for i := 1; i < len(f.LeadTime); i++ {
		for j := range f.QuantileLevels {
			if f.LeadTime[i].Quantiles[j] < f.LeadTime[i-1].Quantiles[j] {
				t.Fatalf("lead-time quantile %d falls from L=%d to L=%d", j, f.LeadTime[i-1].Days, f.LeadTime[i].Days)
			}
		}
	}
}

func TestDemandClass(t *testing.T) {
	every := func(n, period int, sizes ...float64) []float64 {
		out := make([]float64, n)
		for i := 0; i < n; i += period {
			out[i] = sizes[(i/period)%len(sizes)]
		}
		return out
	}
	tests := []struct {
		name   string
		series []float64
		want   Class
	}{
		{"too short", constant(10, 3), ClassNew},
		{"steady", constant(200, 3), ClassSmooth},
		{"every day, sizes 1 and 20", every(200, 1, 1, 20), ClassErratic},
		{"every third day, size 2", every(200, 3, 2), ClassIntermittent},
		{"every third day, sizes 1 and 20", every(200, 3, 1, 20), ClassLumpy},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var s State
			observeAll(&s, day0, tt.series)
			f := s.Forecast(Request{StartDay: day0 + Day(len(tt.series))})
			if f.Class != tt.want {
				t.Errorf("class %s (ADI %.2f, CV² %.2f), want %s", f.Class, f.Components.ADI, f.Components.CV2, tt.want)
			}
		})
	}
}

func TestNoHistory(t *testing.T) {
	var s State
	observeAll(&s, day0, constant(30, 0)) // not sold yet: not part of the series
	if s.Live || s.Days != 0 {
		t.Fatalf("leading zero days started the series: %+v", s)
	}
	f := s.Forecast(Request{StartDay: day0 + 30, TodaySoFar: 2, IntradayShare: 0.5})
	if f.Class != ClassNew || f.Means[0] != 2 || f.Means[1] != 0 || f.LeadTime[0].Quantiles[0] != 0 {
		t.Errorf("forecast of an unsold item: class %s means %v", f.Class, f.Means[:2])
	}
}

func TestWeeklySeasonality(t *testing.T) {
	// Weekends sell 3x a weekday.
	ys := make([]float64, 364)
	for i := range ys {
		ys[i] = 4
		if wd := (day0 + Day(i)).Weekday(); wd >= 5 {
			ys[i] = 12
		}
	}
	var s State
	observeAll(&s, day0, ys)
	start := day0 + 364
	f := s.Forecast(Request{StartDay: start})
	for h, m := range f.Means {
		want := 4.0
		if (start + Day(h)).Weekday() >= 5 {
			want = 12
		}
		if math.Abs(m-want) > 0.1*want {
			t.Errorf("%s (weekday %d): mean %.2f, want %.0f", start+Day(h), (start + Day(h)).Weekday(), m, want)
		}
	}
	switch f.Components.Member {
	case "seasonal_weekly", "seasonal_naive", "holt_winters_log", "holt_winters_0.05", "holt_winters_0.2":
	default:
		t.Errorf("heaviest member %s, want a weekly-seasonal one", f.Components.Member)
	}
}

// TestMemberForecast checks that the members, weighted as Forecast weights
// them, give Forecast's means, and that member quantiles are ordered.
func TestMemberForecast(t *testing.T) {
	var s State
	for d := range 200 {
		s.Observe(Day(20000+d), float64(d%7+d%3), false)
	}
	start := Day(20200)
	f := s.Forecast(Request{StartDay: start, Horizon: 10})
	levels := []float64{0.1, 0.5, 0.9}
	combined := make([]float64, 10)
	for i, mw := range f.Components.Weights {
		if mw.Name != MemberNames()[i] {
			t.Fatalf("member %d is %s in Components, %s in MemberNames", i, mw.Name, MemberNames()[i])
		}
		means := make([]float64, 10)
		q := make([][]float64, 10)
		for h := range q {
			q[h] = make([]float64, len(levels))
		}
		s.MemberForecast(i, start, levels, means, q)
		for h := range means {
			combined[h] += mw.Weight * means[h]
			if !(q[h][0] <= q[h][1] && q[h][1] <= q[h][2]) || q[h][2] <= 0 {
				t.Errorf("member %s day %d: quantiles %v", mw.Name, h, q[h])
			}
		}
	}
	for h := range combined {
		if math.Abs(combined[h]-f.Means[h]) > 1e-9 {
			t.Errorf("day %d: weighted members %.6f, Forecast %.6f", h, combined[h], f.Means[h])
		}
	}
}
