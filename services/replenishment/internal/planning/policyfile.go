package planning

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"os"
	"sort"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/stockcast/stockcast/pkg/replenish"
)

// File sources of an effective policy.
const (
	SourceFileItem             Source = "file:item"
	SourceFileCategoryLocation Source = "file:category-location"
	SourceFileCategory         Source = "file:category"
	SourceFileLocation         Source = "file:location"
	SourceFileGlobal           Source = "file:global"
)

// filePolicy is a policy layer of the policy file: the fields it sets.
type filePolicy struct {
	ServiceLevel     *float64 `yaml:"service_level"`
	LeadTimeDays     *int     `yaml:"lead_time_days"`
	ReviewPeriodDays *int     `yaml:"review_period_days"`
	MOQ              *float64 `yaml:"moq"`
	PackSize         *float64 `yaml:"pack_size"`
	MaxOrder         *float64 `yaml:"max_order"`
	OrderCoverDays   *int     `yaml:"order_cover_days"`
	// Decision rule (replenish.ServicePolicy): kind s_S, s_Q or R_S; target
	// cycle_service_level, fill_rate or newsvendor; review weekdays as
	// names (monday or mon, ...).
	Kind             *string   `yaml:"kind"`
	Target           *string   `yaml:"target"`
	FillRate         *float64  `yaml:"fill_rate"`
	OrderCost        *float64  `yaml:"order_cost"`
	HoldingCost      *float64  `yaml:"holding_cost"`
	ShortageCost     *float64  `yaml:"shortage_cost"`
	OrderQuantity    *float64  `yaml:"order_quantity"`
	ReviewWeekdays   *[]string `yaml:"review_weekdays"`
	ReviewAnchorDate *string   `yaml:"review_anchor_date"`
}

// weekdayNames maps the policy file's weekday names to days.
var weekdayNames = func() map[string]time.Weekday {
	m := map[string]time.Weekday{}
	for d := time.Sunday; d <= time.Saturday; d++ {
		n := strings.ToLower(d.String())
		m[n], m[n[:3]] = d, d
	}
	return m
}()

// kindOf and targetOf read the file's kind and target names.
func kindOf(s string) (replenish.PolicyKind, bool) {
	switch s {
	case "s_S", "s_s", "default", "":
		if s == "default" || s == "" {
			return replenish.KindDefault, true
		}
		return replenish.KindReorderUpTo, true
	case "s_Q", "s_q":
		return replenish.KindReorderQuantity, true
	case "R_S", "r_s":
		return replenish.KindPeriodic, true
	}
	return "", false
}

func targetOf(s string) (replenish.TargetKind, bool) {
	switch s {
	case "", "cycle_service_level":
		return replenish.TargetCycleServiceLevel, true
	case "fill_rate":
		return replenish.TargetFillRate, true
	case "newsvendor":
		return replenish.TargetNewsvendor, true
	}
	return "", false
}

// over returns p with the layer's fields set.
func (l *filePolicy) over(p replenish.ServicePolicy) replenish.ServicePolicy {
	if l == nil {
		return p
	}
	setF := func(dst *float64, src *float64) {
		if src != nil {
			*dst = *src
		}
	}
	setI := func(dst *int, src *int) {
		if src != nil {
			*dst = *src
		}
	}
	setF(&p.ServiceLevel, l.ServiceLevel)
	setI(&p.LeadTimeDays, l.LeadTimeDays)
	setI(&p.ReviewPeriodDays, l.ReviewPeriodDays)
	setF(&p.MOQ, l.MOQ)
	setF(&p.PackSize, l.PackSize)
	setF(&p.MaxOrder, l.MaxOrder)
	setI(&p.OrderCoverDays, l.OrderCoverDays)
	if l.Kind != nil {
		p.Kind, _ = kindOf(*l.Kind) // checked by layer
	}
	if l.Target != nil {
		p.Target, _ = targetOf(*l.Target)
	}
	setF(&p.FillRate, l.FillRate)
	setF(&p.OrderCost, l.OrderCost)
	setF(&p.HoldingCost, l.HoldingCost)
	setF(&p.ShortageCost, l.ShortageCost)
	setF(&p.FixedQuantity, l.OrderQuantity)
	if l.ReviewWeekdays != nil {
		p.ReviewWeekdays = 0
		for _, n := range *l.ReviewWeekdays {
			p.ReviewWeekdays |= 1 << uint(weekdayNames[strings.ToLower(n)])
		}
	}
	if l.ReviewAnchorDate != nil {
		p.ReviewAnchor = *l.ReviewAnchorDate
	}
	return p
}

// PolicyFile holds the policies of -policies.file: layers merged field by
// field over the built-in policy, most specific last:
// defaults < locations[loc] < categories[cat] < categories[cat].locations[loc] < items.
type PolicyFile struct {
	defaults   *filePolicy
	locations  map[string]*filePolicy
	categories map[string]*filePolicy
	catLoc     map[[2]string]*filePolicy // category, location
	items      map[Scope]*filePolicy
}

// fieldLines finds each field's line in a mapping node.
func fieldLines(n *yaml.Node) map[string]int {
	out := map[string]int{}
	if n.Kind == yaml.MappingNode {
		for i := 0; i+1 < len(n.Content); i += 2 {
			out[n.Content[i].Value] = n.Content[i].Line
		}
	}
	return out
}

// LoadPolicyFile reads and validates a YAML (or JSON) policy file. Errors
// name the file, the line and the field.
func LoadPolicyFile(path string) (*PolicyFile, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("policy file: %w", err)
	}
	pf, err := ParsePolicyFile(raw)
	if err != nil {
		return nil, fmt.Errorf("policy file %s: %w", path, err)
	}
	return pf, nil
}

// ParsePolicyFile parses and validates a policy file:
//
//	defaults: {service_level: 0.95, lead_time_days: 7}
//	locations:
//	  online: {lead_time_days: 5}
//	categories:
//	  HOBBIES: {service_level: 0.9, locations: {online: {moq: 12}}}
//	items:
//	  - {sku: 85123A, location: online, pack_size: 6}
func ParsePolicyFile(raw []byte) (*PolicyFile, error) {
	var root yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	if err := dec.Decode(&root); err != nil {
		return nil, err
	}
	pf := &PolicyFile{locations: map[string]*filePolicy{}, categories: map[string]*filePolicy{},
		catLoc: map[[2]string]*filePolicy{}, items: map[Scope]*filePolicy{}}
	if len(root.Content) == 0 {
		return pf, nil
	}
	doc := root.Content[0]
	if doc.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("line %d: want a mapping with defaults, locations, categories, items", doc.Line)
	}
	for i := 0; i+1 < len(doc.Content); i += 2 {
		key, val := doc.Content[i], doc.Content[i+1]
		var err error
		switch key.Value {
		case "defaults":
			pf.defaults, err = layer(val, "defaults", nil)
		case "locations":
			err = eachEntry(val, "locations", func(name string, n *yaml.Node) error {
				l, err := layer(n, "locations."+name, nil)
				pf.locations[name] = l
				return err
			})
		case "categories":
			err = eachEntry(val, "categories", func(name string, n *yaml.Node) error {
				var locs *yaml.Node
				l, err := layer(n, "categories."+name, func(k string, v *yaml.Node) bool {
					if k == "locations" {
						locs = v
						return true
					}
					return false
				})
				if err != nil {
					return err
				}
				pf.categories[name] = l
				if locs == nil {
					return nil
				}
				return eachEntry(locs, "categories."+name+".locations", func(loc string, n *yaml.Node) error {
					l, err := layer(n, "categories."+name+".locations."+loc, nil)
					pf.catLoc[[2]string{name, loc}] = l
					return err
				})
			})
		case "items":
			if val.Kind != yaml.SequenceNode {
				return nil, fmt.Errorf("line %d: items: want a list", val.Line)
			}
			for j, n := range val.Content {
				var s Scope
				where := fmt.Sprintf("items[%d]", j)
				l, err := layer(n, where, func(k string, v *yaml.Node) bool {
					switch k {
					case "sku":
						s.SKU = v.Value
					case "location":
						s.Location = v.Value
					default:
						return false
					}
					return true
				})
				if err != nil {
					return nil, err
				}
				if s.SKU == "" || s.Location == "" {
					return nil, fmt.Errorf("line %d: %s: sku and location are required", n.Line, where)
				}
				if err := s.Validate(); err != nil {
					return nil, fmt.Errorf("line %d: %s: %w", n.Line, where, err)
				}
				if _, dup := pf.items[s]; dup {
					return nil, fmt.Errorf("line %d: %s: %s|%s is listed twice", n.Line, where, s.SKU, s.Location)
				}
				pf.items[s] = l
			}
		default:
			return nil, fmt.Errorf("line %d: unknown section %q (want defaults, locations, categories, items)", key.Line, key.Value)
		}
		if err != nil {
			return nil, err
		}
	}
	return pf, nil
}

func eachEntry(n *yaml.Node, where string, f func(name string, n *yaml.Node) error) error {
	if n.Kind != yaml.MappingNode {
		return fmt.Errorf("line %d: %s: want a mapping of names to policies", n.Line, where)
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if strings.Contains(n.Content[i].Value, "|") || n.Content[i].Value == "" {
			return fmt.Errorf("line %d: %s: name %q: must be non-empty without |", n.Content[i].Line, where, n.Content[i].Value)
		}
		if err := f(n.Content[i].Value, n.Content[i+1]); err != nil {
			return err
		}
	}
	return nil
}

// layer decodes a policy layer, strictly (unknown fields are errors, except
// the ones extra takes), and checks each field's range.
func layer(n *yaml.Node, where string, extra func(key string, v *yaml.Node) bool) (*filePolicy, error) {
	if n.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("line %d: %s: want a mapping of policy fields", n.Line, where)
	}
	fields := &yaml.Node{Kind: yaml.MappingNode, Line: n.Line}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if extra != nil && extra(k.Value, v) {
			continue
		}
		fields.Content = append(fields.Content, k, v)
	}
	var l filePolicy
	lines := fieldLines(fields)
	known := map[string]bool{"service_level": true, "lead_time_days": true, "review_period_days": true, "moq": true,
		"pack_size": true, "max_order": true, "order_cover_days": true, "kind": true, "target": true, "fill_rate": true,
		"order_cost": true, "holding_cost": true, "shortage_cost": true, "order_quantity": true, "review_weekdays": true,
		"review_anchor_date": true}
	for k, line := range lines {
		if !known[k] {
			names := make([]string, 0, len(known))
			for name := range known {
				names = append(names, name)
			}
			sort.Strings(names)
			return nil, fmt.Errorf("line %d: %s: unknown field %q (want %s)", line, where, k, strings.Join(names, ", "))
		}
	}
	if err := fields.Decode(&l); err != nil {
		var te *yaml.TypeError
		if errors.As(err, &te) {
			return nil, fmt.Errorf("%s: %s", where, strings.Join(te.Errors, "; "))
		}
		return nil, fmt.Errorf("line %d: %s: %w", n.Line, where, err)
	}
	bad := func(field, msg string) error {
		return fmt.Errorf("line %d: %s: %s %s", lines[field], where, field, msg)
	}
	days := func(field string, v *int) error {
		if v != nil && (*v < 0 || *v > 365) {
			return bad(field, fmt.Sprintf("%d: must be in 0..365", *v))
		}
		return nil
	}
	nonNeg := func(field string, v *float64) error {
		if v != nil && !(*v >= 0 && !math.IsInf(*v, 1)) {
			return bad(field, fmt.Sprintf("%v: must be >= 0", *v))
		}
		return nil
	}
	if l.ServiceLevel != nil && !(*l.ServiceLevel > 0 && *l.ServiceLevel < 1) {
		return nil, bad("service_level", fmt.Sprintf("%v: must be in (0, 1)", *l.ServiceLevel))
	}
	if l.Kind != nil {
		if _, ok := kindOf(*l.Kind); !ok {
			return nil, bad("kind", fmt.Sprintf("%q: want s_S, s_Q or R_S", *l.Kind))
		}
	}
	if l.Target != nil {
		if _, ok := targetOf(*l.Target); !ok {
			return nil, bad("target", fmt.Sprintf("%q: want cycle_service_level, fill_rate or newsvendor", *l.Target))
		}
	}
	if l.FillRate != nil && !(*l.FillRate > 0 && *l.FillRate < 1) {
		return nil, bad("fill_rate", fmt.Sprintf("%v: must be in (0, 1)", *l.FillRate))
	}
	if l.ReviewWeekdays != nil {
		for _, n := range *l.ReviewWeekdays {
			if _, ok := weekdayNames[strings.ToLower(n)]; !ok {
				return nil, bad("review_weekdays", fmt.Sprintf("%q: want a weekday name (monday or mon, ...)", n))
			}
		}
	}
	if l.ReviewAnchorDate != nil {
		if _, err := time.Parse(time.DateOnly, *l.ReviewAnchorDate); err != nil {
			return nil, bad("review_anchor_date", fmt.Sprintf("%q: want YYYY-MM-DD", *l.ReviewAnchorDate))
		}
	}
	return &l, errors.Join(days("lead_time_days", l.LeadTimeDays), days("review_period_days", l.ReviewPeriodDays),
		days("order_cover_days", l.OrderCoverDays), nonNeg("moq", l.MOQ), nonNeg("pack_size", l.PackSize), nonNeg("max_order", l.MaxOrder),
		nonNeg("order_cost", l.OrderCost), nonNeg("holding_cost", l.HoldingCost), nonNeg("shortage_cost", l.ShortageCost),
		nonNeg("order_quantity", l.OrderQuantity))
}

// levels returns the file's policies for s (with its category, maybe
// empty) over builtIn, most specific first: item, category at the
// location, category, location, defaults; only the levels the file has.
func (f *PolicyFile) levels(s Scope, category string, builtIn replenish.ServicePolicy) []EffectivePolicy {
	if f == nil {
		return nil
	}
	var out []EffectivePolicy // most specific first
	global := f.defaults.over(builtIn)
	loc := f.locations[s.Location].over(global)
	cat := loc
	if category != "" {
		cat = f.categories[category].over(loc)
	}
	catLoc := cat
	if category != "" {
		catLoc = f.catLoc[[2]string{category, s.Location}].over(cat)
	}
	if s.SKU != "" {
		if l, ok := f.items[s]; ok {
			out = append(out, EffectivePolicy{ServicePolicy: l.over(catLoc), From: s, Source: SourceFileItem})
		}
		if _, ok := f.catLoc[[2]string{category, s.Location}]; ok && category != "" {
			out = append(out, EffectivePolicy{ServicePolicy: catLoc, From: Scope{Location: s.Location}, Source: SourceFileCategoryLocation})
		}
		if _, ok := f.categories[category]; ok && category != "" {
			out = append(out, EffectivePolicy{ServicePolicy: cat, From: Scope{Location: s.Location}, Source: SourceFileCategory})
		}
	}
	if s.Location != "" {
		if _, ok := f.locations[s.Location]; ok {
			out = append(out, EffectivePolicy{ServicePolicy: loc, From: Scope{Location: s.Location}, Source: SourceFileLocation})
		}
	}
	if f.defaults != nil {
		out = append(out, EffectivePolicy{ServicePolicy: global, Source: SourceFileGlobal})
	}
	return out
}

// Check validates every policy the file can produce over builtIn (each
// layer merged with the layers below it), so a rule that needs fields from
// several layers (e.g. kind R_S and its review calendar) is complete.
func (f *PolicyFile) Check(builtIn replenish.Policy) error {
	if f == nil {
		return nil
	}
	base := replenish.ServicePolicy{Policy: builtIn}
	cats := []string{""}
	for c := range f.categories {
		cats = append(cats, c)
	}
	for cl := range f.catLoc {
		cats = append(cats, cl[0])
	}
	var scopes []Scope
	for s := range f.items {
		scopes = append(scopes, s)
	}
	for l := range f.locations {
		scopes = append(scopes, Scope{Location: l}, Scope{SKU: "\x00any", Location: l})
	}
	for cl := range f.catLoc {
		scopes = append(scopes, Scope{SKU: "\x00any", Location: cl[1]})
	}
	scopes = append(scopes, Scope{}, Scope{SKU: "\x00any", Location: "\x00any"})
	for _, s := range scopes {
		for _, c := range cats {
			for _, e := range f.levels(s, c, base) {
				if err := e.ServicePolicy.Validate(); err != nil {
					where := string(e.Source)
					if e.From != (Scope{}) {
						where += " " + e.From.SKU + "|" + e.From.Location
					}
					if c != "" {
						where += " category " + c
					}
					return fmt.Errorf("%s: %w", where, err)
				}
			}
		}
	}
	return nil
}
