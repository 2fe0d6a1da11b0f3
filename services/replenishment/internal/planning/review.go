package planning

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
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
	// SaveStatus records a proposal's status change (idempotent).
	SaveStatus(ctx context.Context, p *replenishmentv1.Proposal) error
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
		want = recorded(p)
	} else if adjusted != nil {
		if err := ValidateOrderQuantity(*adjusted, policyOf(p)); err != nil {
			return nil, err
		}
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
