package consumer

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/stockcast/stockcast/pkg/kafkax"
	"github.com/stockcast/stockcast/pkg/telemetry"
	"github.com/stockcast/stockcast/pkg/topics"
	demandv1 "github.com/stockcast/stockcast/proto/stockcast/demand/v1"
	featurev1 "github.com/stockcast/stockcast/proto/stockcast/feature/v1"
	"github.com/stockcast/stockcast/services/feature/internal/store"
)

// TestHandleRedeliveredBatch: a poll of two partitions handled after a
// crash that had handled part of it, then retried as a whole: every
// event's snapshot is the one of its first handling, byte for byte, and
// the series count each event once. The handler passes each partition's
// first offset in the batch to the store (Position.Start).
func TestHandleRedeliveredBatch(t *testing.T) {
	ctx := context.Background()
	broker, err := kafkax.StartEmbedded(kafkax.EmbeddedConfig{Partitions: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(broker.Close)
	kcfg := kafkax.Config{Brokers: broker.Brokers(), Partitions: 1}
	if err := kafkax.EnsureTopics(ctx, kcfg, topics.Features, topics.DLQ(topics.Demand)); err != nil {
		t.Fatal(err)
	}
	tel := telemetry.NewDiscard()
	producer, err := kafkax.NewProducer(kcfg, tel)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(producer.Close)
	h, err := New(store.NewRedis(startRedis(t), store.Config{DedupTTL: time.Hour}), producer, tel.Logger, tel.Meter.Meter("test"))
	if err != nil {
		t.Fatal(err)
	}

	rec := func(part int32, offset int64, sku, id string, day int, q float64) *kgo.Record {
		at := t0.Add(time.Duration(day) * 24 * time.Hour)
		ev := &demandv1.DemandEvent{EventId: id, OccurredAt: timestamppb.New(at), SeriesKey: sku + "|shop",
			Sku: sku, Location: "shop", Day: at.Format("2006-01-02"),
			Change: &demandv1.DemandEvent_Demand{Demand: &demandv1.Demand{Quantity: q}}}
		b, err := proto.Marshal(ev)
		if err != nil {
			t.Fatal(err)
		}
		return &kgo.Record{Topic: topics.Demand, Partition: part, Offset: offset, Key: []byte(ev.GetSeriesKey()), Value: b}
	}
	// A poll: partition 0 from its committed offset 40, partition 1 from 7.
	p0 := []*kgo.Record{rec(0, 40, "s1", "a1", 0, 3), rec(0, 41, "s1", "a2", 1, 2), rec(0, 42, "s1", "a3", 1, -1), rec(0, 43, "s1", "a4", 3, 5)}
	p1 := []*kgo.Record{rec(1, 7, "s2", "b1", 0, 1), rec(1, 8, "s2", "b2", 0, 4), rec(1, 9, "s2", "b3", 2, 1)}
	poll := append(append([]*kgo.Record{}, p0...), p1...)
	crashed := append(append([]*kgo.Record{}, p0[:2]...), p1[:1]...)

	for _, recs := range [][]*kgo.Record{crashed, poll, poll} {
		if err := h.Handle(ctx, recs); err != nil {
			t.Fatal(err)
		}
	}
	n := len(crashed) + 2*len(poll)
	first := map[string][]byte{}
	count := map[string]int{}
	for _, r := range readTopic(t, broker.Brokers(), topics.Features, n) {
		id := kafkax.HeaderValue(r, topics.HeaderEventID)
		count[id]++
		if f, ok := first[id]; !ok {
			first[id] = r.Value
		} else if !bytes.Equal(f, r.Value) {
			t.Errorf("snapshot %d of %s differs from its first", count[id], id)
		}
	}
	if len(first) != len(poll) {
		t.Fatalf("snapshots of %d events, want %d", len(first), len(poll))
	}
	for id, want := range map[string]struct {
		events int64
		total  float64
	}{"a4": {4, 9}, "b3": {3, 6}} {
		var s featurev1.FeatureSnapshot
		if err := proto.Unmarshal(first[id], &s); err != nil {
			t.Fatal(err)
		}
		if !s.GetApplied() || s.GetEventsApplied() != want.events || s.GetTotalDemand() != want.total {
			t.Errorf("%s: applied %v events %d total %v, want %d %v", id, s.GetApplied(), s.GetEventsApplied(), s.GetTotalDemand(), want.events, want.total)
		}
	}
}
