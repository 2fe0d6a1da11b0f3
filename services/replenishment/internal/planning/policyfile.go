package planning

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"os"
	"sort"
	"strings"

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
}

// over returns p with the layer's fields set.
func (l *filePolicy) over(p replenish.Policy) replenish.Policy {
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
		"pack_size": true, "max_order": true, "order_cover_days": true}
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
	return &l, errors.Join(days("lead_time_days", l.LeadTimeDays), days("review_period_days", l.ReviewPeriodDays),
		days("order_cover_days", l.OrderCoverDays), nonNeg("moq", l.MOQ), nonNeg("pack_size", l.PackSize), nonNeg("max_order", l.MaxOrder))
}

// levels returns the file's policies for s (with its category, maybe
// empty) over builtIn, most specific first: item, category at the
// location, category, location, defaults; only the levels the file has.
func (f *PolicyFile) levels(s Scope, category string, builtIn replenish.Policy) []EffectivePolicy {
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
			out = append(out, EffectivePolicy{Policy: l.over(catLoc), From: s, Source: SourceFileItem})
		}
		if _, ok := f.catLoc[[2]string{category, s.Location}]; ok && category != "" {
			out = append(out, EffectivePolicy{Policy: catLoc, From: Scope{Location: s.Location}, Source: SourceFileCategoryLocation})
		}
		if _, ok := f.categories[category]; ok && category != "" {
			out = append(out, EffectivePolicy{Policy: cat, From: Scope{Location: s.Location}, Source: SourceFileCategory})
		}
	}
	if s.Location != "" {
		if _, ok := f.locations[s.Location]; ok {
			out = append(out, EffectivePolicy{Policy: loc, From: Scope{Location: s.Location}, Source: SourceFileLocation})
		}
	}
	if f.defaults != nil {
		out = append(out, EffectivePolicy{Policy: global, Source: SourceFileGlobal})
	}
	return out
}
