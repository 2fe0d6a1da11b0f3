package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"

	"github.com/stockcast/stockcast/pkg/backtest"
	"github.com/stockcast/stockcast/pkg/forecasting"
	"github.com/stockcast/stockcast/pkg/gbt"
	"github.com/stockcast/stockcast/pkg/globalmodel"
)

// backtestFlags select the data, the splits and the models of a backtest.
type backtestFlags struct {
	data, path string
	top        int
	cfg        backtest.Config
	models     string
	export     string
	peers      string
	summary    bool
	// the direct global model's settings
	gbtTrainDays int
	gbtRounds    int
	gbtCache     string
	gbtTweedie   float64
	gbtDepth     int
	gbtSubsample float64
	gbtMinChild  float64
	gbtEta       float64
	gbtBag       string
	bag          []globalmodel.BagMember
	lags         []int
	gbtScale     bool
	perBucket    bool
	pitCal       bool
	classCal     bool
	series       int
	calWindows   int
	gbtCalWin    int
	gbtRobust    bool
	gbtFeatures  int
	gbtLags      string
	combineWith  string
}

func (f *backtestFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.data, "data", "m5", "data set: m5 (long M5 format, data/m5-tiny) or online-retail (daily aggregates of the order lines)")
	fs.StringVar(&f.path, "path", "", "data file (default: data/m5-tiny/tiny_m5_long.csv.gz or data/online-retail/online_retail.csv.gz in the working directory or a parent)")
	fs.IntVar(&f.top, "top", 200, "online-retail: keep the top N stock codes by units (0: all)")
	fs.IntVar(&f.cfg.Horizon, "horizon", 28, "forecast days per origin")
	fs.IntVar(&f.cfg.Origins, "origins", 1, "rolling origins; the last one forecasts the last horizon days")
	fs.IntVar(&f.cfg.Step, "step", 0, "days between origins (0: the horizon)")
	fs.StringVar(&f.models, "models", "all", "comma-separated models (all, or: stockcast_ensemble, stockcast_<member>, stockcast_gbt, stockcast_combined, naive, seasonal_naive, moving_average_28)")
	fs.StringVar(&f.export, "export", "", "write the splits (series.csv, origins.csv) for peers to this directory")
	fs.StringVar(&f.peers, "peers", "", "comma-separated peer forecast CSV files to score with the same metrics (times from <file>.times.csv if present)")
	fs.IntVar(&f.gbtTrainDays, "gbt-train-days", 730, "direct global model: train on the last N days before the validation window (0: all; 730 had the best validation-window WRMSSE on m5-tiny of 365, 730 and all)")
	fs.StringVar(&f.gbtCache, "gbt-cache", "", "direct global model: keep trainings in this directory and reuse them (same data, origin and settings)")
	fs.Float64Var(&f.gbtTweedie, "gbt-tweedie", 0, "global models: Tweedie variance power (0: the default)")
	fs.IntVar(&f.gbtRounds, "gbt-rounds", 0, "global models: maximum number of trees (0: the default)")
	fs.IntVar(&f.gbtDepth, "gbt-depth", 0, "global models: maximum tree depth, 1..16 (0: the default, 8)")
	fs.Float64Var(&f.gbtSubsample, "gbt-subsample", 0, "global models: fraction of the rows each tree is fitted on, (0, 1] (0: the default, 0.8)")
	fs.Float64Var(&f.gbtMinChild, "gbt-min-child", 0, "global models: minimum hessian sum in a leaf (0: the default, 10)")
	fs.Float64Var(&f.gbtEta, "gbt-eta", 0, "global models: learning rate (0: the default, 0.05)")
	fs.StringVar(&f.gbtBag, "gbt-bag", "", "direct global model: a bag of trainings averaged, as days:seed,... (days 0: all; empty: one, --gbt-train-days and seed 1)")
	fs.BoolVar(&f.gbtScale, "gbt-scale", false, "direct global model: multiply its forecasts by the level correction (0.80..1.20) with the best validation-window WRMSSE")
	fs.BoolVar(&f.perBucket, "combine-per-bucket", false, "stockcast_combined_direct: learn the global model's weight per horizon bucket on the validation window")
	fs.BoolVar(&f.pitCal, "gbt-pit-calibration", false, "direct global model and combination: calibrate the quantile levels so that the PIT coverage (not the inclusive one) is nominal on the validation window")
	fs.IntVar(&f.calWindows, "calibration-windows", backtest.DefaultCalibrationWindows, "stockcast_ensemble_calibrated: horizon-long windows before the origin its quantile calibration is fitted on")
	fs.BoolVar(&f.classCal, "gbt-class-calibration", false, "direct global model and combination: calibrate the dispersion and the PIT levels per class of the day's mean on the validation window (as stockcast_ensemble_calibrated)")
	fs.IntVar(&f.gbtCalWin, "gbt-calibration-windows", 1, "direct global model and combination: validation windows the quantile calibration is fitted on (more than 1: also those of the trainings 28, 56, ... days before the origin)")
	fs.BoolVar(&f.gbtRobust, "gbt-robust-dispersion", false, "direct global model and combination: cap each validation error at 3 standard deviations in the per-series dispersion of the calibration")
	fs.IntVar(&f.gbtFeatures, "gbt-features", 0, "direct global model: feature set (0: session 2's 38 features; 1: also the lag series' std over 7 and 112 days, its 3-day mean, the item's and store x department's 7-day means, days to the next and since the last event)")
	fs.StringVar(&f.gbtLags, "gbt-lags", defaultBacktestLags, "direct global model: the horizon buckets' minimum lags, comma-separated (empty: 7,14,21,28, session 2's buckets; the default, one booster for each of days 1-7, had the lower validation-window WRMSSE on m5 and online-retail, session 8)")
	fs.StringVar(&f.combineWith, "combine-with", "ensemble", "stockcast_combined_direct: the per-series model the direct model is combined with (ensemble, or moving_average_28: the 28-day moving average)")
	fs.IntVar(&f.series, "series", 0, "keep only the first N series (0: all; for timing peers on a subset)")
	fs.BoolVar(&f.summary, "summary", false, "end with the line 'summary: wrmsse_stockcast=... wrmsse_best_peer=... best_peer=... wspl_stockcast=... wspl_best_peer=...'")
}

func (f *backtestFlags) load() (*backtest.Dataset, error) {
	switch f.data {
	case "m5":
		path := f.path
		if path == "" {
			p, err := backtest.FindFile("data/m5-tiny/tiny_m5_long.csv.gz")
			if err != nil {
				return nil, err
			}
			path = p
		}
		return backtest.LoadM5(path)
	case "online-retail":
		path := f.path
		if path == "" {
			p, err := backtest.FindFile("data/online-retail/online_retail.csv.gz")
			if err != nil {
				return nil, err
			}
			path = p
		}
		return backtest.LoadOnlineRetail(path, f.top)
	default:
		return nil, fmt.Errorf("unknown data set %q (m5, online-retail)", f.data)
	}
}

// allModels lists the Go models of a backtest: the ensemble, each member
// alone and the classical baselines.
func allModels(f *backtestFlags) []backtest.Model {
	models := []backtest.Model{backtest.Ensemble{}}
	calibrated := &backtest.EnsembleCalibrated{}
	if f != nil {
		calibrated.Windows = f.calWindows
	}
	models = append(models, calibrated)
	for i := range forecasting.MemberNames() {
		models = append(models, backtest.Member(i))
	}
	params := gbt.DefaultParams()
	if f != nil { // a flag's 0 keeps the default (and the cache keys)
		override(&params.Rounds, f.gbtRounds)
		override(&params.TweedieVariancePower, f.gbtTweedie)
		override(&params.MaxDepth, f.gbtDepth)
		override(&params.Subsample, f.gbtSubsample)
		override(&params.MinChildWeight, f.gbtMinChild)
		override(&params.Eta, f.gbtEta)
	}
	global := &globalmodel.GBT{Params: params, Refit: true}
	models = append(models, global, &globalmodel.Combined{Global: global})
	direct := &globalmodel.DirectGBT{DirectParams: globalmodel.DirectParams{Params: params, Refit: true}}
	combined := &globalmodel.CombinedDirect{Global: direct}
	if f != nil {
		direct.TrainDays, direct.CacheDir, direct.Scale = f.gbtTrainDays, f.gbtCache, f.gbtScale
		direct.Bag, direct.PITCalibration, direct.ClassCalibration = f.bag, f.pitCal, f.classCal
		direct.CalibrationWindows, direct.RobustDispersion = f.gbtCalWin, f.gbtRobust
		direct.Features, direct.Lags = f.gbtFeatures, f.lags
		combined.PerBucket = f.perBucket
		if f.combineWith == "moving_average_28" {
			combined.Series = backtest.Baseline{Kind: "moving_average", Window: 28}
		}
	}
	models = append(models, direct, combined)
	return append(models, backtest.Baseline{Kind: "naive"}, backtest.Baseline{Kind: "seasonal_naive"},
		backtest.Baseline{Kind: "moving_average", Window: 28})
}

func selectModels(list string, f *backtestFlags) ([]backtest.Model, error) {
	all := allModels(f)
	if list == "all" {
		return all, nil
	}
	if list == "" || list == "none" {
		return nil, nil
	}
	var out []backtest.Model
	for _, name := range strings.Split(list, ",") {
		found := false
		for _, m := range all {
			if m.Name() == strings.TrimSpace(name) {
				out, found = append(out, m), true
			}
		}
		if !found {
			return nil, fmt.Errorf("unknown model %q", name)
		}
	}
	return out, nil
}

func runBacktest(ctx context.Context, e *env, args []string) error {
	fs := flag.NewFlagSet("backtest", flag.ContinueOnError)
	var f backtestFlags
	f.register(fs)
	if err := e.parse(fs, args); err != nil {
		return err
	}
	bag, err := globalmodel.ParseBag(f.gbtBag)
	if err != nil {
		return err
	}
	f.bag = bag
	if f.lags, err = parseLags(f.gbtLags); err != nil {
		return err
	}
	if f.gbtSubsample < 0 || f.gbtSubsample > 1 || f.gbtDepth < 0 || f.gbtDepth > 16 || f.gbtMinChild < 0 || f.gbtEta < 0 {
		return fmt.Errorf("--gbt-subsample %v (want (0, 1]), --gbt-depth %d (1..16), --gbt-min-child %v, --gbt-eta %v: out of range",
			f.gbtSubsample, f.gbtDepth, f.gbtMinChild, f.gbtEta)
	}
	if f.combineWith != "ensemble" && f.combineWith != "moving_average_28" {
		return fmt.Errorf("--combine-with %q: want ensemble or moving_average_28", f.combineWith)
	}
	models, err := selectModels(f.models, &f)
	if err != nil {
		return err
	}
	ds, err := f.load()
	if err != nil {
		return fmt.Errorf("load %s: %w", f.data, err)
	}
	if f.series > 0 && f.series < len(ds.Series) {
		ds.Series = ds.Series[:f.series]
	}
	if f.export != "" {
		if err := backtest.WriteSplits(f.export, ds, f.cfg); err != nil {
			return fmt.Errorf("export splits: %w", err)
		}
		fmt.Fprintf(e.stderr, "wrote %d series x %d days and %d origins to %s\n", len(ds.Series), ds.Days, f.cfg.Origins, f.export)
	}
	peers := map[string]bool{}
	if f.peers != "" {
		for _, path := range strings.Split(f.peers, ",") {
			times := strings.TrimSuffix(path, ".csv") + ".times.csv"
			if _, err := os.Stat(times); errors.Is(err, os.ErrNotExist) {
				times = ""
			}
			stored, err := backtest.ReadForecasts(path, times, ds, f.cfg)
			if err != nil {
				return fmt.Errorf("read peer forecasts: %w", err)
			}
			for _, m := range stored {
				models = append(models, m)
				peers[m.Name()] = true
			}
		}
	}
	if len(models) == 0 {
		return nil
	}
	results, err := backtest.Run(ctx, ds, f.cfg, models)
	if err != nil {
		return err
	}
	for _, m := range models {
		if c, ok := m.(*globalmodel.CombinedDirect); ok {
			fmt.Fprintf(e.stderr, "%s: global model weight by origin (learned on the validation window): %v; validation-window WRMSSE %v\n", c.Name(), c.Weights, c.ValidLoss)
		}
		if g, ok := m.(*globalmodel.DirectGBT); ok {
			fmt.Fprintf(e.stderr, "%s: bag %v, level correction by origin (learned on the validation window): %v; validation-window WRMSSE %v\n", g.Name(), g.Bag, g.Scales, g.ValidLoss)
		}
	}
	fmt.Fprintf(e.stdout, "backtest %s: %d series, %d days, %d origin(s) x horizon %d\n", ds.Name, len(ds.Series), ds.Days, f.cfg.Origins, f.cfg.Horizon)
	if err := backtest.WriteTable(e.stdout, results); err != nil {
		return err
	}
	if err := backtest.WriteLeadTimeTable(e.stdout, results); err != nil {
		return err
	}
	if f.summary {
		var ours []backtest.Model
		for _, m := range models {
			if !peers[m.Name()] && strings.HasPrefix(m.Name(), "stockcast") {
				ours = append(ours, m)
			}
		}
		valid, err := backtest.ValidationWRMSSE(ctx, ds, f.cfg, ours)
		if err != nil {
			return err
		}
		line, row := backtestSummary(results, peers, valid)
		if row != "none" {
			fmt.Fprintf(e.stdout, "summary row: %s, the stockcast row with the lowest WRMSSE on the validation window (%.4f; the %d days before each origin); peers: the lowest on the test days\n",
				row, valid[row], f.cfg.Horizon)
		}
		fmt.Fprintln(e.stdout, line)
	}
	return nil
}

// backtestSummary compares stockcast's row chosen on the validation window
// (the model named stockcast_... with the lowest valid[model], its test
// WRMSSE and WSPL) with the best peer rows on the test days (the peers
// have no validation-window forecasts: their best test rows, a choice that
// favours them), by WRMSSE and by WSPL. It returns the line and the chosen
// stockcast row ("none" without one).
func backtestSummary(results []backtest.Result, peers map[string]bool, valid map[string]float64) (line, row string) {
	row = "none"
	ws, ss, vs := math.NaN(), math.NaN(), math.NaN()
	for _, r := range results {
		v, ok := valid[r.Model]
		if !strings.HasPrefix(r.Model, "stockcast") || peers[r.Model] || !ok || math.IsNaN(v) || math.IsNaN(r.Summary.WRMSSE) {
			continue
		}
		if math.IsNaN(vs) || v < vs {
			row, vs, ws, ss = r.Model, v, r.Summary.WRMSSE, r.Summary.WSPL
		}
	}
	best := func(metric func(backtest.Summary) float64) (string, float64) {
		name, v := "none", math.NaN()
		for _, r := range results {
			if !peers[r.Model] {
				continue
			}
			if m := metric(r.Summary); !math.IsNaN(m) && (math.IsNaN(v) || m < v) {
				name, v = r.Model, m
			}
		}
		return name, v
	}
	peer, wp := best(func(s backtest.Summary) float64 { return s.WRMSSE })
	_, sp := best(func(s backtest.Summary) float64 { return s.WSPL })
	return fmt.Sprintf("summary: wrmsse_stockcast=%.4f wrmsse_best_peer=%.4f best_peer=%s wspl_stockcast=%.4f wspl_best_peer=%.4f",
		ws, wp, peer, ss, sp), row
}

// defaultBacktestLags are the backtest's direct-model buckets: one booster
// per horizon day for the first week, then weekly buckets (docs/forecasting.md,
// session 8: lower validation-window WRMSSE than 7,14,21,28 on both data sets).
const defaultBacktestLags = "1,2,3,4,5,6,7,14,21,28"

// parseLags reads --gbt-lags ("7,14,21,28"; empty: nil, the default).
func parseLags(spec string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(spec, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		l, err := strconv.Atoi(f)
		if err != nil || l < 1 || (len(out) > 0 && l <= out[len(out)-1]) {
			return nil, fmt.Errorf("--gbt-lags: want increasing positive days, got %q", spec)
		}
		out = append(out, l)
	}
	return out, nil
}

// override sets *dst to v when v is above zero (a flag given).
func override[T int | float64](dst *T, v T) {
	if v > 0 {
		*dst = v
	}
}
