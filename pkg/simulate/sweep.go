package simulate

import (
	"context"
	"fmt"
	"io"
	"math"
	"sort"
	"sync"

	"github.com/stockcast/stockcast/pkg/forecasting"
)

// Point is one policy at one target, over all series.
type Point struct {
	Policy string
	Target float64
	Total  Result
	// ByClass splits Total by the series' demand class.
	ByClass map[forecasting.Class]Result
}

// Sweep runs every policy of specs at every one of its targets on every
// series, spread over workers goroutines. Points come in the order of specs
// and targets; the results do not depend on workers.
func Sweep(ctx context.Context, series []Series, specs []Spec, c Config, workers int) ([]Point, error) {
	type job struct{ spec, target int }
	var jobs []job
	for i, sp := range specs {
		for j := range sp.Targets {
			jobs = append(jobs, job{i, j})
		}
	}
	// results[job][series]
	results := make([][]Result, len(jobs))
	for i := range results {
		results[i] = make([]Result, len(series))
	}
	// A task is one series of a per-series policy, or all the series of
	// a portfolio policy (series = -1).
	type task struct{ job, series int }
	tasks := make(chan task)
	errs := make(chan error, max(workers, 1))
	fail := func(err error) {
		select {
		case errs <- err:
		default:
		}
	}
	var wg sync.WaitGroup
	for range max(workers, 1) {
		wg.Go(func() {
			for t := range tasks {
				j := jobs[t.job]
				sp := specs[j.spec]
				target := sp.Targets[j.target]
				if t.series < 0 {
					rs, err := RunPortfolio(series, sp.NewPortfolio(target, c, len(series)), c)
					if err != nil {
						fail(err)
						continue
					}
					copy(results[t.job], rs)
					continue
				}
				r, err := Run(series[t.series], sp.New(target, c), c)
				if err != nil {
					fail(err)
					continue
				}
				results[t.job][t.series] = r
			}
		})
	}
	var all []task // portfolio tasks first: they are the longest
	for j, jb := range jobs {
		if specs[jb.spec].NewPortfolio != nil {
			all = append(all, task{j, -1})
		}
	}
	for s := range series {
		for j, jb := range jobs {
			if specs[jb.spec].NewPortfolio == nil {
				all = append(all, task{j, s})
			}
		}
	}
feed:
	for _, t := range all {
		select {
		case tasks <- t:
		case <-ctx.Done():
			break feed
		}
	}
	close(tasks)
	wg.Wait()
	select {
	case err := <-errs:
		return nil, err
	default:
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	points := make([]Point, len(jobs))
	for i, j := range jobs {
		p := Point{Policy: specs[j.spec].Name, Target: specs[j.spec].Targets[j.target], ByClass: map[forecasting.Class]Result{}}
		for s, r := range results[i] {
			p.Total.Add(r)
			c := p.ByClass[series[s].Class]
			c.Add(r)
			p.ByClass[series[s].Class] = c
		}
		points[i] = p
	}
	return points, nil
}

// Curve returns a policy's points sorted by achieved fill rate.
func Curve(points []Point, policy string) []Point {
	var out []Point
	for _, p := range points {
		if p.Policy == policy {
			out = append(out, p)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Total.FillRate() < out[j].Total.FillRate() })
	return out
}

// ValueAtFill interpolates a curve's average inventory value linearly at
// an achieved fill rate; NaN when the curve does not reach it on both sides.
// Where a noisy curve crosses the fill rate more than once, the cheapest
// crossing counts (the most favourable reading for the policy).
func ValueAtFill(curve []Point, fill float64) float64 {
	best := math.NaN()
	for i := 1; i < len(curve); i++ {
		a, b := curve[i-1].Total, curve[i].Total
		fa, fb := a.FillRate(), b.FillRate()
		if !(fa <= fill && fill <= fb) {
			continue
		}
		v := a.AvgOnHandValue()
		if fb > fa {
			v += (b.AvgOnHandValue() - a.AvgOnHandValue()) * (fill - fa) / (fb - fa)
		}
		if math.IsNaN(best) || v < best {
			best = v
		}
	}
	return best
}

// Summary is the headline comparison at stockcast's calibration target.
type Summary struct {
	// Stockcast at the target fill rate: achieved fill and inventory value.
	Fill, Value float64
	// Each baseline's inventory value interpolated at that achieved fill.
	Baselines map[string]float64
}

// Summarize compares stockcast at target with every other policy's curve.
func Summarize(points []Point, target float64) (Summary, error) {
	var sc *Point
	for i := range points {
		if points[i].Policy == "stockcast" && points[i].Target == target {
			sc = &points[i]
		}
	}
	if sc == nil {
		return Summary{}, fmt.Errorf("no stockcast point at target %v", target)
	}
	s := Summary{Fill: sc.Total.FillRate(), Value: sc.Total.AvgOnHandValue(), Baselines: map[string]float64{}}
	for _, p := range points {
		if p.Policy != "stockcast" {
			if _, ok := s.Baselines[p.Policy]; !ok {
				s.Baselines[p.Policy] = ValueAtFill(Curve(points, p.Policy), s.Fill)
			}
		}
	}
	return s, nil
}

// classes in report order.
var classes = []forecasting.Class{forecasting.ClassSmooth, forecasting.ClassErratic,
	forecasting.ClassIntermittent, forecasting.ClassLumpy, forecasting.ClassNew}

// WriteTable writes the points as a Markdown table, then stockcast's fill
// rate per demand class at target, then the summary line.
func WriteTable(w io.Writer, points []Point, specs []Spec, target float64) error {
	knob := map[string]string{}
	for _, sp := range specs {
		knob[sp.Name] = sp.Knob
	}
	fmt.Fprintln(w, "| policy | knob | target | fill rate | cycle SL | stockout days | lost units | lost value | avg on hand | avg value | orders |")
	fmt.Fprintln(w, "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
	for _, p := range points {
		r := p.Total
		fmt.Fprintf(w, "| %s | %s | %g | %.2f%% | %.2f%% | %d | %.0f | %.0f | %.0f | %.0f | %d |\n",
			p.Policy, knob[p.Policy], p.Target, 100*r.FillRate(), 100*r.CycleServiceLevel(), r.StockoutDays,
			r.LostUnits, r.LostValue, r.AvgOnHandUnits(), r.AvgOnHandValue(), r.Orders)
	}
	for _, p := range points {
		if p.Policy != "stockcast" || p.Target != target {
			continue
		}
		fmt.Fprintf(w, "\nstockcast at a %g fill-rate target, by demand class:\n\n", target)
		fmt.Fprintln(w, "| class | series | fill rate | cycle SL | avg value |")
		fmt.Fprintln(w, "|---|---:|---:|---:|---:|")
		for _, c := range classes {
			r, ok := p.ByClass[c]
			if !ok {
				continue
			}
			fmt.Fprintf(w, "| %s | %d | %.2f%% | %.2f%% | %.0f |\n", c, r.Series, 100*r.FillRate(), 100*r.CycleServiceLevel(), r.AvgOnHandValue())
		}
	}
	s, err := Summarize(points, target)
	if err != nil {
		return err
	}
	writeClassComparison(w, points, specs, s.Fill)
	names := make([]string, 0, len(s.Baselines))
	for n := range s.Baselines {
		names = append(names, n)
	}
	sort.Strings(names)
	fmt.Fprintf(w, "\ninventory value at stockcast's achieved fill rate %.2f%%:\n\n", 100*s.Fill)
	fmt.Fprintf(w, "| policy | avg value | stockcast saves |\n|---|---:|---:|\n| stockcast | %.0f | |\n", s.Value)
	for _, n := range names {
		v := s.Baselines[n]
		if math.IsNaN(v) {
			fmt.Fprintf(w, "| %s | curve does not reach it | |\n", n)
			continue
		}
		fmt.Fprintf(w, "| %s | %.0f | %.1f%% |\n", n, v, 100*(1-s.Value/v))
	}
	classic := s.Baselines["classic"]
	_, err = fmt.Fprintf(w, "\nsummary: fill_stockcast=%.4f inv_value_stockcast=%.0f inv_value_classic_at_same_fill=%.0f saving_pct=%.1f\n",
		s.Fill, s.Value, classic, 100*(1-s.Value/classic))
	return err
}

// NearestPoint returns the policy's swept point whose achieved fill rate
// is nearest fill (the first of equals, in sweep order); false when the
// policy has no point.
func NearestPoint(points []Point, policy string, fill float64) (Point, bool) {
	var best Point
	found := false
	for _, p := range points {
		if p.Policy != policy {
			continue
		}
		if !found || math.Abs(p.Total.FillRate()-fill) < math.Abs(best.Total.FillRate()-fill) {
			best, found = p, true
		}
	}
	return best, found
}

// writeClassComparison writes every policy's fill rate per demand class at
// its swept point nearest stockcast's achieved fill: how each policy serves
// the classes at about the same overall service. The classes are those of
// the simulated days (Prepare), so a class holds the series whose demand
// turned out that way: one whose sizes happened to be regular is called
// intermittent rather than lumpy and is easy to serve under every policy.
func writeClassComparison(w io.Writer, points []Point, specs []Spec, fill float64) {
	var present []forecasting.Class
	for _, c := range classes {
		for _, p := range points {
			if _, ok := p.ByClass[c]; ok {
				present = append(present, c)
				break
			}
		}
	}
	fmt.Fprintf(w, "\nby demand class, each policy at its swept point nearest %.2f%% overall:\n\n| policy | target | fill rate |", 100*fill)
	for _, c := range present {
		fmt.Fprintf(w, " %s |", c)
	}
	fmt.Fprint(w, "\n|---|---:|---:|")
	for range present {
		fmt.Fprint(w, "---:|")
	}
	fmt.Fprintln(w)
	for _, sp := range specs {
		p, ok := NearestPoint(points, sp.Name, fill)
		if !ok {
			continue
		}
		fmt.Fprintf(w, "| %s | %g | %.2f%% |", p.Policy, p.Target, 100*p.Total.FillRate())
		for _, c := range present {
			if r, ok := p.ByClass[c]; ok {
				fmt.Fprintf(w, " %.2f%% |", 100*r.FillRate())
			} else {
				fmt.Fprint(w, " |")
			}
		}
		fmt.Fprintln(w)
	}
}
