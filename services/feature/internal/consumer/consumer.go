// Package consumer turns demand.v1 records into feature updates and
// features.v1 snapshots: one snapshot per event, in the order of the
// partition, after the whole batch was applied to the store.
package consumer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"google.golang.org/protobuf/proto"

	"github.com/stockcast/stockcast/pkg/kafkax"
	"github.com/stockcast/stockcast/pkg/topics"
	demandv1 "github.com/stockcast/stockcast/proto/stockcast/demand/v1"
	"github.com/stockcast/stockcast/services/feature/internal/features"
)

// Service names the feature service in DLQ headers.
const Service = "feature"

// Group is the consumer group of the feature service.
const Group = "stockcast-feature"

// Store applies changes atomically per event, at most once each.
type Store interface {
	Apply(ctx context.Context, changes []features.Change) ([]features.Outcome, error)
}

// Producer writes records and waits for their acknowledgements.
type Producer interface {
	Produce(ctx context.Context, recs ...*kgo.Record) error
}

// Handler is the kafkax.Handler of demand.v1.
type Handler struct {
	store    Store
	producer Producer
	log      *slog.Logger

	skipped     metric.Int64Counter
	redelivered metric.Int64Counter
	rolledBack  metric.Int64Counter
}

var _ kafkax.Handler = (*Handler)(nil)

// New returns the handler; meter provides the service's own metrics.
func New(store Store, producer Producer, log *slog.Logger, meter metric.Meter) (*Handler, error) {
	h := &Handler{store: store, producer: producer, log: log}
	var err error
	if h.skipped, err = meter.Int64Counter("stockcast.feature.bucket_skipped",
		metric.WithDescription("Demand events counted in totals but not in a day bucket, by reason (outside_ring: older than the 400-day ring).")); err != nil {
		return nil, fmt.Errorf("create bucket skipped counter: %w", err)
	}
	if h.redelivered, err = meter.Int64Counter("stockcast.feature.redelivered",
		metric.WithDescription("Events that had been applied before and changed nothing.")); err != nil {
		return nil, fmt.Errorf("create redelivered counter: %w", err)
	}
	if h.rolledBack, err = meter.Int64Counter("stockcast.feature.rolled_back",
		metric.WithDescription("Events undone because their batch was delivered again from the committed offset (they are applied again, with the state of their first application).")); err != nil {
		return nil, fmt.Errorf("create rolled back counter: %w", err)
	}
	return h, nil
}

// pending is a record that decoded and validated.
type pending struct {
	ev     *demandv1.DemandEvent
	change features.Change
}

// Handle applies the records of one or more partitions and publishes their
// snapshots. It returns an error only when a dependency failed: the
// consumer then retries the same records. Each change carries its offset
// and the offset of its partition's first record in recs (where the
// consumer started the partition: its committed position), so the store
// gives an event handled again the state of its first application.
func (h *Handler) Handle(ctx context.Context, recs []*kgo.Record) error {
	var out []*kgo.Record
	var valid []pending
	start := map[int32]int64{}
	for _, r := range recs {
		if _, ok := start[r.Partition]; !ok {
			start[r.Partition] = r.Offset
		}
		p, err := decode(r)
		var inv *features.InvalidError
		if errors.As(err, &inv) {
			h.log.Warn("event rejected", "topic", r.Topic, "partition", r.Partition, "offset", r.Offset,
				"event_id", p.ev.GetEventId(), "reason", inv.Reason, "err", inv.Detail)
			out = append(out, kafkax.DLQRecord(r, Service, inv.Reason, inv.Detail))
			continue
		}
		p.change.Pos = &features.Position{Partition: r.Partition, Offset: r.Offset, Start: start[r.Partition]}
		valid = append(valid, p)
	}

	changes := make([]features.Change, len(valid))
	for i, p := range valid {
		changes[i] = p.change
	}
	outcomes, err := h.store.Apply(ctx, changes)
	if err != nil {
		return fmt.Errorf("apply %d events: %w", len(changes), err)
	}

	for i, p := range valid {
		o := outcomes[i]
		if !o.Applied {
			h.redelivered.Add(ctx, 1)
		}
		if o.RolledBack > 0 {
			h.rolledBack.Add(ctx, int64(o.RolledBack))
		}
		if o.Note != "" {
			h.skipped.Add(ctx, 1, metric.WithAttributes(attribute.String("reason", o.Note)))
		}
		rec, err := snapshotRecord(p, o)
		if err != nil {
			return err
		}
		out = append(out, rec)
	}
	if err := h.producer.Produce(ctx, out...); err != nil {
		return fmt.Errorf("publish %d feature snapshots: %w", len(out), err)
	}
	return nil
}

func decode(r *kgo.Record) (pending, error) {
	ev := &demandv1.DemandEvent{}
	if err := proto.Unmarshal(r.Value, ev); err != nil {
		return pending{ev: ev}, &features.InvalidError{Reason: "decode_failed", Detail: err.Error()}
	}
	c, err := features.ChangeOf(ev)
	return pending{ev: ev, change: c}, err
}

func snapshotRecord(p pending, o features.Outcome) (*kgo.Record, error) {
	c := p.change
	var snap proto.Message
	if c.Kind == features.KindItem {
		snap = features.ItemSnapshot(c.SKU, o.Item, p.ev, o.Applied)
	} else {
		snap = features.Snapshot(c.SKU, c.Location, &o.State, o.Item, features.AsOf(&o.State, c.Day), p.ev, o.Applied)
	}
	value, err := proto.Marshal(snap)
	if err != nil {
		return nil, fmt.Errorf("encode feature snapshot of event %s: %w", c.EventID, err)
	}
	return &kgo.Record{
		Topic:   topics.Features,
		Key:     []byte(c.SeriesKey()),
		Value:   value,
		Headers: []kgo.RecordHeader{{Key: topics.HeaderEventID, Value: []byte(c.EventID)}},
	}, nil
}
