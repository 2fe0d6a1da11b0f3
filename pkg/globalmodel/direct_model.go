package globalmodel

import (
	"crypto/sha256"
	"encoding/gob"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"time"

	"github.com/stockcast/stockcast/pkg/backtest"
	"github.com/stockcast/stockcast/pkg/gbt"
)

// MatrixLag builds the feature matrix of the bucket with minimum lag
// minLag for the days [from, to) of every series, from each series' first
// sale on; rows are series-major. It returns the matrix, the targets and
// the (series, day) of each row.
func (d *directPanel) MatrixLag(minLag, from, to int) (gbt.Matrix, []float64, [][2]int) {
	cols := len(FeatureNamesLag(minLag))
	rows := 0
	for i := range d.ds.Series {
		rows += max(0, to-max(from, d.first[i]))
	}
	x := gbt.Matrix{Rows: rows, Cols: cols, Data: make([]float64, rows*cols)}
	y := make([]float64, 0, rows)
	at := make([][2]int, 0, rows)
	r := 0
	for i, s := range d.ds.Series {
		for t := max(from, d.first[i]); t < to; t++ {
			d.RowLag(i, t, minLag, x.Data[r*cols:(r+1)*cols])
			y = append(y, s.Values[t])
			at = append(at, [2]int{i, t})
			r++
		}
	}
	return x, y, at
}

// DirectTrained is the direct global model fitted at one origin: one
// booster per horizon bucket, and the out-of-sample forecasts of the
// validation window (the horizon days before the origin) made by the
// boosters fitted before it, from which combinations and calibrations
// are learned without looking at the test days.
type DirectTrained struct {
	Lags   []int
	Models []*gbt.Model
	Rounds []int
	// Valid[i] is series i's forecast of the validation window
	// [ValidOrigin, ValidOrigin+horizon) by the pre-refit boosters.
	ValidOrigin int
	Valid       [][]float64
	Elapsed     time.Duration
}

// bucket returns the bucket of horizon day h (0-based: h = 0 is the day
// after the last known one).
func bucket(lags []int, h int) int {
	for b, l := range lags {
		if h < l {
			return b
		}
	}
	return len(lags) - 1
}

// DirectParams configure the direct global model.
type DirectParams struct {
	Params gbt.Params
	// Lags are the buckets' minimum lags (DefaultBucketLags if nil); the
	// last must be at least the horizon.
	Lags []int
	// TrainDays limits the training rows to the last TrainDays days
	// before the validation window (0: all from day 56).
	TrainDays int
	// Refit retrains each bucket on all days, validation window included,
	// with the rounds early stopping found.
	Refit bool
}

// TrainDirect fits one booster per bucket on the days before origin.
func TrainDirect(p *Panel, origin, horizon int, dp DirectParams) (*DirectTrained, error) {
	start := time.Now()
	lags := dp.Lags
	if lags == nil {
		lags = DefaultBucketLags()
	}
	if lags[len(lags)-1] < horizon {
		return nil, fmt.Errorf("last bucket lag %d below the horizon %d", lags[len(lags)-1], horizon)
	}
	v := origin - horizon
	from := firstRow
	if dp.TrainDays > 0 {
		from = max(from, v-dp.TrainDays)
	}
	if v <= from {
		return nil, fmt.Errorf("origin %d leaves no training rows", origin)
	}
	d := p.direct()
	tr := &DirectTrained{Lags: lags, ValidOrigin: v, Valid: make([][]float64, len(p.ds.Series))}
	for i := range tr.Valid {
		tr.Valid[i] = make([]float64, horizon)
	}
	for b, lag := range lags {
		names := FeatureNamesLag(lag)
		x, y, _ := d.MatrixLag(lag, from, v)
		xv, yv, _ := d.MatrixLag(lag, v, origin)
		m, err := gbt.Train(dp.Params, names, x, y, xv, yv)
		if err != nil {
			return nil, fmt.Errorf("train bucket %d (lag %d): %w", b, lag, err)
		}
		row := make([]float64, len(names))
		for i := range p.ds.Series {
			for h := range horizon {
				if bucket(lags, h) == b && v > d.first[i] {
					d.RowLag(i, v+h, lag, row)
					tr.Valid[i][h] = m.Predict(row)
				}
			}
		}
		if dp.Refit {
			xa, ya, _ := d.MatrixLag(lag, from, origin)
			pr := dp.Params
			pr.Rounds, pr.EarlyStoppingRounds = max(m.BestRound, 1), 0
			if m, err = gbt.Train(pr, names, xa, ya, gbt.Matrix{}, nil); err != nil {
				return nil, fmt.Errorf("refit bucket %d (lag %d): %w", b, lag, err)
			}
		}
		tr.Models = append(tr.Models, m)
		tr.Rounds = append(tr.Rounds, m.BestRound)
	}
	tr.Elapsed = time.Since(start)
	return tr, nil
}

// Forecast predicts horizon days from origin for series i (zeros for a
// series not sold before the origin).
func (tr *DirectTrained) Forecast(p *Panel, i, origin, horizon int) []float64 {
	d := p.direct()
	out := make([]float64, horizon)
	if origin <= d.first[i] {
		return out
	}
	rows := make([][]float64, len(tr.Lags))
	for h := range out {
		b := bucket(tr.Lags, h)
		if rows[b] == nil {
			rows[b] = make([]float64, len(FeatureNamesLag(tr.Lags[b])))
		}
		d.RowLag(i, origin+h, tr.Lags[b], rows[b])
		out[h] = tr.Models[b].Predict(rows[b])
	}
	return out
}

// direct returns the panel's direct-feature extension, built on first use.
func (p *Panel) direct() *directPanel {
	p.directOnce.Do(func() { p.directExt = newDirectPanel(p) })
	return p.directExt
}

// DirectGBT is the direct global model as a backtest.Model; it trains
// once per data set and origin (CombinedDirect reuses that training).
type DirectGBT struct {
	DirectParams
	// CacheDir, if set, keeps each training in a file named by what it
	// was trained on and how, and reuses it (a deterministic training
	// gives the same model: the cache only saves time). The wall time
	// reported is then the original training's.
	CacheDir string
	panel    *Panel
	trained  map[int]*DirectTrained
	elapsed  time.Duration
}

// Name implements backtest.Model.
func (g *DirectGBT) Name() string { return "stockcast_gbt_direct" }

// train returns the training at origin (training it, or reading it from
// the cache, on first use) and the time spent here.
func (g *DirectGBT) train(ds *backtest.Dataset, origin, horizon int) (tr *DirectTrained, spent time.Duration, err error) {
	start := time.Now()
	defer func() { spent = time.Since(start) }()
	if g.panel == nil || g.panel.ds != ds {
		g.panel, g.trained = NewPanel(ds), map[int]*DirectTrained{}
	}
	if tr := g.trained[origin]; tr != nil {
		return tr, 0, nil
	}
	var path string
	if g.CacheDir != "" {
		path = g.cachePath(ds, origin, horizon)
		if tr, err := loadDirect(path); err == nil {
			g.trained[origin] = tr
			return tr, 0, nil
		}
	}
	tr, err = TrainDirect(g.panel, origin, horizon, g.DirectParams)
	if err != nil {
		return nil, 0, err
	}
	if path != "" {
		if err := saveDirect(path, tr); err != nil {
			return nil, 0, fmt.Errorf("cache the global model: %w", err)
		}
	}
	g.trained[origin] = tr
	return tr, 0, nil
}

// Elapsed reports the row's time: the trainings' (also when they came
// from the cache or were done for another row) and the forecasts'.
func (g *DirectGBT) Elapsed() time.Duration { return g.elapsed }

// Forecast implements backtest.Model: means, with negative-binomial
// quantiles calibrated on the validation window (calibration.go).
func (g *DirectGBT) Forecast(ds *backtest.Dataset, origin, horizon int) ([]backtest.Prediction, error) {
	start := time.Now()
	tr, spent, err := g.train(ds, origin, horizon)
	if err != nil {
		return nil, err
	}
	defer func() { g.elapsed += tr.Elapsed + time.Since(start) - spent }()
	means := make([][]float64, len(ds.Series))
	for i := range ds.Series {
		means[i] = tr.Forecast(g.panel, i, origin, horizon)
	}
	cal := fitCalibration(ds, tr.ValidOrigin, horizon, tr.Valid)
	return cal.predictions(ds, origin, means), nil
}

// CombinedDirect combines the direct global model with a per-series
// model (the statistical ensemble): the weight of the global model is
// the one of 0, 0.05, ..., 1 with the lowest WRMSSE on the validation
// window (both models forecasting it out of sample), and the quantiles
// are calibrated on the same window. Its wall time includes the global
// model's training when this row trained it.
type CombinedDirect struct {
	Global *DirectGBT
	// Series is the per-series model (backtest.Ensemble{} if nil).
	Series backtest.Model
	// Weights records the chosen global weight per origin.
	Weights map[int]float64
	extra   time.Duration
}

// Name implements backtest.Model.
func (c *CombinedDirect) Name() string { return "stockcast_combined_direct" }

// Elapsed reports this row's time, including the global model's training
// when the GBT row did it.
func (c *CombinedDirect) Elapsed() time.Duration { return c.extra }

// Forecast implements backtest.Model.
func (c *CombinedDirect) Forecast(ds *backtest.Dataset, origin, horizon int) ([]backtest.Prediction, error) {
	start := time.Now()
	tr, spent, err := c.Global.train(ds, origin, horizon)
	if err != nil {
		return nil, err
	}
	c.extra += tr.Elapsed - spent // the training counts in this row too, once
	series := c.Series
	if series == nil {
		series = backtest.Ensemble{}
	}
	v := tr.ValidOrigin
	sv, err := series.Forecast(ds, v, horizon)
	if err != nil {
		return nil, err
	}
	st, err := series.Forecast(ds, origin, horizon)
	if err != nil {
		return nil, err
	}
	best, bestLoss := 0.0, math.Inf(1)
	for k := 0; k <= 20; k++ {
		w := float64(k) / 20
		var num, den float64
		for i, s := range ds.Series {
			m := make([]float64, horizon)
			for h := range m {
				m[h] = w*tr.Valid[i][h] + (1-w)*sv[i].Means[h]
			}
			sc := backtest.ScoreSeries(s.Values[:v], s.Prices[:v], s.Values[v:v+horizon], backtest.Prediction{Means: m})
			if sc.Valid {
				num += sc.Weight * sc.RMSSE
				den += sc.Weight
			}
		}
		if den > 0 && num/den < bestLoss-1e-12 {
			best, bestLoss = w, num/den
		}
	}
	if c.Weights == nil {
		c.Weights = map[int]float64{}
	}
	c.Weights[origin] = best
	valid, means := make([][]float64, len(ds.Series)), make([][]float64, len(ds.Series))
	for i := range ds.Series {
		g := tr.Forecast(c.Global.panel, i, origin, horizon)
		valid[i], means[i] = make([]float64, horizon), make([]float64, horizon)
		for h := range horizon {
			valid[i][h] = best*tr.Valid[i][h] + (1-best)*sv[i].Means[h]
			means[i][h] = best*g[h] + (1-best)*st[i].Means[h]
		}
	}
	out := fitCalibration(ds, v, horizon, valid).predictions(ds, origin, means)
	c.extra += time.Since(start)
	return out, nil
}

// cachePath names the file a training with these settings at origin is
// kept in under dir: what it was trained on and how, hashed.
func (g *DirectGBT) cachePath(ds *backtest.Dataset, origin, horizon int) string {
	lags := g.Lags
	if lags == nil {
		lags = DefaultBucketLags()
	}
	var names [][]string
	for _, l := range lags {
		names = append(names, FeatureNamesLag(l))
	}
	body, _ := json.Marshal(struct {
		P            gbt.Params
		L            []int
		D, R         int
		F            bool
		N            [][]string
		Name         string
		Days, Series int
		O, H         int
		V            int
	}{g.Params, lags, g.TrainDays, 0, g.Refit, names, ds.Name, ds.Days, len(ds.Series), origin, horizon, directCacheVersion})
	sum := sha256.Sum256(body)
	return filepath.Join(g.CacheDir, fmt.Sprintf("direct-%s-%d-%s.gob", ds.Name, origin, hex.EncodeToString(sum[:6])))
}

// directCacheVersion changes when the features' code changes meaning
// without changing their names.
const directCacheVersion = 1

func loadDirect(path string) (*DirectTrained, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var tr DirectTrained
	if err := gob.NewDecoder(f).Decode(&tr); err != nil {
		return nil, err
	}
	return &tr, nil
}

func saveDirect(path string, tr *DirectTrained) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp := path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	if err := gob.NewEncoder(f).Encode(tr); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
