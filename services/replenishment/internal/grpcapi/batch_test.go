package grpcapi

import (
	"context"
	"fmt"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	replenishmentv1 "github.com/stockcast/stockcast/proto/stockcast/replenishment/v1"

	"github.com/stockcast/stockcast/pkg/kafkax"
	"github.com/stockcast/stockcast/pkg/testenv"
	"github.com/stockcast/stockcast/pkg/topics"
)

// TestApproveBatch: each approval of a batch has the outcome Approve would
// have had (approved, approved again, rejected before, unknown, invalid),
// the batch's approvals are in ClickHouse and on replenishment.v1 once, and
// repeating the batch changes nothing.
func TestApproveBatch(t *testing.T) {
	ctx := context.Background()
	brokers := testenv.Kafka(t)
	if err := kafkax.EnsureTopics(ctx, kafkax.Config{Brokers: brokers}, topics.Proposals); err != nil {
		t.Fatal(err)
	}
	srv, proposals, _ := newServerWith(t, brokers, nil)
	var ps []*replenishmentv1.Proposal
	for i := 1; i <= 5; i++ {
		ps = append(ps, reviewProposal(fmt.Sprintf("p%d", i), i))
	}
	if err := proposals.Save(ctx, ps); err != nil {
		t.Fatal(err)
	}
	p1, p2, p3, p4, p5 := ps[0], ps[1], ps[2], ps[3], ps[4]
	// Before the batch: alice approved p3 with 72, carol rejected p4 as
	// superseded by p5.
	if _, err := srv.Approve(user("alice"), &replenishmentv1.ApproveRequest{ProposalId: "p3", Quantity: qty(72)}); err != nil {
		t.Fatal(err)
	}
	if _, err := srv.Reject(user("carol"), &replenishmentv1.RejectRequest{ProposalId: "p4", Note: "superseded by p5"}); err != nil {
		t.Fatal(err)
	}
	wantP1 := withStatus(p1, approved, 60, "planner", "review")
	wantP2 := withStatus(p2, approved, 84, "bob", "")
	wantP3 := withStatus(p3, approved, 72, "alice", "")
	wantP4 := withStatus(p4, rejected, 0, "carol", "superseded by p5")

	type result struct {
		proposal *replenishmentv1.Proposal
		code     codes.Code
		message  string
	}
	ok := func(p *replenishmentv1.Proposal) result { return result{proposal: p} }
	batch := []struct {
		req  *replenishmentv1.ApproveRequest
		want result
	}{
		{&replenishmentv1.ApproveRequest{ProposalId: "p1", Note: "review"}, ok(wantP1)},
		{&replenishmentv1.ApproveRequest{ProposalId: "p2", Quantity: qty(84), DecidedBy: "bob"}, ok(wantP2)},
		{&replenishmentv1.ApproveRequest{ProposalId: "p3"}, ok(wantP3)},
		{&replenishmentv1.ApproveRequest{ProposalId: "p3", Quantity: qty(72)}, result{code: codes.InvalidArgument, message: `invalid argument: proposal "p3" is in the batch twice`}},
		{&replenishmentv1.ApproveRequest{ProposalId: "p4"}, result{code: codes.FailedPrecondition, message: "failed precondition: proposal is already rejected by carol"}},
		{&replenishmentv1.ApproveRequest{ProposalId: "p9"}, result{code: codes.NotFound, message: `not found: proposal "p9"`}},
		{&replenishmentv1.ApproveRequest{ProposalId: "p5", Quantity: qty(30)}, result{code: codes.InvalidArgument, message: "invalid argument: quantity 30 is not a multiple of the pack_size 12"}},
		{&replenishmentv1.ApproveRequest{}, result{code: codes.InvalidArgument, message: "invalid argument: proposal_id is required"}},
	}
	req := &replenishmentv1.ApproveBatchRequest{}
	for _, b := range batch {
		req.Approvals = append(req.Approvals, b.req)
	}
	check := func(name string, resp *replenishmentv1.ApproveBatchResponse, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if len(resp.GetResults()) != len(batch) {
			t.Fatalf("%s: %d results, want %d", name, len(resp.GetResults()), len(batch))
		}
		for i, b := range batch {
			r := resp.GetResults()[i]
			if r.GetProposalId() != b.req.GetProposalId() || codes.Code(r.GetCode()) != b.want.code || r.GetMessage() != b.want.message ||
				!proto.Equal(r.GetProposal(), b.want.proposal) {
				t.Errorf("%s #%d %s: code %v %q proposal %v\nwant code %v %q proposal %v", name, i, b.req.GetProposalId(),
					codes.Code(r.GetCode()), r.GetMessage(), r.GetProposal(), b.want.code, b.want.message, b.want.proposal)
			}
		}
	}
	resp, err := srv.ApproveBatch(user("planner"), req)
	check("batch", resp, err)
	// The same batch again: the same results, nothing new stored or published.
	resp, err = srv.ApproveBatch(user("planner"), req)
	check("batch again", resp, err)

	// Another quantity for an approved proposal fails, in a batch as alone.
	resp, err = srv.ApproveBatch(user("planner"), &replenishmentv1.ApproveBatchRequest{Approvals: []*replenishmentv1.ApproveRequest{
		{ProposalId: "p1", Quantity: qty(96)}, {ProposalId: "p5"}}})
	if err != nil {
		t.Fatal(err)
	}
	wantP5 := withStatus(p5, approved, 60, "planner", "")
	if r := resp.GetResults()[0]; codes.Code(r.GetCode()) != codes.FailedPrecondition || r.GetMessage() != "failed precondition: proposal is already approved by planner with quantity 60" {
		t.Errorf("p1 with another quantity: %v", r)
	}
	if r := resp.GetResults()[1]; r.GetCode() != 0 || !proto.Equal(r.GetProposal(), wantP5) {
		t.Errorf("p5: %v, want %v", r, wantP5)
	}
	// No one named: each approval says so.
	resp, err = srv.ApproveBatch(context.Background(), &replenishmentv1.ApproveBatchRequest{Approvals: []*replenishmentv1.ApproveRequest{{ProposalId: "p1"}}})
	if err != nil || codes.Code(resp.GetResults()[0].GetCode()) != codes.InvalidArgument ||
		resp.GetResults()[0].GetMessage() != "invalid argument: decided_by is required (the field, or the gRPC metadata stockcast-user)" {
		t.Errorf("nobody: %v %v", resp, err)
	}
	// Whole-call errors.
	if _, err := srv.ApproveBatch(user("planner"), &replenishmentv1.ApproveBatchRequest{}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("empty batch: %v, want InvalidArgument", err)
	}
	big := &replenishmentv1.ApproveBatchRequest{}
	for i := range MaxApproveBatch + 1 {
		big.Approvals = append(big.Approvals, &replenishmentv1.ApproveRequest{ProposalId: fmt.Sprintf("x%d", i)})
	}
	if _, err := srv.ApproveBatch(user("planner"), big); status.Code(err) != codes.InvalidArgument ||
		status.Convert(err).Message() != "approvals: 1001, at most 1000 in one call" {
		t.Errorf("1001 approvals: %v, want InvalidArgument", err)
	}

	// Durable in ClickHouse: the listing shows the decisions.
	got, err := srv.ListProposals(ctx, &replenishmentv1.ListProposalsRequest{Sku: "A", Location: "online"})
	if err != nil {
		t.Fatal(err)
	}
	want := []*replenishmentv1.Proposal{wantP5, wantP4, wantP3, wantP2, wantP1}
	if len(got.GetProposals()) != len(want) {
		t.Fatalf("listed %d proposals, want %d: %v", len(got.GetProposals()), len(want), got)
	}
	for i := range want {
		if !proto.Equal(got.GetProposals()[i], want[i]) {
			t.Errorf("listed #%d:\n got %v\nwant %v", i, got.GetProposals()[i], want[i])
		}
	}
	// One status event per decision: p3 and p4 before, p1, p2, p5 by batches.
	byID := map[string]*replenishmentv1.Proposal{}
	for _, r := range statusEvents(t, brokers, 5) {
		var p replenishmentv1.Proposal
		if err := proto.Unmarshal(r.Value, &p); err != nil {
			t.Fatal(err)
		}
		if byID[p.GetProposalId()] != nil {
			t.Errorf("two status events of %s", p.GetProposalId())
		}
		byID[p.GetProposalId()] = &p
	}
	for _, w := range want {
		if !proto.Equal(byID[w.GetProposalId()], w) {
			t.Errorf("status event of %s: %v, want %v", w.GetProposalId(), byID[w.GetProposalId()], w)
		}
	}
}
