package recovery

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/metric/noop"

	"github.com/stockcast/stockcast/pkg/testenv"
)

func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }

func newRedis(t *testing.T) *redis.Client {
	rdb := redis.NewClient(&redis.Options{Addr: testenv.Redis(t)})
	t.Cleanup(func() { rdb.Close() })
	return rdb
}

var testConfig = Config{Auto: true, CheckInterval: time.Hour, LockTTL: 3 * time.Second}

func TestGuardLock(t *testing.T) {
	ctx := context.Background()
	rdb := newRedis(t)
	g := NewGuard(rdb, "svc")
	if gen, err := g.Generation(ctx); gen != "" || err != nil {
		t.Fatalf("fresh redis: generation %q, %v", gen, err)
	}
	res, pending, err := g.acquire(ctx, "t1", time.Minute)
	if res != lockTaken || pending || err != nil {
		t.Fatalf("first acquire: %v %v %v", res, pending, err)
	}
	if res, _, _ := g.acquire(ctx, "t2", time.Minute); res != lockBusy {
		t.Fatalf("second acquire: %v, want busy", res)
	}
	if ok, _ := g.complete(ctx, "t2", "gen-x"); ok {
		t.Fatal("complete with another's token succeeded")
	}
	// A rebuild that fails leaves its pending marker: the next one knows.
	if err := g.release(ctx, "t1"); err != nil {
		t.Fatal(err)
	}
	res, pending, _ = g.acquire(ctx, "t3", time.Minute)
	if res != lockTaken || !pending {
		t.Fatalf("acquire after a failed rebuild: %v pending %v, want taken and pending", res, pending)
	}
	if ok, err := g.complete(ctx, "t3", "gen-1"); !ok || err != nil {
		t.Fatalf("complete: %v %v", ok, err)
	}
	if gen, _ := g.Generation(ctx); gen != "gen-1" {
		t.Fatalf("generation %q, want gen-1", gen)
	}
	if res, _, _ := g.acquire(ctx, "t4", time.Minute); res != lockComplete {
		t.Fatalf("acquire with the state complete: %v", res)
	}
	if n := rdb.Exists(ctx, LockKey("svc"), pendingKey("svc")).Val(); n != 0 {
		t.Fatalf("%d lock keys left after completion", n)
	}
	// Redis loses everything during a rebuild: the rebuild is void.
	rdb.FlushAll(ctx)
	g.acquire(ctx, "t5", time.Minute)
	rdb.FlushAll(ctx)
	if ok, _ := g.complete(ctx, "t5", "gen-2"); ok {
		t.Fatal("a rebuild whose lock was flushed completed")
	}
}

// TestRecovererOneRebuilder: two replicas notice the loss; one rebuilds
// (the other waits for it), both see the same generation; a second loss is
// rebuilt again.
func TestRecovererOneRebuilder(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	rdb := newRedis(t)
	var rebuilds atomic.Int32
	release := make(chan struct{})
	rebuild := func(ctx context.Context, token string, lostAt time.Time) (string, error) {
		if lostAt.IsZero() || token == "" {
			t.Errorf("rebuild called with lostAt %v token %q", lostAt, token)
		}
		// Writes with the lock as guard are possible during the rebuild.
		if v, err := rdb.Get(ctx, LockKey("svc")).Result(); v != token || err != nil {
			t.Errorf("lock holds %q, %v during the rebuild, want the token", v, err)
		}
		rebuilds.Add(1)
		<-release
		return "rebuilt", nil
	}
	var reps []*Recoverer
	var wg sync.WaitGroup
	readyLog := make(chan bool, 16)
	for i := range 2 {
		onReady := func(bool) {}
		if i == 0 {
			onReady = func(ok bool) { readyLog <- ok }
		}
		r, err := New(NewGuard(rdb, "svc"), testConfig, rebuild, HasKeys(rdb, "svc:data:*"), slog.New(slog.DiscardHandler), noop.NewMeterProvider().Meter("t"), "runbook", onReady)
		if err != nil {
			t.Fatal(err)
		}
		reps = append(reps, r)
		wg.Go(func() { _ = r.Run(ctx) })
	}
	testenv.Eventually(t, 10*time.Second, "one rebuild started", func() bool { return rebuilds.Load() == 1 })
	wctx, wcancel := context.WithTimeout(ctx, 50*time.Millisecond)
	if _, err := reps[1].Wait(wctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("wait during the rebuild: %v, want deadline exceeded", err)
	}
	wcancel()
	close(release)
	var gens []string
	for _, r := range reps {
		gen, err := r.Wait(ctx)
		if err != nil {
			t.Fatal(err)
		}
		gens = append(gens, gen)
	}
	if gens[0] != gens[1] || gens[0] != rdb.Get(ctx, Key("svc")).Val() || rebuilds.Load() != 1 {
		t.Fatalf("generations %v, sentinel %q, %d rebuilds", gens, rdb.Get(ctx, Key("svc")).Val(), rebuilds.Load())
	}
	if a, b := <-readyLog, <-readyLog; a || !b {
		t.Fatalf("readiness went %v then %v, want false then true", a, b)
	}

	rdb.FlushAll(ctx)
	reps[0].Kick()
	testenv.Eventually(t, 10*time.Second, "second rebuild", func() bool {
		gen, _ := reps[1].guard.Generation(ctx)
		return rebuilds.Load() == 2 && gen != "" && gen != gens[0]
	})
	cancel()
	wg.Wait()
}

// TestRecovererAdoptsAndManual: state written before the sentinel existed
// is adopted without a rebuild; with Auto off nothing is rebuilt and Wait
// returns once a manual rebuild (Exclusive) completed.
func TestRecovererAdoptsAndManual(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	rdb := newRedis(t)
	rdb.Set(ctx, "svc:data:1", "x", 0)
	noRebuild := func(context.Context, string, time.Time) (string, error) {
		t.Error("rebuild called")
		return "", errors.New("no")
	}
	r, err := New(NewGuard(rdb, "svc"), testConfig, noRebuild, HasKeys(rdb, "svc:data:*"), slog.New(slog.DiscardHandler), noop.NewMeterProvider().Meter("t"), "runbook", nil)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() { _ = r.Run(ctx) })
	if gen, err := r.Wait(ctx); gen == "" || err != nil {
		t.Fatalf("adopted: %q, %v", gen, err)
	}

	rdb.FlushAll(ctx)
	manual := testConfig
	manual.Auto = false
	m, err := New(NewGuard(rdb, "svc"), manual, noRebuild, HasKeys(rdb, "svc:data:*"), slog.New(slog.DiscardHandler), noop.NewMeterProvider().Meter("t"), "runbook", nil)
	if err != nil {
		t.Fatal(err)
	}
	mctx, mcancel := context.WithCancel(ctx)
	wg.Go(func() { _ = m.Run(mctx) })
	m.Kick()
	wctx, wcancel := context.WithTimeout(ctx, 300*time.Millisecond)
	if _, err := m.Wait(wctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("auto off: wait returned %v before the manual rebuild", err)
	}
	wcancel()
	complete, gen, err := Exclusive(ctx, NewGuard(rdb, "svc"), time.Minute, func(ctx context.Context, token string) error {
		return rdb.Set(ctx, "svc:data:1", token, 0).Err()
	})
	if complete || gen == "" || err != nil {
		t.Fatalf("manual rebuild: %v %q %v", complete, gen, err)
	}
	if got, _ := m.Wait(ctx); got != gen {
		t.Fatalf("after the manual rebuild: generation %q, want %q", got, gen)
	}
	if complete, _, err := Exclusive(ctx, NewGuard(rdb, "svc"), time.Minute, nil); !complete || err != nil {
		t.Fatalf("manual rebuild with the state complete: %v %v", complete, err)
	}
	mcancel()
	cancel()
	wg.Wait()
}

// TestHandlerRetriesAfterLoss: a batch refused by a script (STATELOST) is
// handled again after the recovery; one that succeeded while the state was
// lost and rebuilt (the generation changed) is handled again too.
func TestHandlerRetriesAfterLoss(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	rdb := newRedis(t)
	rebuild := func(context.Context, string, time.Time) (string, error) { return "ok", nil }
	r, err := New(NewGuard(rdb, "svc"), testConfig, rebuild, nil, slog.New(slog.DiscardHandler), noop.NewMeterProvider().Meter("t"), "runbook", nil)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() { _ = r.Run(ctx) })
	calls := 0
	h := Handler(handlerFunc(func(ctx context.Context, recs []*kgo.Record) error {
		calls++
		switch calls {
		case 1:
			rdb.FlushAll(ctx)
			return errors.New("apply: " + LostPrefix + " svc state is not complete")
		case 2:
			rdb.FlushAll(ctx) // applied, but the state was lost meanwhile
			return nil
		}
		return nil
	}), r)
	if err := h.Handle(ctx, []*kgo.Record{{}}); err != nil || calls != 3 {
		t.Fatalf("handle: %v after %d calls, want nil after 3", err, calls)
	}
	cancel()
	wg.Wait()
}

type handlerFunc func(ctx context.Context, recs []*kgo.Record) error

func (f handlerFunc) Handle(ctx context.Context, recs []*kgo.Record) error { return f(ctx, recs) }
