package ingesting

import (
	"context"
	"errors"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/stockcast/stockcast/pkg/telemetry"
	"github.com/stockcast/stockcast/pkg/topics"
	demandv1 "github.com/stockcast/stockcast/proto/stockcast/demand/v1"
	inventoryv1 "github.com/stockcast/stockcast/proto/stockcast/inventory/v1"
	ordersv1 "github.com/stockcast/stockcast/proto/stockcast/orders/v1"
	"github.com/stockcast/stockcast/services/ingest/internal/events"
)

// The stores here are hand fakes: this file tests the order of effects and
// the de-duplication rules; the real adapters are tested in store and
// end to end in app.

type memSeen struct {
	m         map[string]Mark
	lookupErr error
}

func (s *memSeen) Lookup(_ context.Context, ids []string) (map[string]Mark, error) {
	if s.lookupErr != nil {
		return nil, s.lookupErr
	}
	out := map[string]Mark{}
	for _, id := range ids {
		if m, ok := s.m[id]; ok {
			out[id] = m
		}
	}
	return out, nil
}

func (s *memSeen) Remember(_ context.Context, marks map[string]Mark) error {
	for id, m := range marks {
		s.m[id] = m
	}
	return nil
}

type memHistory struct{ writes []events.Rows }

func (h *memHistory) Write(_ context.Context, rows events.Rows) error {
	h.writes = append(h.writes, rows)
	return nil
}

type recOutputs struct {
	err      error
	demand   []*demandv1.DemandEvent
	rejected []Rejected
	calls    int
}

func (o *recOutputs) Publish(_ context.Context, demand []*demandv1.DemandEvent, rejected []Rejected) error {
	o.calls++
	if o.err != nil {
		return o.err
	}
	o.demand = append(o.demand, demand...)
	o.rejected = append(o.rejected, rejected...)
	return nil
}

var now = time.Date(2011, 12, 9, 12, 0, 0, 0, time.UTC)

func line(id, sku string, qty float64, typ ordersv1.OrderLineType) *ordersv1.OrderLineEvent {
	return &ordersv1.OrderLineEvent{
		EventId: id, OccurredAt: timestamppb.New(now.Add(-time.Hour)), Type: typ, OrderId: "o-" + id,
		Sku: sku, Location: "online", Quantity: qty, UnitPrice: 1.5, Currency: "GBP",
	}
}

func placed(id, sku string, qty float64) *ordersv1.OrderLineEvent {
	return line(id, sku, qty, ordersv1.OrderLineType_ORDER_LINE_TYPE_PLACED)
}

func raw(t *testing.T, topic string, offset int64, m proto.Message) Raw {
	t.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return Raw{Source: events.Source{Topic: topic, Partition: 0, Offset: offset}, Value: b}
}

func newService(t *testing.T, seen *memSeen, hist *memHistory) (*Service, *telemetry.Telemetry) {
	t.Helper()
	tel := telemetry.NewDiscard()
	svc, err := NewService(events.NewNormaliser([]string{"POST"}), seen, hist, tel, func() time.Time { return now })
	if err != nil {
		t.Fatal(err)
	}
	return svc, tel
}

func hashOf(t *testing.T, m *ordersv1.OrderLineEvent) string {
	t.Helper()
	h, err := events.Event{Order: m}.Hash()
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func TestScreen(t *testing.T) {
	known := placed("known", "A", 1)
	seen := &memSeen{m: map[string]Mark{
		"known":    {Hash: hashOf(t, known)},
		"conflict": {Hash: hashOf(t, placed("conflict", "A", 1))},
	}}
	svc, _ := newService(t, seen, &memHistory{})
	a := placed("a", "A", 2)
	evs := []events.Event{
		{Order: a},                                             // 0 accepted
		{Order: placed("bad", "A", 0)},                         // 1 rejected: quantity
		{Order: proto.CloneOf(a)},                              // 2 duplicate within the batch
		{Order: placed("a", "A", 3)},                           // 3 same id, other content than 0
		{Order: proto.CloneOf(known)},                          // 4 duplicate of an accepted event
		{Order: placed("conflict", "A", 9)},                    // 5 other content than the accepted one
		{Inventory: &inventoryv1.InventoryEvent{EventId: "a"}}, // 6 invalid: no kind (validated before de-duplication)
		{},                           // 7 undecodable
		{Order: placed("b", "A", 1)}, // 8 accepted
	}
	rejections := make([]*events.Rejection, len(evs))
	rejections[7] = &events.Rejection{Reason: events.ReasonUndecodable, Detail: "garbage"}
	verdicts, err := svc.Screen(context.Background(), evs, rejections)
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		outcome Outcome
		reason  events.Reason
	}{
		{OutcomeAccepted, ""},
		{OutcomeRejected, events.ReasonQuantityNotPositive},
		{OutcomeDuplicate, ""},
		{OutcomeRejected, events.ReasonDuplicateConflict},
		{OutcomeDuplicate, ""},
		{OutcomeRejected, events.ReasonDuplicateConflict},
		{OutcomeRejected, events.ReasonMissingSKU},
		{OutcomeRejected, events.ReasonUndecodable},
		{OutcomeAccepted, ""},
	}
	for i, w := range want {
		v := verdicts[i]
		reason := events.Reason("")
		if v.Rejection != nil {
			reason = v.Rejection.Reason
		}
		if v.Outcome != w.outcome || reason != w.reason {
			t.Errorf("event %d: outcome %d reason %q, want %d %q", i, v.Outcome, reason, w.outcome, w.reason)
		}
		if (v.Outcome == OutcomeRejected) == (v.Hash != "") {
			t.Errorf("event %d: outcome %d with hash %q", i, v.Outcome, v.Hash)
		}
	}
	if len(seen.m) != 2 {
		t.Fatalf("Screen remembered ids: %v", seen.m)
	}
}

func TestScreenStoreDown(t *testing.T) {
	down := errors.New("redis down")
	svc, _ := newService(t, &memSeen{lookupErr: down}, &memHistory{})
	_, err := svc.Screen(context.Background(), []events.Event{{Order: placed("a", "A", 1)}}, nil)
	if !errors.Is(err, down) {
		t.Fatalf("Screen error = %v, want the store's", err)
	}
}

func TestIngestRemembersOnlyAfterOutputs(t *testing.T) {
	ctx := context.Background()
	seen := &memSeen{m: map[string]Mark{}}
	hist := &memHistory{}
	svc, tel := newService(t, seen, hist)
	batch := []Raw{
		raw(t, topics.Orders, 10, placed("p1", "A", 5)),
		raw(t, topics.Orders, 11, line("c1", "A", 2, ordersv1.OrderLineType_ORDER_LINE_TYPE_CANCELLED)),
		raw(t, topics.Orders, 12, placed("post", "POST", 1)),
		raw(t, topics.Orders, 13, placed("p1", "A", 5)), // exact duplicate
		raw(t, topics.Orders, 14, placed("zero", "A", 0)),
		{Source: events.Source{Topic: topics.Orders, Offset: 15}, Value: []byte{0xff, 0xff, 0xff}},
	}

	failing := &recOutputs{err: errors.New("broker down")}
	if _, err := svc.Ingest(ctx, batch, failing); err == nil {
		t.Fatal("Ingest succeeded although publishing failed")
	}
	if len(seen.m) != 0 {
		t.Fatalf("ids remembered before the outputs were acknowledged: %v", seen.m)
	}

	out := &recOutputs{}
	sum, err := svc.Ingest(ctx, batch, out)
	if err != nil {
		t.Fatal(err)
	}
	if sum != (Summary{Accepted: 3, Duplicates: 1, Rejected: 2, NonDemand: 1}) {
		t.Fatalf("summary %+v", sum)
	}
	if len(out.demand) != 2 || out.demand[0].GetDemand().GetQuantity() != 5 || out.demand[1].GetDemand().GetQuantity() != -2 ||
		out.demand[0].GetSource().GetOffset() != 10 || out.demand[1].GetSource().GetOffset() != 11 {
		t.Fatalf("demand %v", out.demand)
	}
	if len(out.rejected) != 2 || out.rejected[0].Index != 4 || out.rejected[0].Reason != events.ReasonQuantityNotPositive ||
		out.rejected[1].Index != 5 || out.rejected[1].Reason != events.ReasonUndecodable {
		t.Fatalf("rejected %+v", out.rejected)
	}
	// Both attempts wrote the same rows: the table replaces them by event id.
	if len(hist.writes) != 2 || len(hist.writes[1].Orders) != 3 || hist.writes[1].Orders[2].IsDemand {
		t.Fatalf("history writes %+v", hist.writes)
	}
	if len(seen.m) != 3 || seen.m["p1"].Hash == "" || seen.m["c1"].Hash == "" || seen.m["post"].Hash == "" ||
		seen.m["p1"].Pos != PosTag(batch[0].Source) {
		t.Fatalf("seen %v", seen.m)
	}

	// Redelivered: every valid event is a duplicate now, only the rejects
	// go out again.
	again := &recOutputs{}
	sum, err = svc.Ingest(ctx, batch, again)
	if err != nil {
		t.Fatal(err)
	}
	if sum != (Summary{Duplicates: 4, Rejected: 2}) || len(again.demand) != 0 || len(hist.writes) != 2 {
		t.Fatalf("replay: summary %+v, demand %v, history writes %d", sum, again.demand, len(hist.writes))
	}

	for _, m := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"stockcast_ingest_accepted_total", map[string]string{"topic": topics.Orders}, 3},
		{"stockcast_ingest_duplicates_total", map[string]string{"topic": topics.Orders}, 5},
		{"stockcast_ingest_non_demand_total", nil, 1},
	} {
		got, err := telemetry.MetricValue(tel.Registry, m.name, m.labels)
		if err != nil || got != m.want {
			t.Errorf("%s%v = %v (%v), want %v", m.name, m.labels, got, err, m.want)
		}
	}
}

type recRaw struct {
	accepted []events.Event
	rejected []RejectedEvent
}

func (r *recRaw) PublishRaw(_ context.Context, accepted []events.Event, rejected []RejectedEvent) error {
	r.accepted, r.rejected = accepted, rejected
	return nil
}

func TestSubmit(t *testing.T) {
	known := placed("known", "A", 1)
	seen := &memSeen{m: map[string]Mark{"known": {Hash: hashOf(t, known)}}}
	svc, _ := newService(t, seen, &memHistory{})
	out := &recRaw{}
	verdicts, err := svc.Submit(context.Background(), []events.Event{
		{Order: placed("n1", "A", 1)},
		{Order: known},
		{Order: placed("n2", "A", -1)},
	}, out)
	if err != nil {
		t.Fatal(err)
	}
	if verdicts[0].Outcome != OutcomeAccepted || verdicts[1].Outcome != OutcomeDuplicate || verdicts[2].Outcome != OutcomeRejected {
		t.Fatalf("verdicts %+v", verdicts)
	}
	if len(out.accepted) != 1 || out.accepted[0].EventID() != "n1" ||
		len(out.rejected) != 1 || out.rejected[0].Index != 2 || out.rejected[0].Reason != events.ReasonQuantityNotPositive {
		t.Fatalf("published %+v / %+v", out.accepted, out.rejected)
	}
	if len(seen.m) != 1 {
		t.Fatalf("Submit remembered ids: %v", seen.m)
	}
}

// TestTransactionalRecordReadAgain: with Kafka transactions the marks are
// remembered before the batch commits, each with its record's position. A
// batch read again (its transaction did not commit: a crash, a lost
// partition) is ingested again whole, while the platform sending an event
// again (another position, even in the same batch) is still a duplicate,
// or a conflict if its content differs. Without the positions the second
// attempt would drop every event as a duplicate of its own aborted
// attempt, and they would be lost.
func TestTransactionalRecordReadAgain(t *testing.T) {
	ctx := context.Background()
	seen := &memSeen{m: map[string]Mark{}}
	hist := &memHistory{}
	svc, _ := newService(t, seen, hist)
	svc.Transactional(true)
	batch := []Raw{
		raw(t, topics.Orders, 10, placed("p1", "A", 5)),
		raw(t, topics.Orders, 11, placed("p2", "A", 1)),
		raw(t, topics.Orders, 12, placed("p1", "A", 5)), // the platform's duplicate in the batch
	}
	for attempt := range 2 { // the first attempt's transaction "aborts" after the handler
		out := &recOutputs{}
		sum, err := svc.Ingest(ctx, batch, out)
		if err != nil {
			t.Fatal(err)
		}
		if sum != (Summary{Accepted: 2, Duplicates: 1}) || len(out.demand) != 2 ||
			out.demand[0].GetEventId() != "p1" || out.demand[1].GetEventId() != "p2" {
			t.Fatalf("attempt %d: summary %+v, demand %v", attempt, sum, out.demand)
		}
	}
	if got := seen.m["p1"].Pos; got != PosTag(batch[0].Source) {
		t.Fatalf("p1 remembered at %d, want the tag of its first record %d", got, PosTag(batch[0].Source))
	}
	// After the commit: the platform sends p1 again, and p2 with other content.
	out := &recOutputs{}
	sum, err := svc.Ingest(ctx, []Raw{
		raw(t, topics.Orders, 40, placed("p1", "A", 5)),
		raw(t, topics.Orders, 41, placed("p2", "A", 7)),
	}, out)
	if err != nil {
		t.Fatal(err)
	}
	if sum != (Summary{Duplicates: 1, Rejected: 1}) || len(out.demand) != 0 ||
		len(out.rejected) != 1 || out.rejected[0].Reason != events.ReasonDuplicateConflict {
		t.Fatalf("re-sent: summary %+v, demand %v, rejected %+v", sum, out.demand, out.rejected)
	}
	// The same position on another topic or partition is another record.
	if PosTag(events.Source{Topic: topics.Orders, Offset: 10}) == PosTag(events.Source{Topic: topics.Inventory, Offset: 10}) ||
		PosTag(events.Source{Topic: topics.Orders, Offset: 10}) == PosTag(events.Source{Topic: topics.Orders, Partition: 1, Offset: 10}) {
		t.Fatal("position tags collide across topics or partitions")
	}

	// Without transactions the batch read again is dropped: its outputs
	// went out the first time.
	atLeastOnce, _ := newService(t, &memSeen{m: map[string]Mark{}}, &memHistory{})
	for attempt, want := range []Summary{{Accepted: 2, Duplicates: 1}, {Duplicates: 3}} {
		sum, err := atLeastOnce.Ingest(ctx, batch, &recOutputs{})
		if err != nil || sum != want {
			t.Fatalf("at least once, attempt %d: summary %+v (%v), want %+v", attempt, sum, err, want)
		}
	}
}
