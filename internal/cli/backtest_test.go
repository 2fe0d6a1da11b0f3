package cli

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
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
	if got, err := parseLags(""); err != nil || got != nil {
		t.Errorf("parseLags(\"\") = %v, %v, want nil (the default buckets)", got, err)
	}
	for _, bad := range []string{"7,7", "14,7", "0,28", "x"} {
		if _, err := parseLags(bad); err == nil {
			t.Errorf("parseLags(%q): no error", bad)
		}
	}
}
