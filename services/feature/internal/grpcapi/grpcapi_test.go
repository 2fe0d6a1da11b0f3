package grpcapi

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/stockcast/stockcast/pkg/recovery"
	"github.com/stockcast/stockcast/pkg/testenv"
	featurev1 "github.com/stockcast/stockcast/proto/stockcast/feature/v1"
	"github.com/stockcast/stockcast/services/feature/internal/features"
	"github.com/stockcast/stockcast/services/feature/internal/store"
)

func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }

func TestGetFeatures(t *testing.T) {
	ctx := context.Background()
	rdb := redis.NewClient(&redis.Options{Addr: testenv.Redis(t)})
	defer rdb.Close()
	s := store.NewRedis(rdb, store.Config{DedupTTL: time.Hour})
	if err := recovery.NewGuard(rdb, store.Service).Set(ctx, "test"); err != nil { // state complete, as after a start
		t.Fatal(err)
	}
	day := features.Day(19996) // 2024-09-30
	if _, err := s.Apply(ctx, []features.Change{
		{EventID: "a", SKU: "s", Location: "l", Day: day - 1, At: (day - 1).Time(), Kind: features.KindStockoutStarted},
		{EventID: "b", SKU: "s", Location: "l", Day: day, At: day.Time(), Kind: features.KindDemand, Quantity: 2},
	}); err != nil {
		t.Fatal(err)
	}
	down := redis.NewClient(&redis.Options{Addr: testenv.FreeAddr(t), MaxRetries: -1})
	defer down.Close()

	tests := []struct {
		name    string
		srv     *Server
		req     *featurev1.GetFeaturesRequest
		code    codes.Code
		history []string
	}{
		{name: "series with history", srv: New(s), req: &featurev1.GetFeaturesRequest{Sku: "s", Location: "l", IncludeHistory: true},
			code: codes.OK, history: []string{"2024-09-29 0 true", "2024-09-30 2 true"}},
		{name: "without history", srv: New(s), req: &featurev1.GetFeaturesRequest{Sku: "s", Location: "l"}, code: codes.OK},
		{name: "unknown series", srv: New(s), req: &featurev1.GetFeaturesRequest{Sku: "s", Location: "x"}, code: codes.NotFound},
		{name: "no sku", srv: New(s), req: &featurev1.GetFeaturesRequest{Location: "l"}, code: codes.InvalidArgument},
		{name: "no location", srv: New(s), req: &featurev1.GetFeaturesRequest{Sku: "s"}, code: codes.InvalidArgument},
		{name: "redis down", srv: New(store.NewRedis(down, store.Config{DedupTTL: time.Hour})),
			req: &featurev1.GetFeaturesRequest{Sku: "s", Location: "l"}, code: codes.Unavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := tt.srv.GetFeatures(ctx, tt.req)
			if status.Code(err) != tt.code {
				t.Fatalf("code %s (%v), want %s", status.Code(err), err, tt.code)
			}
			if err != nil {
				return
			}
			if s := resp.GetSnapshot(); s.GetSeriesKey() != "s|l" || s.GetAsOfDay() != "2024-09-30" || s.GetEventId() != "b" ||
				s.GetSum_7() != 2 || !s.GetStockout() || s.GetCause() != nil {
				t.Errorf("snapshot %v", s)
			}
			var got []string
			for _, d := range resp.GetHistory() {
				got = append(got, fmt.Sprint(d.GetDay(), " ", d.GetQuantity(), " ", d.GetStockout()))
			}
			if len(got) != len(tt.history) {
				t.Fatalf("history %v, want %v", got, tt.history)
			}
			for i := range got {
				if got[i] != tt.history[i] {
					t.Fatalf("history %v, want %v", got, tt.history)
				}
			}
		})
	}
}
