package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/stockcast/stockcast/internal/stack"
	"github.com/stockcast/stockcast/internal/stack/stacktest"
	"github.com/stockcast/stockcast/pkg/chx"
	"github.com/stockcast/stockcast/pkg/forecasting"
	"github.com/stockcast/stockcast/pkg/modelregistry"
	"github.com/stockcast/stockcast/pkg/testenv"
	forecastv1 "github.com/stockcast/stockcast/proto/stockcast/forecast/v1"
	ingestv1 "github.com/stockcast/stockcast/proto/stockcast/ingest/v1"
	ordersv1 "github.com/stockcast/stockcast/proto/stockcast/orders/v1"
)

// TestDemoTraining runs the demo's training on the real stack (the four
// service processes, redis-server, clickhouse-server, the embedded
// broker): 140 days of order lines of three series go in through ingest's
// gRPC API; the training waits until the history passes its day, trains
// on the days before it, and records the model as the champion in the
// registry; the forecast service loads it, and the next forecast of a
// series carries its version. A training day the history never reaches
// ends with errHistoryShort once the replay is over.
func TestDemoTraining(t *testing.T) {
	bin := stacktest.BuildServices(t)
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	st, err := stack.Start(ctx, stack.Config{Dir: dir, BinDir: bin, Partitions: 2,
		Logger:       slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn})),
		ServiceFlags: map[string][]string{stack.Forecast: {"-model.poll-interval=1s"}}})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := st.Stop(); err != nil {
			t.Error(err)
		}
	}()

	conn, err := grpc.NewClient(st.GRPC(stack.Ingest), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ingest := ingestv1.NewIngestServiceClient(conn)
	const days = 140
	start := forecasting.DayOf(time.Now()) - days - 1 // the last day is two days ago
	order := func(sku string, day, n int, q float64) *ordersv1.OrderLineEvent {
		return &ordersv1.OrderLineEvent{EventId: fmt.Sprintf("o-%s-%d-%d", sku, day, n),
			OccurredAt: timestamppb.New(start.Time().Add(time.Duration(day)*24*time.Hour + 10*time.Hour + time.Duration(n)*time.Minute)),
			Type:       ordersv1.OrderLineType_ORDER_LINE_TYPE_PLACED, OrderId: fmt.Sprintf("%s-%d-%d", sku, day, n), LineNumber: 1,
			Sku: sku, Location: "S1", Quantity: q, UnitPrice: 3, Currency: "EUR"}
	}
	var orders []*ordersv1.OrderLineEvent
	for d := range days {
		for s, sku := range []string{"SA", "SB", "SC"} {
			orders = append(orders, order(sku, d, 0, float64((s+1)*(1+d%7%3)+d%5)))
		}
	}
	resp, err := ingest.PublishOrderLines(ctx, &ingestv1.PublishOrderLinesRequest{Events: orders})
	if err != nil || len(resp.GetResult().GetRejected()) > 0 {
		t.Fatalf("publish orders: %v %v", err, resp.GetResult().GetRejected())
	}

	// the training day: the history passes it (by more than a day)
	at := start + 120
	tr := demoTraining{at: at.String(), poll: 200 * time.Millisecond, timeout: time.Minute,
		extra: []string{"-rounds", "20", "-max-depth", "3"}}
	logPath := filepath.Join(dir, "train.log")
	res, err := tr.run(ctx, st, make(chan struct{}), filepath.Join(dir, "models"), logPath)
	if err != nil {
		t.Fatalf("%v\n%s", err, res.Output)
	}
	t.Logf("trained %s in %v, loaded %v after its promotion\n%s", res.Version, res.Took, res.LoadedIn, res.Output)
	if res.Status != modelregistry.StatusChampion || res.To != (at-1).String() || res.LoadedIn <= 0 {
		t.Fatalf("result %+v: want a champion trained up to %s and loaded", res, at-1)
	}
	if want := fmt.Sprintf("clickhouse stockcast: 3 series x 120 days from %s", start); !strings.Contains(res.Output, want) {
		t.Errorf("the training should read %q:\n%s", want, res.Output)
	}
	var printed strings.Builder
	res.print(&printed, logPath)
	if !strings.Contains(printed.String(), "model: "+res.Version+" trained on the history up to "+(at-1).String()) ||
		!strings.Contains(printed.String(), "the forecast service loaded "+res.Version) {
		t.Errorf("printed:\n%s", printed.String())
	}

	// the registry's row
	ch, err := chx.Open(ctx, st.ClickHouse())
	if err != nil {
		t.Fatal(err)
	}
	defer ch.Close()
	champ, ok, err := modelregistry.New(ch).Champion(ctx)
	if err != nil || !ok || champ.Version != res.Version || champ.DataSet != "clickhouse" ||
		champ.Artefact != filepath.Join(dir, "models", res.Version+".json") {
		t.Fatalf("registry champion %+v (%v, %v), want %s at %s", champ, ok, err, res.Version, filepath.Join(dir, "models"))
	}

	// the forecast service scores with it: a new order line's forecast
	// carries its version
	if _, err := ingest.PublishOrderLines(ctx, &ingestv1.PublishOrderLinesRequest{Events: []*ordersv1.OrderLineEvent{order("SA", days, 0, 4)}}); err != nil {
		t.Fatal(err)
	}
	fconn, err := grpc.NewClient(st.GRPC(stack.Forecast), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer fconn.Close()
	forecasts := forecastv1.NewForecastServiceClient(fconn)
	testenv.Eventually(t, 60*time.Second, "a forecast of SA|S1 with "+res.Version, func() bool {
		r, err := forecasts.GetForecast(ctx, &forecastv1.GetForecastRequest{Sku: "SA", Location: "S1"})
		return err == nil && r.GetForecast().GetGlobal().GetVersion() == res.Version
	})
	if n, err := modelLoads(ctx, st); err != nil || n != 1 {
		t.Errorf("model loads: %d (%v), want 1", n, err)
	}

	// after the replay: trained again on the whole history (through the
	// SA line of day 140, yesterday) and compared with the champion on
	// the same days
	again, err := tr.train(ctx, st, "", filepath.Join(dir, "models"), filepath.Join(dir, "retrain.log"))
	if err != nil {
		t.Fatalf("%v\n%s", err, again.Output)
	}
	t.Logf("retrained %s: %s\n%s", again.Version, again.Verdict, again.Output)
	if again.To != (start+days).String() || again.Version == res.Version || !strings.HasPrefix(again.Verdict, "champion WRMSSE ") {
		t.Fatalf("retrained %+v: want trained through %s, another version, compared with the champion", again, start+days)
	}
	m2, ok, err := modelregistry.New(ch).Get(ctx, again.Version)
	var champOnNewDays, newWRMSSE float64
	if _, err := fmt.Sscanf(again.Verdict, "champion WRMSSE %f, new %f:", &champOnNewDays, &newWRMSSE); err != nil {
		t.Fatalf("verdict %q: %v", again.Verdict, err)
	}
	// the champion's WRMSSE on the new held-out days, as printed (4 places)
	if err != nil || !ok || m2.ChampionVersion != res.Version || math.Abs(m2.ChampionWRMSSE-champOnNewDays) > 5e-5 ||
		math.Abs(m2.WRMSSE-newWRMSSE) > 5e-5 {
		t.Fatalf("registry row of the retrained model %+v (%v): want compared with %s at %v", m2, err, res.Version, champOnNewDays)
	}
	now, _, err := modelregistry.New(ch).Champion(ctx)
	switch promoted := strings.Contains(again.Verdict, "promote "+again.Version); {
	case err != nil:
		t.Fatal(err)
	case promoted && (now.Version != again.Version || again.Status != modelregistry.StatusChampion || again.LoadedIn <= 0):
		t.Errorf("promoted, but the champion is %s, status %s, loaded after %v", now.Version, again.Status, again.LoadedIn)
	case !promoted && (now.Version != res.Version || again.Status != modelregistry.StatusChallenger || again.LoadedIn != 0):
		t.Errorf("not promoted, but the champion is %s, status %s, loaded after %v", now.Version, again.Status, again.LoadedIn)
	}

	// a day the history never reaches, after the replay: not trained
	replayed := make(chan struct{})
	close(replayed)
	late := demoTraining{at: (start + days + 5).String(), poll: 200 * time.Millisecond, timeout: time.Minute}
	if _, err := late.run(ctx, st, replayed, filepath.Join(dir, "models"), logPath); !errors.Is(err, errHistoryShort) {
		t.Errorf("training after the history: %v, want errHistoryShort", err)
	}
}
