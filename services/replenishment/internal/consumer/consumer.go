// Package consumer is the replenishment service's Kafka handler: decode
// forecasts.v1 records, plan, then make the effects durable in order:
// Redis state (by the planner) -> ClickHouse proposals -> replenishment.v1.
// Only after this returns nil does the Kafka consumer commit.
package consumer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/metric"
	"google.golang.org/protobuf/proto"

	forecastv1 "github.com/stockcast/stockcast/proto/stockcast/forecast/v1"
	inventoryv1 "github.com/stockcast/stockcast/proto/stockcast/inventory/v1"
	replenishmentv1 "github.com/stockcast/stockcast/proto/stockcast/replenishment/v1"

	"github.com/stockcast/stockcast/pkg/kafkax"
	"github.com/stockcast/stockcast/pkg/topics"
	"github.com/stockcast/stockcast/services/replenishment/internal/planning"
)

// Service is the name written into DLQ records.
const Service = "replenishment"

// ReasonUndecodable marks a record that is not a ForecastEvent.
const ReasonUndecodable = "undecodable"

// Planner applies events and decides.
type Planner interface {
	Plan(ctx context.Context, events []planning.Event) (planning.Result, error)
	ReevaluateScope(ctx context.Context, scope planning.Scope, emit func(planning.Result) error) error
}

// ProposalStore makes proposals durable.
type ProposalStore interface {
	Save(ctx context.Context, props []*replenishmentv1.Proposal) error
}

// Producer publishes records and waits for their acks.
type Producer interface {
	Produce(ctx context.Context, recs ...*kgo.Record) error
}

// StockoutStore makes detected stockout events durable.
type StockoutStore interface {
	Save(ctx context.Context, events []*inventoryv1.InventoryEvent) error
}

// StockoutOutput says where the stockout periods the service detects (and
// the platform did not report) go. The zero value drops them.
type StockoutOutput struct {
	// Store records them (ClickHouse stockouts); nil: not recorded.
	Store StockoutStore
	// Publish produces them to stockouts.v1, for downstream consumers.
	Publish bool
	// ToInventory also produces them to inventory.v1, stockcast's own
	// input, where forecasting takes them as censoring flags. Off by
	// default: they come back at whatever point of the series' later
	// events they arrive, so proposals then depend on timing.
	ToInventory bool
}

// Handler handles forecasts.v1 records.
type Handler struct {
	planner   Planner
	proposals ProposalStore
	producer  Producer
	log       *slog.Logger
	ins       instruments
	stockouts StockoutOutput
}

var _ kafkax.Handler = (*Handler)(nil)

type instruments struct {
	proposals metric.Int64Counter
	undecided metric.Int64Counter
	replayed  metric.Int64Counter
	stockouts metric.Int64Counter
}

// NewHandler returns the handler.
func NewHandler(planner Planner, proposals ProposalStore, producer Producer, meter metric.Meter, log *slog.Logger) (*Handler, error) {
	var ins instruments
	var err error
	if ins.proposals, err = meter.Int64Counter("stockcast.replenishment.proposals",
		metric.WithDescription("Proposals published, redeliveries included.")); err != nil {
		return nil, fmt.Errorf("create proposals counter: %w", err)
	}
	if ins.undecided, err = meter.Int64Counter("stockcast.replenishment.undecided",
		metric.WithDescription("Events applied without a decision: the forecast does not cover the policy.")); err != nil {
		return nil, fmt.Errorf("create undecided counter: %w", err)
	}
	if ins.replayed, err = meter.Int64Counter("stockcast.replenishment.replayed",
		metric.WithDescription("Events seen again (redelivery or replay): state unchanged.")); err != nil {
		return nil, fmt.Errorf("create replayed counter: %w", err)
	}
	if ins.stockouts, err = meter.Int64Counter("stockcast.replenishment.stockout_events",
		metric.WithDescription("Stockout started/ended events detected (periods the platform did not report) and published, redeliveries included.")); err != nil {
		return nil, fmt.Errorf("create stockout events counter: %w", err)
	}
	return &Handler{planner: planner, proposals: proposals, producer: producer, log: log, ins: ins}, nil
}

// SetStockoutOutput says where detected stockout periods go (the zero
// value, the default, drops them).
func (h *Handler) SetStockoutOutput(o StockoutOutput) { h.stockouts = o }

// Handle processes one partition's records in order. An error means a store
// or the broker failed; the whole batch is retried, which is safe because
// every effect is idempotent by event id.
func (h *Handler) Handle(ctx context.Context, recs []*kgo.Record) error {
	events := make([]planning.Event, 0, len(recs))
	var dlq []*kgo.Record
	start := batchStarts(recs)
	var scratch []byte
	for _, r := range recs {
		ev, err := decode(r, start, &scratch)
		var invalid *planning.InvalidEventError
		if errors.As(err, &invalid) {
			h.log.Warn("rejected record", "topic", r.Topic, "partition", r.Partition, "offset", r.Offset,
				"reason", invalid.Reason, "err", invalid.Detail)
			dlq = append(dlq, kafkax.DLQRecord(r, Service, invalid.Reason, invalid.Detail))
			continue
		}
		events = append(events, ev)
	}

	res, err := h.planner.Plan(ctx, events)
	if err != nil {
		return fmt.Errorf("plan %d events: %w", len(events), err)
	}
	return h.emit(ctx, res, dlq)
}

// Reevaluate decides again the series a policy scope governs after its
// policy changed (a series; or every series of a location or all of them
// that the location's or global policy governs, in bounded batches) and
// makes each batch's proposals durable (ClickHouse, then replenishment.v1)
// before the next batch and before it returns them. Safe to retry: the
// decision point is the policy and each series' latest event.
func (h *Handler) Reevaluate(ctx context.Context, scope planning.Scope) ([]*replenishmentv1.Proposal, error) {
	var out []*replenishmentv1.Proposal
	err := h.planner.ReevaluateScope(ctx, scope, func(res planning.Result) error {
		if err := h.emit(ctx, res, nil); err != nil {
			return err
		}
		out = append(out, res.Proposals...)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("re-evaluate %s|%s: %w", scope.SKU, scope.Location, err)
	}
	return out, nil
}

// emit saves the proposals and detected stockouts, then publishes them with
// the rejects.
func (h *Handler) emit(ctx context.Context, res planning.Result, dlq []*kgo.Record) error {
	if err := h.proposals.Save(ctx, res.Proposals); err != nil {
		return fmt.Errorf("save proposals: %w", err)
	}
	if h.stockouts.Store != nil {
		if err := h.stockouts.Store.Save(ctx, res.Stockouts); err != nil {
			return fmt.Errorf("save stockout events: %w", err)
		}
	}
	out := dlq
	for _, p := range res.Proposals {
		rec, err := proposalRecord(p)
		if err != nil {
			return err
		}
		out = append(out, rec)
		h.log.Debug("proposal", "series", p.GetSeriesKey(), "event_id", p.GetEventId(), "proposal_id", p.GetProposalId(),
			"quantity", p.GetQuantity(), "decision_seq", p.GetDecisionSeq())
	}
	to := h.stockoutTopics()
	published := 0
	if len(to) > 0 {
		published = len(res.Stockouts)
	}
	for _, ev := range res.Stockouts {
		for _, topic := range to {
			rec, err := StockoutRecord(topic, ev)
			if err != nil {
				return err
			}
			out = append(out, rec)
		}
	}
	if err := h.producer.Produce(ctx, out...); err != nil {
		return fmt.Errorf("publish %d proposals, %d stockout events and %d rejects: %w", len(res.Proposals), published, len(dlq), err)
	}
	h.ins.stockouts.Add(ctx, int64(published))
	h.ins.proposals.Add(ctx, int64(len(res.Proposals)))
	h.ins.undecided.Add(ctx, int64(res.Undecided))
	h.ins.replayed.Add(ctx, int64(res.Replayed))
	return nil
}

// batchStarts is the offset of each partition's first record in recs: the
// batch start of the events' positions.
func batchStarts(recs []*kgo.Record) map[int32]int64 {
	start := map[int32]int64{}
	for _, r := range recs {
		if _, ok := start[r.Partition]; !ok {
			start[r.Partition] = r.Offset
		}
	}
	return start
}

// trimValues decodes records trimmed (trimForecast); false only in
// BenchmarkHandle's baseline.
var trimValues = true

// decode reads a record; scratch is a buffer for its trimmed value, reused
// from record to record.
func decode(r *kgo.Record, start map[int32]int64, scratch *[]byte) (planning.Event, error) {
	var ev forecastv1.ForecastEvent
	value := r.Value
	if trimValues {
		value = appendTrimmed((*scratch)[:0], value)
		*scratch = value
	}
	if err := proto.Unmarshal(value, &ev); err != nil {
		return planning.Event{}, &planning.InvalidEventError{Reason: ReasonUndecodable, Detail: "not a ForecastEvent: " + err.Error()}
	}
	e, err := planning.NewEvent(&ev)
	e.Pos = &planning.Position{Partition: r.Partition, Offset: r.Offset, Start: start[r.Partition]}
	return e, err
}

// stockoutTopics are the topics detected stockouts are produced to.
func (h *Handler) stockoutTopics() []string {
	var out []string
	if h.stockouts.Publish {
		out = append(out, topics.Stockouts)
	}
	if h.stockouts.ToInventory {
		out = append(out, topics.Inventory)
	}
	return out
}

// StockoutRecord is a stockout period's start or end the service detected,
// for stockouts.v1 (downstream consumers) or, opted in, inventory.v1
// (through ingest to the feature service, which marks the days censored):
// keyed by the series like the platform's inventory events, protobuf,
// header stockcast-event-id = its deterministic event_id.
func StockoutRecord(topic string, ev *inventoryv1.InventoryEvent) (*kgo.Record, error) {
	value, err := proto.Marshal(ev)
	if err != nil {
		return nil, fmt.Errorf("encode stockout event %s: %w", ev.GetEventId(), err)
	}
	return &kgo.Record{
		Topic: topic,
		Key:   []byte(topics.SeriesKey(ev.GetSku(), ev.GetLocation())),
		Value: value,
		Headers: []kgo.RecordHeader{
			{Key: topics.HeaderEventID, Value: []byte(ev.GetEventId())},
			{Key: topics.HeaderContentType, Value: []byte(topics.ContentTypeProtobuf)},
		},
	}, nil
}

func proposalRecord(p *replenishmentv1.Proposal) (*kgo.Record, error) {
	value, err := proto.Marshal(p)
	if err != nil {
		return nil, fmt.Errorf("encode proposal %s: %w", p.GetProposalId(), err)
	}
	return &kgo.Record{
		Topic:   topics.Proposals,
		Key:     []byte(p.GetSeriesKey()),
		Value:   value,
		Headers: []kgo.RecordHeader{{Key: topics.HeaderEventID, Value: []byte(p.GetEventId())}},
	}, nil
}

// Publisher publishes proposal status changes on replenishment.v1.
type Publisher struct {
	producer Producer
}

var _ planning.StatusPublisher = (*Publisher)(nil)

// NewPublisher returns a status publisher.
func NewPublisher(producer Producer) *Publisher { return &Publisher{producer: producer} }

// StatusEventID is the stockcast-event-id header of a status change:
// "<proposal_id>:<status>", the same on every retry.
func StatusEventID(p *replenishmentv1.Proposal) string {
	return p.GetProposalId() + ":" + p.GetStatus().String()
}

// PublishStatus publishes the proposal with its new status (key: series).
func (p *Publisher) PublishStatus(ctx context.Context, prop *replenishmentv1.Proposal) error {
	rec, err := proposalRecord(prop)
	if err != nil {
		return err
	}
	rec.Headers = []kgo.RecordHeader{{Key: topics.HeaderEventID, Value: []byte(StatusEventID(prop))}}
	if err := p.producer.Produce(ctx, rec); err != nil {
		return fmt.Errorf("publish status of proposal %s: %w", prop.GetProposalId(), err)
	}
	return nil
}

// Inspector reads a series' state.
type Inspector interface {
	Inspect(ctx context.Context, series planning.Scope, minSamples int) (*replenishmentv1.GetSeriesStateResponse, error)
}

// SeriesService is grpcapi's view of series: re-evaluation through the
// handler and inspection of the state.
type SeriesService struct {
	Handler    *Handler
	State      Inspector
	MinSamples int
}

// Reevaluate decides a series again (see Handler.Reevaluate).
func (s SeriesService) Reevaluate(ctx context.Context, series planning.Scope) ([]*replenishmentv1.Proposal, error) {
	return s.Handler.Reevaluate(ctx, series)
}

// Inspect reads a series' state.
func (s SeriesService) Inspect(ctx context.Context, series planning.Scope) (*replenishmentv1.GetSeriesStateResponse, error) {
	return s.State.Inspect(ctx, series, s.MinSamples)
}
