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
// LoadStates loads many series' states ("sku|location") at once.
type Reader interface {
	Load(ctx context.Context, sku, location string) (st features.State, item features.Item, found bool, err error)
	LoadStates(ctx context.Context, series []string) (states []features.State, found []bool, err error)
}

// MaxHistorySeries bounds the series of one GetHistories request: with up
// to 400 days each (about 10 KB encoded), 1,000 series are about 10 MB, in
// -grpc.max-send-bytes' default (64 MiB). A client reading with gRPC's
// default receive limit (4 MiB) asks for fewer (the forecast service: 256).
const MaxHistorySeries = 1000

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

// GetHistories returns the stored daily histories of many series, in
// request order, read from Redis in one pipeline; a series Redis has none
// of comes back not found with no history.
func (s *Server) GetHistories(ctx context.Context, req *featurev1.GetHistoriesRequest) (*featurev1.GetHistoriesResponse, error) {
	refs := req.GetSeries()
	if len(refs) > MaxHistorySeries {
		return nil, status.Errorf(codes.InvalidArgument, "%d series requested: at most %d a request", len(refs), MaxHistorySeries)
	}
	keys := make([]string, len(refs))
	for i, r := range refs {
		if r.GetSku() == "" || r.GetLocation() == "" {
			return nil, status.Errorf(codes.InvalidArgument, "series %d: sku and location are required", i)
		}
		keys[i] = features.Change{SKU: r.GetSku(), Location: r.GetLocation()}.SeriesKey()
	}
	states, found, err := s.store.LoadStates(ctx, keys)
	if err != nil {
		return nil, status.Errorf(codes.Unavailable, "load features: %v", err)
	}
	resp := &featurev1.GetHistoriesResponse{Histories: make([]*featurev1.SeriesHistory, len(refs))}
	for i, r := range refs {
		h := &featurev1.SeriesHistory{Sku: r.GetSku(), Location: r.GetLocation(), Found: found[i]}
		if found[i] {
			h.History = history(&states[i])
		}
		resp.Histories[i] = h
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
