package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"strings"
	"time"

	"github.com/stockcast/stockcast/internal/bench"
	"github.com/stockcast/stockcast/internal/replay"
)

// runBench measures, in one run and on one broker, (a) the raw broker rate
// with records like the pipeline's and (b) the pipeline end to end.
func runBench(ctx context.Context, e *env, args []string) (err error) {
	fs := flag.NewFlagSet("bench-pipeline", flag.ContinueOnError)
	var (
		sf   stackFlags
		rc   replay.Config
		logs logFlags
	)
	sf.register(fs, ".data/bench")
	rc.RegisterDataFlags(fs, "")
	logs.register(fs)
	fs.IntVar(&rc.Limit, "n", 100_000, "lines to replay through the pipeline (as fast as possible), and records for the raw broker run")
	latencyN := fs.Int("latency-n", 20_000, "lines replayed at a steady rate after the throughput run, to measure latency (0: skip)")
	latencyLoad := fs.Float64("latency-load", 0.5, "the steady rate as a fraction of the measured throughput")
	if err := e.parse(fs, args); err != nil {
		return err
	}
	if rc.Limit <= 0 {
		return fmt.Errorf("bench-pipeline: -n %d: want at least 1", rc.Limit)
	}
	if *latencyN < 0 || *latencyLoad <= 0 || *latencyLoad > 1 {
		return fmt.Errorf("bench-pipeline: -latency-n %d -latency-load %v: want n >= 0 and a load in (0, 1]", *latencyN, *latencyLoad)
	}
	if err := rc.Validate(); err != nil {
		return fmt.Errorf("validate flags: %w", err)
	}
	log, err := logs.logger(e.stderr)
	if err != nil {
		return err
	}

	fmt.Fprintf(e.stdout, "starting the local stack in %s\n", sf.dir)
	st, err := sf.start(ctx, log, e.stdout, rc.NonProductSKUs)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, stopStack(st, log)) }()

	recs, err := bench.RecordsFromData(rc.Data, rc.Limit, fmt.Sprintf("bench.raw.%d", time.Now().UnixNano()))
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "\n(a) raw broker: produce %d records and consume them back\n", len(recs))
	raw, err := bench.RawBroker(ctx, st.Kafka(), recs)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "    %d records of %.0f bytes on average in %s: %.0f records/s\n",
		raw.Records, raw.AvgBytes, raw.Elapsed.Round(time.Millisecond), raw.PerSec)

	fmt.Fprintf(e.stdout, "\n(b) pipeline: replay %d lines as fast as possible through ingest -> feature -> forecast -> replenishment\n", rc.Limit)
	sum, err := replay.New(rc, st.Kafka(), log, progressFor(e.stderr)).Run(ctx)
	if err != nil {
		sum.Print(e.stdout)
		return fmt.Errorf("bench-pipeline: %w", err)
	}
	sum.Print(e.stdout)

	// The throughput run outruns the pipeline, so its latencies are queueing.
	// Latency is measured on the next lines at a rate the pipeline sustains.
	lat := sum
	if *latencyN > 0 && sum.EventsPerSec > 0 {
		lc := rc
		lc.Skip, lc.Limit, lc.InitialStock = rc.Limit, *latencyN, false
		lc.Rate = math.Max(1, *latencyLoad*sum.EventsPerSec)
		fmt.Fprintf(e.stdout, "\n(c) latency: replay the next %d lines at %.0f lines/s (%.0f%% of the measured throughput)\n",
			lc.Limit, lc.Rate, 100**latencyLoad)
		lat, err = replay.New(lc, st.Kafka(), log, progressFor(e.stderr)).Run(ctx)
		if err != nil {
			lat.Print(e.stdout)
			return fmt.Errorf("bench-pipeline latency run: %w", err)
		}
		lat.Print(e.stdout)
	}
	printBenchResult(e.stdout, raw, sum, lat, args)
	return nil
}

// printBenchResult prints the throughput of sum against the raw broker
// rate, and the order-to-forecast latency of lat (the steady-rate run; sum
// itself when there was none).
func printBenchResult(w io.Writer, raw bench.RawResult, sum, lat replay.Summary, args []string) {
	fmt.Fprintln(w)
	fmt.Fprintf(w, "raw broker     %10.0f records/s\n", raw.PerSec)
	fmt.Fprintf(w, "pipeline       %10.0f events/s end to end (first produce to last forecast)\n", sum.EventsPerSec)
	if raw.PerSec > 0 {
		fmt.Fprintf(w, "ratio          %10.1f%% of the raw broker rate\n", 100*sum.EventsPerSec/raw.PerSec)
	}
	fmt.Fprintf(w, "latency        p50 %s, p99 %s order-to-forecast over %d events at %.0f events/s\n",
		ms(lat.Latency.P50), ms(lat.Latency.P99), lat.Latency.Count, lat.EventsPerSec)
	fmt.Fprintf(w, "command        stockcast bench-pipeline %s\n", strings.Join(args, " "))
	fmt.Fprintf(w, "summary: events_per_s=%d raw_broker_per_s=%d p50_ms=%d p99_ms=%d\n",
		int64(math.Round(sum.EventsPerSec)), int64(math.Round(raw.PerSec)),
		lat.Latency.P50.Milliseconds(), lat.Latency.P99.Milliseconds())
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1fms", float64(d)/float64(time.Millisecond)) }
