package cli

import (
	"context"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/stockcast/stockcast/pkg/backtest"
	"github.com/stockcast/stockcast/pkg/gbt"
	"github.com/stockcast/stockcast/pkg/globalmodel"
)

// TestBacktestCommand runs `stockcast backtest` on m5-tiny with the seasonal
// naive model, exporting the splits, and checks the reference score
// (BENCHMARKS.md: 1.208) and the summary line.
func TestBacktestCommand(t *testing.T) {
	dir := t.TempDir()
	var out, errOut strings.Builder
	err := Run(context.Background(), []string{"backtest", "--data", "m5", "--models", "seasonal_naive,stockcast_moving_average_28",
		"--export", dir, "--summary"}, func(string) string { return "" }, &out, &errOut)
	if err != nil {
		t.Fatalf("backtest: %v\n%s", err, errOut.String())
	}
	t.Log("\n" + out.String())
	if !regexp.MustCompile(`(?m)^seasonal_naive\s+1\.2078 `).MatchString(out.String()) {
		t.Errorf("no seasonal_naive row at WRMSSE 1.2078 in\n%s", out.String())
	}
	if !regexp.MustCompile(`(?m)^summary: wrmsse_stockcast=0\.9\d+ wrmsse_best_peer=NaN best_peer=none wspl_stockcast=0\.\d+ wspl_best_peer=NaN$`).MatchString(out.String()) {
		t.Errorf("summary line missing or wrong in\n%s", out.String())
	}
	origins, err := os.ReadFile(filepath.Join(dir, "origins.csv"))
	if err != nil {
		t.Fatal(err)
	}
	if string(origins) != "origin,train_days,horizon\n2016-03-28,1885,28\n" {
		t.Errorf("origins.csv = %q", origins)
	}
	if fi, err := os.Stat(filepath.Join(dir, "series.csv")); err != nil || fi.Size() < 10<<20 {
		t.Errorf("series.csv: %v, %v", fi, err)
	}
}

func TestParseLags(t *testing.T) {
	got, err := parseLags("3, 7,14,21,28")
	if err != nil || !slices.Equal(got, []int{3, 7, 14, 21, 28}) {
		t.Errorf("parseLags = %v, %v", got, err)
	}
	if got, err := parseLags(defaultBacktestLags); err != nil || !slices.Equal(got, []int{1, 2, 3, 4, 5, 6, 7, 14, 21, 28}) {
		t.Errorf("parseLags(default) = %v, %v", got, err)
	}
	if got, err := parseLags(""); err != nil || got != nil {
		t.Errorf("parseLags(\"\") = %v, %v, want nil (the default buckets)", got, err)
	}
	for _, bad := range []string{"7,7", "14,7", "0,28", "x"} {
		if _, err := parseLags(bad); err == nil {
			t.Errorf("parseLags(%q): no error", bad)
		}
	}
}

// TestBacktestSummaryChosenOnValidation: the summary's stockcast numbers
// are those of the stockcast row with the lowest validation-window WRMSSE
// (its test WRMSSE and WSPL, even where another row is lower on the test
// days); the peers' are their lowest on the test days; rows without a
// validation score are not chosen.
func TestBacktestSummaryChosenOnValidation(t *testing.T) {
	row := func(name string, wrmsse, wspl float64) backtest.Result {
		return backtest.Result{Model: name, Summary: backtest.Summary{WRMSSE: wrmsse, WSPL: wspl}}
	}
	results := []backtest.Result{
		row("stockcast_gbt_direct", 0.8843, 0.3100),      // best on test
		row("stockcast_combined_direct", 0.8933, 0.3048), // best on validation
		row("stockcast_ensemble", 0.9300, 0.3000),        // no validation score
		row("py_xgboost_direct", 0.8973, 0.3700),
		row("R_ets", 0.9800, 0.3627),
	}
	peers := map[string]bool{"py_xgboost_direct": true, "R_ets": true}
	valid := map[string]float64{"stockcast_gbt_direct": 0.8865, "stockcast_combined_direct": 0.8744, "py_xgboost_direct": 0.1}
	line, chosen := backtestSummary(results, peers, valid)
	if want := "summary: wrmsse_stockcast=0.8933 wrmsse_best_peer=0.8973 best_peer=py_xgboost_direct wspl_stockcast=0.3048 wspl_best_peer=0.3627"; line != want || chosen != "stockcast_combined_direct" {
		t.Errorf("got %q (row %s)\nwant %q (row stockcast_combined_direct)", line, chosen, want)
	}
	if line, chosen := backtestSummary(results, peers, nil); chosen != "none" ||
		line != "summary: wrmsse_stockcast=NaN wrmsse_best_peer=0.8973 best_peer=py_xgboost_direct wspl_stockcast=NaN wspl_best_peer=0.3627" {
		t.Errorf("no validation scores: %q (row %s)", line, chosen)
	}
}

// TestBacktestBoosterFlags: --gbt-depth, --gbt-subsample, --gbt-min-child
// and --gbt-eta reach both global models' booster settings, 0 keeps the
// defaults (so the cache keys of earlier trainings still hold), and
// values out of range fail before any data is read.
func TestBacktestBoosterFlags(t *testing.T) {
	paramsOf := func(args ...string) (gbt.Params, gbt.Params) {
		t.Helper()
		fs := flag.NewFlagSet("backtest", flag.ContinueOnError)
		var f backtestFlags
		f.register(fs)
		if err := fs.Parse(args); err != nil {
			t.Fatal(err)
		}
		var single, direct gbt.Params
		for _, m := range allModels(&f) {
			switch g := m.(type) {
			case *globalmodel.GBT:
				single = g.Params
			case *globalmodel.DirectGBT:
				direct = g.Params
			}
		}
		return single, direct
	}
	single, direct := paramsOf()
	if single != gbt.DefaultParams() || direct != gbt.DefaultParams() {
		t.Errorf("no flags: params %+v, %+v, want the defaults %+v", single, direct, gbt.DefaultParams())
	}
	want := gbt.DefaultParams()
	want.MaxDepth, want.Subsample, want.MinChildWeight, want.Eta = 6, 0.5, 40, 0.1
	single, direct = paramsOf("--gbt-depth", "6", "--gbt-subsample", "0.5", "--gbt-min-child", "40", "--gbt-eta", "0.1")
	if single != want || direct != want {
		t.Errorf("params %+v, %+v, want %+v", single, direct, want)
	}
	for _, bad := range [][]string{{"--gbt-subsample", "1.5"}, {"--gbt-depth", "17"}, {"--gbt-eta", "-0.1"}, {"--gbt-min-child", "-1"}} {
		var out, errOut strings.Builder
		args := append([]string{"backtest", "--data", "no-such-data"}, bad...)
		err := Run(context.Background(), args, func(string) string { return "" }, &out, &errOut)
		if err == nil || !strings.Contains(err.Error(), "out of range") {
			t.Errorf("%v: error %v, want out of range", bad, err)
		}
	}
}
