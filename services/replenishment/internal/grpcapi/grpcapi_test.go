package grpcapi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	replenishmentv1 "github.com/stockcast/stockcast/proto/stockcast/replenishment/v1"

	"github.com/stockcast/stockcast/pkg/chx"
	"github.com/stockcast/stockcast/pkg/kafkax"
	"github.com/stockcast/stockcast/pkg/replenish"
	"github.com/stockcast/stockcast/pkg/telemetry"
	"github.com/stockcast/stockcast/pkg/testenv"
	"github.com/stockcast/stockcast/services/replenishment/internal/consumer"
	"github.com/stockcast/stockcast/services/replenishment/internal/planning"
	"github.com/stockcast/stockcast/services/replenishment/internal/store"
)

func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }

var builtIn = replenish.Policy{ServiceLevel: 0.95, LeadTimeDays: 7, MOQ: 1, PackSize: 1, OrderCoverDays: 14}

func newServer(t *testing.T) (*Server, *store.Proposals) {
	t.Helper()
	srv, proposals, _ := newServerWith(t, nil, nil)
	return srv, proposals
}

// newServerWith starts Redis and a ClickHouse database; with brokers the
// reviewer publishes to them (through wrap, when given).
func newServerWith(t *testing.T, brokers []string, wrap func(planning.StatusPublisher) planning.StatusPublisher) (*Server, *store.Proposals, *redis.Client) {
	t.Helper()
	ctx := context.Background()
	rdb := redis.NewClient(&redis.Options{Addr: testenv.Redis(t)})
	t.Cleanup(func() { _ = rdb.Close() })
	conn, err := chx.Open(ctx, testenv.ClickHouse(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	if err := store.MigrateProposals(ctx, conn); err != nil {
		t.Fatal(err)
	}
	policies, err := planning.NewPolicies(store.NewPolicies(rdb), builtIn)
	if err != nil {
		t.Fatal(err)
	}
	proposals := store.NewProposals(conn)
	var pub planning.StatusPublisher = unusedPublisher{}
	var producer consumer.Producer = unusedPublisher{}
	if brokers != nil {
		kp, err := kafkax.NewProducer(kafkax.Config{Brokers: brokers}, telemetry.NewDiscard())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(kp.Close)
		producer = kp
		pub = consumer.NewPublisher(kp)
		if wrap != nil {
			pub = wrap(pub)
		}
	}
	reviewer := planning.NewReviewer(proposals, store.NewDecisions(rdb), pub, func() time.Time { return clock })
	state := store.NewState(rdb, time.Hour)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	planner := planning.NewPlannerLearning(policies, state, log, minSamples)
	handler, err := consumer.NewHandler(planner, proposals, producer, telemetry.NewDiscard().Meter.Meter("test"), log)
	if err != nil {
		t.Fatal(err)
	}
	series := consumer.SeriesService{Handler: handler, State: state, MinSamples: minSamples}
	return NewServer(policies, proposals, reviewer, series), proposals, rdb
}

// minSamples is -replenishment.lead-time-min-samples in these tests.
const minSamples = 2

// clock is the reviewer's wall clock in tests.
var clock = time.Date(2011, 3, 2, 8, 15, 0, 123456789, time.UTC)

type unusedPublisher struct{}

func (unusedPublisher) PublishStatus(context.Context, *replenishmentv1.Proposal) error {
	return errors.New("no broker in this test")
}

func (unusedPublisher) Produce(_ context.Context, recs ...*kgo.Record) error {
	if len(recs) > 0 {
		return errors.New("no broker in this test")
	}
	return nil
}

func TestPolicies(t *testing.T) {
	ctx := context.Background()
	srv, _ := newServer(t)
	valid := func(sku, location string) *replenishmentv1.Policy {
		return &replenishmentv1.Policy{Sku: sku, Location: location, ServiceLevel: 0.9, LeadTimeDays: 5, Moq: 10, PackSize: 5, OrderCoverDays: 7}
	}
	with := func(mutate func(*replenishmentv1.Policy)) *replenishmentv1.Policy {
		p := valid("A", "online")
		mutate(p)
		return p
	}
	invalid := []struct {
		name   string
		policy *replenishmentv1.Policy
	}{
		{"no policy", nil},
		{"sku without location", valid("A", "")},
		{"separator in sku", valid("A|B", "online")},
		{"service level 0", with(func(p *replenishmentv1.Policy) { p.ServiceLevel = 0 })},
		{"service level 1", with(func(p *replenishmentv1.Policy) { p.ServiceLevel = 1 })},
		{"lead time 366", with(func(p *replenishmentv1.Policy) { p.LeadTimeDays = 366 })},
		{"negative review", with(func(p *replenishmentv1.Policy) { p.ReviewPeriodDays = -1 })},
		{"negative moq", with(func(p *replenishmentv1.Policy) { p.Moq = -1 })},
		{"negative pack", with(func(p *replenishmentv1.Policy) { p.PackSize = -1 })},
		{"negative max", with(func(p *replenishmentv1.Policy) { p.MaxOrder = -1 })},
		{"unknown kind", with(func(p *replenishmentv1.Policy) { p.Kind = 9 })},
		{"unknown target", with(func(p *replenishmentv1.Policy) { p.Target = 9 })},
		{"s_Q without Q or costs", with(func(p *replenishmentv1.Policy) { p.Kind = replenishmentv1.PolicyKind_POLICY_KIND_S_Q })},
		{"R_S without calendar", with(func(p *replenishmentv1.Policy) {
			p.Kind, p.ReviewPeriodDays = replenishmentv1.PolicyKind_POLICY_KIND_R_S, 7
		})},
		{"R_S weekday 7", with(func(p *replenishmentv1.Policy) {
			p.Kind, p.ReviewPeriodDays, p.ReviewWeekdays = replenishmentv1.PolicyKind_POLICY_KIND_R_S, 7, []int32{2, 7}
		})},
		{"fill rate target without fill rate", with(func(p *replenishmentv1.Policy) { p.Target = replenishmentv1.PolicyTarget_POLICY_TARGET_FILL_RATE })},
		{"newsvendor without costs", with(func(p *replenishmentv1.Policy) { p.Target = replenishmentv1.PolicyTarget_POLICY_TARGET_NEWSVENDOR })},
		{"negative holding cost", with(func(p *replenishmentv1.Policy) { p.HoldingCost = -1 })},
	}
	for _, tt := range invalid {
		t.Run(tt.name, func(t *testing.T) {
			_, err := srv.SetPolicy(ctx, &replenishmentv1.SetPolicyRequest{Policy: tt.policy})
			if status.Code(err) != codes.InvalidArgument {
				t.Fatalf("SetPolicy: %v, want InvalidArgument", err)
			}
		})
	}

	// Set global, location and series policies; each series sees the most specific.
	for _, p := range []*replenishmentv1.Policy{valid("", ""), valid("", "online"), valid("A", "online")} {
		p.LeadTimeDays = int32(len(p.Sku) + len(p.Location)) // tells them apart
		if _, err := srv.SetPolicy(ctx, &replenishmentv1.SetPolicyRequest{Policy: p}); err != nil {
			t.Fatal(err)
		}
	}
	lookups := []struct {
		sku, location string
		source        string
		from          *replenishmentv1.Policy
	}{
		{"A", "online", "series", valid("A", "online")},
		{"B", "online", "location", valid("", "online")},
		{"", "online", "location", valid("", "online")},
		{"B", "store1", "global", valid("", "")},
		{"", "", "global", valid("", "")},
	}
	for _, l := range lookups {
		t.Run(fmt.Sprintf("get %s|%s", l.sku, l.location), func(t *testing.T) {
			got, err := srv.GetPolicy(ctx, &replenishmentv1.GetPolicyRequest{Sku: l.sku, Location: l.location})
			if err != nil {
				t.Fatal(err)
			}
			want := l.from
			want.LeadTimeDays = int32(len(want.Sku) + len(want.Location))
			if got.GetSource() != l.source || !proto.Equal(got.GetPolicy(), want) {
				t.Fatalf("GetPolicy = %v, want source %s policy %v", got, l.source, want)
			}
		})
	}
	// The kind, target, costs and calendar round-trip through Redis.
	periodic := valid("P", "online")
	periodic.Kind, periodic.ReviewPeriodDays, periodic.ReviewWeekdays = replenishmentv1.PolicyKind_POLICY_KIND_R_S, 7, []int32{2, 5}
	periodic.Target, periodic.ShortageCost, periodic.HoldingCost, periodic.OrderCost = replenishmentv1.PolicyTarget_POLICY_TARGET_NEWSVENDOR, 9, 0.125, 20
	sq := valid("Q", "online")
	sq.Kind, sq.OrderQuantity, sq.Target, sq.FillRate = replenishmentv1.PolicyKind_POLICY_KIND_S_Q, 48, replenishmentv1.PolicyTarget_POLICY_TARGET_FILL_RATE, 0.97
	anchored := valid("R", "online")
	anchored.Kind, anchored.ReviewPeriodDays, anchored.ReviewAnchorDate = replenishmentv1.PolicyKind_POLICY_KIND_R_S, 3, "2011-02-26"
	for _, p := range []*replenishmentv1.Policy{periodic, sq, anchored} {
		if _, err := srv.SetPolicy(ctx, &replenishmentv1.SetPolicyRequest{Policy: p}); err != nil {
			t.Fatal(err)
		}
		got, err := srv.GetPolicy(ctx, &replenishmentv1.GetPolicyRequest{Sku: p.GetSku(), Location: p.GetLocation()})
		if err != nil {
			t.Fatal(err)
		}
		if !proto.Equal(got.GetPolicy(), p) {
			t.Fatalf("GetPolicy = %v, want %v", got.GetPolicy(), p)
		}
	}
	if _, err := srv.GetPolicy(ctx, &replenishmentv1.GetPolicyRequest{Sku: "A"}); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("GetPolicy of a sku without location: %v, want InvalidArgument", err)
	}
}

func TestListProposalsPageSizes(t *testing.T) {
	ctx := context.Background()
	srv, proposals := newServer(t)
	base := time.Date(2011, 3, 1, 0, 0, 0, 0, time.UTC)
	var props []*replenishmentv1.Proposal
	for i := range 1001 {
		props = append(props, &replenishmentv1.Proposal{
			ProposalId: fmt.Sprintf("p%04d", i), SeriesKey: "A|online", Sku: "A", Location: "online",
			DecidedAt: timestamppb.New(base.Add(time.Duration(i) * time.Second)),
			Status:    replenishmentv1.ProposalStatus_PROPOSAL_STATUS_PROPOSED,
		})
	}
	if err := proposals.Save(ctx, props); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		size     int32
		wantLen  int
		wantCode codes.Code
	}{
		{"default 100", 0, 100, codes.OK},
		{"asked 7", 7, 7, codes.OK},
		{"capped at 1000", 5000, 1000, codes.OK},
		{"negative", -1, 0, codes.InvalidArgument},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := srv.ListProposals(ctx, &replenishmentv1.ListProposalsRequest{PageSize: tt.size})
			if status.Code(err) != tt.wantCode {
				t.Fatalf("code %v, want %v", status.Code(err), tt.wantCode)
			}
			if len(resp.GetProposals()) != tt.wantLen {
				t.Fatalf("%d proposals, want %d", len(resp.GetProposals()), tt.wantLen)
			}
			if tt.wantLen > 0 && (resp.GetProposals()[0].GetProposalId() != "p1000" || resp.GetNextPageToken() == "") {
				t.Fatalf("first %s next %q: want the newest, p1000, and a next page", resp.GetProposals()[0].GetProposalId(), resp.GetNextPageToken())
			}
		})
	}
	if _, err := srv.ListProposals(ctx, &replenishmentv1.ListProposalsRequest{PageToken: "@@"}); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("bad token: %v, want InvalidArgument", err)
	}
}
