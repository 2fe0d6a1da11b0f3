package scoring

import (
	"flag"
	"reflect"
	"testing"
)

func TestConfigFlags(t *testing.T) {
	tests := []struct {
		args    []string
		wantErr bool
		check   func(Config) bool
	}{
		{nil, false, func(c Config) bool {
			return c.Horizon == 28 && c.LatestSeries == DefaultLatestSeries && len(c.QuantileLevels) == 14 && reflect.DeepEqual(c.LeadTimes, []int{1, 2, 3, 5, 7, 10, 14, 21, 28})
		}},
		{[]string{"-forecast.quantiles", "0.1, 0.5,0.9", "-forecast.lead-times", "7,14", "-forecast.horizon", "14"}, false, func(c Config) bool {
			return c.Horizon == 14 && reflect.DeepEqual(c.QuantileLevels, []float64{0.1, 0.5, 0.9}) && reflect.DeepEqual(c.LeadTimes, []int{7, 14})
		}},
		{[]string{"-forecast.quantiles", "0.9,0.1"}, true, nil},
		{[]string{"-forecast.quantiles", "0,0.5"}, true, nil},
		{[]string{"-forecast.lead-times", "-1"}, true, nil},
		{[]string{"-forecast.max-series", "0"}, true, nil},
		{[]string{"-forecast.latest-series", "-1"}, true, nil},
		{[]string{"-forecast.latest-series", "20"}, false, func(c Config) bool { return c.LatestSeries == 20 && c.latestSeries() == 20 }},
		{[]string{"-forecast.horizon", "0"}, true, nil},
	}
	for _, tt := range tests {
		var c Config
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		c.RegisterFlags(fs, "forecast.")
		err := fs.Parse(tt.args)
		if err == nil {
			err = c.Validate()
		}
		if (err != nil) != tt.wantErr {
			t.Errorf("%v: err %v, want error %v", tt.args, err, tt.wantErr)
			continue
		}
		if tt.check != nil && !tt.check(c) {
			t.Errorf("%v: config %+v", tt.args, c)
		}
	}
	var c Config
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	c.RegisterFlags(fs, "forecast.")
	if got := fs.Lookup("forecast.lead-times").Value.String(); got != "1,2,3,5,7,10,14,21,28" {
		t.Errorf("lead-times flag prints %q", got)
	}
}
