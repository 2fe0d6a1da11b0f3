// Package replay plays the Online Retail order lines into a running stockcast
// pipeline and measures what comes out: it produces the mapped events to
// orders.v1 and inventory.v1, reads forecasts.v1, replenishment.v1 and the
// dead-letter topics with its own consumer, matches them to the produced
// events by event id, and is done when every event is accounted for and the
// pipeline's consumer groups have no lag.
package replay

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"golang.org/x/sync/errgroup"

	inventoryv1 "github.com/stockcast/stockcast/proto/stockcast/inventory/v1"

	"github.com/stockcast/stockcast/pkg/config"
	"github.com/stockcast/stockcast/pkg/kafkax"
	"github.com/stockcast/stockcast/pkg/retail"
	"github.com/stockcast/stockcast/pkg/topics"
)

// Config says what to replay and how fast.
type Config struct {
	Data           string        // Online Retail CSV(.gz)
	Speed          float64       // 0: as fast as possible; N: N x the data's own pace
	Rate           float64       // 0: off; N: N events per second, evenly spaced (instead of Speed)
	Skip           int           // lines at the start of the data not replayed
	Limit          int           // lines to replay; 0: all
	InitialStock   bool          // produce one inventory snapshot per product first
	StallTimeout   time.Duration // give up when the pipeline makes no progress for this long
	NonProductSKUs []string      // order lines of these codes are not demand: no forecast expected
	// OneTopic produces the stock movements of the lines (write-offs) and
	// the initial stock on orders.v1 with the header stockcast-event-type:
	// inventory, so that ingest applies a series' stock movements in the
	// order of its lines instead of by arrival (services/ingest/README.md).
	// The actor's events stay on inventory.v1 (the replay waits for them).
	OneTopic bool
}

// RegisterFlags registers the replay flags with the given prefix.
func (c *Config) RegisterFlags(fs *flag.FlagSet, prefix string) {
	fs.Float64Var(&c.Speed, prefix+"speed", 0, "0: as fast as possible; N: N times the wall-clock pace of the data")
	fs.Float64Var(&c.Rate, prefix+"rate", 0, "N: replay N lines per second, evenly spaced, instead of the data's pace (0: off)")
	fs.IntVar(&c.Skip, prefix+"skip", 0, "skip this many lines at the start of the data")
	fs.IntVar(&c.Limit, prefix+"limit", 0, "replay at most this many lines (0: all)")
	c.RegisterDataFlags(fs, prefix)
}

// RegisterDataFlags registers the flags other than speed and limit, for
// commands that decide those themselves (the benchmark).
func (c *Config) RegisterDataFlags(fs *flag.FlagSet, prefix string) {
	fs.StringVar(&c.Data, prefix+"data", "data/online-retail/online_retail.csv.gz", "Online Retail CSV(.gz) to replay")
	fs.BoolVar(&c.InitialStock, prefix+"initial-stock", true, "produce one inventory snapshot per product before the lines")
	fs.BoolVar(&c.OneTopic, prefix+"one-topic", false,
		"produce the lines' stock movements on orders.v1 with the header stockcast-event-type: inventory, so that ingest applies them in the order of the series' lines (reproducible runs)")
	fs.DurationVar(&c.StallTimeout, prefix+"stall-timeout", 3*time.Minute,
		"after the last produce, give up when no output arrives and no consumer group moves for this long")
	config.StringsVar(fs, &c.NonProductSKUs, prefix+"non-product-skus", retail.NonProductCodes(),
		"stock codes ingest does not treat as demand (no forecast is expected for their order lines)")
}

// Validate checks the configuration.
func (c *Config) Validate() error {
	var errs []error
	if c.Data == "" {
		errs = append(errs, errors.New("replay data: no file given"))
	}
	if c.Speed < 0 {
		errs = append(errs, fmt.Errorf("replay speed %v: want 0 or more", c.Speed))
	}
	if c.Rate < 0 {
		errs = append(errs, fmt.Errorf("replay rate %v: want 0 or more", c.Rate))
	}
	if c.Rate > 0 && c.Speed > 0 {
		errs = append(errs, errors.New("replay: give a speed or a rate, not both"))
	}
	if c.Skip < 0 {
		errs = append(errs, fmt.Errorf("replay skip %d: want 0 or more", c.Skip))
	}
	if c.Limit < 0 {
		errs = append(errs, fmt.Errorf("replay limit %d: want 0 or more", c.Limit))
	}
	if c.StallTimeout <= 0 {
		errs = append(errs, fmt.Errorf("replay stall timeout %v: want more than 0", c.StallTimeout))
	}
	return errors.Join(errs...)
}

// An Actor acts between the replayed lines in event time, through the
// stack's real interfaces: the demo's planner and supplier (internal/demoloop).
// Before the first line whose time is at or after Due's time, the replay
// waits until the pipeline has gone through every event produced so far,
// calls Act, produces the events Act returns to inventory.v1, and waits until
// ingest has consumed them, so that they are in each series' stream before
// that line, whatever the pipeline's speed: the actor's effects are a
// function of event time, not of wall time.
type Actor interface {
	// Due returns the event time of the actor's next action if it is at or
	// before t (the time of the next line).
	Due(t time.Time) (time.Time, bool)
	// Act acts at event time at and returns the inventory events to
	// produce, with their kinds (KindPurchaseOrder, KindReceipt).
	Act(ctx context.Context, at time.Time) ([]ActorEvent, error)
}

// ActorEvent is an inventory event an Actor wants produced.
type ActorEvent struct {
	Event *inventoryv1.InventoryEvent
	Kind  Kind
}

// Replayer runs one replay.
type Replayer struct {
	cfg      Config
	kafka    kafkax.Config
	log      *slog.Logger
	progress *Progress
	actor    Actor
	stages   []Stage
	// poll is how often the end condition is checked.
	poll time.Duration
}

// New returns a replayer producing to and watching the cluster of kafka;
// progress may be nil.
func New(cfg Config, kafka kafkax.Config, log *slog.Logger, progress *Progress) *Replayer {
	return &Replayer{cfg: cfg, kafka: kafka, log: log, progress: progress, stages: Pipeline(), poll: 250 * time.Millisecond}
}

// WithActor makes the replay call a between the lines (see Actor).
func (r *Replayer) WithActor(a Actor) *Replayer {
	r.actor = a
	return r
}

// Run replays and waits until every produced event is accounted for. The
// summary is filled as far as the replay got, also when it returns an error.
func (r *Replayer) Run(ctx context.Context) (Summary, error) {
	if err := r.cfg.Validate(); err != nil {
		return Summary{}, err
	}
	total, planner, err := r.plan()
	if err != nil {
		return Summary{}, err
	}
	all := append([]string{topics.Orders, topics.Inventory, topics.Catalog, topics.Demand, topics.Features}, WatchedTopics()...)
	if err := kafkax.EnsureTopics(ctx, r.kafka, all...); err != nil {
		return Summary{}, fmt.Errorf("prepare topics: %w", err)
	}
	admCl, err := kgo.NewClient(kgo.SeedBrokers(r.kafka.Brokers...), kgo.ClientID("stockcast-replay-admin"))
	if err != nil {
		return Summary{}, fmt.Errorf("create kafka admin client: %w", err)
	}
	defer admCl.Close()
	adm := kadm.NewClient(admCl)
	from, err := StartOffsets(ctx, adm)
	if err != nil {
		return Summary{}, err
	}

	tracker := NewTracker()
	watcher, err := NewWatcher(r.kafka.Brokers, from, tracker, r.log)
	if err != nil {
		return Summary{}, err
	}
	var stock []*inventoryv1.InventoryEvent
	if r.cfg.InitialStock {
		stock = planner.Snapshots()
	}
	planned := total + len(stock)

	// The first error ends the run: a failing watcher stops the replay and
	// the replay's end stops the watcher and the progress bar.
	g, gctx := errgroup.WithContext(ctx)
	runCtx, stop := context.WithCancel(gctx)
	defer stop()
	status := &phase{}
	g.Go(func() error { return watcher.Run(runCtx) })
	if r.progress != nil {
		g.Go(func() error { r.progress.Run(runCtx, tracker, planned, status); return nil })
	}
	g.Go(func() error {
		defer stop()
		return r.produceAndWait(runCtx, stock, tracker, watcher, adm, status)
	})
	err = g.Wait()
	if r.progress != nil {
		r.progress.Finish(tracker, planned, status)
	}
	return buildSummary(tracker), err
}

// plan reads the data once: it counts the lines to replay and derives the
// initial stock from them.
func (r *Replayer) plan() (int, *retail.StockPlanner, error) {
	rd, err := retail.Open(r.cfg.Data)
	if err != nil {
		return 0, nil, err
	}
	defer rd.Close()
	if err := skipLines(rd, r.cfg.Skip); err != nil {
		return 0, nil, fmt.Errorf("plan replay of %s: %w", r.cfg.Data, err)
	}
	planner := retail.NewStockPlanner()
	n := 0
	for r.cfg.Limit == 0 || n < r.cfg.Limit {
		l, err := rd.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return 0, nil, fmt.Errorf("plan replay of %s: %w", r.cfg.Data, err)
		}
		planner.Add(l)
		n++
	}
	return n, planner, nil
}

func (r *Replayer) produceAndWait(ctx context.Context, stock []*inventoryv1.InventoryEvent, tracker *Tracker, watcher *Watcher, adm *kadm.Client, status *phase) error {
	p, err := newProducer(r.kafka.Brokers, tracker, r.cfg.OneTopic)
	if err != nil {
		return err
	}
	defer p.close()
	status.set("producing")
	for _, s := range stock {
		if err := p.produce(ctx, retail.Event{Inventory: s}, KindInitialStock, false); err != nil {
			return err
		}
	}
	if len(stock) > 0 {
		// Stock snapshots and order lines travel on different topics, so
		// ingest could interleave them in any order; wait until every
		// snapshot has gone through, so that each series starts from its
		// stock and the replay's outcome does not depend on timing.
		if err := p.flush(ctx); err != nil {
			return err
		}
		status.set("waiting for the initial stock")
		if err := r.wait(ctx, tracker, watcher, adm, status, false); err != nil {
			return fmt.Errorf("initial stock: %w", err)
		}
		status.set("producing")
	}
	act := func(at time.Time) error {
		return r.act(ctx, at, p, tracker, watcher, adm, status)
	}
	if err := r.produceLines(ctx, p, act); err != nil {
		return err
	}
	if err := p.flush(ctx); err != nil {
		return err
	}
	status.set("waiting for the pipeline")
	return r.wait(ctx, tracker, watcher, adm, status, true)
}

// act runs the actor at event time at (see Actor).
func (r *Replayer) act(ctx context.Context, at time.Time, p *producer, tracker *Tracker, watcher *Watcher, adm *kadm.Client, status *phase) error {
	if err := p.flush(ctx); err != nil {
		return err
	}
	status.set("waiting for the pipeline before " + at.UTC().Format(time.DateTime))
	if err := r.wait(ctx, tracker, watcher, adm, status, true); err != nil {
		return fmt.Errorf("before the actor at %s: %w", at.UTC().Format(time.RFC3339), err)
	}
	status.set("planner and supplier at " + at.UTC().Format(time.DateTime))
	evs, err := r.actor.Act(ctx, at)
	if err != nil {
		return fmt.Errorf("actor at %s: %w", at.UTC().Format(time.RFC3339), err)
	}
	if len(evs) > 0 {
		for _, ev := range evs {
			if err := p.produceOn(ctx, retail.Event{Inventory: ev.Event}, ev.Kind, false, false); err != nil {
				return err
			}
		}
		if err := p.flush(ctx); err != nil {
			return err
		}
		status.set("waiting for ingest to take the supplier's events")
		if err := r.waitIngested(ctx, adm, topics.Inventory); err != nil {
			return err
		}
	}
	status.set("producing")
	return nil
}

// waitIngested polls until ingest has committed every record of topic
// (committed after its outputs were acknowledged: they are on demand.v1,
// ahead of anything produced from now on).
func (r *Replayer) waitIngested(ctx context.Context, adm *kadm.Client, topic string) error {
	ticker := time.NewTicker(r.poll / 5)
	defer ticker.Stop()
	start := time.Now()
	for {
		lag, err := groupLag(ctx, adm, Stage{Group: r.stages[0].Group, Topics: []string{topic}})
		if err == nil && lag == 0 {
			return nil
		}
		if time.Since(start) > r.cfg.StallTimeout {
			return fmt.Errorf("ingest did not consume %s within %v (lag %d, %v)", topic, r.cfg.StallTimeout, lag, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-ticker.C:
		}
	}
}

// produceLines produces the mapped lines, paced by their timestamps when
// Speed > 0; before a line, act runs the actor when it is due.
func (r *Replayer) produceLines(ctx context.Context, p *producer, act func(time.Time) error) error {
	rd, err := retail.Open(r.cfg.Data)
	if err != nil {
		return err
	}
	defer rd.Close()
	nonProduct := make(map[string]bool, len(r.cfg.NonProductSKUs))
	for _, s := range r.cfg.NonProductSKUs {
		nonProduct[s] = true
	}
	if err := skipLines(rd, r.cfg.Skip); err != nil {
		return fmt.Errorf("replay %s: %w", r.cfg.Data, err)
	}
	var pace pacer
	start := time.Now()
	for n := 0; r.cfg.Limit == 0 || n < r.cfg.Limit; n++ {
		l, err := rd.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("replay %s: %w", r.cfg.Data, err)
		}
		if r.cfg.Speed > 0 {
			if err := pace.wait(ctx, l.Time, r.cfg.Speed); err != nil {
				return err
			}
		}
		if r.cfg.Rate > 0 {
			due := start.Add(time.Duration(float64(n) / r.cfg.Rate * float64(time.Second)))
			if err := sleepUntil(ctx, due); err != nil {
				return err
			}
		}
		for r.actor != nil {
			at, ok := r.actor.Due(l.Time)
			if !ok {
				break
			}
			if err := act(at); err != nil {
				return err
			}
		}
		ev, err := retail.Map(l)
		if err != nil {
			return err
		}
		kind := KindPlaced
		switch {
		case ev.Inventory != nil:
			kind = KindAdjustment
		case l.Quantity < 0:
			kind = KindCancelled
		}
		if err := p.produce(ctx, ev, kind, ev.Order != nil && nonProduct[l.StockCode]); err != nil {
			return err
		}
	}
	return nil
}

// wait polls until every produced event is accounted for and, with
// untilDrained, the pipeline is drained too (without it, a drained pipeline
// also ends the wait). A slow pipeline may take as long
// as it needs; one that makes no progress (no new output, no consumer group
// moving) for StallTimeout fails.
func (r *Replayer) wait(ctx context.Context, tracker *Tracker, watcher *Watcher, adm *kadm.Client, status *phase, untilDrained bool) error {
	ticker := time.NewTicker(r.poll)
	defer ticker.Stop()
	var (
		drainedChecks int
		lastSeen      = -1
		lastLags      string
		lastProgress  = time.Now()
	)
	for {
		lags, err := PipelineLag(ctx, adm, r.stages)
		if err != nil && ctx.Err() == nil {
			r.log.Warn("measure pipeline lag", "err", err)
		}
		status.setLags(lags)
		drained := err == nil && Drained(lags, r.stages)
		if drained {
			ends, err := endOffsets(ctx, adm, WatchedTopics()...)
			drained = err == nil && watcher.CaughtUp(ends)
		}
		pending := tracker.Pending()
		switch {
		case pending == 0 && (drained || !untilDrained):
			return nil
		case drained && !untilDrained:
			// What is missing will not come; the final wait says why.
			return nil
		case drained:
			// Everything went through and was read: what is missing will
			// not come. Check twice in case a commit raced a fetch.
			if drainedChecks++; drainedChecks >= 2 {
				_, examples := tracker.Unaccounted(5)
				return fmt.Errorf("pipeline drained but %d events got neither a forecast nor a rejection (e.g. %s): "+
					"ingest drops event ids it has seen before; was this data replayed into this system already?",
					pending, strings.Join(examples, ", "))
			}
		default:
			drainedChecks = 0
		}
		if seen, l := tracker.Outputs(), formatLags(lags); seen != lastSeen || l != lastLags {
			lastSeen, lastLags, lastProgress = seen, l, time.Now()
		} else if time.Since(lastProgress) > r.cfg.StallTimeout {
			_, examples := tracker.Unaccounted(5)
			return fmt.Errorf("pipeline made no progress for %v with %d events unaccounted for (e.g. %s); lag by group: %s",
				r.cfg.StallTimeout, pending, strings.Join(examples, ", "), l)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-ticker.C:
		}
	}
}

func formatLags(lags []StageLag) string {
	parts := make([]string, 0, len(lags))
	for _, l := range lags {
		parts = append(parts, fmt.Sprintf("%s=%d", strings.TrimPrefix(l.Group, "stockcast-"), l.Lag))
	}
	return strings.Join(parts, " ")
}

// pacer spaces events as their timestamps, sped up by a factor.
type pacer struct {
	dataStart, wallStart time.Time
}

func (p *pacer) wait(ctx context.Context, at time.Time, speed float64) error {
	if p.wallStart.IsZero() {
		p.dataStart, p.wallStart = at, time.Now()
		return nil
	}
	return sleepUntil(ctx, p.wallStart.Add(time.Duration(float64(at.Sub(p.dataStart))/speed)))
}

// sleepUntil waits until due or until ctx is done.
func sleepUntil(ctx context.Context, due time.Time) error {
	d := time.Until(due)
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// phase is what the replay is doing, for the progress bar.
type phase struct {
	mu   sync.Mutex
	name string
	lags []StageLag
}

func (p *phase) set(name string) { p.mu.Lock(); p.name = name; p.mu.Unlock() }

func (p *phase) setLags(l []StageLag) { p.mu.Lock(); p.lags = l; p.mu.Unlock() }

func (p *phase) get() (string, []StageLag) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.name, p.lags
}

// skipLines reads and drops the first n lines.
func skipLines(rd *retail.Reader, n int) error {
	for i := 0; i < n; i++ {
		if _, err := rd.Next(); err != nil {
			if errors.Is(err, io.EOF) {
				return fmt.Errorf("skip %d lines: the data has only %d", n, i)
			}
			return err
		}
	}
	return nil
}
