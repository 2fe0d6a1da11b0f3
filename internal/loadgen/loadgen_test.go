package loadgen

import (
	"math"
	"os"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	ordersv1 "github.com/stockcast/stockcast/proto/stockcast/orders/v1"
)

func TestZipfProbabilities(t *testing.T) {
	// n = 3, s = 1: weights 1, 1/2, 1/3, sum 11/6.
	z, err := NewZipf(3, 1)
	if err != nil {
		t.Fatal(err)
	}
	want := []float64{6.0 / 11, 3.0 / 11, 2.0 / 11}
	for k, w := range want {
		if got := z.Prob(k); math.Abs(got-w) > 1e-15 {
			t.Errorf("Prob(%d) = %v, want %v", k, got, w)
		}
	}
	// Inverse transform: u below cdf[0] = 6/11 is rank 0, below cdf[1] =
	// 9/11 rank 1, else 2.
	c0, c1 := z.cdf[0], z.cdf[1]
	if math.Abs(c0-6.0/11) > 1e-15 || math.Abs(c1-9.0/11) > 1e-15 {
		t.Fatalf("cdf %v, want 6/11, 9/11, 1", z.cdf)
	}
	for _, c := range []struct {
		u    float64
		want int
	}{{0, 0}, {math.Nextafter(c0, 0), 0}, {c0, 1}, {math.Nextafter(c1, 0), 1}, {c1, 2}, {math.Nextafter(1, 0), 2}} {
		if got := z.Rank(c.u); got != c.want {
			t.Errorf("Rank(%v) = %d, want %d", c.u, got, c.want)
		}
	}
	u, err := NewZipf(4, 0)
	if err != nil {
		t.Fatal(err)
	}
	for k := range 4 {
		if got := u.Prob(k); got != 0.25 {
			t.Errorf("uniform Prob(%d) = %v, want 0.25", k, got)
		}
	}
	for _, bad := range []struct {
		n int
		s float64
	}{{0, 1}, {3, -0.5}, {3, math.NaN()}, {3, math.Inf(1)}} {
		if _, err := NewZipf(bad.n, bad.s); err == nil {
			t.Errorf("NewZipf(%d, %v): no error", bad.n, bad.s)
		}
	}
}

// The generator's ranks follow the Zipf law: over 200,000 lines of 1,000
// series, the frequency of each of the top ranks is within 4 standard
// errors of its probability, and the top 10% of series carry the share the
// law gives them.
func TestGeneratorFollowsZipf(t *testing.T) {
	const n, lines = 1000, 200_000
	g, err := NewGenerator(GeneratorConfig{Series: n, Zipf: 1, Seed: 7})
	if err != nil {
		t.Fatal(err)
	}
	counts := make([]int, n)
	for range lines {
		counts[g.Next().Rank]++
	}
	z := g.Zipf()
	for k := range 20 {
		p := z.Prob(k)
		se := math.Sqrt(p * (1 - p) / lines)
		if got := float64(counts[k]) / lines; math.Abs(got-p) > 4*se {
			t.Errorf("rank %d: frequency %.5f, want %.5f +- %.5f", k, got, p, 4*se)
		}
	}
	var top, pTop float64
	for k := range n / 10 {
		top += float64(counts[k])
		pTop += z.Prob(k)
	}
	// H(100)/H(1000) = 0.69299 for s = 1.
	if math.Abs(pTop-0.69299) > 1e-5 {
		t.Errorf("P(top 10%%) = %.5f, want 0.69299", pTop)
	}
	if got := top / lines; math.Abs(got-pTop) > 4*math.Sqrt(pTop*(1-pTop)/lines) {
		t.Errorf("top 10%% of series carry %.4f of the lines, want %.4f", got, pTop)
	}
}

func TestGeneratorIsDeterministicForASeed(t *testing.T) {
	cfg := GeneratorConfig{Series: 500, Zipf: 1.1, Seed: 42, CancelFraction: 0.1}
	a, _ := NewGenerator(cfg)
	b, _ := NewGenerator(cfg)
	cfg.Seed = 43
	c, _ := NewGenerator(cfg)
	differ := 0
	at := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	for i := range 5000 {
		la, lb, lc := a.Next(), b.Next(), c.Next()
		if la != lb {
			t.Fatalf("line %d: %+v and %+v from the same seed", i, la, lb)
		}
		ra, _ := la.Record("r1", at)
		rb, _ := lb.Record("r1", at)
		if string(ra.Value) != string(rb.Value) || string(ra.Key) != string(rb.Key) {
			t.Fatalf("line %d: records differ for the same seed", i)
		}
		if la.Rank != lc.Rank {
			differ++
		}
	}
	if differ == 0 {
		t.Error("seeds 42 and 43 gave the same ranks")
	}
}

func TestGeneratorSequentialThenZipf(t *testing.T) {
	g, err := NewGenerator(GeneratorConfig{Series: 100, Zipf: 1, Seed: 1, Sequential: 100})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 100 {
		if l := g.Next(); l.Rank != i || l.Seq != int64(i) {
			t.Fatalf("line %d: rank %d seq %d, want rank %d", i, l.Rank, l.Seq, i)
		}
	}
	// After the sequential part the stream is the Zipf stream of the same
	// seed from the same position.
	z, _ := NewGenerator(GeneratorConfig{Series: 100, Zipf: 1, Seed: 1})
	for range 100 {
		z.Next()
	}
	for i := range 1000 {
		if a, b := g.Next(), z.Next(); a.Rank != b.Rank {
			t.Fatalf("line %d after the sequential part: rank %d, want %d", 100+i, a.Rank, b.Rank)
		}
	}
	if _, err := NewGenerator(GeneratorConfig{Series: 10, Sequential: 11}); err == nil {
		t.Error("11 sequential lines of 10 series: no error")
	}
}

func TestLineEvent(t *testing.T) {
	at := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	l := Line{Seq: 12, Rank: 3, Cancelled: true, Quantity: 2, UnitPrice: Price(3)}
	rec, err := l.Record("abc", at)
	if err != nil {
		t.Fatal(err)
	}
	var ev ordersv1.OrderLineEvent
	if err := proto.Unmarshal(rec.Value, &ev); err != nil {
		t.Fatal(err)
	}
	if ev.GetEventId() != "lg-abc-12" || ev.GetSku() != "LG0000003" || ev.GetLocation() != "lg" ||
		ev.GetType() != ordersv1.OrderLineType_ORDER_LINE_TYPE_CANCELLED || ev.GetQuantity() != 2 ||
		!ev.GetOccurredAt().AsTime().Equal(at) || ev.GetCurrency() != "EUR" {
		t.Errorf("event %v", &ev)
	}
	if string(rec.Key) != "LG0000003|lg" || rec.Topic != "orders.v1" {
		t.Errorf("record key %q topic %q", rec.Key, rec.Topic)
	}
	if seq, ok := ParseEventID("abc", "lg-abc-12"); !ok || seq != 12 {
		t.Errorf("ParseEventID = %d, %v", seq, ok)
	}
	for _, id := range []string{"lg-abd-12", "lg-abc-", "lg-abc-x", "lg-abc--1", "lg-abc-stock-3"} {
		if _, ok := ParseEventID("abc", id); ok {
			t.Errorf("ParseEventID(%q) accepted", id)
		}
	}
	if p := Price(3); p < 0.5 || p > 20.49 || p != Price(3) {
		t.Errorf("Price(3) = %v", p)
	}
}

func TestSteadyProfile(t *testing.T) {
	p := Profile{Kind: Steady, Rate: 1000}
	for _, c := range []struct {
		n    int64
		want time.Duration
	}{{0, 0}, {1, time.Millisecond}, {1000, time.Second}, {2500, 2500 * time.Millisecond}} {
		if got := p.At(c.n); got != c.want {
			t.Errorf("At(%d) = %v, want %v", c.n, got, c.want)
		}
	}
	if got := p.Count(3 * time.Second); got != 3000 {
		t.Errorf("Count(3s) = %d, want 3000", got)
	}
}

// A burst profile of mean 1,000/s, 10 s periods, bursting half of each
// period at 3x: 1,500/s for 5 s, then 500/s for 5 s.
func TestBurstProfile(t *testing.T) {
	p := Profile{Kind: Burst, Rate: 1000, Period: 10 * time.Second, BurstFraction: 0.5, BurstFactor: 3}
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		n    int64
		want time.Duration
	}{{0, 0}, {1500, time.Second}, {7500, 5 * time.Second}, {8000, 6 * time.Second}, {10_000, 10 * time.Second}, {11_500, 11 * time.Second}, {17_500, 15 * time.Second}} {
		if got := p.At(c.n); got != c.want {
			t.Errorf("At(%d) = %v, want %v", c.n, got, c.want)
		}
	}
	// Events per second of the first 20 s.
	perSecond := make([]int, 20)
	total := p.Count(20 * time.Second)
	for n := int64(0); n < total; n++ {
		perSecond[p.At(n)/time.Second]++
	}
	for s, got := range perSecond {
		want := 500
		if s%10 < 5 {
			want = 1500
		}
		if got != want {
			t.Errorf("second %d: %d events, want %d", s, got, want)
		}
		if r := p.RateAt(time.Duration(s)*time.Second + 500*time.Millisecond); r != float64(want) {
			t.Errorf("RateAt(%d.5s) = %v, want %d", s, r, want)
		}
	}
	if total != 20_000 {
		t.Errorf("Count(20s) = %d, want 20000", total)
	}
	if got := p.Count(3 * time.Second); got != 4500 {
		t.Errorf("Count(3s) = %d, want 4500 (mid-burst)", got)
	}
	for _, bad := range []Profile{
		{Kind: "wave", Rate: 1},
		{Kind: Steady, Rate: 0},
		{Kind: Burst, Rate: 1, Period: 0, BurstFraction: 0.5, BurstFactor: 2},
		{Kind: Burst, Rate: 1, Period: time.Second, BurstFraction: 1, BurstFactor: 2},
		{Kind: Burst, Rate: 1, Period: time.Second, BurstFraction: 0.5, BurstFactor: 0.5},
	} {
		if err := bad.Validate(); err == nil {
			t.Errorf("%+v: no error", bad)
		}
	}
}

func TestClockLatencies(t *testing.T) {
	start := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	c := NewClock(1000, start)
	for i := range int64(1000) {
		c.Sent(i, start.Add(time.Duration(i)*time.Millisecond))
	}
	// Event i's forecast arrives i/10 ms + 1 ms after it was sent; a
	// repeat of a forecast does not count again.
	for i := range int64(1000) {
		c.Forecast(i, start.Add(time.Duration(i)*time.Millisecond+time.Millisecond+time.Duration(i)*100*time.Microsecond))
	}
	c.Forecast(5, start.Add(time.Hour))
	c.Forecast(5000, start) // out of range: ignored
	for i := int64(0); i < 1000; i += 100 {
		c.Proposal(i, start.Add(time.Duration(i)*time.Millisecond+20*time.Millisecond))
	}
	f, p := c.Latencies()
	if c.Forecasts() != 1000 || f.Count != 1000 {
		t.Fatalf("forecasts %d, latencies %d, want 1000", c.Forecasts(), f.Count)
	}
	// Latencies 1.0, 1.1, ..., 100.9 ms: nearest rank 500 is 50.9 ms, 990 is 99.9 ms, 999 is 100.8 ms.
	want := Quantiles{Count: 1000, P50: 50900 * time.Microsecond, P99: 99900 * time.Microsecond, P999: 100800 * time.Microsecond, Max: 100900 * time.Microsecond}
	if f != want {
		t.Errorf("forecast latencies %+v, want %+v", f, want)
	}
	if p.Count != 10 || p.P50 != 20*time.Millisecond || p.Max != 20*time.Millisecond || c.Proposals() != 10 {
		t.Errorf("proposal latencies %+v (%d proposals)", p, c.Proposals())
	}
	if got := c.LastForecast(); !got.Equal(start.Add(999*time.Millisecond + time.Millisecond + 99900*time.Microsecond)) {
		t.Errorf("last forecast at %v", got)
	}
}

func TestParseStat(t *testing.T) {
	// A real line's shape, with a command name holding a space and a ')'.
	line := "1234 (my (proc) x) S 1 1234 1234 0 -1 4194560 500 0 0 0 250 75 0 0 20 0 8 0 100 1000000 300 18446744073709551615 0 0 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0"
	s, err := parseStat(line)
	if err != nil {
		t.Fatal(err)
	}
	if s.CPUTicks != 325 {
		t.Errorf("cpu ticks %d, want 250 + 75", s.CPUTicks)
	}
	if want := int64(300 * os.Getpagesize()); s.RSS != want {
		t.Errorf("rss %d, want %d", s.RSS, want)
	}
	if _, err := parseStat("1234 (x) S 1 2"); err == nil {
		t.Error("short stat: no error")
	}
}

// TestClockStages: with stages, event-to-forecast splits exactly into
// produce->demand, demand->features and features->forecast over the events
// seen at every stage; repeats keep the first arrival; a clock without
// stages reports none.
func TestClockStages(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(ms int64) time.Time { return start.Add(time.Duration(ms) * time.Millisecond) }
	c := NewClock(100, start).WithStages()
	for i := range int64(100) {
		c.Sent(i, at(i))
		c.Demand(i, at(i+1+i%3))   // 1-3 ms
		c.Demand(i, at(i+500))     // a repeat: ignored
		c.Feature(i, at(i+10+i%3)) // 9 ms later
		if i != 7 {                // event 7 never gets a forecast
			c.Forecast(i, at(i+10+i%3+i)) // i ms later
		}
	}
	c.Demand(100, at(0)) // out of range: ignored
	ing, feat, fc := c.Stages()
	if ing.Count != 99 || ing.P50 != 2*time.Millisecond || ing.Max != 3*time.Millisecond || ing.P99 != 3*time.Millisecond {
		t.Errorf("produce->demand %+v", ing)
	}
	if feat.Count != 99 || feat.P50 != 9*time.Millisecond || feat.Max != 9*time.Millisecond {
		t.Errorf("demand->features %+v", feat)
	}
	// 0..99 ms without 7: rank 50 of 99 is 50 ms, rank 99 is 99 ms.
	if fc.Count != 99 || fc.P50 != 50*time.Millisecond || fc.Max != 99*time.Millisecond || fc.P99 != 99*time.Millisecond {
		t.Errorf("features->forecast %+v", fc)
	}
	plain := NewClock(10, start)
	plain.Demand(1, at(1))
	if a, b, f := plain.Stages(); a.Count+b.Count+f.Count != 0 {
		t.Errorf("a clock without stages reports %+v %+v %+v", a, b, f)
	}
}
