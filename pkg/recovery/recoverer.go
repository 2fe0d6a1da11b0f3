package recovery

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/stockcast/stockcast/pkg/kafkax"
)

// Config configures a Recoverer.
type Config struct {
	// Auto rebuilds the state when it was lost; off, the service waits
	// (not ready) until an operator ran the rebuild.
	Auto bool
	// CheckInterval is how often the sentinel is read besides the scripts'
	// refusals.
	CheckInterval time.Duration
	// LockTTL bounds how long a crashed rebuilder holds up the others; the
	// lock is renewed every third of it.
	LockTTL time.Duration
}

// RegisterFlags registers -<prefix>recover, -<prefix>recover-check-interval
// and -<prefix>recover-lock-ttl.
func (c *Config) RegisterFlags(fs *flag.FlagSet, prefix string) {
	fs.BoolVar(&c.Auto, prefix+"recover", true,
		"rebuild the service's Redis state automatically when Redis lost it (off: wait, not ready, for the manual rebuild of docs/operations.md)")
	fs.DurationVar(&c.CheckInterval, prefix+"recover-check-interval", 5*time.Second,
		"how often the Redis state sentinel is checked besides the scripts' refusals")
	fs.DurationVar(&c.LockTTL, prefix+"recover-lock-ttl", 30*time.Second,
		"rebuild lock lifetime (renewed every third of it): how long a crashed rebuilder holds up the other replicas")
}

// Validate checks the durations.
func (c *Config) Validate() error {
	if c.CheckInterval < 10*time.Millisecond || c.LockTTL < time.Second {
		return fmt.Errorf("recover: check interval %s must be at least 10ms and lock ttl %s at least 1s", c.CheckInterval, c.LockTTL)
	}
	return nil
}

// lostCheckInterval is how often a waiting replica looks for the sentinel.
const lostCheckInterval = 250 * time.Millisecond

// Rebuild rebuilds a service's state; its scripts must use the guard
// LockKey with token. lostAt is when the loss was noticed. It returns a
// one-line summary for the log.
type Rebuild func(ctx context.Context, token string, lostAt time.Time) (string, error)

// HasData reports whether Redis holds state of the service (written by a
// version without the sentinel, to adopt as it is).
type HasData func(ctx context.Context) (bool, error)

// Recoverer watches a service's sentinel and rebuilds the state when it is
// missing.
type Recoverer struct {
	guard   *Guard
	cfg     Config
	rebuild Rebuild
	hasData HasData
	fresh   HasData
	log     *slog.Logger
	runbook string
	onReady func(bool)

	kick chan struct{}

	mu     sync.Mutex
	ok     chan struct{} // closed while the state is complete
	gen    string
	lostAt time.Time
	warned bool
	done   chan struct{} // closed when Run returned
	// What onReady was told last (told: at all).
	told, toldReady bool

	lost       metric.Int64Gauge
	rebuilding metric.Int64Gauge
	recoveries metric.Int64Counter
}

// New returns a recoverer of guard's service. runbook is the manual
// command logged when Auto is off; onReady (may be nil) is told when the
// state becomes complete or is lost (readiness).
func New(guard *Guard, cfg Config, rebuild Rebuild, hasData HasData, log *slog.Logger, meter metric.Meter, runbook string, onReady func(bool)) (*Recoverer, error) {
	r := &Recoverer{guard: guard, cfg: cfg, rebuild: rebuild, hasData: hasData,
		log: log.With("component", "redis-recovery"), runbook: runbook, onReady: onReady,
		kick: make(chan struct{}, 1), ok: make(chan struct{}), done: make(chan struct{})}
	if onReady == nil {
		r.onReady = func(bool) {}
	}
	var err error
	if r.lost, err = meter.Int64Gauge("stockcast.redis.state_lost",
		metric.WithDescription("1 while the service's Redis state is lost (sentinel missing): consumption is paused until it is rebuilt.")); err != nil {
		return nil, fmt.Errorf("create state lost gauge: %w", err)
	}
	if r.rebuilding, err = meter.Int64Gauge("stockcast.redis.state_rebuilding",
		metric.WithDescription("1 while this replica rebuilds the service's Redis state.")); err != nil {
		return nil, fmt.Errorf("create state rebuilding gauge: %w", err)
	}
	if r.recoveries, err = meter.Int64Counter("stockcast.redis.state_recoveries",
		metric.WithDescription("Recoveries of the service's Redis state by this replica, by result (rebuilt, fresh, adopted, failed, void).")); err != nil {
		return nil, fmt.Errorf("create state recoveries counter: %w", err)
	}
	return r, nil
}

// WithFresh sets how the recoverer tells a first start (nothing applied
// yet, e.g. no committed offsets) from a loss: a first start needs no
// rebuild, also with Auto off. Call it before Run.
func (r *Recoverer) WithFresh(fresh HasData) *Recoverer {
	r.fresh = fresh
	return r
}

// Kick makes Run check the sentinel now (a script refused to write).
func (r *Recoverer) Kick() {
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

// Run checks the sentinel at start, on Kick and every CheckInterval, and
// recovers when it is missing, until ctx is done.
func (r *Recoverer) Run(ctx context.Context) error {
	defer close(r.done)
	for {
		r.check(ctx)
		// While lost, look again soon: another replica may finish the rebuild.
		wait := r.cfg.CheckInterval
		r.mu.Lock()
		if !isClosed(r.ok) {
			wait = min(wait, lostCheckInterval)
		}
		r.mu.Unlock()
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-r.kick:
			t.Stop()
		case <-t.C:
		}
	}
}

// Wait returns the generation of the complete state, waiting for a
// recovery if needed; it returns an error when ctx is done or Run stopped.
func (r *Recoverer) Wait(ctx context.Context) (string, error) {
	for {
		r.mu.Lock()
		ok := r.ok
		r.mu.Unlock()
		select {
		case <-ok:
			r.mu.Lock()
			gen, still := r.gen, ok == r.ok
			r.mu.Unlock()
			if still {
				return gen, nil
			}
		case <-ctx.Done():
			return "", ctx.Err()
		case <-r.done:
			return "", fmt.Errorf("wait for the redis state: %w", ErrLost)
		}
	}
}

// Generation reads the sentinel now ("" if lost) and notes a loss.
func (r *Recoverer) Generation(ctx context.Context) (string, error) {
	gen, err := r.guard.Generation(ctx)
	if err != nil {
		return "", err
	}
	if gen == "" {
		r.setLost()
		r.Kick()
	}
	return gen, nil
}

func (r *Recoverer) setComplete(ctx context.Context, gen string) {
	r.mu.Lock()
	changed := r.gen != gen
	wasLost := !isClosed(r.ok)
	if wasLost {
		close(r.ok)
	}
	r.gen, r.warned, r.lostAt = gen, false, time.Time{}
	r.mu.Unlock()
	if wasLost || changed {
		r.lost.Record(ctx, 0)
		if ctx.Err() == nil { // not while the service stops
			r.report(true)
		}
		r.log.Info("redis state complete", "generation", gen)
	}
}

func (r *Recoverer) setLost() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if isClosed(r.ok) {
		r.ok = make(chan struct{})
	}
	if r.lostAt.IsZero() {
		r.lostAt = time.Now()
	}
}

// report tells onReady a change of readiness (once per change).
func (r *Recoverer) report(ready bool) {
	r.mu.Lock()
	changed := !r.told || r.toldReady != ready
	r.told, r.toldReady = true, ready
	r.mu.Unlock()
	if changed {
		r.onReady(ready)
	}
}

func isClosed(c chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// check reads the sentinel and recovers if it is missing.
func (r *Recoverer) check(ctx context.Context) {
	gen, err := r.guard.Generation(ctx)
	if err != nil {
		if ctx.Err() == nil {
			r.log.Debug("read redis state sentinel", "err", err) // Redis down: the consumer backs off
		}
		return
	}
	if gen != "" {
		r.setComplete(ctx, gen)
		return
	}
	r.setLost()
	r.lost.Record(ctx, 1)
	r.report(false)
	r.mu.Lock()
	lostAt, warned := r.lostAt, r.warned
	r.warned = true
	r.mu.Unlock()
	if !warned {
		r.log.Warn("redis state missing (lost, or a first start): consumption paused, recovering", "sentinel", r.guard.Key())
	}
	r.recover(ctx, lostAt, warned)
}

// recover takes the lock and rebuilds (or adopts), then sets the sentinel.
func (r *Recoverer) recover(ctx context.Context, lostAt time.Time, warned bool) {
	token := newID(time.Now())
	res, pending, err := r.guard.acquire(ctx, token, r.cfg.LockTTL)
	if err != nil {
		r.log.Warn("take redis state rebuild lock", "err", err)
		return
	}
	switch res {
	case lockBusy:
		r.log.Debug("another replica rebuilds the redis state; waiting", "lock", r.guard.LockKey())
		return
	case lockComplete:
		return // the next check sees the sentinel
	}
	r.rebuilding.Record(ctx, 1)
	defer r.rebuilding.Record(ctx, 0)

	// Keep the lock while rebuilding; losing it stops the rebuild.
	rctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var wg sync.WaitGroup
	wg.Go(func() { r.keepLock(rctx, cancel, token) })
	defer wg.Wait()
	defer cancel(nil)

	start := time.Now()
	result, summary := "", ""
	if !pending && r.hasData != nil {
		has, err := r.hasData(rctx)
		if err != nil {
			r.fail(ctx, token, "check for existing state", err)
			return
		}
		if has {
			result, summary = "adopted", "redis holds state written before the sentinel existed: adopted as it is"
		}
	}
	if result == "" && r.fresh != nil {
		fresh, err := r.fresh(rctx)
		if err != nil {
			r.fail(ctx, token, "check for a first start", err)
			return
		}
		if fresh {
			result, summary = "fresh", "nothing was applied yet (no committed offsets): the state is complete empty"
		}
	}
	if result == "" && !r.cfg.Auto {
		if !warned {
			r.log.Error("redis state lost: consumption paused until it is rebuilt; automatic recovery is off, run the rebuild",
				"sentinel", r.guard.Key(), "runbook", r.runbook)
		}
		if err := r.guard.release(context.WithoutCancel(ctx), token); err != nil {
			r.log.Warn("release rebuild lock", "err", err)
		}
		return
	}
	if result == "" {
		r.log.Info("rebuilding redis state", "lock", r.guard.LockKey())
		summary, err = r.rebuild(rctx, token, lostAt)
		if err != nil {
			if c := context.Cause(rctx); c != nil && c != context.Canceled {
				err = fmt.Errorf("%w (%w)", err, c)
			}
			r.fail(ctx, token, "rebuild", err)
			return
		}
		result = "rebuilt"
	}
	gen := newID(time.Now())
	ok, err := r.guard.complete(ctx, token, gen)
	if err != nil || !ok {
		r.recoveries.Add(ctx, 1, metric.WithAttributes(attribute.String("result", "void")))
		r.log.Warn("redis state rebuild void: the lock was lost meanwhile (Redis lost its data again?); starting over", "err", err)
		r.Kick()
		return
	}
	r.recoveries.Add(ctx, 1, metric.WithAttributes(attribute.String("result", result)))
	r.log.Warn("redis state recovered", "result", result, "generation", gen, "took_ms", time.Since(start).Milliseconds(), "summary", summary)
	r.setComplete(ctx, gen)
}

func (r *Recoverer) fail(ctx context.Context, token, what string, err error) {
	r.recoveries.Add(ctx, 1, metric.WithAttributes(attribute.String("result", "failed")))
	r.log.Error("redis state recovery failed; retrying", "step", what, "err", err, "runbook", r.runbook)
	if err := r.guard.release(context.WithoutCancel(ctx), token); err != nil {
		r.log.Warn("release rebuild lock", "err", err)
	}
}

// keepLock renews the lock every third of its TTL and cancels the rebuild
// when it is no longer ours.
func (r *Recoverer) keepLock(ctx context.Context, cancel context.CancelCauseFunc, token string) {
	t := time.NewTicker(r.cfg.LockTTL / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		ok, err := r.guard.renew(ctx, token, r.cfg.LockTTL)
		if err == nil && !ok {
			cancel(fmt.Errorf("rebuild lock %s lost", r.guard.LockKey()))
			return
		}
	}
}

// Handler wraps a consumer's handler: it applies a batch only while the
// state is complete, and when a script refuses (the state was lost) or the
// sentinel changed while the batch was applied, it waits for the recovery
// and handles the batch again, so the batch is committed only once applied
// to a complete state.
func Handler(next kafkax.Handler, r *Recoverer) kafkax.Handler {
	return kafkax.HandlerFunc(func(ctx context.Context, recs []*kgo.Record) error {
		for {
			gen, err := r.Wait(ctx)
			if err != nil {
				return err
			}
			err = next.Handle(ctx, recs)
			if err != nil && !IsLost(err) {
				return err
			}
			if err == nil {
				now, err := r.Generation(ctx)
				if err != nil {
					return err
				}
				if now == gen {
					return nil
				}
			}
			// Lost while applying: nothing of this batch counts.
			r.setLost()
			r.Kick()
		}
	})
}

// HasKeys is a HasData: whether Redis has a key matching pattern (SCAN,
// so Redis is never blocked).
func HasKeys(rdb redis.Cmdable, pattern string) HasData {
	return func(ctx context.Context) (bool, error) {
		var cursor uint64
		for {
			keys, next, err := rdb.Scan(ctx, cursor, pattern, 1000).Result()
			if err != nil {
				return false, fmt.Errorf("scan for %s: %w", pattern, err)
			}
			if len(keys) > 0 {
				return true, nil
			}
			if next == 0 {
				return false, nil
			}
			cursor = next
		}
	}
}
