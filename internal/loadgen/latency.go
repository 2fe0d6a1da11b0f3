package loadgen

import (
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Clock records when each event of a run was produced and when its first
// forecast and first proposal arrived. It is indexed by sequence number, so
// a run of n events costs 24 bytes per event and no map.
type Clock struct {
	start    atomic.Int64   // unix nanoseconds; set again by Start
	sent     []atomic.Int64 // nanoseconds since start + 1; 0: not sent
	forecast []atomic.Int64
	proposal []atomic.Int64
	// demand and feature: first arrival on demand.v1 and features.v1
	// (Config.Stages; nil otherwise)
	demand, feature []atomic.Int64

	mu        sync.Mutex
	toFore    []time.Duration
	toProp    []time.Duration
	forecasts atomic.Int64
	proposals atomic.Int64
	last      atomic.Int64 // latest first-forecast arrival, ns since start
}

// NewClock returns a clock for n events.
func NewClock(n int64, start time.Time) *Clock {
	c := &Clock{sent: make([]atomic.Int64, n), forecast: make([]atomic.Int64, n), proposal: make([]atomic.Int64, n)}
	c.Start(start)
	return c
}

// WithStages makes the clock record each event's arrival on demand.v1
// and features.v1 too (Demand, Feature, Stages).
func (c *Clock) WithStages() *Clock {
	c.demand, c.feature = make([]atomic.Int64, len(c.sent)), make([]atomic.Int64, len(c.sent))
	return c
}

// Demand records event seq's demand event arriving at t; repeats and
// clocks without stages ignore it.
func (c *Clock) Demand(seq int64, t time.Time) { c.first(c.demand, seq, t) }

// Feature records event seq's feature snapshot arriving at t.
func (c *Clock) Feature(seq int64, t time.Time) { c.first(c.feature, seq, t) }

func (c *Clock) first(at []atomic.Int64, seq int64, t time.Time) {
	if seq >= 0 && seq < int64(len(at)) {
		at[seq].CompareAndSwap(0, c.since(t))
	}
}

// Stages splits event-to-forecast by stage, over the events seen at every
// stage: produced to demand.v1 (ingest), demand.v1 to features.v1
// (feature), features.v1 to forecasts.v1 (forecast). Zero without
// WithStages.
func (c *Clock) Stages() (ingest, feature, forecast Quantiles) {
	var a, b, f []time.Duration
	for i := range c.demand {
		s, d, fe, fo := c.sent[i].Load(), c.demand[i].Load(), c.feature[i].Load(), c.forecast[i].Load()
		if s == 0 || d == 0 || fe == 0 || fo == 0 {
			continue
		}
		a = append(a, time.Duration(max(0, d-s)))
		b = append(b, time.Duration(max(0, fe-d)))
		f = append(f, time.Duration(max(0, fo-fe)))
	}
	return quantiles(a), quantiles(b), quantiles(f)
}

// Start moves the clock's origin, before any event is sent.
func (c *Clock) Start(t time.Time) { c.start.Store(t.UnixNano()) }

func (c *Clock) since(t time.Time) int64 { return t.UnixNano() - c.start.Load() + 1 }

// Sent records that event seq was handed to the producer at t.
func (c *Clock) Sent(seq int64, t time.Time) { c.sent[seq].Store(c.since(t)) }

// Forecast records a forecast of event seq arriving at t; repeats count once.
func (c *Clock) Forecast(seq int64, t time.Time) {
	if seq < 0 || seq >= int64(len(c.forecast)) || !c.forecast[seq].CompareAndSwap(0, c.since(t)) {
		return
	}
	c.forecasts.Add(1)
	at := c.since(t)
	for {
		l := c.last.Load()
		if at <= l || c.last.CompareAndSwap(l, at) {
			break
		}
	}
	if s := c.sent[seq].Load(); s != 0 {
		c.mu.Lock()
		c.toFore = append(c.toFore, time.Duration(max(0, at-s)))
		c.mu.Unlock()
	}
}

// Proposal records a proposal caused by event seq arriving at t.
func (c *Clock) Proposal(seq int64, t time.Time) {
	if seq < 0 || seq >= int64(len(c.proposal)) || !c.proposal[seq].CompareAndSwap(0, c.since(t)) {
		return
	}
	c.proposals.Add(1)
	if s := c.sent[seq].Load(); s != 0 {
		c.mu.Lock()
		c.toProp = append(c.toProp, time.Duration(max(0, c.since(t)-s)))
		c.mu.Unlock()
	}
}

// Forecasts returns how many events got a forecast.
func (c *Clock) Forecasts() int64 { return c.forecasts.Load() }

// Proposals returns how many events caused a proposal.
func (c *Clock) Proposals() int64 { return c.proposals.Load() }

// LastForecast returns when the latest first forecast arrived.
func (c *Clock) LastForecast() time.Time {
	return time.Unix(0, c.start.Load()).Add(time.Duration(c.last.Load() - 1))
}

// Quantiles summarises latencies.
type Quantiles struct {
	Count               int
	P50, P99, P999, Max time.Duration
}

// Latencies returns the event-to-forecast and event-to-proposal quantiles.
func (c *Clock) Latencies() (forecast, proposal Quantiles) {
	c.mu.Lock()
	f, p := slices.Clone(c.toFore), slices.Clone(c.toProp)
	c.mu.Unlock()
	return quantiles(f), quantiles(p)
}

func quantiles(d []time.Duration) Quantiles {
	if len(d) == 0 {
		return Quantiles{}
	}
	slices.Sort(d)
	return Quantiles{Count: len(d), P50: nearestRank(d, 0.50), P99: nearestRank(d, 0.99), P999: nearestRank(d, 0.999), Max: d[len(d)-1]}
}

// nearestRank is the nearest-rank quantile q of sorted values.
func nearestRank(sorted []time.Duration, q float64) time.Duration {
	rank := int(q*float64(len(sorted))+0.999999999) - 1 // ceil(q*n) - 1
	return sorted[min(max(rank, 0), len(sorted)-1)]
}
