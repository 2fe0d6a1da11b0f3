package cli

import (
	"context"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stockcast/stockcast/internal/stack/stacktest"
	"github.com/stockcast/stockcast/pkg/retail"
	"github.com/stockcast/stockcast/pkg/testenv"
)

func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }

const dataFile = "../../data/online-retail/online_retail.csv.gz"

// syncBuffer is a strings.Builder safe for the command's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func noEnv(string) string { return "" }

func TestRunCommands(t *testing.T) {
	tests := []struct {
		args       []string
		wantErr    string
		wantStdout string
	}{
		{args: nil, wantStdout: "bench-pipeline"},
		{args: []string{"help"}, wantStdout: "usage: stockcast"},
		{args: []string{"version"}, wantStdout: "stockcast "},
		{args: []string{"frobnicate"}, wantErr: `unknown command "frobnicate"`},
		{args: []string{"demo", "--speed", "-1"}, wantErr: "replay speed -1"},
		{args: []string{"demo", "extra"}, wantErr: "unexpected arguments"},
		{args: []string{"bench-pipeline", "--n", "0"}, wantErr: "want at least 1"},
		{args: []string{"replay", "--kafka.brokers", "", "--limit", "-3"}, wantErr: "replay limit -3"},
		{args: []string{"loadgen", "--forecast.flag", "memory.limit=1GiB"}, wantErr: "want a flag such as -memory.limit"},
		{args: []string{"demo", "-h"}},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			var out, errOut syncBuffer
			err := Run(context.Background(), tt.args, noEnv, &out, &errOut)
			if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("Run(%q) = %v, want error containing %q", tt.args, err, tt.wantErr)
			}
			if !strings.Contains(out.String(), tt.wantStdout) {
				t.Errorf("stdout %q lacks %q", out.String(), tt.wantStdout)
			}
		})
	}
}

func TestEnvironmentOverlay(t *testing.T) {
	env := map[string]string{"STOCKCAST_SPEED": "-2"}
	err := Run(context.Background(), []string{"demo"}, func(k string) string { return env[k] }, &syncBuffer{}, &syncBuffer{})
	if err == nil || !strings.Contains(err.Error(), "replay speed -2") {
		t.Fatalf("STOCKCAST_SPEED not applied: %v", err)
	}
}

// expected computes what the pipeline must report for the first n lines
// from the data alone: every accepted line gets a forecast except order
// lines of non-product codes, and every initial stock snapshot gets one.
type expected struct {
	read, notDemand, forecasts, series int
}

func expectFor(t *testing.T, n int) expected {
	t.Helper()
	lines, err := retail.ReadAll(dataFile, n)
	if err != nil {
		t.Fatal(err)
	}
	series := map[string]bool{}
	var e expected
	for _, l := range lines {
		ev, err := retail.Map(l)
		if err != nil {
			t.Fatal(err)
		}
		e.read++
		if ev.Order != nil && !retail.IsProduct(l.StockCode) {
			e.notDemand++
			continue
		}
		e.forecasts++
		series[ev.Key()] = true
	}
	for _, s := range retail.InitialStock(lines) {
		e.forecasts++
		series[s.GetSku()+"|"+s.GetLocation()] = true
	}
	e.series = len(series)
	return e
}

var summaryLine = regexp.MustCompile(`(?m)^summary: read=(\d+) accepted=(\d+) rejected=(\d+) series=(\d+) forecasts=(\d+) proposals=(\d+) events_per_s=(\d+) p99_ms=(\d+)$`)

// TestDemo runs `stockcast demo` on the first 3,000 lines through the real
// services and checks the summary against numbers derived from the data.
func TestDemo(t *testing.T) {
	bin := stacktest.BuildServices(t)
	dir := t.TempDir() + "/demo"
	const n = 3000
	want := expectFor(t, n)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var out, errOut syncBuffer
	args := []string{"demo", "--dir", dir, "--bin-dir", bin, "--limit", strconv.Itoa(n), "--partitions", "3",
		"--data", dataFile, "--stall-timeout", "2m", "--log.level", "warn"}
	err := Run(ctx, args, noEnv, &out, &errOut)
	t.Logf("stdout:\n%s\nstderr:\n%s", out.String(), errOut.String())
	if err != nil {
		t.Fatalf("demo: %v", err)
	}
	m := summaryLine.FindStringSubmatch(out.String())
	if m == nil {
		t.Fatal("no summary line")
	}
	got := func(i int) int { v, _ := strconv.Atoi(m[i]); return v }
	// The first 3,000 lines hold nothing ingest rejects (no negative price,
	// no absurd quantity), so every line is accepted.
	checks := []struct {
		name      string
		got, want int
	}{
		{"read", got(1), want.read},
		{"accepted", got(2), want.read},
		{"rejected", got(3), 0},
		{"series", got(4), want.series},
		{"forecasts", got(5), want.forecasts},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %d, want %d", c.name, c.got, c.want)
		}
	}
	if got(7) <= 0 || got(8) <= 0 {
		t.Errorf("events_per_s %d and p99_ms %d should be positive", got(7), got(8))
	}
	if !strings.Contains(out.String(), "what the APIs say about 85123A|online") {
		t.Error("stdout lacks the API showcase")
	}
	if !strings.HasSuffix(out.String(), m[0]+"\n") {
		t.Error("the summary line is not the last line of stdout")
	}
	if left, err := stacktest.ProcessesMentioning(dir, bin); err != nil || len(left) > 0 {
		t.Errorf("processes left after the demo: %v %v", left, err)
	}
}

// TestDemoInterrupted cancels the demo (Ctrl-C) while it replays: it must
// stop everything and return without error.
func TestDemoInterrupted(t *testing.T) {
	bin := stacktest.BuildServices(t)
	dir := t.TempDir() + "/demo"
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out, errOut syncBuffer
	done := make(chan error, 1)
	go func() {
		// Paced at 60x, the replay takes hours: it is surely running when cancelled.
		done <- Run(ctx, []string{"demo", "--dir", dir, "--bin-dir", bin, "--speed", "60", "--partitions", "3",
			"--data", dataFile, "--log.level", "warn"}, noEnv, &out, &errOut)
	}()
	testenv.Eventually(t, 3*time.Minute, "the demo to start replaying", func() bool {
		return strings.Contains(errOut.String(), "produced")
	})
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("interrupted demo = %v\nstdout:\n%s", err, out.String())
		}
	case <-time.After(2 * time.Minute):
		t.Fatal("demo did not stop within 2 minutes of the interrupt")
	}
	if !strings.Contains(out.String(), "interrupted") {
		t.Errorf("stdout:\n%s", out.String())
	}
	if left, err := stacktest.ProcessesMentioning(dir, bin); err != nil || len(left) > 0 {
		t.Errorf("processes left after the interrupt: %v %v", left, err)
	}
}

// TestBenchPipeline runs a small benchmark and checks the shape of its result.
func TestBenchPipeline(t *testing.T) {
	bin := stacktest.BuildServices(t)
	dir := t.TempDir() + "/bench"
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var out, errOut syncBuffer
	err := Run(ctx, []string{"bench-pipeline", "--dir", dir, "--bin-dir", bin, "--n", "2000", "--latency-n", "1000", "--partitions", "3",
		"--data", dataFile, "--stall-timeout", "2m", "--log.level", "warn"}, noEnv, &out, &errOut)
	t.Logf("stdout:\n%s", out.String())
	if err != nil {
		t.Fatalf("bench-pipeline: %v", err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	last := lines[len(lines)-1]
	var eps, raw, p50, p99 int
	if _, err := fmt.Sscanf(last, "summary: events_per_s=%d raw_broker_per_s=%d p50_ms=%d p99_ms=%d", &eps, &raw, &p50, &p99); err != nil {
		t.Fatalf("summary line %q: %v", last, err)
	}
	if eps <= 0 || raw <= 0 || p50 < 0 || p99 < p50 {
		t.Errorf("summary %q: want positive rates and p99 >= p50", last)
	}
	if !strings.Contains(out.String(), "summary: read=2000 ") || !strings.Contains(out.String(), "ratio") {
		t.Errorf("stdout lacks the pipeline summary or the ratio")
	}
	// The latency run replays the next 1,000 lines (no initial stock) at a steady rate.
	if !strings.Contains(out.String(), "(c) latency: replay the next 1000 lines") || !strings.Contains(out.String(), "summary: read=1000 accepted=1000 ") {
		t.Errorf("stdout lacks the steady-rate latency run of the next 1000 lines")
	}
}

// TestKeepRunningThenReplay leaves a demo stack running, replays the same
// lines into it with the replay command, and expects the replay to notice
// that ingest drops them as duplicates; then Ctrl-C stops the demo.
func TestKeepRunningThenReplay(t *testing.T) {
	bin := stacktest.BuildServices(t)
	dir := t.TempDir() + "/demo"
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out, errOut syncBuffer
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, []string{"demo", "--dir", dir, "--bin-dir", bin, "--limit", "500", "--partitions", "3",
			"--data", dataFile, "--keep-running", "--log.level", "warn"}, noEnv, &out, &errOut)
	}()
	testenv.Eventually(t, 3*time.Minute, "the demo to finish its replay", func() bool {
		return strings.Contains(out.String(), "the stack keeps running")
	})
	m := regexp.MustCompile(`kafka \(embedded\)\s+(\S+)`).FindStringSubmatch(out.String())
	if m == nil {
		t.Fatalf("no broker address in:\n%s", out.String())
	}

	var rout syncBuffer
	rctx, rcancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer rcancel()
	err := Run(rctx, []string{"replay", "--kafka.brokers", m[1], "--limit", "500", "--data", dataFile,
		"--stall-timeout", "1m", "--log.level", "warn"}, noEnv, &rout, &syncBuffer{})
	if err == nil || !strings.Contains(err.Error(), "replayed into this system already") {
		t.Fatalf("second replay = %v, want the duplicate diagnosis\n%s", err, rout.String())
	}
	if !strings.Contains(rout.String(), "summary: read=500 accepted=500 rejected=0 series=0 forecasts=0 ") {
		t.Errorf("second replay summary:\n%s", rout.String())
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("demo = %v", err)
		}
	case <-time.After(2 * time.Minute):
		t.Fatal("demo did not stop within 2 minutes of the interrupt")
	}
	if left, err := stacktest.ProcessesMentioning(dir, bin); err != nil || len(left) > 0 {
		t.Errorf("processes left: %v %v", left, err)
	}
}
