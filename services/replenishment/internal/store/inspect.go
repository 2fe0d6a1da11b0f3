package store

import (
	"context"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"google.golang.org/protobuf/types/known/timestamppb"

	replenishmentv1 "github.com/stockcast/stockcast/proto/stockcast/replenishment/v1"

	"github.com/stockcast/stockcast/services/replenishment/internal/planning"
)

// Inspect reads a series' state for GetSeriesState; minSamples says when
// its learned lead time is used. planning.ErrNotFound if it has none.
func (s *State) Inspect(ctx context.Context, series planning.Scope, minSamples int) (*replenishmentv1.GetSeriesStateResponse, error) {
	key := seriesKey(series)
	pipe := s.rdb.Pipeline()
	hash := pipe.HGetAll(ctx, StateKey(key))
	periods := pipe.LRange(ctx, StockoutsKey(key), 0, -1)
	if _, err := pipe.Exec(ctx); err != nil && err != redis.Nil {
		return nil, fmt.Errorf("read state of %s: %w", key, err)
	}
	h := hash.Val()
	if len(h) == 0 {
		return nil, fmt.Errorf("%w: no event of series %q", planning.ErrNotFound, key)
	}
	f := func(name string) float64 {
		x, _ := strconv.ParseFloat(h[name], 64)
		return x
	}
	r := &replenishmentv1.GetSeriesStateResponse{
		OnHand: f("on_hand"), OnOrder: f("on_order"), Backorders: f("backorders"),
		ReorderPoint: f("reorder_point"), BelowReorderPoint: h["below"] == "1", LastEventId: h["last_event_id"],
		Category: h["category"],
	}
	r.InventoryPosition = r.OnHand + r.OnOrder - r.Backorders
	r.DecisionSeq, _ = strconv.ParseInt(h["decision_seq"], 10, 64)
	for field, v := range h {
		switch {
		case strings.HasPrefix(field, "po:"):
			parts := strings.SplitN(v, " ", 4)
			for len(parts) < 4 {
				parts = append(parts, "")
			}
			open, _ := strconv.ParseFloat(parts[0], 64)
			po := &replenishmentv1.OpenPurchaseOrder{PurchaseOrderId: strings.TrimPrefix(field, "po:"), OpenQuantity: open,
				ExpectedDay: parts[1], PlacedAt: nsTime(parts[2]), SupplierId: parts[3]}
			r.OpenOrders = append(r.OpenOrders, po)
		case field == "lt":
			lt, err := leadTimeProto(v, "")
			if err != nil {
				return nil, err
			}
			r.LeadTime = lt
			r.LeadTimeLearned = minSamples > 0 && lt.GetSamples() >= int64(minSamples)
		case strings.HasPrefix(field, "lt:"):
			lt, err := leadTimeProto(v, strings.TrimPrefix(field, "lt:"))
			if err != nil {
				return nil, err
			}
			r.SupplierLeadTimes = append(r.SupplierLeadTimes, lt)
		}
	}
	sort.Slice(r.OpenOrders, func(i, j int) bool { return r.OpenOrders[i].PurchaseOrderId < r.OpenOrders[j].PurchaseOrderId })
	sort.Slice(r.SupplierLeadTimes, func(i, j int) bool { return r.SupplierLeadTimes[i].SupplierId < r.SupplierLeadTimes[j].SupplierId })
	if since, ok := h["stockout_since"]; ok {
		r.Stockouts = append(r.Stockouts, &replenishmentv1.StockoutPeriod{Start: nsTime(since)})
	}
	for _, p := range periods.Val() {
		start, end, _ := strings.Cut(p, " ")
		r.Stockouts = append(r.Stockouts, &replenishmentv1.StockoutPeriod{Start: nsTime(start), End: nsTime(end)})
	}
	return r, nil
}

// LeadTime reads a series' learned lead time; ok false if none.
func (s *State) LeadTime(ctx context.Context, series planning.Scope) (*replenishmentv1.LeadTimeStats, bool, error) {
	raw, err := s.rdb.HGet(ctx, StateKey(seriesKey(series)), "lt").Result()
	if err == redis.Nil {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("read lead time of %s: %w", seriesKey(series), err)
	}
	lt, err := leadTimeProto(raw, "")
	return lt, err == nil, err
}

func leadTimeProto(raw, supplier string) (*replenishmentv1.LeadTimeStats, error) {
	lt, err := parseLeadTime(raw)
	if err != nil {
		return nil, err
	}
	return &replenishmentv1.LeadTimeStats{Samples: int64(lt.N), MeanDays: lt.Mean, StddevDays: math.Sqrt(lt.Variance), SupplierId: supplier}, nil
}

// nsTime reads ns since the epoch; nil when empty or malformed.
func nsTime(raw string) *timestamppb.Timestamp {
	n, err := strconv.ParseInt(raw, 10, 64)
	if err != nil {
		return nil
	}
	return timestamppb.New(time.Unix(0, n).UTC())
}
