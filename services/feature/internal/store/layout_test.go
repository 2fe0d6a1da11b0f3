package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/stockcast/stockcast/services/feature/internal/features"
)

// TestCompactRing: the day ring is stored from its oldest non-zero day to
// 'end' (4 bytes a day), so a young series does not pay for 400 days; the
// code before stored 1600 bytes whatever the history. Every case is read
// back and compared with the days applied.
func TestCompactRing(t *testing.T) {
	// monday is slot 396: monday+4 wraps to slot 0.
	tests := []struct {
		name    string
		changes []features.Change
		bytes   int // HSTRLEN days
		want    map[features.Day]float64
	}{
		{name: "three order lines on two days",
			changes: []features.Change{demand("a", monday, 9, 2), demand("b", monday, 12, 1), demand("c", monday+2, 9, 4)},
			bytes:   12, want: map[features.Day]float64{monday: 3, monday + 2: 4}},
		{name: "over the ring's wrap (slots 397..1)",
			changes: []features.Change{demand("a", monday+1, 9, 1.5), demand("b", monday+5, 9, 2)},
			bytes:   20, want: map[features.Day]float64{monday + 1: 1.5, monday + 5: 2}},
		{name: "a stockout alone: no demand day",
			changes: []features.Change{change("s", features.KindStockoutStarted, monday, 9)},
			bytes:   0, want: map[features.Day]float64{}},
		{name: "the oldest day cancelled to zero is dropped",
			changes: []features.Change{demand("a", monday, 9, 2), demand("b", monday+3, 9, 1), demand("c", monday, 10, -2)},
			bytes:   4, want: map[features.Day]float64{monday + 3: 1}},
		{name: "a late event older than the stored days",
			changes: []features.Change{demand("a", monday+10, 9, 1), demand("b", monday+2, 9, -1)},
			bytes:   36, want: map[features.Day]float64{monday + 2: -1, monday + 10: 1}},
		{name: "the ring's oldest day has demand: the whole slot ring",
			changes: []features.Change{demand("a", monday, 9, 1), demand("b", monday+399, 9, 2)},
			bytes:   1600, want: map[features.Day]float64{monday: 1, monday + 399: 2}},
		{name: "the ring moved past the oldest demand",
			changes: []features.Change{demand("a", monday, 9, 1), demand("b", monday+100, 9, 2), demand("c", monday+450, 9, 3)},
			bytes:   351 * 4, want: map[features.Day]float64{monday + 100: 2, monday + 450: 3}},
	}
	s, rdb := newStore(t)
	ctx := context.Background()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := rdb.FlushDB(ctx).Err(); err != nil {
				t.Fatal(err)
			}
			markComplete(t, rdb)
			r := last(t, s, tt.changes...)
			if n := rdb.HStrLen(ctx, SeriesKey(series), "days").Val(); n != int64(tt.bytes) {
				t.Errorf("days take %d bytes, want %d", n, tt.bytes)
			}
			st := r.State
			for d := st.Ring.Start(); d <= st.Ring.End; d++ {
				if got := st.Ring.DemandOn(d); got != tt.want[d] {
					t.Errorf("demand on %s = %v, want %v", d, got, tt.want[d])
				}
			}
			_, _, found, err := s.Load(ctx, "sku1", "shop")
			if err != nil || !found {
				t.Fatalf("load: found %v, %v", found, err)
			}
		})
	}
}

// slotRing encodes a state's days as the code before stored them: 400
// int32 milli-units, slot = day mod 400.
func slotRing(st features.State) string {
	b := make([]byte, features.RingDays*4)
	for d := st.Ring.Start(); d <= st.Ring.End; d++ {
		binary.LittleEndian.PutUint32(b[features.Slot(d)*4:], uint32(int32(math.Round(st.Ring.DemandOn(d)*1000))))
	}
	return string(b)
}

// toOldLayout rewrites every series hash's ring as the code before wrote it
// (and its undo entries are of the same form either way: positions in the
// slot ring).
func toOldLayout(t *testing.T, rdb *redis.Client) {
	t.Helper()
	ctx := context.Background()
	keys, err := rdb.Keys(ctx, "stockcast:f:*").Result()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, k := range keys {
		if strings.Contains(k, "}:") {
			continue // undo logs, markers
		}
		h, err := rdb.HGetAll(ctx, k).Result()
		if err != nil {
			t.Fatal(err)
		}
		st, err := DecodeState(h)
		if err != nil {
			t.Fatal(err)
		}
		old := slotRing(st)
		if err := rdb.HSet(ctx, k, "days", old).Err(); err != nil {
			t.Fatal(err)
		}
		back, err := DecodeState(map[string]string{"end": h["end"], "days": old, "outdays": h["outdays"]})
		if err != nil || back.Ring != st.Ring {
			t.Fatalf("%s: the old layout reads another ring (%v)", k, err)
		}
		n++
	}
	if n == 0 {
		t.Fatal("no series hash to rewrite")
	}
}

// TestOldLayoutReads: hashes written by the code before (the 1600-byte
// slot ring) read the same and take events on: the whole batch delivered
// again over them (its undo entries undone on the old layout) and a later
// batch give the snapshots and the Redis content of the reference run.
func TestOldLayoutReads(t *testing.T) {
	rdb := startRedis(t)
	s := NewRedis(rdb, Config{DedupTTL: time.Hour})
	ctx := context.Background()
	recs := stream(false)
	reset := func() {
		t.Helper()
		if err := rdb.FlushDB(ctx).Err(); err != nil {
			t.Fatal(err)
		}
		markComplete(t, rdb)
	}
	reset()
	first := run(t, s, recs)[0]
	want := dump(t, rdb, false)
	wantHash := map[string]map[string]string{}
	for k := range want {
		wantHash[k] = rdb.HGetAll(ctx, k).Val()
	}

	mid0, mid1 := int64(100+41+8), int64(700+6)
	for _, tt := range []struct {
		name          string
		before, after [][]rec
		// untouched: a series hash the events after do not reach stays
		// in the old layout: compared by its decoded state.
		untouched bool
	}{
		{"half a batch in the old layout, then the batch again", [][]rec{upto(recs, mid0, mid1)}, [][]rec{recs}, false},
		{"a committed half in the old layout, then the next batch", [][]rec{upto(recs, mid0, mid1)}, [][]rec{from(recs, mid0, mid1)}, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			reset()
			run(t, s, tt.before...)
			toOldLayout(t, rdb)
			for _, snaps := range run(t, s, tt.after...) {
				for id, b := range snaps {
					if !bytes.Equal(b, first[id]) {
						t.Errorf("snapshot of %s differs from the reference run", id)
					}
				}
			}
			got := dump(t, rdb, false)
			if tt.untouched {
				for k := range got {
					if strings.Contains(got[k], `days="`) && len(rdb.HGet(ctx, k, "days").Val()) == features.RingDays*4 {
						h, _ := rdb.HGetAll(ctx, k).Result()
						w, _ := DecodeState(wantHash[k])
						g, err := DecodeState(h)
						if err != nil || g != w {
							t.Errorf("%s: the old layout reads %+v (%v), want %+v", k, g, err, w)
						}
						got[k] = want[k]
					}
				}
			}
			if d := diffDumps(want, got); len(d) > 0 {
				t.Errorf("redis differs from the reference run:\n%s", strings.Join(d, "\n"))
			}
		})
	}
}
