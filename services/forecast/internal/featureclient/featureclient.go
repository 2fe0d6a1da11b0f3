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

var _ scoring.HistorySource = (*Client)(nil)

// History returns the stored daily history of a series, oldest first.
func (c *Client) History(ctx context.Context, sku, location string) ([]scoring.DailyDemand, error) {
	resp, err := c.api.GetFeatures(ctx, &featurev1.GetFeaturesRequest{Sku: sku, Location: location, IncludeHistory: true})
	if status.Code(err) == codes.NotFound {
		return nil, nil // a series the feature service has not stored yet
	}
	if err != nil {
		return nil, fmt.Errorf("get features of %s|%s: %w", sku, location, err)
	}
	out := make([]scoring.DailyDemand, 0, len(resp.GetHistory()))
	for _, h := range resp.GetHistory() {
		day, err := forecasting.ParseDay(h.GetDay())
		if err != nil {
			return nil, fmt.Errorf("history of %s|%s: %w", sku, location, err)
		}
		out = append(out, scoring.DailyDemand{Day: day, Quantity: h.GetQuantity(), Stockout: h.GetStockout()})
	}
	return out, nil
}
