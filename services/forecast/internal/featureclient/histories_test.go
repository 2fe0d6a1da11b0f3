package featureclient

import (
	"context"
	"fmt"
	"reflect"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/stockcast/stockcast/pkg/forecasting"
	"github.com/stockcast/stockcast/pkg/grpcx"
	"github.com/stockcast/stockcast/pkg/telemetry"
	"github.com/stockcast/stockcast/pkg/testenv"
	featurev1 "github.com/stockcast/stockcast/proto/stockcast/feature/v1"
	"github.com/stockcast/stockcast/services/forecast/internal/scoring"
)

// manyServer serves GetHistories: series "SKU<n>|S1" has n days from
// 2026-01-01 with quantity n; SKUs starting with "X" are not stored. It
// records the size of each request.
type manyServer struct {
	historyServer
	sizes []int
}

func (m *manyServer) GetHistories(_ context.Context, req *featurev1.GetHistoriesRequest) (*featurev1.GetHistoriesResponse, error) {
	m.sizes = append(m.sizes, len(req.GetSeries()))
	resp := &featurev1.GetHistoriesResponse{}
	for _, r := range req.GetSeries() {
		h := &featurev1.SeriesHistory{Sku: r.GetSku(), Location: r.GetLocation()}
		var n int
		if _, err := fmt.Sscanf(r.GetSku(), "SKU%d", &n); err == nil {
			h.Found = true
			for d := range n {
				h.History = append(h.History, &featurev1.DailyDemand{Day: (day("2026-01-01") + forecasting.Day(d)).String(), Quantity: float64(n)})
			}
		}
		resp.Histories = append(resp.Histories, h)
	}
	return resp, nil
}

func day(s string) forecasting.Day {
	d, err := forecasting.ParseDay(s)
	if err != nil {
		panic(err)
	}
	return d
}

func serveFeature(t *testing.T, register func(*grpcx.Server)) *Client {
	t.Helper()
	srv, err := grpcx.NewServer(grpcx.Config{Addr: "127.0.0.1:0"}, telemetry.NewDiscard())
	if err != nil {
		t.Fatal(err)
	}
	register(srv)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("server: %v", err)
		}
	})
	testenv.Eventually(t, 10*time.Second, "server listening", func() bool { return srv.Addr() != "" })
	conn, err := Dial(srv.Addr(), grpcx.ClientTLSConfig{}, telemetry.NewDiscard())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return New(featurev1.NewFeatureServiceClient(conn))
}

// TestHistories: Histories asks for at most MaxHistoriesPerCall series a
// call and returns each series' history in order (nil if not stored); a
// feature service without GetHistories is asked one series at a time.
func TestHistories(t *testing.T) {
	ctx := context.Background()
	many := &manyServer{}
	c := serveFeature(t, func(s *grpcx.Server) { featurev1.RegisterFeatureServiceServer(s.GRPC(), many) })
	var refs []scoring.SeriesRef
	for i := range 600 {
		sku := fmt.Sprint("SKU", i%7)
		if i%5 == 0 {
			sku = fmt.Sprint("X", i)
		}
		refs = append(refs, scoring.SeriesRef{SKU: sku, Location: "S1"})
	}
	got, err := c.Histories(ctx, refs)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(many.sizes, []int{256, 256, 88}) {
		t.Errorf("request sizes %v, want [256 256 88]", many.sizes)
	}
	if len(got) != len(refs) {
		t.Fatalf("%d histories, want %d", len(got), len(refs))
	}
	for i, r := range refs {
		var n int
		if _, err := fmt.Sscanf(r.SKU, "SKU%d", &n); err != nil {
			if got[i] != nil {
				t.Fatalf("%s: %v, want nil (not stored)", r.SKU, got[i])
			}
			continue
		}
		want := make([]scoring.DailyDemand, n)
		for d := range want {
			want[d] = scoring.DailyDemand{Day: day("2026-01-01") + forecasting.Day(d), Quantity: float64(n)}
		}
		if !reflect.DeepEqual(got[i], want) {
			t.Fatalf("%s: %v, want %v", r.SKU, got[i], want)
		}
	}

	// An older feature service: GetFeatures only.
	old := serveFeature(t, func(s *grpcx.Server) { featurev1.RegisterFeatureServiceServer(s.GRPC(), historyServer{}) })
	got, err = old.Histories(ctx, []scoring.SeriesRef{{SKU: "SKU1", Location: "S1"}, {SKU: "SKU2", Location: "S1"}})
	if err != nil {
		t.Fatal(err)
	}
	want := [][]scoring.DailyDemand{{{Day: day("2026-01-01"), Quantity: 3}, {Day: day("2026-01-02"), Stockout: true}}, nil}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("from GetFeatures: %v, want %v", got, want)
	}
	if _, err := old.api.GetHistories(ctx, &featurev1.GetHistoriesRequest{}); status.Code(err) != codes.Unimplemented {
		t.Fatalf("the old server's GetHistories: %v, want Unimplemented", err)
	}
}
