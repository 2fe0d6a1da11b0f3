package app

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"

	"github.com/stockcast/stockcast/pkg/chx"
	"github.com/stockcast/stockcast/pkg/recovery"
	"github.com/stockcast/stockcast/pkg/topics"
	demandv1 "github.com/stockcast/stockcast/proto/stockcast/demand/v1"
	"github.com/stockcast/stockcast/services/feature/internal/consumer"
	"github.com/stockcast/stockcast/services/feature/internal/store"
)

// runbookRebuild is the manual recovery logged when -feature.recover=false.
const runbookRebuild = "feature rebuild -all (docs/operations.md, Recovery from Redis loss)"

// clockMargin bounds the clock difference between ingest (ingested_at) and
// this service: see rebuildAfterLoss.
const clockMargin = 2 * time.Second

// rebuildAfterLoss is the feature service's recovery (pkg/recovery): it
// rebuilds every series and item from ClickHouse, as `feature rebuild -all`
// does, except the events the consumer group has not applied yet. Those
// are applied by the consumer when it resumes, with the snapshots it would
// have published without the loss.
//
// Not applied yet = on demand.v1 after the group's committed offsets (read
// from the committed offsets to the end of each partition once the loss is
// clockMargin old), or stored by ingest after that read began (ingested_at,
// whole seconds, at or after it): events produced later were not in the
// read. Every committed event was applied before the loss, so it was
// ingested before it and, with the two clocks within clockMargin, before
// the read. A group without committed offsets has applied nothing: the
// state is complete empty (a first start), and ClickHouse is not needed.
func rebuildAfterLoss(cfg Config, rdb *store.Redis, log *slog.Logger) recovery.Rebuild {
	return func(ctx context.Context, token string, lostAt time.Time) (string, error) {
		committed, err := recovery.Committed(ctx, cfg.Kafka, consumer.Group, topics.Demand)
		if err != nil {
			return "", err
		}
		if len(committed) == 0 {
			return "no offsets committed on " + topics.Demand + ": nothing was applied, the state is empty", nil
		}
		if wait := time.Until(lostAt.Add(clockMargin)); wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return "", ctx.Err()
			case <-t.C:
			}
		}
		readAt := time.Now().Truncate(time.Second)
		ends, err := recovery.Ends(ctx, cfg.Kafka, topics.Demand)
		if err != nil {
			return "", err
		}
		pending := map[string]bool{}
		n, err := recovery.Read(ctx, cfg.Kafka, topics.Demand, committed, ends, 10_000, func(recs []*kgo.Record) error {
			for _, r := range recs {
				var ev demandv1.DemandEvent
				if proto.Unmarshal(r.Value, &ev) == nil && ev.GetEventId() != "" {
					pending[ev.GetEventId()] = true
				}
			}
			return nil
		})
		if err != nil {
			return "", fmt.Errorf("read the records %s has not applied: %w", consumer.Group, err)
		}
		conn, err := chx.Open(ctx, cfg.ClickHouse)
		if err != nil {
			return "", err
		}
		defer conn.Close()
		st, err := store.RebuildAllExcept(ctx, conn, rdb.Rebuilding(token), cfg.RebuildParallel, func(id string, ingested time.Time) bool {
			return pending[id] || !ingested.Before(readAt)
		})
		if err != nil {
			return "", err
		}
		log.Info("rebuilt feature state from clickhouse", "series", st.Series, "items", st.Items, "events", st.Events,
			"rejected", st.Rejected, "pending_records", n)
		return fmt.Sprintf("rebuilt %d series and %d items from %d events (%d rejected; %d records on %s left to the consumer)",
			st.Series, st.Items, st.Events, st.Rejected, n, topics.Demand), nil
	}
}
