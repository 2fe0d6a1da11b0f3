package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stockcast/stockcast/internal/stack"
	"github.com/stockcast/stockcast/pkg/chx"
	"github.com/stockcast/stockcast/pkg/forecasting"
	"github.com/stockcast/stockcast/pkg/modelregistry"
	"github.com/stockcast/stockcast/pkg/topics"
)

// demoTraining trains the global forecasting model during the demo, with
// the code of `stockcast train -data clickhouse -registry on`, once the
// history ingest stored reaches a day, and waits until the forecast
// service has loaded the promoted champion: the rest of the replay is
// scored with it, and the console's Models page shows it.
type demoTraining struct {
	at      string        // "YYYY-MM-DD": train on the days before it; "" or "off": no training
	poll    time.Duration // how often ClickHouse and the forecast service are checked
	timeout time.Duration // bound of the wait for the forecast service to load the model
	extra   []string      // more `stockcast train` flags (tests: -rounds, -top)
}

// trained is what a demo training did.
type trained struct {
	Version  string
	Status   string // the registry status it was recorded with
	To       string // last day of the training data
	Verdict  string // the comparison with the champion, when there was one
	Took     time.Duration
	LoadedIn time.Duration // from the registry record to the forecast service's load
	Output   string        // `stockcast train`'s output
}

var (
	trainedVersion = regexp.MustCompile(`artefact (gbt-[0-9a-f]+): `)
	trainedStatus  = regexp.MustCompile(`registry: (gbt-[0-9a-f]+) recorded as (\w+)`)
	trainedRange   = regexp.MustCompile(`(?m)^clickhouse \S+: \d+ series x (\d+) days from (\S+),`)
	trainedVerdict = regexp.MustCompile(`champion WRMSSE \S+, new \S+: (keep the champion|promote \S+)`)
	loadsOK        = regexp.MustCompile(`stockcast_forecast_model_loads_total\{[^}]*result="ok"[^}]*\} (\d+)`)
)

// errHistoryShort: the replay ended before the history reached the day.
var errHistoryShort = errors.New("the replay ended before its history reached the training day")

// waitForHistory polls ClickHouse until order_lines hold demand on a day
// after day+1 (ingest's partitions run at slightly different paces, so the
// day before day is complete by then) and ingest has stored what was
// produced before. After replayed is closed it checks once more and
// returns errHistoryShort.
func (d demoTraining) waitForHistory(ctx context.Context, st *stack.Stack, day forecasting.Day, replayed <-chan struct{}) error {
	conn, err := chx.Open(ctx, st.ClickHouse())
	if err != nil {
		return err
	}
	defer conn.Close()
	reached := func() bool {
		var newest string
		var n uint64
		err := conn.QueryRow(ctx, `SELECT toString(max(day)), count() FROM order_lines WHERE is_demand = 1`).Scan(&newest, &n)
		if err != nil || n == 0 {
			return false
		}
		last, err := forecasting.ParseDay(newest)
		return err == nil && last > day+1
	}
	for {
		select {
		case <-replayed:
			if reached() {
				return d.waitForIngest(ctx, st)
			}
			return errHistoryShort
		default:
		}
		if reached() {
			return d.waitForIngest(ctx, st)
		}
		if err := sleepCtx(ctx, d.poll); err != nil {
			return err
		}
	}
}

// waitForIngest waits until ingest has committed the raw topics' current
// end offsets: the replay produces in time order, so every line of the
// days before the one seen in ClickHouse was produced before now, and
// ingest commits only what it stored.
func (d demoTraining) waitForIngest(ctx context.Context, st *stack.Stack) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(st.Brokers()...))
	if err != nil {
		return fmt.Errorf("kafka client: %w", err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	raw := []string{topics.Orders, topics.Inventory, topics.Catalog}
	ends, err := adm.ListEndOffsets(ctx, raw...)
	if err != nil {
		return fmt.Errorf("list end offsets of %v: %w", raw, err)
	}
	if err := ends.Error(); err != nil {
		return fmt.Errorf("list end offsets of %v: %w", raw, err)
	}
	for {
		committed, err := adm.FetchOffsets(ctx, ingestGroup)
		if err == nil {
			behind := false
			ends.Each(func(o kadm.ListedOffset) {
				if o.Offset == 0 {
					return
				}
				if c, ok := committed.Lookup(o.Topic, o.Partition); !ok || c.Err != nil || c.At < o.Offset {
					behind = true
				}
			})
			if !behind {
				return nil
			}
		}
		if err := sleepCtx(ctx, d.poll); err != nil {
			return err
		}
	}
}

// ingestGroup is ingest's consumer group (docs/design.md).
const ingestGroup = "stockcast-ingest"

// run waits for the history, trains on the days before d.at and
// promotes the model if it is better than the champion (or there is none),
// and waits until the forecast service loaded it (or the timeout).
func (d demoTraining) run(ctx context.Context, st *stack.Stack, replayed <-chan struct{}, modelsDir, logPath string) (trained, error) {
	day, err := forecasting.ParseDay(d.at)
	if err != nil {
		return trained{}, fmt.Errorf("demo training day: %w", err)
	}
	if err := d.waitForHistory(ctx, st, day, replayed); err != nil {
		return trained{}, fmt.Errorf("wait for the history to reach %s: %w", d.at, err)
	}
	return d.train(ctx, st, (day - 1).String(), modelsDir, logPath)
}

// train trains on the history up to the day to ("": all of it), records
// the model in the registry (promoted if better than the champion on the
// same days, or if there is none) and, when promoted, waits until the
// forecast service loaded it.
func (d demoTraining) train(ctx context.Context, st *stack.Stack, to, modelsDir, logPath string) (trained, error) {
	ch := st.ClickHouse()
	loadsBefore, _ := modelLoads(ctx, st)
	res := trained{To: to}
	args := []string{"-data", "clickhouse", "-registry", "on", "-promote", "auto",
		"-out", modelsDir, "-clickhouse.addr", ch.Addr, "-clickhouse.database", ch.Database}
	if to != "" {
		args = append(args, "-to", to)
	}
	args = append(args, d.extra...)
	var out bytes.Buffer
	start := time.Now()
	err := runTrain(ctx, &env{getenv: func(string) string { return "" }, stdout: &out, stderr: &out}, args)
	res.Took = time.Since(start)
	res.Output = out.String()
	if werr := os.WriteFile(logPath, out.Bytes(), 0o644); werr != nil {
		err = errors.Join(err, fmt.Errorf("write the training log: %w", werr))
	}
	if err != nil {
		return res, fmt.Errorf("train: %w (log %s)", err, logPath)
	}
	if m := trainedVersion.FindStringSubmatch(res.Output); m != nil {
		res.Version = m[1]
	}
	if m := trainedStatus.FindStringSubmatch(res.Output); m != nil && m[1] == res.Version {
		res.Status = m[2]
	}
	if m := trainedRange.FindStringSubmatch(res.Output); m != nil {
		days, _ := strconv.Atoi(m[1])
		if first, err := forecasting.ParseDay(m[2]); err == nil && days > 0 {
			res.To = (first + forecasting.Day(days-1)).String()
		}
	}
	if m := trainedVerdict.FindStringSubmatch(res.Output); m != nil {
		res.Verdict = m[0]
	}
	if res.Version == "" || res.Status == "" {
		return res, fmt.Errorf("train: no version or registry status in its output (log %s)", logPath)
	}
	if res.Status != modelregistry.StatusChampion || strings.Contains(res.Verdict, "keep the champion") {
		return res, nil // the service keeps the model it has
	}
	recorded := time.Now()
	deadline := time.Now().Add(d.timeout)
	for {
		n, err := modelLoads(ctx, st)
		if err == nil && n > loadsBefore {
			res.LoadedIn = time.Since(recorded)
			return res, nil
		}
		if time.Now().After(deadline) {
			return res, fmt.Errorf("the forecast service did not load %s within %v (last: %d loads, %v)", res.Version, d.timeout, n, err)
		}
		if err := sleepCtx(ctx, d.poll); err != nil {
			return res, err
		}
	}
}

// modelLoads reads the forecast service's count of successful model loads.
func modelLoads(ctx context.Context, st *stack.Stack) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+st.Admin(stack.Forecast)+"/metrics", nil)
	if err != nil {
		return 0, err
	}
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	m := loadsOK.FindSubmatch(body)
	if m == nil {
		return 0, nil // no load yet: the counter is not exported before
	}
	return strconv.Atoi(string(m[1]))
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// print tells what the training did, in a few lines.
func (r trained) print(w io.Writer, logPath string) {
	fmt.Fprintf(w, "model: %s trained on the history up to %s in %s, recorded as %s (log %s)\n",
		r.Version, r.To, r.Took.Round(time.Second), r.Status, filepath.Base(logPath))
	if r.Verdict != "" {
		fmt.Fprintf(w, "model: %s\n", r.Verdict)
	}
	if r.LoadedIn > 0 {
		fmt.Fprintf(w, "model: the forecast service loaded %s %s after its promotion; its forecasts carry the version from then on\n",
			r.Version, r.LoadedIn.Round(100*time.Millisecond))
	}
}
