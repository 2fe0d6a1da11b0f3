// Package grpcapi serves ingestv1.IngestService: it maps requests to the
// ingest logic and its results and errors to the response and gRPC codes.
package grpcapi

import (
	"context"
	"errors"
	"fmt"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	catalogv1 "github.com/stockcast/stockcast/proto/stockcast/catalog/v1"
	ingestv1 "github.com/stockcast/stockcast/proto/stockcast/ingest/v1"
	inventoryv1 "github.com/stockcast/stockcast/proto/stockcast/inventory/v1"
	ordersv1 "github.com/stockcast/stockcast/proto/stockcast/orders/v1"
	"github.com/stockcast/stockcast/services/ingest/internal/events"
	"github.com/stockcast/stockcast/services/ingest/internal/ingesting"
)

// MaxEventsPerRequest bounds one request, so that one call is one
// reasonably sized produce.
const MaxEventsPerRequest = 10_000

// Submitter screens pushed events and publishes them (*ingesting.Service).
type Submitter interface {
	Submit(ctx context.Context, evs []events.Event, out ingesting.RawOutputs) ([]ingesting.Verdict, error)
}

// Server implements ingestv1.IngestServiceServer.
type Server struct {
	ingestv1.UnimplementedIngestServiceServer
	sub Submitter
	out ingesting.RawOutputs
}

var _ ingestv1.IngestServiceServer = (*Server)(nil)

// NewServer returns a Server submitting through sub and publishing to out.
func NewServer(sub Submitter, out ingesting.RawOutputs) *Server { return &Server{sub: sub, out: out} }

// PublishOrderLines validates the order lines and produces the valid ones
// to orders.v1 before it returns.
func (s *Server) PublishOrderLines(ctx context.Context, req *ingestv1.PublishOrderLinesRequest) (*ingestv1.PublishOrderLinesResponse, error) {
	evs := make([]events.Event, len(req.GetEvents()))
	for i, e := range req.GetEvents() {
		if e == nil { // only possible in-process; treat as an empty event
			e = &ordersv1.OrderLineEvent{}
		}
		evs[i] = events.Event{Order: e}
	}
	res, err := s.publish(ctx, evs)
	if err != nil {
		return nil, err
	}
	return &ingestv1.PublishOrderLinesResponse{Result: res}, nil
}

// PublishInventoryEvents validates the stock movements and produces the
// valid ones to inventory.v1 before it returns.
func (s *Server) PublishInventoryEvents(ctx context.Context, req *ingestv1.PublishInventoryEventsRequest) (*ingestv1.PublishInventoryEventsResponse, error) {
	evs := make([]events.Event, len(req.GetEvents()))
	for i, e := range req.GetEvents() {
		if e == nil {
			e = &inventoryv1.InventoryEvent{}
		}
		evs[i] = events.Event{Inventory: e}
	}
	res, err := s.publish(ctx, evs)
	if err != nil {
		return nil, err
	}
	return &ingestv1.PublishInventoryEventsResponse{Result: res}, nil
}

// PublishCatalogEvents validates the item, price and promotion events and
// produces the valid ones to catalog.v1 before it returns.
func (s *Server) PublishCatalogEvents(ctx context.Context, req *ingestv1.PublishCatalogEventsRequest) (*ingestv1.PublishCatalogEventsResponse, error) {
	evs := make([]events.Event, len(req.GetEvents()))
	for i, e := range req.GetEvents() {
		if e == nil {
			e = &catalogv1.CatalogEvent{}
		}
		evs[i] = events.Event{Catalog: e}
	}
	res, err := s.publish(ctx, evs)
	if err != nil {
		return nil, err
	}
	return &ingestv1.PublishCatalogEventsResponse{Result: res}, nil
}

func (s *Server) publish(ctx context.Context, evs []events.Event) (*ingestv1.PublishResult, error) {
	if len(evs) > MaxEventsPerRequest {
		return nil, status.Errorf(codes.InvalidArgument, "%d events in one request, at most %d", len(evs), MaxEventsPerRequest)
	}
	res := &ingestv1.PublishResult{}
	if len(evs) == 0 {
		return res, nil
	}
	verdicts, err := s.sub.Submit(ctx, evs, s.out)
	if err != nil {
		return nil, toStatus(ctx, err)
	}
	for i, v := range verdicts {
		switch v.Outcome {
		case ingesting.OutcomeAccepted:
			res.Accepted++
		case ingesting.OutcomeDuplicate:
			res.Duplicates++
		case ingesting.OutcomeRejected:
			res.Rejected = append(res.Rejected, &ingestv1.Rejection{
				Index: int32(i), EventId: v.Event.EventID(), Reason: string(v.Rejection.Reason), Detail: v.Rejection.Detail,
			})
		}
	}
	return res, nil
}

// toStatus maps a failure to publish: the caller's own cancellation or
// deadline as such, anything else (store or broker down) as Unavailable,
// which tells the client to retry the whole request; retrying is safe, the
// events are de-duplicated by id.
func toStatus(ctx context.Context, err error) error {
	if ctxErr := ctx.Err(); ctxErr != nil {
		return status.FromContextError(ctxErr).Err()
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return status.FromContextError(err).Err()
	}
	return status.Error(codes.Unavailable, fmt.Sprintf("publish events: %v", err))
}
