//go:build chaos

package chaos

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/stockcast/stockcast/internal/replay"
	"github.com/stockcast/stockcast/internal/stack"
	"github.com/stockcast/stockcast/pkg/topics"
)

// replayRate paces both runs' replays (lines per second): the platform is
// still producing during both store outages of the faulty run, so the lag
// of the blocked consumers grows, and both runs see the same pace.
const replayRate = 1000

// outageHold is how long each store stays down: the length of the fault,
// during which the services' lag, commits and memory are sampled.
const outageHold = 20 * time.Second

// onePoll bounds the records one poll commits: kafkax's default of 10,000
// records a poll (the stack's services run with it) and one transaction
// marker per partition of the group's topics.
const onePoll = 10_000 + 4*partitions

// rssBound is the generous bound on every service's resident memory during
// an outage (docs/chaos.md has the measured values).
const rssBound = 1 << 30

// faults runs the fault schedule of the faulty run while the replay runs.
type faults struct {
	t          *testing.T
	st         *stack.Stack
	adm        *kadm.Client
	bin        string
	totals     map[string]int64 // records per topic of the fault-free run
	replayDone <-chan struct{}
	outages    []outage
}

// stageOf maps a service to its consumer group and input topics.
func stageOf(service string) replay.Stage {
	for _, s := range replay.Pipeline() {
		if s.Group == "stockcast-"+service {
			return s
		}
	}
	panic("no stage for " + service)
}

func (f *faults) run(ctx context.Context) error {
	// The two store outages while the platform produces: once a quarter
	// and once 55% of the order lines are on orders.v1.
	produced := func(ctx context.Context) (int64, error) {
		ends, err := f.adm.ListEndOffsets(ctx, topics.Orders)
		if err != nil {
			return 0, err
		}
		var n int64
		ends.Each(func(o kadm.ListedOffset) { n += o.Offset })
		return n, nil
	}
	if err := f.waitUntil(ctx, "orders.v1 at 25%", produced, f.totals[topics.Orders]/4); err != nil {
		return err
	}
	if err := f.outage(ctx, "clickhouse", []string{stack.Ingest, stack.Forecast}, f.st.StopClickHouse, f.st.StartClickHouse); err != nil {
		return err
	}
	if err := f.waitUntil(ctx, "orders.v1 at 55%", produced, f.totals[topics.Orders]*55/100); err != nil {
		return err
	}
	if err := f.outage(ctx, "redis", []string{stack.Ingest, stack.Feature, stack.Replenishment}, f.st.StopRedis,
		func(ctx context.Context) error { return recoverRedis(ctx, f) }); err != nil {
		return err
	}
	// Then each service killed (SIGKILL) in turn in the middle of its input
	// and started again.
	for i, svc := range stack.Services() {
		stage := stageOf(svc)
		total := f.total(stage)
		at := total * int64(70+5*i) / 100
		if err := f.waitUntil(ctx, svc+" at "+strconv.Itoa(70+5*i)+"%", f.committedFn(stage), at); err != nil {
			return err
		}
		done, err := f.committed(ctx, stage)
		if err != nil {
			return err
		}
		if done >= total {
			f.t.Errorf("faulty: %s had committed all %d records before its kill: not mid-stream", svc, total)
		}
		pid := f.st.PID(svc)
		if err := f.st.Kill(svc); err != nil {
			return err
		}
		if err := f.st.Restart(ctx, svc); err != nil {
			return err
		}
		f.t.Logf("faulty: killed %s (pid %d) at %d of %d records of %v, restarted as pid %d", svc, pid, done, total, stage.Topics, f.st.PID(svc))
	}
	return nil
}

// total is the records of a stage's input in the fault-free run.
func (f *faults) total(s replay.Stage) int64 {
	var n int64
	for _, t := range s.Topics {
		n += f.totals[t]
	}
	return n
}

func (f *faults) committedFn(s replay.Stage) func(context.Context) (int64, error) {
	return func(ctx context.Context) (int64, error) { return f.committed(ctx, s) }
}

// committed sums the group's committed offsets over its topics.
func (f *faults) committed(ctx context.Context, s replay.Stage) (int64, error) {
	resp, err := f.adm.FetchOffsets(ctx, s.Group)
	if err != nil {
		if strings.Contains(err.Error(), kerr.GroupIDNotFound.Message) {
			return 0, nil
		}
		return 0, fmt.Errorf("committed offsets of %s: %w", s.Group, err)
	}
	var n int64
	for _, t := range s.Topics {
		for _, o := range resp[t] {
			if o.Err == nil && o.At > 0 {
				n += o.At
			}
		}
	}
	return n, nil
}

// waitUntil polls value until it reaches at; it fails if the replay ends
// first (the fault would not be mid-stream).
func (f *faults) waitUntil(ctx context.Context, what string, value func(context.Context) (int64, error), at int64) error {
	for {
		v, err := value(ctx)
		if err != nil {
			return err
		}
		if v >= at {
			return nil
		}
		select {
		case <-f.replayDone:
			return fmt.Errorf("the replay ended before %s (%d of %d): %w", what, v, at, errNotMidStream)
		default:
		}
		if err := sleepCtx(ctx, 100*time.Millisecond); err != nil {
			return err
		}
	}
}

// outage is what one store outage measured.
type outage struct {
	store   string
	blocked []string
	samples []sample
	down    time.Duration // from the stop to the end of the recovery
}

// sample is one look at the system during an outage.
type sample struct {
	at        time.Duration
	committed map[string]int64 // by service (its group)
	lag       map[string]int64
	rss       map[string]int64 // bytes, by service
	dlq       int64
}

func (o outage) String() string {
	var b strings.Builder
	first, last := o.samples[0], o.samples[len(o.samples)-1]
	fmt.Fprintf(&b, "%s down %s (held %s, %d samples); lag of the blocked groups:", o.store, o.down.Round(time.Second), outageHold, len(o.samples))
	for _, s := range o.blocked {
		fmt.Fprintf(&b, " %s %d -> %d", s, first.lag[s], last.lag[s])
	}
	b.WriteString("; RSS MiB first/max/last:")
	for _, s := range stack.Services() {
		var peak int64
		for _, x := range o.samples {
			peak = max(peak, x.rss[s])
		}
		fmt.Fprintf(&b, " %s %.0f/%.0f/%.0f", s, mib(first.rss[s]), mib(peak), mib(last.rss[s]))
	}
	return b.String()
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

// outage stops a store, samples the system every second for outageHold,
// recovers, and checks backpressure: each group that needs the store
// commits at most once more (the poll in flight, which read the store
// before it stopped) and at most one poll's records, their lag grows (the
// platform keeps producing), nothing is dead-lettered, and every service's
// RSS stays under rssBound.
func (f *faults) outage(ctx context.Context, store string, blocked []string, stop func() error, recover func(context.Context) error) error {
	down := time.Now()
	if err := stop(); err != nil {
		return err
	}
	f.t.Logf("faulty: %s stopped", store)
	o := outage{store: store, blocked: blocked}
	for {
		s, err := f.sample(ctx)
		if err != nil {
			return err
		}
		s.at = time.Since(down)
		o.samples = append(o.samples, s)
		if s.at >= outageHold {
			break
		}
		if err := sleepCtx(ctx, time.Second); err != nil {
			return err
		}
	}
	if err := recover(ctx); err != nil {
		return fmt.Errorf("recover from the %s outage: %w", store, err)
	}
	o.down = time.Since(down)
	f.outages = append(f.outages, o)
	f.t.Logf("faulty: %s", o)

	// The poll in flight may have read or written the store just before it
	// stopped: it may still commit, once (each poll is one transaction),
	// however long the loaded machine takes to finish it. A second commit,
	// or more than a poll's records, means a batch went on without the
	// store.
	base, last := o.samples[0], o.samples[len(o.samples)-1]
	grew := false
	for _, svc := range blocked {
		moves := 0
		for i := 1; i < len(o.samples); i++ {
			if o.samples[i].committed[svc] != o.samples[i-1].committed[svc] {
				moves++
			}
		}
		if n := last.committed[svc] - base.committed[svc]; moves > 1 || n > onePoll {
			f.t.Errorf("faulty: %s down: %s committed %d records in %d commits during the outage (%d -> %d); at most the poll in flight (%d records) may commit",
				store, svc, n, moves, base.committed[svc], last.committed[svc], onePoll)
		}
		if last.lag[svc] > base.lag[svc] {
			grew = true
		}
	}
	if !grew {
		f.t.Errorf("faulty: %s down: the lag of no blocked group grew (%v -> %v)", store, base.lag, last.lag)
	}
	if last.dlq != o.samples[0].dlq {
		f.t.Errorf("faulty: %s down: %d records dead-lettered during the outage", store, last.dlq-o.samples[0].dlq)
	}
	for _, s := range o.samples {
		for svc, rss := range s.rss {
			if rss > rssBound {
				f.t.Errorf("faulty: %s down: %s RSS %.0f MiB at %s, bound %.0f MiB", store, svc, mib(rss), s.at, mib(rssBound))
			}
		}
	}
	return nil
}

func (f *faults) sample(ctx context.Context) (sample, error) {
	s := sample{committed: map[string]int64{}, lag: map[string]int64{}, rss: map[string]int64{}}
	for _, svc := range stack.Services() {
		stage := stageOf(svc)
		c, err := f.committed(ctx, stage)
		if err != nil {
			return s, err
		}
		ends, err := f.adm.ListEndOffsets(ctx, stage.Topics...)
		if err != nil {
			return s, err
		}
		var end int64
		ends.Each(func(o kadm.ListedOffset) { end += o.Offset })
		s.committed[svc], s.lag[svc] = c, end-c
		if pid := f.st.PID(svc); pid != 0 {
			rss, err := vmRSS(pid)
			if err != nil {
				return s, err
			}
			s.rss[svc] = rss
		}
	}
	dlqs := make([]string, 0, 6)
	for _, t := range stack.Topics() {
		if strings.HasSuffix(t, ".dlq") {
			dlqs = append(dlqs, t)
		}
	}
	ends, err := f.adm.ListEndOffsets(ctx, dlqs...)
	if err != nil {
		return s, err
	}
	ends.Each(func(o kadm.ListedOffset) { s.dlq += o.Offset })
	return s, nil
}

// vmRSS reads a process's resident set size from /proc/<pid>/status.
func vmRSS(pid int) (int64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("parse VmRSS of %d: %q: %w", pid, line, err)
			}
			return kb << 10, nil
		}
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
}
