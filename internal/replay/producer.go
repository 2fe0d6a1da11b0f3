package replay

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stockcast/stockcast/pkg/retail"
	"github.com/stockcast/stockcast/pkg/topics"
)

// producer writes events asynchronously: kgo batches records per partition
// and keeps up to maxBuffered in flight, so the replay is not paced by
// round trips. Every record is registered with the tracker before it is
// handed to the client, and its acknowledgement time recorded.
type producer struct {
	cl      *kgo.Client
	tracker *Tracker
	// oneTopic: the lines' stock movements go to orders.v1 with the
	// stockcast-event-type header (SeriesRecord).
	oneTopic bool

	mu  sync.Mutex
	err error // first produce failure
}

const maxBuffered = 50_000

// NewRawClient returns a kgo producer client with the settings the replay
// uses (acks from all in-sync replicas, idempotent, murmur2 key
// partitioning, short linger); the broker benchmark uses the same one, so
// that both measure the same producer.
func NewRawClient(brokers []string, clientID string, opts ...kgo.Opt) (*kgo.Client, error) {
	base := []kgo.Opt{
		kgo.SeedBrokers(brokers...),
		kgo.ClientID(clientID),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerLinger(5 * time.Millisecond),
		kgo.MaxBufferedRecords(maxBuffered),
	}
	cl, err := kgo.NewClient(append(base, opts...)...)
	if err != nil {
		return nil, fmt.Errorf("create kafka producer for %v: %w", brokers, err)
	}
	return cl, nil
}

func newProducer(brokers []string, tracker *Tracker, oneTopic bool) (*producer, error) {
	cl, err := NewRawClient(brokers, "stockcast-replay")
	if err != nil {
		return nil, err
	}
	return &producer{cl: cl, tracker: tracker, oneTopic: oneTopic}, nil
}

// Record returns the Kafka record of an event: protobuf, keyed by series,
// with the event id and content type headers.
func Record(ev retail.Event) (*kgo.Record, error) {
	b, err := ev.Marshal()
	if err != nil {
		return nil, err
	}
	return &kgo.Record{
		Topic: ev.Topic(),
		Key:   []byte(ev.Key()),
		Value: b,
		Headers: []kgo.RecordHeader{
			{Key: topics.HeaderEventID, Value: []byte(ev.ID())},
			{Key: topics.HeaderContentType, Value: []byte(topics.ContentTypeProtobuf)},
		},
	}, nil
}

// SeriesRecord is Record on orders.v1 whatever the kind of event, with the
// stockcast-event-type header naming it: a series' order lines and stock
// movements share one partition, so ingest applies them in the order they
// were produced (docs/design.md "Delivery").
func SeriesRecord(ev retail.Event) (*kgo.Record, error) {
	rec, err := Record(ev)
	if err != nil {
		return nil, err
	}
	kind := topics.EventTypeOrderLine
	if ev.Order == nil {
		kind = topics.EventTypeInventory
	}
	rec.Topic = topics.Orders
	rec.Headers = append(rec.Headers, kgo.RecordHeader{Key: topics.HeaderEventType, Value: []byte(kind)})
	return rec, nil
}

// produce hands one event to the client; it blocks only while the buffer is
// full. It returns the first failure of any earlier record.
func (p *producer) produce(ctx context.Context, ev retail.Event, kind Kind, notDemand bool) error {
	if err := p.failed(); err != nil {
		return err
	}
	return p.produceOn(ctx, ev, kind, notDemand, p.oneTopic)
}

// produceOn is produce on the event's own topic (oneTopic false) or on
// orders.v1 with the event type header (SeriesRecord).
func (p *producer) produceOn(ctx context.Context, ev retail.Event, kind Kind, notDemand, oneTopic bool) error {
	if err := p.failed(); err != nil {
		return err
	}
	record := Record
	if oneTopic {
		record = SeriesRecord
	}
	rec, err := record(ev)
	if err != nil {
		return err
	}
	id := ev.ID()
	p.tracker.Produced(id, kind, notDemand, time.Now())
	p.cl.Produce(ctx, rec, func(r *kgo.Record, err error) {
		if err != nil {
			p.mu.Lock()
			if p.err == nil {
				p.err = fmt.Errorf("produce event %s to %s: %w", id, r.Topic, err)
			}
			p.mu.Unlock()
			return
		}
		p.tracker.Acked(id, time.Now())
	})
	return nil
}

// flush waits for every buffered record's acknowledgement.
func (p *producer) flush(ctx context.Context) error {
	if err := p.cl.Flush(ctx); err != nil {
		return fmt.Errorf("flush replay producer: %w", err)
	}
	return p.failed()
}

func (p *producer) failed() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

func (p *producer) close() { p.cl.Close() }
