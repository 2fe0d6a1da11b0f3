package backtest

import (
	"context"
	"fmt"
	"io"
	"math"
	"time"
)

// Config is a rolling-origin evaluation: Origins forecasts of Horizon days,
// the last one ending on the data set's last day, each Step days before
// the next.
type Config struct {
	Horizon int
	Origins int
	Step    int
}

// OriginIndexes returns the day indexes of the first forecast day of each
// origin, oldest first.
func (c Config) OriginIndexes(days int) ([]int, error) {
	if c.Horizon <= 0 || c.Origins <= 0 {
		return nil, fmt.Errorf("horizon %d and origins %d must be positive", c.Horizon, c.Origins)
	}
	step := c.Step
	if step <= 0 {
		step = c.Horizon
	}
	out := make([]int, c.Origins)
	for k := range out {
		out[k] = days - c.Horizon - step*(c.Origins-1-k)
		if out[k] < 2*c.Horizon {
			return nil, fmt.Errorf("origin %d leaves only %d training days", k, out[k])
		}
	}
	return out, nil
}

// Result is one model's summary and wall time over all origins.
type Result struct {
	Model   string
	Summary Summary
	Elapsed time.Duration
	// Scores are the per-origin, per-series scores.
	Scores [][]SeriesScore
}

// ContextModel is a Model whose forecast can be cancelled (a training):
// Run calls ForecastContext with its context instead of Forecast.
type ContextModel interface {
	Model
	ForecastContext(ctx context.Context, ds *Dataset, origin, horizon int) ([]Prediction, error)
}

// Validated is a Model that scores itself on each origin's validation
// window (the horizon days before the origin, forecast by what was fitted
// before them) as part of its forecast from the origin.
type Validated interface {
	Model
	ValidWRMSSE(origin int) (float64, bool)
}

// ValidationWRMSSE returns each model's WRMSSE on the validation windows
// of the origins of cfg (the horizon days before each origin), averaged
// over the origins as Summarise averages the test WRMSSE: a Validated
// model's own after Run (or NaN if it has none for an origin), every
// other model's by running it on the data set without its last horizon
// days (each origin moved back by the horizon).
func ValidationWRMSSE(ctx context.Context, ds *Dataset, cfg Config, models []Model) (map[string]float64, error) {
	origins, err := cfg.OriginIndexes(ds.Days)
	if err != nil {
		return nil, err
	}
	out := map[string]float64{}
	var rest []Model
	for _, m := range models {
		v, ok := m.(Validated)
		if !ok {
			rest = append(rest, m)
			continue
		}
		sum := 0.0
		for _, o := range origins {
			l, ok := v.ValidWRMSSE(o)
			if !ok {
				l = math.NaN()
			}
			sum += l
		}
		out[m.Name()] = sum / float64(len(origins))
	}
	if len(rest) > 0 {
		res, err := Run(ctx, ds.Head(ds.Days-cfg.Horizon), cfg, rest)
		if err != nil {
			return nil, fmt.Errorf("validation window: %w", err)
		}
		for _, r := range res {
			out[r.Model] = r.Summary.WRMSSE
		}
	}
	return out, nil
}

// Run evaluates every model on every origin; a model that trains stops
// when ctx is done if it is a ContextModel.
func Run(ctx context.Context, ds *Dataset, cfg Config, models []Model) ([]Result, error) {
	origins, err := cfg.OriginIndexes(ds.Days)
	if err != nil {
		return nil, err
	}
	results := make([]Result, 0, len(models))
	for _, m := range models {
		r := Result{Model: m.Name()}
		for _, o := range origins {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			start := time.Now()
			var preds []Prediction
			if cm, ok := m.(ContextModel); ok {
				preds, err = cm.ForecastContext(ctx, ds, o, cfg.Horizon)
			} else {
				preds, err = m.Forecast(ds, o, cfg.Horizon)
			}
			r.Elapsed += time.Since(start)
			if err != nil {
				return nil, fmt.Errorf("model %s, origin %s: %w", m.Name(), ds.Day(o), err)
			}
			sc, err := ScoreOrigin(ds, o, cfg.Horizon, preds)
			if err != nil {
				return nil, fmt.Errorf("model %s, origin %s: %w", m.Name(), ds.Day(o), err)
			}
			r.Scores = append(r.Scores, sc)
		}
		if e, ok := m.(interface{ Elapsed() time.Duration }); ok {
			r.Elapsed = e.Elapsed() // a peer's own time, not the time to read its file
		}
		r.Summary = Summarise(r.Scores)
		results = append(results, r)
	}
	return results, nil
}

// ScoreOrigin scores one prediction per series of ds from origin.
func ScoreOrigin(ds *Dataset, origin, horizon int, preds []Prediction) ([]SeriesScore, error) {
	if len(preds) != len(ds.Series) {
		return nil, fmt.Errorf("%d predictions for %d series", len(preds), len(ds.Series))
	}
	out := make([]SeriesScore, len(preds))
	for i, s := range ds.Series {
		p := preds[i]
		if len(p.Means) != horizon || (p.Quantiles != nil && len(p.Quantiles) != horizon) {
			return nil, fmt.Errorf("series %s: prediction of %d days, want %d", s.ID, len(p.Means), horizon)
		}
		for _, q := range p.Quantiles {
			if len(q) != len(Levels) {
				return nil, fmt.Errorf("series %s: %d quantiles, want %d", s.ID, len(q), len(Levels))
			}
		}
		out[i] = ScoreSeries(s.Values[:origin], s.Prices[:origin], s.Values[origin:origin+horizon], p)
	}
	return out, nil
}

// WriteTable prints one row per result.
func WriteTable(w io.Writer, results []Result) error {
	if _, err := fmt.Fprintf(w, "%-34s %7s %7s %7s %7s %7s %6s %6s %6s %6s %6s %6s %6s %6s %6s %9s\n",
		"model", "WRMSSE", "RMSSE", "MASE", "bias", "WSPL", "cov50", "cov90", "cov98", "pit50", "pit90", "pit98", "xpit50", "xpit90", "xpit98", "time"); err != nil {
		return err
	}
	for _, r := range results {
		s := r.Summary
		if _, err := fmt.Fprintf(w, "%-34s %7.4f %7.4f %7.4f %+7.3f %7s %6s %6s %6s %6s %6s %6s %6s %6s %6s %9s\n",
			r.Model, s.WRMSSE, s.MeanRMSSE, s.MeanMASE, s.Bias, num(s.WSPL, "%.4f"),
			num(s.Coverage[0], "%.3f"), num(s.Coverage[1], "%.3f"), num(s.Coverage[2], "%.3f"),
			num(s.PIT[0], "%.3f"), num(s.PIT[1], "%.3f"), num(s.PIT[2], "%.3f"),
			num(s.ExactPIT[0], "%.3f"), num(s.ExactPIT[1], "%.3f"), num(s.ExactPIT[2], "%.3f"),
			fmtDuration(r.Elapsed)); err != nil {
			return err
		}
	}
	return nil
}

func num(v float64, f string) string {
	if math.IsNaN(v) {
		return "-"
	}
	return fmt.Sprintf(f, v)
}

func fmtDuration(d time.Duration) string {
	if d <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.3fs", d.Seconds())
}

// WriteLeadTimeTable prints the exact PIT coverage of the lead-time demand
// (Summary.LeadTimePIT) of the results that have one: three rows per model
// (the 50%, 90% and 98% intervals), one column per lead time and their
// mean. Nothing without such a result.
func WriteLeadTimeTable(w io.Writer, results []Result) error {
	header := false
	for _, r := range results {
		lt := r.Summary.LeadTimePIT
		if len(lt) == 0 || math.IsNaN(lt[0][0]) {
			continue
		}
		if !header {
			if _, err := fmt.Fprintf(w, "lead-time demand: exact PIT coverage of the sum of the first L days from each origin\n%-34s %5s", "model", "cov"); err != nil {
				return err
			}
			for _, l := range LeadTimes {
				if _, err := fmt.Fprintf(w, " %6s", fmt.Sprintf("L=%d", l)); err != nil {
					return err
				}
			}
			if _, err := fmt.Fprintf(w, " %6s\n", "mean"); err != nil {
				return err
			}
			header = true
		}
		for i, nominal := range []string{"50", "90", "98"} {
			if _, err := fmt.Fprintf(w, "%-34s %5s", r.Model, nominal); err != nil {
				return err
			}
			sum, n := 0.0, 0
			for k := range LeadTimes {
				v := lt[k][i]
				if !math.IsNaN(v) {
					sum, n = sum+v, n+1
				}
				if _, err := fmt.Fprintf(w, " %6s", num(v, "%.3f")); err != nil {
					return err
				}
			}
			mean := math.NaN()
			if n > 0 {
				mean = sum / float64(n)
			}
			if _, err := fmt.Fprintf(w, " %6s\n", num(mean, "%.3f")); err != nil {
				return err
			}
		}
	}
	return nil
}
