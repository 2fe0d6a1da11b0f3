package store

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/redis/go-redis/v9"

	"github.com/stockcast/stockcast/pkg/chx"
	"github.com/stockcast/stockcast/pkg/replenish"
	"github.com/stockcast/stockcast/services/replenishment/internal/planning"
)

// What Redis loses with its data and ClickHouse keeps for the recovery
// (pkg/recovery, docs/operations.md "Recovery from Redis loss"): the
// decisions on proposals (version-2 rows of proposals) and the policies set
// with SetPolicy (policy_log).

// PolicyLogTable keeps every policy SetPolicy stored; FINAL gives each
// scope's latest. Redis stays the store decisions read.
const PolicyLogTable = `CREATE TABLE IF NOT EXISTS policy_log (
	scope_sku String,
	scope_location String,
	policy String,
	set_at_ns Int64
) ENGINE = ReplacingMergeTree(set_at_ns) ORDER BY (scope_sku, scope_location)`

// MigratePolicyLog creates the policy_log table.
func MigratePolicyLog(ctx context.Context, conn driver.Conn) error {
	return chx.Migrate(ctx, conn, PolicyLogTable)
}

// DurablePolicies is the Redis policy store that also writes every policy
// to ClickHouse first, so RestorePolicies brings it back after Redis lost it.
type DurablePolicies struct {
	*Policies
	conn driver.Conn
	now  func() time.Time
}

var _ planning.PolicyStore = (*DurablePolicies)(nil)

// NewDurablePolicies returns the policy store; policy_log must exist.
func NewDurablePolicies(rdb redis.Cmdable, conn driver.Conn) *DurablePolicies {
	return &DurablePolicies{Policies: NewPolicies(rdb), conn: conn, now: time.Now}
}

// Save writes the policy to policy_log, then to Redis.
func (s *DurablePolicies) Save(ctx context.Context, scope planning.Scope, p replenish.ServicePolicy) error {
	raw, err := json.Marshal(toJSON(p))
	if err != nil {
		return fmt.Errorf("encode policy: %w", err)
	}
	batch, err := s.conn.PrepareBatch(ctx, "INSERT INTO policy_log (scope_sku, scope_location, policy, set_at_ns)")
	if err != nil {
		return fmt.Errorf("log policy %s: %w", PolicyKey(scope), err)
	}
	defer func() { _ = batch.Abort() }()
	if err := batch.Append(scope.SKU, scope.Location, string(raw), s.now().UnixNano()); err != nil {
		return fmt.Errorf("log policy %s: %w", PolicyKey(scope), err)
	}
	if err := batch.Send(); err != nil {
		return fmt.Errorf("log policy %s: %w", PolicyKey(scope), err)
	}
	return s.Policies.Save(ctx, scope, p)
}

var _ planning.PolicyBatchStore = (*DurablePolicies)(nil)

// SaveAll writes the policies to policy_log in one insert, then to Redis in
// one pipeline.
func (s *DurablePolicies) SaveAll(ctx context.Context, scopes []planning.Scope, ps []replenish.ServicePolicy) error {
	if len(ps) == 0 {
		return nil
	}
	batch, err := s.conn.PrepareBatch(ctx, "INSERT INTO policy_log (scope_sku, scope_location, policy, set_at_ns)")
	if err != nil {
		return fmt.Errorf("log %d policies: %w", len(ps), err)
	}
	defer func() { _ = batch.Abort() }()
	at := s.now().UnixNano()
	for i, scope := range scopes {
		raw, err := json.Marshal(toJSON(ps[i]))
		if err != nil {
			return fmt.Errorf("encode policy: %w", err)
		}
		if err := batch.Append(scope.SKU, scope.Location, string(raw), at); err != nil {
			return fmt.Errorf("log policy %s: %w", PolicyKey(scope), err)
		}
	}
	if err := batch.Send(); err != nil {
		return fmt.Errorf("log %d policies: %w", len(ps), err)
	}
	return s.Policies.SaveAll(ctx, scopes, ps)
}

// RestorePolicies writes each scope's latest policy from policy_log back to
// Redis and returns how many.
func RestorePolicies(ctx context.Context, conn driver.Conn, rdb redis.Cmdable) (int, error) {
	rows, err := conn.Query(ctx, "SELECT scope_sku, scope_location, policy FROM policy_log FINAL")
	if err != nil {
		return 0, fmt.Errorf("read policy log: %w", err)
	}
	defer rows.Close()
	pipe := rdb.Pipeline()
	n := 0
	for rows.Next() {
		var sku, loc, raw string
		if err := rows.Scan(&sku, &loc, &raw); err != nil {
			return n, fmt.Errorf("read policy log: %w", err)
		}
		pipe.Set(ctx, PolicyKey(planning.Scope{SKU: sku, Location: loc}), raw, 0)
		n++
	}
	if err := rows.Err(); err != nil {
		return n, fmt.Errorf("read policy log: %w", err)
	}
	if n > 0 {
		if _, err := pipe.Exec(ctx); err != nil {
			return 0, fmt.Errorf("restore %d policies: %w", n, err)
		}
	}
	return n, nil
}

// RestoreDecisions writes the approvals and rejections ClickHouse holds
// back to Redis, completed (stored and published), as Reviewer left them,
// and returns how many.
func RestoreDecisions(ctx context.Context, conn driver.Conn, rdb redis.Cmdable) (int, error) {
	rows, err := conn.Query(ctx, `SELECT proposal_id, status, approved_quantity, decided_by, status_note, status_changed_at_ns
	FROM proposals FINAL WHERE status IN ('PROPOSAL_STATUS_APPROVED', 'PROPOSAL_STATUS_REJECTED')`)
	if err != nil {
		return 0, fmt.Errorf("read decisions: %w", err)
	}
	defer rows.Close()
	pipe := rdb.Pipeline()
	n := 0
	for rows.Next() {
		var id, status, by, note string
		var q float64
		var at int64
		if err := rows.Scan(&id, &status, &q, &by, &note, &at); err != nil {
			return n, fmt.Errorf("read decisions: %w", err)
		}
		pipe.HSet(ctx, DecisionKey(id), "status", status, "quantity", formatFloat(q), "by", by, "note", note,
			"at_ns", strconv.FormatInt(at, 10), "done", "1")
		n++
		if pipe.Len() >= 1000 {
			if _, err := pipe.Exec(ctx); err != nil {
				return 0, fmt.Errorf("restore decisions: %w", err)
			}
		}
	}
	if err := rows.Err(); err != nil {
		return n, fmt.Errorf("read decisions: %w", err)
	}
	if pipe.Len() > 0 {
		if _, err := pipe.Exec(ctx); err != nil {
			return 0, fmt.Errorf("restore decisions: %w", err)
		}
	}
	return n, nil
}
