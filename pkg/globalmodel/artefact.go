package globalmodel

import (
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/stockcast/stockcast/pkg/forecasting"
	"github.com/stockcast/stockcast/pkg/gbt"
)

// Artefact is a trained global model as `stockcast train` writes it: the
// model, what it was trained on and its backtest metrics.
type Artefact struct {
	// Version is "gbt-" and the first 12 hex digits of the SHA-256 of the
	// model's settings and trees: equal models have equal versions.
	Version  string             `json:"version"`
	Created  time.Time          `json:"created"`
	Data     string             `json:"data"`
	Origin   string             `json:"origin"` // first held-out day of the metrics
	Horizon  int                `json:"horizon"`
	Features []string           `json:"features"`
	Metrics  map[string]float64 `json:"metrics"`
	Model    *gbt.Model         `json:"model"`
	// Calibration, if set, is the per-series ensemble's quantile
	// calibration (forecasting.Calibration) the forecast service applies
	// with this model; it is part of the version.
	Calibration *forecasting.Calibration `json:"calibration,omitempty"`
}

// SetCalibration attaches the ensemble's calibration and versions the
// artefact again: the version then hashes the calibration too (an
// artefact without one keeps the model's version).
func (a *Artefact) SetCalibration(c *forecasting.Calibration) error {
	if err := c.Validate(); err != nil {
		return err
	}
	a.Calibration = c
	if c == nil {
		return nil
	}
	body, err := json.Marshal(struct {
		V string
		C *forecasting.Calibration
	}{a.Version, c})
	if err != nil {
		return fmt.Errorf("encode calibration: %w", err)
	}
	sum := sha256.Sum256(body)
	a.Version = "gbt-" + hex.EncodeToString(sum[:6])
	return nil
}

// NewArtefact versions m.
func NewArtefact(m *gbt.Model, data, origin string, horizon int, metrics map[string]float64, now time.Time) (*Artefact, error) {
	// the version hashes what predicts, not when or how fast it was trained
	body, err := json.Marshal(struct {
		P gbt.Params
		F []string
		B float64
		T []gbt.Tree
	}{m.Params, m.Features, m.BaseScore, m.Trees})
	if err != nil {
		return nil, fmt.Errorf("encode model: %w", err)
	}
	sum := sha256.Sum256(body)
	return &Artefact{Version: "gbt-" + hex.EncodeToString(sum[:6]), Created: now.UTC(), Data: data, Origin: origin,
		Horizon: horizon, Features: FeatureNames(), Metrics: metrics, Model: m}, nil
}

// Save writes the artefact to dir/<version>.json and returns the path.
func (a *Artefact) Save(dir string) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	body, err := json.Marshal(a)
	if err != nil {
		return "", fmt.Errorf("encode artefact: %w", err)
	}
	path := filepath.Join(dir, a.Version+".json")
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, body, 0o644); err != nil {
		return "", err
	}
	return path, os.Rename(tmp, path)
}

// LoadArtefact reads an artefact and checks that its features are this
// build's.
func LoadArtefact(path string) (*Artefact, error) {
	body, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var a Artefact
	if err := json.Unmarshal(body, &a); err != nil {
		return nil, fmt.Errorf("decode artefact %s: %w", path, err)
	}
	if a.Model == nil || len(a.Model.Trees) == 0 {
		return nil, fmt.Errorf("artefact %s has no model", path)
	}
	names := FeatureNames()
	if len(a.Features) != len(names) {
		return nil, fmt.Errorf("artefact %s has %d features, this build %d", path, len(a.Features), len(names))
	}
	for i := range names {
		if a.Features[i] != names[i] {
			return nil, fmt.Errorf("artefact %s: feature %d is %s, this build's is %s", path, i, a.Features[i], names[i])
		}
	}
	if err := a.Calibration.Validate(); err != nil {
		return nil, fmt.Errorf("artefact %s: %w", path, err)
	}
	return &a, nil
}

// ExportMatrix writes the matrices Train uses at origin to dir, for
// training another learner (XGBoost) on exactly the same rows: fit.csv
// (early-stopping fit part), valid.csv (its validation window), all.csv
// (the refit rows), each "y,<features>", and test.csv "id,h,<features>"
// with the horizon rows of every series. NaN is written as empty.
func ExportMatrix(p *Panel, origin, horizon int, dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	write := func(name string, x gbt.Matrix, lead func(r int) []string, head []string) error {
		f, err := os.Create(filepath.Join(dir, name))
		if err != nil {
			return err
		}
		w := csv.NewWriter(f)
		if err := w.Write(append(head, FeatureNames()...)); err != nil {
			f.Close()
			return err
		}
		rec := make([]string, 0, len(head)+x.Cols)
		for r := range x.Rows {
			rec = append(rec[:0], lead(r)...)
			for _, v := range x.Row(r) {
				if math.IsNaN(v) {
					rec = append(rec, "")
				} else {
					rec = append(rec, strconv.FormatFloat(v, 'g', -1, 64))
				}
			}
			if err := w.Write(rec); err != nil {
				f.Close()
				return err
			}
		}
		w.Flush()
		if err := w.Error(); err != nil {
			f.Close()
			return err
		}
		return f.Close()
	}
	for _, part := range []struct {
		name     string
		from, to int
	}{{"fit.csv", firstRow, origin - horizon}, {"valid.csv", origin - horizon, origin}, {"all.csv", firstRow, origin}} {
		x, y, _ := p.Matrix(part.from, part.to)
		if err := write(part.name, x, func(r int) []string { return []string{strconv.FormatFloat(y[r], 'g', -1, 64)} }, []string{"y"}); err != nil {
			return fmt.Errorf("write %s: %w", part.name, err)
		}
	}
	cols := len(FeatureNames())
	n := len(p.ds.Series) * horizon
	x := gbt.Matrix{Rows: n, Cols: cols, Data: make([]float64, n*cols)}
	for i := range p.ds.Series {
		for h := range horizon {
			r := i*horizon + h
			p.Row(i, origin+h, x.Data[r*cols:(r+1)*cols])
		}
	}
	lead := func(r int) []string {
		return []string{p.ds.Series[r/horizon].ID, strconv.Itoa(r%horizon + 1)}
	}
	if err := write("test.csv", x, lead, []string{"id", "h"}); err != nil {
		return fmt.Errorf("write test.csv: %w", err)
	}
	return nil
}
