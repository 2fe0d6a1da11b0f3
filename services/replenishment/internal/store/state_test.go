package store

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	replenishmentv1 "github.com/stockcast/stockcast/proto/stockcast/replenishment/v1"

	"github.com/stockcast/stockcast/pkg/replenish"
	"github.com/stockcast/stockcast/pkg/testenv"
	"github.com/stockcast/stockcast/services/replenishment/internal/planning"
)

func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }

func newRedis(t *testing.T) *redis.Client {
	t.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: testenv.Redis(t)})
	t.Cleanup(func() { _ = rdb.Close() })
	return rdb
}

func change(kind planning.ChangeKind, qty float64) planning.Change {
	return planning.Change{Kind: kind, Quantity: qty}
}

func snapshot(onHand, reserved float64) planning.Change {
	return planning.Change{Kind: planning.ChangeSnapshot, Quantity: onHand, Reserved: reserved}
}

func po(id string, qty float64, day string) planning.Change {
	return planning.Change{Kind: planning.ChangePurchaseOrder, PurchaseOrderID: id, Quantity: qty, ExpectedDay: day}
}

func receipt(id string, qty float64) planning.Change {
	return planning.Change{Kind: planning.ChangeReceipt, PurchaseOrderID: id, Quantity: qty}
}

// Variables, so that the sum is float64 arithmetic, not an exact constant.
var tenth, fifth = 0.1, 0.2

func TestStateChanges(t *testing.T) {
	ctx := context.Background()
	rdb := newRedis(t)
	st := NewState(rdb, time.Hour)
	tests := []struct {
		name    string
		changes []planning.Change
		want    replenish.Position
		fields  map[string]string // extra state hash fields to check ("" = absent)
	}{
		{"order within stock", []planning.Change{snapshot(10, 0), change(planning.ChangeDemand, 3)},
			replenish.Position{OnHand: 7}, nil},
		{"order beyond stock becomes backorders", []planning.Change{snapshot(5, 0), change(planning.ChangeDemand, 8)},
			replenish.Position{OnHand: 0, Backorders: 3}, nil},
		{"cancellation clears backorders first", []planning.Change{snapshot(5, 0), change(planning.ChangeDemand, 8), change(planning.ChangeDemand, -5)},
			replenish.Position{OnHand: 2, Backorders: 0}, nil},
		{"cancellation within backorders", []planning.Change{change(planning.ChangeDemand, 8), change(planning.ChangeDemand, -5)},
			replenish.Position{OnHand: 0, Backorders: 3}, nil},
		{"return goes back on hand, whatever its sign", []planning.Change{snapshot(5, 0), change(planning.ChangeReturn, -4), change(planning.ChangeReturn, 1)},
			replenish.Position{OnHand: 10}, nil},
		{"return does not clear backorders", []planning.Change{change(planning.ChangeDemand, 3), change(planning.ChangeReturn, -2)},
			replenish.Position{OnHand: 2, Backorders: 3}, nil},
		{"snapshot reconciles on hand and backorders", []planning.Change{change(planning.ChangeDemand, 8), snapshot(20, 2)},
			replenish.Position{OnHand: 20, Backorders: 2}, nil},
		{"adjustment floors at zero", []planning.Change{snapshot(5, 0), change(planning.ChangeAdjustment, -7)},
			replenish.Position{OnHand: 0}, nil},
		{"adjustment adds", []planning.Change{snapshot(5, 0), change(planning.ChangeAdjustment, -2), change(planning.ChangeAdjustment, 4)},
			replenish.Position{OnHand: 7}, nil},
		{"purchase orders go on order, a partial receipt leaves the rest open",
			[]planning.Change{snapshot(1, 0), po("A", 50, "2011-03-08"), po("B", 20, "2011-03-10"), receipt("A", 45)},
			replenish.Position{OnHand: 46, OnOrder: 25},
			map[string]string{"po:A": "5 2011-03-08  ", "po:B": "20 2011-03-10  "}},
		{"receipts close a purchase order when all of it arrived",
			[]planning.Change{po("A", 50, "2011-03-08"), receipt("A", 45), receipt("A", 5)},
			replenish.Position{OnHand: 50}, map[string]string{"po:A": ""}},
		{"an over-delivery closes the order and counts on hand",
			[]planning.Change{po("A", 50, "2011-03-08"), receipt("A", 55)},
			replenish.Position{OnHand: 55}, map[string]string{"po:A": ""}},
		{"a receipt fills backorders first, the rest goes on hand",
			[]planning.Change{snapshot(2, 0), change(planning.ChangeDemand, 9), po("A", 50, "2011-03-08"), receipt("A", 30)},
			replenish.Position{OnHand: 23, OnOrder: 20}, map[string]string{"po:A": "20 2011-03-08  "}},
		{"a receipt smaller than the backorders leaves nothing on hand",
			[]planning.Change{change(planning.ChangeDemand, 9), po("A", 5, "2011-03-08"), receipt("A", 5)},
			replenish.Position{Backorders: 4}, map[string]string{"po:A": ""}},
		{"receipt of an unknown purchase order only adds on hand",
			[]planning.Change{po("B", 20, ""), receipt("C", 5)},
			replenish.Position{OnHand: 5, OnOrder: 20}, map[string]string{"po:B": "20   "}},
		{"amended purchase order replaces its quantity",
			[]planning.Change{po("A", 50, "2011-03-08"), po("A", 30, "2011-03-09")},
			replenish.Position{OnOrder: 30}, map[string]string{"po:A": "30 2011-03-09  "}},
		{"a purchase order amended to 0 is cancelled",
			[]planning.Change{po("A", 50, "2011-03-08"), po("A", 0, "2011-03-09")},
			replenish.Position{}, map[string]string{"po:A": ""}},
		{"stockout started", []planning.Change{snapshot(0, 0), {Kind: planning.ChangeStockoutStarted}},
			replenish.Position{}, map[string]string{"stockout": "1"}},
		{"stockout ended", []planning.Change{{Kind: planning.ChangeStockoutStarted}, {Kind: planning.ChangeStockoutEnded}},
			replenish.Position{}, map[string]string{"stockout": "0"}},
		{"price or promotion changes nothing", []planning.Change{snapshot(4, 1), {Kind: planning.ChangeNone}},
			replenish.Position{OnHand: 4, Backorders: 1}, nil},
		{"fractions are kept exactly", []planning.Change{change(planning.ChangeReturn, 0.1), change(planning.ChangeReturn, 0.2)},
			replenish.Position{OnHand: tenth + fifth}, nil}, // 0.30000000000000004, as in Go
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			series := planning.Scope{SKU: fmt.Sprintf("sku%d", i), Location: "online"}
			var last planning.Outcome
			for j, c := range tt.changes {
				out, err := st.Apply(ctx, []planning.Step{{Series: series, EventID: fmt.Sprintf("e%d", j), Change: c}})
				if err != nil {
					t.Fatal(err)
				}
				last = out[0]
			}
			if last.Position != tt.want {
				t.Fatalf("outcome position = %+v, want %+v", last.Position, tt.want)
			}
			stored, err := st.Position(ctx, series.SKU, series.Location)
			if err != nil {
				t.Fatal(err)
			}
			if stored != tt.want {
				t.Fatalf("stored position = %+v, want %+v", stored, tt.want)
			}
			for field, want := range tt.fields {
				got, err := rdb.HGet(ctx, StateKey(seriesKey(series)), field).Result()
				if want == "" && err != redis.Nil {
					t.Errorf("field %s = %q, %v; want absent", field, got, err)
				}
				if want != "" && got != want {
					t.Errorf("field %s = %q, want %q", field, got, want)
				}
			}
		})
	}
}

// step is a demand or stock step evaluated against a reorder point.
type step struct {
	event   string
	change  planning.Change
	rop     float64 // < 0: no reorder point
	crossed bool
	seq     int64
}

func TestStateCrossingFiresOncePerCrossing(t *testing.T) {
	ctx := context.Background()
	rdb := newRedis(t)
	st := NewState(rdb, time.Hour)
	series := planning.Scope{SKU: "85123A", Location: "online"}
	pol := planning.EffectivePolicy{
		ServicePolicy: replenish.ServicePolicy{Policy: replenish.Policy{ServiceLevel: 0.95, LeadTimeDays: 7, MOQ: 1, PackSize: 1, OrderCoverDays: 14}},
		From:          planning.Scope{Location: "online"}, Source: planning.SourceLocation,
	}
	steps := []step{
		{"e1", snapshot(20, 0), 10, false, 0},
		{"e2", change(planning.ChangeDemand, 5), 10, false, 0},           // 15
		{"e3", change(planning.ChangeDemand, 6), 10, true, 1},            // 9: crossed
		{"e4", change(planning.ChangeDemand, 1), 10, false, 1},           // 8: still below, no new decision
		{"e5", change(planning.ChangeDemand, 1), -1, false, 1},           // 7: no reorder point, state kept
		{"e6", po("P1", 3, "2011-03-08"), 10, false, 1},                  // 10: at the reorder point re-arms
		{"e7", change(planning.ChangeDemand, 1), 10, true, 2},            // 9: crossed again
		{"e8", receipt("P1", 3), 12, false, 2},                           // on hand 9, on order 0: 9 < 12, still below
		{"e9", change(planning.ChangeAdjustment, 10), 12, false, 2},      // 19: re-armed
		{"e10", planning.Change{Kind: planning.ChangeNone}, 20, true, 3}, // a higher reorder point alone crosses
	}
	for _, s := range steps {
		out := applyOne(t, st, series, s, pol)
		if out.Crossed != s.crossed || out.DecisionSeq != s.seq || out.Replayed {
			t.Fatalf("%s: crossed=%v seq=%d replayed=%v; want crossed=%v seq=%d", s.event, out.Crossed, out.DecisionSeq, out.Replayed, s.crossed, s.seq)
		}
		if s.crossed && (out.ReorderPoint != s.rop || out.Policy != pol) {
			t.Fatalf("%s: recorded rop %v policy %+v; want %v %+v", s.event, out.ReorderPoint, out.Policy, s.rop, pol)
		}
	}

	// A redelivery of the first crossing, long after, with another policy and
	// reorder point: the recorded outcome comes back and nothing changes.
	before, err := rdb.HGetAll(ctx, StateKey(seriesKey(series))).Result()
	if err != nil {
		t.Fatal(err)
	}
	other := pol
	other.LeadTimeDays = 3
	again := applyOne(t, st, series, step{event: "e3", change: change(planning.ChangeDemand, 6), rop: 100}, other)
	want := planning.Outcome{
		Position:    replenish.Position{OnHand: 9},
		DecisionSeq: 1, Crossed: true, Replayed: true, ReorderPoint: 10, Policy: pol,
		Reason: replenishmentv1.ProposalReason_PROPOSAL_REASON_CROSSED_REORDER_POINT,
	}
	if again != want {
		t.Fatalf("redelivered e3 = %+v\nwant %+v", again, want)
	}
	after, err := rdb.HGetAll(ctx, StateKey(seriesKey(series))).Result()
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(before) != fmt.Sprint(after) {
		t.Fatalf("redelivery changed the state:\nbefore %v\nafter  %v", before, after)
	}

	ttl, err := rdb.TTL(ctx, SeenKey(seriesKey(series), "e3")).Result()
	if err != nil || ttl <= 0 || ttl > time.Hour {
		t.Fatalf("marker ttl = %v, %v; want (0, 1h]", ttl, err)
	}
}

func applyOne(t *testing.T, st *State, series planning.Scope, s step, pol planning.EffectivePolicy) planning.Outcome {
	t.Helper()
	out, err := st.Apply(context.Background(), []planning.Step{{
		Series: series, EventID: s.event, Change: s.change,
		HasReorderPoint: s.rop >= 0, ReorderPoint: s.rop, Policy: pol,
	}})
	if err != nil {
		t.Fatalf("%s: %v", s.event, err)
	}
	return out[0]
}

func TestStateBatchInOrderAndDuplicatesInBatch(t *testing.T) {
	ctx := context.Background()
	rdb := newRedis(t)
	st := NewState(rdb, time.Hour)
	a := planning.Scope{SKU: "A", Location: "online"}
	b := planning.Scope{SKU: "B", Location: "online"}
	steps := []planning.Step{
		{Series: a, EventID: "1", Change: snapshot(10, 0), HasReorderPoint: true, ReorderPoint: 5},
		{Series: b, EventID: "1", Change: snapshot(3, 0)}, // same event id, other series: its own marker
		{Series: a, EventID: "2", Change: change(planning.ChangeDemand, 6), HasReorderPoint: true, ReorderPoint: 5},
		{Series: a, EventID: "2", Change: change(planning.ChangeDemand, 6), HasReorderPoint: true, ReorderPoint: 5}, // duplicate
		{Series: b, EventID: "2", Change: change(planning.ChangeDemand, 1)},
	}
	got, err := st.Apply(ctx, steps)
	if err != nil {
		t.Fatal(err)
	}
	wantPos := []replenish.Position{{OnHand: 10}, {OnHand: 3}, {OnHand: 4}, {OnHand: 4}, {OnHand: 2}}
	wantCrossed := []bool{false, false, true, true}
	for i, o := range got {
		if o.Position != wantPos[i] {
			t.Errorf("step %d position %+v, want %+v", i, o.Position, wantPos[i])
		}
		if i < len(wantCrossed) && o.Crossed != wantCrossed[i] {
			t.Errorf("step %d crossed %v, want %v", i, o.Crossed, wantCrossed[i])
		}
	}
	if !got[3].Replayed || got[2].Replayed {
		t.Errorf("replayed flags %v %v, want false true", got[2].Replayed, got[3].Replayed)
	}

	// Redis lost its scripts (restart): the store reloads and the whole batch
	// replays to the same outcomes.
	if err := rdb.ScriptFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	again, err := st.Apply(ctx, steps)
	if err != nil {
		t.Fatal(err)
	}
	for i := range again {
		want := got[i]
		want.Replayed = true
		if again[i] != want {
			t.Errorf("step %d after script flush = %+v, want %+v", i, again[i], want)
		}
	}
}
