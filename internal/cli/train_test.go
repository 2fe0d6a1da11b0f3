package cli

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/stockcast/stockcast/pkg/backtest"
	"github.com/stockcast/stockcast/pkg/globalmodel"
)

// TestTrainCommand trains the global model twice on online-retail daily
// aggregates (top 40 stock codes, few trees): the artefacts must have the
// same version (deterministic for the seed), carry their metrics and the
// ensemble's calibration (the backtest's, part of the version), load back,
// and serve as the champion of a third run.
func TestTrainCommand(t *testing.T) {
	dir := t.TempDir()
	matrix := filepath.Join(dir, "matrix")
	args := []string{"train", "--data", "online-retail", "--top", "40", "--rounds", "40", "--max-depth", "4", "--out", dir}
	run := func(extra ...string) string {
		var out, errOut strings.Builder
		if err := Run(context.Background(), append(args, extra...), func(string) string { return "" }, &out, &errOut); err != nil {
			t.Fatalf("train: %v\n%s", err, errOut.String())
		}
		t.Log("\n" + out.String())
		return out.String()
	}
	first := run("--export-matrix", matrix)
	re := regexp.MustCompile(`artefact (gbt-[0-9a-f]{12}): (\S+)`)
	m1 := re.FindStringSubmatch(first)
	if m1 == nil {
		t.Fatalf("no artefact line in\n%s", first)
	}
	m2 := re.FindStringSubmatch(run())
	if m2 == nil || m2[1] != m1[1] {
		t.Fatalf("second training: %v, first %s: not deterministic", m2, m1[1])
	}
	a, err := globalmodel.LoadArtefact(m1[2])
	if err != nil {
		t.Fatal(err)
	}
	if a.Metrics["wrmsse"] <= 0 || a.Metrics["wrmsse"] > 2 || a.Data != "online-retail" || len(a.Model.Trees) == 0 {
		t.Errorf("artefact: data %s, %d trees, metrics %v", a.Data, len(a.Model.Trees), a.Metrics)
	}
	// the ensemble's calibration the service applies: the backtest's,
	// fitted on the 3 windows before the last day of the same data
	path, err := backtest.FindFile("data/online-retail/online_retail.csv.gz")
	if err != nil {
		t.Fatal(err)
	}
	ds, err := backtest.LoadOnlineRetail(path, 40)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := backtest.FitEnsembleCalibration(ds, ds.Days, 28, backtest.DefaultCalibrationWindows)
	if !reflect.DeepEqual(a.Calibration, want) {
		t.Errorf("artefact calibration %+v, want %+v", a.Calibration, want)
	}
	// with the lead times' calibration, and the held-out lead-time
	// coverage before and after it
	if len(a.Calibration.LeadTimes) != len(backtest.LeadTimes) {
		t.Errorf("%d lead-time calibrations in the artefact, want %d", len(a.Calibration.LeadTimes), len(backtest.LeadTimes))
	}
	for _, k := range []string{"ensemble_lead_xpit50", "ensemble_lead_xpit98", "ensemble_calibrated_lead_xpit50", "ensemble_calibrated_lead_xpit90"} {
		if v, ok := a.Metrics[k]; !ok || !(v > 0 && v <= 1) {
			t.Errorf("metric %s = %v (present %v)", k, v, ok)
		}
	}
	if !strings.Contains(first, "lead-time demand: exact PIT coverage") {
		t.Errorf("no lead-time table in\n%s", first)
	}
	bare, err := globalmodel.NewArtefact(a.Model, a.Data, a.Origin, a.Horizon, nil, a.Created)
	if err != nil {
		t.Fatal(err)
	}
	if bare.Version == a.Version {
		t.Errorf("version %s does not hash the calibration", a.Version)
	}
	third := run("--champion", m1[2])
	if !strings.Contains(third, "champion WRMSSE") || !strings.Contains(third, "keep the champion") {
		t.Errorf("a model equal to the champion should not replace it:\n%s", third)
	}
	for _, name := range []string{"fit.csv", "valid.csv", "all.csv", "test.csv"} {
		if fi, err := os.Stat(filepath.Join(matrix, name)); err != nil || fi.Size() == 0 {
			t.Errorf("matrix %s: %v", name, err)
		}
	}
}
