// Package grpcapi serves stockcast.feature.v1.FeatureService from the
// feature store.
package grpcapi

import (
	"context"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	featurev1 "github.com/stockcast/stockcast/proto/stockcast/feature/v1"
	"github.com/stockcast/stockcast/services/feature/internal/features"
)

// Reader loads a series' state; found is false for an unknown series.
type Reader interface {
	Load(ctx context.Context, sku, location string) (st features.State, item features.Item, found bool, err error)
}

// Server implements featurev1.FeatureServiceServer.
type Server struct {
	featurev1.UnimplementedFeatureServiceServer
	store Reader
}

// New returns the server.
func New(store Reader) *Server { return &Server{store: store} }

// GetFeatures returns the current snapshot of a series, as of its latest
// day, and optionally its stored daily history.
func (s *Server) GetFeatures(ctx context.Context, req *featurev1.GetFeaturesRequest) (*featurev1.GetFeaturesResponse, error) {
	if req.GetSku() == "" || req.GetLocation() == "" {
		return nil, status.Error(codes.InvalidArgument, "sku and location are required")
	}
	st, item, found, err := s.store.Load(ctx, req.GetSku(), req.GetLocation())
	if err != nil {
		return nil, status.Errorf(codes.Unavailable, "load features: %v", err)
	}
	if !found {
		return nil, status.Errorf(codes.NotFound, "no features for series %s|%s", req.GetSku(), req.GetLocation())
	}
	resp := &featurev1.GetFeaturesResponse{
		Snapshot: features.Snapshot(req.GetSku(), req.GetLocation(), &st, item, st.Ring.End, nil, false),
	}
	if req.GetIncludeHistory() {
		resp.History = history(&st)
	}
	return resp, nil
}

// history lists the ring's days from the series' first event (or the ring
// start, if later) to its latest day.
func history(st *features.State) []*featurev1.DailyDemand {
	if !st.HasDays {
		return nil
	}
	r := &st.Ring
	from := max(r.Start(), st.Since)
	out := make([]*featurev1.DailyDemand, 0, int(r.End-from)+1)
	for d := from; d <= r.End; d++ {
		out = append(out, &featurev1.DailyDemand{Day: d.String(), Quantity: r.DemandOn(d), Stockout: r.StockoutOn(d)})
	}
	return out
}
