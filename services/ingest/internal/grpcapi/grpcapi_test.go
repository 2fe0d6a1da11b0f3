package grpcapi

import (
	"context"
	"errors"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	ingestv1 "github.com/stockcast/stockcast/proto/stockcast/ingest/v1"
	ordersv1 "github.com/stockcast/stockcast/proto/stockcast/orders/v1"
	"github.com/stockcast/stockcast/services/ingest/internal/events"
	"github.com/stockcast/stockcast/services/ingest/internal/ingesting"
)

// fixedSubmitter returns canned verdicts or an error; the real Submit is
// tested in ingesting and end to end in app. This file tests the mapping.
type fixedSubmitter struct {
	verdicts []ingesting.Verdict
	err      error
	got      []events.Event
}

func (f *fixedSubmitter) Submit(_ context.Context, evs []events.Event, _ ingesting.RawOutputs) ([]ingesting.Verdict, error) {
	f.got = evs
	return f.verdicts, f.err
}

func TestPublishResultMapping(t *testing.T) {
	sub := &fixedSubmitter{verdicts: []ingesting.Verdict{
		{Outcome: ingesting.OutcomeAccepted},
		{Outcome: ingesting.OutcomeRejected, Event: events.Event{Order: &ordersv1.OrderLineEvent{EventId: "b"}},
			Rejection: &events.Rejection{Reason: events.ReasonQuantityNotPositive, Detail: "quantity 0 is not positive"}},
		{Outcome: ingesting.OutcomeDuplicate},
		{Outcome: ingesting.OutcomeRejected, Event: events.Event{Order: &ordersv1.OrderLineEvent{}},
			Rejection: &events.Rejection{Reason: events.ReasonMissingEventID, Detail: "event_id is empty"}},
	}}
	resp, err := NewServer(sub, nil).PublishOrderLines(context.Background(), &ingestv1.PublishOrderLinesRequest{
		Events: []*ordersv1.OrderLineEvent{{EventId: "a"}, {EventId: "b"}, {EventId: "c"}, nil},
	})
	if err != nil {
		t.Fatal(err)
	}
	res := resp.GetResult()
	if res.GetAccepted() != 1 || res.GetDuplicates() != 1 || len(res.GetRejected()) != 2 {
		t.Fatalf("result %v", res)
	}
	r0, r1 := res.GetRejected()[0], res.GetRejected()[1]
	if r0.GetIndex() != 1 || r0.GetEventId() != "b" || r0.GetReason() != "quantity_not_positive" || r0.GetDetail() == "" ||
		r1.GetIndex() != 3 || r1.GetReason() != "missing_event_id" {
		t.Fatalf("rejections %v", res.GetRejected())
	}
	// A nil event reaches the logic as an empty one, to be rejected there.
	if len(sub.got) != 4 || sub.got[3].Order == nil {
		t.Fatalf("submitted %v", sub.got)
	}
}

func TestPublishErrors(t *testing.T) {
	tooMany := make([]*ordersv1.OrderLineEvent, MaxEventsPerRequest+1)
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	tests := []struct {
		name string
		ctx  context.Context
		sub  *fixedSubmitter
		evs  []*ordersv1.OrderLineEvent
		want codes.Code
	}{
		{"store down", context.Background(), &fixedSubmitter{err: errors.New("redis: connection refused")}, []*ordersv1.OrderLineEvent{{}}, codes.Unavailable},
		{"caller gone", cancelled, &fixedSubmitter{err: context.Canceled}, []*ordersv1.OrderLineEvent{{}}, codes.Canceled},
		{"too many events", context.Background(), &fixedSubmitter{}, tooMany, codes.InvalidArgument},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewServer(tt.sub, nil).PublishOrderLines(tt.ctx, &ingestv1.PublishOrderLinesRequest{Events: tt.evs})
			if status.Code(err) != tt.want {
				t.Fatalf("error %v, want code %s", err, tt.want)
			}
		})
	}
	// An empty request is fine and does not reach the logic.
	sub := &fixedSubmitter{err: errors.New("must not be called")}
	resp, err := NewServer(sub, nil).PublishCatalogEvents(context.Background(), &ingestv1.PublishCatalogEventsRequest{})
	if err != nil || resp.GetResult().GetAccepted() != 0 {
		t.Fatalf("empty request: %v, %v", resp, err)
	}
}
