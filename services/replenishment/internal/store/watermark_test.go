package store

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/stockcast/stockcast/pkg/replenish"
	"github.com/stockcast/stockcast/services/replenishment/internal/planning"
)

// watermarkSteps are n events of series in batches of size, at offsets
// 0..n-1 of partition 3: snapshots, demand, purchase orders and receipts
// against a reorder point of 20 and an order-up-to level that moves, so
// that positions cross (decisions), revise and detect stockouts.
func watermarkSteps(series planning.Scope, n, size int) []planning.Step {
	// Pos.Start: batches of size (callers may batch otherwise).
	pol := planning.EffectivePolicy{ServicePolicy: replenish.ServicePolicy{Kind: replenish.KindReorderUpTo,
		Policy: replenish.Policy{ServiceLevel: 0.95, LeadTimeDays: 3}}, From: planning.Scope{Location: series.Location}, Source: "location"}
	steps := make([]planning.Step, n)
	for i := range steps {
		var ch planning.Change
		switch i % 10 {
		case 0:
			ch = snapshot(float64(30+i%7), 0)
		case 3:
			ch = po(fmt.Sprintf("po%d", i), 25, "2026-01-10")
		case 5:
			ch = receipt(fmt.Sprintf("po%d", i-2), 25)
		case 9:
			ch = change(planning.ChangeDemand, 40) // to 0: a stockout
		default:
			ch = change(planning.ChangeDemand, float64(3+i%4))
		}
		ch.OccurredAtNs = int64(1_700_000_000+i) * 1e9
		steps[i] = planning.Step{Series: series, EventID: fmt.Sprintf("ev-%d", i), Change: ch,
			HasReorderPoint: true, ReorderPoint: 20, OrderUpTo: float64(60 + 10*(i/25)), Policy: pol,
			DecidedAtNs: ch.OccurredAtNs,
			Pos:         &planning.Position{Partition: 3, Offset: int64(i), Start: int64(i / size * size)}}
	}
	return steps
}

// TestWatermarkWithoutMarkers: with positions (Kafka transactions) the store
// writes no key per event; a redelivered batch, also one extended by the
// next batch's events, returns the outcomes its first delivery gave, byte
// for byte those of the marker layout; events older than the logged batch
// change and decide nothing. On the marker layout this fails: 400 keys.
func TestWatermarkWithoutMarkers(t *testing.T) {
	ctx := context.Background()
	rdb := newRedis(t)
	cfg := StateConfig{SeenTTL: time.Hour, ReviseThreshold: DefaultReviseThreshold, ReviseMinUnits: DefaultReviseMinUnits,
		ReviseInterval: DefaultReviseInterval, SnapshotWindow: DefaultSnapshotWindow}
	wm := NewStateWith(rdb, cfg)
	cfg.Markers = true
	mk := NewStateWith(rdb, cfg)
	const n, size = 400, 17
	w := planning.Scope{SKU: "W", Location: "shop"}
	m := planning.Scope{SKU: "M", Location: "shop"}
	ws, ms := watermarkSteps(w, n, size), watermarkSteps(m, n, size)

	apply := func(st *State, steps []planning.Step) []planning.Outcome {
		t.Helper()
		out, err := st.Apply(ctx, steps)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	replayed := func(o []planning.Outcome) []planning.Outcome {
		r := make([]planning.Outcome, len(o))
		for i := range o {
			r[i] = o[i]
			r[i].Replayed = true
		}
		return r
	}
	// batch is the events lo..hi-1 handled as one batch from lo.
	batch := func(steps []planning.Step, lo, hi int) []planning.Step {
		out := append([]planning.Step(nil), steps[lo:hi]...)
		for i := range out {
			out[i].Pos = &planning.Position{Partition: 3, Offset: out[i].Pos.Offset, Start: int64(lo)}
		}
		return out
	}
	var crossed, signals, batches int
	lastLo := 0
	for lo := 0; lo < n; batches++ {
		hi := min(n, lo+size+batches%7)
		first := apply(wm, batch(ws, lo, hi))
		want := apply(mk, batch(ms, lo, hi))
		if !reflect.DeepEqual(first, want) {
			t.Fatalf("batch at %d: watermark outcomes differ from the markers':\n%+v\n%+v", lo, first, want)
		}
		for _, o := range first {
			if o.Replayed {
				t.Fatalf("batch at %d: a first delivery replayed: %+v", lo, o)
			}
		}
		// The transaction aborted: the batch comes again, then (aborted
		// again) with some of the next events in a larger poll, which
		// commits.
		if again := apply(wm, batch(ws, lo, hi)); !reflect.DeepEqual(again, replayed(first)) {
			t.Fatalf("batch at %d redelivered:\n%+v\nwant\n%+v", lo, again, replayed(first))
		}
		apply(mk, batch(ms, lo, hi))
		ext := min(n, hi+batches%5)
		got := apply(wm, batch(ws, lo, ext))
		if mgot := apply(mk, batch(ms, lo, ext)); !reflect.DeepEqual(got, mgot) {
			t.Fatalf("batch at %d redelivered with more events:\n%+v\nmarkers\n%+v", lo, got, mgot)
		}
		if !reflect.DeepEqual(got[:hi-lo], replayed(first)) {
			t.Fatalf("batch at %d redelivered with more events:\n%+v\nwant\n%+v", lo, got[:hi-lo], replayed(first))
		}
		for _, o := range got {
			if o.Crossed {
				crossed++
			}
			if o.StockoutSignal != "" {
				signals++
			}
		}
		lastLo = lo
		lo = ext
	}
	if crossed < 10 || signals < 10 {
		t.Fatalf("%d decisions and %d stockout signals: the steps test too little", crossed, signals)
	}

	keys, err := rdb.Keys(ctx, "stockcast:r:{W|shop}*").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		if strings.Contains(k, ":seen:") {
			t.Fatalf("keys %v: a marker with positions", keys)
		}
	}
	if len(keys) > 4 {
		t.Fatalf("keys %v: want the state, journal, stockouts and applied log", keys)
	}
	// The log holds the last batch only (and the watermark, in it).
	if l, err := rdb.LLen(ctx, AppliedKey("W|shop")).Result(); err != nil || l != int64(n-lastLo) {
		t.Fatalf("applied log length %d, %v; want %d", l, err, n-lastLo)
	}
	if ttl, err := rdb.TTL(ctx, AppliedKey("W|shop")).Result(); err != nil || ttl <= 0 || ttl > time.Hour {
		t.Fatalf("applied log ttl %v, %v; want (0, 1h]", ttl, err)
	}

	// Offsets reset: the log from offset 0 again changes and decides nothing.
	before, err := rdb.HGetAll(ctx, StateKey("W|shop")).Result()
	if err != nil {
		t.Fatal(err)
	}
	for b := 0; b < lastLo; b += size {
		for i, o := range apply(wm, batch(ws, b, min(b+size, lastLo))) {
			if !o.Replayed || o.Crossed || o.StockoutSignal != "" {
				t.Fatalf("old event %d applied again: %+v", b+i, o)
			}
		}
	}
	after, err := rdb.HGetAll(ctx, StateKey("W|shop")).Result()
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(before, after) {
		t.Fatalf("a replay from offset 0 changed the state:\n%v\n%v", before, after)
	}
	// The last batch still returns its recorded outcomes.
	last := apply(mk, batch(ms, lastLo, n))
	if got := apply(wm, batch(ws, lastLo, n)); !reflect.DeepEqual(got, last) {
		t.Fatalf("last batch after the replay:\n%+v\nwant\n%+v", got, last)
	}

	// A step without a position (SetPolicy's re-evaluation) keeps a marker.
	pol := ws[0]
	pol.EventID, pol.Pos, pol.Change = "policy:x@ev-399", nil, planning.Change{Kind: planning.ChangePolicy}
	o1 := apply(wm, []planning.Step{pol})
	o2 := apply(wm, []planning.Step{pol})
	if o1[0].Replayed || !o2[0].Replayed || o2[0].Position != o1[0].Position {
		t.Fatalf("policy step %+v, again %+v", o1[0], o2[0])
	}
	if n, err := rdb.Exists(ctx, SeenKey("W|shop", pol.EventID)).Result(); err != nil || n != 1 {
		t.Fatalf("policy step marker: %d, %v", n, err)
	}
}

// TestWatermarkPartitionChange: a series' log of another partition is
// dropped, and the event applies.
func TestWatermarkPartitionChange(t *testing.T) {
	ctx := context.Background()
	rdb := newRedis(t)
	st := NewState(rdb, time.Hour)
	s := planning.Scope{SKU: "P", Location: "shop"}
	steps := watermarkSteps(s, 4, 4)
	if _, err := st.Apply(ctx, steps[:2]); err != nil {
		t.Fatal(err)
	}
	moved := steps[2]
	moved.Pos = &planning.Position{Partition: 5, Offset: 0, Start: 0}
	out, err := st.Apply(ctx, []planning.Step{moved})
	if err != nil {
		t.Fatal(err)
	}
	if out[0].Replayed {
		t.Fatalf("event on a new partition replayed: %+v", out[0])
	}
	if l, _ := rdb.LLen(ctx, AppliedKey("P|shop")).Result(); l != 1 {
		t.Fatalf("log length %d, want 1 (the new partition's)", l)
	}
}
