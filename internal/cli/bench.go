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
	if err := e.parse(fs, args); err != nil {
		return err
	}
	if rc.Limit <= 0 {
		return fmt.Errorf("bench-pipeline: -n %d: want at least 1", rc.Limit)
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
	printBenchResult(e.stdout, raw, sum, args)
	return nil
}

func printBenchResult(w io.Writer, raw bench.RawResult, sum replay.Summary, args []string) {
	fmt.Fprintln(w)
	fmt.Fprintf(w, "raw broker     %10.0f records/s\n", raw.PerSec)
	fmt.Fprintf(w, "pipeline       %10.0f events/s end to end (first produce to last forecast), p50 %s, p99 %s\n",
		sum.EventsPerSec, ms(sum.Latency.P50), ms(sum.Latency.P99))
	if raw.PerSec > 0 {
		fmt.Fprintf(w, "ratio          %10.1f%% of the raw broker rate\n", 100*sum.EventsPerSec/raw.PerSec)
	}
	fmt.Fprintln(w, "               (the replay outruns the pipeline: latencies are mostly queueing; use replay --speed for latency at a sustainable load)")
	fmt.Fprintf(w, "command        stockcast bench-pipeline %s\n", strings.Join(args, " "))
	fmt.Fprintf(w, "summary: events_per_s=%d raw_broker_per_s=%d p50_ms=%d p99_ms=%d\n",
		int64(math.Round(sum.EventsPerSec)), int64(math.Round(raw.PerSec)),
		sum.Latency.P50.Milliseconds(), sum.Latency.P99.Milliseconds())
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1fms", float64(d)/float64(time.Millisecond)) }
