package cli

import (
	"context"
	"flag"
	"fmt"
	"time"

	"github.com/stockcast/stockcast/pkg/backtest"
	"github.com/stockcast/stockcast/pkg/gbt"
	"github.com/stockcast/stockcast/pkg/globalmodel"
)

func runTrain(ctx context.Context, e *env, args []string) error {
	fs := flag.NewFlagSet("train", flag.ContinueOnError)
	var f backtestFlags
	f.register(fs)
	out := fs.String("out", ".data/models", "directory the versioned artefact is written to")
	champion := fs.String("champion", "", "artefact of the current champion: the new model is backtested against it on the same days")
	exportMatrix := fs.String("export-matrix", "", "also write the training, validation and test matrices here (for XGBoost on the same matrix)")
	params := gbt.DefaultParams()
	fs.Uint64Var(&params.Seed, "seed", params.Seed, "seed of the row and feature sampling")
	fs.IntVar(&params.Rounds, "rounds", params.Rounds, "maximum number of trees")
	fs.IntVar(&params.MaxDepth, "max-depth", params.MaxDepth, "tree depth")
	fs.Float64Var(&params.Eta, "eta", params.Eta, "learning rate")
	if err := e.parse(fs, args); err != nil {
		return err
	}
	f.cfg.Origins = 1
	ds, err := f.load()
	if err != nil {
		return fmt.Errorf("load %s: %w", f.data, err)
	}
	origin := ds.Days - f.cfg.Horizon
	global := &globalmodel.GBT{Params: params, Refit: true}
	models := []backtest.Model{global, &globalmodel.Combined{Global: global}, backtest.Ensemble{}}
	if *champion != "" {
		a, err := globalmodel.LoadArtefact(*champion)
		if err != nil {
			return err
		}
		models = append(models, &globalmodel.Fixed{Label: "champion_" + a.Version, Model: a.Model})
	}
	results, err := backtest.Run(ctx, ds, f.cfg, models)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "train %s: %d series, holdout %s + %d days\n", ds.Name, len(ds.Series), ds.Day(origin), f.cfg.Horizon)
	if err := backtest.WriteTable(e.stdout, results); err != nil {
		return err
	}
	s := results[0].Summary
	tr := global.Trained()
	metrics := map[string]float64{"wrmsse": s.WRMSSE, "wspl": s.WSPL, "mean_rmsse": s.MeanRMSSE, "mean_mase": s.MeanMASE,
		"bias": s.Bias, "coverage50": s.Coverage[0], "coverage90": s.Coverage[1], "coverage98": s.Coverage[2],
		"combined_wrmsse": results[1].Summary.WRMSSE, "combined_wspl": results[1].Summary.WSPL,
		"rounds": float64(tr.Rounds), "train_seconds": tr.Elapsed.Seconds()}
	a, err := globalmodel.NewArtefact(tr.Model, ds.Name, ds.Day(origin).String(), f.cfg.Horizon, metrics, time.Now())
	if err != nil {
		return err
	}
	path, err := a.Save(*out)
	if err != nil {
		return fmt.Errorf("save artefact: %w", err)
	}
	fmt.Fprintf(e.stdout, "artefact %s: %s (%d trees, trained in %.1fs)\n", a.Version, path, len(tr.Model.Trees), tr.Elapsed.Seconds())
	if *champion != "" {
		c := results[len(results)-1].Summary
		verdict := "keep the champion"
		if s.WRMSSE < c.WRMSSE {
			verdict = "promote " + a.Version
		}
		fmt.Fprintf(e.stdout, "champion WRMSSE %.4f, new %.4f: %s\n", c.WRMSSE, s.WRMSSE, verdict)
	}
	if *exportMatrix != "" {
		if err := globalmodel.ExportMatrix(globalmodel.NewPanel(ds), origin, f.cfg.Horizon, *exportMatrix); err != nil {
			return fmt.Errorf("export matrix: %w", err)
		}
	}
	return nil
}
