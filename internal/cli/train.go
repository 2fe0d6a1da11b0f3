package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math"
	"path/filepath"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/stockcast/stockcast/pkg/backtest"
	"github.com/stockcast/stockcast/pkg/chx"
	"github.com/stockcast/stockcast/pkg/forecasting"
	"github.com/stockcast/stockcast/pkg/gbt"
	"github.com/stockcast/stockcast/pkg/globalmodel"
	"github.com/stockcast/stockcast/pkg/modelregistry"
)

// Promotion policies of `stockcast train -promote`.
const (
	promoteAuto  = "auto"  // promote when better than the champion on the same days (or when there is none)
	promoteForce = "force" // promote whatever the comparison says
	promoteNever = "never" // record as a challenger only
)

func runTrain(ctx context.Context, e *env, args []string) error {
	fs := flag.NewFlagSet("train", flag.ContinueOnError)
	var f backtestFlags
	f.register(fs)
	fs.Lookup("data").Usage = "data set: m5 (long M5 format, data/m5-tiny), online-retail (daily aggregates of the order lines) or clickhouse (the history ingest stored, -clickhouse.*)"
	var ch chx.Config
	ch.RegisterFlags(fs)
	var rng chRange
	fs.StringVar(&rng.from, "from", "", "-data clickhouse: first day (default: the first day with demand)")
	fs.StringVar(&rng.to, "to", "", "-data clickhouse: last day (default: the last day with demand, at most yesterday)")
	registry := fs.String("registry", "auto", "record the run in ClickHouse table models and read the champion there: on, off, auto (on with -data clickhouse)")
	promote := fs.String("promote", promoteAuto, "auto (if better than the champion on the same days), force or never")
	out := fs.String("out", ".data/models", "directory the versioned artefact is written to")
	champion := fs.String("champion", "", "artefact of the current champion (default: the registry's champion)")
	exportMatrix := fs.String("export-matrix", "", "also write the training, validation and test matrices here (for XGBoost on the same matrix)")
	params := gbt.DefaultParams()
	fs.Uint64Var(&params.Seed, "seed", params.Seed, "seed of the row and feature sampling")
	fs.IntVar(&params.Rounds, "rounds", params.Rounds, "maximum number of trees")
	fs.IntVar(&params.MaxDepth, "max-depth", params.MaxDepth, "tree depth")
	fs.Float64Var(&params.Eta, "eta", params.Eta, "learning rate")
	if err := e.parse(fs, args); err != nil {
		return err
	}
	switch *promote {
	case promoteAuto, promoteForce, promoteNever:
	default:
		return fmt.Errorf("-promote %q: want auto, force or never", *promote)
	}
	useRegistry := *registry == "on" || (*registry == "auto" && f.data == "clickhouse")
	if *registry != "on" && *registry != "off" && *registry != "auto" {
		return fmt.Errorf("-registry %q: want on, off or auto", *registry)
	}
	var conn driver.Conn
	if useRegistry || f.data == "clickhouse" {
		c, err := chx.Open(ctx, ch)
		if err != nil {
			return err
		}
		defer c.Close()
		conn = c
	}
	f.cfg.Origins = 1
	var ds *backtest.Dataset
	if f.data == "clickhouse" {
		rng.top = f.top
		d, censored, err := loadClickHouse(ctx, conn, rng, time.Now())
		if err != nil {
			return fmt.Errorf("load history from clickhouse: %w", err)
		}
		ds = d
		fmt.Fprintf(e.stdout, "clickhouse %s: %d series x %d days from %s, %d stockout days censored\n",
			ch.Database, len(ds.Series), ds.Days, ds.Start, censored)
	} else {
		d, err := f.load()
		if err != nil {
			return fmt.Errorf("load %s: %w", f.data, err)
		}
		ds = d
	}
	if ds.Days <= f.cfg.Horizon+56 {
		return fmt.Errorf("%s has %d days: too few to train with a %d-day holdout", ds.Name, ds.Days, f.cfg.Horizon)
	}
	var reg *modelregistry.Registry
	var champ *modelregistry.Model
	if useRegistry {
		if err := modelregistry.Migrate(ctx, conn); err != nil {
			return err
		}
		reg = modelregistry.New(conn)
		m, ok, err := reg.Champion(ctx)
		if err != nil {
			return err
		}
		if ok {
			champ = &m
		}
	}
	championPath := *champion
	if championPath == "" && champ != nil {
		championPath = champ.Artefact
	}

	origin := ds.Days - f.cfg.Horizon
	global := &globalmodel.GBT{Params: params, Refit: true}
	combined := &fixedCombined{label: "stockcast_combined"}
	models := []backtest.Model{global, combined, backtest.Ensemble{}, &backtest.EnsembleCalibrated{}}
	var champModel *fixedCombined
	var championVersion string
	if championPath != "" {
		a, err := globalmodel.LoadArtefact(championPath)
		if err != nil {
			// an unreadable champion cannot be compared: say so, and let the
			// new model take its place
			fmt.Fprintf(e.stdout, "champion %s cannot be loaded (%v): comparing with nothing\n", championPath, err)
		} else {
			championVersion = a.Version
			champModel = &fixedCombined{label: "champion_" + a.Version, model: a.Model}
			models = append(models, champModel)
		}
	}
	// the new model's combination is scored after the global model is
	// trained (models run in order)
	combined.trained = func() *gbt.Model { return global.Trained().Model }
	results, err := backtest.Run(ctx, ds, f.cfg, models)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "train %s: %d series, holdout %s + %d days\n", ds.Name, len(ds.Series), ds.Day(origin), f.cfg.Horizon)
	if err := backtest.WriteTable(e.stdout, results); err != nil {
		return err
	}
	if err := backtest.WriteLeadTimeTable(e.stdout, results); err != nil {
		return err
	}
	g, c := results[0].Summary, results[1].Summary
	tr := global.Trained()
	metrics := map[string]float64{"wrmsse": g.WRMSSE, "wspl": g.WSPL, "mean_rmsse": g.MeanRMSSE, "mean_mase": g.MeanMASE,
		"bias": g.Bias, "coverage50": g.Coverage[0], "coverage90": g.Coverage[1], "coverage98": g.Coverage[2],
		"combined_wrmsse": c.WRMSSE, "combined_wspl": c.WSPL, "combined_mean_mase": c.MeanMASE, "combined_bias": c.Bias,
		"combined_coverage50": c.Coverage[0], "combined_coverage90": c.Coverage[1], "combined_coverage98": c.Coverage[2],
		"ensemble_wrmsse": results[2].Summary.WRMSSE, "ensemble_wspl": results[2].Summary.WSPL,
		"ensemble_pit50": results[2].Summary.PIT[0], "ensemble_pit90": results[2].Summary.PIT[1], "ensemble_pit98": results[2].Summary.PIT[2],
		"ensemble_calibrated_wspl": results[3].Summary.WSPL, "ensemble_calibrated_pit50": results[3].Summary.PIT[0],
		"ensemble_calibrated_pit90": results[3].Summary.PIT[1], "ensemble_calibrated_pit98": results[3].Summary.PIT[2],
		"ensemble_lead_xpit50": meanLeadTimePIT(results[2].Summary, 0), "ensemble_lead_xpit90": meanLeadTimePIT(results[2].Summary, 1),
		"ensemble_lead_xpit98": meanLeadTimePIT(results[2].Summary, 2), "ensemble_calibrated_lead_xpit50": meanLeadTimePIT(results[3].Summary, 0),
		"ensemble_calibrated_lead_xpit90": meanLeadTimePIT(results[3].Summary, 1), "ensemble_calibrated_lead_xpit98": meanLeadTimePIT(results[3].Summary, 2),
		"rounds": float64(tr.Rounds), "train_seconds": tr.Elapsed.Seconds(), "series": float64(len(ds.Series))}
	champWRMSSE := math.NaN()
	if champModel != nil {
		champWRMSSE = results[len(results)-1].Summary.WRMSSE
		metrics["champion_wrmsse"] = champWRMSSE
	}
	a, err := globalmodel.NewArtefact(tr.Model, ds.Name, ds.Day(origin).String(), f.cfg.Horizon, metrics, time.Now())
	if err != nil {
		return err
	}
	// the ensemble's quantile calibration the service applies with this
	// model (daily and lead-time quantiles): fitted as the backtest's
	// calibrated ensemble (its held-out rows above), on the windows before
	// the last day, for forecasts from the day after it
	cal, _ := backtest.FitEnsembleCalibration(ds, ds.Days, f.cfg.Horizon, backtest.DefaultCalibrationWindows)
	if err := a.SetCalibration(cal); err != nil {
		return err
	}
	path, err := a.Save(*out)
	if err != nil {
		return fmt.Errorf("save artefact: %w", err)
	}
	// the registry tells other processes where the artefact is
	if abs, err := filepath.Abs(path); err == nil {
		path = abs
	}
	if err := modelregistry.NewSeries(a.Version, ds).Save(path); err != nil {
		return fmt.Errorf("save the artefact's series codes: %w", err)
	}
	fmt.Fprintf(e.stdout, "artefact %s: %s (%d trees, trained in %.1fs)\n", a.Version, path, len(tr.Model.Trees), tr.Elapsed.Seconds())

	// The service scores with the combination, so the combination decides:
	// the new model's and the champion's, each averaged with the same
	// ensemble, on the same held-out days.
	better := champModel == nil || c.WRMSSE < champWRMSSE
	if champModel != nil {
		verdict := "keep the champion"
		if better {
			verdict = "promote " + a.Version
		}
		fmt.Fprintf(e.stdout, "champion WRMSSE %.4f, new %.4f: %s\n", champWRMSSE, c.WRMSSE, verdict)
	}
	doPromote := *promote == promoteForce || (*promote == promoteAuto && better)
	if reg != nil {
		body, err := json.Marshal(finite(metrics))
		if err != nil {
			return fmt.Errorf("encode metrics: %w", err)
		}
		m := modelregistry.Model{Version: a.Version, CreatedAt: a.Created, DataSet: ds.Name, Artefact: path,
			WRMSSE: c.WRMSSE, WSPL: c.WSPL, MASE: c.MeanMASE, Bias: c.Bias,
			Coverage50: c.Coverage[0], Coverage90: c.Coverage[1], Coverage98: c.Coverage[2],
			ChampionVersion: championVersion, ChampionWRMSSE: champWRMSSE, TrainSeconds: tr.Elapsed.Seconds(),
			MetricsJSON: string(body), Status: modelregistry.StatusChallenger}
		if champ != nil && champ.Version == a.Version {
			m.Status = modelregistry.StatusChampion // the same model again: it stays the champion
			doPromote = false
		}
		if doPromote {
			m.Status = modelregistry.StatusChampion
		}
		if err := reg.Record(ctx, m); err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "registry: %s recorded as %s\n", a.Version, m.Status)
	} else if doPromote && *promote == promoteForce {
		return errors.New("-promote force needs the registry (-registry on)")
	}
	if *exportMatrix != "" {
		if err := globalmodel.ExportMatrix(globalmodel.NewPanel(ds), origin, f.cfg.Horizon, *exportMatrix); err != nil {
			return fmt.Errorf("export matrix: %w", err)
		}
	}
	return nil
}

// meanLeadTimePIT is the mean over the lead times of the exact PIT
// coverage of interval i (50, 90, 98%) of the lead-time demand (NaN
// without one).
func meanLeadTimePIT(s backtest.Summary, i int) float64 {
	sum, n := 0.0, 0
	for _, c := range s.LeadTimePIT {
		if !math.IsNaN(c[i]) {
			sum, n = sum+c[i], n+1
		}
	}
	if n == 0 {
		return math.NaN()
	}
	return sum / float64(n)
}

// finite drops NaN and infinite metrics, which JSON cannot hold.
func finite(m map[string]float64) map[string]float64 {
	out := make(map[string]float64, len(m))
	for k, v := range m {
		if !math.IsNaN(v) && !math.IsInf(v, 0) {
			out[k] = v
		}
	}
	return out
}

// fixedCombined is a trained global model averaged with the per-series
// ensemble as the forecast service combines them (equal weights on the
// daily means, the ensemble's count distribution): the champion, and the
// new model once trained, are compared in this form.
type fixedCombined struct {
	label   string
	model   *gbt.Model
	trained func() *gbt.Model // when model is nil: the model to use, known after training
	panel   *globalmodel.Panel
}

// Name implements backtest.Model.
func (f *fixedCombined) Name() string { return f.label }

// Forecast implements backtest.Model.
func (f *fixedCombined) Forecast(ds *backtest.Dataset, origin, horizon int) ([]backtest.Prediction, error) {
	m := f.model
	if m == nil {
		m = f.trained()
	}
	fixed := &globalmodel.Fixed{Label: f.label, Model: m}
	g, err := fixed.Forecast(ds, origin, horizon)
	if err != nil {
		return nil, err
	}
	out := make([]backtest.Prediction, len(ds.Series))
	for i, s := range ds.Series {
		var st forecasting.State
		for t, y := range s.Values[:origin] {
			st.Observe(ds.Day(t), y, false)
		}
		fc := st.Forecast(forecasting.Request{StartDay: ds.Day(origin), Horizon: horizon, QuantileLevels: []float64{0.5}, LeadTimes: []int{0}})
		p := backtest.Prediction{Means: make([]float64, horizon), Quantiles: make([][]float64, horizon)}
		for h := range horizon {
			p.Means[h] = (g[i].Means[h] + fc.Means[h]) / 2
			p.Quantiles[h] = make([]float64, len(backtest.Levels))
			forecasting.CountQuantiles(p.Means[h], fc.Components.Dispersion, backtest.Levels, p.Quantiles[h])
		}
		out[i] = p
	}
	return out, nil
}
