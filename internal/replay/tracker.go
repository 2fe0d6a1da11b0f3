package replay

import (
	"slices"
	"sync"
	"time"
)

// Kind is what a produced event is, for the summary table.
type Kind uint8

// Kinds of produced events.
const (
	KindPlaced Kind = iota
	KindCancelled
	KindAdjustment
	KindInitialStock
	// Events of an Actor (the demo's supplier), not lines of the data.
	KindPurchaseOrder
	KindReceipt
	numKinds
)

func (k Kind) String() string {
	return [...]string{"placed order lines", "cancelled order lines", "stock write-offs (adjustments)", "initial stock snapshots",
		"purchase orders placed (supplier)", "receipts (supplier)"}[k]
}

// tracked is what the tracker knows of one produced event.
type tracked struct {
	kind       Kind
	notDemand  bool  // an order line of a non-product code: ingest publishes nothing for it
	ackedAt    int64 // unix nanos the broker acknowledged it; 0 until then
	forecastAt int64 // unix nanos its first forecast arrived; 0 until then
	reason     string
}

// Tracker accounts for every produced event: it learns of forecasts,
// proposals and rejections as the watcher reads them and matches them to
// the produced events by event id. It is safe for concurrent use.
type Tracker struct {
	mu sync.Mutex

	events        map[string]*tracked
	byKind        [numKinds]int
	firstProduce  time.Time
	lastArrival   time.Time
	forecasts     int // distinct produced events with a forecast
	forecastDups  int // forecasts repeated for an event (redeliveries)
	foreign       int // output records of events this run did not produce
	series        map[string]struct{}
	proposals     map[string]struct{}
	decisions     map[string]string // proposal id -> status of its decision record (approved, rejected)
	rejectedByWhy map[string]int    // distinct produced events by reason
	rejected      int
	rejectedKinds [numKinds]int
	notDemand     int // order lines of non-product codes, not rejected
	pending       int // events expecting a forecast or rejection that got neither yet
	outputs       int // output records seen (any topic), to notice progress
	latencies     []time.Duration
}

// NewTracker returns an empty tracker.
func NewTracker() *Tracker {
	return &Tracker{
		events:        make(map[string]*tracked),
		series:        make(map[string]struct{}),
		proposals:     make(map[string]struct{}),
		decisions:     make(map[string]string),
		rejectedByWhy: make(map[string]int),
	}
}

// Produced registers an event about to be produced at t.
func (tr *Tracker) Produced(id string, kind Kind, notDemand bool, t time.Time) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	if _, ok := tr.events[id]; ok {
		return
	}
	if tr.firstProduce.IsZero() {
		tr.firstProduce = t
	}
	tr.events[id] = &tracked{kind: kind, notDemand: notDemand}
	tr.byKind[kind]++
	if notDemand {
		tr.notDemand++
	} else {
		tr.pending++
	}
}

// Acked records that the broker acknowledged the event at t: the start of
// its order-to-forecast latency.
func (tr *Tracker) Acked(id string, t time.Time) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	e := tr.events[id]
	if e == nil || e.ackedAt != 0 {
		return
	}
	e.ackedAt = t.UnixNano()
	if e.forecastAt != 0 {
		// The forecast won the race against our ack callback: count 0.
		tr.latencies = append(tr.latencies, max(0, time.Duration(e.forecastAt-e.ackedAt)))
	}
}

// Forecast records a forecast for event id of series, arrived at t.
func (tr *Tracker) Forecast(id, series string, t time.Time) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	tr.outputs++
	e := tr.events[id]
	if e == nil {
		tr.foreign++
		return
	}
	if e.forecastAt != 0 {
		tr.forecastDups++
		return
	}
	if e.reason == "" && !e.notDemand {
		tr.pending--
	}
	e.forecastAt = t.UnixNano()
	tr.forecasts++
	tr.series[series] = struct{}{}
	if t.After(tr.lastArrival) {
		tr.lastArrival = t
	}
	if e.ackedAt != 0 {
		tr.latencies = append(tr.latencies, max(0, time.Duration(e.forecastAt-e.ackedAt)))
	}
}

// Proposal records a replenishment proposal caused by event id.
func (tr *Tracker) Proposal(id, proposalID string) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	tr.outputs++
	if tr.events[id] == nil {
		tr.foreign++
		return
	}
	tr.proposals[proposalID] = struct{}{}
}

// Decision records a proposal's status change (approved or rejected) on
// replenishment.v1; a repeated record of the same decision counts once.
func (tr *Tracker) Decision(proposalID, status string) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	tr.outputs++
	tr.decisions[proposalID] = status
}

// Rejected records that a service dead-lettered event id for reason.
func (tr *Tracker) Rejected(id, reason string, t time.Time) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	tr.outputs++
	e := tr.events[id]
	if e == nil {
		tr.foreign++
		return
	}
	if e.reason != "" {
		return
	}
	if reason == "" {
		reason = "unknown"
	}
	if e.notDemand {
		tr.notDemand--
	} else if e.forecastAt == 0 {
		tr.pending--
	}
	e.reason = reason
	tr.rejected++
	tr.rejectedKinds[e.kind]++
	tr.rejectedByWhy[reason]++
	if t.After(tr.lastArrival) {
		tr.lastArrival = t
	}
}

// Pending returns how many produced events still wait for a forecast or a
// rejection (order lines of non-product codes expect neither).
func (tr *Tracker) Pending() int {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return tr.pending
}

// SeriesKeys returns the series with a forecast, sorted.
func (tr *Tracker) SeriesKeys() []string {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	out := make([]string, 0, len(tr.series))
	for k := range tr.series {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// Outputs returns how many output records were seen.
func (tr *Tracker) Outputs() int {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return tr.outputs
}

// Unaccounted returns how many produced events have neither a forecast nor a
// rejection and are not order lines of non-product codes, with up to n of
// their ids as examples.
func (tr *Tracker) Unaccounted(n int) (int, []string) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	var count int
	var ids []string
	for id, e := range tr.events {
		if e.forecastAt != 0 || e.reason != "" || e.notDemand {
			continue
		}
		count++
		if len(ids) < n {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return count, ids
}

// Stats is a consistent snapshot of the tracker's counts.
type Stats struct {
	ByKind        [numKinds]int // produced events by kind
	RejectedKinds [numKinds]int
	Produced      int
	Forecasts     int
	ForecastDups  int
	Foreign       int
	Series        int
	Proposals     int
	Decisions     map[string]int // decision records by status
	Rejected      int
	ByReason      map[string]int
	NotDemand     int // order lines of non-product codes, not rejected
	FirstProduce  time.Time
	LastArrival   time.Time
}

// Latency summarises order-to-forecast latencies.
type Latency struct {
	Count         int
	P50, P99, Max time.Duration
}

// Stats returns the current counts.
func (tr *Tracker) Stats() Stats {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	s := Stats{
		ByKind:        tr.byKind,
		RejectedKinds: tr.rejectedKinds,
		Produced:      len(tr.events),
		Forecasts:     tr.forecasts,
		ForecastDups:  tr.forecastDups,
		Foreign:       tr.foreign,
		Series:        len(tr.series),
		Proposals:     len(tr.proposals),
		Decisions:     make(map[string]int),
		Rejected:      tr.rejected,
		ByReason:      make(map[string]int, len(tr.rejectedByWhy)),
		NotDemand:     tr.notDemand,
		FirstProduce:  tr.firstProduce,
		LastArrival:   tr.lastArrival,
	}
	for k, v := range tr.rejectedByWhy {
		s.ByReason[k] = v
	}
	for _, v := range tr.decisions {
		s.Decisions[v]++
	}
	return s
}

// Latency returns the order-to-forecast latency quantiles so far. It sorts a
// copy of every latency: call it at the end, not per record.
func (tr *Tracker) Latency() Latency {
	tr.mu.Lock()
	sorted := slices.Clone(tr.latencies)
	tr.mu.Unlock()
	if len(sorted) == 0 {
		return Latency{}
	}
	slices.Sort(sorted)
	return Latency{
		Count: len(sorted),
		P50:   quantile(sorted, 0.50),
		P99:   quantile(sorted, 0.99),
		Max:   sorted[len(sorted)-1],
	}
}

// quantile is the nearest-rank quantile q of sorted values.
func quantile(sorted []time.Duration, q float64) time.Duration {
	rank := int(q*float64(len(sorted))+0.999999999) - 1 // ceil(q*n) - 1
	return sorted[min(max(rank, 0), len(sorted)-1)]
}
