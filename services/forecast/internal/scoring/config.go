package scoring

import (
	"errors"
	"flag"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/stockcast/stockcast/pkg/forecasting"
)

// Config configures the forecasts the service publishes.
type Config struct {
	Horizon        int
	QuantileLevels []float64
	LeadTimes      []int
	MaxSeries      int
	// LatestSeries bounds the latest forecasts kept whole in memory (the
	// most recently scored series'; 0: DefaultLatestSeries): they answer
	// GetForecast and Explain without a forecast_log query and give the
	// next event of the same day the days after today. Every other series
	// keeps only what the next forecast's reason reads of its latest
	// (prevForecast), so its GetForecast reads forecast_log and its next
	// event computes all days (the same values).
	LatestSeries int
}

// DefaultLatestSeries is the default of Config.LatestSeries: at ~25 KB per
// whole forecast (28 days and 9 lead times of 14 quantiles, the
// components and reason), ~100 MB.
const DefaultLatestSeries = 4096

// latestSeries is the bound of the latest forecasts kept whole.
func (c *Config) latestSeries() int {
	n := c.LatestSeries
	if n <= 0 {
		n = DefaultLatestSeries
	}
	return min(n, max(c.MaxSeries, 1))
}

// RegisterFlags registers the -<prefix>horizon, quantiles, lead-times,
// max-series and latest-series flags (prefix "forecast." in the service).
func (c *Config) RegisterFlags(fs *flag.FlagSet, prefix string) {
	fs.IntVar(&c.Horizon, prefix+"horizon", forecasting.DefaultHorizon, "forecast days, today included")
	c.QuantileLevels = forecasting.DefaultQuantileLevels()
	fs.Var((*floatList)(&c.QuantileLevels), prefix+"quantiles", "comma-separated quantile levels in (0,1), ascending")
	c.LeadTimes = forecasting.DefaultLeadTimes()
	fs.Var((*intList)(&c.LeadTimes), prefix+"lead-times", "comma-separated lead times in days")
	fs.IntVar(&c.MaxSeries, prefix+"max-series", 100_000, "series states kept in memory (least recently used evicted)")
	fs.IntVar(&c.LatestSeries, prefix+"latest-series", DefaultLatestSeries,
		"latest forecasts kept whole in memory for GetForecast, Explain and same-day events (the others are read from forecast_log)")
}

// Validate checks the configuration.
func (c *Config) Validate() error {
	var errs []error
	if c.Horizon < 1 || c.Horizon > 366 {
		errs = append(errs, fmt.Errorf("forecast horizon %d: want 1..366", c.Horizon))
	}
	if len(c.QuantileLevels) == 0 || !slices.IsSorted(c.QuantileLevels) {
		errs = append(errs, fmt.Errorf("forecast quantiles %v: want ascending levels", c.QuantileLevels))
	}
	for _, q := range c.QuantileLevels {
		if q <= 0 || q >= 1 {
			errs = append(errs, fmt.Errorf("forecast quantile %v: want a level in (0,1)", q))
		}
	}
	if len(c.LeadTimes) == 0 {
		errs = append(errs, errors.New("forecast lead times: none given"))
	}
	for _, l := range c.LeadTimes {
		if l < 0 || l > 366 {
			errs = append(errs, fmt.Errorf("forecast lead time %d: want 0..366 days", l))
		}
	}
	if c.LatestSeries < 0 {
		errs = append(errs, fmt.Errorf("forecast latest series %d: want 0 (the default) or more", c.LatestSeries))
	}
	if c.MaxSeries < 1 {
		errs = append(errs, fmt.Errorf("forecast max series %d: want at least 1", c.MaxSeries))
	}
	return errors.Join(errs...)
}

// floatList and intList are comma-separated flag values.
type (
	floatList []float64
	intList   []int
)

func (l *floatList) String() string { return joinFloats(*l) }
func (l *intList) String() string   { return joinInts(*l) }

func (l *floatList) Set(s string) (err error) {
	*l, err = parseFloats(s)
	return err
}

func (l *intList) Set(s string) (err error) {
	*l, err = parseInts(s)
	return err
}

func parseFloats(s string) ([]float64, error) {
	var out []float64
	for _, f := range strings.Split(s, ",") {
		v, err := strconv.ParseFloat(strings.TrimSpace(f), 64)
		if err != nil {
			return nil, fmt.Errorf("parse %q: %w", f, err)
		}
		out = append(out, v)
	}
	return out, nil
}

func parseInts(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		v, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil {
			return nil, fmt.Errorf("parse %q: %w", f, err)
		}
		out = append(out, v)
	}
	return out, nil
}

func joinFloats(v []float64) string {
	s := make([]string, len(v))
	for i, x := range v {
		s[i] = strconv.FormatFloat(x, 'g', -1, 64)
	}
	return strings.Join(s, ",")
}

func joinInts(v []int) string {
	s := make([]string, len(v))
	for i, x := range v {
		s[i] = strconv.Itoa(x)
	}
	return strings.Join(s, ",")
}
