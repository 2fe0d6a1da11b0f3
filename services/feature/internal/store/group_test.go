package store

import (
	"context"
	_ "embed"
	"fmt"
	"math/rand"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/stockcast/stockcast/services/feature/internal/features"
)

// seriesPerEventLua is series.lua as it was before one call per series and
// batch (commit 8f05744): one call per event, the hash read and written by
// each. TestGroupedEqualsPerEvent runs it as the reference.
//
//go:embed testdata/series_per_event.lua
var seriesPerEventLua string

// applyPerEvent applies changes (series events only) the way the code
// before did: one series.lua call per event, the state after it read by
// HGETALL in the script.
func applyPerEvent(t *testing.T, rdb *redis.Client, sc *redis.Script, markers bool, changes []features.Change) []features.Outcome {
	t.Helper()
	ctx := context.Background()
	m := ""
	if markers {
		m = "1"
	}
	out := make([]features.Outcome, len(changes))
	for i, c := range changes {
		args := append([]any{"3600"}, seriesArgs(c)...)
		args = append(append(append(args, ""), posArgs(c, false)...), m)
		reply, err := sc.Run(ctx, rdb, []string{SeriesKey(c.SeriesKey()), SeenKey(c.SeriesKey(), c.EventID), "stockcast:state:feature", UndoKey(c.SeriesKey())}, args...).Slice()
		if err != nil {
			t.Fatalf("per-event script, event %s: %v", c.EventID, err)
		}
		flat, _ := reply[2].([]any)
		hash := map[string]string{}
		for k := 0; k+1 < len(flat); k += 2 {
			hash[flat[k].(string)] = flat[k+1].(string)
		}
		st, err := DecodeState(hash)
		if err != nil {
			t.Fatal(err)
		}
		applied, _ := reply[0].(int64)
		note, _ := reply[1].(string)
		rolled, _ := reply[3].(int64)
		out[i] = features.Outcome{Applied: applied == 1, Note: note, State: st, RolledBack: int(rolled)}
	}
	return out
}

// randomDeliveries builds a random stream of series events on one
// partition (every kind, cancellations, days that move the ring by a day,
// by months and by more than the ring, late events older than the ring) cut
// into batches of random size, and delivers them the ways the consumer
// does: once, retried whole, or cut short by a crash after a random prefix
// and then delivered again from the batch start.
func randomDeliveries(seed int64) [][]features.Change {
	r := rand.New(rand.NewSource(seed))
	const nSeries, nEvents = 5, 400
	end := map[int]features.Day{}
	var all []features.Change
	for i := range nEvents {
		sn := r.Intn(nSeries)
		if sn > 1 && r.Intn(3) > 0 {
			sn = r.Intn(2) // two busy series
		}
		d, ok := end[sn]
		if !ok {
			d = monday
		}
		switch x := r.Intn(100); {
		case x < 60: // the same day
		case x < 85:
			d += features.Day(1 + r.Intn(3))
		case x < 90:
			d += features.Day(100 + r.Intn(380)) // a ring moved far
		case x < 93:
			d += 450 // more than the ring
		case x < 97:
			d -= features.Day(1 + r.Intn(30)) // late
		default:
			d -= 420 // older than the ring
		}
		if d > end[sn] || !ok {
			end[sn] = d
		}
		id := fmt.Sprint("e", i)
		c := change(id, features.KindDemand, d, r.Intn(24))
		c.SKU = fmt.Sprint("sku", sn)
		c.At = c.At.Add(time.Duration(r.Intn(3600)) * time.Second)
		switch x := r.Intn(100); {
		case x < 70:
			c.Quantity = float64(r.Intn(9)-2) + float64(r.Intn(4))*0.125
		case x < 78:
			c.Kind, c.Price = features.KindPrice, float64(r.Intn(1000))/100
		case x < 85:
			c.Kind = features.KindStockoutStarted
		case x < 92:
			c.Kind = features.KindStockoutEnded
		case x < 97:
			c.Kind, c.PromotionID = features.KindPromotion, fmt.Sprint("p", r.Intn(5))
			c.PromotionStart, c.PromotionEnd = c.At.Add(-time.Hour), c.At.Add(time.Duration(r.Intn(100))*time.Hour)
		default:
			c.Kind = features.KindOther
		}
		if i > 10 && r.Intn(30) == 0 {
			// An upstream duplicate: an event id again at a later offset
			// (only the markers catch it).
			c = all[r.Intn(i)]
		}
		all = append(all, c)
	}
	var deliveries [][]features.Change
	for start := 0; start < len(all); {
		n := min(1+r.Intn(60), len(all)-start)
		b := make([]features.Change, n)
		for j := range b {
			b[j] = all[start+j]
			b[j].Pos = &features.Position{Offset: int64(start + j), Start: int64(start)}
		}
		switch x := r.Intn(10); {
		case x < 3: // a crash after part of the batch, then the batch again
			deliveries = append(deliveries, b[:r.Intn(n+1)], b)
		case x < 5: // retried whole
			deliveries = append(deliveries, b, b)
		default:
			deliveries = append(deliveries, b)
		}
		start += n
	}
	return deliveries
}

// TestGroupedEqualsPerEvent: one series.lua call per series and batch gives
// every event the outcome the per-event script of the code before gave it
// (applied, note, events rolled back, the whole state, compared field by
// field), and leaves Redis byte for byte as it did, undo logs and markers
// included, on random streams with crashes and retries, with and without
// markers.
func TestGroupedEqualsPerEvent(t *testing.T) {
	rdb := startRedis(t)
	ctx := context.Background()
	old := redis.NewScript(seriesPerEventLua)
	for seed := int64(1); seed <= 4; seed++ {
		for _, markers := range []bool{false, true} {
			deliveries := randomDeliveries(seed)
			var want, got [][]features.Outcome
			var dumps []map[string]string
			for pass := range 2 {
				if err := rdb.FlushDB(ctx).Err(); err != nil {
					t.Fatal(err)
				}
				markComplete(t, rdb)
				s := NewRedis(rdb, Config{DedupTTL: time.Hour, Markers: markers})
				for _, b := range deliveries {
					if pass == 0 {
						want = append(want, applyPerEvent(t, rdb, old, markers, b))
					} else {
						got = append(got, apply(t, s, b...))
					}
				}
				dumps = append(dumps, dump(t, rdb, true))
			}
			name := fmt.Sprintf("seed %d, markers=%v", seed, markers)
			var rolled, skipped, notes int
			for k, b := range deliveries {
				for j, c := range b {
					w, g := want[k][j], got[k][j]
					if !reflect.DeepEqual(w, g) {
						t.Fatalf("%s: delivery %d, event %s: grouped %+v\nper event %+v", name, k, c.EventID, g, w)
					}
					rolled += w.RolledBack
					if !w.Applied {
						skipped++
					}
					if w.Note != "" {
						notes++
					}
				}
			}
			if d := diffDumps(dumps[0], dumps[1]); len(d) > 0 {
				t.Fatalf("%s: Redis differs from the per-event script's:\n%s", name, strings.Join(d, "\n"))
			}
			// The streams exercise what they are for.
			if rolled == 0 || notes == 0 || (markers && skipped == 0) {
				t.Fatalf("%s: %d rolled back, %d skipped, %d notes: the stream misses a case", name, rolled, skipped, notes)
			}
		}
	}
}
