package replay

import (
	"context"
	"strings"
	"testing"
	"time"
)

func TestTrackerAccounting(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	tr := NewTracker()
	tr.Produced("or-2", KindPlaced, false, at(0))
	tr.Produced("or-3", KindCancelled, false, at(1))
	tr.Produced("or-4", KindPlaced, true, at(2)) // POST: not demand
	tr.Produced("or-5", KindPlaced, true, at(3)) // not demand, but rejected
	tr.Produced("or-6", KindAdjustment, false, at(4))
	tr.Produced("or-stock-A", KindInitialStock, false, at(5))
	tr.Produced("or-2", KindPlaced, false, at(6)) // registered once

	tr.Acked("or-2", at(10))
	tr.Acked("or-3", at(10))
	tr.Forecast("or-2", "A|online", at(30))  // 20ms
	tr.Forecast("or-2", "A|online", at(90))  // a redelivery: not counted again
	tr.Forecast("or-3", "B|online", at(110)) // 100ms
	tr.Forecast("or-6", "A|online", at(50))  // before its ack
	tr.Acked("or-6", at(60))                 // latency clamps to 0
	tr.Forecast("zz-1", "Z|online", at(70))  // not ours
	tr.Rejected("or-5", "price_negative", at(120))
	tr.Rejected("or-5", "price_negative", at(130)) // rejected twice (two stages): once
	tr.Rejected("or-stock-A", "", at(140))
	tr.Proposal("or-3", "p-1")
	tr.Proposal("or-3", "p-1")
	tr.Proposal("or-6", "p-2")

	s := tr.Stats()
	checks := []struct {
		name      string
		got, want int
	}{
		{"produced", s.Produced, 6},
		{"placed", s.ByKind[KindPlaced], 3},
		{"initial stock", s.ByKind[KindInitialStock], 1},
		{"forecasts", s.Forecasts, 3},
		{"forecast dups", s.ForecastDups, 1},
		{"foreign", s.Foreign, 1},
		{"series", s.Series, 2},
		{"proposals", s.Proposals, 2},
		{"rejected", s.Rejected, 2},
		{"rejected price_negative", s.ByReason["price_negative"], 1},
		{"rejected unknown", s.ByReason["unknown"], 1},
		{"rejected stock", s.RejectedKinds[KindInitialStock], 1},
		{"not demand", s.NotDemand, 1},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %d, want %d", c.name, c.got, c.want)
		}
	}
	if !s.LastArrival.Equal(at(140)) || !s.FirstProduce.Equal(at(0)) {
		t.Errorf("first produce %v, last arrival %v", s.FirstProduce, s.LastArrival)
	}
	lat := tr.Latency()
	want := Latency{Count: 3, P50: 20 * time.Millisecond, P99: 100 * time.Millisecond, Max: 100 * time.Millisecond}
	if lat != want {
		t.Errorf("latency %+v, want %+v", lat, want)
	}
	if tr.Pending() != 0 || tr.Outputs() != 11 {
		t.Errorf("pending %d, outputs %d; want 0 and 11", tr.Pending(), tr.Outputs())
	}
	if n, ids := tr.Unaccounted(5); n != 0 || len(ids) != 0 {
		t.Errorf("unaccounted %d %v, want none", n, ids)
	}
	tr.Produced("or-9", KindPlaced, false, at(200))
	tr.Produced("or-8", KindPlaced, false, at(200))
	if tr.Pending() != 2 {
		t.Errorf("pending %d, want 2", tr.Pending())
	}
	if n, ids := tr.Unaccounted(1); n != 2 || strings.Join(ids, ",") != "or-8" && strings.Join(ids, ",") != "or-9" {
		t.Errorf("unaccounted %d %v, want 2 with one example", n, ids)
	}
}

func TestQuantile(t *testing.T) {
	ms := func(v ...int) []time.Duration {
		out := make([]time.Duration, len(v))
		for i, x := range v {
			out[i] = time.Duration(x) * time.Millisecond
		}
		return out
	}
	hundred := make([]int, 100)
	for i := range hundred {
		hundred[i] = i + 1
	}
	tests := []struct {
		in       []time.Duration
		q        float64
		wantMs   int
		describe string
	}{
		{ms(7), 0.5, 7, "one value"},
		{ms(1, 2), 0.5, 1, "nearest rank of two"},
		{ms(1, 2, 3, 4), 0.99, 4, "p99 of four is the max"},
		{ms(hundred...), 0.5, 50, "p50 of 1..100"},
		{ms(hundred...), 0.99, 99, "p99 of 1..100"},
	}
	for _, tt := range tests {
		if got := quantile(tt.in, tt.q); got != time.Duration(tt.wantMs)*time.Millisecond {
			t.Errorf("%s: quantile %v = %v, want %dms", tt.describe, tt.q, got, tt.wantMs)
		}
	}
}

func TestSummaryLineAndProgress(t *testing.T) {
	tr := NewTracker()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tr.Produced("or-stock-A", KindInitialStock, false, t0)
	tr.Produced("or-2", KindPlaced, false, t0)
	tr.Produced("or-3", KindPlaced, true, t0)
	tr.Produced("or-4", KindPlaced, false, t0)
	tr.Acked("or-2", t0)
	tr.Acked("or-stock-A", t0)
	tr.Forecast("or-stock-A", "A|online", t0.Add(500*time.Millisecond))
	tr.Forecast("or-2", "A|online", t0.Add(1500*time.Millisecond))
	tr.Rejected("or-4", "quantity_absurd", t0.Add(2*time.Second))
	s := buildSummary(tr)
	want := "summary: read=3 accepted=2 rejected=1 series=1 forecasts=2 proposals=0 events_per_s=2 p99_ms=1500"
	if got := s.Line(); got != want {
		t.Errorf("line\n got %s\nwant %s", got, want)
	}
	var b strings.Builder
	s.Print(&b)
	out := b.String()
	for _, frag := range []string{"  quantity_absurd                                                         1\n",
		"  of which not demand (non-product codes: stored, no forecast)            1\n", "\n" + want + "\n"} {
		if !strings.Contains(out, frag) {
			t.Errorf("summary lacks %q:\n%s", frag, out)
		}
	}
	if !strings.HasSuffix(out, want+"\n") {
		t.Errorf("summary does not end with the summary line:\n%s", out)
	}

	line := renderProgress(tr.Stats(), 4, 2*time.Second, "waiting for the pipeline", []StageLag{{"stockcast-ingest", 0}, {"stockcast-feature", 3}})
	wantLine := "[########################] 100% produced 4/4 forecasts 2 rejected 1 proposals 0 1 ev/s 2s | waiting for the pipeline (lag ingest=0 feature=3)"
	if line != wantLine {
		t.Errorf("progress\n got %s\nwant %s", line, wantLine)
	}
}

// TestProgressCountsActorEvents: the demo loop's orders and receipts join
// the planned lines in the total (before, a replay with many of them showed
// 100% long before its end).
func TestProgressCountsActorEvents(t *testing.T) {
	tr := NewTracker()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tr.Produced("or-1", KindPlaced, false, t0)
	tr.Produced("demo-po-p1", KindPurchaseOrder, false, t0)
	tr.Forecast("or-1", "A|online", t0.Add(time.Second))
	tr.Forecast("demo-po-p1", "A|online", t0.Add(time.Second))
	line := renderProgress(tr.Stats(), 2, 2*time.Second, "", nil)
	want := "[################........]  67% produced 2/3 forecasts 2 rejected 0 proposals 0 1 ev/s 2s"
	if line != want {
		t.Errorf("progress\n got %s\nwant %s", line, want)
	}
}

func TestProgressOutput(t *testing.T) {
	tr := NewTracker()
	tr.Produced("or-2", KindPlaced, false, time.Now())
	ph := &phase{}
	ph.set("producing")
	for _, tty := range []bool{true, false} {
		var b strings.Builder
		p := NewProgress(&b, tty)
		p.start = time.Now()
		p.draw(tr.Stats(), 10, ph)
		p.draw(tr.Stats(), 10, ph)
		p.Finish(tr, 10, ph)
		out := b.String()
		if tty && (strings.Count(out, "\r") != 3 || strings.Count(out, "\n") != 1) {
			t.Errorf("tty output should redraw in place and end the line once: %q", out)
		}
		if !tty && (strings.Contains(out, "\r") || strings.Count(out, "\n") != 3) {
			t.Errorf("non-tty output should be one line per draw: %q", out)
		}
	}
}

func TestPacer(t *testing.T) {
	t0 := time.Date(2011, 1, 1, 9, 0, 0, 0, time.UTC)
	var p pacer
	ctx := context.Background()
	start := time.Now()
	if err := p.wait(ctx, t0, 36000); err != nil { // the first event sets the clock
		t.Fatal(err)
	}
	if err := p.wait(ctx, t0.Add(time.Hour), 36000); err != nil { // 1h of data at 36000x: 100ms
		t.Fatal(err)
	}
	if el := time.Since(start); el < 100*time.Millisecond {
		t.Errorf("second event after %v, want at least 100ms", el)
	}
	if err := p.wait(ctx, t0.Add(time.Minute), 36000); err != nil { // already due: no wait
		t.Fatal(err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := p.wait(cctx, t0.Add(1000*time.Hour), 36000); err == nil {
		t.Error("wait for a far event ignored the cancelled context")
	}
}
