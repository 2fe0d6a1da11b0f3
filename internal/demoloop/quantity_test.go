package demoloop

import (
	"testing"
	"time"

	replenishmentv1 "github.com/stockcast/stockcast/proto/stockcast/replenishment/v1"
)

func TestApprovedQuantity(t *testing.T) {
	p := func(q, moq, pack, mx float64) *replenishmentv1.Proposal {
		return &replenishmentv1.Proposal{Quantity: q, Policy: &replenishmentv1.Policy{Moq: moq, PackSize: pack, MaxOrder: mx}}
	}
	for _, c := range []struct {
		name  string
		p     *replenishmentv1.Proposal
		scale float64
		want  float64
	}{
		{"as proposed", p(7, 10, 6, 0), 1, 7},
		{"scaled, rounded up to the pack", p(10, 0, 6, 0), 1.5, 18},
		{"scaled, an exact pack stays", p(12, 0, 6, 0), 1.5, 18},
		{"scaled down to below the moq", p(20, 12, 1, 0), 0.5, 12},
		{"scaled above the maximum", p(100, 0, 1, 120), 2, 120},
		{"no pack: the scaled quantity", p(9, 0, 0, 0), 0.5, 4.5},
	} {
		if got := ApprovedQuantity(c.p, c.scale); got != c.want {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	ok := Config{Review: 24 * time.Hour, Scale: 1, Supplier: "s", Planner: "p", Parallel: 1, Batch: 1000}
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	for name, mut := range map[string]func(*Config){
		"review not dividing a day": func(c *Config) { c.Review = 5 * time.Hour },
		"no review":                 func(c *Config) { c.Review = 0 },
		"scale 0":                   func(c *Config) { c.Scale = 0 },
		"negative lead time":        func(c *Config) { c.LeadTime = -time.Hour },
		"no supplier":               func(c *Config) { c.Supplier = "" },
		"no parallelism":            func(c *Config) { c.Parallel = 0 },
		"no batch":                  func(c *Config) { c.Batch = 0 },
		"batch over the service's":  func(c *Config) { c.Batch = 1001 },
	} {
		c := ok
		mut(&c)
		if c.Validate() == nil {
			t.Errorf("%s: valid", name)
		}
	}
	weekly := ok
	weekly.Review = 7 * 24 * time.Hour
	if err := weekly.Validate(); err != nil {
		t.Errorf("weekly review: %v", err)
	}
}

// Reviews are at UTC midnights (24h) or Mondays (168h), the first at or
// after the first line.
func TestReviewTimes(t *testing.T) {
	l := &Loop{cfg: Config{Review: 24 * time.Hour}}
	first := time.Date(2010, 12, 1, 8, 26, 0, 0, time.UTC)
	if at, due := l.Due(first); due || !at.Equal(time.Date(2010, 12, 2, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("daily: first review %v (due %v)", at, due)
	}
	w := &Loop{cfg: Config{Review: 7 * 24 * time.Hour}}
	if at, _ := w.Due(first); !at.Equal(time.Date(2010, 12, 6, 0, 0, 0, 0, time.UTC)) || at.Weekday() != time.Monday {
		t.Errorf("weekly: first review %v, want Monday 2010-12-06", at)
	}
}
