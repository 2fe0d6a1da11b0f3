package store

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	replenishmentv1 "github.com/stockcast/stockcast/proto/stockcast/replenishment/v1"

	"github.com/stockcast/stockcast/pkg/chx"
	"github.com/stockcast/stockcast/pkg/testenv"
)

func proposal(sku, location string, decidedAt time.Time, status replenishmentv1.ProposalStatus) *replenishmentv1.Proposal {
	key := sku + "|" + location
	return &replenishmentv1.Proposal{
		ProposalId: fmt.Sprintf("%s-%d", key, decidedAt.UnixNano()), SeriesKey: key, Sku: sku, Location: location,
		EventId: "e", ForecastId: "f", DecidedAt: timestamppb.New(decidedAt),
		Reason:   replenishmentv1.ProposalReason_PROPOSAL_REASON_CROSSED_REORDER_POINT,
		Quantity: 100, UnconstrainedQuantity: 75.5, ReorderPoint: 40.25, OrderUpTo: 110.5,
		InventoryPosition: 35, OnHand: 30, OnOrder: 10, Backorders: 5, SafetyStock: 10.25, ExpectedLeadTimeDemand: 30,
		Policy: &replenishmentv1.Policy{Location: location, ServiceLevel: 0.975, LeadTimeDays: 3, ReviewPeriodDays: 1,
			Moq: 100, PackSize: 50, MaxOrder: 1000, OrderCoverDays: 7},
		ProjectedStockoutDay: "2011-03-04", ExpectedArrivalDay: "2011-03-04",
		Status: status, DecisionSeq: 2,
	}
}

func TestProposalsSaveAndList(t *testing.T) {
	ctx := context.Background()
	conn, err := chx.Open(ctx, testenv.ClickHouse(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	if err := MigrateProposals(ctx, conn); err != nil {
		t.Fatal(err)
	}
	st := NewProposals(conn)

	base := time.Date(2011, 3, 1, 9, 30, 0, 123456789, time.UTC)
	proposed := replenishmentv1.ProposalStatus_PROPOSAL_STATUS_PROPOSED
	a1 := proposal("A", "online", base, proposed)
	a2 := proposal("A", "online", base.Add(time.Hour), proposed)
	b1 := proposal("B", "online", base.Add(30*time.Minute), proposed)
	c1 := proposal("A", "store1", base.Add(2*time.Hour), replenishmentv1.ProposalStatus_PROPOSAL_STATUS_APPROVED)
	if err := st.Save(ctx, []*replenishmentv1.Proposal{a1, a2, b1, c1}); err != nil {
		t.Fatal(err)
	}
	// A redelivery inserts the same rows again: FINAL shows each once.
	if err := st.Save(ctx, []*replenishmentv1.Proposal{a2, b1}); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name   string
		filter Filter
		want   []*replenishmentv1.Proposal
	}{
		{"all, newest first", Filter{}, []*replenishmentv1.Proposal{c1, a2, b1, a1}},
		{"by sku", Filter{SKU: "A"}, []*replenishmentv1.Proposal{c1, a2, a1}},
		{"by sku and location", Filter{SKU: "A", Location: "online"}, []*replenishmentv1.Proposal{a2, a1}},
		{"by status", Filter{Status: proposed}, []*replenishmentv1.Proposal{a2, b1, a1}},
		{"nothing", Filter{SKU: "Z"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, next, err := st.List(ctx, tt.filter, 10, "")
			if err != nil {
				t.Fatal(err)
			}
			if next != "" {
				t.Errorf("next page token %q on the only page", next)
			}
			assertProposals(t, got, tt.want)
		})
	}

	t.Run("pages", func(t *testing.T) {
		var all []*replenishmentv1.Proposal
		token := ""
		for page := 0; ; page++ {
			got, next, err := st.List(ctx, Filter{}, 3, token)
			if err != nil {
				t.Fatal(err)
			}
			if page == 0 && (len(got) != 3 || next == "") {
				t.Fatalf("first page: %d proposals, next %q", len(got), next)
			}
			all = append(all, got...)
			if next == "" {
				break
			}
			token = next
		}
		assertProposals(t, all, []*replenishmentv1.Proposal{c1, a2, b1, a1})
	})

	t.Run("invalid page token", func(t *testing.T) {
		for _, tok := range []string{"not base64!", "bm9zbGFzaA", "eC95"} { // "noslash", "x/y"
			if _, _, err := st.List(ctx, Filter{}, 3, tok); !errors.Is(err, ErrInvalidPageToken) {
				t.Errorf("token %q: err = %v, want ErrInvalidPageToken", tok, err)
			}
		}
	})
}

func assertProposals(t *testing.T, got, want []*replenishmentv1.Proposal) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d proposals, want %d: %v", len(got), len(want), got)
	}
	for i := range want {
		if !proto.Equal(got[i], want[i]) {
			t.Errorf("proposal %d\n got %v\nwant %v", i, got[i], want[i])
		}
	}
}
