package store

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/stockcast/stockcast/services/feature/internal/features"
)

// monday is 2024-09-30.
const monday features.Day = 19996

const series = "sku1|shop"

func at(day features.Day, hour int) time.Time { return day.Time().Add(time.Duration(hour) * time.Hour) }

func change(id string, kind features.Kind, day features.Day, hour int) features.Change {
	return features.Change{EventID: id, SKU: "sku1", Location: "shop", Day: day, At: at(day, hour), Kind: kind}
}

func demand(id string, day features.Day, hour int, q float64) features.Change {
	c := change(id, features.KindDemand, day, hour)
	c.Quantity = q
	return c
}

func newStore(t *testing.T) (*Redis, *redis.Client) {
	rdb := startRedis(t)
	return NewRedis(rdb, Config{DedupTTL: time.Hour}), rdb
}

func apply(t *testing.T, s *Redis, changes ...features.Change) []features.Outcome {
	t.Helper()
	res, err := s.Apply(context.Background(), changes)
	if err != nil {
		t.Fatalf("apply: %v", err)
	}
	return res
}

func last(t *testing.T, s *Redis, changes ...features.Change) features.Outcome {
	t.Helper()
	res := apply(t, s, changes...)
	return res[len(res)-1]
}

func TestApplyDemand(t *testing.T) {
	s, rdb := newStore(t)
	ctx := context.Background()
	r := last(t, s,
		demand("e1", monday, 9, 4),
		demand("e2", monday, 15, 2),
		demand("e3", monday+2, 9, 3),
		demand("e4", monday+2, 18, -1), // a cancellation
	)
	st := r.State
	if !r.Applied || r.Note != "" {
		t.Fatalf("applied %v note %q", r.Applied, r.Note)
	}
	if !st.HasDays || st.Ring.End != monday+2 || st.Since != monday {
		t.Fatalf("ring end %s since %s", st.Ring.End, st.Since)
	}
	for d, want := range map[features.Day]float64{monday - 1: 0, monday: 6, monday + 1: 0, monday + 2: 2} {
		if got := st.Ring.DemandOn(d); got != want {
			t.Errorf("demand on %s = %v, want %v", d, got, want)
		}
	}
	// Hourly counts placed demand only: the cancellation arrived at 18h.
	if st.Hourly[9] != 7 || st.Hourly[15] != 2 || st.Hourly[18] != 0 {
		t.Errorf("hourly = %v", st.Hourly)
	}
	if !st.HasSale || st.FirstSale != monday || st.LastSale != monday+2 || st.TotalDemand != 8 || st.EventsApplied != 4 {
		t.Errorf("sale %v %s..%s total %v events %d", st.HasSale, st.FirstSale, st.LastSale, st.TotalDemand, st.EventsApplied)
	}
	if st.LastEventID != "e4" || !st.LastEventAt.Equal(at(monday+2, 18)) || !st.LatestAt.Equal(at(monday+2, 18)) {
		t.Errorf("last event %s at %s, latest %s", st.LastEventID, st.LastEventAt, st.LatestAt)
	}

	// A redelivery changes nothing, not even the hash bytes, and returns the state.
	before, _ := rdb.HGetAll(ctx, SeriesKey(series)).Result()
	again := apply(t, s, demand("e2", monday, 15, 2), demand("e4", monday+2, 18, -1))
	after, _ := rdb.HGetAll(ctx, SeriesKey(series)).Result()
	for i, r := range again {
		if r.Applied {
			t.Errorf("redelivery %d applied", i)
		}
		if r.State.TotalDemand != 8 || r.State.EventsApplied != 4 {
			t.Errorf("redelivery %d state: total %v events %d", i, r.State.TotalDemand, r.State.EventsApplied)
		}
	}
	if fmt.Sprint(before) != fmt.Sprint(after) {
		t.Errorf("redelivery changed the hash")
	}
	ttl, err := rdb.TTL(ctx, SeenKey(series, "e1")).Result()
	if err != nil || ttl <= 0 || ttl > time.Hour {
		t.Errorf("dedup marker ttl %s, %v", ttl, err)
	}
}

func TestApplyCancellationIsExact(t *testing.T) {
	s, _ := newStore(t)
	r := last(t, s,
		demand("p1", monday, 9, 0.1), demand("p2", monday, 9, 0.2),
		demand("c1", monday, 10, -0.1), demand("c2", monday, 11, -0.2),
	)
	if got := r.State.Ring.DemandOn(monday); got != 0 {
		t.Fatalf("day after full cancellation = %v, want exactly 0", got)
	}
	if r.State.TotalDemand != 0 {
		t.Fatalf("total = %v, want exactly 0", r.State.TotalDemand)
	}
	if f := features.Compute(&r.State, monday); f.DaysSinceLastSale != -1 {
		t.Fatalf("days since last sale = %d, want -1 (nothing sold net)", f.DaysSinceLastSale)
	}
}

func TestApplyLateAndRing(t *testing.T) {
	tests := []struct {
		name     string
		changes  []features.Change
		wantEnd  features.Day
		wantDays map[features.Day]float64
		wantNote string
		total    float64
		first    features.Day
	}{
		{
			name:     "late event within the ring updates its day",
			changes:  []features.Change{demand("a", monday+10, 9, 1), demand("b", monday, 9, 5)},
			wantEnd:  monday + 10,
			wantDays: map[features.Day]float64{monday: 5, monday + 10: 1},
			total:    6, first: monday,
		},
		{
			name:     "oldest day of the ring",
			changes:  []features.Change{demand("a", monday+399, 9, 1), demand("b", monday, 9, 5)},
			wantEnd:  monday + 399,
			wantDays: map[features.Day]float64{monday: 5, monday + 399: 1},
			total:    6, first: monday,
		},
		{
			name:     "older than the ring: counted in totals, not in buckets",
			changes:  []features.Change{demand("a", monday+400, 9, 1), demand("b", monday, 9, 5)},
			wantEnd:  monday + 400,
			wantDays: map[features.Day]float64{monday: 0, monday + 400: 1},
			wantNote: features.NoteOutsideRing,
			total:    6, first: monday,
		},
		{
			name: "ring wraps: a day's slot is reused 400 days later",
			changes: []features.Change{
				demand("a", monday, 9, 7), demand("b", monday+1, 9, 3), demand("c", monday+399, 9, 1),
				demand("d", monday+400, 9, 2), // takes monday's slot
			},
			wantEnd:  monday + 400,
			wantDays: map[features.Day]float64{monday: 0, monday + 1: 3, monday + 399: 1, monday + 400: 2},
			total:    13, first: monday,
		},
		{
			name: "a gap longer than the ring clears it",
			changes: []features.Change{
				demand("a", monday, 9, 7), demand("b", monday+200, 9, 3),
				demand("c", monday+1000, 9, 1),
			},
			wantEnd:  monday + 1000,
			wantDays: map[features.Day]float64{monday + 600: 0, monday + 601: 0, monday + 800: 0, monday + 1000: 1},
			total:    11, first: monday,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, _ := newStore(t)
			r := last(t, s, tt.changes...)
			st := r.State
			if r.Note != tt.wantNote || st.Ring.End != tt.wantEnd || st.TotalDemand != tt.total || st.FirstSale != tt.first {
				t.Errorf("note %q end %s total %v first %s; want %q %s %v %s", r.Note, st.Ring.End, st.TotalDemand, st.FirstSale,
					tt.wantNote, tt.wantEnd, tt.total, tt.first)
			}
			var sum, wantSum float64
			for _, q := range st.Ring.Demand {
				sum += q
			}
			for d, want := range tt.wantDays {
				wantSum += want
				if got := st.Ring.DemandOn(d); got != want {
					t.Errorf("demand on end%+d = %v, want %v", d-tt.wantEnd, got, want)
				}
			}
			if sum != wantSum {
				t.Errorf("ring holds %v in all, want %v (stale slots not cleared)", sum, wantSum)
			}
		})
	}
}

func TestApplyStockoutPriceAndPromotion(t *testing.T) {
	s, _ := newStore(t)
	price := func(id string, day features.Day, hour int, p float64) features.Change {
		c := change(id, features.KindPrice, day, hour)
		c.Price = p
		return c
	}
	promo := func(id string, day features.Day, pid string, from, to features.Day) features.Change {
		c := change(id, features.KindPromotion, day, 8)
		c.PromotionID, c.PromotionStart, c.PromotionEnd = pid, from.Time(), to.Time()
		return c
	}
	res := apply(t, s,
		demand("d0", monday, 9, 1),
		change("s1", features.KindStockoutStarted, monday+1, 12),
		demand("d1", monday+3, 9, 1), // still out: monday+2 and +3 are stockout days
		change("s2", features.KindStockoutEnded, monday+3, 14),
		change("o1", features.KindOther, monday+5, 9), // an inventory snapshot: no feature change
		price("p1", monday+5, 10, 2.5),
		price("p0", monday+4, 10, 9.99), // late: older than the price in force
		promo("m1", monday+5, "spring", monday+5, monday+7),
	)
	st := res[len(res)-1].State
	for d := monday; d <= monday+5; d++ {
		want := d >= monday+1 && d <= monday+3
		if got := st.Ring.StockoutOn(d); got != want {
			t.Errorf("stockout on %s = %v, want %v", d, got, want)
		}
	}
	if res[2].State.Stockout != true || st.Stockout {
		t.Errorf("stockout flag during %v, after %v", res[2].State.Stockout, st.Stockout)
	}
	if st.Price != 2.5 {
		t.Errorf("price %v, want 2.5 (the late change is older)", st.Price)
	}
	if st.PromotionID != "spring" || !st.PromotionStart.Equal((monday + 5).Time()) || !st.PromotionEnd.Equal((monday + 7).Time()) {
		t.Errorf("promotion %q %s..%s", st.PromotionID, st.PromotionStart, st.PromotionEnd)
	}
	if !st.PromotionActive(st.LatestAt) {
		t.Errorf("promotion not active at %s", st.LatestAt)
	}
	if st.EventsApplied != 8 || st.TotalDemand != 2 || st.Ring.End != monday+5 {
		t.Errorf("events %d total %v end %s", st.EventsApplied, st.TotalDemand, st.Ring.End)
	}
}

func TestApplyItem(t *testing.T) {
	s, _ := newStore(t)
	item := func(id string, day features.Day, cat string) features.Change {
		return features.Change{EventID: id, SKU: "sku1", Day: day, At: day.Time(), Kind: features.KindItem,
			Item: features.Item{Category: cat, Department: "home"}}
	}
	res := apply(t, s,
		demand("d0", monday, 9, 1),
		item("i1", monday+1, "candles"),
		demand("d1", monday+1, 9, 1),
		item("i0", monday, "old"), // late: the newer attributes stay
		item("i1", monday+1, "candles"),
	)
	if res[0].Item != (features.Item{}) {
		t.Errorf("item before attributes: %+v", res[0].Item)
	}
	want := features.Item{Category: "candles", Department: "home"}
	for i, r := range res[1:] {
		if r.Item != want {
			t.Errorf("result %d item %+v, want %+v", i+1, r.Item, want)
		}
	}
	if !res[1].Applied || !res[3].Applied || res[4].Applied {
		t.Errorf("applied: %v %v %v", res[1].Applied, res[3].Applied, res[4].Applied)
	}
	st, it, found, err := s.Load(context.Background(), "sku1", "shop")
	if err != nil || !found || it != want || st.TotalDemand != 2 {
		t.Fatalf("load: %+v %v %v total %v", it, found, err, st.TotalDemand)
	}
	if _, _, found, err := s.Load(context.Background(), "sku1", "elsewhere"); err != nil || found {
		t.Fatalf("load unknown series: found %v, %v", found, err)
	}
}

func TestApplyReloadsScripts(t *testing.T) {
	s, rdb := newStore(t)
	ctx := context.Background()
	apply(t, s, demand("a", monday, 9, 1))
	if err := rdb.ScriptFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	r := last(t, s, demand("b", monday, 9, 1), demand("a", monday, 9, 1))
	if r.Applied || r.State.TotalDemand != 2 {
		t.Fatalf("after SCRIPT FLUSH: applied %v total %v", r.Applied, r.State.TotalDemand)
	}
}

// TestApplyBigBatchPipelines: a batch takes one round trip per maxPipeline
// events, one EVALSHA per event.
func TestApplyBigBatchPipelines(t *testing.T) {
	s, rdb := newStore(t)
	ctx := context.Background()
	var changes []features.Change
	for i := range 3000 {
		changes = append(changes, demand(fmt.Sprint("e", i), monday+features.Day(i%30), i%24, 1))
	}
	if err := s.LoadScripts(ctx); err != nil {
		t.Fatal(err)
	}
	hook := &pipelineCounter{}
	rdb.AddHook(hook)
	before := commandCalls(t, rdb, "evalsha")
	res, err := s.Apply(ctx, changes)
	if err != nil {
		t.Fatal(err)
	}
	if want := (len(changes) + maxPipeline - 1) / maxPipeline; hook.pipelines != want {
		t.Fatalf("%d pipelines for a batch of %d, want %d", hook.pipelines, len(changes), want)
	}
	if got := res[len(res)-1].State; got.TotalDemand != 3000 || got.EventsApplied != 3000 || got.Ring.DemandOn(monday) != 100 {
		t.Fatalf("total %v events %d first day %v", got.TotalDemand, got.EventsApplied, got.Ring.DemandOn(monday))
	}
	if calls := commandCalls(t, rdb, "evalsha") - before; calls != 3000 {
		t.Fatalf("%d EVALSHA calls for 3000 events", calls)
	}
}

// pipelineCounter counts the pipelines of scripts sent to Redis (round trips).
type pipelineCounter struct{ pipelines int }

func (*pipelineCounter) DialHook(next redis.DialHook) redis.DialHook          { return next }
func (*pipelineCounter) ProcessHook(next redis.ProcessHook) redis.ProcessHook { return next }
func (h *pipelineCounter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if cmds[0].Name() == "evalsha" { // not the connection setup of a new connection
			h.pipelines++
		}
		return next(ctx, cmds)
	}
}

// commandCalls reads how often Redis ran a command.
func commandCalls(t *testing.T, rdb *redis.Client, cmd string) int {
	t.Helper()
	info, err := rdb.Info(context.Background(), "commandstats").Result()
	if err != nil {
		t.Fatal(err)
	}
	var calls int
	for _, line := range splitLines(info) {
		if _, err := fmt.Sscanf(line, "cmdstat_"+cmd+":calls=%d", &calls); err == nil {
			return calls
		}
	}
	return 0
}
