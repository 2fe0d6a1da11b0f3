package grpcapi

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/stockcast/stockcast/pkg/grpcx"
	"github.com/stockcast/stockcast/pkg/recovery"
	"github.com/stockcast/stockcast/pkg/telemetry"
	"github.com/stockcast/stockcast/pkg/testenv"
	featurev1 "github.com/stockcast/stockcast/proto/stockcast/feature/v1"
	"github.com/stockcast/stockcast/services/feature/internal/features"
	"github.com/stockcast/stockcast/services/feature/internal/store"
)

// serve runs srv over gRPC on a free loopback port with cfg's limits and
// returns a client of it.
func serve(t *testing.T, srv *Server, cfg grpcx.Config) featurev1.FeatureServiceClient {
	t.Helper()
	tel := telemetry.NewDiscard()
	cfg.Addr = "127.0.0.1:0"
	gs, err := grpcx.NewServer(cfg, tel)
	if err != nil {
		t.Fatal(err)
	}
	featurev1.RegisterFeatureServiceServer(gs.GRPC(), srv)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- gs.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("server: %v", err)
		}
	})
	testenv.Eventually(t, 10*time.Second, "server listening", func() bool { return gs.Addr() != "" })
	conn, err := grpcx.Dial(gs.Addr(), tel)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return featurev1.NewFeatureServiceClient(conn)
}

// TestGetHistories: over gRPC, with the store in redis-server, a
// GetHistories of many series returns, in request order, exactly the
// history GetFeatures with include_history returns for each (short and
// gapped series, stockouts, a series longer than the stored 400 days, a
// series asked for twice), and unknown series as not found; requests over
// MaxHistorySeries, without a sku or location, or larger than the server's
// -grpc.max-recv-bytes are refused, and a down Redis is Unavailable.
func TestGetHistories(t *testing.T) {
	ctx := context.Background()
	rdb := redis.NewClient(&redis.Options{Addr: testenv.Redis(t)})
	defer rdb.Close()
	s := store.NewRedis(rdb, store.Config{DedupTTL: time.Hour})
	if err := recovery.NewGuard(rdb, store.Service).Set(ctx, "test"); err != nil {
		t.Fatal(err)
	}
	day := features.Day(19996) // 2024-09-30
	var changes []features.Change
	add := func(loc string, d features.Day, kind features.Kind, q float64) {
		changes = append(changes, features.Change{EventID: fmt.Sprintf("%s-%d-%d", loc, d, len(changes)), SKU: "s", Location: loc,
			Day: d, At: d.Time().Add(time.Hour), Kind: kind, Quantity: q})
	}
	add("one", day, features.KindDemand, 3)
	for i := features.Day(0); i < 30; i += 7 { // gaps of 6 days, a stockout from the 20th to the 22nd
		add("gaps", day-30+i, features.KindDemand, float64(i)+0.5)
	}
	add("gaps", day-10, features.KindStockoutStarted, 0)
	add("gaps", day-8, features.KindStockoutEnded, 0)
	for i := features.Day(0); i < 600; i += 3 { // longer than the ring
		add("long", day-600+i, features.KindDemand, float64(i%11))
	}
	if _, err := s.Apply(ctx, changes); err != nil {
		t.Fatal(err)
	}
	api := serve(t, New(s), grpcx.Config{MaxRecvBytes: 64 << 10})

	locs := []string{"gaps", "unknown", "one", "long", "gaps"}
	req := &featurev1.GetHistoriesRequest{}
	for _, l := range locs {
		req.Series = append(req.Series, &featurev1.SeriesRef{Sku: "s", Location: l})
	}
	resp, err := api.GetHistories(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.GetHistories()) != len(locs) {
		t.Fatalf("%d histories, want %d", len(resp.GetHistories()), len(locs))
	}
	wantLen := map[string]int{"one": 1, "gaps": 29, "long": features.RingDays, "unknown": 0}
	for i, l := range locs {
		got := resp.GetHistories()[i]
		if got.GetSku() != "s" || got.GetLocation() != l || got.GetFound() != (l != "unknown") {
			t.Errorf("history %d: %s|%s found %v, want s|%s found %v", i, got.GetSku(), got.GetLocation(), got.GetFound(), l, l != "unknown")
		}
		if len(got.GetHistory()) != wantLen[l] {
			t.Errorf("%s: %d days, want %d", l, len(got.GetHistory()), wantLen[l])
		}
		single, err := api.GetFeatures(ctx, &featurev1.GetFeaturesRequest{Sku: "s", Location: l, IncludeHistory: true})
		if l == "unknown" {
			if status.Code(err) != codes.NotFound {
				t.Errorf("GetFeatures of the unknown series: %v, want NotFound", err)
			}
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if !proto.Equal(&featurev1.GetFeaturesResponse{History: single.GetHistory()}, &featurev1.GetFeaturesResponse{History: got.GetHistory()}) {
			t.Errorf("%s: GetHistories %v\nGetFeatures %v", l, got.GetHistory(), single.GetHistory())
		}
	}
	if h := resp.GetHistories()[0].GetHistory(); h[0].GetDay() != "2024-08-31" || h[0].GetQuantity() != 0.5 || h[20].GetDay() != "2024-09-20" ||
		!h[20].GetStockout() || h[21].GetQuantity() != 21.5 || !h[22].GetStockout() || h[23].GetStockout() {
		t.Errorf("gaps history %v", h)
	}

	refs := func(n int, sku string) *featurev1.GetHistoriesRequest {
		r := &featurev1.GetHistoriesRequest{}
		for i := range n {
			r.Series = append(r.Series, &featurev1.SeriesRef{Sku: sku, Location: fmt.Sprint(i)})
		}
		return r
	}
	down := redis.NewClient(&redis.Options{Addr: testenv.FreeAddr(t), MaxRetries: -1})
	defer down.Close()
	downAPI := serve(t, New(store.NewRedis(down, store.Config{DedupTTL: time.Hour})), grpcx.Config{})
	for _, tt := range []struct {
		name  string
		api   featurev1.FeatureServiceClient
		req   *featurev1.GetHistoriesRequest
		code  codes.Code
		found int
	}{
		{"none", api, &featurev1.GetHistoriesRequest{}, codes.OK, 0},
		{"at the series limit", api, refs(MaxHistorySeries, "s"), codes.OK, 0},
		{"over the series limit", api, refs(MaxHistorySeries+1, "s"), codes.InvalidArgument, 0},
		{"no sku", api, &featurev1.GetHistoriesRequest{Series: []*featurev1.SeriesRef{{Sku: "s", Location: "one"}, {Location: "one"}}}, codes.InvalidArgument, 0},
		{"no location", api, &featurev1.GetHistoriesRequest{Series: []*featurev1.SeriesRef{{Sku: "s"}}}, codes.InvalidArgument, 0},
		// 1,000 SKUs of 100 bytes: over the server's 64 KiB receive limit
		{"over max-recv-bytes", api, refs(MaxHistorySeries, strings.Repeat("x", 100)), codes.ResourceExhausted, 0},
		{"redis down", downAPI, refs(1, "s"), codes.Unavailable, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := tt.api.GetHistories(ctx, tt.req)
			if status.Code(err) != tt.code {
				t.Fatalf("code %s (%v), want %s", status.Code(err), err, tt.code)
			}
			if err == nil && len(resp.GetHistories()) != len(tt.req.GetSeries()) {
				t.Fatalf("%d histories, want %d", len(resp.GetHistories()), len(tt.req.GetSeries()))
			}
		})
	}
}
