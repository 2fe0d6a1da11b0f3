package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/redis/go-redis/v9"

	"github.com/stockcast/stockcast/pkg/replenish"
	"github.com/stockcast/stockcast/services/replenishment/internal/planning"
)

// PolicyKey is where the policy of a scope lives: "stockcast:policy:sku|location",
// with sku empty for a location default and both empty for the global one.
func PolicyKey(s planning.Scope) string { return "stockcast:policy:" + seriesKey(s) }

// Policies keeps one JSON string per scope in Redis.
type Policies struct {
	rdb redis.Cmdable
}

var _ planning.PolicyStore = (*Policies)(nil)

// NewPolicies returns the Redis policy store.
func NewPolicies(rdb redis.Cmdable) *Policies { return &Policies{rdb: rdb} }

// policyJSON is the stored form of a policy; field names are part of the
// Redis layout, so they do not follow Go renames.
type policyJSON struct {
	SKU              string  `json:"sku,omitempty"`
	Location         string  `json:"location,omitempty"`
	Source           string  `json:"source,omitempty"`
	ServiceLevel     float64 `json:"service_level"`
	LeadTimeDays     int     `json:"lead_time_days"`
	ReviewPeriodDays int     `json:"review_period_days"`
	MOQ              float64 `json:"moq"`
	PackSize         float64 `json:"pack_size"`
	MaxOrder         float64 `json:"max_order"`
	OrderCoverDays   int     `json:"order_cover_days"`
	// Decision rule; absent in policies stored before kinds existed (the
	// default kind and target).
	Kind           string             `json:"kind,omitempty"`
	Target         string             `json:"target,omitempty"`
	FillRate       float64            `json:"fill_rate,omitempty"`
	OrderCost      float64            `json:"order_cost,omitempty"`
	HoldingCost    float64            `json:"holding_cost,omitempty"`
	ShortageCost   float64            `json:"shortage_cost,omitempty"`
	OrderQuantity  float64            `json:"order_quantity,omitempty"`
	ReviewWeekdays replenish.Weekdays `json:"review_weekdays,omitempty"`
	ReviewAnchor   string             `json:"review_anchor_date,omitempty"`
}

func toJSON(p replenish.ServicePolicy) policyJSON {
	return policyJSON{
		ServiceLevel: p.ServiceLevel, LeadTimeDays: p.LeadTimeDays, ReviewPeriodDays: p.ReviewPeriodDays,
		MOQ: p.MOQ, PackSize: p.PackSize, MaxOrder: p.MaxOrder, OrderCoverDays: p.OrderCoverDays,
		Kind: string(p.Kind), Target: string(p.Target), FillRate: p.FillRate, OrderCost: p.OrderCost,
		HoldingCost: p.HoldingCost, ShortageCost: p.ShortageCost, OrderQuantity: p.FixedQuantity,
		ReviewWeekdays: p.ReviewWeekdays, ReviewAnchor: p.ReviewAnchor,
	}
}

func (j policyJSON) policy() replenish.ServicePolicy {
	return replenish.ServicePolicy{
		Policy: replenish.Policy{
			ServiceLevel: j.ServiceLevel, LeadTimeDays: j.LeadTimeDays, ReviewPeriodDays: j.ReviewPeriodDays,
			MOQ: j.MOQ, PackSize: j.PackSize, MaxOrder: j.MaxOrder, OrderCoverDays: j.OrderCoverDays,
		},
		Kind: replenish.PolicyKind(j.Kind), Target: replenish.TargetKind(j.Target), FillRate: j.FillRate,
		OrderCost: j.OrderCost, HoldingCost: j.HoldingCost, ShortageCost: j.ShortageCost,
		FixedQuantity: j.OrderQuantity, ReviewWeekdays: j.ReviewWeekdays, ReviewAnchor: j.ReviewAnchor,
	}
}

// Lookup reads the scopes' policies in one pipeline (no MGET: the keys may
// live in different cluster slots).
func (s *Policies) Lookup(ctx context.Context, scopes []planning.Scope) (map[planning.Scope]replenish.ServicePolicy, error) {
	pipe := s.rdb.Pipeline()
	cmds := queuePolicies(ctx, pipe, scopes)
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("read %d policies: %w", len(scopes), err)
	}
	return readPolicies(scopes, cmds)
}

var _ planning.SharedPolicyStore = (*Policies)(nil)

// SharesWith says whether state is a State on this store's Redis client:
// its SeriesInfoAndPolicies then reads the policies Lookup reads.
func (s *Policies) SharesWith(state planning.StateStore) bool {
	st, ok := state.(*State)
	return ok && st.rdb == s.rdb
}

// queuePolicies queues the reads of Lookup.
func queuePolicies(ctx context.Context, pipe redis.Pipeliner, scopes []planning.Scope) []*redis.StringCmd {
	cmds := make([]*redis.StringCmd, len(scopes))
	for i, sc := range scopes {
		cmds[i] = pipe.Get(ctx, PolicyKey(sc))
	}
	return cmds
}

// readPolicies reads the replies of queuePolicies; missing policies are
// absent.
func readPolicies(scopes []planning.Scope, cmds []*redis.StringCmd) (map[planning.Scope]replenish.ServicePolicy, error) {
	out := make(map[planning.Scope]replenish.ServicePolicy)
	for i, cmd := range cmds {
		raw, err := cmd.Result()
		if errors.Is(err, redis.Nil) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("read policy %s: %w", PolicyKey(scopes[i]), err)
		}
		var j policyJSON
		if err := json.Unmarshal([]byte(raw), &j); err != nil {
			return nil, fmt.Errorf("decode policy %s: %w", PolicyKey(scopes[i]), err)
		}
		out[scopes[i]] = j.policy()
	}
	return out, nil
}

// Save replaces the policy of a scope.
func (s *Policies) Save(ctx context.Context, scope planning.Scope, p replenish.ServicePolicy) error {
	raw, err := json.Marshal(toJSON(p))
	if err != nil {
		return fmt.Errorf("encode policy: %w", err)
	}
	if err := s.rdb.Set(ctx, PolicyKey(scope), raw, 0).Err(); err != nil {
		return fmt.Errorf("write policy %s: %w", PolicyKey(scope), err)
	}
	return nil
}

var _ planning.PolicyBatchStore = (*Policies)(nil)

// SaveAll writes the policies in one pipeline (one round trip).
func (s *Policies) SaveAll(ctx context.Context, scopes []planning.Scope, ps []replenish.ServicePolicy) error {
	if len(ps) == 0 {
		return nil
	}
	pipe := s.rdb.Pipeline()
	for i, scope := range scopes {
		raw, err := json.Marshal(toJSON(ps[i]))
		if err != nil {
			return fmt.Errorf("encode policy: %w", err)
		}
		pipe.Set(ctx, PolicyKey(scope), raw, 0)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("write %d policies: %w", len(ps), err)
	}
	return nil
}

// encodeEffective is how a decision's policy is recorded in the event marker.
func encodeEffective(e planning.EffectivePolicy) string {
	j := toJSON(e.ServicePolicy)
	j.SKU, j.Location, j.Source = e.From.SKU, e.From.Location, string(e.Source)
	raw, _ := json.Marshal(j) // plain numbers and strings: cannot fail
	return string(raw)
}

func decodeEffective(raw string) (planning.EffectivePolicy, error) {
	var j policyJSON
	if err := json.Unmarshal([]byte(raw), &j); err != nil {
		return planning.EffectivePolicy{}, fmt.Errorf("decode recorded policy: %w", err)
	}
	return planning.EffectivePolicy{
		ServicePolicy: j.policy(),
		From:          planning.Scope{SKU: j.SKU, Location: j.Location},
		Source:        planning.Source(j.Source),
	}, nil
}
