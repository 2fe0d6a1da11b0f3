package store

import (
	"context"
	"errors"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	replenishmentv1 "github.com/stockcast/stockcast/proto/stockcast/replenishment/v1"

	"github.com/stockcast/stockcast/pkg/chx"
	"github.com/stockcast/stockcast/pkg/testenv"
	"github.com/stockcast/stockcast/services/replenishment/internal/planning"
)

func newProposals(t testing.TB) (*Proposals, chx.Config) {
	t.Helper()
	ctx := context.Background()
	cfg := testenv.ClickHouse(t)
	// Dropping a table of hundreds of parts being merged takes longer than
	// testenv's 30 s read timeout on a busy machine: drop it here first.
	cfg.ReadTimeout = 5 * time.Minute
	conn, err := chx.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// Merges of the many small parts a benchmark leaves hold the drop up.
		_ = conn.Exec(context.Background(), "SYSTEM STOP MERGES proposals")
		if err := conn.Exec(context.Background(), "DROP TABLE IF EXISTS proposals"); err != nil {
			t.Errorf("drop proposals: %v", err)
		}
		_ = conn.Close()
	})
	if err := MigrateProposals(ctx, conn); err != nil {
		t.Fatal(err)
	}
	return NewProposals(conn), cfg
}

func decided(p *replenishmentv1.Proposal, st replenishmentv1.ProposalStatus, qty float64, by string) *replenishmentv1.Proposal {
	out := proto.Clone(p).(*replenishmentv1.Proposal)
	out.Status, out.ApprovedQuantity, out.DecidedBy, out.StatusNote = st, qty, by, "note of "+by
	out.StatusChangedAt = timestamppb.New(time.Date(2026, 12, 7, 16, 0, 0, 0, time.UTC))
	return out
}

// TestProposalsGetMany: Get and GetMany read each proposal's latest row
// (the status row over the proposed one, whatever the insert order and
// however often a row was inserted again), the same rows FINAL reads.
func TestProposalsGetMany(t *testing.T) {
	ctx := context.Background()
	st, _ := newProposals(t)
	base := time.Date(2011, 3, 1, 9, 30, 0, 0, time.UTC)
	proposed := replenishmentv1.ProposalStatus_PROPOSAL_STATUS_PROPOSED
	a := proposal("A", "online", base, proposed)
	b := proposal("B", "online", base.Add(time.Minute), proposed)
	c := proposal("C", "online", base.Add(2*time.Minute), proposed)
	aOK := decided(a, replenishmentv1.ProposalStatus_PROPOSAL_STATUS_APPROVED, 150, "alice")
	bNo := decided(b, replenishmentv1.ProposalStatus_PROPOSAL_STATUS_REJECTED, 0, "bob")
	// Each insert is a part of its own: a and b are proposed, decided, and
	// proposed again (a redelivered proposal after its decision); c twice.
	steps := []func() error{
		func() error { return st.Save(ctx, []*replenishmentv1.Proposal{a, b, c}) },
		func() error { return st.SaveStatuses(ctx, []*replenishmentv1.Proposal{aOK, bNo}) },
		func() error { return st.Save(ctx, []*replenishmentv1.Proposal{a, b, c}) },
		func() error { return st.SaveStatus(ctx, aOK) },
	}
	for i, step := range steps {
		if err := step(); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
	}
	got, err := st.GetMany(ctx, []string{a.ProposalId, b.ProposalId, c.ProposalId, "unknown"})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]*replenishmentv1.Proposal{a.ProposalId: aOK, b.ProposalId: bNo, c.ProposalId: c}
	if len(got) != len(want) {
		t.Fatalf("GetMany: %d proposals, want %d: %v", len(got), len(want), got)
	}
	for id, w := range want {
		if !proto.Equal(got[id], w) {
			t.Errorf("GetMany %s:\n got %v\nwant %v", id, got[id], w)
		}
		one, err := st.Get(ctx, id)
		if err != nil || !proto.Equal(one, w) {
			t.Errorf("Get %s: %v %v, want %v", id, one, err, w)
		}
	}
	if _, err := st.Get(ctx, "unknown"); !errors.Is(err, planning.ErrNotFound) {
		t.Errorf("Get unknown: %v, want ErrNotFound", err)
	}
	// FINAL agrees.
	all, _, err := st.List(ctx, Filter{}, 10, "")
	if err != nil {
		t.Fatal(err)
	}
	assertProposals(t, all, []*replenishmentv1.Proposal{c, bNo, aOK})
	if got, err := st.GetMany(ctx, nil); err != nil || len(got) != 0 {
		t.Errorf("GetMany of nothing: %v %v", got, err)
	}
}
