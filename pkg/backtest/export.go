package backtest

import (
	"bufio"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// WriteSplits writes the data set and the origins for peers to dir:
// series.csv (id, item_id, dept_id, cat_id, store_id, state_id, date,
// value, sell_price, snap, event_name_1, event_type_1, event_name_2,
// event_type_2; every series on every day, "NA" for unknown prices) and
// origins.csv (origin = first forecast day, train_days, horizon). A peer
// forecasting origin o must read only the days before it.
func WriteSplits(dir string, ds *Dataset, cfg Config) (err error) {
	origins, err := cfg.OriginIndexes(ds.Days)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	err = writeCSV(filepath.Join(dir, "series.csv"), func(w *csv.Writer) error {
		if err := w.Write([]string{"id", "item_id", "dept_id", "cat_id", "store_id", "state_id", "date", "value",
			"sell_price", "snap", "event_name_1", "event_type_1", "event_name_2", "event_type_2"}); err != nil {
			return err
		}
		rec := make([]string, 14)
		for _, s := range ds.Series {
			copy(rec, []string{s.ID, s.Item, s.Dept, s.Cat, s.Store, s.State})
			for t, y := range s.Values {
				rec[6] = ds.Day(t).String()
				rec[7] = strconv.FormatFloat(y, 'g', -1, 64)
				rec[8] = "NA"
				if p := s.Prices[t]; !math.IsNaN(p) {
					rec[8] = strconv.FormatFloat(p, 'g', -1, 64)
				}
				rec[9] = "0"
				if s.Snap != nil && s.Snap[t] {
					rec[9] = "1"
				}
				var ev Event
				if ds.Events != nil {
					ev = ds.Events[t]
				}
				rec[10], rec[11], rec[12], rec[13] = ev.Name1, ev.Type1, ev.Name2, ev.Type2
				if err := w.Write(rec); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("write series: %w", err)
	}
	err = writeCSV(filepath.Join(dir, "origins.csv"), func(w *csv.Writer) error {
		if err := w.Write([]string{"origin", "train_days", "horizon"}); err != nil {
			return err
		}
		for _, o := range origins {
			if err := w.Write([]string{ds.Day(o).String(), strconv.Itoa(o), strconv.Itoa(cfg.Horizon)}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("write origins: %w", err)
	}
	return nil
}

func writeCSV(path string, fill func(*csv.Writer) error) (err error) {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}()
	bw := bufio.NewWriterSize(f, 1<<20)
	w := csv.NewWriter(bw)
	if err := fill(w); err != nil {
		return err
	}
	w.Flush()
	if err := w.Error(); err != nil {
		return err
	}
	return bw.Flush()
}

// Stored is a model whose forecasts were made elsewhere (a peer) and read
// from CSV by ReadForecasts; Forecast returns them.
type Stored struct {
	name    string
	preds   map[int][]Prediction // by origin index
	elapsed time.Duration
}

// Name implements Model.
func (s *Stored) Name() string { return s.name }

// Elapsed is the wall time the peer reported for all origins (0 if none).
func (s *Stored) Elapsed() time.Duration { return s.elapsed }

// Forecast implements Model.
func (s *Stored) Forecast(ds *Dataset, origin, horizon int) ([]Prediction, error) {
	p, ok := s.preds[origin]
	if !ok {
		return nil, fmt.Errorf("no forecasts for origin %s", ds.Day(origin))
	}
	for i, pr := range p {
		if pr.Means == nil {
			return nil, fmt.Errorf("no forecast for series %s", ds.Series[i].ID)
		}
		if len(pr.Means) != horizon {
			return nil, fmt.Errorf("series %s: %d days, want %d", ds.Series[i].ID, len(pr.Means), horizon)
		}
	}
	return p, nil
}

// ReadForecasts reads a peer's forecasts: CSV with the header model,
// origin, id, h, mean, then one column per level of Levels named q<level>
// ("q0.005" ...), "NA" or empty where the peer has no quantiles (then a
// model must have none on any row). h runs from 1 to the horizon. If
// timesPath is not empty it is a CSV model,seconds with each model's wall
// time over all origins.
func ReadForecasts(path, timesPath string, ds *Dataset, cfg Config) ([]*Stored, error) {
	origins, err := cfg.OriginIndexes(ds.Days)
	if err != nil {
		return nil, err
	}
	originOf := map[string]int{}
	for _, o := range origins {
		originOf[ds.Day(o).String()] = o
	}
	seriesOf := map[string]int{}
	for i, s := range ds.Series {
		seriesOf[s.ID] = i
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	r := csv.NewReader(bufio.NewReader(f))
	header, err := r.Read()
	if err != nil {
		return nil, fmt.Errorf("read %s header: %w", path, err)
	}
	want := []string{"model", "origin", "id", "h", "mean"}
	for _, u := range Levels {
		want = append(want, "q"+strconv.FormatFloat(u, 'g', -1, 64))
	}
	if strings.Join(header, ",") != strings.Join(want, ",") {
		return nil, fmt.Errorf("%s: header %q, want %q", path, strings.Join(header, ","), strings.Join(want, ","))
	}
	var models []*Stored
	byName := map[string]*Stored{}
	line := 1
	for {
		rec, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		line++
		if err != nil {
			return nil, fmt.Errorf("%s line %d: %w", path, line, err)
		}
		m := byName[rec[0]]
		if m == nil {
			m = &Stored{name: rec[0], preds: map[int][]Prediction{}}
			byName[rec[0]] = m
			models = append(models, m)
		}
		o, ok := originOf[rec[1]]
		if !ok {
			return nil, fmt.Errorf("%s line %d: %s is not an origin", path, line, rec[1])
		}
		i, ok := seriesOf[rec[2]]
		if !ok {
			return nil, fmt.Errorf("%s line %d: unknown series %q", path, line, rec[2])
		}
		h, err := strconv.Atoi(rec[3])
		if err != nil || h < 1 || h > cfg.Horizon {
			return nil, fmt.Errorf("%s line %d: h %q not in 1..%d", path, line, rec[3], cfg.Horizon)
		}
		mean, err := strconv.ParseFloat(rec[4], 64)
		if err != nil || math.IsNaN(mean) {
			return nil, fmt.Errorf("%s line %d: mean %q", path, line, rec[4])
		}
		preds := m.preds[o]
		if preds == nil {
			preds = make([]Prediction, len(ds.Series))
			m.preds[o] = preds
		}
		p := &preds[i]
		if p.Means == nil {
			p.Means = make([]float64, cfg.Horizon)
		}
		p.Means[h-1] = mean
		if rec[5] == "NA" || rec[5] == "" {
			continue
		}
		if p.Quantiles == nil {
			p.Quantiles = make([][]float64, cfg.Horizon)
		}
		q := make([]float64, len(Levels))
		for k := range q {
			if q[k], err = strconv.ParseFloat(rec[5+k], 64); err != nil {
				return nil, fmt.Errorf("%s line %d: quantile %q", path, line, rec[5+k])
			}
			if k > 0 && q[k] < q[k-1] {
				q[k] = q[k-1] // crossing quantiles are sorted the usual way
			}
		}
		p.Quantiles[h-1] = q
	}
	for _, m := range models {
		for o, preds := range m.preds {
			for i, p := range preds {
				if p.Quantiles == nil {
					continue
				}
				for h, q := range p.Quantiles {
					if q == nil {
						return nil, fmt.Errorf("%s: model %s, origin %s, series %s: no quantiles on day %d",
							path, m.name, ds.Day(o), ds.Series[i].ID, h+1)
					}
				}
			}
		}
	}
	if timesPath != "" {
		if err := readTimes(timesPath, byName); err != nil {
			return nil, err
		}
	}
	return models, nil
}

func readTimes(path string, byName map[string]*Stored) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	recs, err := csv.NewReader(f).ReadAll()
	if err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	for _, rec := range recs[min(1, len(recs)):] {
		if len(rec) != 2 {
			return fmt.Errorf("%s: want model,seconds", path)
		}
		sec, err := strconv.ParseFloat(rec[1], 64)
		if err != nil {
			return fmt.Errorf("%s: seconds %q", path, rec[1])
		}
		if m := byName[rec[0]]; m != nil {
			m.elapsed += time.Duration(sec * float64(time.Second))
		}
	}
	return nil
}
