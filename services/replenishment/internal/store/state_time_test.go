package store

import (
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"

	replenishmentv1 "github.com/stockcast/stockcast/proto/stockcast/replenishment/v1"

	"github.com/stockcast/stockcast/pkg/replenish"
	"github.com/stockcast/stockcast/services/replenishment/internal/planning"
)

var t0 = time.Date(2011, 3, 1, 10, 0, 0, 0, time.UTC)

// at is t0 plus minutes, as an event time.
func at(c planning.Change, minutes int) planning.Change {
	c.OccurredAtNs = t0.Add(time.Duration(minutes) * time.Minute).UnixNano()
	return c
}

func ns(minutes int) string {
	return strconv.FormatInt(t0.Add(time.Duration(minutes)*time.Minute).UnixNano(), 10)
}

// applyAll applies changes as events e0, e1, ... and returns the last outcome.
func applyAll(t *testing.T, st *State, series planning.Scope, changes []planning.Change) planning.Outcome {
	t.Helper()
	var last planning.Outcome
	for j, c := range changes {
		out, err := st.Apply(context.Background(), []planning.Step{{Series: series, EventID: fmt.Sprintf("e%d", j), Change: c}})
		if err != nil {
			t.Fatal(err)
		}
		last = out[0]
	}
	return last
}

func TestStateSnapshotsAtEventTime(t *testing.T) {
	rdb := newRedis(t)
	st := NewState(rdb, time.Hour)
	tests := []struct {
		name    string
		changes []planning.Change
		want    replenish.Position
	}{
		{"a late count keeps the movements after its time and drops those before",
			[]planning.Change{
				at(snapshot(100, 0), 0),
				at(change(planning.ChangeDemand, 5), 30),  // in the 11:00 count
				at(change(planning.ChangeDemand, 3), 90),  // after it: 90 - 3
				at(snapshot(90, 0), 60),                   // = 87
				at(change(planning.ChangeDemand, 4), 45),  // arrives late, in the count: not subtracted again
				at(change(planning.ChangeDemand, 2), 120), // 85
				at(change(planning.ChangeDemand, 1), 60),  // at the count's very time: not in it, 84
				at(snapshot(200, 0), 50),                  // older than the applied count: ignored
			}, replenish.Position{OnHand: 84}},
		{"backorders after the count are kept",
			[]planning.Change{
				at(snapshot(2, 0), 0),
				at(change(planning.ChangeDemand, 5), 30), // on hand 0, 3 backordered
				at(snapshot(1, 0), 15),                   // 1 on hand at 10:15: the 5 take it and 4 wait
			}, replenish.Position{Backorders: 4}},
		{"a receipt in the count closes its order without adding stock",
			[]planning.Change{
				at(po("P", 10, "2011-03-02"), -60),
				at(snapshot(30, 0), 60),
				at(receipt("P", 10), 55),
			}, replenish.Position{OnHand: 30}},
		{"events without a time apply in log order",
			[]planning.Change{at(snapshot(10, 0), 60), change(planning.ChangeDemand, 4), snapshot(7, 0), change(planning.ChangeDemand, 1)},
			replenish.Position{OnHand: 6}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			series := planning.Scope{SKU: fmt.Sprintf("snap%d", i), Location: "online"}
			if got := applyAll(t, st, series, tt.changes); got.Position != tt.want {
				t.Fatalf("position %+v, want %+v", got.Position, tt.want)
			}
		})
	}
}

func TestStateStockoutPeriods(t *testing.T) {
	ctx := context.Background()
	rdb := newRedis(t)
	st := NewState(rdb, time.Hour)
	series := planning.Scope{SKU: "S", Location: "online"}
	applyAll(t, st, series, []planning.Change{
		at(snapshot(3, 0), 0),
		at(change(planning.ChangeDemand, 3), 10), // empty: period starts
		at(change(planning.ChangeDemand, 1), 20), // backordered, still out
		at(receipt("X", 10), 30),                 // back: period 10..30
		at(planning.Change{Kind: planning.ChangeStockoutStarted}, 40),
		at(planning.Change{Kind: planning.ChangeStockoutEnded}, 50),
		at(change(planning.ChangeDemand, 10), 60), // empty again (1 still backordered), open
	})
	got, err := rdb.LRange(ctx, StockoutsKey(seriesKey(series)), 0, -1).Result()
	if err != nil {
		t.Fatal(err)
	}
	want := []string{ns(40) + " " + ns(50), ns(10) + " " + ns(30)}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("stockout periods %v, want %v", got, want)
	}
	since, err := rdb.HGet(ctx, StateKey(seriesKey(series)), "stockout_since").Result()
	if err != nil || since != ns(60) {
		t.Fatalf("stockout_since %q %v, want %s", since, err, ns(60))
	}
}

func TestStateLearnsLeadTimes(t *testing.T) {
	ctx := context.Background()
	rdb := newRedis(t)
	st := NewState(rdb, time.Hour)
	series := planning.Scope{SKU: "L", Location: "online"}
	day := 24 * 60
	placed := func(id string, qty float64, supplier string, minute int) planning.Change {
		c := po(id, qty, "")
		c.SupplierID = supplier
		return at(c, minute)
	}
	applyAll(t, st, series, []planning.Change{
		placed("A", 50, "S1", 0),
		placed("B", 20, "S2", day),
		at(receipt("A", 30), 5*day+12*60), // 5.5 days, partial
		at(receipt("B", 20), 4*day),       // 3 days
		at(receipt("A", 20), 7*day),       // 7 days, closes A
		at(receipt("Z", 1), 8*day),        // unknown order: no sample
	})
	samples := map[string][]float64{"lt": {5.5, 3, 7}, "lt:S1": {5.5, 7}, "lt:S2": {3}}
	for field, xs := range samples {
		var mean, m2 float64
		for _, x := range xs {
			mean += x
		}
		mean /= float64(len(xs))
		for _, x := range xs {
			m2 += (x - mean) * (x - mean)
		}
		raw, err := rdb.HGet(ctx, StateKey(seriesKey(series)), field).Result()
		if err != nil {
			t.Fatal(err)
		}
		var n int
		var gotMean, gotM2 float64
		if _, err := fmt.Sscan(raw, &n, &gotMean, &gotM2); err != nil {
			t.Fatalf("%s = %q: %v", field, raw, err)
		}
		if n != len(xs) || !close(gotMean, mean) || !close(gotM2, m2) {
			t.Errorf("%s = %d %v %v, want %d %v %v", field, n, gotMean, gotM2, len(xs), mean, m2)
		}
	}
}

// close allows for Welford's rounding against the two-pass formula.
func close(a, b float64) bool { return a == b || (a-b)*(a-b) <= 1e-24*(a*a+b*b) }

func TestStateReasons(t *testing.T) {
	rdb := newRedis(t)
	st := NewStateWith(rdb, StateConfig{SeenTTL: time.Hour, ReviseThreshold: 0.25, SnapshotWindow: time.Hour})
	series := planning.Scope{SKU: "R", Location: "online"}
	pol := planning.EffectivePolicy{ServicePolicy: replenish.ServicePolicy{Policy: replenish.Policy{ServiceLevel: 0.95, LeadTimeDays: 7}}, Source: planning.SourceBuiltIn}
	const (
		none      = replenishmentv1.ProposalReason_PROPOSAL_REASON_UNSPECIFIED
		crossed   = replenishmentv1.ProposalReason_PROPOSAL_REASON_CROSSED_REORDER_POINT
		forecast  = replenishmentv1.ProposalReason_PROPOSAL_REASON_FORECAST_CHANGED
		policy    = replenishmentv1.ProposalReason_PROPOSAL_REASON_POLICY_CHANGED
		corrected = replenishmentv1.ProposalReason_PROPOSAL_REASON_STOCK_CORRECTED
	)
	policyChange := planning.Change{Kind: planning.ChangePolicy}
	steps := []struct {
		change planning.Change
		rop    float64
		upTo   float64
		reason replenishmentv1.ProposalReason
		seq    int64
	}{
		{snapshot(20, 0), 10, 30, none, 0},
		{change(planning.ChangeAdjustment, -12), 10, 30, corrected, 1},      // 8 < 10 by a correction
		{planning.Change{Kind: planning.ChangeNone}, 10, 37.5, none, 1},     // +25%: not more than the threshold
		{planning.Change{Kind: planning.ChangeNone}, 10, 37.6, forecast, 2}, // > 25% of 30: revised
		{policyChange, 10, 40, none, 2},                                     // small move against 37.6
		{policyChange, 12, 50, policy, 3},                                   // revised by the policy
		{po("P", 100, ""), 12, 50, none, 3},                                 // 108: re-armed
		{change(planning.ChangeDemand, 100), 12, 50, crossed, 4},            // 8: crossed by demand
		{snapshot(1, 0), 12, 50, none, 4},                                   // a count: 1 on hand + 100 on order, re-armed
		{policyChange, 110, 150, none, 4},                                   // a policy lifts the reorder point above 101: crossed by it
	}
	steps[len(steps)-1].reason, steps[len(steps)-1].seq = policy, 5
	for i, s := range steps {
		out, err := st.Apply(context.Background(), []planning.Step{{Series: series, EventID: fmt.Sprintf("e%d", i), Change: s.change,
			HasReorderPoint: true, ReorderPoint: s.rop, OrderUpTo: s.upTo, Policy: pol}})
		if err != nil {
			t.Fatal(err)
		}
		o := out[0]
		if o.Crossed != (s.reason != none) || o.Reason != s.reason || o.DecisionSeq != s.seq {
			t.Fatalf("step %d: crossed %v reason %v seq %d; want reason %v seq %d", i, o.Crossed, o.Reason, o.DecisionSeq, s.reason, s.seq)
		}
	}
}

// TestStateRevisionDamping: while a proposal is open, a new forecast
// revises it only when the order-up-to level moved by more than the
// threshold share, by at least the min units and a pack, and a day of event
// time after the series' last decision; crossings and policy changes act at
// once.
func TestStateRevisionDamping(t *testing.T) {
	rdb := newRedis(t)
	st := NewStateWith(rdb, StateConfig{SeenTTL: time.Hour, ReviseThreshold: 0.25, ReviseMinUnits: 2,
		ReviseInterval: 24 * time.Hour, SnapshotWindow: time.Hour})
	t0 := time.Date(2011, 3, 1, 10, 0, 0, 0, time.UTC)
	pol := func(pack float64) planning.EffectivePolicy {
		return planning.EffectivePolicy{ServicePolicy: replenish.ServicePolicy{Policy: replenish.Policy{ServiceLevel: 0.95, LeadTimeDays: 7, PackSize: pack}},
			Source: planning.SourceBuiltIn}
	}
	const (
		none     = replenishmentv1.ProposalReason_PROPOSAL_REASON_UNSPECIFIED
		crossed  = replenishmentv1.ProposalReason_PROPOSAL_REASON_CROSSED_REORDER_POINT
		forecast = replenishmentv1.ProposalReason_PROPOSAL_REASON_FORECAST_CHANGED
		policy   = replenishmentv1.ProposalReason_PROPOSAL_REASON_POLICY_CHANGED
	)
	tick := planning.Change{Kind: planning.ChangeNone}
	steps := []struct {
		series string
		change planning.Change
		hours  int // event time: t0 + hours
		upTo   float64
		pack   float64
		reason replenishmentv1.ProposalReason
	}{
		{"A", snapshot(10, 0), 0, 12, 0, none},
		{"A", change(planning.ChangeDemand, 3), 1, 12, 0, crossed},             // 7 < 10: a crossing, S 12
		{"A", tick, 2, 20, 0, none},                                            // +67%, +8 units, but 1 h after the proposal
		{"A", tick, 25, 14, 0, none},                                           // a day later: +2 units is only 17%
		{"A", tick, 25, 15.1, 0, forecast},                                     // +3.1 > 25% of 12 and >= 2 units: revised, S 15.1
		{"A", tick, 50, 20, 6, none},                                           // +4.9 > 25%, but less than a pack of 6
		{"A", tick, 50, 21.2, 6, forecast},                                     // +6.1: a pack; revised, S 21.2
		{"A", planning.Change{Kind: planning.ChangePolicy}, 51, 30, 0, policy}, // a policy change acts at once
		{"A", tick, 60, 45, 0, none},                                           // 9 h after the policy's revision
		{"A", tick, 75, 45, 0, forecast},                                       // a day after it
		{"A", po("P", 100, ""), 76, 45, 0, none},                               // 107 >= 10: re-armed
		{"A", change(planning.ChangeDemand, 100), 77, 45, 0, crossed},          // crossed again: at once
		{"B", snapshot(10, 0), 0, 4, 0, none},
		{"B", change(planning.ChangeDemand, 3), 1, 4, 0, crossed}, // S 4
		{"B", tick, 30, 5.5, 0, none},                             // +37.5%, but 1.5 units
		{"B", tick, 30, 6, 0, forecast},                           // +2 units
	}
	seq := map[string]int64{}
	for i, s := range steps {
		if s.reason != none {
			seq[s.series]++
		}
		at := t0.Add(time.Duration(s.hours) * time.Hour).UnixNano()
		s.change.OccurredAtNs = at
		out, err := st.Apply(context.Background(), []planning.Step{{Series: planning.Scope{SKU: s.series, Location: "online"},
			EventID: fmt.Sprintf("e%d", i), Change: s.change, HasReorderPoint: true, ReorderPoint: 10, OrderUpTo: s.upTo,
			Policy: pol(s.pack), DecidedAtNs: at}})
		if err != nil {
			t.Fatal(err)
		}
		o := out[0]
		if o.Crossed != (s.reason != none) || o.Reason != s.reason || o.DecisionSeq != seq[s.series] {
			t.Fatalf("step %d (%s, +%d h, S %v): crossed %v reason %v seq %d; want reason %v seq %d",
				i, s.series, s.hours, s.upTo, o.Crossed, o.Reason, o.DecisionSeq, s.reason, seq[s.series])
		}
	}
}
