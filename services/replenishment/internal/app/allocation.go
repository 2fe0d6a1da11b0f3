package app

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"time"

	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/stockcast/stockcast/services/replenishment/internal/planning"
)

// AllocationConfig configures the periodic portfolio allocation: a
// fill-rate target spread over a location's series by unit value
// (planning.Planner.AllocateLocation), the unit values being each series'
// latest price in order_lines.
type AllocationConfig struct {
	Target   float64
	Band     float64
	Interval time.Duration
	Location string
}

// RegisterFlags registers the allocation's flags under prefix.
func (c *AllocationConfig) RegisterFlags(fs *flag.FlagSet, prefix string) {
	fs.Float64Var(&c.Target, prefix+"allocation-target", 0,
		"portfolio fill-rate target spread over the series by unit value (latest order_lines price) and stored as each series' policy, "+
			"once per allocation-interval by one replica; 0 turns the allocation off")
	fs.Float64Var(&c.Band, prefix+"allocation-band", 0,
		"hold each demand class's expected fill within this of the target (0: one portfolio target only)")
	fs.DurationVar(&c.Interval, prefix+"allocation-interval", 24*time.Hour, "how often the portfolio allocation runs")
	fs.StringVar(&c.Location, prefix+"allocation-location", "", "the location allocated (empty: all series of all locations as one portfolio)")
}

// Validate checks the allocation's configuration.
func (c *AllocationConfig) Validate() error {
	if c.Target == 0 {
		return nil
	}
	if !(c.Target > 0 && c.Target < 1) || !(c.Band >= 0 && c.Band < c.Target) {
		return fmt.Errorf("replenishment.allocation-target %v, band %v: want 0 <= band < target < 1 (target 0: off)", c.Target, c.Band)
	}
	if c.Interval <= 0 {
		return fmt.Errorf("replenishment.allocation-interval %v: want > 0", c.Interval)
	}
	return nil
}

// allocationKey marks a run in Redis for an interval: the replica that sets
// it runs the allocation, the others (and restarts) find it and wait. It is
// not a state key (stockcast:r:{...}), so a Redis loss just lets the next
// check run again once the state is back.
const allocationKey = "stockcast:replenishment:allocation"

// maxAllocationCheck bounds how long a replica waits before it looks at
// the marker again (a run that failed deletes it: retried at the next look).
const maxAllocationCheck = time.Minute

// allocator is the periodic allocation job.
type allocator struct {
	cfg     AllocationConfig
	rdb     redis.Cmdable
	prices  func(ctx context.Context, location string) (map[planning.Scope]float64, error)
	planner *planning.Planner
	ready   func() bool
	log     *slog.Logger

	runs         metric.Int64Counter
	series       metric.Int64Gauge
	expectedFill metric.Float64Gauge
}

func newAllocator(cfg AllocationConfig, rdb redis.Cmdable, prices func(context.Context, string) (map[planning.Scope]float64, error),
	planner *planning.Planner, ready func() bool, log *slog.Logger, meter metric.Meter) (*allocator, error) {
	a := &allocator{cfg: cfg, rdb: rdb, prices: prices, planner: planner, ready: ready, log: log}
	var errs [3]error
	a.runs, errs[0] = meter.Int64Counter("stockcast.replenishment.allocation.runs",
		metric.WithDescription("portfolio allocations run by this replica, by outcome (ok, error)"))
	a.series, errs[1] = meter.Int64Gauge("stockcast.replenishment.allocation.series",
		metric.WithDescription("series of the last allocation: allocated, or unvalued (no price in order_lines: left on their own policy)"))
	a.expectedFill, errs[2] = meter.Float64Gauge("stockcast.replenishment.allocation.expected_fill",
		metric.WithDescription("the last allocation's expected portfolio fill rate (lost sales)"))
	if err := errors.Join(errs[:]...); err != nil {
		return nil, fmt.Errorf("create allocation instruments: %w", err)
	}
	return a, nil
}

// Run checks every interval (at most a minute) whether an allocation is
// due, and runs it when this replica takes the interval's marker. Off when
// the target is 0.
func (a *allocator) Run(ctx context.Context) error {
	if a.cfg.Target == 0 {
		return nil
	}
	every := min(a.cfg.Interval, maxAllocationCheck)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if a.ready() {
			a.runIfDue(ctx)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// runIfDue takes the marker and allocates; a failed run frees the marker.
func (a *allocator) runIfDue(ctx context.Context) {
	token := fmt.Sprintf("%d", time.Now().UnixNano())
	ok, err := a.rdb.SetNX(ctx, allocationKey, token, a.cfg.Interval).Result()
	if err != nil {
		if ctx.Err() == nil {
			a.log.Warn("allocation marker", "err", err)
		}
		return
	}
	if !ok {
		return
	}
	if err := a.allocate(ctx); err != nil {
		a.runs.Add(ctx, 1, metric.WithAttributes(attribute.String("outcome", "error")))
		if ctx.Err() != nil {
			return
		}
		a.log.Warn("portfolio allocation", "location", a.cfg.Location, "err", err)
		// Retried at the next check, unless another run holds it by now.
		if v, gerr := a.rdb.Get(ctx, allocationKey).Result(); gerr == nil && v == token {
			_ = a.rdb.Del(ctx, allocationKey).Err()
		}
		return
	}
	a.runs.Add(ctx, 1, metric.WithAttributes(attribute.String("outcome", "ok")))
}

// allocate runs one allocation of the configured location.
func (a *allocator) allocate(ctx context.Context) error {
	start := time.Now()
	values, err := a.prices(ctx, a.cfg.Location)
	if err != nil {
		return err
	}
	out, unvalued, err := a.planner.AllocateLocation(ctx, a.cfg.Location, values, a.cfg.Target, a.cfg.Band)
	if err != nil {
		return err
	}
	fill := planning.PortfolioFill(out)
	a.series.Record(ctx, int64(len(out)), metric.WithAttributes(attribute.String("outcome", "allocated")))
	a.series.Record(ctx, int64(len(unvalued)), metric.WithAttributes(attribute.String("outcome", "unvalued")))
	a.expectedFill.Record(ctx, fill)
	attrs := []any{"location", a.cfg.Location, "target", a.cfg.Target, "band", a.cfg.Band,
		"allocated", len(out), "unvalued", len(unvalued), "expected_fill", fill, "took", time.Since(start)}
	if len(unvalued) > 0 {
		n := min(len(unvalued), 10)
		first := make([]string, n)
		for i, s := range unvalued[:n] {
			first[i] = s.SKU + "|" + s.Location
		}
		attrs = append(attrs, "unvalued_first", first)
	}
	a.log.Info("portfolio allocated", attrs...)
	return nil
}
