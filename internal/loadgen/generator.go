package loadgen

import (
	"fmt"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/stockcast/stockcast/pkg/topics"
	inventoryv1 "github.com/stockcast/stockcast/proto/stockcast/inventory/v1"
	ordersv1 "github.com/stockcast/stockcast/proto/stockcast/orders/v1"
)

// Location is the location of every generated series.
const Location = "lg"

// Line is one generated order line, before it gets its time and ids.
type Line struct {
	Seq       int64 // 0-based position in the stream
	Rank      int   // the series, by popularity (0 is the most popular)
	Cancelled bool
	Quantity  float64
	UnitPrice float64
}

// GeneratorConfig configures a Generator.
type GeneratorConfig struct {
	Series int     // number of series (sku x location)
	Zipf   float64 // popularity exponent (0: uniform; ~1: a typical catalogue)
	Seed   uint64
	// Sequential makes the first Sequential lines visit ranks 0, 1, 2, ...
	// in order, so that a run touches every series (memory per series)
	// before the Zipf-distributed lines start.
	Sequential int
	// CancelFraction of the lines cancel (demand -quantity).
	CancelFraction float64
}

// Generator produces the lines of a stream, deterministic for a seed.
type Generator struct {
	cfg  GeneratorConfig
	zipf *Zipf
	rng  *rand.Rand
	seq  int64
}

// NewGenerator returns a generator.
func NewGenerator(cfg GeneratorConfig) (*Generator, error) {
	z, err := NewZipf(cfg.Series, cfg.Zipf)
	if err != nil {
		return nil, err
	}
	if cfg.Sequential < 0 || cfg.Sequential > cfg.Series {
		return nil, fmt.Errorf("generator: %d sequential lines: want 0 to the %d series", cfg.Sequential, cfg.Series)
	}
	if !(cfg.CancelFraction >= 0 && cfg.CancelFraction < 1) {
		return nil, fmt.Errorf("generator: cancel fraction %v: want it in [0, 1)", cfg.CancelFraction)
	}
	return &Generator{cfg: cfg, zipf: z, rng: rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x9e3779b97f4a7c15))}, nil
}

// Zipf returns the popularity distribution.
func (g *Generator) Zipf() *Zipf { return g.zipf }

// Next returns the next line.
func (g *Generator) Next() Line {
	l := Line{Seq: g.seq}
	// Every line draws the same number of values, so that the stream after
	// the sequential lines does not depend on their number's parity etc.
	u, c, q := g.rng.Float64(), g.rng.Float64(), g.rng.ExpFloat64()
	if g.seq < int64(g.cfg.Sequential) {
		l.Rank = int(g.seq)
	} else {
		l.Rank = g.zipf.Rank(u)
	}
	l.Cancelled = c < g.cfg.CancelFraction
	// Most order lines are for a few units; a few are large.
	l.Quantity = 1 + math.Floor(3*q)
	l.UnitPrice = Price(l.Rank)
	g.seq++
	return l
}

// SKU returns the stock code of a series rank.
func SKU(rank int) string { return fmt.Sprintf("LG%07d", rank) }

// SeriesKey returns the series key of a rank.
func SeriesKey(rank int) string { return topics.SeriesKey(SKU(rank), Location) }

// Price is a series' unit price: fixed per series, 0.50 to 20.49.
func Price(rank int) float64 {
	h := fnv.New32a()
	_, _ = h.Write([]byte(strconv.Itoa(rank)))
	return 0.5 + float64(h.Sum32()%2000)/100
}

// EventID is the event id of line seq of run.
func EventID(run string, seq int64) string { return "lg-" + run + "-" + strconv.FormatInt(seq, 10) }

// ParseEventID returns the sequence number of an event id of run.
func ParseEventID(run, id string) (int64, bool) {
	prefix := "lg-" + run + "-"
	if len(id) <= len(prefix) || id[:len(prefix)] != prefix {
		return 0, false
	}
	n, err := strconv.ParseInt(id[len(prefix):], 10, 64)
	return n, err == nil && n >= 0
}

// Event returns the order line event of l, occurred at at.
func (l Line) Event(run string, at time.Time) *ordersv1.OrderLineEvent {
	typ := ordersv1.OrderLineType_ORDER_LINE_TYPE_PLACED
	if l.Cancelled {
		typ = ordersv1.OrderLineType_ORDER_LINE_TYPE_CANCELLED
	}
	return &ordersv1.OrderLineEvent{
		EventId:    EventID(run, l.Seq),
		OccurredAt: timestamppb.New(at),
		Type:       typ,
		OrderId:    "lg-" + run + "-o" + strconv.FormatInt(l.Seq, 10),
		LineNumber: 1,
		Sku:        SKU(l.Rank),
		Location:   Location,
		Quantity:   l.Quantity,
		UnitPrice:  l.UnitPrice,
		Currency:   "EUR",
		Channel:    "loadgen",
		Country:    "DE",
	}
}

// Record returns the Kafka record of l for orders.v1, as a platform would
// send it: protobuf, keyed by series, with the event id header.
func (l Line) Record(run string, at time.Time) (*kgo.Record, error) {
	ev := l.Event(run, at)
	b, err := proto.Marshal(ev)
	if err != nil {
		return nil, fmt.Errorf("encode order line %s: %w", ev.GetEventId(), err)
	}
	return &kgo.Record{
		Topic: topics.Orders,
		Key:   []byte(topics.SeriesKey(ev.GetSku(), ev.GetLocation())),
		Value: b,
		Headers: []kgo.RecordHeader{
			{Key: topics.HeaderEventID, Value: []byte(ev.GetEventId())},
			{Key: topics.HeaderContentType, Value: []byte(topics.ContentTypeProtobuf)},
		},
	}, nil
}

// StockRecord returns an inventory snapshot of onHand units for a series,
// so that replenishment starts each series from a stock position.
func StockRecord(run string, rank int, onHand float64, at time.Time) (*kgo.Record, error) {
	ev := &inventoryv1.InventoryEvent{
		EventId:    "lg-" + run + "-stock-" + strconv.Itoa(rank),
		OccurredAt: timestamppb.New(at),
		Sku:        SKU(rank),
		Location:   Location,
		Kind:       &inventoryv1.InventoryEvent_Snapshot{Snapshot: &inventoryv1.Snapshot{OnHand: onHand}},
	}
	b, err := proto.Marshal(ev)
	if err != nil {
		return nil, fmt.Errorf("encode stock snapshot %s: %w", ev.GetEventId(), err)
	}
	return &kgo.Record{
		Topic: topics.Inventory,
		Key:   []byte(SeriesKey(rank)),
		Value: b,
		Headers: []kgo.RecordHeader{
			{Key: topics.HeaderEventID, Value: []byte(ev.GetEventId())},
			{Key: topics.HeaderContentType, Value: []byte(topics.ContentTypeProtobuf)},
		},
	}, nil
}
