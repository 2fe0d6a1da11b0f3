// Package featureclient reads series histories from the feature service.
package featureclient

import (
	"context"
	"fmt"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/stockcast/stockcast/pkg/forecasting"
	"github.com/stockcast/stockcast/pkg/grpcx"
	"github.com/stockcast/stockcast/pkg/telemetry"
	featurev1 "github.com/stockcast/stockcast/proto/stockcast/feature/v1"
	"github.com/stockcast/stockcast/services/forecast/internal/scoring"
)

// Dial connects to the feature service at addr, over TLS when tlsCfg sets
// any TLS option (-feature.tls-ca, -feature.tls-cert, ...), else plaintext,
// sending the bearer token of -feature.token-file / STOCKCAST_FEATURE_TOKEN.
func Dial(addr string, tlsCfg grpcx.ClientTLSConfig, tel *telemetry.Telemetry) (*grpc.ClientConn, error) {
	opts, err := grpcx.ClientOptions(tlsCfg)
	if err != nil {
		return nil, fmt.Errorf("feature service client options: %w", err)
	}
	return grpcx.Dial(addr, tel, opts...)
}

// Client adapts FeatureService.GetFeatures to scoring.HistorySource.
type Client struct {
	api featurev1.FeatureServiceClient
}

// New returns a client over a FeatureService connection.
func New(api featurev1.FeatureServiceClient) *Client { return &Client{api: api} }

var _ scoring.HistoriesSource = (*Client)(nil)

// MaxHistoriesPerCall bounds the series of one GetHistories call: 256
// histories of up to 400 days are about 2.6 MB, within gRPC's default
// 4 MiB receive limit (and the feature service's 1,000 series a request).
const MaxHistoriesPerCall = 256

// History returns the stored daily history of a series, oldest first.
func (c *Client) History(ctx context.Context, sku, location string) ([]scoring.DailyDemand, error) {
	resp, err := c.api.GetFeatures(ctx, &featurev1.GetFeaturesRequest{Sku: sku, Location: location, IncludeHistory: true})
	if status.Code(err) == codes.NotFound {
		return nil, nil // a series the feature service has not stored yet
	}
	if err != nil {
		return nil, fmt.Errorf("get features of %s|%s: %w", sku, location, err)
	}
	return decodeHistory(sku, location, resp.GetHistory())
}

// Histories returns the stored daily histories of many series, oldest
// first, in series order (nil for a series the feature service has not
// stored), in calls of at most MaxHistoriesPerCall series. A feature
// service without GetHistories (an older version) is asked one series at a
// time.
func (c *Client) Histories(ctx context.Context, series []scoring.SeriesRef) ([][]scoring.DailyDemand, error) {
	out := make([][]scoring.DailyDemand, 0, len(series))
	for len(out) < len(series) {
		chunk := series[len(out):min(len(out)+MaxHistoriesPerCall, len(series))]
		req := &featurev1.GetHistoriesRequest{Series: make([]*featurev1.SeriesRef, len(chunk))}
		for i, r := range chunk {
			req.Series[i] = &featurev1.SeriesRef{Sku: r.SKU, Location: r.Location}
		}
		resp, err := c.api.GetHistories(ctx, req)
		if status.Code(err) == codes.Unimplemented {
			for _, r := range chunk {
				h, err := c.History(ctx, r.SKU, r.Location)
				if err != nil {
					return nil, err
				}
				out = append(out, h)
			}
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("get histories of %d series: %w", len(chunk), err)
		}
		if got := len(resp.GetHistories()); got != len(chunk) {
			return nil, fmt.Errorf("get histories of %d series: %d in the response", len(chunk), got)
		}
		for i, h := range resp.GetHistories() {
			r := chunk[i]
			if h.GetSku() != r.SKU || h.GetLocation() != r.Location {
				return nil, fmt.Errorf("get histories: series %d is %s|%s, want %s|%s", i, h.GetSku(), h.GetLocation(), r.SKU, r.Location)
			}
			if !h.GetFound() {
				out = append(out, nil)
				continue
			}
			hist, err := decodeHistory(r.SKU, r.Location, h.GetHistory())
			if err != nil {
				return nil, err
			}
			out = append(out, hist)
		}
	}
	return out, nil
}

func decodeHistory(sku, location string, days []*featurev1.DailyDemand) ([]scoring.DailyDemand, error) {
	out := make([]scoring.DailyDemand, 0, len(days))
	for _, h := range days {
		day, err := forecasting.ParseDay(h.GetDay())
		if err != nil {
			return nil, fmt.Errorf("history of %s|%s: %w", sku, location, err)
		}
		out = append(out, scoring.DailyDemand{Day: day, Quantity: h.GetQuantity(), Stockout: h.GetStockout()})
	}
	return out, nil
}
