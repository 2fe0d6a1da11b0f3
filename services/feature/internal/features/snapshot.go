package features

import (
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/stockcast/stockcast/pkg/topics"
	demandv1 "github.com/stockcast/stockcast/proto/stockcast/demand/v1"
	featurev1 "github.com/stockcast/stockcast/proto/stockcast/feature/v1"
)

// AsOf is the day a snapshot describes: the cause's day, or the latest day
// of the series if the cause was late.
func AsOf(s *State, causeDay Day) Day {
	if s.HasDays && s.Ring.End > causeDay {
		return s.Ring.End
	}
	return causeDay
}

// Snapshot builds the features.v1 message of a series state as of asOf.
// cause is nil for a snapshot read through the API; then the event fields
// describe the event applied last.
func Snapshot(sku, location string, s *State, item Item, asOf Day, cause *demandv1.DemandEvent, applied bool) *featurev1.FeatureSnapshot {
	f := Compute(s, asOf)
	out := &featurev1.FeatureSnapshot{
		SeriesKey:          topics.SeriesKey(sku, location),
		Sku:                sku,
		Location:           location,
		AsOfDay:            asOf.String(),
		Cause:              cause,
		Applied:            applied,
		RecentDaily:        f.RecentDaily,
		Sum_7:              f.Sum7,
		Sum_28:             f.Sum28,
		Sum_91:             f.Sum91,
		Mean_7:             f.Mean7,
		Mean_28:            f.Mean28,
		Mean_91:            f.Mean91,
		Ewma:               f.EWMA,
		DowProfile:         f.DOWProfile[:],
		IntradayCumulative: f.IntradayCumulative[:],
		DaysSinceLastSale:  int32(f.DaysSinceLastSale),
		LastZeroRun:        int32(f.LastZeroRun),
		CurrentZeroRun:     int32(f.CurrentZeroRun),
		HistoryDays:        int32(f.HistoryDays),
		TotalDemand:        s.TotalDemand,
		EventsApplied:      s.EventsApplied,
		Price:              s.Price,
		PromotionActive:    s.PromotionActive(s.LatestAt),
		PromotionId:        s.PromotionID,
		Stockout:           s.Stockout,
		Category:           item.Category,
		Department:         item.Department,
	}
	for _, i := range f.StockoutDays {
		out.StockoutDays = append(out.StockoutDays, int32(i))
	}
	if cause != nil {
		out.EventId = cause.GetEventId()
		out.OccurredAt = cause.GetOccurredAt()
	} else if s.LastEventID != "" {
		out.EventId = s.LastEventID
		out.OccurredAt = timestamppb.New(s.LastEventAt)
	}
	return out
}

// ItemSnapshot is the snapshot published for an item-attributes event: it
// has no series, so it carries the SKU as key and only the item fields.
func ItemSnapshot(sku string, item Item, cause *demandv1.DemandEvent, applied bool) *featurev1.FeatureSnapshot {
	return &featurev1.FeatureSnapshot{
		EventId:           cause.GetEventId(),
		OccurredAt:        cause.GetOccurredAt(),
		SeriesKey:         sku,
		Sku:               sku,
		AsOfDay:           cause.GetDay(),
		Cause:             cause,
		Applied:           applied,
		DaysSinceLastSale: -1,
		Category:          item.Category,
		Department:        item.Department,
	}
}
