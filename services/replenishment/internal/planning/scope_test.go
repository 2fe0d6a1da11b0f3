package planning_test

import (
	"context"
	"io"
	"log/slog"
	"sort"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	replenishmentv1 "github.com/stockcast/stockcast/proto/stockcast/replenishment/v1"

	"github.com/stockcast/stockcast/pkg/replenish"
	"github.com/stockcast/stockcast/pkg/testenv"
	"github.com/stockcast/stockcast/services/replenishment/internal/planning"
	"github.com/stockcast/stockcast/services/replenishment/internal/store"
)

// TestReevaluateScope: SetPolicy at a location or globally decides again,
// at once, exactly the series that policy governs, and a retry adds nothing.
func TestReevaluateScope(t *testing.T) {
	ctx := context.Background()
	rdb := redis.NewClient(&redis.Options{Addr: testenv.Redis(t)})
	t.Cleanup(func() { _ = rdb.Close() })
	policies, err := planning.NewPolicies(store.NewPolicies(rdb), builtIn)
	if err != nil {
		t.Fatal(err)
	}
	planner := planning.NewPlanner(policies, store.NewState(rdb, time.Hour), slog.New(slog.NewTextHandler(io.Discard, nil)))
	at := time.Date(2011, 3, 1, 9, 30, 0, 0, time.UTC)

	// Five series at position 90, above the built-in reorder point q95(7 days) = 85; E has its own policy.
	series := []planning.Scope{{SKU: "A", Location: "online"}, {SKU: "B", Location: "online"}, {SKU: "C", Location: "online"},
		{SKU: "D", Location: "store1"}, {SKU: "E", Location: "online"}}
	own := replenish.ServicePolicy{Policy: builtIn}
	if err := policies.Set(ctx, series[4], own); err != nil {
		t.Fatal(err)
	}
	for _, s := range series {
		ev := seriesEvent(s.SKU, "e1", snapshot(90), at)
		ev.Location, ev.SeriesKey = s.Location, s.SKU+"|"+s.Location
		res, err := planner.Plan(ctx, events(t, ev))
		if err != nil || len(res.Proposals) != 0 {
			t.Fatalf("snapshot of %v: %v, %d proposals", s, err, len(res.Proposals))
		}
	}
	strict := builtIn
	strict.ServiceLevel = 0.99 // reorder point q99(7 days) = 92, order-up-to 92 + 14 * 10 = 232: order 142
	reevaluate := func(scope planning.Scope) (skus []string, replayed int) {
		t.Helper()
		if err := policies.Set(ctx, scope, replenish.ServicePolicy{Policy: strict}); err != nil {
			t.Fatal(err)
		}
		err := planner.ReevaluateScope(ctx, scope, func(res planning.Result) error {
			replayed += res.Replayed
			for _, p := range res.Proposals {
				if p.GetReason() != replenishmentv1.ProposalReason_PROPOSAL_REASON_POLICY_CHANGED || p.GetQuantity() != 142 ||
					p.GetReorderPoint() != 92 || p.GetPolicy().GetLocation() != scope.Location || p.GetPolicy().GetServiceLevel() != 0.99 {
					t.Errorf("proposal %v", p)
				}
				skus = append(skus, p.GetSku())
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		sort.Strings(skus)
		return skus, replayed
	}
	// The location's policy governs A, B and C (E has its own, D is elsewhere).
	if got, replayed := reevaluate(planning.Scope{Location: "online"}); len(got) != 3 || got[0] != "A" || got[1] != "B" || got[2] != "C" || replayed != 0 {
		t.Fatalf("location online: proposals for %v (replayed %d), want A B C", got, replayed)
	}
	// A retry decides nothing new: the same three decisions come back, replayed.
	if got, replayed := reevaluate(planning.Scope{Location: "online"}); len(got) != 3 || replayed != 3 {
		t.Fatalf("retry: proposals for %v, replayed %d; want the same 3, replayed", got, replayed)
	}
	// The global policy now governs only D.
	if got, _ := reevaluate(planning.Scope{}); len(got) != 1 || got[0] != "D" {
		t.Fatalf("global: proposals for %v, want D", got)
	}
}
