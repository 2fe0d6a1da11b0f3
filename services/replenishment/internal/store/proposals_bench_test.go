package store

import (
	"context"
	"fmt"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"

	replenishmentv1 "github.com/stockcast/stockcast/proto/stockcast/replenishment/v1"

	"github.com/stockcast/stockcast/services/replenishment/internal/planning"
)

// getFinal is the lookup Get made before session 5: FINAL by proposal id.
func getFinal(ctx context.Context, s *Proposals, id string) (*replenishmentv1.Proposal, error) {
	rows, err := s.conn.Query(ctx, "SELECT "+proposalColumns+" FROM proposals FINAL WHERE proposal_id = ?", id)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	if !rows.Next() {
		return nil, fmt.Errorf("%w: proposal %q", planning.ErrNotFound, id)
	}
	return scanProposal(rows)
}

// BenchmarkApproveLookup measures the ClickHouse side of approving a
// review's proposals on a table of benchProposals proposals written like the
// demo writes them (batches of 100, about 1 in 4 already decided), three
// ways in the same iteration, each on its own fresh proposals:
//   - old: per proposal Get with FINAL and a one-row status insert, 8 at a
//     time (Approve before session 5, as the demo's planner called it)
//   - single: per proposal Get without FINAL and a one-row insert, 8 at a
//     time (Approve now)
//   - batch: one GetMany and one insert for the whole review (ApproveBatch)
//
// and reports old/single and old/batch, and the old and single per-proposal
// latency (mean of a proposal's lookup + insert).
func BenchmarkApproveLookup(b *testing.B) {
	const (
		benchProposals = 10000
		review         = 80 // proposals a review day approves (28,127 in 373 reviews)
		parallel       = 8
	)
	ctx := context.Background()
	st, _ := newProposals(b)
	base := time.Date(2011, 1, 1, 0, 0, 0, 0, time.UTC)
	proposed := replenishmentv1.ProposalStatus_PROPOSAL_STATUS_PROPOSED
	setup := time.Now()
	all := make([]*replenishmentv1.Proposal, benchProposals)
	for i := range all {
		all[i] = proposal(fmt.Sprintf("SKU%05d", i%4000), "online", base.Add(time.Duration(i)*time.Minute), proposed)
	}
	for start := 0; start < len(all); start += 100 {
		chunk := all[start:min(start+100, len(all))]
		if err := st.Save(ctx, chunk); err != nil {
			b.Fatal(err)
		}
		var done []*replenishmentv1.Proposal
		for _, p := range chunk[:len(chunk)/4] {
			done = append(done, decided(p, replenishmentv1.ProposalStatus_PROPOSAL_STATUS_APPROVED, 100, "setup"))
		}
		if err := st.SaveStatuses(ctx, done); err != nil {
			b.Fatal(err)
		}
	}
	b.Logf("%d proposals in %d inserts in %v", benchProposals, 2*benchProposals/100, time.Since(setup).Round(time.Millisecond))
	// Fresh proposals for the iterations, in the table too.
	next := 0
	fresh := func() []*replenishmentv1.Proposal {
		out := make([]*replenishmentv1.Proposal, review)
		for i := range out {
			out[i] = proposal(fmt.Sprintf("NEW%07d", next), "online", base.Add(time.Duration(next)*time.Second), proposed)
			next++
		}
		if err := st.Save(ctx, out); err != nil {
			b.Fatal(err)
		}
		return out
	}
	approve := func(p *replenishmentv1.Proposal) *replenishmentv1.Proposal {
		return decided(p, replenishmentv1.ProposalStatus_PROPOSAL_STATUS_APPROVED, p.GetQuantity(), "bench")
	}
	oneByOne := func(props []*replenishmentv1.Proposal, get func(context.Context, string) (*replenishmentv1.Proposal, error)) time.Duration {
		start := time.Now()
		g, gctx := errgroup.WithContext(ctx)
		g.SetLimit(parallel)
		for _, p := range props {
			g.Go(func() error {
				got, err := get(gctx, p.GetProposalId())
				if err != nil {
					return err
				}
				return st.SaveStatus(gctx, approve(got))
			})
		}
		if err := g.Wait(); err != nil {
			b.Fatal(err)
		}
		return time.Since(start)
	}
	var old, single, batch time.Duration
	var oldEach, singleEach time.Duration
	b.ResetTimer()
	for b.Loop() {
		b.StopTimer()
		p1, p2, p3 := fresh(), fresh(), fresh()
		b.StartTimer()
		d := oneByOne(p1, func(ctx context.Context, id string) (*replenishmentv1.Proposal, error) { return getFinal(ctx, st, id) })
		old += d
		oldEach += d * parallel / review
		d = oneByOne(p2, st.Get)
		single += d
		singleEach += d * parallel / review
		start := time.Now()
		ids := make([]string, len(p3))
		for i, p := range p3 {
			ids[i] = p.GetProposalId()
		}
		got, err := st.GetMany(ctx, ids)
		if err != nil || len(got) != len(ids) {
			b.Fatalf("GetMany: %d of %d, %v", len(got), len(ids), err)
		}
		out := make([]*replenishmentv1.Proposal, 0, len(got))
		for _, id := range ids {
			out = append(out, approve(got[id]))
		}
		if err := st.SaveStatuses(ctx, out); err != nil {
			b.Fatal(err)
		}
		batch += time.Since(start)
		b.Logf("old %v single %v batch %v", old, single, batch)
	}
	n := float64(b.N)
	b.ReportMetric(float64(old)/float64(single), "x_single_faster_than_old")
	b.ReportMetric(float64(old)/float64(batch), "x_batch_faster_than_old")
	b.ReportMetric(float64(oldEach.Microseconds())/n/1000, "old_ms/approve")
	b.ReportMetric(float64(singleEach.Microseconds())/n/1000, "single_ms/approve")
	b.ReportMetric(float64(batch.Microseconds())/n/review/1000, "batch_ms/approve")
}
