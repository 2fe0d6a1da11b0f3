// Package consumer adapts ingest's batch logic to the Kafka consumer: one
// call per partition's records.
package consumer

import (
	"context"
	"log/slog"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stockcast/stockcast/pkg/kafkax"
	"github.com/stockcast/stockcast/pkg/topics"
	"github.com/stockcast/stockcast/services/ingest/internal/events"
	"github.com/stockcast/stockcast/services/ingest/internal/ingesting"
	"github.com/stockcast/stockcast/services/ingest/internal/publish"
)

// Group is ingest's consumer group.
const Group = "stockcast-ingest"

// Topics are the raw topics ingest consumes.
var Topics = []string{topics.Orders, topics.Inventory, topics.Catalog}

// Ingester is the batch logic (*ingesting.Service).
type Ingester interface {
	Ingest(ctx context.Context, batch []ingesting.Raw, out ingesting.Outputs) (ingesting.Summary, error)
}

// Handler is the kafkax.Handler of the raw topics.
type Handler struct {
	ing  Ingester
	prod publish.Producer
	log  *slog.Logger
}

// NewHandler returns a Handler that ingests through ing and publishes
// through prod.
func NewHandler(ing Ingester, prod publish.Producer, log *slog.Logger) *Handler {
	return &Handler{ing: ing, prod: prod, log: log}
}

// Handle ingests one partition's records. Its error makes the consumer
// retry the same records, so nothing is committed before the history rows,
// the outputs and the seen marks are durable.
func (h *Handler) Handle(ctx context.Context, recs []*kgo.Record) error {
	if len(recs) == 0 {
		return nil
	}
	batch := make([]ingesting.Raw, len(recs))
	for i, r := range recs {
		batch[i] = ingesting.Raw{
			Source:      events.Source{Topic: r.Topic, Partition: r.Partition, Offset: r.Offset},
			ContentType: kafkax.HeaderValue(r, topics.HeaderContentType),
			EventType:   kafkax.HeaderValue(r, topics.HeaderEventType),
			Value:       r.Value,
		}
	}
	sum, err := h.ing.Ingest(ctx, batch, publish.NewBatch(h.prod, recs))
	if err != nil {
		return err
	}
	h.log.DebugContext(ctx, "batch ingested", "topic", recs[0].Topic, "partition", recs[0].Partition,
		"offset", recs[0].Offset, "records", len(recs), "accepted", sum.Accepted, "duplicates", sum.Duplicates,
		"rejected", sum.Rejected, "non_demand", sum.NonDemand)
	return nil
}
