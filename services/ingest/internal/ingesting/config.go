package ingesting

import (
	"errors"
	"flag"
	"fmt"
	"time"

	"github.com/stockcast/stockcast/services/ingest/internal/events"
)

// Config holds the -ingest.* flags.
type Config struct {
	NonProductSKUs string        // comma-separated, exact and case-sensitive
	DedupTTL       time.Duration // how long an accepted event id is remembered
	DedupShards    int           // hashes per time bucket of the seen store
}

// RegisterFlags registers the flags under prefix (e.g. "ingest.").
func (c *Config) RegisterFlags(fs *flag.FlagSet, prefix string) {
	fs.StringVar(&c.NonProductSKUs, prefix+"non-product-skus", events.DefaultNonProductSKUs,
		"comma-separated SKUs (exact, case-sensitive) whose order lines are stored with is_demand=0 and not published")
	fs.DurationVar(&c.DedupTTL, prefix+"dedup-ttl", 168*time.Hour,
		"how long an accepted event id is remembered for de-duplication")
	fs.IntVar(&c.DedupShards, prefix+"dedup-shards", 4096,
		"Redis hashes per time bucket (a quarter of the dedup ttl) of the seen ids; ~ids per bucket / 100 keeps them listpack-encoded")
}

// Validate checks the configuration.
func (c *Config) Validate() error {
	var errs []error
	if c.DedupTTL <= 0 {
		errs = append(errs, fmt.Errorf("ingest dedup ttl %s: want more than zero", c.DedupTTL))
	}
	if c.DedupShards < 1 {
		errs = append(errs, fmt.Errorf("ingest dedup shards %d: want at least 1", c.DedupShards))
	}
	if c.DedupTTL%time.Second != 0 {
		errs = append(errs, fmt.Errorf("ingest dedup ttl %s: want whole seconds", c.DedupTTL))
	}
	return errors.Join(errs...)
}

// NonProduct returns the parsed non-product SKU list.
func (c *Config) NonProduct() []string { return events.ParseSKUList(c.NonProductSKUs) }
