// Package grpcapi serves ReplenishmentService: policies and proposals.
// Domain errors become gRPC codes here and nowhere else.
package grpcapi

import (
	"context"
	"errors"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	replenishmentv1 "github.com/stockcast/stockcast/proto/stockcast/replenishment/v1"

	"github.com/stockcast/stockcast/pkg/replenish"
	"github.com/stockcast/stockcast/services/replenishment/internal/planning"
	"github.com/stockcast/stockcast/services/replenishment/internal/store"
)

// MaxApproveBatch bounds the approvals of one ApproveBatch call.
const MaxApproveBatch = 1000

// Page sizes of ListProposals.
const (
	DefaultPageSize = 100
	MaxPageSize     = 1000
)

// Policies reads and changes policies.
type Policies interface {
	Effective(ctx context.Context, scope planning.Scope) (planning.EffectivePolicy, error)
	EffectiveIn(ctx context.Context, scopes []planning.Scope, categories map[planning.Scope]string) (map[planning.Scope]planning.EffectivePolicy, error)
	Set(ctx context.Context, scope planning.Scope, p replenish.ServicePolicy) error
}

// Proposals lists proposals.
type Proposals interface {
	List(ctx context.Context, f store.Filter, pageSize int, pageToken string) ([]*replenishmentv1.Proposal, string, error)
}

// Reviewer approves and rejects proposals.
type Reviewer interface {
	Approve(ctx context.Context, id string, adjusted *float64, by, note string) (*replenishmentv1.Proposal, error)
	ApproveBatch(ctx context.Context, items []planning.ApproveItem) ([]planning.ApproveResult, error)
	Reject(ctx context.Context, id, by, note string) (*replenishmentv1.Proposal, error)
}

// Series inspects and re-evaluates series.
type Series interface {
	// Reevaluate decides the series of a scope again after its policy changed.
	Reevaluate(ctx context.Context, series planning.Scope) ([]*replenishmentv1.Proposal, error)
	Inspect(ctx context.Context, series planning.Scope) (*replenishmentv1.GetSeriesStateResponse, error)
}

// UserMetadata is the gRPC metadata key naming the user when a request's
// decided_by is empty (the console sets it).
const UserMetadata = "stockcast-user"

// Server implements replenishmentv1.ReplenishmentServiceServer.
type Server struct {
	replenishmentv1.UnimplementedReplenishmentServiceServer
	policies  Policies
	proposals Proposals
	reviewer  Reviewer
	series    Series
}

var _ replenishmentv1.ReplenishmentServiceServer = (*Server)(nil)

// NewServer returns the service.
func NewServer(policies Policies, proposals Proposals, reviewer Reviewer, series Series) *Server {
	return &Server{policies: policies, proposals: proposals, reviewer: reviewer, series: series}
}

// GetSeriesState inspects a series.
func (s *Server) GetSeriesState(ctx context.Context, req *replenishmentv1.GetSeriesStateRequest) (*replenishmentv1.GetSeriesStateResponse, error) {
	scope := planning.Scope{SKU: req.GetSku(), Location: req.GetLocation()}
	if scope.SKU == "" || scope.Location == "" {
		return nil, status.Error(codes.InvalidArgument, "sku and location are required")
	}
	if err := scope.Validate(); err != nil {
		return nil, toStatus(err)
	}
	r, err := s.series.Inspect(ctx, scope)
	if err != nil {
		return nil, toStatus(err)
	}
	return r, nil
}

// Approve approves a proposal, optionally with an adjusted quantity.
func (s *Server) Approve(ctx context.Context, req *replenishmentv1.ApproveRequest) (*replenishmentv1.ApproveResponse, error) {
	p, err := s.reviewer.Approve(ctx, req.GetProposalId(), req.Quantity, decidedBy(ctx, req.GetDecidedBy()), req.GetNote())
	if err != nil {
		return nil, toStatus(err)
	}
	return &replenishmentv1.ApproveResponse{Proposal: p}, nil
}

// ApproveBatch approves many proposals, each as Approve would; single
// approvals' errors are in their results.
func (s *Server) ApproveBatch(ctx context.Context, req *replenishmentv1.ApproveBatchRequest) (*replenishmentv1.ApproveBatchResponse, error) {
	reqs := req.GetApprovals()
	switch {
	case len(reqs) == 0:
		return nil, status.Error(codes.InvalidArgument, "approvals: none given")
	case len(reqs) > MaxApproveBatch:
		return nil, status.Errorf(codes.InvalidArgument, "approvals: %d, at most %d in one call", len(reqs), MaxApproveBatch)
	}
	items := make([]planning.ApproveItem, len(reqs))
	for i, r := range reqs {
		items[i] = planning.ApproveItem{ID: r.GetProposalId(), Adjusted: r.Quantity, By: decidedBy(ctx, r.GetDecidedBy()), Note: r.GetNote()}
	}
	results, err := s.reviewer.ApproveBatch(ctx, items)
	if err != nil {
		return nil, toStatus(err)
	}
	resp := &replenishmentv1.ApproveBatchResponse{Results: make([]*replenishmentv1.ApproveResult, len(results))}
	for i, r := range results {
		out := &replenishmentv1.ApproveResult{ProposalId: items[i].ID, Proposal: r.Proposal}
		if r.Err != nil {
			st := status.Convert(toStatus(r.Err))
			out.Proposal, out.Code, out.Message = nil, int32(st.Code()), st.Message()
		}
		resp.Results[i] = out
	}
	return resp, nil
}

// Reject rejects a proposal.
func (s *Server) Reject(ctx context.Context, req *replenishmentv1.RejectRequest) (*replenishmentv1.RejectResponse, error) {
	p, err := s.reviewer.Reject(ctx, req.GetProposalId(), decidedBy(ctx, req.GetDecidedBy()), req.GetNote())
	if err != nil {
		return nil, toStatus(err)
	}
	return &replenishmentv1.RejectResponse{Proposal: p}, nil
}

// decidedBy is the request's field, else the stockcast-user metadata.
func decidedBy(ctx context.Context, field string) string {
	if field != "" {
		return field
	}
	md, _ := metadata.FromIncomingContext(ctx)
	if v := md.Get(UserMetadata); len(v) > 0 {
		return v[0]
	}
	return ""
}

// GetPolicy returns the policy in force for a series (or a location, or
// globally) and where it came from. The returned policy names the scope it
// is stored under, so it can be sent back to SetPolicy unchanged.
func (s *Server) GetPolicy(ctx context.Context, req *replenishmentv1.GetPolicyRequest) (*replenishmentv1.GetPolicyResponse, error) {
	scope := planning.Scope{SKU: req.GetSku(), Location: req.GetLocation()}
	if err := scope.Validate(); err != nil {
		return nil, toStatus(err)
	}
	var st *replenishmentv1.GetSeriesStateResponse
	if scope.SKU != "" {
		var err error
		st, err = s.series.Inspect(ctx, scope)
		if err != nil && !errors.Is(err, planning.ErrNotFound) {
			return nil, toStatus(err)
		}
	}
	all, err := s.policies.EffectiveIn(ctx, []planning.Scope{scope}, map[planning.Scope]string{scope: st.GetCategory()})
	if err != nil {
		return nil, toStatus(err)
	}
	eff := all[scope]
	return &replenishmentv1.GetPolicyResponse{
		Policy:          planning.PolicyToProto(eff.From, eff.ServicePolicy),
		Source:          string(eff.Source),
		LearnedLeadTime: st.GetLeadTime(),
		LeadTimeLearned: st.GetLeadTimeLearned(),
	}, nil
}

// SetPolicy validates and stores a policy; the next event of each series it
// covers decides with it.
func (s *Server) SetPolicy(ctx context.Context, req *replenishmentv1.SetPolicyRequest) (*replenishmentv1.SetPolicyResponse, error) {
	if req.GetPolicy() == nil {
		return nil, status.Error(codes.InvalidArgument, "policy is required")
	}
	scope, pol := planning.PolicyFromProto(req.GetPolicy())
	if err := s.policies.Set(ctx, scope, pol); err != nil {
		return nil, toStatus(err)
	}
	resp := &replenishmentv1.SetPolicyResponse{Policy: planning.PolicyToProto(scope, pol)}
	// The series the policy governs are decided again at once: the series,
	// or every series of the location (all series for the global scope)
	// whose policy in force is this one.
	props, err := s.series.Reevaluate(ctx, scope)
	if err != nil {
		return nil, toStatus(err)
	}
	resp.Proposals = props
	return resp, nil
}

// ListProposals lists proposals newest first, filtered and paged.
func (s *Server) ListProposals(ctx context.Context, req *replenishmentv1.ListProposalsRequest) (*replenishmentv1.ListProposalsResponse, error) {
	size := int(req.GetPageSize())
	switch {
	case size < 0:
		return nil, status.Errorf(codes.InvalidArgument, "page_size %d: must not be negative", size)
	case size == 0:
		size = DefaultPageSize
	case size > MaxPageSize:
		size = MaxPageSize
	}
	filter := store.Filter{SKU: req.GetSku(), Location: req.GetLocation(), Status: req.GetStatus()}
	props, next, err := s.proposals.List(ctx, filter, size, req.GetPageToken())
	if err != nil {
		return nil, toStatus(err)
	}
	return &replenishmentv1.ListProposalsResponse{Proposals: props, NextPageToken: next}, nil
}

func toStatus(err error) error {
	switch {
	case errors.Is(err, planning.ErrInvalidArgument), errors.Is(err, store.ErrInvalidPageToken):
		return status.Error(codes.InvalidArgument, err.Error())
	case errors.Is(err, planning.ErrNotFound):
		return status.Error(codes.NotFound, err.Error())
	case errors.Is(err, planning.ErrFailedPrecondition):
		return status.Error(codes.FailedPrecondition, err.Error())
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, err.Error())
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, err.Error())
	default:
		// A store is down or failing: the caller may retry.
		return status.Error(codes.Unavailable, err.Error())
	}
}
