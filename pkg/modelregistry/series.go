package modelregistry

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"slices"
	"strings"

	"github.com/stockcast/stockcast/pkg/backtest"
)

// Series is what `stockcast train` writes beside an artefact
// (<artefact without .json>.series.json) so that the forecast service can
// build the global model's features of a live series exactly as training
// did: the names behind the category codes (a code is the index of the
// name in the sorted list, as globalmodel.NewPanel numbers them), each
// item's department and category, and each item's mean price (the
// denominator of price_rel).
type Series struct {
	Version   string             `json:"version"`
	Items     []string           `json:"items"`
	Depts     []string           `json:"depts"`
	Cats      []string           `json:"cats"`
	Stores    []string           `json:"stores"`
	ItemDept  map[string]string  `json:"item_dept"`
	ItemCat   map[string]string  `json:"item_cat"`
	ItemPrice map[string]float64 `json:"item_price"`
}

// NewSeries describes the series of a training data set.
func NewSeries(version string, ds *backtest.Dataset) *Series {
	s := &Series{Version: version, ItemDept: map[string]string{}, ItemCat: map[string]string{}, ItemPrice: map[string]float64{}}
	items, depts, cats, stores := map[string]bool{}, map[string]bool{}, map[string]bool{}, map[string]bool{}
	sums, counts := map[string]float64{}, map[string]float64{}
	for _, sr := range ds.Series {
		items[sr.Item], depts[sr.Dept], cats[sr.Cat], stores[sr.Store] = true, true, true, true
		s.ItemDept[sr.Item], s.ItemCat[sr.Item] = sr.Dept, sr.Cat
		for _, p := range sr.Prices {
			if !math.IsNaN(p) {
				sums[sr.Item] += p
				counts[sr.Item]++
			}
		}
	}
	for item, n := range counts {
		s.ItemPrice[item] = sums[item] / n
	}
	s.Items, s.Depts, s.Cats, s.Stores = sorted(items), sorted(depts), sorted(cats), sorted(stores)
	return s
}

func sorted(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// Code returns the code of name in a sorted list, NaN (a missing value to
// the trees) for a name the model was not trained on.
func Code(list []string, name string) float64 {
	if i, ok := slices.BinarySearch(list, name); ok {
		return float64(i)
	}
	return math.NaN()
}

// SeriesPath is where the Series of an artefact is kept.
func SeriesPath(artefact string) string {
	return strings.TrimSuffix(artefact, ".json") + ".series.json"
}

// Save writes s beside the artefact.
func (s *Series) Save(artefact string) error {
	body, err := json.Marshal(s)
	if err != nil {
		return fmt.Errorf("encode series of %s: %w", s.Version, err)
	}
	path := SeriesPath(artefact)
	if err := os.WriteFile(path+".tmp", body, 0o644); err != nil {
		return err
	}
	return os.Rename(path+".tmp", path)
}

// LoadSeries reads the Series of an artefact.
func LoadSeries(artefact string) (*Series, error) {
	body, err := os.ReadFile(SeriesPath(artefact))
	if err != nil {
		return nil, err
	}
	var s Series
	if err := json.Unmarshal(body, &s); err != nil {
		return nil, fmt.Errorf("decode %s: %w", SeriesPath(artefact), err)
	}
	for _, l := range [][]string{s.Items, s.Depts, s.Cats, s.Stores} {
		if !slices.IsSorted(l) {
			return nil, fmt.Errorf("%s: code lists not sorted", SeriesPath(artefact))
		}
	}
	return &s, nil
}

// ImputeWindow is how many earlier uncensored days ImputeCensored averages.
const ImputeWindow = 28

// ImputeCensored replaces the values of censored days (stockouts: demand
// unknown, not zero) with the mean of the series' last ImputeWindow
// uncensored days before them (0 with none), in place. Training and the
// forecast service both fill censored days this way before building the
// global model's lag features, so the lags never see a stockout's false
// zeros.
func ImputeCensored(values []float64, censored []bool) {
	var ring [ImputeWindow]float64
	n, sum := 0, 0.0
	for t := range values {
		if t < len(censored) && censored[t] {
			if n > 0 {
				values[t] = sum / float64(min(n, ImputeWindow))
			} else {
				values[t] = 0
			}
			continue
		}
		if n >= ImputeWindow {
			sum -= ring[n%ImputeWindow]
		}
		ring[n%ImputeWindow] = values[t]
		sum += values[t]
		n++
	}
}
