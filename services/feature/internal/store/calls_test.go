package store

import (
	"context"
	"fmt"
	"testing"

	"github.com/stockcast/stockcast/services/feature/internal/features"
)

// TestApplyCallsPerBatch counts what a batch costs Redis: one series.lua
// call per series and pipeline (a group), split where an item.lua call of
// its SKU comes in between; an item rollback call only for a SKU with an
// item undo log; one HMGET of a SKU's attributes per run of its series
// events without an item change in between. series.lua reads the hash with
// one HGETALL per call (commandstats count a script's own commands too).
// The code before one call per series (session 7) made a script call per
// event and an HMGET in each: 100 script calls and 150 HMGETs for the first
// batch here (session 6: 150 and 200).
func TestApplyCallsPerBatch(t *testing.T) {
	s, rdb := newStore(t)
	if err := s.LoadScripts(context.Background()); err != nil {
		t.Fatal(err)
	}
	mk := func(start int64, n int) []features.Change {
		var b []features.Change
		for i := range n {
			c := demand(fmt.Sprint("e", start+int64(i)), monday, 9, 1)
			c.SKU = fmt.Sprint("sku", i%50)
			c.Pos = &features.Position{Offset: start + int64(i), Start: start}
			b = append(b, c)
		}
		return b
	}
	calls := func() (int, int, int) {
		return commandCalls(t, rdb, "evalsha"), commandCalls(t, rdb, "hmget"), commandCalls(t, rdb, "hgetall")
	}

	e0, h0, g0 := calls()
	apply(t, s, mk(0, 100)...) // 50 series (one SKU each), 2 events each, no item events
	e1, h1, g1 := calls()
	if e1-e0 != 50 || h1-h0 != 50 || g1-g0 != 50 {
		t.Errorf("100 events of 50 series: %d script calls, %d HMGETs, %d HGETALLs; want 50, 50, 50", e1-e0, h1-h0, g1-g0)
	}

	// An item event of sku0 in the batch, between sku0's events: they are
	// two calls, and the ones after it read the attributes again; delivered
	// again, sku0 (with an item undo log now) gets its rollback call.
	b := mk(100, 100)
	it := features.Change{EventID: "item", SKU: "sku0", Day: monday, At: monday.Time(), Kind: features.KindItem,
		Item: features.Item{Category: "toys", Department: "home"}}
	it.Pos = &features.Position{Offset: 200, Start: 100}
	b = append(b[:60], append([]features.Change{it}, b[60:]...)...)
	for i := 61; i < len(b); i++ {
		b[i].Pos = &features.Position{Offset: 140 + int64(i), Start: 100}
	}
	b[80].SKU, b[90].SKU = "sku0", "sku0" // were sku29's and sku39's second events
	res := apply(t, s, b...)
	e2, h2, _ := calls()
	// 51 series calls (sku0 split by its item event), 1 in item.lua; 50
	// HMGETs of attributes, 1 more after the item event, 2 in item.lua.
	if e2-e1 != 52 || h2-h1 != 53 {
		t.Errorf("with an item event: %d script calls, %d HMGETs; want 52, 53", e2-e1, h2-h1)
	}
	for i, c := range b {
		want := ""
		if c.SKU == "sku0" && i >= 60 {
			want = "toys"
		}
		if res[i].Item.Category != want {
			t.Errorf("event %d of %s reads category %q, want %q", i, c.SKU, res[i].Item.Category, want)
		}
	}
	if st := res[90].State; st.EventsApplied != 6 || st.TotalDemand != 6 {
		t.Errorf("sku0 after its 6th event: %d events, total %v", st.EventsApplied, st.TotalDemand)
	}
	again := apply(t, s, b...)
	e3, _, _ := calls()
	if e3-e2 != 53 {
		t.Errorf("the batch again: %d script calls, want 53 (a rollback for sku0)", e3-e2)
	}
	for i := range b {
		if again[i].Item != res[i].Item || again[i].State.EventsApplied != res[i].State.EventsApplied {
			t.Errorf("event %d delivered again: %+v, first %+v", i, again[i].Item, res[i].Item)
		}
	}
}
