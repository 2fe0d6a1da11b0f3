package globalmodel

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/stockcast/stockcast/pkg/backtest"
	"github.com/stockcast/stockcast/pkg/forecasting"
	"github.com/stockcast/stockcast/pkg/gbt"
)

// firstRow is the first day with every lag (56 days) defined.
const firstRow = 56

// Matrix builds the feature matrix of the days [from, to) of every series,
// from each series' first sale on (days before an item is sold are not
// demand); rows are series-major. It returns the matrix, the targets and
// the (series, day) of each row.
func (p *Panel) Matrix(from, to int) (gbt.Matrix, []float64, [][2]int) {
	cols := len(FeatureNames())
	rows := 0
	for i := range p.ds.Series {
		rows += max(0, to-max(from, p.first[i]))
	}
	x := gbt.Matrix{Rows: rows, Cols: cols, Data: make([]float64, rows*cols)}
	y := make([]float64, 0, rows)
	at := make([][2]int, 0, rows)
	r := 0
	for i, s := range p.ds.Series {
		for t := max(from, p.first[i]); t < to; t++ {
			p.Row(i, t, x.Data[r*cols:(r+1)*cols])
			y = append(y, s.Values[t])
			at = append(at, [2]int{i, t})
			r++
		}
	}
	return x, y, at
}

// Trained is the global model fitted at one origin, with the per-series
// dispersion of its errors on the validation window.
type Trained struct {
	Model *gbt.Model
	// Dispersion[i] is series i's variance-to-mean ratio of the
	// validation errors (at least 1).
	Dispersion []float64
	// Rounds is the number of trees early stopping chose; Elapsed the
	// whole training time.
	Rounds  int
	Elapsed time.Duration
	// Valid[i] is series i's forecast of the validation window (the
	// horizon days before the origin) by the model fitted before it
	// (before the refit); zeros for a series not sold before the window.
	Valid [][]float64
}

// Train fits the global model on the days before origin: early stopping
// on the last horizon training days, then (if refit) a refit on all
// training days with the rounds found.
func Train(p *Panel, origin, horizon int, params gbt.Params, refit bool) (*Trained, error) {
	return TrainContext(context.Background(), p, origin, horizon, params, refit)
}

// TrainContext is Train that stops when ctx is done (between boosting
// rounds), returning ctx.Err().
func TrainContext(ctx context.Context, p *Panel, origin, horizon int, params gbt.Params, refit bool) (*Trained, error) {
	start := time.Now()
	if origin-horizon <= firstRow {
		return nil, fmt.Errorf("origin %d leaves no training rows", origin)
	}
	x, y, _ := p.Matrix(firstRow, origin-horizon)
	xv, yv, atv := p.Matrix(origin-horizon, origin)
	m, err := gbt.TrainContext(ctx, params, FeatureNames(), x, y, xv, yv)
	if err != nil {
		return nil, fmt.Errorf("train global model: %w", err)
	}
	tr := &Trained{Model: m, Rounds: m.BestRound, Dispersion: make([]float64, len(p.ds.Series)), Valid: make([][]float64, len(p.ds.Series))}
	for i := range tr.Valid {
		tr.Valid[i] = make([]float64, horizon)
	}
	sq, mu := make([]float64, len(p.ds.Series)), make([]float64, len(p.ds.Series))
	for r := range xv.Rows {
		i := atv[r][0]
		pred := m.Predict(xv.Row(r))
		if v := origin - horizon; v > p.first[i] {
			tr.Valid[i][atv[r][1]-v] = pred // as Forecast from the validation origin
		}
		sq[i] += (yv[r] - pred) * (yv[r] - pred)
		mu[i] += pred
	}
	for i := range sq {
		tr.Dispersion[i] = 1
		if mu[i] > 0 {
			tr.Dispersion[i] = max(sq[i]/mu[i], 1)
		}
	}
	if refit {
		xa, ya, _ := p.Matrix(firstRow, origin)
		pr := params
		pr.Rounds, pr.EarlyStoppingRounds = max(m.BestRound, 1), 0
		if tr.Model, err = gbt.TrainContext(ctx, pr, FeatureNames(), xa, ya, gbt.Matrix{}, nil); err != nil {
			return nil, fmt.Errorf("refit global model: %w", err)
		}
	}
	tr.Elapsed = time.Since(start)
	return tr, nil
}

// Forecast predicts horizon days from origin for series i.
func (tr *Trained) Forecast(p *Panel, i, origin, horizon int) []float64 {
	row := make([]float64, len(FeatureNames()))
	out := make([]float64, horizon)
	for h := range out {
		if origin+h < p.first[i] || origin <= p.first[i] {
			continue // not sold before the origin: nothing to learn from
		}
		p.Row(i, origin+h, row)
		out[h] = tr.Model.Predict(row)
	}
	return out
}

// GBT is the global model as a backtest.Model. It trains once per data
// set and origin; Combined reuses that training (and counts its time).
type GBT struct {
	Params gbt.Params
	Refit  bool

	panel   *Panel
	trained map[int]*Trained // by origin, for panel's data set
	last    *Trained
	// ValidLoss is the WRMSSE on the validation window per origin.
	ValidLoss map[int]float64
}

// ValidWRMSSE reports the model's WRMSSE on the validation window of
// origin (the horizon days before it, forecast by the model trained
// before them), once it has forecast from origin.
func (g *GBT) ValidWRMSSE(origin int) (float64, bool) {
	l, ok := g.ValidLoss[origin]
	return l, ok
}

// Name implements backtest.Model.
func (g *GBT) Name() string { return "stockcast_gbt" }

func (g *GBT) train(ctx context.Context, ds *backtest.Dataset, origin, horizon int) (*Trained, error) {
	if g.panel == nil || g.panel.ds != ds {
		g.panel, g.trained = NewPanel(ds), map[int]*Trained{}
	}
	if tr := g.trained[origin]; tr != nil {
		return tr, nil
	}
	tr, err := TrainContext(ctx, g.panel, origin, horizon, g.Params, g.Refit)
	if err != nil {
		return nil, err
	}
	if g.ValidLoss == nil {
		g.ValidLoss = map[int]float64{}
	}
	g.ValidLoss[origin] = validWRMSSE(ds, origin-horizon, horizon, tr.Valid)
	g.trained[origin], g.last = tr, tr
	return tr, nil
}

// Forecast implements backtest.Model: the global model's means with
// negative-binomial quantiles at each series' validation dispersion.
func (g *GBT) Forecast(ds *backtest.Dataset, origin, horizon int) ([]backtest.Prediction, error) {
	return g.ForecastContext(context.Background(), ds, origin, horizon)
}

// ForecastContext implements backtest.ContextModel: Forecast whose
// training stops when ctx is done.
func (g *GBT) ForecastContext(ctx context.Context, ds *backtest.Dataset, origin, horizon int) ([]backtest.Prediction, error) {
	tr, err := g.train(ctx, ds, origin, horizon)
	if err != nil {
		return nil, err
	}
	out := make([]backtest.Prediction, len(ds.Series))
	for i := range ds.Series {
		out[i] = prediction(tr.Forecast(g.panel, i, origin, horizon), tr.Dispersion[i])
	}
	return out, nil
}

func prediction(means []float64, disp float64) backtest.Prediction {
	p := backtest.Prediction{Means: means, Quantiles: make([][]float64, len(means))}
	for h, m := range means {
		p.Quantiles[h] = make([]float64, len(backtest.Levels))
		forecasting.CountQuantiles(m, disp, backtest.Levels, p.Quantiles[h])
	}
	return p
}

// Combined averages the global model's and the per-series ensemble's
// daily means with equal weights (a fixed rule, not fitted to the test
// days) and takes negative-binomial quantiles at the smaller of the two
// models' dispersions: the average's errors are smaller than either's.
// Its wall time includes the global model's training.
type Combined struct {
	Global *GBT
	extra  time.Duration
	// ValidLoss is the WRMSSE on the validation window per origin.
	ValidLoss map[int]float64
}

// ValidWRMSSE reports the combination's WRMSSE on the validation window
// of origin (both models forecasting it out of sample), once it has
// forecast from origin.
func (c *Combined) ValidWRMSSE(origin int) (float64, bool) {
	l, ok := c.ValidLoss[origin]
	return l, ok
}

// ensembleMeans is the per-series ensemble's mean forecast of horizon
// days from origin for series s.
func ensembleMeans(ds *backtest.Dataset, s backtest.Series, origin, horizon int) forecasting.Forecast {
	var st forecasting.State
	for t, y := range s.Values[:origin] {
		st.Observe(ds.Day(t), y, false)
	}
	return st.Forecast(forecasting.Request{StartDay: ds.Day(origin), Horizon: horizon, QuantileLevels: []float64{0.5}, LeadTimes: []int{0}})
}

// Name implements backtest.Model.
func (c *Combined) Name() string { return "stockcast_combined" }

// Elapsed makes backtest.Run report the global model's training time, done
// once for both models, in this row too.
func (c *Combined) Elapsed() time.Duration { return c.extra }

// Forecast implements backtest.Model.
func (c *Combined) Forecast(ds *backtest.Dataset, origin, horizon int) ([]backtest.Prediction, error) {
	return c.ForecastContext(context.Background(), ds, origin, horizon)
}

// ForecastContext implements backtest.ContextModel.
func (c *Combined) ForecastContext(ctx context.Context, ds *backtest.Dataset, origin, horizon int) ([]backtest.Prediction, error) {
	var trainTime time.Duration
	if c.Global.panel == nil || c.Global.panel.ds != ds || c.Global.trained[origin] == nil {
		// not trained yet: the training is timed in this row only
		trainTime = -1
	}
	start := time.Now()
	tr, err := c.Global.train(ctx, ds, origin, horizon)
	if err != nil {
		return nil, err
	}
	if trainTime == 0 {
		trainTime = tr.Elapsed // trained for the GBT row: count it here too
	} else {
		trainTime = 0 // already inside time.Since(start)
	}
	out := make([]backtest.Prediction, len(ds.Series))
	valid := make([][]float64, len(ds.Series))
	for i, s := range ds.Series {
		fv := ensembleMeans(ds, s, origin-horizon, horizon)
		valid[i] = make([]float64, horizon)
		for h := range valid[i] {
			valid[i][h] = (tr.Valid[i][h] + fv.Means[h]) / 2
		}
		f := ensembleMeans(ds, s, origin, horizon)
		g := tr.Forecast(c.Global.panel, i, origin, horizon)
		for h := range g {
			g[h] = (g[h] + f.Means[h]) / 2
		}
		out[i] = prediction(g, math.Min(tr.Dispersion[i], f.Components.Dispersion))
	}
	if c.ValidLoss == nil {
		c.ValidLoss = map[int]float64{}
	}
	c.ValidLoss[origin] = validWRMSSE(ds, origin-horizon, horizon, valid)
	c.extra += time.Since(start) + trainTime
	return out, nil
}

// Trained returns the last training (nil before any).
func (g *GBT) Trained() *Trained { return g.last }

// Fixed is an already trained global model (an artefact's) as a
// backtest.Model: it forecasts with Model at any origin, without training.
type Fixed struct {
	Label string
	Model *gbt.Model
	panel *Panel
}

// Name implements backtest.Model.
func (f *Fixed) Name() string { return f.Label }

// Forecast implements backtest.Model: means only (an artefact carries no
// per-series dispersion).
func (f *Fixed) Forecast(ds *backtest.Dataset, origin, horizon int) ([]backtest.Prediction, error) {
	if f.panel == nil || f.panel.ds != ds {
		f.panel = NewPanel(ds)
	}
	tr := &Trained{Model: f.Model}
	out := make([]backtest.Prediction, len(ds.Series))
	for i := range ds.Series {
		out[i] = backtest.Prediction{Means: tr.Forecast(f.panel, i, origin, horizon)}
	}
	return out, nil
}
