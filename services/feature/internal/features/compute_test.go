package features

import (
	"math"
	"slices"
	"testing"
	"time"
)

// monday is 2024-09-30, a Monday.
const monday Day = 19996

// state builds a series that sold from first to last with the given daily
// net demand, its ring ending at end.
func state(end, first, last Day, demand map[Day]float64, stockout ...Day) *State {
	s := &State{HasDays: true, HasSale: true, FirstSale: first, LastSale: last}
	s.Ring.End = end
	for d, q := range demand {
		if !s.Ring.Holds(d) {
			continue // overwritten by newer days, as in Redis
		}
		s.Ring.Demand[Slot(d)] = q
	}
	for _, d := range stockout {
		s.Ring.Stockout[Slot(d)] = true
	}
	return s
}

// recent returns RecentDays zeros with the given tail.
func recent(tail ...float64) []float64 {
	out := make([]float64, RecentDays)
	copy(out[RecentDays-len(tail):], tail)
	return out
}

func TestMondayIsMonday(t *testing.T) {
	if got := monday.Time().Weekday(); got != time.Monday || monday.WeekdayIndex() != 0 {
		t.Fatalf("%s is %s (index %d), want Monday", monday, got, monday.WeekdayIndex())
	}
	for d := monday; d < monday+14; d++ {
		if want := (int(d.Time().Weekday()) + 6) % 7; d.WeekdayIndex() != want {
			t.Fatalf("WeekdayIndex(%s) = %d, want %d", d, d.WeekdayIndex(), want)
		}
	}
}

func TestParseDay(t *testing.T) {
	d, err := ParseDay("2024-09-30")
	if err != nil || d != monday || d.String() != "2024-09-30" {
		t.Fatalf("ParseDay = %d, %v; want %d", d, err, monday)
	}
	if _, err := ParseDay("30/09/2024"); err == nil {
		t.Fatal("ParseDay accepted a bad day")
	}
	if got := DayOf(time.Date(2024, 9, 30, 23, 59, 0, 0, time.FixedZone("x", -3600))); got != monday+1 {
		t.Fatalf("DayOf uses UTC: got %s", got)
	}
}

func TestCompute(t *testing.T) {
	tests := []struct {
		name string
		s    *State
		asOf Day
		want Features
	}{
		{
			name: "no sale yet",
			s:    &State{HasDays: true, Ring: Ring{End: monday}},
			asOf: monday,
			want: Features{RecentDaily: recent(), DaysSinceLastSale: -1},
		},
		{
			name: "four days with a gap",
			// Mon 4, Tue 0, Wed 2, Thu 1 (open).
			s:    state(monday+3, monday, monday+3, map[Day]float64{monday: 4, monday + 2: 2, monday + 3: 1}),
			asOf: monday + 3,
			want: Features{
				RecentDaily: recent(4, 0, 2, 1),
				Sum7:        7, Sum28: 7, Sum91: 7,
				Mean7: 1.75, Mean28: 1.75, Mean91: 1.75, // 7 over 4 history days
				EWMA:        3.44, // 4 -> 0.9*4 = 3.6 -> 0.1*2 + 0.9*3.6 = 3.44
				DOWProfile:  [7]float64{4, 0, 2, 1, 0, 0, 0},
				LastZeroRun: 1, CurrentZeroRun: 0, // closed days 4, 0, 2
				HistoryDays: 4, DaysSinceLastSale: 0,
			},
		},
		{
			name: "sale then cancelled day then zeros",
			// Mon 5, Tue placed 2 and cancelled 2 (net 0), Wed..Fri nothing.
			s:    state(monday+4, monday, monday+1, map[Day]float64{monday: 5}),
			asOf: monday + 4,
			want: Features{
				RecentDaily: recent(5, 0, 0, 0, 0),
				Sum7:        5, Sum28: 5, Sum91: 5,
				Mean7: 1, Mean28: 1, Mean91: 1,
				EWMA:        3.645, // 5, 4.5, 4.05, 3.645
				DOWProfile:  [7]float64{5, 0, 0, 0, 0, 0, 0},
				LastZeroRun: 0, CurrentZeroRun: 3,
				HistoryDays: 5, DaysSinceLastSale: 4, // net demand decides, not the cancelled order
			},
		},
		{
			name: "last sale older than the ring",
			s:    state(monday+500, monday, monday, map[Day]float64{monday: 9}),
			asOf: monday + 500,
			want: Features{
				RecentDaily: recent(),
				DOWProfile:  [7]float64{},
				// history inside the ring: monday+101 .. monday+500, all zero
				CurrentZeroRun: 399,
				HistoryDays:    501, DaysSinceLastSale: 500,
			},
		},
		{
			name: "window edges and stockout indexes",
			s: state(monday+100, monday, monday+100, map[Day]float64{
				monday:       10,
				monday + 9:   100,   // asOf-91: outside sum_91
				monday + 10:  1,     // asOf-90: first day of sum_91
				monday + 72:  1000,  // asOf-28: outside sum_28
				monday + 73:  2,     // asOf-27: first day of sum_28
				monday + 93:  10000, // asOf-7: outside sum_7
				monday + 94:  3,     // asOf-6: first day of sum_7
				monday + 100: 4,
			}, monday+44, monday+45, monday+100), // asOf-56 (outside recent), asOf-55 (index 0), asOf
			asOf: monday + 100,
			want: func() Features {
				f := Features{
					RecentDaily: recent(),
					Sum7:        7, Mean7: 1,
					Sum28: 10009, Mean28: 10009.0 / 28,
					Sum91: 11010, Mean91: 11010.0 / 91,
					HistoryDays: 101, DaysSinceLastSale: 0,
					StockoutDays: []int{0, 55},
				}
				f.RecentDaily[27], f.RecentDaily[28], f.RecentDaily[48], f.RecentDaily[49], f.RecentDaily[55] = 1000, 2, 10000, 3, 4
				// closed days monday..monday+99: sales on 0, 9, 10, 72, 73, 93, 94.
				// Zero runs between them: 8, 0, 61, 0, 19, 0 and then 5 (94 -> 100, closed up to 99).
				f.LastZeroRun, f.CurrentZeroRun = 19, 5
				// weekday of monday+k is k mod 7: 0->Mon; 9, 72, 93, 100->Wed; 10, 73, 94->Thu.
				// 101 days: Mon, Tue, Wed have 15 days each, the other weekdays 14.
				f.DOWProfile = [7]float64{10.0 / 15, 0, (100 + 1000 + 10000 + 4) / 15.0, (1 + 2 + 3) / 14.0, 0, 0, 0}
				f.EWMA = ewmaByHand(map[int]float64{0: 10, 9: 100, 10: 1, 72: 1000, 73: 2, 93: 10000, 94: 3}, 100)
				return f
			}(),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Compute(tt.s, tt.asOf)
			tt.want.AsOf = tt.asOf
			assertFeatures(t, got, tt.want)
		})
	}
}

// ewmaByHand folds days 0..n-1 given as offsets with demand, others zero.
func ewmaByHand(demand map[int]float64, n int) float64 {
	e := demand[0]
	for k := 1; k < n; k++ {
		e = 0.1*demand[k] + 0.9*e
	}
	return e
}

func TestIntradayCumulative(t *testing.T) {
	tests := []struct {
		name   string
		hourly map[int]float64
		want   map[int]float64 // hour -> cumulative share from that hour until the next listed one
	}{
		{name: "no demand", hourly: nil, want: map[int]float64{0: 0}},
		{name: "three hours", hourly: map[int]float64{0: 1, 12: 2, 23: 1}, want: map[int]float64{0: 0.25, 12: 0.75, 23: 1}},
		{name: "one hour", hourly: map[int]float64{9: 7}, want: map[int]float64{0: 0, 9: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &State{}
			for h, q := range tt.hourly {
				s.Hourly[h] = q
			}
			got := Compute(s, monday).IntradayCumulative
			var want float64
			for h := range 24 {
				if v, ok := tt.want[h]; ok {
					want = v
				}
				if math.Abs(got[h]-want) > 1e-12 {
					t.Fatalf("hour %d: got %v, want %v (all %v)", h, got[h], want, got)
				}
			}
		})
	}
}

func TestRingWrap(t *testing.T) {
	// End in the middle of the slots: the ring holds [End-399, End] across slot 0.
	end := Day(RingDays*50 + 5)
	r := Ring{End: end}
	r.Demand[Slot(end)] = 1
	r.Demand[Slot(end-RingDays+1)] = 2 // oldest day, slot 6
	tests := []struct {
		day  Day
		want float64
	}{
		{end, 1}, {end - RingDays + 1, 2}, {end - RingDays, 0}, {end + 1, 0},
	}
	for _, tt := range tests {
		if got := r.DemandOn(tt.day); got != tt.want {
			t.Errorf("DemandOn(End%+d) = %v, want %v", tt.day-end, got, tt.want)
		}
	}
	if Slot(end) != 5 || Slot(end-RingDays+1) != 6 || Slot(-1) != RingDays-1 {
		t.Fatalf("slots: %d %d %d", Slot(end), Slot(end-RingDays+1), Slot(-1))
	}
}

func TestAsOfAndPromotion(t *testing.T) {
	s := state(monday+10, monday, monday, nil)
	if got := AsOf(s, monday+2); got != monday+10 {
		t.Errorf("late cause: as of %s, want %s", got, monday+10)
	}
	if got := AsOf(s, monday+11); got != monday+11 {
		t.Errorf("new day: as of %s, want %s", got, monday+11)
	}
	s.PromotionID = "p1"
	s.PromotionStart, s.PromotionEnd = monday.Time(), (monday + 7).Time()
	for _, tc := range []struct {
		at   time.Time
		want bool
	}{
		{monday.Time().Add(-time.Second), false}, {monday.Time(), true},
		{(monday + 7).Time().Add(-time.Second), true}, {(monday + 7).Time(), false},
	} {
		if got := s.PromotionActive(tc.at); got != tc.want {
			t.Errorf("PromotionActive(%s) = %v, want %v", tc.at, got, tc.want)
		}
	}
}

func assertFeatures(t *testing.T, got, want Features) {
	t.Helper()
	near := func(name string, g, w float64) {
		if math.Abs(g-w) > 1e-9*math.Max(1, math.Abs(w)) {
			t.Errorf("%s = %v, want %v", name, g, w)
		}
	}
	if got.AsOf != want.AsOf {
		t.Errorf("AsOf = %s, want %s", got.AsOf, want.AsOf)
	}
	if !slices.Equal(got.RecentDaily, want.RecentDaily) {
		t.Errorf("RecentDaily = %v, want %v", got.RecentDaily, want.RecentDaily)
	}
	near("Sum7", got.Sum7, want.Sum7)
	near("Sum28", got.Sum28, want.Sum28)
	near("Sum91", got.Sum91, want.Sum91)
	near("Mean7", got.Mean7, want.Mean7)
	near("Mean28", got.Mean28, want.Mean28)
	near("Mean91", got.Mean91, want.Mean91)
	near("EWMA", got.EWMA, want.EWMA)
	for w := range 7 {
		near("DOWProfile["+time.Weekday((w+1)%7).String()+"]", got.DOWProfile[w], want.DOWProfile[w])
	}
	if got.DaysSinceLastSale != want.DaysSinceLastSale || got.HistoryDays != want.HistoryDays ||
		got.LastZeroRun != want.LastZeroRun || got.CurrentZeroRun != want.CurrentZeroRun {
		t.Errorf("days since sale, history, last/current zero run = %d %d %d %d, want %d %d %d %d",
			got.DaysSinceLastSale, got.HistoryDays, got.LastZeroRun, got.CurrentZeroRun,
			want.DaysSinceLastSale, want.HistoryDays, want.LastZeroRun, want.CurrentZeroRun)
	}
	if !slices.Equal(got.StockoutDays, want.StockoutDays) {
		t.Errorf("StockoutDays = %v, want %v", got.StockoutDays, want.StockoutDays)
	}
}
