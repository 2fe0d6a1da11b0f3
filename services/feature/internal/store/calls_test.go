package store

import (
	"context"
	"fmt"
	"testing"

	"github.com/stockcast/stockcast/services/feature/internal/features"
)

// TestApplyCallsPerBatch counts what a batch costs Redis: one script call
// per series event, an item rollback call only for a SKU with an item undo
// log, and one HMGET of a SKU's attributes per run of its series events
// without an item change in between (commandstats count series.lua's own
// HMGET too: one per event). The code before made a rollback call per SKU
// and batch and an HMGET per event: 150 script calls and 200 HMGETs for the
// first batch here.
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
	calls := func() (int, int) { return commandCalls(t, rdb, "evalsha"), commandCalls(t, rdb, "hmget") }

	e0, h0 := calls()
	apply(t, s, mk(0, 100)...) // 50 SKUs, 2 events each, no item events
	e1, h1 := calls()
	if e1-e0 != 100 || h1-h0 != 150 {
		t.Errorf("100 events over 50 SKUs: %d script calls, %d HMGETs; want 100, 150", e1-e0, h1-h0)
	}

	// An item event of sku0 in the batch: sku0's events after it read the
	// hash again; delivered again, sku0 (with an undo log now) gets its
	// rollback call.
	b := mk(100, 100)
	it := features.Change{EventID: "item", SKU: "sku0", Day: monday, At: monday.Time(), Kind: features.KindItem,
		Item: features.Item{Category: "toys", Department: "home"}}
	it.Pos = &features.Position{Offset: 200, Start: 100}
	b = append(b[:60], append([]features.Change{it}, b[60:]...)...)
	for i := 61; i < len(b); i++ {
		b[i].Pos = &features.Position{Offset: 140 + int64(i), Start: 100}
	}
	res := apply(t, s, b...)
	e2, h2 := calls()
	// 100 in series.lua, 1 in item.lua, 50 + 1 of attributes.
	if e2-e1 != 101 || h2-h1 != 152 {
		t.Errorf("with an item event: %d script calls, %d HMGETs; want 101, 152", e2-e1, h2-h1)
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
	again := apply(t, s, b...)
	e3, _ := calls()
	if e3-e2 != 102 {
		t.Errorf("the batch again: %d script calls, want 102 (a rollback for sku0)", e3-e2)
	}
	for i := range b {
		if again[i].Item != res[i].Item || again[i].State.EventsApplied != res[i].State.EventsApplied {
			t.Errorf("event %d delivered again: %+v, first %+v", i, again[i].Item, res[i].Item)
		}
	}
}
