package store

import (
	"context"
	"fmt"
	"math"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/stockcast/stockcast/internal/loadgen"
	"github.com/stockcast/stockcast/pkg/chx"
	"github.com/stockcast/stockcast/pkg/forecasting"
	"github.com/stockcast/stockcast/pkg/testenv"
	demandv1 "github.com/stockcast/stockcast/proto/stockcast/demand/v1"
	forecastv1 "github.com/stockcast/stockcast/proto/stockcast/forecast/v1"
	"github.com/stockcast/stockcast/services/forecast/internal/scoring"
)

// fullResult is a forecast of the production shape: the default horizon,
// quantile levels and lead times.
func fullResult(id string, asOf time.Time) *scoring.Result {
	levels := forecasting.DefaultQuantileLevels()
	ev := &forecastv1.ForecastEvent{
		ForecastId: id, EventId: "ev-" + id, SeriesKey: "sku" + id + "|online", Sku: "sku" + id, Location: "online",
		AsOf: timestamppb.New(asOf), IssuedAt: timestamppb.New(asOf.Add(time.Second)),
		StartDay: asOf.Format(time.DateOnly), QuantileLevels: levels,
		Model: "m", ModelVersion: "m-1", DemandClass: "smooth",
		Reason: &forecastv1.ForecastReason{Code: forecastv1.ReasonCode_REASON_CODE_DAY_CLOSED, Detail: "level", Change: 0.25},
		Cause:  &demandv1.DemandEvent{EventId: "ev-" + id, Change: &demandv1.DemandEvent_Demand{Demand: &demandv1.Demand{Quantity: 3}}},
	}
	// whole numbers below 64, as the count distributions give them
	for d := range forecasting.DefaultHorizon {
		q := make([]float64, len(levels))
		for j := range q {
			q[j] = math.Ceil(float64(d+1) * 2 * levels[j])
		}
		ev.Daily = append(ev.Daily, &forecastv1.DailyForecast{Day: asOf.AddDate(0, 0, d).Format(time.DateOnly), Mean: float64(d) + 0.5, Quantiles: q})
	}
	for _, lt := range forecasting.DefaultLeadTimes() {
		q := make([]float64, len(levels))
		for j := range q {
			q[j] = math.Ceil(float64(lt) * 2 * levels[j])
		}
		ev.LeadTimeDemand = append(ev.LeadTimeDemand, &forecastv1.LeadTimeDemand{LeadTimeDays: int32(lt), Mean: float64(lt), Quantiles: q})
	}
	return &scoring.Result{Event: ev, Components: []scoring.Component{{Name: "level", Value: 1, Detail: "d"}, {Name: "trend", Value: 0.1}}}
}

// processCPU is this process's CPU time so far (user + system): the
// client's encoding, without the server's work.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// insertVersions are the two encodings of the log, measured side by side
// in one run: the previous version's arrays (the baseline) and the
// encoded columns the service writes now.
var insertVersions = []struct {
	name   string
	insert func(ctx context.Context, conn driver.Conn, log *ForecastLog, rows []*scoring.Result) error
}{
	{"arrays_v1", func(ctx context.Context, conn driver.Conn, _ *ForecastLog, rows []*scoring.Result) error {
		return insertV1(ctx, conn, rows)
	}},
	{"encoded_v2", func(ctx context.Context, conn driver.Conn, _ *ForecastLog, rows []*scoring.Result) error {
		return insertV2(ctx, conn, rows)
	}},
	{"packed_v3", func(ctx context.Context, _ driver.Conn, log *ForecastLog, rows []*scoring.Result) error {
		return log.Insert(ctx, rows)
	}},
}

// productionComponents are the Explain components of a forecast of the
// ensemble, with texts of their production length (~1.2 KB encoded).
func productionComponents() []scoring.Component {
	var out []scoring.Component
	for i, d := range []string{"mean daily demand over the next 7 days", "damped-trend member's slope, units per day",
		"weekly-seasonal multiplier of Monday", "ses_0.03 has the largest weight (one-step RMSE 0.412, MAE 0.301)",
		"ses_0.03", "RMSE of the combination's one-step errors", "poisson", "average days between demands (class smooth)",
		"squared coefficient of variation of non-zero demand", "share of today's demand usually seen by now",
		"one-step RMSE 0.412", "one-step RMSE 0.430", "one-step RMSE 0.455", "one-step RMSE 0.470",
		"one-step RMSE 0.502", "one-step RMSE 0.533", "one-step RMSE 0.561", "one-step RMSE 0.600"} {
		out = append(out, scoring.Component{Name: fmt.Sprintf("component_%d", i), Value: float64(i) / 7, Detail: d})
	}
	return out
}

// BenchmarkInsertServerCPU measures what ClickHouse itself spends per
// forecast row, insert and merges: 30,000 forecasts of the production
// shape (whole-number quantiles, production-sized components) in inserts
// of 300 rows (3,000 in the last variant), each variant into its own
// database, then waiting until the server merged them (no merge running
// for a second). Run it with -benchtime 1x; compare server-cpu-µs/row of
// the variants of the same run, not across runs.
func BenchmarkInsertServerCPU(b *testing.B) {
	ctx := context.Background()
	const rows, perInsert = 30_000, 300
	day := time.Date(2011, 3, 4, 10, 30, 0, 0, time.UTC)
	results := make([]*scoring.Result, rows)
	for i := range results {
		results[i] = fullResult(fmt.Sprint(i), day.Add(time.Duration(i)*time.Second))
		results[i].Event.SeriesKey = fmt.Sprintf("sku%d|online", i%7000)
		results[i].Components = productionComponents()
	}
	// migrated: a log created by version 1 and migrated in place (it
	// stores every column); otherwise a new log (Migrate alone)
	type variant struct {
		name      string
		insert    func(ctx context.Context, conn driver.Conn, log *ForecastLog, rows []*scoring.Result) error
		perInsert int
		migrated  bool
	}
	variants := []variant{
		{"encoded_v2", insertVersions[1].insert, perInsert, true}, // session 4
		{"packed_v3_migrated_log", insertVersions[2].insert, perInsert, true},
		{"packed_v3", insertVersions[2].insert, perInsert, false},
		{"packed_v3_x10_rows_per_insert", insertVersions[2].insert, 10 * perInsert, false},
	}
	for _, v := range variants {
		b.Run(v.name, func(b *testing.B) {
			cfg := testenv.ClickHouse(b)
			conn, err := chx.Open(ctx, cfg)
			if err != nil {
				b.Fatal(err)
			}
			defer conn.Close()
			if v.migrated {
				if err := conn.Exec(ctx, ForecastLogTable); err != nil {
					b.Fatal(err)
				}
			}
			if err := Migrate(ctx, conn); err != nil {
				b.Fatal(err)
			}
			pid, err := loadgen.PIDListening(cfg.Addr)
			if err != nil {
				b.Skipf("clickhouse-server's process: %v", err)
			}
			log := NewForecastLog(conn)
			before, err := loadgen.ReadProc(pid)
			if err != nil {
				b.Fatal(err)
			}
			cpu0 := processCPU()
			for range b.N {
				for i := 0; i < rows; i += v.perInsert {
					if err := v.insert(ctx, conn, log, results[i:i+v.perInsert]); err != nil {
						b.Fatal(err)
					}
				}
			}
			quiet, deadline := 0, time.Now().Add(2*time.Minute)
			for quiet < 5 && time.Now().Before(deadline) {
				var merges uint64
				if err := conn.QueryRow(ctx, "SELECT count() FROM system.merges WHERE database = currentDatabase()").Scan(&merges); err != nil {
					b.Fatal(err)
				}
				if quiet++; merges > 0 {
					quiet = 0
				}
				time.Sleep(200 * time.Millisecond) // a benchmark's wait for the server's merges, not a test's sync
			}
			after, err := loadgen.ReadProc(pid)
			if err != nil {
				b.Fatal(err)
			}
			var parts, bytes uint64
			if err := conn.QueryRow(ctx, "SELECT uniqExact(name), sum(column_data_uncompressed_bytes) FROM system.parts_columns WHERE database = currentDatabase() AND table = 'forecast_log' AND active").Scan(&parts, &bytes); err != nil {
				b.Fatal(err)
			}
			// drop the table now: with its parts gone the database's drop
			// at the end of the benchmark is quick
			if err := conn.Exec(ctx, "DROP TABLE forecast_log"); err != nil {
				b.Logf("drop forecast_log: %v", err)
			}
			n := float64(b.N * rows)
			// the results, also when dropping the database afterwards fails
			b.Logf("%s: server %.1f µs/row, client %.1f µs/row, %.0f B/row stored, %d parts", v.name,
				float64(after.CPUTicks-before.CPUTicks)*10_000/n, float64((processCPU()-cpu0).Microseconds())/n, float64(bytes)/n, parts)
			b.ReportMetric(float64(after.CPUTicks-before.CPUTicks)*10_000/n, "server-cpu-µs/row")
			b.ReportMetric(float64((processCPU()-cpu0).Microseconds())/n, "client-cpu-µs/row")
			b.ReportMetric(float64(bytes)/n, "stored-B/row")
			b.ReportMetric(float64(parts), "parts")
		})
	}
}

// BenchmarkInsert measures one handler-sized insert into a real ClickHouse:
// 1,000 forecasts of the production shape, in each encoding.
func BenchmarkInsert(b *testing.B) {
	ctx := context.Background()
	conn, err := chx.Open(ctx, testenv.ClickHouse(b))
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	if err := Migrate(ctx, conn); err != nil {
		b.Fatal(err)
	}
	log := NewForecastLog(conn)
	day := time.Date(2011, 3, 4, 10, 30, 0, 0, time.UTC)
	results := make([]*scoring.Result, 1000)
	for i := range results {
		results[i] = fullResult(fmt.Sprint(i), day)
	}
	for _, v := range insertVersions {
		b.Run(v.name, func(b *testing.B) {
			b.ReportAllocs()
			cpu0 := processCPU()
			for range b.N {
				if err := v.insert(ctx, conn, log, results); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*len(results))/b.Elapsed().Seconds(), "rows/s")
			b.ReportMetric(float64((processCPU()-cpu0).Microseconds())/float64(b.N*len(results)), "client-cpu-µs/row")
		})
	}
}

// BenchmarkInsertConcurrent is what the consumer does with one poll: six
// partition handlers insert 170 forecasts each at the same time.
func BenchmarkInsertConcurrent(b *testing.B) {
	ctx := context.Background()
	conn, err := chx.Open(ctx, testenv.ClickHouse(b))
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	if err := Migrate(ctx, conn); err != nil {
		b.Fatal(err)
	}
	log := NewForecastLog(conn)
	day := time.Date(2011, 3, 4, 10, 30, 0, 0, time.UTC)
	const partitions, perPartition = 6, 170
	batches := make([][]*scoring.Result, partitions)
	for p := range batches {
		for i := range perPartition {
			batches[p] = append(batches[p], fullResult(fmt.Sprint(p, "-", i), day))
		}
	}
	for _, v := range insertVersions {
		b.Run(v.name, func(b *testing.B) {
			b.ReportAllocs()
			cpu0 := processCPU()
			for range b.N {
				var wg sync.WaitGroup
				for _, batch := range batches {
					wg.Go(func() {
						if err := v.insert(ctx, conn, log, batch); err != nil {
							b.Error(err)
						}
					})
				}
				wg.Wait()
			}
			b.ReportMetric(float64(b.N*partitions*perPartition)/b.Elapsed().Seconds(), "rows/s")
			b.ReportMetric(float64((processCPU()-cpu0).Microseconds())/float64(b.N*partitions*perPartition), "client-cpu-µs/row")
		})
	}
}
