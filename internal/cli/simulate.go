package cli

import (
	"context"
	"flag"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/stockcast/stockcast/pkg/forecasting"
	"github.com/stockcast/stockcast/pkg/replenish"
	"github.com/stockcast/stockcast/pkg/simulate"
)

// simulateFlags are the flags of `stockcast simulate`.
type simulateFlags struct {
	dataset      string
	m5, retail   string
	lead, review int
	evalDays     int
	minSaleDays  int
	target       float64
	workers      int
	moq, pack    float64
	maxOrder     float64
	plot         string
	maxCover     int
	peakFactor   float64
	maxSeries    int
	policies     string
	band         float64
	maxLevel     float64
	intermittent string
	historyDays  int
	jitter       bool
	targets      string
	censored     string
	shortage     string
	classes      string
}

func (f *simulateFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.dataset, "dataset", "m5", "demand to replay: m5 (tiny_m5, valued at its sell prices) or online-retail (daily aggregates)")
	fs.StringVar(&f.m5, "m5", "data/m5-tiny/tiny_m5_long.csv.gz", "tiny_m5 long CSV(.gz)")
	fs.StringVar(&f.retail, "online-retail", "data/online-retail/online_retail.csv.gz", "Online Retail CSV(.gz)")
	fs.IntVar(&f.lead, "lead-time", 7, "supplier lead time, days")
	fs.IntVar(&f.review, "review", 7, "review period, days")
	fs.IntVar(&f.evalDays, "eval-days", 0, "simulated days at the end of the data, the days before are warm-up history (0: the last 728 for m5, the second half for online-retail)")
	fs.IntVar(&f.minSaleDays, "min-sale-days", 100, "online-retail: keep products sold on at least this many days")
	fs.Float64Var(&f.target, "target", 0.95, "stockcast's fill-rate target the summary compares at")
	fs.IntVar(&f.workers, "workers", runtime.GOMAXPROCS(0), "simulations run in parallel")
	fs.Float64Var(&f.moq, "moq", 0, "minimum order quantity (0: none)")
	fs.Float64Var(&f.pack, "pack", 1, "pack size: orders are multiples of it")
	fs.Float64Var(&f.maxOrder, "max-order", 0, "largest order (0: none)")
	fs.IntVar(&f.maxCover, "max-cover-days", 0, "stockcast-uniform only: its order-up-to level holds at most this many days of its forecast mean demand (0: no cap)")
	fs.Float64Var(&f.peakFactor, "peak-factor", 0, "stockcast-uniform only: its order-up-to level is at most this multiple of the largest sales of lead time + review period days in the last year (0: no cap)")
	fs.StringVar(&f.plot, "plot", "", "write the fill rate vs inventory value curves to this PNG file")
	fs.IntVar(&f.maxSeries, "max-series", 0, "simulate at most this many series (0: all)")
	fs.Float64Var(&f.band, "class-band", 0.02, "stockcast holds each demand class's expected fill rate within this much of the target (0: one lambda for the whole portfolio, no per-class bounds)")
	fs.Float64Var(&f.maxLevel, "max-level-factor", 0, "stockcast never orders a series above this multiple of its largest sales of lead time + review period days in the last year; the allocation serves the target through the others (0: no limit)")
	fs.StringVar(&f.intermittent, "intermittent", simulate.IntermittentForecast, "stockcast's lead-time demand for the series its own class (from the last -history-days of sales) calls intermittent or lumpy: compound (Markov occurrence, the series' own sizes, convolved exactly), compound-iid (independent occurrence), compound-windows (the number of demand days from the series' own windows of as many days) or forecast (the forecast's, as for the other series; the compound models under-serve these classes, see docs/replenishment.md)")
	fs.StringVar(&f.classes, "classes", simulate.ClassesHistory, "demand classes reported per class and held by stockcast's -class-band: history (each series' Syntetos-Boylan class from its last 364 days before the simulation, what a planner knows on day one) or simulated (the report's class from the simulated days, known only afterwards; stockcast's band then holds its forecast's own class, from the sales seen)")
	fs.IntVar(&f.historyDays, "history-days", simulate.DefaultHistoryDays, "days of its own sales stockcast's class and compound demand are estimated from")
	fs.StringVar(&f.censored, "censored", simulate.CensoredImpute, "how stockcast's forecasts learn from a day that ended with an empty shelf: impute (E[demand | demand >= sales] under the forecast of that day) or drop (left out, as the forecast service does)")
	fs.StringVar(&f.shortage, "shortage", simulate.ShortageBackorder, "how stockcast counts a level's expected shortage: backorder (the backorder formula, the target corrected by (1-f)/f) or lost-sales (the units lost during the lead time stay on the shelf, at their mean: replenish.LostSalesShortage; calibrated on Poisson demand but costlier on tiny_m5, see docs/replenishment.md)")
	fs.BoolVar(&f.jitter, "jitter", false, "jitter the compound demand's sizes (Willemain's bootstrap jitter, centred)")
	fs.StringVar(&f.targets, "targets", "", "stockcast's fill-rate targets, comma-separated (default: the sweep 0.6..0.995); must include -target")
	fs.StringVar(&f.policies, "policies", "stockcast,classic,seasonal-naive,odoo-minmax",
		"policies to run, comma-separated: stockcast, classic, seasonal-naive, odoo-minmax, stockcast-uniform (stockcast's forecasts with the same target for every series)")
}

func runSimulate(ctx context.Context, e *env, args []string) error {
	fs := flag.NewFlagSet("simulate", flag.ContinueOnError)
	var f simulateFlags
	f.register(fs)
	if err := e.parse(fs, args); err != nil {
		return err
	}
	start := time.Now()
	var series []simulate.Series
	var err error
	switch f.dataset {
	case "m5":
		series, err = simulate.LoadM5(f.m5)
	case "online-retail":
		series, err = simulate.LoadOnlineRetail(f.retail, f.minSaleDays)
	default:
		return fmt.Errorf("simulate: unknown -dataset %q (m5, online-retail)", f.dataset)
	}
	if err != nil {
		return err
	}
	if len(series) == 0 {
		return fmt.Errorf("simulate: no series in %s", f.dataset)
	}
	cfg := simulate.Config{
		LeadTimeDays:   f.lead,
		ReviewDays:     f.review,
		MaxCoverDays:   f.maxCover,
		PeakFactor:     f.peakFactor,
		ClassBand:      f.band,
		MaxLevelFactor: f.maxLevel,
		Intermittent:   f.intermittent,
		HistoryDays:    f.historyDays,
		Jitter:         f.jitter,
		Censored:       f.censored,
		Shortage:       f.shortage,
		Constraints:    replenish.Policy{MOQ: f.moq, PackSize: f.pack, MaxOrder: f.maxOrder},
	}
	evalDays := f.evalDays
	if evalDays == 0 {
		evalDays = min(728, len(series[0].Demand)/2)
	}
	series, cfg.WarmupDays, err = simulate.Prepare(series, evalDays)
	if err != nil {
		return err
	}
	if f.maxSeries > 0 && len(series) > f.maxSeries {
		series = series[:f.maxSeries]
	}
	switch f.classes {
	case simulate.ClassesHistory:
		cfg.Classes = make([]forecasting.Class, len(series))
		for i, s := range series {
			cfg.Classes[i] = s.Class
		}
	case simulate.ClassesSimulated:
		for i := range series {
			series[i].Class = series[i].SimulatedClass
		}
	default:
		return fmt.Errorf("simulate: unknown -classes %q (history, simulated)", f.classes)
	}
	switch f.intermittent {
	case simulate.IntermittentCompound, simulate.IntermittentCompoundIID, simulate.IntermittentCompoundWindows, simulate.IntermittentForecast:
	default:
		return fmt.Errorf("simulate: unknown -intermittent %q (compound, compound-iid, forecast)", f.intermittent)
	}
	if f.shortage != simulate.ShortageBackorder && f.shortage != simulate.ShortageLostSales {
		return fmt.Errorf("simulate: unknown -shortage %q (backorder, lost-sales)", f.shortage)
	}
	if f.censored != simulate.CensoredImpute && f.censored != simulate.CensoredDrop {
		return fmt.Errorf("simulate: unknown -censored %q (impute, drop)", f.censored)
	}
	specs, err := pickSpecs(f.policies)
	if err != nil {
		return err
	}
	if f.targets != "" {
		var ts []float64
		for _, v := range strings.Split(f.targets, ",") {
			t, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil || !(t > 0 && t < 1) {
				return fmt.Errorf("simulate: -targets: %q is not a fill rate in (0, 1)", v)
			}
			ts = append(ts, t)
		}
		if !slices.Contains(ts, f.target) {
			return fmt.Errorf("simulate: -targets must include -target %g", f.target)
		}
		for i := range specs {
			if specs[i].Name == "stockcast" {
				specs[i].Targets = ts
			}
		}
	}
	fmt.Fprintf(e.stderr, "simulate: %d series of %s, %d warm-up + %d simulated days, lead time %d, review %d days, %d workers\n",
		len(series), f.dataset, cfg.WarmupDays, len(series[0].Demand)-cfg.WarmupDays, f.lead, f.review, f.workers)
	points, err := simulate.Sweep(ctx, series, specs, cfg, f.workers)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stderr, "simulate: %d runs in %s\n", len(points)*len(series), time.Since(start).Round(time.Millisecond))
	fmt.Fprintf(e.stdout, "stockcast simulate -dataset %s: %d series, %d simulated days each (the first %d not measured), lead time %d days, review every %d days, pack %g, moq %g, max order %g\n\n",
		f.dataset, len(series), len(series[0].Demand)-cfg.WarmupDays, f.lead+f.review, f.lead, f.review, f.pack, f.moq, f.maxOrder)
	if err := simulate.WriteTable(e.stdout, points, specs, f.target); err != nil {
		return err
	}
	if f.plot != "" {
		file, err := os.Create(f.plot)
		if err != nil {
			return fmt.Errorf("simulate: %w", err)
		}
		if err := simulate.Plot(file, points, specs); err != nil {
			file.Close()
			return err
		}
		if err := file.Close(); err != nil {
			return fmt.Errorf("simulate: %w", err)
		}
	}
	return nil
}

// pickSpecs returns the named policies, in the order named; stockcast must
// be one of them (the summary compares with it).
func pickSpecs(names string) ([]simulate.Spec, error) {
	all := map[string]simulate.Spec{}
	for _, sp := range append(simulate.Specs(), simulate.UniformSpec()) {
		all[sp.Name] = sp
	}
	var out []simulate.Spec
	seen := map[string]bool{}
	for _, n := range strings.Split(names, ",") {
		n = strings.TrimSpace(n)
		sp, ok := all[n]
		if !ok {
			return nil, fmt.Errorf("simulate: unknown policy %q in -policies", n)
		}
		if !seen[n] {
			out = append(out, sp)
			seen[n] = true
		}
	}
	if !seen["stockcast"] {
		return nil, fmt.Errorf("simulate: -policies must include stockcast")
	}
	return out, nil
}
