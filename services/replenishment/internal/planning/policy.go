package planning

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"strings"

	"github.com/stockcast/stockcast/pkg/replenish"
)

// ErrInvalidArgument marks a request the caller must fix.
var ErrInvalidArgument = errors.New("invalid argument")

// Scope is what a policy applies to: a series (sku and location), a
// location's default (empty sku) or the global default (both empty).
type Scope struct {
	SKU      string
	Location string
}

// Source says where an effective policy came from.
type Source string

// Sources, most specific first.
const (
	SourceSeries   Source = "series"
	SourceLocation Source = "location"
	SourceGlobal   Source = "global"
	SourceBuiltIn  Source = "built-in"
)

// Validate rejects scopes that no lookup would ever reach.
func (s Scope) Validate() error {
	if s.SKU != "" && s.Location == "" {
		return fmt.Errorf("%w: sku %q without a location: policies are per series, per location or global", ErrInvalidArgument, s.SKU)
	}
	if strings.Contains(s.SKU, "|") || strings.Contains(s.Location, "|") {
		return fmt.Errorf("%w: sku %q or location %q contains the series separator |", ErrInvalidArgument, s.SKU, s.Location)
	}
	return nil
}

// source is the level a stored policy of this scope has.
func (s Scope) source() Source {
	switch {
	case s.SKU != "":
		return SourceSeries
	case s.Location != "":
		return SourceLocation
	default:
		return SourceGlobal
	}
}

// fallbacks lists the scopes to look up for s, most specific first.
func (s Scope) fallbacks() []Scope {
	switch s.source() {
	case SourceSeries:
		return []Scope{s, {Location: s.Location}, {}}
	case SourceLocation:
		return []Scope{s, {}}
	default:
		return []Scope{{}}
	}
}

// EffectivePolicy is the policy in force for a scope and the scope it was
// stored under (empty for the built-in default).
type EffectivePolicy struct {
	replenish.ServicePolicy
	From   Scope
	Source Source
}

// PolicyStore keeps policies by scope.
type PolicyStore interface {
	// Lookup returns the stored policies of the scopes; missing ones are absent.
	Lookup(ctx context.Context, scopes []Scope) (map[Scope]replenish.ServicePolicy, error)
	Save(ctx context.Context, scope Scope, p replenish.ServicePolicy) error
}

// SharedPolicyStore is a PolicyStore whose policies a state store can read
// along with its own reads (SeriesPolicyReader), in one round trip.
type SharedPolicyStore interface {
	PolicyStore
	// SharesWith says whether state reads this store's policies exactly as
	// Lookup does (the same Redis).
	SharesWith(state StateStore) bool
}

// PolicyBatchStore is a PolicyStore that saves many policies at once
// (SetAll: an allocation's thousands of series in one write, not one each).
type PolicyBatchStore interface {
	PolicyStore
	SaveAll(ctx context.Context, scopes []Scope, ps []replenish.ServicePolicy) error
}

// Policies resolves and changes policies: series > location > global >
// built-in. A stored policy is complete; there is no field-by-field merge,
// so what GetPolicy shows is exactly what decisions use.
type Policies struct {
	store   PolicyStore
	builtIn replenish.ServicePolicy
	file    *PolicyFile
}

// WithFile adds the policies of a policy file under the stored ones (see
// EffectiveIn).
func (p *Policies) WithFile(f *PolicyFile) *Policies {
	p.file = f
	return p
}

// NewPolicies returns policies backed by store, falling back to builtIn.
func NewPolicies(store PolicyStore, builtIn replenish.Policy) (*Policies, error) {
	if err := builtIn.Validate(); err != nil {
		return nil, fmt.Errorf("built-in policy: %w", err)
	}
	return &Policies{store: store, builtIn: replenish.ServicePolicy{Policy: builtIn}}, nil
}

// Effective returns the policy in force for scope.
func (p *Policies) Effective(ctx context.Context, scope Scope) (EffectivePolicy, error) {
	if err := scope.Validate(); err != nil {
		return EffectivePolicy{}, err
	}
	all, err := p.EffectiveAll(ctx, []Scope{scope})
	if err != nil {
		return EffectivePolicy{}, err
	}
	return all[scope], nil
}

// EffectiveAll resolves many scopes with one store lookup, without categories.
func (p *Policies) EffectiveAll(ctx context.Context, scopes []Scope) (map[Scope]EffectivePolicy, error) {
	return p.EffectiveIn(ctx, scopes, nil)
}

// EffectiveIn resolves scopes whose series may have a category. Most
// specific first, SetPolicy (stored) before the file at the same level:
// stored series > file item > file category at the location > file
// category > stored location > file location > stored global > file
// defaults > built-in. File levels are merged field by field over the
// levels below them and the built-in policy.
func (p *Policies) EffectiveIn(ctx context.Context, scopes []Scope, categories map[Scope]string) (map[Scope]EffectivePolicy, error) {
	stored, err := p.store.Lookup(ctx, lookupScopes(scopes))
	if err != nil {
		return nil, fmt.Errorf("look up policies: %w", err)
	}
	return p.resolve(stored, scopes, categories), nil
}

// lookupScopes are the stored policies that resolving scopes reads: each
// scope's fallbacks, once.
func lookupScopes(scopes []Scope) []Scope {
	seen := make(map[Scope]bool)
	var lookup []Scope
	for _, s := range scopes {
		for _, f := range s.fallbacks() {
			if !seen[f] {
				seen[f] = true
				lookup = append(lookup, f)
			}
		}
	}
	return lookup
}

// resolve is EffectiveIn with the stored policies of lookupScopes(scopes)
// read.
func (p *Policies) resolve(stored map[Scope]replenish.ServicePolicy, scopes []Scope, categories map[Scope]string) map[Scope]EffectivePolicy {
	out := make(map[Scope]EffectivePolicy, len(scopes))
	for _, s := range scopes {
		eff := EffectivePolicy{ServicePolicy: p.builtIn, Source: SourceBuiltIn}
		fromFile := p.file.levels(s, categories[s], p.builtIn)
	levels:
		for _, f := range s.fallbacks() {
			if pol, ok := stored[f]; ok {
				eff = EffectivePolicy{ServicePolicy: pol, From: f, Source: f.source()}
				break
			}
			for _, e := range fromFile {
				if fileLevel(e.Source) == f.source() {
					eff = e
					break levels
				}
			}
		}
		out[s] = eff
	}
	return out
}

// fileLevel is the stored level a file source sits at.
func fileLevel(s Source) Source {
	switch s {
	case SourceFileItem, SourceFileCategoryLocation, SourceFileCategory:
		return SourceSeries
	case SourceFileLocation:
		return SourceLocation
	default:
		return SourceGlobal
	}
}

// Set validates and stores the policy of a scope; it applies from the next
// event of the series on.
func (p *Policies) Set(ctx context.Context, scope Scope, pol replenish.ServicePolicy) error {
	if err := scope.Validate(); err != nil {
		return err
	}
	if err := pol.Validate(); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidArgument, err)
	}
	if err := p.store.Save(ctx, scope, pol); err != nil {
		return fmt.Errorf("save policy of %q/%q: %w", scope.SKU, scope.Location, err)
	}
	return nil
}

// SetAll stores policy ps[i] for scopes[i], each checked as Set does
// (nothing is stored if one is invalid), in one write when the store is a
// PolicyBatchStore.
func (p *Policies) SetAll(ctx context.Context, scopes []Scope, ps []replenish.ServicePolicy) error {
	if len(scopes) != len(ps) {
		return fmt.Errorf("%w: %d scopes, %d policies", ErrInvalidArgument, len(scopes), len(ps))
	}
	for i, scope := range scopes {
		if err := scope.Validate(); err != nil {
			return err
		}
		if err := ps[i].Validate(); err != nil {
			return fmt.Errorf("%w: %w", ErrInvalidArgument, err)
		}
	}
	if bs, ok := p.store.(PolicyBatchStore); ok {
		if err := bs.SaveAll(ctx, scopes, ps); err != nil {
			return fmt.Errorf("save %d policies: %w", len(ps), err)
		}
		return nil
	}
	for i, scope := range scopes {
		if err := p.store.Save(ctx, scope, ps[i]); err != nil {
			return fmt.Errorf("save policy of %q/%q: %w", scope.SKU, scope.Location, err)
		}
	}
	return nil
}

// Config holds the built-in policy, used where no policy is stored.
type Config struct {
	Defaults replenish.Policy
	// Receipts after which a series' learned lead time replaces its
	// policy's (0: never).
	LeadTimeMinSamples int
	// YAML or JSON policy file (-policies.file); empty: none.
	PolicyFile string
}

// RegisterFlags registers the built-in policy flags, e.g. -replenishment.service-level.
func (c *Config) RegisterFlags(fs *flag.FlagSet, prefix string) {
	fs.Float64Var(&c.Defaults.ServiceLevel, prefix+"service-level", 0.95, "built-in target cycle service level, in (0, 1)")
	fs.IntVar(&c.Defaults.LeadTimeDays, prefix+"lead-time-days", 7, "built-in supplier lead time in days")
	fs.IntVar(&c.Defaults.ReviewPeriodDays, prefix+"review-period-days", 0, "built-in review period in days")
	fs.Float64Var(&c.Defaults.MOQ, prefix+"moq", 1, "built-in minimum order quantity (0: none)")
	fs.Float64Var(&c.Defaults.PackSize, prefix+"pack-size", 1, "built-in pack size: orders are rounded up to a multiple (0: none)")
	fs.Float64Var(&c.Defaults.MaxOrder, prefix+"max-order", 0, "built-in largest order (0: no maximum)")
	fs.IntVar(&c.Defaults.OrderCoverDays, prefix+"order-cover-days", 14, "built-in days of forecast demand an order covers beyond the reorder point")
	fs.StringVar(&c.PolicyFile, "policies.file", "",
		"YAML or JSON file of policies: defaults, locations, categories (optionally per location) and items, merged field by field; SetPolicy overrides win at the same level")
	fs.IntVar(&c.LeadTimeMinSamples, prefix+"lead-time-min-samples", 3,
		"receipts after which a series' lead time learned from them (mean and variance) replaces its policy's lead time (0: never)")
}

// Validate checks the built-in policy.
func (c *Config) Validate() error {
	if err := c.Defaults.Validate(); err != nil {
		return fmt.Errorf("built-in policy: %w", err)
	}
	if c.LeadTimeMinSamples < 0 {
		return fmt.Errorf("lead time min samples %d: want >= 0", c.LeadTimeMinSamples)
	}
	if c.PolicyFile != "" {
		f, err := LoadPolicyFile(c.PolicyFile)
		if err != nil {
			return err
		}
		if err := f.Check(c.Defaults); err != nil {
			return fmt.Errorf("policy file %s: %w", c.PolicyFile, err)
		}
	}
	return nil
}
