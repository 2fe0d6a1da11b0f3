package grpcapi

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	replenishmentv1 "github.com/stockcast/stockcast/proto/stockcast/replenishment/v1"

	"github.com/stockcast/stockcast/pkg/kafkax"
	"github.com/stockcast/stockcast/pkg/testenv"
	"github.com/stockcast/stockcast/pkg/topics"
	"github.com/stockcast/stockcast/services/replenishment/internal/consumer"
	"github.com/stockcast/stockcast/services/replenishment/internal/planning"
)

const (
	proposed = replenishmentv1.ProposalStatus_PROPOSAL_STATUS_PROPOSED
	approved = replenishmentv1.ProposalStatus_PROPOSAL_STATUS_APPROVED
	rejected = replenishmentv1.ProposalStatus_PROPOSAL_STATUS_REJECTED
)

// reviewProposal is a proposed order of 60 under moq 20, pack 12, max 120.
func reviewProposal(id string, minute int) *replenishmentv1.Proposal {
	return &replenishmentv1.Proposal{
		ProposalId: id, SeriesKey: "A|online", Sku: "A", Location: "online", EventId: "e-" + id, ForecastId: "f-" + id,
		DecidedAt: timestamppb.New(time.Date(2011, 3, 1, 9, minute, 0, 0, time.UTC)),
		Reason:    replenishmentv1.ProposalReason_PROPOSAL_REASON_CROSSED_REORDER_POINT,
		Quantity:  60, UnconstrainedQuantity: 51.5, ReorderPoint: 40, OrderUpTo: 90, InventoryPosition: 38.5, OnHand: 38.5,
		Policy:               &replenishmentv1.Policy{Location: "online", ServiceLevel: 0.95, LeadTimeDays: 7, Moq: 20, PackSize: 12, MaxOrder: 120, OrderCoverDays: 14},
		ProjectedStockoutDay: "2011-03-05", ExpectedArrivalDay: "2011-03-08", Status: proposed, DecisionSeq: 1,
	}
}

func withStatus(p *replenishmentv1.Proposal, st replenishmentv1.ProposalStatus, qty float64, by, note string) *replenishmentv1.Proposal {
	out := proto.Clone(p).(*replenishmentv1.Proposal)
	out.Status, out.ApprovedQuantity, out.DecidedBy, out.StatusNote = st, qty, by, note
	out.StatusChangedAt = timestamppb.New(clock)
	return out
}

func user(name string) context.Context {
	return metadata.NewIncomingContext(context.Background(), metadata.Pairs(UserMetadata, name))
}

func qty(x float64) *float64 { return &x }

// statusEvents reads replenishment.v1 until n records arrived, then makes
// sure no more come in a short extra poll.
func statusEvents(t *testing.T, brokers []string, n int) []*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.ConsumeTopics(topics.Proposals),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var recs []*kgo.Record
	testenv.Eventually(t, 30*time.Second, "status events", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		recs = append(recs, cl.PollFetches(ctx).Records()...)
		return len(recs) >= n
	})
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	recs = append(recs, cl.PollFetches(ctx).Records()...)
	if len(recs) != n {
		t.Fatalf("%d records on %s, want %d", len(recs), topics.Proposals, n)
	}
	return recs
}

func TestApproveReject(t *testing.T) {
	ctx := context.Background()
	brokers := testenv.Kafka(t)
	if err := kafkax.EnsureTopics(ctx, kafkax.Config{Brokers: brokers}, topics.Proposals); err != nil {
		t.Fatal(err)
	}
	srv, proposals, _ := newServerWith(t, brokers, nil)
	p1, p2, p3 := reviewProposal("p1", 1), reviewProposal("p2", 2), reviewProposal("p3", 3)
	if err := proposals.Save(ctx, []*replenishmentv1.Proposal{p1, p2, p3}); err != nil {
		t.Fatal(err)
	}

	invalid := []struct {
		name     string
		ctx      context.Context
		req      *replenishmentv1.ApproveRequest
		code     codes.Code
		contains string
	}{
		{"below moq", user("alice"), &replenishmentv1.ApproveRequest{ProposalId: "p1", Quantity: qty(12)}, codes.InvalidArgument, "quantity 12 is below the moq 20"},
		{"above max order", user("alice"), &replenishmentv1.ApproveRequest{ProposalId: "p1", Quantity: qty(132)}, codes.InvalidArgument, "quantity 132 is above the max_order 120"},
		{"not a pack multiple", user("alice"), &replenishmentv1.ApproveRequest{ProposalId: "p1", Quantity: qty(30)}, codes.InvalidArgument, "quantity 30 is not a multiple of the pack_size 12"},
		{"zero", user("alice"), &replenishmentv1.ApproveRequest{ProposalId: "p1", Quantity: qty(0)}, codes.InvalidArgument, "quantity 0: must be > 0"},
		{"nobody", context.Background(), &replenishmentv1.ApproveRequest{ProposalId: "p1"}, codes.InvalidArgument, "decided_by is required"},
		{"no id", user("alice"), &replenishmentv1.ApproveRequest{}, codes.InvalidArgument, "proposal_id is required"},
		{"unknown", user("alice"), &replenishmentv1.ApproveRequest{ProposalId: "p9"}, codes.NotFound, `proposal "p9"`},
	}
	for _, tt := range invalid {
		t.Run(tt.name, func(t *testing.T) {
			_, err := srv.Approve(tt.ctx, tt.req)
			if status.Code(err) != tt.code || !strings.Contains(status.Convert(err).Message(), tt.contains) {
				t.Fatalf("Approve: %v, want %v containing %q", err, tt.code, tt.contains)
			}
		})
	}

	// alice (metadata) approves p1 adjusted to 72 = 6 packs.
	wantP1 := withStatus(p1, approved, 72, "alice", "promo next week")
	resp, err := srv.Approve(user("alice"), &replenishmentv1.ApproveRequest{ProposalId: "p1", Quantity: qty(72), Note: "promo next week"})
	if err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(resp.GetProposal(), wantP1) {
		t.Fatalf("Approve =\n%v\nwant\n%v", resp.GetProposal(), wantP1)
	}
	// The same approval again, by anyone, without or with the same quantity: the first result.
	for _, req := range []*replenishmentv1.ApproveRequest{{ProposalId: "p1"}, {ProposalId: "p1", Quantity: qty(72), DecidedBy: "bob"}} {
		resp, err := srv.Approve(user("bob"), req)
		if err != nil || !proto.Equal(resp.GetProposal(), wantP1) {
			t.Fatalf("approve again %v: %v %v, want %v", req, resp, err, wantP1)
		}
	}
	if _, err := srv.Approve(user("bob"), &replenishmentv1.ApproveRequest{ProposalId: "p1", Quantity: qty(84)}); status.Code(err) != codes.FailedPrecondition ||
		!strings.Contains(err.Error(), "already approved by alice with quantity 72") {
		t.Fatalf("approve with another quantity: %v, want FailedPrecondition", err)
	}
	if _, err := srv.Reject(user("bob"), &replenishmentv1.RejectRequest{ProposalId: "p1"}); status.Code(err) != codes.FailedPrecondition ||
		!strings.Contains(err.Error(), "already approved by alice") {
		t.Fatalf("reject an approved proposal: %v, want FailedPrecondition", err)
	}

	// carol (field, wins over metadata) rejects p2; approving it later fails.
	wantP2 := withStatus(p2, rejected, 0, "carol", "overstock")
	rresp, err := srv.Reject(user("mallory"), &replenishmentv1.RejectRequest{ProposalId: "p2", DecidedBy: "carol", Note: "overstock"})
	if err != nil || !proto.Equal(rresp.GetProposal(), wantP2) {
		t.Fatalf("Reject = %v %v, want %v", rresp, err, wantP2)
	}
	if rresp, err := srv.Reject(user("dave"), &replenishmentv1.RejectRequest{ProposalId: "p2"}); err != nil || !proto.Equal(rresp.GetProposal(), wantP2) {
		t.Fatalf("reject again: %v %v", rresp, err)
	}
	if _, err := srv.Approve(user("dave"), &replenishmentv1.ApproveRequest{ProposalId: "p2"}); status.Code(err) != codes.FailedPrecondition ||
		!strings.Contains(err.Error(), "already rejected by carol") {
		t.Fatalf("approve a rejected proposal: %v, want FailedPrecondition", err)
	}

	// ListProposals shows the current status and filters by it.
	lists := []struct {
		status replenishmentv1.ProposalStatus
		want   []*replenishmentv1.Proposal
	}{
		{replenishmentv1.ProposalStatus_PROPOSAL_STATUS_UNSPECIFIED, []*replenishmentv1.Proposal{p3, wantP2, wantP1}},
		{proposed, []*replenishmentv1.Proposal{p3}},
		{approved, []*replenishmentv1.Proposal{wantP1}},
		{rejected, []*replenishmentv1.Proposal{wantP2}},
	}
	for _, l := range lists {
		got, err := srv.ListProposals(ctx, &replenishmentv1.ListProposalsRequest{Status: l.status, Sku: "A", Location: "online"})
		if err != nil {
			t.Fatal(err)
		}
		if len(got.GetProposals()) != len(l.want) {
			t.Fatalf("status %v: %d proposals, want %d: %v", l.status, len(got.GetProposals()), len(l.want), got)
		}
		for i := range l.want {
			if !proto.Equal(got.GetProposals()[i], l.want[i]) {
				t.Errorf("status %v #%d:\n got %v\nwant %v", l.status, i, got.GetProposals()[i], l.want[i])
			}
		}
	}

	// Exactly one status event per decision, keyed by series, with its id header.
	recs := statusEvents(t, brokers, 2)
	byID := map[string]*replenishmentv1.Proposal{}
	for _, r := range recs {
		var p replenishmentv1.Proposal
		if err := proto.Unmarshal(r.Value, &p); err != nil {
			t.Fatal(err)
		}
		if string(r.Key) != "A|online" || kafkax.HeaderValue(r, topics.HeaderEventID) != consumer.StatusEventID(&p) {
			t.Errorf("record key %q header %q", r.Key, kafkax.HeaderValue(r, topics.HeaderEventID))
		}
		byID[p.GetProposalId()] = &p
	}
	if !proto.Equal(byID["p1"], wantP1) || !proto.Equal(byID["p2"], wantP2) {
		t.Fatalf("status events %v, want p1 approved and p2 rejected", byID)
	}
}

// TestConcurrentDecisions races approvals and rejections of one proposal:
// one decision wins, every caller agrees with it, one event is published.
func TestConcurrentDecisions(t *testing.T) {
	ctx := context.Background()
	brokers := testenv.Kafka(t)
	if err := kafkax.EnsureTopics(ctx, kafkax.Config{Brokers: brokers}, topics.Proposals); err != nil {
		t.Fatal(err)
	}
	srv, proposals, _ := newServerWith(t, brokers, nil)
	if err := proposals.Save(ctx, []*replenishmentv1.Proposal{reviewProposal("p1", 1)}); err != nil {
		t.Fatal(err)
	}
	const n = 8
	results := make([]*replenishmentv1.Proposal, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if i%2 == 0 {
				r, err := srv.Approve(user("u"+string(rune('0'+i))), &replenishmentv1.ApproveRequest{ProposalId: "p1"})
				results[i], errs[i] = r.GetProposal(), err
			} else {
				r, err := srv.Reject(user("u"+string(rune('0'+i))), &replenishmentv1.RejectRequest{ProposalId: "p1"})
				results[i], errs[i] = r.GetProposal(), err
			}
		}()
	}
	wg.Wait()
	var winner *replenishmentv1.Proposal
	for i := range n {
		if errs[i] == nil {
			if winner == nil {
				winner = results[i]
			} else if !proto.Equal(winner, results[i]) {
				t.Fatalf("two results: %v and %v", winner, results[i])
			}
		}
	}
	if winner == nil {
		t.Fatal("no call succeeded")
	}
	for i := range n {
		wantOK := (i%2 == 0) == (winner.GetStatus() == approved)
		if wantOK != (errs[i] == nil) || (errs[i] != nil && status.Code(errs[i]) != codes.FailedPrecondition) {
			t.Errorf("call %d: %v (winner %v by %s)", i, errs[i], winner.GetStatus(), winner.GetDecidedBy())
		}
	}
	recs := statusEvents(t, brokers, 1)
	var p replenishmentv1.Proposal
	if err := proto.Unmarshal(recs[0].Value, &p); err != nil || !proto.Equal(&p, winner) {
		t.Fatalf("event %v (%v), want %v", &p, err, winner)
	}
}

// failOnce fails the first publish, as a broker outage after the decision
// was claimed would.
type failOnce struct {
	planning.StatusPublisher
	calls atomic.Int32
}

func (f *failOnce) PublishStatus(ctx context.Context, p *replenishmentv1.Proposal) error {
	if f.calls.Add(1) == 1 {
		return errors.New("broker unavailable")
	}
	return f.StatusPublisher.PublishStatus(ctx, p)
}

// TestDecisionCompletedByRetry: a call that failed after claiming the
// decision is completed by its retry, which keeps the claimed decision.
func TestDecisionCompletedByRetry(t *testing.T) {
	ctx := context.Background()
	brokers := testenv.Kafka(t)
	if err := kafkax.EnsureTopics(ctx, kafkax.Config{Brokers: brokers}, topics.Proposals); err != nil {
		t.Fatal(err)
	}
	srv, proposals, _ := newServerWith(t, brokers, func(p planning.StatusPublisher) planning.StatusPublisher {
		return &failOnce{StatusPublisher: p}
	})
	p1 := reviewProposal("p1", 1)
	if err := proposals.Save(ctx, []*replenishmentv1.Proposal{p1}); err != nil {
		t.Fatal(err)
	}
	if _, err := srv.Approve(user("alice"), &replenishmentv1.ApproveRequest{ProposalId: "p1", Quantity: qty(96)}); status.Code(err) != codes.Unavailable {
		t.Fatalf("first approve: %v, want Unavailable", err)
	}
	// Another user's rejection now loses to the claimed approval.
	if _, err := srv.Reject(user("bob"), &replenishmentv1.RejectRequest{ProposalId: "p1"}); status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("reject after the claimed approval: %v, want FailedPrecondition", err)
	}
	want := withStatus(p1, approved, 96, "alice", "")
	resp, err := srv.Approve(user("alice"), &replenishmentv1.ApproveRequest{ProposalId: "p1", Quantity: qty(96)})
	if err != nil || !proto.Equal(resp.GetProposal(), want) {
		t.Fatalf("retry: %v %v, want %v", resp, err, want)
	}
	recs := statusEvents(t, brokers, 1)
	var p replenishmentv1.Proposal
	if err := proto.Unmarshal(recs[0].Value, &p); err != nil || !proto.Equal(&p, want) {
		t.Fatalf("event %v (%v), want %v", &p, err, want)
	}
}
