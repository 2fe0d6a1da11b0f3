package app

import (
	"context"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/stockcast/stockcast/pkg/chx"
	"github.com/stockcast/stockcast/pkg/modelregistry"
	"github.com/stockcast/stockcast/pkg/testenv"
	"github.com/stockcast/stockcast/pkg/topics"
	demandv1 "github.com/stockcast/stockcast/proto/stockcast/demand/v1"
	featurev1 "github.com/stockcast/stockcast/proto/stockcast/feature/v1"
	forecastv1 "github.com/stockcast/stockcast/proto/stockcast/forecast/v1"
)

// TestRestartKeepsReasons runs the same snapshots through the service
// twice, on fresh brokers and databases: once without a restart, once
// stopped and started again before the snapshot at restartAt (and, in one
// case, with a global model promoted at that point: while the service is
// down in the restarted run). Every forecast must be the same in both runs
// (issued_at aside), reason included: the restarted service reads back from
// forecast_log the forecast each series had before (scoring.Batch.Restore).
func TestRestartKeepsReasons(t *testing.T) {
	featureAddr := startFeatureServer(t)
	next := asOf + 1
	b1 := &featurev1.FeatureSnapshot{EventId: "b1", OccurredAt: timestamppb.New(next.Time().Add(11 * time.Hour)),
		SeriesKey: "B|online", Sku: "B", Location: "online", AsOfDay: next.String(), RecentDaily: append(make([]float64, 55), 2),
		Cause: &demandv1.DemandEvent{EventId: "b1", SeriesKey: "B|online"}}
	snaps := []*featurev1.FeatureSnapshot{
		snapshotA("a1", asOf, 9, 2, 0),
		snapshotA("a2", asOf, 15, 7, 0), // same day
		snapshotA("a3", next, 9, 1, 12), // asOf closed
		snapshotA("a4", next, 14, 6, 12),
		b1, // a new series: no forecast to read back
	}
	path, version := trainArtefact(t, t.TempDir(), 20)
	for _, c := range []struct {
		name      string
		restartAt int
		promote   bool
		// the reason of the first forecast after the restart
		code   forecastv1.ReasonCode
		detail string
	}{
		{"same day", 1, false, forecastv1.ReasonCode_REASON_CODE_UNCHANGED, "today 7 so far, "},
		{"day closed", 2, false, forecastv1.ReasonCode_REASON_CODE_DAY_CLOSED, "level "},
		{"model promoted while down", 2, true, forecastv1.ReasonCode_REASON_CODE_MODEL_CHANGED, "global model none (ensemble alone) -> " + version},
	} {
		t.Run(c.name, func(t *testing.T) {
			var promote func(*testing.T, chx.Config)
			if c.promote {
				promote = func(t *testing.T, ch chx.Config) {
					conn, err := chx.Open(context.Background(), ch)
					if err != nil {
						t.Fatal(err)
					}
					defer conn.Close()
					if err := modelregistry.New(conn).Record(context.Background(),
						modelregistry.Model{Version: version, Artefact: path, DataSet: "test", Status: modelregistry.StatusChampion}); err != nil {
						t.Fatal(err)
					}
				}
			}
			clean := runSnapshots(t, featureAddr, snaps, c.restartAt, false, promote)
			restarted := runSnapshots(t, featureAddr, snaps, c.restartAt, true, promote)
			first := clean[c.restartAt].GetReason()
			if first.GetCode() != c.code || !strings.HasPrefix(first.GetDetail(), c.detail) {
				t.Errorf("the first forecast after the restart point, without a restart: %v %q, want %v %q...", first.GetCode(), first.GetDetail(), c.code, c.detail)
			}
			if got := clean[len(snaps)-1].GetReason().GetCode(); got != forecastv1.ReasonCode_REASON_CODE_NEW_SERIES {
				t.Errorf("b1: reason %v, want a new series", got)
			}
			for i := range snaps {
				a, b := clean[i], restarted[i]
				a.IssuedAt, b.IssuedAt = nil, nil
				if !proto.Equal(a, b) {
					t.Errorf("%s: the forecast differs after a restart before %s\n reason %v\nwithout %v",
						snaps[i].GetEventId(), snaps[c.restartAt].GetEventId(), b.GetReason(), a.GetReason())
				}
			}
		})
	}
}

// runSnapshots starts the service on a fresh broker and database, publishes
// snaps one at a time and returns their forecasts; before the one at
// restartAt it calls promote and, if restart, stops the service first and
// starts it again after (else waits until the service has loaded the model
// promote recorded); promote may be nil.
func runSnapshots(t *testing.T, featureAddr string, snaps []*featurev1.FeatureSnapshot, restartAt int, restart bool,
	promote func(*testing.T, chx.Config)) []*forecastv1.ForecastEvent {
	t.Helper()
	ctx := context.Background()
	brokers := testenv.Kafka(t)
	chCfg := testenv.ClickHouse(t)
	args := []string{"-model.poll-interval", "100ms"}
	svc := start(t, brokers, chCfg, featureAddr, args...)
	producer, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer producer.Close()
	reader, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.ConsumeTopics(topics.Forecasts),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Close()
	loaded := regexp.MustCompile(`stockcast_forecast_model_loads_total\{[^}]*result="ok"[^}]*\} 1\b`)
	out := make([]*forecastv1.ForecastEvent, len(snaps))
	for i, snap := range snaps {
		if i == restartAt {
			if restart {
				svc.stop(t)
				if promote != nil {
					promote(t, chCfg)
				}
				svc = start(t, brokers, chCfg, featureAddr, args...)
			} else if promote != nil {
				promote(t, chCfg)
				testenv.Eventually(t, 30*time.Second, "the model loaded", func() bool {
					return loaded.MatchString(httpGet(t, "http://"+svc.adminAddr+"/metrics"))
				})
			}
		}
		if err := producer.ProduceSync(ctx, record(t, snap)).FirstErr(); err != nil {
			t.Fatal(err)
		}
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		for out[i] == nil {
			fetches := reader.PollFetches(cctx)
			if cctx.Err() != nil {
				t.Fatalf("no forecast of %s", snap.GetEventId())
			}
			for _, r := range fetches.Records() {
				var ev forecastv1.ForecastEvent
				if err := proto.Unmarshal(r.Value, &ev); err != nil {
					t.Fatal(err)
				}
				if ev.GetEventId() == snap.GetEventId() {
					out[i] = &ev
				}
			}
		}
		cancel()
	}
	svc.stop(t)
	return out
}
