package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stockcast/stockcast/pkg/chx"
	"github.com/stockcast/stockcast/pkg/recovery"
	"github.com/stockcast/stockcast/pkg/redisx"
	"github.com/stockcast/stockcast/pkg/topics"
	"github.com/stockcast/stockcast/services/replenishment/internal/consumer"
	"github.com/stockcast/stockcast/services/replenishment/internal/planning"
	"github.com/stockcast/stockcast/services/replenishment/internal/store"
)

// runbookReplay is the manual recovery logged when -replenishment.recover=false.
const runbookReplay = "replenishment rebuild, with the service's flags (docs/operations.md, Recovery from Redis loss)"

// replayBatch bounds the records of one Plan call of the replay.
const replayBatch = 5000

// rebuildAfterLoss is the replenishment service's recovery (pkg/recovery):
//  1. the policies set with SetPolicy and the decisions on proposals come
//     back from ClickHouse (policy_log; proposals' version-2 rows);
//  2. the state (positions, open orders, crossings, learned lead times, the
//     exactly-once markers with their outcomes, also with Kafka
//     transactions) is rebuilt by applying
//     forecasts.v1 from the start of the log up to the group's committed
//     offsets, with the same planner and the same scripts as the consumer,
//     silently: nothing is saved or published, it all was the first time;
//  3. when the committed offsets moved meanwhile (a batch applied before
//     the loss and committed after), the records up to the new ones are
//     applied too, until they stand still.
//
// The consumer then resumes at the committed offsets, so every record is
// applied once, in log order, and the proposals are the ones a run without
// the loss makes (ids are deterministic). Decisions are replayed with the
// policies in force now: a policy changed within the replayed range gives
// the records before the change the new policy. forecasts.v1 must keep its
// records (retention) as long as the state they build matters.
func rebuildAfterLoss(cfg Config, rdb redis.Cmdable, ch driver.Conn, policies *planning.Policies, state *store.State) recovery.Rebuild {
	return func(ctx context.Context, _ string, _ time.Time) (string, error) {
		nPolicies, err := store.RestorePolicies(ctx, ch, rdb)
		if err != nil {
			return "", err
		}
		nDecisions, err := store.RestoreDecisions(ctx, ch, rdb)
		if err != nil {
			return "", err
		}
		// The replay's planner writes with the recovery lock as its guard;
		// its per-event warnings were logged the first time.
		// It records every replayed event in a marker, as without
		// transactions: ingest's seen ids are not rebuilt, so a platform
		// re-send of an event seen before the loss gets through ingest once
		// more and comes back on forecasts.v1 at a new offset, where only a
		// marker recognises it (docs/operations.md). The markers expire
		// after -replenishment.dedup-ttl; the live path reads them.
		planner := planning.NewPlannerLearning(policies, state.Rebuilding().WithMarkers(), slog.New(slog.DiscardHandler), cfg.Planning.LeadTimeMinSamples)
		var from recovery.Offsets
		to, err := recovery.Committed(ctx, cfg.Kafka, Group, topics.Forecasts)
		if err != nil {
			return "", err
		}
		records, events := 0, 0
		for rounds := 1; ; rounds++ {
			n, err := recovery.Read(ctx, cfg.Kafka, topics.Forecasts, from, to, replayBatch, func(recs []*kgo.Record) error {
				applied, err := consumer.Replay(ctx, planner, recs)
				events += applied
				return err
			})
			records += n
			if err != nil {
				return "", fmt.Errorf("replay %s: %w", topics.Forecasts, err)
			}
			now, err := recovery.Committed(ctx, cfg.Kafka, Group, topics.Forecasts)
			if err != nil {
				return "", err
			}
			if !advanced(to, now) {
				return fmt.Sprintf("restored %d policies and %d decisions; replayed %d records of %s (%d events) in %d rounds",
					nPolicies, nDecisions, records, topics.Forecasts, events, rounds), nil
			}
			from, to = to, now
		}
	}
}

// advanced reports whether any partition's offset in now is past the one in before.
func advanced(before, now recovery.Offsets) bool {
	for p, o := range now {
		if o > before[p] {
			return true
		}
	}
	return false
}

// runRebuild is `replenishment rebuild`, the manual recovery when the
// service runs with -replenishment.recover=false: with the service's flags,
// it rebuilds the state as the automatic recovery does, under its lock,
// and marks it complete, so the waiting replicas resume. With the state
// complete it does nothing.
func runRebuild(ctx context.Context, cfg Config, stdout io.Writer) (err error) {
	rdb, err := redisx.Open(ctx, cfg.Redis)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, rdb.Close()) }()
	ch, err := chx.Open(ctx, cfg.ClickHouse)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, ch.Close()) }()
	policies, err := openPolicies(ctx, cfg, rdb, ch)
	if err != nil {
		return err
	}
	state := store.NewStateWith(rdb, stateConfig(cfg))
	var summary string
	complete, gen, err := recovery.Exclusive(ctx, recovery.NewGuard(rdb, store.Service), cfg.Recovery.LockTTL, func(ctx context.Context, token string) error {
		var err error
		summary, err = rebuildAfterLoss(cfg, rdb, ch, policies, state)(ctx, token, time.Now())
		return err
	})
	if err != nil {
		return err
	}
	if complete {
		fmt.Fprintln(stdout, "the replenishment state is complete: nothing to rebuild")
		return nil
	}
	fmt.Fprintf(stdout, "%s\nredis state marked complete (generation %s): the replenishment service resumes\n", summary, gen)
	return nil
}

// openPolicies is the policy store the service and the manual rebuild share:
// Redis, backed by ClickHouse's policy_log, with the policy file on top.
func openPolicies(ctx context.Context, cfg Config, rdb redis.Cmdable, ch driver.Conn) (*planning.Policies, error) {
	if err := store.MigratePolicyLog(ctx, ch); err != nil {
		return nil, err
	}
	policies, err := planning.NewPolicies(store.NewDurablePolicies(rdb, ch), cfg.Planning.Defaults)
	if err != nil {
		return nil, err
	}
	if cfg.Planning.PolicyFile != "" {
		pf, err := planning.LoadPolicyFile(cfg.Planning.PolicyFile)
		if err != nil {
			return nil, err
		}
		policies.WithFile(pf)
	}
	return policies, nil
}
