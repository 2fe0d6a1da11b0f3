package modelwatch

import (
	"context"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stockcast/stockcast/pkg/backtest"
	"github.com/stockcast/stockcast/pkg/gbt"
	"github.com/stockcast/stockcast/pkg/globalmodel"
	"github.com/stockcast/stockcast/pkg/modelregistry"
	"github.com/stockcast/stockcast/services/forecast/internal/scoring"
)

type target struct{ m *scoring.Model }

func (t *target) SetModel(m *scoring.Model) { t.m = m }

func artefact(t *testing.T, dir string, rounds int) (string, string) {
	t.Helper()
	ds := &backtest.Dataset{Name: "w", Start: 19000, Days: 150}
	for k, item := range []string{"A", "B"} {
		s := backtest.Series{ID: item + "|x", Item: item, Dept: "all", Cat: "all", Store: "x", Values: make([]float64, 150), Prices: make([]float64, 150)}
		for d := range 150 {
			s.Values[d], s.Prices[d] = float64((d%7+1)*(k+1)), math.NaN()
		}
		ds.Series = append(ds.Series, s)
	}
	p := gbt.DefaultParams()
	p.Rounds, p.MaxDepth, p.EarlyStoppingRounds, p.MinChildWeight = rounds, 2, 0, 1
	tr, err := globalmodel.Train(globalmodel.NewPanel(ds), 150, 28, p, false)
	if err != nil {
		t.Fatal(err)
	}
	a, err := globalmodel.NewArtefact(tr.Model, "w", "", 28, nil, time.Unix(0, 0))
	if err != nil {
		t.Fatal(err)
	}
	path, err := a.Save(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := modelregistry.NewSeries(a.Version, ds).Save(path); err != nil {
		t.Fatal(err)
	}
	return path, a.Version
}

// TestFileSource loads a file, keeps the model when the file is replaced by
// a corrupt one or removed (one failure each), and loads the file again
// when a valid model is written back.
func TestFileSource(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	src, v1 := artefact(t, dir, 5)
	file := filepath.Join(t.TempDir(), "champion.json")
	copyFile := func(from string) {
		t.Helper()
		body, err := os.ReadFile(from)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(file, body, 0o644); err != nil {
			t.Fatal(err)
		}
		if side, err := os.ReadFile(modelregistry.SeriesPath(from)); err == nil {
			if err := os.WriteFile(modelregistry.SeriesPath(file), side, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	copyFile(src)
	tg := &target{}
	w := New(Config{Source: SourceFile, File: file, Interval: time.Hour, Weight: 0.5}, nil, tg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	for range 2 { // the second poll sees no change
		if err := w.Poll(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if tg.m == nil || tg.m.Version != v1 || w.Stats().Loads != 1 || w.Version() != v1 {
		t.Fatalf("after loading: %+v, stats %+v", tg.m, w.Stats())
	}
	kept := tg.m
	if err := os.WriteFile(file, []byte("{not json"), 0o644); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		w.Poll(ctx)
	}
	if tg.m != kept || w.Stats().Failures != 1 {
		t.Fatalf("after a corrupt file: model %v, stats %+v", tg.m.Version, w.Stats())
	}
	os.Remove(file)
	w.Poll(ctx)
	if tg.m != kept || w.Stats().Failures != 2 {
		t.Fatalf("after removing the file: stats %+v", w.Stats())
	}
	src2, v2 := artefact(t, dir, 9)
	copyFile(src2)
	w.Poll(ctx)
	if tg.m.Version != v2 || v2 == v1 || w.Stats().Loads != 2 {
		t.Fatalf("after a new file: %s (stats %+v), want %s", tg.m.Version, w.Stats(), v2)
	}
}

func TestConfig(t *testing.T) {
	for _, c := range []struct {
		cfg Config
		ok  bool
	}{
		{Config{Source: SourceRegistry, Interval: time.Second, Weight: 0.5}, true},
		{Config{Source: SourceNone, Interval: time.Second, Weight: 1}, true},
		{Config{Source: SourceFile, Interval: time.Second, Weight: 0.5}, false},
		{Config{Source: "s3", Interval: time.Second, Weight: 0.5}, false},
		{Config{Source: SourceRegistry, Interval: 0, Weight: 0.5}, false},
		{Config{Source: SourceRegistry, Interval: time.Second, Weight: 0}, false},
	} {
		if err := c.cfg.Validate(); (err == nil) != c.ok {
			t.Errorf("%+v: %v", c.cfg, err)
		}
	}
}
