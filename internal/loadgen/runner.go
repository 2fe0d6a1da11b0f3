package loadgen

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stockcast/stockcast/internal/bench"
	"github.com/stockcast/stockcast/internal/replay"
	"github.com/stockcast/stockcast/pkg/chx"
	"github.com/stockcast/stockcast/pkg/kafkax"
	"github.com/stockcast/stockcast/pkg/topics"
)

// Config is one load run.
type Config struct {
	Generator GeneratorConfig
	Profile   Profile
	Duration  time.Duration // length of the measured run at the profile's rate
	// StockSeries is how many of the most popular series get an initial
	// stock snapshot of StockUnits before the run (replenishment proposes
	// from a stock position; series without one start at zero).
	StockSeries int
	StockUnits  float64
	// RawRecords is how many records the raw broker baseline produces and
	// consumes (0: skip it).
	RawRecords   int
	StallTimeout time.Duration // give up waiting when nothing arrives for this long
	Run          string        // event id prefix; unique per run
	// Stages also reads demand.v1 and features.v1 back and splits
	// event-to-forecast by stage (more reading in the loadgen process).
	Stages bool
}

// Validate checks the config.
func (c Config) Validate() error {
	var errs []error
	if err := c.Profile.Validate(); err != nil {
		errs = append(errs, err)
	}
	if c.Duration <= 0 {
		errs = append(errs, fmt.Errorf("duration %v: want more than 0", c.Duration))
	}
	if c.StockSeries < 0 || c.StockSeries > c.Generator.Series {
		errs = append(errs, fmt.Errorf("stock series %d: want 0 to the %d series", c.StockSeries, c.Generator.Series))
	}
	if c.RawRecords < 0 {
		errs = append(errs, fmt.Errorf("raw records %d: want 0 or more", c.RawRecords))
	}
	if c.StallTimeout <= 0 {
		errs = append(errs, fmt.Errorf("stall timeout %v: want more than 0", c.StallTimeout))
	}
	if c.Run == "" || strings.ContainsAny(c.Run, "-|") {
		errs = append(errs, fmt.Errorf("run id %q: want a non-empty id without '-' or '|'", c.Run))
	}
	return errors.Join(errs...)
}

// Process is a process whose CPU and memory the run reports.
type Process struct {
	Name string
	PID  int
}

// Target is the system under load.
type Target struct {
	Kafka     kafkax.Config
	RedisAddr string // "" : no Redis figures
	// ClickHouse, when its Addr is set, gives the run's insert counts
	// (system.events).
	ClickHouse chx.Config
	Processes  []Process // CPU and RSS reported per process
}

// ProcResult is one process's share of the run.
type ProcResult struct {
	Name                     string
	CPUSeconds               float64 // over the measured run
	CPUMicrosPerEv           float64
	RSSStart, RSSEnd, RSSMax int64
}

// Result is what a run measured.
type Result struct {
	Config               Config
	Raw                  bench.RawResult
	Events               int64 // order lines produced in the measured run
	Series               int   // distinct series among them
	ProduceSecs          float64
	ProducedPerS         float64 // achieved produce rate
	Forecasts            int64
	Rejected             int64
	Proposals            int64
	EventsPerSec         float64 // events / (first produce -> last forecast)
	BacklogAtEnd         int64   // events without a forecast when the last was produced
	DrainSecs            float64 // last produce -> last forecast
	ToForecast           Quantiles
	ToProposal           Quantiles
	StageIngest          Quantiles // with Config.Stages: produced -> demand.v1
	StageFeature         Quantiles // demand.v1 -> features.v1
	StageForecast        Quantiles // features.v1 -> forecasts.v1
	Procs                []ProcResult
	RedisStart           int64 // used_memory before the run
	RedisEnd             int64
	RedisKeys            int64
	SeriesHashAvg        float64    // MEMORY USAGE of a series' feature + replenishment hashes, sampled
	RedisClasses         []KeyClass // every key's MEMORY USAGE (SAMPLES 0: exact) by key class, at the end
	ForecastRSSPerSeries float64
	// ClickHouse's system.events over the run (InsertQuery, InsertedRows,
	// Merge, ...), when the target gives ClickHouse.
	CHEvents map[string]int64
}

// Runner runs loads against a target.
type Runner struct {
	cfg    Config
	target Target
	log    *slog.Logger
	out    io.Writer
	now    func() time.Time
}

// NewRunner returns a runner; progress lines go to out.
func NewRunner(cfg Config, target Target, log *slog.Logger, out io.Writer) (*Runner, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Runner{cfg: cfg, target: target, log: log, out: out, now: time.Now}, nil
}

// Run measures the raw broker, puts the initial stock, then produces the
// stream at the profile's rate and waits for every event's forecast.
func (r *Runner) Run(ctx context.Context) (res Result, err error) {
	res.Config = r.cfg
	kc := r.target.Kafka
	all := append([]string{topics.Orders, topics.Inventory, topics.Catalog, topics.Demand, topics.Features}, replay.WatchedTopics()...)
	if err := kafkax.EnsureTopics(ctx, kc, all...); err != nil {
		return res, fmt.Errorf("prepare topics: %w", err)
	}
	total := r.cfg.Profile.Count(r.cfg.Duration)
	if total == 0 {
		return res, errors.New("loadgen: the profile sends no event within the duration")
	}

	if r.cfg.RawRecords > 0 {
		recs, err := r.rawRecords(min(int64(r.cfg.RawRecords), total))
		if err != nil {
			return res, err
		}
		fmt.Fprintf(r.out, "(a) raw broker: produce %d records like the run's and consume them back\n", len(recs))
		if res.Raw, err = bench.RawBroker(ctx, kc, recs); err != nil {
			return res, err
		}
		fmt.Fprintf(r.out, "    %.0f records/s\n", res.Raw.PerSec)
	}

	admCl, err := kgo.NewClient(kgo.SeedBrokers(kc.Brokers...), kgo.ClientID("stockcast-loadgen-admin"))
	if err != nil {
		return res, fmt.Errorf("create kafka admin client: %w", err)
	}
	defer admCl.Close()
	from, err := replay.StartOffsets(ctx, kadm.NewClient(admCl))
	if err != nil {
		return res, err
	}
	clock := NewClock(total, r.now())
	if r.cfg.Stages {
		clock.WithStages()
		ends, err := kadm.NewClient(admCl).ListEndOffsets(ctx, topics.Demand, topics.Features)
		if err != nil {
			return res, fmt.Errorf("list end offsets of the stage topics: %w", err)
		}
		if err := ends.Error(); err != nil {
			return res, fmt.Errorf("list end offsets of the stage topics: %w", err)
		}
		ends.Each(func(o kadm.ListedOffset) {
			if from[o.Topic] == nil {
				from[o.Topic] = map[int32]int64{}
			}
			from[o.Topic][o.Partition] = o.Offset
		})
	}
	w, err := newWatcher(kc.Brokers, from, r.cfg.Run, clock)
	if err != nil {
		return res, err
	}
	wctx, stopWatch := context.WithCancel(ctx)
	werr := make(chan error, 1)
	go func() { werr <- w.run(wctx) }()
	defer func() {
		stopWatch()
		err = errors.Join(err, <-werr)
	}()

	prod, err := replay.NewRawClient(kc.Brokers, "stockcast-loadgen")
	if err != nil {
		return res, err
	}
	defer prod.Close()
	var (
		perr   error
		perrMu sync.Mutex
	)
	onErr := func(_ *kgo.Record, e error) {
		if e != nil {
			perrMu.Lock()
			perr = errors.Join(perr, e)
			perrMu.Unlock()
		}
	}
	failed := func() error { perrMu.Lock(); defer perrMu.Unlock(); return perr }

	if n := r.cfg.StockSeries; n > 0 {
		fmt.Fprintf(r.out, "(b) initial stock: %d snapshots of %.0f units (the most popular series)\n", n, r.cfg.StockUnits)
		at := r.now().UTC().Truncate(24 * time.Hour)
		for rank := 0; rank < n; rank++ {
			rec, err := StockRecord(r.cfg.Run, rank, r.cfg.StockUnits, at)
			if err != nil {
				return res, err
			}
			prod.Produce(ctx, rec, onErr)
		}
		if err := prod.Flush(ctx); err != nil {
			return res, fmt.Errorf("flush stock snapshots: %w", err)
		}
		if err := r.waitFor(ctx, func() (int64, int64) { return w.stock.Load() + w.stockRejected.Load(), int64(n) }); err != nil {
			return res, fmt.Errorf("initial stock: %w", err)
		}
	}
	if err := failed(); err != nil {
		return res, fmt.Errorf("produce: %w", err)
	}

	// The measured run.
	gen, err := NewGenerator(r.cfg.Generator)
	if err != nil {
		return res, err
	}
	rdb := r.redis()
	if rdb != nil {
		defer rdb.Close()
		res.RedisStart, _ = usedMemory(ctx, rdb)
	}
	chBefore := r.chEvents(ctx)
	sampler := newSampler(r.target.Processes)
	sampler.sample()
	sctx, stopSampling := context.WithCancel(ctx)
	sdone := make(chan struct{})
	go func() { defer close(sdone); sampler.every(sctx, time.Second) }()
	defer func() { stopSampling(); <-sdone }()

	fmt.Fprintf(r.out, "(c) run: %d order lines over %s (%s, mean %.0f lines/s), %d series, zipf %.2f\n",
		total, r.cfg.Duration, r.cfg.Profile.Kind, r.cfg.Profile.Rate, r.cfg.Generator.Series, r.cfg.Generator.Zipf)
	touched := make([]bool, r.cfg.Generator.Series)
	start := r.now()
	clock.Start(start)
	for n := int64(0); n < total; n++ {
		due := start.Add(r.cfg.Profile.At(n))
		if d := due.Sub(r.now()); d > time.Millisecond {
			if err := sleep(ctx, d); err != nil {
				return res, err
			}
		}
		l := gen.Next()
		touched[l.Rank] = true
		at := r.now()
		rec, err := l.Record(r.cfg.Run, at)
		if err != nil {
			return res, err
		}
		clock.Sent(n, at)
		prod.Produce(ctx, rec, onErr)
		if n%4096 == 0 {
			if err := failed(); err != nil {
				return res, fmt.Errorf("produce: %w", err)
			}
		}
	}
	if err := prod.Flush(ctx); err != nil {
		return res, fmt.Errorf("flush: %w", err)
	}
	lastProduce := r.now()
	res.Events = total
	res.ProduceSecs = lastProduce.Sub(start).Seconds()
	res.ProducedPerS = float64(total) / res.ProduceSecs
	res.BacklogAtEnd = total - clock.Forecasts() - w.rejected.Load()
	for _, t := range touched {
		if t {
			res.Series++
		}
	}
	fmt.Fprintf(r.out, "    produced in %.1fs (%.0f lines/s); %d without a forecast yet; waiting for the pipeline\n",
		res.ProduceSecs, res.ProducedPerS, res.BacklogAtEnd)
	waitErr := r.waitFor(ctx, func() (int64, int64) { return clock.Forecasts() + w.rejected.Load(), total })
	stopSampling()
	<-sdone
	sampler.sample()

	if chAfter := r.chEvents(ctx); chBefore != nil && chAfter != nil {
		res.CHEvents = make(map[string]int64, len(chAfter))
		for k, v := range chAfter {
			res.CHEvents[k] = v - chBefore[k]
		}
	}
	res.Forecasts, res.Rejected, res.Proposals = clock.Forecasts(), w.rejected.Load(), clock.Proposals()
	last := clock.LastForecast()
	if res.Forecasts > 0 {
		res.EventsPerSec = float64(res.Forecasts) / last.Sub(start).Seconds()
		res.DrainSecs = math.Max(0, last.Sub(lastProduce).Seconds())
	}
	res.ToForecast, res.ToProposal = clock.Latencies()
	res.StageIngest, res.StageFeature, res.StageForecast = clock.Stages()
	res.Procs = sampler.results(res.Forecasts)
	for _, p := range res.Procs {
		if p.Name == "forecast" && res.Series > 0 {
			res.ForecastRSSPerSeries = float64(p.RSSEnd) / float64(res.Series)
		}
	}
	if rdb != nil {
		res.RedisEnd, _ = usedMemory(ctx, rdb)
		res.RedisKeys, _ = rdb.DBSize(ctx).Result()
		res.SeriesHashAvg = seriesHashBytes(ctx, rdb, touched)
		classes, cerr := redisKeyClasses(ctx, rdb)
		if cerr != nil {
			r.log.Warn("redis memory by key class", "err", cerr)
		}
		res.RedisClasses = classes
	}
	return res, waitErr
}

// rawRecords returns n records of the run's shape from a generator of the
// same config (another run id, so they never meet the pipeline's).
func (r *Runner) rawRecords(n int64) ([]*kgo.Record, error) {
	g, err := NewGenerator(r.cfg.Generator)
	if err != nil {
		return nil, err
	}
	topic := fmt.Sprintf("bench.raw.%d", r.now().UnixNano())
	recs := make([]*kgo.Record, n)
	at := r.now()
	for i := range recs {
		rec, err := g.Next().Record(r.cfg.Run+"raw", at)
		if err != nil {
			return nil, err
		}
		rec.Topic = topic
		recs[i] = rec
	}
	return recs, nil
}

// waitFor polls progress until done reaches want, failing when it does not
// move for StallTimeout.
func (r *Runner) waitFor(ctx context.Context, progress func() (done, want int64)) error {
	last, lastMove := int64(-1), r.now()
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		done, want := progress()
		if done >= want {
			return nil
		}
		if done != last {
			last, lastMove = done, r.now()
		} else if r.now().Sub(lastMove) > r.cfg.StallTimeout {
			return fmt.Errorf("no progress for %v: %d of %d events accounted for", r.cfg.StallTimeout, done, want)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

func (r *Runner) redis() *redis.Client {
	if r.target.RedisAddr == "" {
		return nil
	}
	return redis.NewClient(&redis.Options{Addr: r.target.RedisAddr})
}

// chEventNames are the ClickHouse counters the run reports.
var chEventNames = []string{"Query", "InsertQuery", "InsertedRows", "InsertedBytes", "Merge", "MergedRows"}

// chEvents reads ClickHouse's cumulative counters; nil when it cannot.
func (r *Runner) chEvents(ctx context.Context) map[string]int64 {
	if r.target.ClickHouse.Addr == "" {
		return nil
	}
	cfg := r.target.ClickHouse
	cfg.Database = "system"
	conn, err := chx.Open(ctx, cfg)
	if err != nil {
		r.log.Warn("read clickhouse events", "err", err)
		return nil
	}
	defer conn.Close()
	// The names are constants of this file, so they are spelled into the
	// query (18.16 does not bind a slice to IN).
	rows, err := conn.Query(ctx, "SELECT event, value FROM system.events WHERE event IN ('"+strings.Join(chEventNames, "','")+"')")
	if err != nil {
		r.log.Warn("read clickhouse events", "err", err)
		return nil
	}
	defer rows.Close()
	out := make(map[string]int64, len(chEventNames))
	for rows.Next() {
		var name string
		var v uint64
		if err := rows.Scan(&name, &v); err != nil {
			r.log.Warn("read clickhouse events", "err", err)
			return nil
		}
		out[name] = int64(v)
	}
	return out
}

// usedMemory reads used_memory from INFO memory.
func usedMemory(ctx context.Context, rdb *redis.Client) (int64, error) {
	info, err := rdb.Info(ctx, "memory").Result()
	if err != nil {
		return 0, fmt.Errorf("redis info memory: %w", err)
	}
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "used_memory:"); ok {
			return strconv.ParseInt(v, 10, 64)
		}
	}
	return 0, errors.New("redis info memory: no used_memory")
}

// seriesHashBytes samples up to 200 touched series (evenly over the ranks)
// and returns the mean MEMORY USAGE of their feature and replenishment
// hashes: the per-series state, without the per-event dedup markers.
func seriesHashBytes(ctx context.Context, rdb *redis.Client, touched []bool) float64 {
	var ranks []int
	for k, t := range touched {
		if t {
			ranks = append(ranks, k)
		}
	}
	if len(ranks) == 0 {
		return 0
	}
	step := max(1, len(ranks)/200)
	var sum, n int64
	for i := 0; i < len(ranks); i += step {
		key := SeriesKey(ranks[i])
		var b int64
		for _, k := range []string{"stockcast:f:{" + key + "}", "stockcast:r:{" + key + "}"} {
			v, err := rdb.MemoryUsage(ctx, k, 0).Result()
			if err == nil {
				b += v
			}
		}
		sum += b
		n++
	}
	return float64(sum) / float64(n)
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// sampler reads the processes' CPU and RSS: first and last sample bound the
// CPU of the run; every sample updates the peak RSS.
type sampler struct {
	procs       []Process
	first, last []ProcSample
	max         []int64
	mu          sync.Mutex
}

func newSampler(procs []Process) *sampler {
	return &sampler{procs: procs, first: make([]ProcSample, len(procs)), last: make([]ProcSample, len(procs)), max: make([]int64, len(procs))}
}

func (s *sampler) sample() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, p := range s.procs {
		v, err := ReadProc(p.PID)
		if err != nil {
			continue
		}
		if s.first[i] == (ProcSample{}) {
			s.first[i] = v
		}
		s.last[i] = v
		s.max[i] = max(s.max[i], v.RSS)
	}
}

func (s *sampler) every(ctx context.Context, d time.Duration) {
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.sample()
		}
	}
}

func (s *sampler) results(events int64) []ProcResult {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]ProcResult, len(s.procs))
	for i, p := range s.procs {
		cpu := float64(s.last[i].CPUTicks-s.first[i].CPUTicks) / clockTicks
		out[i] = ProcResult{Name: p.Name, CPUSeconds: cpu, RSSStart: s.first[i].RSS, RSSEnd: s.last[i].RSS, RSSMax: s.max[i]}
		if events > 0 {
			out[i].CPUMicrosPerEv = cpu * 1e6 / float64(events)
		}
	}
	return out
}

// watcher reads forecasts, proposals and dead letters and reports them to
// the clock by the sequence number in their event id.
type watcher struct {
	cl            *kgo.Client
	runID         string
	clock         *Clock
	stock         atomic.Int64 // forecasts of the initial stock snapshots
	stockRejected atomic.Int64
	rejected      atomic.Int64 // run events dead-lettered
}

func newWatcher(brokers []string, from map[string]map[int32]int64, run string, clock *Clock) (*watcher, error) {
	parts := make(map[string]map[int32]kgo.Offset, len(from))
	for t, ps := range from {
		parts[t] = make(map[int32]kgo.Offset, len(ps))
		for p, o := range ps {
			parts[t][p] = kgo.NewOffset().At(o)
		}
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ClientID("stockcast-loadgen-watcher"),
		kgo.ConsumePartitions(parts), kgo.FetchMaxWait(20*time.Millisecond), kafkax.ReadCommitted())
	if err != nil {
		return nil, fmt.Errorf("create output watcher: %w", err)
	}
	return &watcher{cl: cl, runID: run, clock: clock}, nil
}

func (w *watcher) run(ctx context.Context) error {
	defer w.cl.Close()
	stockPrefix := "lg-" + w.runID + "-stock-"
	for {
		fs := w.cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return nil
		}
		var errs []error
		fs.EachError(func(t string, p int32, err error) { errs = append(errs, fmt.Errorf("watch %s/%d: %w", t, p, err)) })
		if err := errors.Join(errs...); err != nil {
			return err
		}
		now := time.Now()
		fs.EachRecord(func(rec *kgo.Record) {
			id := kafkax.HeaderValue(rec, topics.HeaderEventID)
			seq, ok := ParseEventID(w.runID, id)
			switch {
			case rec.Topic == topics.Forecasts && ok:
				w.clock.Forecast(seq, now)
			case rec.Topic == topics.Forecasts && strings.HasPrefix(id, stockPrefix):
				w.stock.Add(1)
			case rec.Topic == topics.Proposals && ok:
				w.clock.Proposal(seq, now)
			case rec.Topic == topics.Demand && ok:
				w.clock.Demand(seq, now)
			case rec.Topic == topics.Features && ok:
				w.clock.Feature(seq, now)
			case topics.IsDLQ(rec.Topic) && ok:
				w.rejected.Add(1)
			case topics.IsDLQ(rec.Topic) && strings.HasPrefix(id, stockPrefix):
				w.stockRejected.Add(1)
			}
		})
	}
}

// Print writes the result, ending with the summary line.
func (res Result) Print(w io.Writer, command string) {
	fmt.Fprintln(w)
	if res.Raw.PerSec > 0 {
		fmt.Fprintf(w, "raw broker         %10.0f records/s (same run, same record shape)\n", res.Raw.PerSec)
	}
	fmt.Fprintf(w, "produced           %10d order lines of %d series in %.1fs: %.0f lines/s (target %.0f)\n",
		res.Events, res.Series, res.ProduceSecs, res.ProducedPerS, res.Config.Profile.Rate)
	fmt.Fprintf(w, "pipeline           %10.0f lines/s end to end (first produce to last forecast); backlog %d at the last produce, drained %.1fs later\n",
		res.EventsPerSec, res.BacklogAtEnd, res.DrainSecs)
	if res.Raw.PerSec > 0 {
		fmt.Fprintf(w, "ratio              %10.1f%% of the raw broker rate\n", 100*res.EventsPerSec/res.Raw.PerSec)
	}
	fmt.Fprintf(w, "forecasts          %10d (rejected %d), proposals caused: %d\n", res.Forecasts, res.Rejected, res.Proposals)
	q := func(name string, v Quantiles) {
		fmt.Fprintf(w, "%-18s p50 %s  p99 %s  p999 %s  max %s  (%d events)\n", name, ms(v.P50), ms(v.P99), ms(v.P999), ms(v.Max), v.Count)
	}
	q("event->forecast", res.ToForecast)
	q("event->proposal", res.ToProposal)
	if res.Config.Stages {
		q("  produce->demand", res.StageIngest)
		q("  demand->features", res.StageFeature)
		q("  features->fcst", res.StageForecast)
	}
	fmt.Fprintf(w, "%-28s %10s %10s %10s %10s %10s\n", "process", "cpu s", "µs/line", "rss start", "rss end", "rss max")
	procs := append([]ProcResult(nil), res.Procs...)
	sort.SliceStable(procs, func(i, j int) bool { return procs[i].CPUSeconds > procs[j].CPUSeconds })
	var cpuTotal float64
	for _, p := range procs {
		cpuTotal += p.CPUMicrosPerEv
		fmt.Fprintf(w, "%-28s %10.1f %10.0f %10s %10s %10s\n", p.Name, p.CPUSeconds, p.CPUMicrosPerEv, mib(p.RSSStart), mib(p.RSSEnd), mib(p.RSSMax))
	}
	if cpuTotal > 0 {
		fmt.Fprintf(w, "%-28s %10s %10.0f   => at most %.0f lines/s on 2 fully idle cores\n", "all", "", cpuTotal, 2e6/cpuTotal)
	}
	perSeries := func(b float64) float64 {
		if res.Series == 0 {
			return 0
		}
		return b / float64(res.Series)
	}
	if res.RedisEnd > 0 {
		fmt.Fprintf(w, "redis              used_memory %s -> %s (%d keys): %.0f bytes per series of the run, %.0f per line; series hashes (feature + replenishment) %.0f bytes\n",
			mib(res.RedisStart), mib(res.RedisEnd), res.RedisKeys, perSeries(float64(res.RedisEnd-res.RedisStart)),
			float64(res.RedisEnd-res.RedisStart)/float64(max(1, res.Events)), res.SeriesHashAvg)
	}
	var classTotal int64
	for _, kc := range res.RedisClasses {
		fmt.Fprintf(w, "  redis keys       %-32s %8d keys %10d bytes: %6.0f per series (MEMORY USAGE SAMPLES 0)\n",
			kc.Class, kc.Keys, kc.Bytes, perSeries(float64(kc.Bytes)))
		classTotal += kc.Bytes
	}
	if len(res.RedisClasses) > 0 {
		fmt.Fprintf(w, "  redis keys       %-32s %8s      %10d bytes: %6.0f per series\n", "all", "", classTotal, perSeries(float64(classTotal)))
	}
	if res.CHEvents != nil {
		var parts []string
		for _, k := range chEventNames {
			parts = append(parts, fmt.Sprintf("%s=%d", k, res.CHEvents[k]))
		}
		fmt.Fprintf(w, "clickhouse         %s over the run: %.1f lines per insert\n", strings.Join(parts, " "),
			float64(res.Events)/float64(max(1, res.CHEvents["InsertQuery"])))
	}
	if res.ForecastRSSPerSeries > 0 {
		fmt.Fprintf(w, "forecast rss       %.0f bytes per series (RSS at the end / %d series)\n", res.ForecastRSSPerSeries, res.Series)
	}
	fmt.Fprintf(w, "command            %s\n", command)
	fmt.Fprintf(w, "summary: series=%d profile=%s target_per_s=%.0f lines=%d events_per_s=%.0f raw_broker_per_s=%.0f p50_ms=%.1f p99_ms=%.1f p999_ms=%.1f proposal_p99_ms=%.1f cpu_us_per_line=%.0f redis_bytes_per_series=%.0f forecast_rss_bytes_per_series=%.0f\n",
		res.Series, res.Config.Profile.Kind, res.Config.Profile.Rate, res.Events, res.EventsPerSec, res.Raw.PerSec,
		msf(res.ToForecast.P50), msf(res.ToForecast.P99), msf(res.ToForecast.P999), msf(res.ToProposal.P99), cpuTotal,
		perSeries(float64(res.RedisEnd-res.RedisStart)), res.ForecastRSSPerSeries)
}

func msf(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
func ms(d time.Duration) string   { return fmt.Sprintf("%.1fms", msf(d)) }
func mib(b int64) string          { return fmt.Sprintf("%.1fMiB", float64(b)/(1<<20)) }
