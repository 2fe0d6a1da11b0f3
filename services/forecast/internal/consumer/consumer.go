// Package consumer handles features.v1: one forecast per snapshot, logged
// to ClickHouse and published to forecasts.v1 before the offsets commit.
package consumer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"

	"github.com/stockcast/stockcast/pkg/kafkax"
	"github.com/stockcast/stockcast/pkg/topics"
	featurev1 "github.com/stockcast/stockcast/proto/stockcast/feature/v1"
	"github.com/stockcast/stockcast/services/forecast/internal/scoring"
	"github.com/stockcast/stockcast/services/forecast/internal/store"
)

// ServiceName names the service in DLQ headers.
const ServiceName = "forecast"

// DLQ reasons.
const (
	ReasonUndecodable     = "undecodable_snapshot"
	ReasonInvalidSnapshot = "invalid_snapshot"
)

// Log makes forecasts durable (the ClickHouse forecast log), with where
// each one's snapshot was read, and reads back the forecast published
// before a snapshot for series not in memory (store.ForecastLog).
type Log interface {
	InsertFrom(ctx context.Context, results []*scoring.Result, sources []store.Source) error
	Previous(ctx context.Context, refs []store.PreviousRef) (map[string]*scoring.Result, error)
}

// Producer publishes records and waits for their acknowledgement.
type Producer interface {
	Produce(ctx context.Context, recs ...*kgo.Record) error
}

// Handler is the kafkax.Handler of features.v1.
type Handler struct {
	scorer   *scoring.Scorer
	log      Log
	producer Producer
	logger   *slog.Logger
}

// New returns the handler.
func New(scorer *scoring.Scorer, log Log, producer Producer, logger *slog.Logger) *Handler {
	return &Handler{scorer: scorer, log: log, producer: producer, logger: logger}
}

var _ kafkax.Handler = (*Handler)(nil)

// Handle scores a partition's snapshots in order, logs the forecasts,
// publishes them (and rejected records to the DLQ), and only then lets the
// new series states be seen: an error anywhere retries the whole batch from
// the same states. The series not in memory (a restart, an eviction) are
// given the forecast published before their first snapshot here, read from
// the log in one query (scoring.Batch.Restore), so their reasons are the
// ones the scorer would have given with them in memory.
func (h *Handler) Handle(ctx context.Context, recs []*kgo.Record) error {
	batch := h.scorer.Begin()
	results := make([]*scoring.Result, 0, len(recs))
	sources := make([]store.Source, 0, len(recs))
	out := make([]*kgo.Record, 0, len(recs))
	// Decoded first, so the histories the batch needs are fetched together
	// (scoring.Batch.Prefetch).
	snaps := make([]*featurev1.FeatureSnapshot, len(recs))
	decoded := make([]*featurev1.FeatureSnapshot, 0, len(recs))
	for i, rec := range recs {
		snap := new(featurev1.FeatureSnapshot)
		if err := proto.Unmarshal(rec.Value, snap); err == nil {
			snaps[i] = snap
			decoded = append(decoded, snap)
		}
	}
	batch.Prefetch(decoded)
	if err := restore(ctx, h.log, batch, snaps, recs); err != nil {
		return err
	}
	for i, rec := range recs {
		snap := snaps[i]
		if snap == nil {
			err := proto.Unmarshal(rec.Value, new(featurev1.FeatureSnapshot))
			out = append(out, h.reject(rec, ReasonUndecodable, err))
			continue
		}
		res, err := batch.Score(ctx, snap)
		if errors.Is(err, scoring.ErrInvalidSnapshot) {
			out = append(out, h.reject(rec, ReasonInvalidSnapshot, err))
			continue
		}
		if err != nil {
			return fmt.Errorf("score snapshot %s: %w", snap.GetEventId(), err)
		}
		value, err := proto.Marshal(res.Event)
		if err != nil {
			return fmt.Errorf("encode forecast %s: %w", res.Event.GetForecastId(), err)
		}
		results = append(results, res)
		sources = append(sources, store.Source{Partition: rec.Partition, Offset: rec.Offset})
		out = append(out, &kgo.Record{
			Topic: topics.Forecasts,
			Key:   []byte(res.Event.GetSeriesKey()),
			Value: value,
			Headers: []kgo.RecordHeader{
				{Key: topics.HeaderEventID, Value: []byte(res.Event.GetEventId())},
				{Key: topics.HeaderContentType, Value: []byte(topics.ContentTypeProtobuf)},
			},
		})
	}
	if err := h.log.InsertFrom(ctx, results, sources); err != nil {
		return err
	}
	if err := h.producer.Produce(ctx, out...); err != nil {
		return fmt.Errorf("publish %d records: %w", len(out), err)
	}
	batch.Commit()
	return nil
}

// restore gives batch the previous forecasts of the series of snaps (of
// recs) not in memory, in one query.
func restore(ctx context.Context, log Log, batch *scoring.Batch, snaps []*featurev1.FeatureSnapshot, recs []*kgo.Record) error {
	cold := batch.Cold(snaps)
	if len(cold) == 0 {
		return nil
	}
	refs := make([]store.PreviousRef, len(cold))
	for j, i := range cold {
		refs[j] = store.PreviousRef{SeriesKey: snaps[i].GetSeriesKey(), At: store.Source{Partition: recs[i].Partition, Offset: recs[i].Offset}}
	}
	prev, err := log.Previous(ctx, refs)
	if err != nil {
		return fmt.Errorf("read the previous forecasts of %d series: %w", len(refs), err)
	}
	batch.Restore(prev)
	return nil
}

func (h *Handler) reject(rec *kgo.Record, reason string, err error) *kgo.Record {
	h.logger.Warn("snapshot rejected", "topic", rec.Topic, "partition", rec.Partition, "offset", rec.Offset, "reason", reason, "err", err)
	return kafkax.DLQRecord(rec, ServiceName, reason, err.Error())
}
