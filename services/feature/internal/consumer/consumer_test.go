package consumer

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/stockcast/stockcast/pkg/kafkax"
	"github.com/stockcast/stockcast/pkg/telemetry"
	"github.com/stockcast/stockcast/pkg/topics"
	catalogv1 "github.com/stockcast/stockcast/proto/stockcast/catalog/v1"
	demandv1 "github.com/stockcast/stockcast/proto/stockcast/demand/v1"
	featurev1 "github.com/stockcast/stockcast/proto/stockcast/feature/v1"
	"github.com/stockcast/stockcast/services/feature/internal/store"
)

var t0 = time.Date(2024, 9, 30, 10, 0, 0, 0, time.UTC) // a Monday

func demandRecord(t *testing.T, offset int64, id string, at time.Time, q float64) *kgo.Record {
	return record(t, offset, &demandv1.DemandEvent{EventId: id, OccurredAt: timestamppb.New(at), SeriesKey: "s1|shop",
		Sku: "s1", Location: "shop", Day: at.Format("2006-01-02"),
		Change: &demandv1.DemandEvent_Demand{Demand: &demandv1.Demand{Quantity: q}}})
}

func record(t *testing.T, offset int64, ev *demandv1.DemandEvent) *kgo.Record {
	t.Helper()
	b, err := proto.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	return &kgo.Record{Topic: topics.Demand, Key: []byte(ev.GetSeriesKey()), Value: b, Offset: offset}
}

func TestHandle(t *testing.T) {
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
	// With markers (as without Kafka transactions): e1 comes again at
	// another offset, an upstream duplicate, which only a marker recognises
	// (with transactions ingest keeps demand.v1 free of them).
	st := store.NewRedis(startRedis(t), store.Config{DedupTTL: time.Hour, Markers: true})
	h, err := New(st, producer, tel.Logger, tel.Meter.Meter("test"))
	if err != nil {
		t.Fatal(err)
	}

	noID := demandRecord(t, 3, "", t0, 1)
	item := record(t, 5, &demandv1.DemandEvent{EventId: "i1", OccurredAt: timestamppb.New(t0), SeriesKey: "s1", Sku: "s1",
		Day: "2024-09-30", Change: &demandv1.DemandEvent_Item{Item: &catalogv1.ItemAttributes{Sku: "s1", Category: "mugs", Department: "home"}}})
	batch := []*kgo.Record{
		demandRecord(t, 0, "e1", t0, 3),
		demandRecord(t, 1, "e2", t0.Add(24*time.Hour), 2),
		{Topic: topics.Demand, Key: []byte("s1|shop"), Value: []byte{0xff, 0x01}, Offset: 2}, // not protobuf
		noID,
		demandRecord(t, 4, "e1", t0, 3), // redelivery
		item,
		demandRecord(t, 6, "e3", t0.Add(25*time.Hour), -1), // a cancellation; carries the item now
	}
	if err := h.Handle(ctx, batch); err != nil {
		t.Fatal(err)
	}

	snaps := readTopic(t, broker.Brokers(), topics.Features, 5)
	want := []struct {
		key, id   string
		applied   bool
		asOf      string
		sum7      float64
		events    int64
		category  string
		recentEnd []float64
	}{
		{"s1|shop", "e1", true, "2024-09-30", 3, 1, "", []float64{3}},
		{"s1|shop", "e2", true, "2024-10-01", 5, 2, "", []float64{3, 2}},
		{"s1|shop", "e1", false, "2024-10-01", 5, 2, "", []float64{3, 2}}, // late redelivery: as of the latest day
		{"s1", "i1", true, "2024-09-30", 0, 0, "mugs", nil},
		{"s1|shop", "e3", true, "2024-10-01", 4, 3, "mugs", []float64{3, 1}},
	}
	for i, r := range snaps {
		var s featurev1.FeatureSnapshot
		if err := proto.Unmarshal(r.Value, &s); err != nil {
			t.Fatal(err)
		}
		w := want[i]
		if string(r.Key) != w.key || kafkax.HeaderValue(r, topics.HeaderEventID) != w.id || s.GetEventId() != w.id ||
			s.GetCause().GetEventId() != w.id || s.GetApplied() != w.applied || s.GetAsOfDay() != w.asOf ||
			s.GetSum_7() != w.sum7 || s.GetEventsApplied() != w.events || s.GetCategory() != w.category {
			t.Errorf("snapshot %d: key %s id %s/%s applied %v as of %s sum7 %v events %d category %q; want %+v",
				i, r.Key, kafkax.HeaderValue(r, topics.HeaderEventID), s.GetEventId(), s.GetApplied(), s.GetAsOfDay(),
				s.GetSum_7(), s.GetEventsApplied(), s.GetCategory(), w)
		}
		if w.recentEnd != nil {
			tail := s.GetRecentDaily()[len(s.GetRecentDaily())-len(w.recentEnd):]
			for j := range tail {
				if tail[j] != w.recentEnd[j] {
					t.Errorf("snapshot %d: recent_daily ends %v, want %v", i, tail, w.recentEnd)
					break
				}
			}
		}
	}

	dlq := readTopic(t, broker.Brokers(), topics.DLQ(topics.Demand), 2)
	for i, reason := range []string{"decode_failed", "event_id_missing"} {
		r := dlq[i]
		if got := kafkax.HeaderValue(r, topics.HeaderDLQReason); got != reason {
			t.Errorf("dlq %d reason %q, want %q", i, got, reason)
		}
		if kafkax.HeaderValue(r, topics.HeaderDLQService) != Service || string(r.Value) != string(batch[2+i].Value) {
			t.Errorf("dlq %d: service %q, value changed", i, kafkax.HeaderValue(r, topics.HeaderDLQService))
		}
	}
}

// readTopic reads exactly n records of topic from the start, failing after a deadline.
func readTopic(t *testing.T, brokers []string, topic string, n int) []*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	var out []*kgo.Record
	for len(out) < n {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %s: got %d records, want %d", topic, len(out), n)
		}
		out = append(out, fs.Records()...)
	}
	if len(out) != n {
		t.Fatalf("read %s: got %d records, want %d", topic, len(out), n)
	}
	return out
}
