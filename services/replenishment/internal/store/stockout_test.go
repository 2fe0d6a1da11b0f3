package store

import (
	"context"
	"testing"
	"time"

	"github.com/stockcast/stockcast/services/replenishment/internal/planning"
)

// TestStockoutSignals: a stockout period the platform did not report is
// signalled once at its start and once at its end; one the platform
// reported is not; the service's own events coming back change nothing;
// a redelivery returns the recorded signal.
func TestStockoutSignals(t *testing.T) {
	ctx := context.Background()
	rdb := newRedis(t)
	st := NewState(rdb, time.Hour)
	type step struct {
		id   string
		c    planning.Change
		want string
	}
	run := func(t *testing.T, sku string, steps []step) {
		t.Helper()
		series := planning.Scope{SKU: sku, Location: "online"}
		for _, s := range steps {
			out, err := st.Apply(ctx, []planning.Step{{Series: series, EventID: s.id, Change: s.c}})
			if err != nil {
				t.Fatal(err)
			}
			if out[0].StockoutSignal != s.want {
				t.Fatalf("%s %s: signal %q, want %q", sku, s.id, out[0].StockoutSignal, s.want)
			}
		}
		// Redelivered, every event returns its recorded signal and changes nothing.
		for _, s := range steps {
			out, err := st.Apply(ctx, []planning.Step{{Series: series, EventID: s.id, Change: s.c}})
			if err != nil {
				t.Fatal(err)
			}
			if !out[0].Replayed || out[0].StockoutSignal != s.want {
				t.Fatalf("%s %s redelivered: replayed %v signal %q, want %q", sku, s.id, out[0].Replayed, out[0].StockoutSignal, s.want)
			}
		}
	}
	started := planning.Change{Kind: planning.ChangeStockoutStarted}
	ended := planning.Change{Kind: planning.ChangeStockoutEnded}
	t.Run("detected", func(t *testing.T) {
		run(t, "A", []step{
			{"e1", at(snapshot(10, 0), 0), ""},
			{"e2", at(change(planning.ChangeDemand, 10), 10), "started"}, // 10 -> 0
			{"e3", at(change(planning.ChangeDemand, 5), 20), ""},         // still out (5 backordered)
			// The service's own event comes back through ingest: no effect.
			{planning.StockoutEventPrefix + "0123", at(started, 10), ""},
			{"e4", at(receipt("unknown", 20), 30), "ended"}, // 0 -> 20 (backorders 5)
			{planning.StockoutEventPrefix + "4567", at(ended, 30), ""},
			{"e5", at(change(planning.ChangeDemand, 20), 40), "started"}, // a second period
		})
		// The echoes did not touch the platform's flag, and one period is closed.
		if v, _ := rdb.HGet(ctx, StateKey("A|online"), "stockout").Result(); v != "" {
			t.Fatalf("platform stockout flag %q after the service's own events", v)
		}
		if n, _ := rdb.LLen(ctx, StockoutsKey("A|online")).Result(); n != 1 {
			t.Fatalf("%d closed periods, want 1", n)
		}
	})
	t.Run("reported by the platform", func(t *testing.T) {
		run(t, "B", []step{
			{"e1", at(snapshot(10, 0), 0), ""},
			{"e2", at(started, 5), ""},
			{"e3", at(change(planning.ChangeDemand, 10), 10), ""}, // the platform's period runs
			{"e4", at(receipt("unknown", 20), 30), ""},            // ends the period, not published
			{"e5", at(ended, 31), ""},
		})
	})
	t.Run("starting from nothing is no transition", func(t *testing.T) {
		run(t, "C", []step{
			{"e1", at(change(planning.ChangeDemand, 3), 0), ""}, // never had stock
		})
	})
}
