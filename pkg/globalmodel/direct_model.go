package globalmodel

import (
	"context"
	"crypto/sha256"
	"encoding/gob"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/stockcast/stockcast/pkg/backtest"
	"github.com/stockcast/stockcast/pkg/gbt"
)

// MatrixLag builds the feature matrix of the bucket with minimum lag
// minLag for the days [from, to) of every series, from each series' first
// sale on; rows are series-major. It returns the matrix, the targets and
// the (series, day) of each row.
func (d *directPanel) MatrixLag(minLag, set, from, to int) (gbt.Matrix, []float64, [][2]int) {
	cols := len(FeatureNamesLagSet(minLag, set))
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
			d.RowLagSet(i, t, minLag, set, x.Data[r*cols:(r+1)*cols])
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
	Lags []int
	// Features is the feature set (FeaturesBase, FeaturesM5).
	Features int
	Models   []*gbt.Model
	Rounds   []int
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
	// Features is the feature set (FeaturesBase: the session-2 set).
	Features int
}

// TrainDirect fits one booster per bucket on the days before origin.
func TrainDirect(p *Panel, origin, horizon int, dp DirectParams) (*DirectTrained, error) {
	return TrainDirectContext(context.Background(), p, origin, horizon, dp)
}

// TrainDirectContext is TrainDirect that stops when ctx is done (between
// boosting rounds), returning ctx.Err().
func TrainDirectContext(ctx context.Context, p *Panel, origin, horizon int, dp DirectParams) (*DirectTrained, error) {
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
	tr := &DirectTrained{Lags: lags, Features: dp.Features, ValidOrigin: v, Valid: make([][]float64, len(p.ds.Series))}
	for i := range tr.Valid {
		tr.Valid[i] = make([]float64, horizon)
	}
	for b, lag := range lags {
		names := FeatureNamesLagSet(lag, dp.Features)
		x, y, _ := d.MatrixLag(lag, dp.Features, from, v)
		xv, yv, _ := d.MatrixLag(lag, dp.Features, v, origin)
		m, err := gbt.TrainContext(ctx, dp.Params, names, x, y, xv, yv)
		if err != nil {
			return nil, fmt.Errorf("train bucket %d (lag %d): %w", b, lag, err)
		}
		row := make([]float64, len(names))
		for i := range p.ds.Series {
			for h := range horizon {
				if bucket(lags, h) == b && v > d.first[i] {
					d.RowLagSet(i, v+h, lag, dp.Features, row)
					tr.Valid[i][h] = m.Predict(row)
				}
			}
		}
		if dp.Refit {
			xa, ya, _ := d.MatrixLag(lag, dp.Features, from, origin)
			pr := dp.Params
			pr.Rounds, pr.EarlyStoppingRounds = max(m.BestRound, 1), 0
			if m, err = gbt.TrainContext(ctx, pr, names, xa, ya, gbt.Matrix{}, nil); err != nil {
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
			rows[b] = make([]float64, len(FeatureNamesLagSet(tr.Lags[b], tr.Features)))
		}
		d.RowLagSet(i, origin+h, tr.Lags[b], tr.Features, rows[b])
		out[h] = tr.Models[b].Predict(rows[b])
	}
	return out
}

// direct returns the panel's direct-feature extension, built on first use.
func (p *Panel) direct() *directPanel {
	p.directOnce.Do(func() { p.directExt = newDirectPanel(p) })
	return p.directExt
}

// BagMember is one member of the direct model's bag: a training window
// (TrainDays, as DirectParams.TrainDays) and a booster seed.
type BagMember struct {
	TrainDays int
	Seed      uint64
}

// ParseBag reads a bag as "days:seed,days:seed,..." (days 0: all).
func ParseBag(spec string) ([]BagMember, error) {
	var out []BagMember
	for _, f := range strings.Split(spec, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		var m BagMember
		if _, err := fmt.Sscanf(f, "%d:%d", &m.TrainDays, &m.Seed); err != nil || m.TrainDays < 0 {
			return nil, fmt.Errorf("bag member %q: want days:seed", f)
		}
		out = append(out, m)
	}
	return out, nil
}

// DirectGBT is the direct global model as a backtest.Model; it trains
// once per data set and origin (CombinedDirect reuses that training).
//
// With a Bag it trains one direct model per member (its own training
// window and seed, the other settings from DirectParams; members that
// would train on the same rows with the same seed count once) and
// forecasts their mean; with Scale it multiplies the forecasts by the level
// correction of 0.80, 0.81, ..., 1.20 with the lowest WRMSSE on the
// validation window. Both are decided before the origin: the test days
// are never read.
type DirectGBT struct {
	DirectParams
	Bag   []BagMember
	Scale bool
	// PITCalibration calibrates the quantile levels so that the PIT
	// coverage of the validation window is nominal (calibration.go).
	PITCalibration bool
	// ClassCalibration calibrates the dispersion and the levels per class
	// of the day's mean (forecasting.FitCalibration, as the calibrated
	// ensemble) on the validation window; it takes precedence over
	// PITCalibration.
	ClassCalibration bool
	// RobustDispersion caps each validation error at 3 standard
	// deviations (of a count of dispersion 3) in the per-series
	// dispersion (fitCalibrationSets).
	RobustDispersion bool
	// CalibrationWindows is the number of validation windows the
	// calibration is fitted on (0 or 1: the training's own; more: also
	// those of the trainings at origin-horizon, origin-2*horizon, ...,
	// each forecast out of sample by boosters fitted before it).
	CalibrationWindows int
	// CacheDir, if set, keeps each training in a file named by what it
	// was trained on and how, and reuses it (a deterministic training
	// gives the same model: the cache only saves time). The wall time
	// reported is then the original training's.
	CacheDir string
	// Scales records the level correction chosen per origin, ValidLoss
	// the bag's WRMSSE on the validation window.
	Scales    map[int]float64
	ValidLoss map[int]float64
	panel     *Panel
	trained   map[int]*directBag
	elapsed   time.Duration
}

// directBag is the bag's training at one origin: its members, their
// mean forecast of the validation window (scaled) and the scale.
type directBag struct {
	members     []*DirectTrained
	ValidOrigin int
	Valid       [][]float64
	Elapsed     time.Duration
	scale       float64
}

// Forecast is the members' mean forecast, scaled.
func (b *directBag) Forecast(p *Panel, i, origin, horizon int) []float64 {
	out := make([]float64, horizon)
	for _, m := range b.members {
		for h, v := range m.Forecast(p, i, origin, horizon) {
			out[h] += v
		}
	}
	for h := range out {
		out[h] *= b.scale / float64(len(b.members))
	}
	return out
}

// Name implements backtest.Model.
func (g *DirectGBT) Name() string { return "stockcast_gbt_direct" }

// ValidWRMSSE reports the bag's WRMSSE on the validation window of origin
// (the horizon days before it, forecast by the boosters fitted before
// them), once it has trained at origin.
func (g *DirectGBT) ValidWRMSSE(origin int) (float64, bool) {
	l, ok := g.ValidLoss[origin]
	return l, ok
}

// members lists the bag (one member from DirectParams when empty).
func (g *DirectGBT) members() []BagMember {
	if len(g.Bag) > 0 {
		return g.Bag
	}
	return []BagMember{{TrainDays: g.TrainDays, Seed: g.Params.Seed}}
}

// train returns the training at origin (training it, or reading it from
// the cache, on first use) and the time spent here.
func (g *DirectGBT) train(ctx context.Context, ds *backtest.Dataset, origin, horizon int) (bag *directBag, spent time.Duration, err error) {
	start := time.Now()
	defer func() { spent = time.Since(start) }()
	if g.panel == nil || g.panel.ds != ds {
		g.panel, g.trained = NewPanel(ds), map[int]*directBag{}
	}
	if b := g.trained[origin]; b != nil {
		return b, 0, nil
	}
	bag = &directBag{scale: 1}
	seen := map[[2]uint64]bool{}
	for _, m := range g.members() {
		// members with the same training rows and seed are one training
		// (730 days and all days on a data set shorter than 730 days)
		from := firstRow
		if m.TrainDays > 0 {
			from = max(from, origin-horizon-m.TrainDays)
		}
		if key := [2]uint64{uint64(from), m.Seed}; seen[key] {
			continue
		} else {
			seen[key] = true
		}
		dp := g.DirectParams
		dp.TrainDays, dp.Params.Seed = m.TrainDays, m.Seed
		tr, err := trainCached(ctx, g.panel, ds, origin, horizon, dp, g.CacheDir)
		if err != nil {
			return nil, 0, err
		}
		bag.members = append(bag.members, tr)
		bag.Elapsed += tr.Elapsed
	}
	bag.ValidOrigin = bag.members[0].ValidOrigin
	bag.Valid = make([][]float64, len(ds.Series))
	for i := range bag.Valid {
		bag.Valid[i] = make([]float64, horizon)
		for _, m := range bag.members {
			for h, v := range m.Valid[i] {
				bag.Valid[i][h] += v / float64(len(bag.members))
			}
		}
	}
	if g.Scale {
		best, bestLoss := 1.0, validWRMSSE(ds, bag.ValidOrigin, horizon, bag.Valid)
		for k := 80; k <= 120; k++ {
			s := float64(k) / 100
			scaled := make([][]float64, len(bag.Valid))
			for i, v := range bag.Valid {
				scaled[i] = make([]float64, len(v))
				for h := range v {
					scaled[i][h] = s * v[h]
				}
			}
			if l := validWRMSSE(ds, bag.ValidOrigin, horizon, scaled); l < bestLoss-1e-12 {
				best, bestLoss = s, l
			}
		}
		bag.scale = best
		for _, v := range bag.Valid {
			for h := range v {
				v[h] *= best
			}
		}
	}
	if g.Scales == nil {
		g.Scales, g.ValidLoss = map[int]float64{}, map[int]float64{}
	}
	g.Scales[origin] = bag.scale
	g.ValidLoss[origin] = validWRMSSE(ds, bag.ValidOrigin, horizon, bag.Valid)
	g.trained[origin] = bag
	return bag, 0, nil
}

// trainCached trains a direct model, or reads it from the cache under
// dir (if set) where an earlier training with the same settings left it.
func trainCached(ctx context.Context, p *Panel, ds *backtest.Dataset, origin, horizon int, dp DirectParams, dir string) (*DirectTrained, error) {
	var path string
	if dir != "" {
		path = cachePath(dir, dp, ds, origin, horizon)
		if tr, err := loadDirect(path); err == nil {
			return tr, nil
		}
	}
	tr, err := TrainDirectContext(ctx, p, origin, horizon, dp)
	if err != nil {
		return nil, err
	}
	if path != "" {
		if err := saveDirect(path, tr); err != nil {
			return nil, fmt.Errorf("cache the global model: %w", err)
		}
	}
	return tr, nil
}

// validWRMSSE is the WRMSSE of the forecasts means[i][h] of the days
// validOrigin+h (the validation window), weighted as at validOrigin.
func validWRMSSE(ds *backtest.Dataset, v, horizon int, means [][]float64) float64 {
	var num, den float64
	for i, s := range ds.Series {
		sc := backtest.ScoreSeries(s.Values[:v], s.Prices[:v], s.Values[v:v+horizon], backtest.Prediction{Means: means[i]})
		if sc.Valid {
			num += sc.Weight * sc.RMSSE
			den += sc.Weight
		}
	}
	if den == 0 {
		return math.Inf(1)
	}
	return num / den
}

// Elapsed reports the row's time: the trainings' (also when they came
// from the cache or were done for another row) and the forecasts'.
func (g *DirectGBT) Elapsed() time.Duration { return g.elapsed }

// Forecast implements backtest.Model: means, with negative-binomial
// quantiles calibrated on the validation window (calibration.go).
func (g *DirectGBT) Forecast(ds *backtest.Dataset, origin, horizon int) ([]backtest.Prediction, error) {
	return g.ForecastContext(context.Background(), ds, origin, horizon)
}

// ForecastContext implements backtest.ContextModel: Forecast whose
// trainings stop when ctx is done.
func (g *DirectGBT) ForecastContext(ctx context.Context, ds *backtest.Dataset, origin, horizon int) ([]backtest.Prediction, error) {
	start := time.Now()
	tr, spent, err := g.train(ctx, ds, origin, horizon)
	if err != nil {
		return nil, err
	}
	defer func() { g.elapsed += tr.Elapsed + time.Since(start) - spent }()
	means := make([][]float64, len(ds.Series))
	for i := range ds.Series {
		means[i] = tr.Forecast(g.panel, i, origin, horizon)
	}
	sets, err := g.validSets(ctx, ds, origin, horizon, func(b *directBag) ([][]float64, error) { return b.Valid, nil })
	if err != nil {
		return nil, err
	}
	cal := g.fitCalibration(ds, sets, horizon)
	return cal.predictions(ds, origin, means), nil
}

// fitCalibration fits the calibration the settings ask for.
func (g *DirectGBT) fitCalibration(ds *backtest.Dataset, sets []validSet, horizon int) *calibration {
	if g.ClassCalibration {
		return fitClassCalibration(ds, sets, horizon, g.RobustDispersion)
	}
	return fitCalibrationSets(ds, sets, horizon, g.PITCalibration, g.RobustDispersion)
}

// validSets returns the validation windows the calibration at origin is
// fitted on: the bag's at origin, then (CalibrationWindows) those of the
// bags trained at origin-horizon, ... while they have training rows;
// valid gives a bag's forecasts of its window.
func (g *DirectGBT) validSets(ctx context.Context, ds *backtest.Dataset, origin, horizon int, valid func(*directBag) ([][]float64, error)) ([]validSet, error) {
	var sets []validSet
	for w := range max(g.CalibrationWindows, 1) {
		o := origin - w*horizon
		if w > 0 && o-2*horizon <= firstRow {
			break
		}
		b, _, err := g.train(ctx, ds, o, horizon)
		if err != nil {
			return nil, err
		}
		m, err := valid(b)
		if err != nil {
			return nil, err
		}
		sets = append(sets, validSet{b.ValidOrigin, m})
	}
	return sets, nil
}

// CombinedDirect combines the direct global model with a per-series
// model (the statistical ensemble): the weight of the global model is
// the one of 0, 0.05, ..., 1 with the lowest WRMSSE on the validation
// window (both models forecasting it out of sample), and the quantiles
// are calibrated on the same window. With PerBucket the weight is learned
// per horizon bucket (coordinate descent from the single weight, on the
// same window). Its wall time includes the global model's training when
// this row trained it.
type CombinedDirect struct {
	Global *DirectGBT
	// Series is the per-series model (backtest.Ensemble{} if nil).
	Series    backtest.Model
	PerBucket bool
	// Weights records the chosen global weights per origin (one per
	// bucket with PerBucket), ValidLoss the combination's WRMSSE on the
	// validation window.
	Weights   map[int][]float64
	ValidLoss map[int]float64
	extra     time.Duration
}

// Name implements backtest.Model.
func (c *CombinedDirect) Name() string { return "stockcast_combined_direct" }

// ValidWRMSSE reports the combination's WRMSSE on the validation window
// of origin (with the weight chosen there), once it has forecast from
// origin.
func (c *CombinedDirect) ValidWRMSSE(origin int) (float64, bool) {
	l, ok := c.ValidLoss[origin]
	return l, ok
}

// Elapsed reports this row's time, including the global model's training
// when the GBT row did it.
func (c *CombinedDirect) Elapsed() time.Duration { return c.extra }

// Forecast implements backtest.Model.
func (c *CombinedDirect) Forecast(ds *backtest.Dataset, origin, horizon int) ([]backtest.Prediction, error) {
	return c.ForecastContext(context.Background(), ds, origin, horizon)
}

// ForecastContext implements backtest.ContextModel.
func (c *CombinedDirect) ForecastContext(ctx context.Context, ds *backtest.Dataset, origin, horizon int) ([]backtest.Prediction, error) {
	start := time.Now()
	tr, spent, err := c.Global.train(ctx, ds, origin, horizon)
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
	lags := c.Global.Lags
	if lags == nil {
		lags = DefaultBucketLags()
	}
	nb := 1
	if c.PerBucket {
		nb = len(lags)
	}
	wOf := func(w []float64, h int) float64 {
		if len(w) == 1 {
			return w[0]
		}
		return w[bucket(lags, h)]
	}
	loss := func(w []float64) float64 {
		m := make([][]float64, len(ds.Series))
		for i := range ds.Series {
			m[i] = make([]float64, horizon)
			for h := range horizon {
				m[i][h] = wOf(w, h)*tr.Valid[i][h] + (1-wOf(w, h))*sv[i].Means[h]
			}
		}
		return validWRMSSE(ds, v, horizon, m)
	}
	// one weight for all days, then (PerBucket) each bucket's in turn
	w := []float64{0}
	bestLoss := math.Inf(1)
	for k := 0; k <= 20; k++ {
		if l := loss([]float64{float64(k) / 20}); l < bestLoss-1e-12 {
			w[0], bestLoss = float64(k)/20, l
		}
	}
	if nb > 1 {
		w = slices.Repeat(w, nb)
		for range 2 {
			for b := range nb {
				for k := 0; k <= 20; k++ {
					try := slices.Clone(w)
					try[b] = float64(k) / 20
					if l := loss(try); l < bestLoss-1e-12 {
						w, bestLoss = try, l
					}
				}
			}
		}
	}
	if c.Weights == nil {
		c.Weights, c.ValidLoss = map[int][]float64{}, map[int]float64{}
	}
	c.Weights[origin], c.ValidLoss[origin] = w, bestLoss
	valid, means := make([][]float64, len(ds.Series)), make([][]float64, len(ds.Series))
	for i := range ds.Series {
		g := tr.Forecast(c.Global.panel, i, origin, horizon)
		valid[i], means[i] = make([]float64, horizon), make([]float64, horizon)
		for h := range horizon {
			a := wOf(w, h)
			valid[i][h] = a*tr.Valid[i][h] + (1-a)*sv[i].Means[h]
			means[i][h] = a*g[h] + (1-a)*st[i].Means[h]
		}
	}
	sets, err := c.Global.validSets(ctx, ds, origin, horizon, func(b *directBag) ([][]float64, error) {
		if b.ValidOrigin == v {
			return valid, nil
		}
		// an earlier window: the same weights on its bag's and the
		// series model's out-of-sample forecasts of it
		sw, err := series.Forecast(ds, b.ValidOrigin, horizon)
		if err != nil {
			return nil, err
		}
		m := make([][]float64, len(ds.Series))
		for i := range m {
			m[i] = make([]float64, horizon)
			for h := range horizon {
				a := wOf(w, h)
				m[i][h] = a*b.Valid[i][h] + (1-a)*sw[i].Means[h]
			}
		}
		return m, nil
	})
	if err != nil {
		return nil, err
	}
	out := c.Global.fitCalibration(ds, sets, horizon).predictions(ds, origin, means)
	c.extra += time.Since(start)
	return out, nil
}

// cachePath names the file a training with these settings at origin is
// kept in under dir: what it was trained on and how, hashed.
func cachePath(dir string, g DirectParams, ds *backtest.Dataset, origin, horizon int) string {
	lags := g.Lags
	if lags == nil {
		lags = DefaultBucketLags()
	}
	var names [][]string
	for _, l := range lags {
		names = append(names, FeatureNamesLagSet(l, g.Features))
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
	return filepath.Join(dir, fmt.Sprintf("direct-%s-%d-%s.gob", ds.Name, origin, hex.EncodeToString(sum[:6])))
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
