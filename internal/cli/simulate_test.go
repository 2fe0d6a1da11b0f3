package cli

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

const m5File = "../../data/m5-tiny/tiny_m5_long.csv.gz"

// TestSimulate runs the simulator end to end on a few real tiny_m5 series:
// every policy and target gets a table row, the per-class table and the
// summary follow, the summary's numbers are sane and the plot is a PNG.
func TestSimulate(t *testing.T) {
	plot := filepath.Join(t.TempDir(), "curve.png")
	var out, errOut syncBuffer
	args := []string{"simulate", "-m5", m5File, "-max-series", "6", "-eval-days", "364", "-plot", plot}
	if err := Run(context.Background(), args, noEnv, &out, &errOut); err != nil {
		t.Fatalf("simulate: %v\n%s", err, errOut.String())
	}
	s := out.String()
	for _, policy := range []string{"stockcast", "classic", "seasonal-naive", "odoo-minmax"} {
		if n := strings.Count(s, "\n| "+policy+" | "); n < 11 {
			t.Errorf("%d table rows of %s, want at least 11", n, policy)
		}
	}
	if !strings.Contains(s, "by demand class") {
		t.Error("no per-class table")
	}
	lines := strings.Split(strings.TrimSpace(s), "\n")
	last := lines[len(lines)-1]
	m := regexp.MustCompile(`^summary: fill_stockcast=([0-9.]+) inv_value_stockcast=([0-9]+) inv_value_classic_at_same_fill=(\S+) saving_pct=(\S+)$`).FindStringSubmatch(last)
	if m == nil {
		t.Fatalf("last line %q is not the summary", last)
	}
	fill, _ := strconv.ParseFloat(m[1], 64)
	value, _ := strconv.ParseFloat(m[2], 64)
	if !(fill > 0.5 && fill <= 1 && value > 0) {
		t.Errorf("summary fill %v value %v", fill, value)
	}
	png, err := os.ReadFile(plot)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(png), "\x89PNG") {
		t.Error("plot is not a PNG")
	}
}

func TestSimulateRejects(t *testing.T) {
	tests := []struct {
		args    []string
		wantErr string
	}{
		{[]string{"simulate", "-dataset", "nope"}, `unknown -dataset "nope"`},
		{[]string{"simulate", "-m5", m5File, "-review", "0"}, "review period 0"},
		{[]string{"simulate", "-m5", m5File, "-eval-days", "5000"}, "simulated days"},
		{[]string{"simulate", "-m5", m5File, "-policies", "classic,seasonal-naive"}, "must include stockcast"},
		{[]string{"simulate", "-m5", m5File, "-policies", "stockcast,nope"}, `unknown policy "nope"`},
		{[]string{"simulate", "-m5", m5File, "-intermittent", "nope"}, `unknown -intermittent "nope"`},
		{[]string{"simulate", "-m5", m5File, "-censored", "nope"}, `unknown -censored "nope"`},
		{[]string{"simulate", "-m5", m5File, "-classes", "nope"}, `unknown -classes "nope"`},
		{[]string{"simulate", "-m5", m5File, "-targets", "0.9,0.97"}, "must include -target 0.95"},
		{[]string{"simulate", "-m5", m5File, "-targets", "0.95,1.5"}, `"1.5" is not a fill rate`},
	}
	for _, tt := range tests {
		var out, errOut syncBuffer
		err := Run(context.Background(), tt.args, noEnv, &out, &errOut)
		if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
			t.Errorf("Run(%q) = %v, want error containing %q", tt.args, err, tt.wantErr)
		}
	}
}
