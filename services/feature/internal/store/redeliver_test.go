package store

import (
	"bytes"
	"context"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"google.golang.org/protobuf/proto"

	demandv1 "github.com/stockcast/stockcast/proto/stockcast/demand/v1"
	"github.com/stockcast/stockcast/services/feature/internal/features"
)

// A record of demand.v1 in these tests: a change at an offset of a
// partition.
type rec struct {
	part int32
	off  int64
	c    features.Change
}

// stream builds the records of two partitions. Partition 0 holds the
// series sku1|shop and sku2|shop and the attributes of sku1 (item events are
// keyed by SKU), partition 1 the series sku3|shop and the attributes of
// sku3. (A series whose SKU's attributes come from another partition reads
// them as they are when it is applied: README.md "Redeliveries".) Every kind of
// change is there, with what the undo log has to restore: new series, a
// ring that moves on (by a day, by 30 days over slots of a year before, by
// more than the ring), stockout days, late price/promotion/item events, an
// event older than the ring, the first hour of a series, cancellations, and
// with dup an upstream duplicate (an event id again at a later offset: only
// without Kafka transactions, where ingest may publish an event twice and
// the store keeps markers).
func stream(dup bool) []rec {
	var recs []rec
	offs := map[int32]int64{0: 100, 1: 700}
	add := func(part int32, c features.Change) {
		recs = append(recs, rec{part, offs[part], c})
		offs[part]++
	}
	in := func(sku string, c features.Change) features.Change { c.SKU = sku; return c }
	price := func(id string, day features.Day, hour int, p float64) features.Change {
		c := change(id, features.KindPrice, day, hour)
		c.Price = p
		return c
	}
	promo := func(id string, day features.Day, pid string) features.Change {
		c := change(id, features.KindPromotion, day, 8)
		c.PromotionID, c.PromotionStart, c.PromotionEnd = pid, day.Time(), (day + 7).Time()
		return c
	}
	item := func(id, sku string, day features.Day, cat string) features.Change {
		return features.Change{EventID: id, SKU: sku, Day: day, At: day.Time(), Kind: features.KindItem,
			Item: features.Item{Category: cat, Department: "home"}}
	}
	// A history of a year for sku2 first, so that moving the ring on
	// clears slots that held demand.
	for d := range features.Day(370) {
		if d%9 == 0 {
			add(0, in("sku2", demand(fmt.Sprint("h", d), monday-400+d, 10, float64(d%5+1))))
		}
	}
	add(0, item("i1", "sku1", monday, "candles"))
	add(0, demand("a1", monday, 9, 4))
	add(0, in("sku2", demand("b1", monday, 11, 2)))
	add(1, in("sku3", demand("c1", monday, 7, 1)))
	add(0, demand("a2", monday, 15, 2))
	add(0, change("a3", features.KindStockoutStarted, monday+1, 12))
	add(0, in("sku2", demand("b2", monday+30, 12, 5))) // 30 days on, over last year's slots
	add(1, item("i3", "sku3", monday, "soap"))
	add(0, demand("a4", monday+3, 9, 1)) // still out: 2 more stockout days
	add(1, in("sku3", price("c2", monday, 9, 3.5)))
	add(0, change("a5", features.KindStockoutEnded, monday+3, 14))
	add(0, price("a6", monday+4, 10, 2.5))
	add(0, price("a7", monday+3, 10, 9.99)) // late: the price stays
	add(0, item("i2", "sku1", monday+2, "lights"))
	add(0, promo("a8", monday+4, "spring"))
	add(0, demand("a9", monday+4, 18, -1)) // a cancellation
	add(0, in("sku2", change("b3", features.KindOther, monday+31, 9)))
	add(0, item("i0", "sku1", monday-1, "old")) // late: the newer attributes stay
	if dup {
		add(0, demand("a2", monday, 15, 2)) // upstream duplicate of a2
	}
	add(1, in("sku3", demand("c3", monday+500, 7, 2))) // more than the ring on
	add(1, in("sku3", demand("c4", monday+90, 7, 1)))  // older than the ring now
	add(0, in("sku2", promo("b4", monday+31, "sale")))
	add(0, demand("a10", monday+4, 19, 3))
	add(1, in("sku3", demand("c5", monday+500, 20, -0.5)))
	add(0, in("sku2", demand("b5", monday+32, 23, 1)))
	add(1, item("i4", "sku3", monday+1, "soap2"))
	add(0, demand("a11", monday+5, 9, 1))
	return recs
}

// batch returns the changes of recs in the order the consumer hands them
// to the store (partition 0's records, then partition 1's), each with its
// position; start is every partition's first offset in recs.
func batch(recs []rec) []features.Change {
	start := map[int32]int64{}
	var out []features.Change
	var parts []int32
	for _, r := range recs {
		if _, ok := start[r.part]; !ok {
			start[r.part] = -1
			parts = append(parts, r.part)
		}
	}
	sort.Slice(parts, func(i, j int) bool { return parts[i] < parts[j] })
	for _, part := range parts {
		for _, r := range recs {
			if r.part != part {
				continue
			}
			if start[part] < 0 {
				start[part] = r.off
			}
			c := r.c
			c.Pos = &features.Position{Partition: part, Offset: r.off, Start: start[part]}
			out = append(out, c)
		}
	}
	return out
}

// from returns the records of recs at or after the given offsets.
func from(recs []rec, p0, p1 int64) []rec {
	var out []rec
	for _, r := range recs {
		if (r.part == 0 && r.off >= p0) || (r.part == 1 && r.off >= p1) {
			out = append(out, r)
		}
	}
	return out
}

// upto returns the records of recs before the given offsets.
func upto(recs []rec, p0, p1 int64) []rec {
	var out []rec
	for _, r := range recs {
		if (r.part == 0 && r.off < p0) || (r.part == 1 && r.off < p1) {
			out = append(out, r)
		}
	}
	return out
}

// snapshots are the features.v1 values of a batch's outcomes, by event and
// offset, as the consumer builds them.
func snapshots(t *testing.T, changes []features.Change, res []features.Outcome) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	for i, c := range changes {
		ev := &demandv1.DemandEvent{EventId: c.EventID, Sku: c.SKU, Location: c.Location}
		var snap proto.Message
		if c.Kind == features.KindItem {
			snap = features.ItemSnapshot(c.SKU, res[i].Item, ev, res[i].Applied)
		} else {
			snap = features.Snapshot(c.SKU, c.Location, &res[i].State, res[i].Item, features.AsOf(&res[i].State, c.Day), ev, res[i].Applied)
		}
		b, err := proto.MarshalOptions{Deterministic: true}.Marshal(snap)
		if err != nil {
			t.Fatal(err)
		}
		out[fmt.Sprintf("%s@%d/%d", c.EventID, c.Pos.Partition, c.Pos.Offset)] = b
	}
	return out
}

// dump reads every feature key: hashes whole, markers by name, undo logs
// (with logs) by their entries.
func dump(t *testing.T, rdb *redis.Client, logs bool) map[string]string {
	t.Helper()
	ctx := context.Background()
	keys, err := rdb.Keys(ctx, "stockcast:[fi]*").Result()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, k := range keys {
		switch {
		case strings.Contains(k, ":seen:"):
			out[k] = "marker"
		case strings.HasSuffix(k, ":undo"):
			if logs {
				l, err := rdb.LRange(ctx, k, 0, -1).Result()
				if err != nil {
					t.Fatal(err)
				}
				out[k] = fmt.Sprintf("%q", l)
			}
		default:
			h, err := rdb.HGetAll(ctx, k).Result()
			if err != nil {
				t.Fatal(err)
			}
			fs := make([]string, 0, len(h))
			for f, v := range h {
				fs = append(fs, fmt.Sprintf("%s=%q", f, v))
			}
			sort.Strings(fs)
			out[k] = strings.Join(fs, " ")
		}
	}
	return out
}

func diffDumps(want, got map[string]string) []string {
	var d []string
	for k, w := range want {
		if g, ok := got[k]; !ok {
			d = append(d, "missing "+k)
		} else if g != w {
			d = append(d, fmt.Sprintf("%s:\n want %.300s\n got  %.300s", k, w, g))
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			d = append(d, "extra "+k)
		}
	}
	sort.Strings(d)
	return d
}

// run applies batches in order and collects every event's snapshots (a
// later application of an event overwrites nothing: each application is
// compared on its own by the caller).
func run(t *testing.T, s *Redis, batches ...[]rec) []map[string][]byte {
	t.Helper()
	var out []map[string][]byte
	for _, b := range batches {
		changes := batch(b)
		out = append(out, snapshots(t, changes, apply(t, s, changes...)))
	}
	return out
}

// TestRedeliveryGetsTheFirstSnapshots: every way a batch is delivered again
// (a retry of the same batch, a crash after part of it, a new owner that
// polls other batch boundaries, a crash after a commit in between) gives
// every event the snapshot of its first application, byte for byte, and
// leaves Redis as one application of the events does. On the code before
// the undo log a redelivered event got the series' current state. Both
// with markers (-kafka.transactions=false) and with the offset watermark
// alone (transactions: no marker key at all).
func TestRedeliveryGetsTheFirstSnapshots(t *testing.T) {
	for _, markers := range []bool{true, false} {
		t.Run(fmt.Sprint("markers=", markers), func(t *testing.T) { testRedeliveryGetsTheFirstSnapshots(t, markers) })
	}
}

func testRedeliveryGetsTheFirstSnapshots(t *testing.T, markers bool) {
	rdb := startRedis(t)
	s := NewRedis(rdb, Config{DedupTTL: time.Hour, Markers: markers})
	ctx := context.Background()
	recs := stream(markers)
	reset := func() {
		t.Helper()
		if err := rdb.FlushDB(ctx).Err(); err != nil {
			t.Fatal(err)
		}
		markComplete(t, rdb)
	}

	// The reference: every record once, in one batch.
	reset()
	first := run(t, s, recs)[0]
	want := dump(t, rdb, false)
	wantLogs := dump(t, rdb, true)
	if n := markerKeys(t, rdb); (n > 0) != markers {
		t.Fatalf("%d marker keys with markers=%v", n, markers)
	}

	// p0/p1 split points inside the stream (offsets of the second half).
	mid0, mid1 := int64(100+41+8), int64(700+6)
	tests := []struct {
		name string
		// first application (some of it), then the redeliveries; the
		// snapshots of every batch after the first application are
		// compared with the reference.
		before, again [][]rec
		sameLogs      bool
	}{
		{name: "the same batch again (handler retry, produce failed)",
			before: [][]rec{recs}, again: [][]rec{recs}, sameLogs: true},
		{name: "crash after part of the batch (a pipeline cut by an i/o timeout)",
			before: [][]rec{upto(recs, mid0, mid1)}, again: [][]rec{recs}, sameLogs: true},
		{name: "crash after part of the batch, only partition 0 reached",
			before: [][]rec{upto(recs, mid0, 0)}, again: [][]rec{recs}, sameLogs: true},
		{name: "the whole batch twice, then a new owner with other batch boundaries",
			before: [][]rec{recs, recs}, again: [][]rec{upto(recs, mid0, mid1), from(recs, mid0, mid1)}},
		{name: "first half committed, second half handled, crash: the second half again in two batches",
			before: [][]rec{upto(recs, mid0, mid1), from(recs, mid0, mid1)},
			again:  [][]rec{upto(from(recs, mid0, mid1), mid0+5, mid1+3), from(recs, mid0+5, mid1+3)}},
		{name: "one partition redelivered, the other committed",
			before: [][]rec{recs}, again: [][]rec{from(recs, 1<<40, 0)}, sameLogs: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reset()
			got := run(t, s, append(tt.before, tt.again...)...)
			n := 0
			for _, snaps := range got {
				for id, b := range snaps {
					n++
					if !bytes.Equal(b, first[id]) {
						t.Errorf("snapshot of %s differs from its first application", id)
					}
				}
			}
			if n <= len(recs) {
				t.Fatalf("%d snapshots: nothing delivered twice", n)
			}
			logs := tt.sameLogs
			if d := diffDumps(map[bool]map[string]string{false: want, true: wantLogs}[logs], dump(t, rdb, logs)); len(d) > 0 {
				t.Errorf("redis differs from one application (undo logs compared: %v):\n%s", logs, strings.Join(d, "\n"))
			}
		})
	}
}

// TestRedeliveryAfterCommitDedups (with markers, as without Kafka
// transactions): once a later batch of the partition started (its start is
// past the event), the undo entries are gone but the newest (the offset
// watermark), and an event seen again (an upstream duplicate at a new
// offset) changes nothing and gets the state of its series at that point;
// delivered again in its own batch, it gets that same snapshot.
func TestRedeliveryAfterCommitDedups(t *testing.T) {
	rdb := startRedis(t)
	s := NewRedis(rdb, Config{DedupTTL: time.Hour, Markers: true})
	ctx := context.Background()
	b1 := []rec{{0, 10, demand("e1", monday, 9, 1)}, {0, 11, demand("e2", monday+1, 9, 2)}}
	b2 := []rec{{0, 12, demand("e3", monday+2, 9, 4)}, {0, 13, demand("e1", monday, 9, 1)}, {0, 14, demand("e4", monday+2, 10, 8)}}
	run(t, s, b1)
	if n, _ := rdb.LLen(ctx, UndoKey(series)).Result(); n != 2 {
		t.Fatalf("undo log holds %d entries after the first batch, want 2", n)
	}
	r2 := apply(t, s, batch(b2)...)
	if n, _ := rdb.LLen(ctx, UndoKey(series)).Result(); n != 3 {
		t.Fatalf("undo log holds %d entries after the second batch, want 3 (the first batch's dropped but its newest)", n)
	}
	if r2[1].Applied || r2[1].State.TotalDemand != 7 || r2[1].State.EventsApplied != 3 || r2[1].RolledBack != 0 {
		t.Fatalf("duplicate of e1: applied %v total %v events %d rolled back %d", r2[1].Applied, r2[1].State.TotalDemand, r2[1].State.EventsApplied, r2[1].RolledBack)
	}
	before := dump(t, rdb, true)
	again := apply(t, s, batch(b2)...)
	for i := range again {
		if again[i].Applied != r2[i].Applied || again[i].State.TotalDemand != r2[i].State.TotalDemand ||
			again[i].State.EventsApplied != r2[i].State.EventsApplied {
			t.Errorf("record %d again: applied %v total %v events %d; first %v %v %d", i, again[i].Applied, again[i].State.TotalDemand,
				again[i].State.EventsApplied, r2[i].Applied, r2[i].State.TotalDemand, r2[i].State.EventsApplied)
		}
	}
	if again[0].RolledBack != 2 {
		t.Errorf("rolled back %d events at the batch's first record, want 2", again[0].RolledBack)
	}
	if d := diffDumps(before, dump(t, rdb, true)); len(d) > 0 {
		t.Errorf("redis changed:\n%s", strings.Join(d, "\n"))
	}
	// A batch that starts after b2 drops b2's entries but the newest at the
	// series' next event.
	apply(t, s, batch([]rec{{0, 15, demand("e5", monday+3, 9, 1)}})...)
	if n, _ := rdb.LLen(ctx, UndoKey(series)).Result(); n != 2 {
		t.Fatalf("undo log holds %d entries, want 2", n)
	}

	// Offsets reset to before the logged batch (or a commit lost without
	// transactions): the logged batch was committed, so every event before
	// it changes nothing, with the current state, and the log stays.
	before = dump(t, rdb, false)
	replay := apply(t, s, batch(append(append(b1, b2...), rec{0, 15, demand("e5", monday+3, 9, 1)}))...)
	for i, r := range replay[:5] {
		if r.Applied || r.RolledBack != 0 || r.State.TotalDemand != 16 || r.State.EventsApplied != 5 {
			t.Errorf("replayed record %d: applied %v rolled back %d total %v events %d, want the current state", i, r.Applied, r.RolledBack,
				r.State.TotalDemand, r.State.EventsApplied)
		}
	}
	// e5 is in the log: undone and applied again, with its first state.
	if r := replay[5]; !r.Applied || r.RolledBack != 1 || r.State.TotalDemand != 16 || r.State.EventsApplied != 5 {
		t.Errorf("replayed e5: applied %v rolled back %d total %v events %d", r.Applied, r.RolledBack, r.State.TotalDemand, r.State.EventsApplied)
	}
	if d := diffDumps(before, dump(t, rdb, false)); len(d) > 0 {
		t.Errorf("replay changed redis:\n%s", strings.Join(d, "\n"))
	}
}

// TestWatermarkWithoutMarkers: with Kafka transactions (no markers) the
// store keeps no key per event. After 50 batches of 20 events of one series
// it holds exactly the series hash and its undo log (the last batch's 20
// entries and the watermark): memory bounded by the events of one batch,
// not of the dedup TTL (the code before kept a marker per event, 1000
// keys). The last batch delivered again gets its first outcomes; a replay of
// every batch (offsets reset) changes nothing.
func TestWatermarkWithoutMarkers(t *testing.T) {
	rdb := startRedis(t)
	s := NewRedis(rdb, Config{DedupTTL: time.Hour})
	ctx := context.Background()
	var all, lastBatch []rec
	var first []features.Outcome
	off := int64(0)
	for b := range 50 {
		lastBatch = nil
		for i := range 20 {
			lastBatch = append(lastBatch, rec{0, off, demand(fmt.Sprintf("w%d-%d", b, i), monday+features.Day(b), 8+i%12, float64(1+i%3))})
			off++
		}
		first = apply(t, s, batch(lastBatch)...)
		all = append(all, lastBatch...)
	}
	keys, err := rdb.Keys(ctx, "stockcast:[fi]*").Result()
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(keys)
	if want := []string{SeriesKey(series), UndoKey(series)}; strings.Join(keys, " ") != strings.Join(want, " ") {
		t.Fatalf("keys after 1000 events = %d %q, want %q", len(keys), keys, want)
	}
	if n, _ := rdb.LLen(ctx, UndoKey(series)).Result(); n != 21 {
		t.Fatalf("undo log holds %d entries, want 21", n)
	}
	hash, _ := rdb.MemoryUsage(ctx, SeriesKey(series), 0).Result()
	undo, _ := rdb.MemoryUsage(ctx, UndoKey(series), 0).Result()
	t.Logf("after 1000 events in 50 batches: series hash %d bytes, undo log %d bytes (21 entries)", hash, undo)

	again := apply(t, s, batch(lastBatch)...)
	for i := range again {
		if !again[i].Applied || again[i].State.TotalDemand != first[i].State.TotalDemand ||
			again[i].State.EventsApplied != first[i].State.EventsApplied {
			t.Errorf("record %d again: applied %v total %v events %d; first %v %v %d", i, again[i].Applied, again[i].State.TotalDemand,
				again[i].State.EventsApplied, first[i].Applied, first[i].State.TotalDemand, first[i].State.EventsApplied)
		}
	}
	if again[0].RolledBack != 20 {
		t.Errorf("rolled back %d events at the batch's first record, want 20", again[0].RolledBack)
	}

	before := dump(t, rdb, false)
	replay := apply(t, s, batch(all)...)
	for i, r := range replay {
		if applied := i >= 980; r.Applied != applied || r.State.EventsApplied != 1000 && i < 980 {
			t.Fatalf("replayed record %d: applied %v events %d", i, r.Applied, r.State.EventsApplied)
		}
	}
	if d := diffDumps(before, dump(t, rdb, false)); len(d) > 0 {
		t.Errorf("replay changed redis:\n%s", strings.Join(d, "\n"))
	}
	if n, _ := rdb.LLen(ctx, UndoKey(series)).Result(); n != 21 {
		t.Fatalf("undo log holds %d entries after the replay, want 21", n)
	}
}

// markerKeys counts the dedup marker keys.
func markerKeys(t *testing.T, rdb *redis.Client) int {
	t.Helper()
	keys, err := rdb.Keys(context.Background(), "stockcast:*:seen:*").Result()
	if err != nil {
		t.Fatal(err)
	}
	return len(keys)
}

// TestUndoLogOnlyWithPositions: changes without a position (a rebuild's)
// log nothing; with positions the log expires with the markers.
func TestUndoLogOnlyWithPositions(t *testing.T) {
	s, rdb := newStore(t)
	ctx := context.Background()
	apply(t, s, demand("x1", monday, 9, 1), demand("x2", monday, 9, 1))
	if n, _ := rdb.Exists(ctx, UndoKey(series)).Result(); n != 0 {
		t.Fatalf("undo log without positions")
	}
	res := apply(t, s, batch([]rec{{3, 40, demand("x3", monday+1, 9, 1)}, {3, 41, demand("x1", monday, 9, 1)}})...)
	if !res[0].Applied || res[1].Applied || res[1].State.TotalDemand != 3 {
		t.Fatalf("applied %v %v total %v", res[0].Applied, res[1].Applied, res[1].State.TotalDemand)
	}
	ttl, err := rdb.TTL(ctx, UndoKey(series)).Result()
	if err != nil || ttl <= 0 || ttl > s.cfg.DedupTTL {
		t.Fatalf("undo log ttl %s, %v", ttl, err)
	}
}

// TestPipelineSplitChangesNothing: a batch sent in pipelines of a few
// changes (maxPipeline in production) gives every change the outcome of
// one pipeline and leaves Redis the same, undo logs included, with and
// without markers, also when delivered again.
func TestPipelineSplitChangesNothing(t *testing.T) {
	rdb := startRedis(t)
	ctx := context.Background()
	for _, markers := range []bool{true, false} {
		recs := stream(markers)
		var snaps [][]map[string][]byte
		var dumps []map[string]string
		for _, size := range []int{len(recs) + 1, 7, 1} {
			if err := rdb.FlushDB(ctx).Err(); err != nil {
				t.Fatal(err)
			}
			markComplete(t, rdb)
			s := NewRedis(rdb, Config{DedupTTL: time.Hour, Markers: markers})
			s.pipelineSize = size
			snaps = append(snaps, run(t, s, recs, recs[len(recs)/2:]))
			dumps = append(dumps, dump(t, rdb, true))
		}
		for k := 1; k < len(snaps); k++ {
			for b := range snaps[0] {
				for ev, want := range snaps[0][b] {
					if got := snaps[k][b][ev]; !bytes.Equal(got, want) {
						t.Errorf("markers=%v, split %d: batch %d, %s: snapshot differs from one pipeline's", markers, k, b, ev)
					}
				}
			}
			if d := diffDumps(dumps[0], dumps[k]); len(d) > 0 {
				t.Errorf("markers=%v, split %d: Redis differs from one pipeline's:\n%s", markers, k, strings.Join(d, "\n"))
			}
		}
		if len(snaps[0][0]) != len(recs) {
			t.Fatalf("markers=%v: %d snapshots for %d records", markers, len(snaps[0][0]), len(recs))
		}
	}
}
