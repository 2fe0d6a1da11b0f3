package grpcapi

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	replenishmentv1 "github.com/stockcast/stockcast/proto/stockcast/replenishment/v1"
	"github.com/stockcast/stockcast/services/replenishment/internal/planning"
	"github.com/stockcast/stockcast/services/replenishment/internal/store"
)

// finishedBeforeLease is the real Redis decision store, except that just
// before the caller's first Lease another caller takes the lease, completes
// the decision and frees the lease (MarkDone): the interleaving in which the
// caller's Claim saw the decision not done yet.
type finishedBeforeLease struct {
	*store.Decisions
	leased atomic.Bool
}

func (f *finishedBeforeLease) Lease(ctx context.Context, id string, ttl time.Duration) (bool, error) {
	if !f.leased.Swap(true) {
		if ok, err := f.Decisions.Lease(ctx, id, ttl); err != nil || !ok {
			return ok, err
		}
		if err := f.Decisions.MarkDone(ctx, id); err != nil {
			return false, err
		}
	}
	return f.Decisions.Lease(ctx, id, ttl)
}

type countingPublisher struct{ n atomic.Int32 }

func (c *countingPublisher) PublishStatus(context.Context, *replenishmentv1.Proposal) error {
	c.n.Add(1)
	return nil
}

// TestDecisionCompletedByAnotherCallerIsNotPublishedAgain: a caller that
// gets the lease after the decision was completed must not publish it again.
func TestDecisionCompletedByAnotherCallerIsNotPublishedAgain(t *testing.T) {
	ctx := context.Background()
	_, proposals, rdb := newServerWith(t, nil, nil)
	if err := proposals.Save(ctx, []*replenishmentv1.Proposal{reviewProposal("p1", 1)}); err != nil {
		t.Fatal(err)
	}
	decisions := &finishedBeforeLease{Decisions: store.NewDecisions(rdb)}
	pub := &countingPublisher{}
	r := planning.NewReviewer(proposals, decisions, pub, time.Now)
	got, err := r.Approve(ctx, "p1", nil, "u1", "")
	if err != nil {
		t.Fatal(err)
	}
	if got.GetStatus() != approved || got.GetApprovedQuantity() != 60 {
		t.Fatalf("approve = %v", got)
	}
	if n := pub.n.Load(); n != 0 {
		t.Fatalf("published %d times, want 0 (the other caller had published it)", n)
	}
	if ok, err := decisions.Decisions.Lease(ctx, "p1", time.Second); err != nil || !ok {
		t.Fatalf("lease left held after the call: ok=%v err=%v", ok, err)
	}
}

// TestBatchApprovalCompletedByAnotherCallerIsNotPublishedAgain: the same
// interleaving for an approval of a batch, beside one the batch completes.
func TestBatchApprovalCompletedByAnotherCallerIsNotPublishedAgain(t *testing.T) {
	ctx := context.Background()
	_, proposals, rdb := newServerWith(t, nil, nil)
	if err := proposals.Save(ctx, []*replenishmentv1.Proposal{reviewProposal("p1", 1), reviewProposal("p2", 2)}); err != nil {
		t.Fatal(err)
	}
	decisions := &finishedBeforeLease{Decisions: store.NewDecisions(rdb)}
	pub := &countingPublisher{}
	r := planning.NewReviewer(proposals, decisions, pub, time.Now)
	results, err := r.ApproveBatch(ctx, []planning.ApproveItem{{ID: "p1", By: "u1"}, {ID: "p2", By: "u1"}})
	if err != nil {
		t.Fatal(err)
	}
	for i, res := range results {
		if res.Err != nil || res.Proposal.GetStatus() != approved || res.Proposal.GetApprovedQuantity() != 60 {
			t.Fatalf("result %d = %v %v", i, res.Proposal, res.Err)
		}
	}
	if n := pub.n.Load(); n != 1 {
		t.Fatalf("published %d times, want 1 (p2 only: the other caller had published p1)", n)
	}
	for _, id := range []string{"p1", "p2"} {
		if ok, err := decisions.Decisions.Lease(ctx, id, time.Second); err != nil || !ok {
			t.Fatalf("lease of %s left held after the call: ok=%v err=%v", id, ok, err)
		}
	}
	// p2 is stored as approved (p1's row was the other caller's to store).
	got, err := proposals.Get(ctx, "p2")
	if err != nil || got.GetStatus() != approved || got.GetDecidedBy() != "u1" {
		t.Fatalf("stored p2 = %v %v", got, err)
	}
}
