package store

import (
	"context"
	"fmt"
	"testing"

	"github.com/stockcast/stockcast/services/feature/internal/features"
)

// TestMemoryPerSeries measures a series with a full year of history (and
// every kind of field set) against the budget of 4 KiB of Redis memory.
func TestMemoryPerSeries(t *testing.T) {
	s, rdb := newStore(t)
	ctx := context.Background()
	var changes []features.Change
	for d := range features.Day(365) {
		day := monday + d
		for h := 8; h < 20; h += 3 {
			changes = append(changes, demand(fmt.Sprintf("d%d-%d", d, h), day, h, float64(int(d)%7+h)))
		}
		if d%30 == 0 {
			c := change(fmt.Sprint("p", d), features.KindPrice, day, 7)
			c.Price = 1.99 + float64(d)/100
			changes = append(changes, c, change(fmt.Sprint("s", d), features.KindStockoutStarted, day, 20),
				change(fmt.Sprint("e", d), features.KindStockoutEnded, day+1, 6))
		}
	}
	promo := change("promo", features.KindPromotion, monday+300, 9)
	promo.PromotionID, promo.PromotionStart, promo.PromotionEnd = "black-friday-2025", (monday + 360).Time(), (monday + 367).Time()
	changes = append(changes, promo, demand("cancel", monday+364, 21, -2.5))
	res, err := s.Apply(ctx, changes)
	if err != nil {
		t.Fatal(err)
	}
	st := res[len(res)-1].State
	if st.Ring.End != monday+364 || st.FirstSale != monday || st.Price == 0 || st.PromotionID == "" {
		t.Fatalf("history not built: end %s first %s price %v promo %q", st.Ring.End, st.FirstSale, st.Price, st.PromotionID)
	}

	hash, err := rdb.MemoryUsage(ctx, SeriesKey(series), 0).Result() // SAMPLES 0: every field, not an estimate
	if err != nil {
		t.Fatal(err)
	}
	marker, err := rdb.MemoryUsage(ctx, SeenKey(series, "d364-8")).Result()
	if err != nil {
		t.Fatal(err)
	}
	fields, _ := rdb.HLen(ctx, SeriesKey(series)).Result()
	t.Logf("series hash: %d bytes (%d fields); dedup marker: %d bytes per event", hash, fields, marker)
	if hash > 4096 {
		t.Fatalf("series hash uses %d bytes of Redis memory, budget 4096", hash)
	}

	// The undo log holds the series' events of the batch handled last
	// (series.lua): measured after batches of 1, 10 and 100 events of the
	// consumer's kind (demand over the next days, hours spread, a price
	// and a stockout now and then), each a new batch of partition 0.
	off := int64(1000)
	for _, n := range []int{1, 10, 100} {
		var b []features.Change
		for i := range n {
			day := monday + 365 + features.Day(off-1000+int64(i))/8
			c := demand(fmt.Sprintf("u%d-%d", n, i), day, 8+i%12, float64(1+i%4))
			switch i % 25 {
			case 7:
				c = change(c.EventID, features.KindPrice, day, 9)
				c.Price = 2.49
			case 19:
				c = change(c.EventID, features.KindStockoutStarted, day, 21)
			}
			c.Pos = &features.Position{Partition: 0, Offset: off + int64(i), Start: off}
			b = append(b, c)
		}
		off += int64(n)
		if _, err := s.Apply(ctx, b); err != nil {
			t.Fatal(err)
		}
		undo, err := rdb.MemoryUsage(ctx, UndoKey(series), 0).Result()
		if err != nil {
			t.Fatal(err)
		}
		// ... and the previous batch's newest entry: the offset watermark.
		want := int64(n) + 1
		if n == 1 {
			want = 1 // the first batch with positions
		}
		if l, _ := rdb.LLen(ctx, UndoKey(series)).Result(); l != want {
			t.Fatalf("undo log holds %d entries after a batch of %d, want %d", l, n, want)
		}
		hash, _ := rdb.MemoryUsage(ctx, SeriesKey(series), 0).Result()
		t.Logf("batch of %3d events: undo log %5d bytes (%.0f per event), series hash %d bytes", n, undo, float64(undo)/float64(n), hash)
		if per := float64(undo) / float64(n); n > 1 && per > 200 {
			t.Errorf("undo log takes %.0f bytes per event, budget 200", per)
		}
	}
}

// TestMemoryYoungSeries: a series with 3 order lines on 2 days (the
// loadgen's young series) pays for its 3 days of ring, not 400: the code
// before stored 1600 bytes of ring, 2,928 bytes of hash in all (README.md
// "Memory").
func TestMemoryYoungSeries(t *testing.T) {
	s, rdb := newStore(t)
	ctx := context.Background()
	p := change("p", features.KindPrice, monday, 7)
	p.Price = 2.49
	apply(t, s, p, demand("a", monday, 9, 2), demand("b", monday, 12, 1), demand("c", monday+2, 9, 4))
	hash, err := rdb.MemoryUsage(ctx, SeriesKey(series), 0).Result()
	if err != nil {
		t.Fatal(err)
	}
	enc, _ := rdb.ObjectEncoding(ctx, SeriesKey(series)).Result()
	t.Logf("young series hash: %d bytes (%s)", hash, enc)
	if hash > 1536 {
		t.Fatalf("a young series' hash takes %d bytes, want at most 1536", hash)
	}
}
