package store

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	replenishmentv1 "github.com/stockcast/stockcast/proto/stockcast/replenishment/v1"

	"github.com/stockcast/stockcast/services/replenishment/internal/planning"
)

// DecisionKey is the hash holding a proposal's approval or rejection.
func DecisionKey(proposalID string) string { return "stockcast:r:decision:{" + proposalID + "}" }

// claimScript stores the decision unless the proposal has one and returns
// the decision in force (HGETALL), so concurrent Approve and Reject calls
// agree on the first one.
var claimScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('HSET', KEYS[1], 'status', ARGV[1], 'quantity', ARGV[2], 'by', ARGV[3], 'note', ARGV[4], 'at_ns', ARGV[5], 'done', '0')
end
return redis.call('HGETALL', KEYS[1])
`)

// Decisions keeps proposal decisions in Redis; they are permanent (a few
// hundred bytes per decided proposal).
type Decisions struct {
	rdb redis.Cmdable
}

var _ planning.DecisionStore = (*Decisions)(nil)

// NewDecisions returns the Redis decision store.
func NewDecisions(rdb redis.Cmdable) *Decisions { return &Decisions{rdb: rdb} }

// Claim stores d unless the proposal has a decision, and returns the one in force.
func (s *Decisions) Claim(ctx context.Context, proposalID string, d planning.Decision) (planning.Decision, error) {
	v, err := claimScript.Run(ctx, s.rdb, []string{DecisionKey(proposalID)},
		d.Status.String(), formatFloat(d.Quantity), d.By, d.Note, strconv.FormatInt(d.At.UnixNano(), 10)).Result()
	if err != nil {
		return planning.Decision{}, fmt.Errorf("claim decision of %s: %w", proposalID, err)
	}
	reply, ok := v.([]any)
	if !ok || len(reply)%2 != 0 {
		return planning.Decision{}, fmt.Errorf("claim decision of %s: unexpected reply %v", proposalID, v)
	}
	f := make(map[string]string, len(reply)/2)
	for i := 0; i+1 < len(reply); i += 2 {
		k, _ := reply[i].(string)
		val, _ := reply[i+1].(string)
		f[k] = val
	}
	q, err1 := strconv.ParseFloat(f["quantity"], 64)
	ns, err2 := strconv.ParseInt(f["at_ns"], 10, 64)
	st, ok := replenishmentv1.ProposalStatus_value[f["status"]]
	if err1 != nil || err2 != nil || !ok {
		return planning.Decision{}, fmt.Errorf("decision of %s: malformed %v", proposalID, f)
	}
	return planning.Decision{
		Status: replenishmentv1.ProposalStatus(st), Quantity: q, By: f["by"], Note: f["note"],
		At: time.Unix(0, ns).UTC(), Done: f["done"] == "1",
	}, nil
}

// leaseKey is the lock of a decision's completion.
func leaseKey(proposalID string) string { return DecisionKey(proposalID) + ":lease" }

// Lease takes the completion lease of a decision for ttl, if free.
func (s *Decisions) Lease(ctx context.Context, proposalID string, ttl time.Duration) (bool, error) {
	ok, err := s.rdb.SetNX(ctx, leaseKey(proposalID), "1", ttl).Result()
	if err != nil {
		return false, fmt.Errorf("lease decision of %s: %w", proposalID, err)
	}
	return ok, nil
}

// Release frees the completion lease.
func (s *Decisions) Release(ctx context.Context, proposalID string) error {
	if err := s.rdb.Del(ctx, leaseKey(proposalID)).Err(); err != nil {
		return fmt.Errorf("release decision of %s: %w", proposalID, err)
	}
	return nil
}

// MarkDone records that the decision is stored and published and frees the lease.
func (s *Decisions) MarkDone(ctx context.Context, proposalID string) error {
	pipe := s.rdb.TxPipeline()
	pipe.HSet(ctx, DecisionKey(proposalID), "done", "1")
	pipe.Del(ctx, leaseKey(proposalID))
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("mark decision of %s done: %w", proposalID, err)
	}
	return nil
}
