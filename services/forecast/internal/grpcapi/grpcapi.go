// Package grpcapi serves stockcast.forecast.v1.ForecastService.
package grpcapi

import (
	"context"
	"errors"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/stockcast/stockcast/pkg/topics"
	forecastv1 "github.com/stockcast/stockcast/proto/stockcast/forecast/v1"
	"github.com/stockcast/stockcast/services/forecast/internal/scoring"
)

// ErrNotFound is what Archive returns for a series it has no forecast of.
var ErrNotFound = errors.New("no forecast")

// Memory holds the latest forecasts of the series in memory.
type Memory interface {
	Latest(seriesKey string) (*scoring.Result, bool)
}

// Archive holds every published forecast (the ClickHouse forecast log).
type Archive interface {
	Latest(ctx context.Context, seriesKey string) (*scoring.Result, error)
}

// Server implements ForecastService: the latest forecast from memory, else
// from the archive, else NotFound.
type Server struct {
	forecastv1.UnimplementedForecastServiceServer
	memory  Memory
	archive Archive
}

// New returns the server.
func New(memory Memory, archive Archive) *Server {
	return &Server{memory: memory, archive: archive}
}

var _ forecastv1.ForecastServiceServer = (*Server)(nil)

// GetForecast returns the latest forecast of a series.
func (s *Server) GetForecast(ctx context.Context, req *forecastv1.GetForecastRequest) (*forecastv1.GetForecastResponse, error) {
	res, err := s.latest(ctx, req.GetSku(), req.GetLocation())
	if err != nil {
		return nil, err
	}
	return &forecastv1.GetForecastResponse{Forecast: res.Event}, nil
}

// Explain returns the latest forecast of a series and its components.
func (s *Server) Explain(ctx context.Context, req *forecastv1.ExplainRequest) (*forecastv1.ExplainResponse, error) {
	res, err := s.latest(ctx, req.GetSku(), req.GetLocation())
	if err != nil {
		return nil, err
	}
	out := &forecastv1.ExplainResponse{Forecast: res.Event}
	for _, c := range res.Components {
		out.Components = append(out.Components, &forecastv1.Component{Name: c.Name, Value: c.Value, Detail: c.Detail})
	}
	return out, nil
}

func (s *Server) latest(ctx context.Context, sku, location string) (*scoring.Result, error) {
	if strings.TrimSpace(sku) == "" || strings.TrimSpace(location) == "" {
		return nil, status.Error(codes.InvalidArgument, "sku and location are required")
	}
	key := topics.SeriesKey(sku, location)
	if res, ok := s.memory.Latest(key); ok {
		return res, nil
	}
	res, err := s.archive.Latest(ctx, key)
	switch {
	case errors.Is(err, ErrNotFound):
		return nil, status.Errorf(codes.NotFound, "no forecast of series %s", key)
	case err != nil:
		return nil, status.Errorf(codes.Unavailable, "read forecast of %s: %v", key, err)
	}
	return res, nil
}
