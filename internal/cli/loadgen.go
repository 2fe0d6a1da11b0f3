package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/stockcast/stockcast/internal/loadgen"
	"github.com/stockcast/stockcast/internal/stack"
	"github.com/stockcast/stockcast/pkg/config"
	"github.com/stockcast/stockcast/pkg/kafkax"
	"github.com/stockcast/stockcast/pkg/retail"
)

// runLoadgen produces a synthetic order-line stream into the pipeline and
// measures throughput, latency, CPU and memory (docs/load.md).
func runLoadgen(ctx context.Context, e *env, args []string) (err error) {
	fs := flag.NewFlagSet("loadgen", flag.ContinueOnError)
	var (
		sf        stackFlags
		logs      logFlags
		cfg       loadgen.Config
		attach    bool
		redisAddr string
		pids      []string
		// forecastFlags are extra flags of the forecast service
		forecastFlags []string
	)
	sf.register(fs, ".data/load")
	logs.register(fs)
	fs.IntVar(&cfg.Generator.Series, "series", 10_000, "number of series (sku x location)")
	fs.Float64Var(&cfg.Generator.Zipf, "zipf", 1.0, "popularity exponent of the series (0: uniform)")
	seed := fs.Uint64("seed", 1, "seed of the stream (the same seed gives the same lines)")
	touchAll := fs.Bool("touch-all", false, "the first lines visit every series once (memory per series), then the Zipf stream follows")
	fs.Float64Var(&cfg.Generator.CancelFraction, "cancel-fraction", 0.02, "fraction of lines that are cancellations")
	fs.StringVar(&cfg.Profile.Kind, "profile", loadgen.Steady, "rate profile: steady, or burst (same mean rate, bursts every -burst-period)")
	fs.Float64Var(&cfg.Profile.Rate, "rate", 1000, "mean order lines per second")
	fs.DurationVar(&cfg.Profile.Period, "burst-period", 10*time.Second, "burst profile: one burst per period")
	fs.Float64Var(&cfg.Profile.BurstFraction, "burst-fraction", 0.2, "burst profile: the part of each period that bursts")
	fs.Float64Var(&cfg.Profile.BurstFactor, "burst-factor", 4, "burst profile: the rate in a burst over the rate outside")
	fs.DurationVar(&cfg.Duration, "duration", 30*time.Second, "length of the measured run")
	fs.IntVar(&cfg.StockSeries, "stock-series", 1000, "initial stock snapshots for this many of the most popular series (at most -series)")
	fs.Float64Var(&cfg.StockUnits, "stock-units", 200, "units of each initial stock snapshot")
	fs.IntVar(&cfg.RawRecords, "raw-records", 100_000, "records of the raw broker baseline (0: skip)")
	fs.BoolVar(&cfg.Stages, "stages", false, "also read demand.v1 and features.v1 back and split event-to-forecast latency by stage (ingest, feature, forecast)")
	fs.DurationVar(&cfg.StallTimeout, "stall-timeout", 3*time.Minute, "give up when no forecast arrives for this long")
	fs.BoolVar(&attach, "attach", false, "load an already running system at -kafka.brokers instead of starting the local stack")
	fs.StringVar(&redisAddr, "redis.addr", "", "with -attach: Redis of the running system, for its memory figures")
	config.StringsVar(fs, &pids, "pids", nil, "with -attach: name=pid,... of processes whose CPU and memory to report")
	fs.Func("forecast.flag", "an extra flag of the forecast service the local stack starts, such as -memory.limit=3686MiB (repeat for more)", func(s string) error {
		if !strings.HasPrefix(s, "-") {
			return fmt.Errorf("want a flag such as -memory.limit=3686MiB, not %q", s)
		}
		forecastFlags = append(forecastFlags, s)
		return nil
	})
	if err := e.parse(fs, args); err != nil {
		return err
	}
	if *touchAll {
		cfg.Generator.Sequential = cfg.Generator.Series
	}
	cfg.Generator.Seed = *seed
	cfg.StockSeries = min(cfg.StockSeries, cfg.Generator.Series)
	cfg.Run = strconv.FormatInt(time.Now().UnixNano(), 36)
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("validate flags: %w", err)
	}
	if attach && len(sf.brokers) == 0 {
		return errors.New("loadgen -attach: give -kafka.brokers of the running system")
	}
	log, err := logs.logger(e.stderr)
	if err != nil {
		return err
	}

	var target loadgen.Target
	if attach {
		target = loadgen.Target{Kafka: kafkax.Config{Brokers: sf.brokers}, RedisAddr: redisAddr}
		for _, p := range pids {
			name, pidText, ok := strings.Cut(p, "=")
			pid, perr := strconv.Atoi(pidText)
			if !ok || perr != nil {
				return fmt.Errorf("loadgen -pids %q: want name=pid", p)
			}
			target.Processes = append(target.Processes, loadgen.Process{Name: name, PID: pid})
		}
	} else {
		if sf.fresh {
			if err := stack.Reset(sf.dir); err != nil {
				return err
			}
		}
		fmt.Fprintf(e.stdout, "starting the local stack in %s\n", sf.dir)
		// The forecast service keeps 100,000 series states by default;
		// a larger run keeps all of its series, to measure memory per series.
		maxSeries := max(100_000, cfg.Generator.Series)
		st, err := stack.Start(ctx, stack.Config{
			Dir: sf.dir, BinDir: sf.binDir, KafkaBrokers: sf.brokers, Partitions: sf.partitions, Logger: log, Stdout: e.stdout,
			ServiceFlags: map[string][]string{
				stack.Ingest:   {"-ingest.non-product-skus=" + strings.Join(retail.NonProductCodes(), ",")},
				stack.Forecast: append([]string{"-forecast.max-series=" + strconv.Itoa(maxSeries)}, forecastFlags...),
			},
		})
		if err != nil {
			return err
		}
		defer func() { err = errors.Join(err, stopStack(st, log)) }()
		target = loadgen.Target{Kafka: st.Kafka(), RedisAddr: st.RedisAddr(), ClickHouse: st.ClickHouse(), Processes: stackProcesses(st, len(sf.brokers) == 0)}
	}

	r, err := loadgen.NewRunner(cfg, target, log, e.stdout)
	if err != nil {
		return err
	}
	res, err := r.Run(ctx)
	res.Print(e.stdout, "stockcast loadgen "+strings.Join(args, " "))
	if err != nil {
		return fmt.Errorf("loadgen: %w", err)
	}
	return nil
}

// stackProcesses lists the stack's processes: the four services, redis,
// clickhouse and this process, which runs the embedded broker (kfake) as
// well as the generator.
func stackProcesses(st *stack.Stack, embedded bool) []loadgen.Process {
	var out []loadgen.Process
	for _, name := range stack.Services() {
		if pid := st.PID(name); pid > 0 {
			out = append(out, loadgen.Process{Name: name, PID: pid})
		}
	}
	if pid, err := loadgen.PIDListening(st.RedisAddr()); err == nil {
		out = append(out, loadgen.Process{Name: "redis-server", PID: pid})
	}
	if pid, err := loadgen.PIDListening(st.ClickHouse().Addr); err == nil {
		out = append(out, loadgen.Process{Name: "clickhouse-server", PID: pid})
	}
	self := "stockcast (loadgen)"
	if embedded {
		self = "stockcast (kfake + loadgen)"
	}
	return append(out, loadgen.Process{Name: self, PID: os.Getpid()})
}
