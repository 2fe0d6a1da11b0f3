// Package features holds a series' online feature state and the pure,
// deterministic computations that turn it into a feature snapshot. The
// state is kept in Redis by internal/store; everything here is plain Go so
// that it is tested with tables computed by hand.
package features

import "time"

// RingDays is how many days of daily demand a series keeps: a year plus a
// margin, so year-over-year features always have their day.
const RingDays = 400

// RecentDays is the length of FeatureSnapshot.recent_daily.
const RecentDays = 56

// EWMAAlpha is the smoothing factor of the exponentially weighted mean.
const EWMAAlpha = 0.1

// Ring is the daily history of a series: net demand and a stockout mark for
// each of the RingDays days ending at End. Day d lives in slot d mod RingDays.
type Ring struct {
	End      Day
	Demand   [RingDays]float64
	Stockout [RingDays]bool
}

// Slot returns the ring slot of day d.
func Slot(d Day) int { return ((int(d) % RingDays) + RingDays) % RingDays }

// Start is the oldest day the ring holds.
func (r *Ring) Start() Day { return r.End - RingDays + 1 }

// Holds reports whether d is inside the ring.
func (r *Ring) Holds(d Day) bool { return d >= r.Start() && d <= r.End }

// DemandOn returns the net demand of day d; 0 outside the ring.
func (r *Ring) DemandOn(d Day) float64 {
	if !r.Holds(d) {
		return 0
	}
	return r.Demand[Slot(d)]
}

// StockoutOn reports whether day d was (partly) out of stock.
func (r *Ring) StockoutOn(d Day) bool { return r.Holds(d) && r.Stockout[Slot(d)] }

// State is everything stored for one series.
type State struct {
	// HasDays is false until an event with a day reached the series.
	HasDays bool
	Ring    Ring
	// Since is the oldest day of any event of the series.
	Since Day
	// Hourly is the placed (positive) demand per UTC hour of day, all time.
	Hourly [24]float64
	// HasSale is false until positive demand was seen; then FirstSale and
	// LastSale are the first and last days with a placed order line.
	HasSale             bool
	FirstSale, LastSale Day
	// TotalDemand is the net demand of all time, including events too old
	// for the ring.
	TotalDemand   float64
	EventsApplied int64

	Price float64
	// Stockout is the current stock state: true between stockout_started
	// and stockout_ended.
	Stockout bool

	PromotionID                  string
	PromotionStart, PromotionEnd time.Time

	// LatestAt is the latest occurred_at seen; the promotion is evaluated at it.
	LatestAt time.Time
	// LastEventID and LastEventAt are of the event applied last.
	LastEventID string
	LastEventAt time.Time
}

// PromotionActive reports whether the stored promotion window holds at t:
// [start, end).
func (s *State) PromotionActive(t time.Time) bool {
	if s.PromotionID == "" {
		return false
	}
	return !t.Before(s.PromotionStart) && t.Before(s.PromotionEnd)
}

// Item holds the attributes of a SKU copied into every snapshot of its series.
type Item struct {
	Category, Department string
}

// Outcome is what applying one change did.
type Outcome struct {
	// Applied is false if the event had been applied before (a redelivery).
	Applied bool
	// Note is empty, or why a demand change did not reach its day's bucket.
	Note string
	// State is the series after the change (zero for item changes).
	State State
	// Item holds the attributes of the change's SKU.
	Item Item
	// RolledBack counts the events undone before this change because they
	// were being delivered again (see Change.Pos).
	RolledBack int
}

// Notes of an Outcome.
const (
	NoteOutsideRing = "outside_ring" // the day is older than the ring: totals only
	NoteDayOverflow = "day_overflow" // the day's total left the int32 range and was clamped
)
