package insight

import (
	"crypto/sha256"
	"encoding/hex"
	"math"
	"testing"
	"time"
)

// id is the alert id as documented: the first 16 bytes of
// sha256(rule NUL subject NUL occasion), in hex.
func id(rule, subject, occasion string) string {
	h := sha256.Sum256([]byte(rule + "\x00" + subject + "\x00" + occasion))
	return hex.EncodeToString(h[:])[:32]
}

func prop(id, status, decided, stockout string, lead int32, qty float64) *LatestProposal {
	return &LatestProposal{ProposalID: id, Status: status, DecidedDay: decided, StockoutDay: stockout, LeadTimeDays: lead, Quantity: qty}
}

func TestStockoutAlerts(t *testing.T) {
	st := State{Today: "2011-01-10", Series: []Series{
		{SeriesKey: "A|online", SKU: "A", Location: "online", Proposal: prop("pa", "PROPOSAL_STATUS_PROPOSED", "2011-01-10", "2011-01-12", 4, 1)},
		{SeriesKey: "B|online", SKU: "B", Location: "online", Proposal: prop("pb", "PROPOSAL_STATUS_APPROVED", "2011-01-10", "2011-01-13", 4, 1)},
		{SeriesKey: "C|online", SKU: "C", Location: "online", Proposal: prop("pc", "PROPOSAL_STATUS_PROPOSED", "2011-01-10", "2011-01-20", 4, 1)},
		{SeriesKey: "D|online", SKU: "D", Location: "online", Proposal: prop("pd", "PROPOSAL_STATUS_REJECTED", "2011-01-10", "2011-01-11", 4, 1)},
		{SeriesKey: "E|online", SKU: "E", Location: "online", Proposal: prop("pe", "PROPOSAL_STATUS_PROPOSED", "2011-01-10", "", 4, 1)},
		{SeriesKey: "F|online", SKU: "F", Location: "online", Proposal: prop("pf", "PROPOSAL_STATUS_PROPOSED", "2011-01-09", "2011-01-13", 4, 1)},
		{SeriesKey: "G|online", SKU: "G", Location: "online"},
	}}
	got := StockoutAlerts(st)
	want := []struct {
		id, sev string
		days    float64
	}{
		{id("STOCKOUT_WITHIN_LEAD_TIME", "A|online", "pa"), "CRITICAL", 2},
		{id("STOCKOUT_WITHIN_LEAD_TIME", "B|online", "pb"), "WARNING", 3},
		{id("STOCKOUT_WITHIN_LEAD_TIME", "F|online", "pf"), "WARNING", 4},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d alerts %+v, want %d", len(got), got, len(want))
	}
	for i, w := range want {
		if got[i].ID != w.id || got[i].Severity != w.sev || got[i].Value != w.days || got[i].Threshold != 4 {
			t.Errorf("alert %d = %s %s %v/%v, want %s %s %v/4", i, got[i].ID, got[i].Severity, got[i].Value, got[i].Threshold, w.id, w.sev, w.days)
		}
	}
	if s := got[0].Summary; s != "A at online: stockout projected on 2011-01-12, 2 days after 2011-01-10, within the 4-day lead time" {
		t.Errorf("summary %q", s)
	}
	// Evaluating the same state again gives the same ids.
	again := StockoutAlerts(st)
	for i := range again {
		if again[i].ID != got[i].ID {
			t.Errorf("id %d changed on re-evaluation", i)
		}
	}
	p := got[0].ToProto()
	if p.GetRule().String() != "ALERT_RULE_STOCKOUT_WITHIN_LEAD_TIME" || p.GetSeverity().String() != "ALERT_SEVERITY_CRITICAL" ||
		p.GetAlertId() != got[0].ID || p.GetLabels()["proposal_id"] != "pa" {
		t.Errorf("proto %v", p)
	}
}

func TestComputeKPIs(t *testing.T) {
	st := State{Today: "2011-01-10", Series: []Series{
		{SeriesKey: "A|x", OnHand: 10, Price: 2, ForecastStart: "2011-01-11", ForecastMeans: []float64{1, 1, 1, 1, 1, 1, 1, 5},
			Incoming: []IncomingOrder{{PurchaseOrderID: "po1", Quantity: 5, ExpectedDay: "2011-01-17"}, {PurchaseOrderID: "po2", Quantity: 3, ExpectedDay: "2011-01-18"}},
			Proposal: prop("pa", "PROPOSAL_STATUS_PROPOSED", "2011-01-10", "2011-01-12", 4, 12)},
		{SeriesKey: "B|x", OnHand: -4, Price: 3, ForecastStart: "2011-01-11", ForecastMeans: []float64{2, 2, 2, 2, 2, 2, 2},
			Proposal: prop("pb", "PROPOSAL_STATUS_APPROVED", "2011-01-10", "", 4, 20)},
		{SeriesKey: "C|x", OnHand: 3, Price: 1.5},
	}}
	k := ComputeKPIs(st, 5)
	// By hand: stock value 10×2 + 0 + 3×1.5; demand 7 + 14; served
	// min(7, 10+5) + min(14, 0); po2 arrives after the horizon.
	if k.StockValue != 24.5 || k.ExpectedDemand != 21 || k.ServedDemand != 7 || k.ProjectedFillRate == nil ||
		math.Abs(*k.ProjectedFillRate-1.0/3) > 1e-12 {
		t.Errorf("kpis %+v (fill %v)", k, k.ProjectedFillRate)
	}
	if k.Series != 3 || k.ProposalsToday != 5 || k.ProposalsOpen != 1 || k.OpenQuantity != 12 || k.IncomingOrders != 2 ||
		k.IncomingUnits != 8 || k.StockoutRisks != 1 || k.NegativeOnHand != 1 || k.Day != "2011-01-10" {
		t.Errorf("kpis %+v", k)
	}
	if k := ComputeKPIs(State{Series: []Series{{SeriesKey: "C|x", OnHand: 1, Price: 1}}}, 0); k.ProjectedFillRate != nil {
		t.Errorf("fill rate without demand = %v, want nil", *k.ProjectedFillRate)
	}
}

func days(key string, f, a []float64) []DayError {
	var out []DayError
	for i := range f {
		out = append(out, DayError{SeriesKey: key, Day: time.Date(2011, 1, 1+i, 0, 0, 0, 0, time.UTC).Format(time.DateOnly), Forecast: f[i], Actual: a[i]})
	}
	return out
}

func TestBiasAlerts(t *testing.T) {
	var es []DayError
	es = append(es, days("U|x", []float64{6, 6, 6}, []float64{5, 5, 5})...)    // +0.2: within
	es = append(es, days("V|x", []float64{4, 4, 4}, []float64{1, 1, 1})...)    // +3: critical
	es = append(es, days("W|x", []float64{10, 10, 10}, []float64{0, 0, 0})...) // nothing sold
	es = append(es, days("X|x", []float64{10, 10, 10}, []float64{5, 5, 5})...) // +1: warning (not beyond 2×)
	es = append(es, days("Y|x", []float64{1, 1, 1}, []float64{4, 4, 4})...)    // −0.75: warning
	es = append(es, days("Z|x", []float64{2, 2}, []float64{1, 1})...)          // too few days
	got := BiasAlerts(es, "2011-01-03", BiasRule{WindowDays: 7, MinDays: 3, Threshold: 0.5})
	want := []struct {
		key, sev string
		bias     float64
	}{{"V|x", "CRITICAL", 3}, {"X|x", "WARNING", 1}, {"Y|x", "WARNING", -0.75}}
	if len(got) != len(want) {
		t.Fatalf("got %+v, want %d alerts", got, len(want))
	}
	for i, w := range want {
		g := got[i]
		if g.ID != id("FORECAST_BIAS", w.key, "2011-01-03") || g.Subject != w.key || g.Severity != w.sev || math.Abs(g.Value-w.bias) > 1e-12 {
			t.Errorf("alert %d = %s %s %s %v, want %s %s %v", i, g.ID, g.Subject, g.Severity, g.Value, w.key, w.sev, w.bias)
		}
	}
	if s := got[2].Summary; s != "Y at x: forecasts undershoot by 75% over the 3 days to 2011-01-03 (forecast 3.0, sold 12.0)" {
		t.Errorf("summary %q", s)
	}
	st := Summarise("Y|x", days("Y|x", []float64{1, 3}, []float64{4, 1}))
	if st.MAE != 2.5 || *st.WAPE != 1 || *st.Bias != -0.2 {
		t.Errorf("summary stats %+v", st)
	}
	by := ByDay(append(days("A|x", []float64{1, 2}, []float64{2, 2}), days("B|x", []float64{3, 0}, []float64{1, 2})...))
	if len(by) != 2 || by[0].Day != "2011-01-01" || by[0].MAE != 1.5 || *by[0].WAPE != 1 || by[1].MAE != 1 || *by[1].Bias != -0.5 {
		t.Errorf("by day %+v", by)
	}
	if from, to, ok := ErrorWindow("2011-03-01", 7); !ok || from != "2011-02-22" || to != "2011-02-28" {
		t.Errorf("window %s..%s %v", from, to, ok)
	}
}

func TestDLQSpikeAlerts(t *testing.T) {
	base := time.Date(2026, 1, 1, 10, 0, 0, 0, time.UTC)
	at := func(s int) time.Time { return base.Add(time.Duration(s) * time.Second) }
	times := map[string][]time.Time{
		"bad_json": {at(10), at(20), at(50), at(90)},
		"no_sku":   {at(5), at(6)},
	}
	for i := 0; i < 25; i++ {
		times["stale"] = append(times["stale"], at(120+i))
	}
	got := DLQSpikeAlerts(times, DLQRule{Window: time.Minute, Threshold: 2})
	SortAlerts(got)
	want := []struct {
		reason, sev string
		start       time.Time
		rate        float64
	}{
		{"stale", "CRITICAL", at(120), 25},
		{"bad_json", "WARNING", at(0), 3},
	}
	if len(got) != len(want) {
		t.Fatalf("got %+v, want %d alerts", got, len(want))
	}
	for i, w := range want {
		g := got[i]
		if g.ID != id("DLQ_SPIKE", w.reason, w.start.Format(time.RFC3339)) || g.Severity != w.sev || g.Value != w.rate || !g.ObservedAt.Equal(w.start) {
			t.Errorf("alert %d = %+v, want %s %s %v at %s", i, g, w.reason, w.sev, w.rate, w.start)
		}
	}
}
