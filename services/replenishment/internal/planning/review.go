package planning

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	replenishmentv1 "github.com/stockcast/stockcast/proto/stockcast/replenishment/v1"

	"github.com/stockcast/stockcast/pkg/replenish"
)

// Review errors, mapped to gRPC codes by grpcapi.
var (
	ErrNotFound           = errors.New("not found")
	ErrFailedPrecondition = errors.New("failed precondition")
)

// Decision is an approval or rejection of a proposal. A proposal gets at
// most one: the first one claimed wins and is final.
type Decision struct {
	Status replenishmentv1.ProposalStatus
	// Approved units; 0 for a rejection.
	Quantity float64
	By       string
	Note     string
	At       time.Time
	// The status change is in the proposal store and on replenishment.v1.
	Done bool
}

// ProposalStatusStore reads proposals and records their status changes.
type ProposalStatusStore interface {
	// Get returns the proposal with its current status, or ErrNotFound.
	Get(ctx context.Context, id string) (*replenishmentv1.Proposal, error)
	// GetMany returns the proposals of ids with their current status, by
	// id; unknown ids are absent.
	GetMany(ctx context.Context, ids []string) (map[string]*replenishmentv1.Proposal, error)
	// SaveStatus records a proposal's status change (idempotent).
	SaveStatus(ctx context.Context, p *replenishmentv1.Proposal) error
	// SaveStatuses records many status changes at once (idempotent).
	SaveStatuses(ctx context.Context, props []*replenishmentv1.Proposal) error
}

// DecisionStore is the arbiter of decisions: Claim stores d for the
// proposal unless it has one, and returns the decision in force.
type DecisionStore interface {
	Claim(ctx context.Context, proposalID string, d Decision) (Decision, error)
	// Lease gives one caller at a time the right to complete a decision
	// (store and publish it), for ttl or until MarkDone or Release.
	Lease(ctx context.Context, proposalID string, ttl time.Duration) (bool, error)
	Release(ctx context.Context, proposalID string) error
	// MarkDone records the decision as stored and published, and releases
	// the lease.
	MarkDone(ctx context.Context, proposalID string) error
}

// completionLease bounds how long a crashed caller holds up a decision's
// completion; completionPoll is how often the others look again.
const (
	completionLease = 30 * time.Second
	completionPoll  = 20 * time.Millisecond
)

// StatusPublisher publishes a status change on replenishment.v1.
type StatusPublisher interface {
	PublishStatus(ctx context.Context, p *replenishmentv1.Proposal) error
}

// Reviewer approves and rejects proposals: Redis decides who was first
// (Claim), ClickHouse keeps the status for listing, and the change is
// published. A call that fails after the claim is completed by its retry.
type Reviewer struct {
	proposals ProposalStatusStore
	decisions DecisionStore
	publisher StatusPublisher
	now       func() time.Time
}

// NewReviewer returns a reviewer; now is the clock of status_changed_at.
func NewReviewer(proposals ProposalStatusStore, decisions DecisionStore, publisher StatusPublisher, now func() time.Time) *Reviewer {
	return &Reviewer{proposals: proposals, decisions: decisions, publisher: publisher, now: now}
}

// Approve approves a proposal, with its proposed quantity when adjusted is
// nil.
func (r *Reviewer) Approve(ctx context.Context, id string, adjusted *float64, by, note string) (*replenishmentv1.Proposal, error) {
	return r.decide(ctx, id, replenishmentv1.ProposalStatus_PROPOSAL_STATUS_APPROVED, adjusted, by, note)
}

// Reject rejects a proposal.
func (r *Reviewer) Reject(ctx context.Context, id, by, note string) (*replenishmentv1.Proposal, error) {
	return r.decide(ctx, id, replenishmentv1.ProposalStatus_PROPOSAL_STATUS_REJECTED, nil, by, note)
}

func (r *Reviewer) decide(ctx context.Context, id string, st replenishmentv1.ProposalStatus, adjusted *float64, by, note string) (*replenishmentv1.Proposal, error) {
	if id == "" {
		return nil, fmt.Errorf("%w: proposal_id is required", ErrInvalidArgument)
	}
	if strings.TrimSpace(by) == "" {
		return nil, fmt.Errorf("%w: decided_by is required (the field, or the gRPC metadata stockcast-user)", ErrInvalidArgument)
	}
	p, err := r.proposals.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	want, err := r.wanted(p, st, adjusted, by, note)
	if err != nil {
		return nil, err
	}
	got, err := r.decisions.Claim(ctx, id, want)
	if err != nil {
		return nil, err
	}
	if err := compatible(got, st, adjusted); err != nil {
		return nil, err
	}
	// Claimed now, or by a concurrent call, or by a call that failed
	// before finishing: one caller at a time completes it, the others
	// wait for it (polling, until their deadline).
	for !got.Done {
		ok, err := r.decisions.Lease(ctx, id, completionLease)
		if err != nil {
			return nil, err
		}
		if ok {
			// The previous holder may have finished between our Claim and
			// our Lease (MarkDone frees the lease): look again, or the
			// decision would be published twice.
			if got, err = r.decisions.Claim(ctx, id, want); err != nil {
				_ = r.decisions.Release(context.WithoutCancel(ctx), id)
				return nil, err
			}
			if got.Done {
				if err := r.decisions.Release(ctx, id); err != nil {
					return nil, err
				}
				break
			}
			if err := r.complete(ctx, withDecision(p, got)); err != nil {
				_ = r.decisions.Release(context.WithoutCancel(ctx), id)
				return nil, err
			}
			break
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(completionPoll):
		}
		if got, err = r.decisions.Claim(ctx, id, want); err != nil {
			return nil, err
		}
	}
	return withDecision(p, got), nil
}

// wanted is the decision a call asks for on p: the stored one when p is
// decided already.
func (r *Reviewer) wanted(p *replenishmentv1.Proposal, st replenishmentv1.ProposalStatus, adjusted *float64, by, note string) (Decision, error) {
	want := Decision{Status: st, By: by, Note: note, At: r.now().UTC()}
	if st == replenishmentv1.ProposalStatus_PROPOSAL_STATUS_APPROVED {
		want.Quantity = p.GetQuantity()
		if adjusted != nil {
			want.Quantity = *adjusted
		}
	}
	if p.GetStatus() != replenishmentv1.ProposalStatus_PROPOSAL_STATUS_PROPOSED {
		// Decided already: the stored decision is the one to claim (it is
		// in Redis too unless Redis lost it).
		return recorded(p), nil
	}
	if adjusted != nil {
		if err := ValidateOrderQuantity(*adjusted, policyOf(p)); err != nil {
			return Decision{}, err
		}
	}
	return want, nil
}

// ApproveItem is one approval of a batch, as the arguments of Approve.
type ApproveItem struct {
	ID       string
	Adjusted *float64
	By, Note string
}

// ApproveResult is the outcome of an ApproveItem: what Approve would have
// returned.
type ApproveResult struct {
	Proposal *replenishmentv1.Proposal
	Err      error
}

// publishParallel bounds the status publishes of a batch in flight.
const publishParallel = 16

// ApproveBatch approves many proposals, each with the rules and the outcome
// of Approve, but with one proposal lookup and one status insert for the
// batch (Approve makes one of each per proposal). The error is for the
// whole batch (the proposal store failed); the results, in item order, hold
// the single approvals' errors. A proposal another call is completing at the
// same time is left to Approve's wait for it.
func (r *Reviewer) ApproveBatch(ctx context.Context, items []ApproveItem) ([]ApproveResult, error) {
	approved := replenishmentv1.ProposalStatus_PROPOSAL_STATUS_APPROVED
	results := make([]ApproveResult, len(items))
	seen := make(map[string]bool, len(items))
	ids := make([]string, 0, len(items))
	for i, it := range items {
		switch {
		case it.ID == "":
			results[i].Err = fmt.Errorf("%w: proposal_id is required", ErrInvalidArgument)
		case strings.TrimSpace(it.By) == "":
			results[i].Err = fmt.Errorf("%w: decided_by is required (the field, or the gRPC metadata stockcast-user)", ErrInvalidArgument)
		case seen[it.ID]:
			results[i].Err = fmt.Errorf("%w: proposal %q is in the batch twice", ErrInvalidArgument, it.ID)
		default:
			seen[it.ID] = true
			ids = append(ids, it.ID)
		}
	}
	props, err := r.proposals.GetMany(ctx, ids)
	if err != nil {
		return nil, err
	}
	// Claim each; the ones this call completes go into one insert.
	var complete []int // item indexes
	var waits []int
	for i, it := range items {
		if results[i].Err != nil {
			continue
		}
		p, ok := props[it.ID]
		if !ok {
			results[i].Err = fmt.Errorf("%w: proposal %q", ErrNotFound, it.ID)
			continue
		}
		got, lease, err := r.claimForBatch(ctx, p, it)
		switch {
		case err != nil:
			results[i].Err = err
		case got.Done:
			results[i].Proposal = withDecision(p, got)
		case lease:
			results[i].Proposal = withDecision(p, got)
			complete = append(complete, i)
		default:
			waits = append(waits, i)
		}
	}
	if len(complete) > 0 {
		r.completeBatch(ctx, items, results, complete)
	}
	for _, i := range waits {
		it := items[i]
		results[i].Proposal, results[i].Err = r.decide(ctx, it.ID, approved, it.Adjusted, it.By, it.Note)
	}
	return results, nil
}

// claimForBatch claims an approval of p and, when the decision still needs
// completing, tries to take its lease: lease says this call completes it.
func (r *Reviewer) claimForBatch(ctx context.Context, p *replenishmentv1.Proposal, it ApproveItem) (Decision, bool, error) {
	approved := replenishmentv1.ProposalStatus_PROPOSAL_STATUS_APPROVED
	want, err := r.wanted(p, approved, it.Adjusted, it.By, it.Note)
	if err != nil {
		return Decision{}, false, err
	}
	got, err := r.decisions.Claim(ctx, it.ID, want)
	if err != nil {
		return Decision{}, false, err
	}
	if err := compatible(got, approved, it.Adjusted); err != nil {
		return Decision{}, false, err
	}
	if got.Done {
		return got, false, nil
	}
	ok, err := r.decisions.Lease(ctx, it.ID, completionLease)
	if err != nil || !ok {
		return got, false, err
	}
	// As in decide: the previous holder may have finished in between.
	if got, err = r.decisions.Claim(ctx, it.ID, want); err != nil {
		_ = r.decisions.Release(context.WithoutCancel(ctx), it.ID)
		return Decision{}, false, err
	}
	if got.Done {
		return got, false, r.decisions.Release(ctx, it.ID)
	}
	return got, true, nil
}

// completeBatch stores the claimed decisions of items[complete] in one
// insert, publishes each and marks it done; a failure frees the lease and
// goes into the item's result (its retry completes it).
func (r *Reviewer) completeBatch(ctx context.Context, items []ApproveItem, results []ApproveResult, complete []int) {
	fail := func(i int, err error) {
		_ = r.decisions.Release(context.WithoutCancel(ctx), items[i].ID)
		results[i] = ApproveResult{Err: err}
	}
	props := make([]*replenishmentv1.Proposal, len(complete))
	for k, i := range complete {
		props[k] = results[i].Proposal
	}
	if err := r.proposals.SaveStatuses(ctx, props); err != nil {
		for _, i := range complete {
			fail(i, err)
		}
		return
	}
	var wg sync.WaitGroup
	sem := make(chan struct{}, publishParallel)
	for _, i := range complete {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			if err := r.publisher.PublishStatus(ctx, results[i].Proposal); err != nil {
				fail(i, err)
				return
			}
			if err := r.decisions.MarkDone(ctx, items[i].ID); err != nil {
				fail(i, err)
			}
		}()
	}
	wg.Wait()
}

// complete stores and publishes a claimed decision.
func (r *Reviewer) complete(ctx context.Context, p *replenishmentv1.Proposal) error {
	if err := r.proposals.SaveStatus(ctx, p); err != nil {
		return err
	}
	if err := r.publisher.PublishStatus(ctx, p); err != nil {
		return err
	}
	return r.decisions.MarkDone(ctx, p.GetProposalId())
}

// compatible accepts a repeated request: same status and, for an approval
// with a quantity, the same quantity.
func compatible(d Decision, st replenishmentv1.ProposalStatus, adjusted *float64) error {
	if d.Status != st {
		return fmt.Errorf("%w: proposal is already %s by %s", ErrFailedPrecondition, statusWord(d.Status), d.By)
	}
	if adjusted != nil && *adjusted != d.Quantity {
		return fmt.Errorf("%w: proposal is already approved by %s with quantity %v", ErrFailedPrecondition, d.By, d.Quantity)
	}
	return nil
}

func statusWord(s replenishmentv1.ProposalStatus) string {
	return strings.ToLower(strings.TrimPrefix(s.String(), "PROPOSAL_STATUS_"))
}

// recorded reads the decision a stored proposal carries.
func recorded(p *replenishmentv1.Proposal) Decision {
	return Decision{Status: p.GetStatus(), Quantity: p.GetApprovedQuantity(), By: p.GetDecidedBy(),
		Note: p.GetStatusNote(), At: p.GetStatusChangedAt().AsTime()}
}

// withDecision is the proposal with a decision applied.
func withDecision(p *replenishmentv1.Proposal, d Decision) *replenishmentv1.Proposal {
	out := proto.Clone(p).(*replenishmentv1.Proposal)
	out.Status = d.Status
	out.ApprovedQuantity = d.Quantity
	out.DecidedBy = d.By
	out.StatusNote = d.Note
	out.StatusChangedAt = timestamppb.New(d.At)
	return out
}

func policyOf(p *replenishmentv1.Proposal) replenish.Policy {
	_, pol := PolicyFromProto(p.GetPolicy())
	return pol.Policy
}

// ValidateOrderQuantity checks an order quantity against a policy's supplier
// constraints, with the rule pkg/replenish's OrderQuantity follows: at least
// the moq, at most the max order (when > 0), and a multiple of the pack size
// unless it is exactly the moq or the max order (those win over the pack).
// The error names the rule.
func ValidateOrderQuantity(q float64, p replenish.Policy) error {
	switch {
	case math.IsNaN(q) || math.IsInf(q, 0) || q <= 0:
		return fmt.Errorf("%w: quantity %v: must be > 0 (reject the proposal to order nothing)", ErrInvalidArgument, q)
	case p.MOQ > 0 && q < p.MOQ:
		return fmt.Errorf("%w: quantity %v is below the moq %v", ErrInvalidArgument, q, p.MOQ)
	case p.MaxOrder > 0 && q > p.MaxOrder:
		return fmt.Errorf("%w: quantity %v is above the max_order %v", ErrInvalidArgument, q, p.MaxOrder)
	case p.PackSize > 0 && !multipleOf(q, p.PackSize) && q != p.MOQ && q != p.MaxOrder:
		return fmt.Errorf("%w: quantity %v is not a multiple of the pack_size %v", ErrInvalidArgument, q, p.PackSize)
	}
	return nil
}

// multipleOf allows for the float error of q = k * pack.
func multipleOf(q, pack float64) bool {
	k := math.Round(q / pack)
	return k >= 1 && math.Abs(q-k*pack) <= 1e-9*math.Max(1, q)
}
