// Package ingesting is ingest's batch logic: screen raw events (validate,
// de-duplicate), write the accepted ones to history, publish their
// DemandEvents and the rejects, and only then remember the accepted ids.
// The stores and the broker are behind the small interfaces below.
package ingesting

import (
	"context"
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"log/slog"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/stockcast/stockcast/pkg/telemetry"
	demandv1 "github.com/stockcast/stockcast/proto/stockcast/demand/v1"
	"github.com/stockcast/stockcast/services/ingest/internal/events"
)

// SeenStore remembers a mark of accepted event ids. Lookup may return a
// prefix of the hash remembered (a compact store keeps 8 bytes).
type SeenStore interface {
	Lookup(ctx context.Context, ids []string) (map[string]Mark, error)
	Remember(ctx context.Context, marks map[string]Mark) error
}

// Mark is what is remembered of an accepted event: its content hash and
// the tag of the record it was read from (PosTag; 0 when unknown).
type Mark struct {
	Hash string
	Pos  uint32
}

// PosTag is a record's position (topic, partition, offset) as a 32-bit
// FNV-1a hash, never 0. Two records at one position are the same record.
func PosTag(src events.Source) uint32 {
	h := fnv.New32a()
	h.Write([]byte(src.Topic))
	h.Write(binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint32(nil, uint32(src.Partition)), uint64(src.Offset)))
	if t := h.Sum32(); t != 0 {
		return t
	}
	return 1
}

// HistoryWriter stores the rows of accepted events; writing the same rows
// twice must be harmless.
type HistoryWriter interface {
	Write(ctx context.Context, rows events.Rows) error
}

// Outputs publishes what a consumed batch produced: the DemandEvents, and
// the rejected records (by index in the batch) to their dead-letter
// topics. It returns once everything is acknowledged.
type Outputs interface {
	Publish(ctx context.Context, demand []*demandv1.DemandEvent, rejected []Rejected) error
}

// RawOutputs publishes what a pushed request produced: the accepted events
// to their raw topics and the rejected ones to the dead-letter topics.
type RawOutputs interface {
	PublishRaw(ctx context.Context, accepted []events.Event, rejected []RejectedEvent) error
}

// Raw is one record read from a raw topic.
type Raw struct {
	Source      events.Source
	ContentType string
	// EventType is the stockcast-event-type header ("" without one): the
	// kind of event, which otherwise follows the topic (events.DecodeRecord).
	EventType string
	Value     []byte
}

// Rejected is a rejected record of a consumed batch.
type Rejected struct {
	Index   int // in the batch
	EventID string
	events.Rejection
}

// RejectedEvent is a rejected event of a pushed request.
type RejectedEvent struct {
	Index int // in the request
	Event events.Event
	events.Rejection
}

// Outcome is what becomes of one event.
type Outcome int

const (
	OutcomeAccepted  Outcome = iota + 1
	OutcomeDuplicate         // same id and content as an event accepted before: dropped
	OutcomeRejected          // see Verdict.Rejection
)

// Verdict is the screening result of one event.
type Verdict struct {
	Outcome   Outcome
	Event     events.Event // zero when undecodable
	Hash      string       // content hash, for accepted and duplicate events
	Rejection *events.Rejection
}

// Summary counts the outcomes of a batch or request.
type Summary struct {
	Accepted, Duplicates, Rejected, NonDemand int
}

// Service screens and ingests raw events.
type Service struct {
	norm    *events.Normaliser
	seen    SeenStore
	history HistoryWriter
	now     func() time.Time
	log     *slog.Logger
	tracer  trace.Tracer
	// transactional: each consumed batch is one Kafka transaction, so a
	// record read again was not committed before (see screen).
	transactional bool

	accepted   metric.Int64Counter
	duplicates metric.Int64Counter
	nonDemand  metric.Int64Counter
}

// NewService wires the logic to its stores. now is the clock events are
// validated and stamped with.
func NewService(norm *events.Normaliser, seen SeenStore, history HistoryWriter, tel *telemetry.Telemetry, now func() time.Time) (*Service, error) {
	const scope = "github.com/stockcast/stockcast/services/ingest/internal/ingesting"
	m := tel.Meter.Meter(scope)
	s := &Service{norm: norm, seen: seen, history: history, now: now, log: tel.Logger, tracer: tel.Tracer.Tracer(scope)}
	var err error
	if s.accepted, err = m.Int64Counter("stockcast.ingest.accepted",
		metric.WithDescription("Raw events accepted and stored, by topic.")); err != nil {
		return nil, fmt.Errorf("create accepted counter: %w", err)
	}
	if s.duplicates, err = m.Int64Counter("stockcast.ingest.duplicates",
		metric.WithDescription("Raw events dropped as exact duplicates of an accepted event, by topic.")); err != nil {
		return nil, fmt.Errorf("create duplicates counter: %w", err)
	}
	if s.nonDemand, err = m.Int64Counter("stockcast.ingest.non_demand",
		metric.WithDescription("Accepted order lines of non-product codes, stored but not published.")); err != nil {
		return nil, fmt.Errorf("create non-demand counter: %w", err)
	}
	return s, nil
}

// Screen validates each candidate and sorts out duplicates, against the
// seen store and within the slice (the first occurrence of an id wins).
// A candidate that already carries a rejection (undecodable) keeps it.
// Screen changes nothing; its error is a store failure.
func (s *Service) Screen(ctx context.Context, evs []events.Event, rejections []*events.Rejection) ([]Verdict, error) {
	return s.screen(ctx, evs, rejections, nil)
}

// screen is Screen for records read at the positions tagged pos (nil: not
// read from Kafka). With transactions, a mark of the same record (same
// position) is not a duplicate: it was set by a batch whose transaction
// did not commit, or the record would not be read again.
func (s *Service) screen(ctx context.Context, evs []events.Event, rejections []*events.Rejection, pos []uint32) ([]Verdict, error) {
	now := s.now()
	verdicts := make([]Verdict, len(evs))
	var ids []string
	for i, ev := range evs {
		v := Verdict{Event: ev}
		if rejections != nil && rejections[i] != nil {
			v.Outcome, v.Rejection = OutcomeRejected, rejections[i]
		} else if r := events.Validate(ev, now); r != nil {
			v.Outcome, v.Rejection = OutcomeRejected, r
		} else {
			h, err := ev.Hash()
			if err != nil {
				return nil, fmt.Errorf("hash event %s: %w", ev.EventID(), err)
			}
			v.Outcome, v.Hash = OutcomeAccepted, h
			ids = append(ids, ev.EventID())
		}
		verdicts[i] = v
	}

	stored, err := s.lookup(ctx, ids)
	if err != nil {
		return nil, err
	}
	first := map[string]string{} // event id -> hash of its first accepted occurrence here
	for i := range verdicts {
		v := &verdicts[i]
		if v.Outcome != OutcomeAccepted {
			continue
		}
		id := v.Event.EventID()
		mark, seenBefore := stored[id]
		if seenBefore && s.transactional && pos != nil && mark.Pos != 0 && mark.Pos == pos[i] {
			seenBefore = false // this very record, from an attempt that did not commit
		}
		prev, where := mark.Hash, "an event accepted before"
		if !seenBefore {
			prev, seenBefore = first[id]
			where = "an earlier event of this batch"
		}
		switch {
		case !seenBefore:
			first[id] = v.Hash
		case prev != "" && strings.HasPrefix(v.Hash, prev):
			v.Outcome = OutcomeDuplicate
		default:
			v.Outcome, v.Hash = OutcomeRejected, ""
			v.Rejection = &events.Rejection{Reason: events.ReasonDuplicateConflict,
				Detail: fmt.Sprintf("event_id %q has other content than %s", id, where)}
		}
	}
	return verdicts, nil
}

func (s *Service) lookup(ctx context.Context, ids []string) (map[string]Mark, error) {
	if len(ids) == 0 {
		return map[string]Mark{}, nil
	}
	ctx, span := s.tracer.Start(ctx, "ingest.lookup_seen", trace.WithAttributes(attribute.Int("ids", len(ids))))
	defer span.End()
	stored, err := s.seen.Lookup(ctx, ids)
	if err != nil {
		span.RecordError(err)
		return nil, err
	}
	return stored, nil
}

// Transactional tells the service that each batch it ingests is one Kafka
// transaction (the default): its marks, remembered before the commit, then
// count for other records only, and a record read again after an attempt
// that did not commit is ingested again. Without transactions (at least
// once) a batch read again after its outputs went out is dropped as
// duplicates.
func (s *Service) Transactional(on bool) { s.transactional = on }

// Ingest handles one batch of raw records of one partition, in order:
// decode and screen them, write the accepted ones to history, publish their
// DemandEvents and the rejects, then remember the accepted ids. An error
// means nothing is remembered and the batch must be retried as a whole;
// every step is idempotent, so a retry adds no rows and no seen marks twice.
func (s *Service) Ingest(ctx context.Context, batch []Raw, out Outputs) (Summary, error) {
	evs := make([]events.Event, len(batch))
	rejections := make([]*events.Rejection, len(batch))
	pos := make([]uint32, len(batch))
	for i, r := range batch {
		evs[i], rejections[i] = events.DecodeRecord(r.Source.Topic, r.EventType, r.ContentType, r.Value)
		pos[i] = PosTag(r.Source)
	}
	verdicts, err := s.screen(ctx, evs, rejections, pos)
	if err != nil {
		return Summary{}, err
	}

	ingestedAt := s.now().UTC().Truncate(time.Second)
	var (
		sum      Summary
		rows     events.Rows
		demand   []*demandv1.DemandEvent
		rejected []Rejected
		marks    = map[string]Mark{}
	)
	for i, v := range verdicts {
		switch v.Outcome {
		case OutcomeAccepted:
			n, err := s.norm.Normalise(v.Event, batch[i].Source, ingestedAt)
			if err != nil {
				return Summary{}, fmt.Errorf("normalise event %s: %w", v.Event.EventID(), err)
			}
			rows.Add(n)
			if n.Demand != nil {
				demand = append(demand, n.Demand)
			} else {
				sum.NonDemand++
			}
			marks[v.Event.EventID()] = Mark{Hash: v.Hash, Pos: pos[i]}
			sum.Accepted++
		case OutcomeDuplicate:
			sum.Duplicates++
		case OutcomeRejected:
			rejected = append(rejected, Rejected{Index: i, EventID: v.Event.EventID(), Rejection: *v.Rejection})
			sum.Rejected++
		}
	}

	if rows.Len() > 0 {
		if err := s.traced(ctx, "ingest.write_history", func(ctx context.Context) error { return s.history.Write(ctx, rows) }); err != nil {
			return Summary{}, err
		}
	}
	if len(demand) > 0 || len(rejected) > 0 {
		if err := s.traced(ctx, "ingest.publish", func(ctx context.Context) error { return out.Publish(ctx, demand, rejected) }); err != nil {
			return Summary{}, err
		}
	}
	if len(marks) > 0 {
		if err := s.traced(ctx, "ingest.remember_seen", func(ctx context.Context) error { return s.seen.Remember(ctx, marks) }); err != nil {
			return Summary{}, err
		}
	}

	// Count and log only now: a failed attempt is retried and must not
	// count twice.
	for i, v := range verdicts {
		src := batch[i].Source
		attrs := metric.WithAttributes(attribute.String("topic", src.Topic))
		switch v.Outcome {
		case OutcomeAccepted:
			s.accepted.Add(ctx, 1, attrs)
		case OutcomeDuplicate:
			s.duplicates.Add(ctx, 1, attrs)
			s.log.DebugContext(ctx, "duplicate event dropped", "topic", src.Topic, "partition", src.Partition,
				"offset", src.Offset, "event_id", v.Event.EventID())
		case OutcomeRejected:
			s.log.InfoContext(ctx, "event rejected", "topic", src.Topic, "partition", src.Partition,
				"offset", src.Offset, "event_id", v.Event.EventID(), "reason", string(v.Rejection.Reason), "detail", v.Rejection.Detail)
		}
	}
	if sum.NonDemand > 0 {
		s.nonDemand.Add(ctx, int64(sum.NonDemand))
	}
	return sum, nil
}

// Submit handles events pushed over the API: screen them, publish the
// accepted ones to their raw topics (ingest consumes them from there like
// any other) and the rejected ones to the dead-letter topics. Duplicates
// of accepted events are dropped. Nothing is remembered here: the
// consumer does that once the events are stored.
func (s *Service) Submit(ctx context.Context, evs []events.Event, out RawOutputs) ([]Verdict, error) {
	verdicts, err := s.Screen(ctx, evs, nil)
	if err != nil {
		return nil, err
	}
	var (
		accepted []events.Event
		rejected []RejectedEvent
	)
	for i, v := range verdicts {
		switch v.Outcome {
		case OutcomeAccepted:
			accepted = append(accepted, v.Event)
		case OutcomeRejected:
			rejected = append(rejected, RejectedEvent{Index: i, Event: v.Event, Rejection: *v.Rejection})
		}
	}
	if len(accepted) > 0 || len(rejected) > 0 {
		if err := s.traced(ctx, "ingest.publish_raw", func(ctx context.Context) error { return out.PublishRaw(ctx, accepted, rejected) }); err != nil {
			return nil, err
		}
	}
	for i, v := range verdicts {
		switch v.Outcome {
		case OutcomeDuplicate:
			s.duplicates.Add(ctx, 1, metric.WithAttributes(attribute.String("topic", v.Event.Topic())))
		case OutcomeRejected:
			s.log.InfoContext(ctx, "pushed event rejected", "topic", v.Event.Topic(), "index", i,
				"event_id", v.Event.EventID(), "reason", string(v.Rejection.Reason), "detail", v.Rejection.Detail)
		}
	}
	return verdicts, nil
}

func (s *Service) traced(ctx context.Context, name string, f func(context.Context) error) error {
	ctx, span := s.tracer.Start(ctx, name)
	defer span.End()
	if err := f(ctx); err != nil {
		span.RecordError(err)
		return err
	}
	return nil
}
