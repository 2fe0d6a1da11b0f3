// Package publish turns ingest's outputs into Kafka records: DemandEvents
// on demand.v1, pushed events on the raw topics, rejects on the
// dead-letter topics, and produces them through one producer.
package publish

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"

	"github.com/stockcast/stockcast/pkg/kafkax"
	"github.com/stockcast/stockcast/pkg/topics"
	demandv1 "github.com/stockcast/stockcast/proto/stockcast/demand/v1"
	"github.com/stockcast/stockcast/services/ingest/internal/events"
	"github.com/stockcast/stockcast/services/ingest/internal/ingesting"
)

// ServiceName is the stockcast-dlq-service header of ingest's rejects.
const ServiceName = "ingest"

// HeaderDLQTruncated marks a dead-letter record whose value, key or
// headers were cut to fit (see capDLQ); it holds the original sizes.
const HeaderDLQTruncated = "stockcast-dlq-truncated"

const dlqHeaderPrefix = "stockcast-dlq-"

// capDLQ cuts the value and the key of a dead-letter record to
// events.MaxEventBytes each, and drops the original headers when they add
// up to more, so that a hostile record (e.g. 10 MB that the broker took
// compressed) can always be dead-lettered: the producer refuses records
// over its batch limit (1 MB), and a refused reject would stop the
// partition for good. The source header still points at the original.
func capDLQ(r *kgo.Record) {
	limit := events.MaxEventBytes
	var cut []string
	if len(r.Value) > limit {
		cut = append(cut, "value="+strconv.Itoa(len(r.Value)))
		r.Value = r.Value[:limit:limit]
	}
	if len(r.Key) > limit {
		cut = append(cut, "key="+strconv.Itoa(len(r.Key)))
		r.Key = r.Key[:limit:limit]
	}
	size := 0
	var own []kgo.RecordHeader // the stockcast-dlq-* headers
	for _, h := range r.Headers {
		if strings.HasPrefix(strings.ToLower(h.Key), dlqHeaderPrefix) {
			own = append(own, h)
		} else {
			size += len(h.Key) + len(h.Value)
		}
	}
	if size > limit {
		cut = append(cut, "headers="+strconv.Itoa(size))
		r.Headers = own
	}
	if len(cut) > 0 {
		kafkax.SetHeader(r, HeaderDLQTruncated, strings.Join(cut, " "))
	}
}

// Producer produces records and waits for their acknowledgement
// (*kafkax.Producer).
type Producer interface {
	Produce(ctx context.Context, recs ...*kgo.Record) error
}

// DemandRecord is the demand.v1 record of a DemandEvent, keyed by its
// series key.
func DemandRecord(de *demandv1.DemandEvent) (*kgo.Record, error) {
	b, err := proto.Marshal(de)
	if err != nil {
		return nil, fmt.Errorf("marshal demand event %s: %w", de.GetEventId(), err)
	}
	return &kgo.Record{
		Topic:   topics.Demand,
		Key:     []byte(de.GetSeriesKey()),
		Value:   b,
		Headers: []kgo.RecordHeader{{Key: topics.HeaderEventID, Value: []byte(de.GetEventId())}},
	}, nil
}

// Batch publishes the outputs of one consumed batch; recs are the batch's
// records, which the rejects refer to by index.
type Batch struct {
	prod Producer
	recs []*kgo.Record
}

var _ ingesting.Outputs = (*Batch)(nil)

// NewBatch returns the outputs of the batch recs.
func NewBatch(prod Producer, recs []*kgo.Record) *Batch { return &Batch{prod: prod, recs: recs} }

// Publish produces the DemandEvents and the dead-letter records (the
// original key, value and headers plus the reason headers) in one call.
func (b *Batch) Publish(ctx context.Context, demand []*demandv1.DemandEvent, rejected []ingesting.Rejected) error {
	out := make([]*kgo.Record, 0, len(demand)+len(rejected))
	for _, de := range demand {
		r, err := DemandRecord(de)
		if err != nil {
			return err
		}
		out = append(out, r)
	}
	for _, rej := range rejected {
		if rej.Index < 0 || rej.Index >= len(b.recs) {
			return fmt.Errorf("dead-letter record %d of a batch of %d", rej.Index, len(b.recs))
		}
		src := b.recs[rej.Index]
		dlq := kafkax.DLQRecord(src, ServiceName, string(rej.Reason), rej.Detail)
		capDLQ(dlq)
		out = append(out, dlq)
	}
	if err := b.prod.Produce(ctx, out...); err != nil {
		return fmt.Errorf("publish %d demand events and %d rejects: %w", len(demand), len(rejected), err)
	}
	return nil
}

// Raw publishes events pushed over the API.
type Raw struct {
	prod Producer
}

var _ ingesting.RawOutputs = (*Raw)(nil)

// NewRaw returns a Raw producing through prod.
func NewRaw(prod Producer) *Raw { return &Raw{prod: prod} }

// RawRecord is the raw-topic record of an event, as a platform producing
// to Kafka would write it: protobuf, keyed by the series (or the sku for
// item attributes).
func RawRecord(ev events.Event) (*kgo.Record, error) {
	b, err := ev.Encode()
	if err != nil {
		return nil, err
	}
	return &kgo.Record{
		Topic: ev.Topic(),
		Key:   []byte(ev.Key()),
		Value: b,
		Headers: []kgo.RecordHeader{
			{Key: topics.HeaderEventID, Value: []byte(ev.EventID())},
			{Key: topics.HeaderContentType, Value: []byte(topics.ContentTypeProtobuf)},
		},
	}, nil
}

// PublishRaw produces the accepted events to their raw topics and the
// rejected ones, encoded as protobuf, to the dead-letter topics, in one call.
// A pushed reject has no topic position: its source header is
// "grpc/<topic>/<index in the request>".
func (p *Raw) PublishRaw(ctx context.Context, accepted []events.Event, rejected []ingesting.RejectedEvent) error {
	out := make([]*kgo.Record, 0, len(accepted)+len(rejected))
	for _, ev := range accepted {
		r, err := RawRecord(ev)
		if err != nil {
			return err
		}
		out = append(out, r)
	}
	for _, rej := range rejected {
		src, err := RawRecord(rej.Event)
		if err != nil {
			return err
		}
		dlq := kafkax.DLQRecord(src, ServiceName, string(rej.Reason), rej.Detail)
		kafkax.SetHeader(dlq, topics.HeaderDLQSource, "grpc/"+src.Topic+"/"+strconv.Itoa(rej.Index))
		capDLQ(dlq)
		out = append(out, dlq)
	}
	if err := p.prod.Produce(ctx, out...); err != nil {
		return fmt.Errorf("publish %d pushed events and %d rejects: %w", len(accepted), len(rejected), err)
	}
	return nil
}
