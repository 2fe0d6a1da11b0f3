// Package demoloop is the demo's planner and supplier: the people and the
// systems around stockcast that close the replenishment loop, working only
// through stockcast's real interfaces.
//
//   - The planner reads replenishment.v1 (read_committed) and, at every
//     review (event time, daily by default), decides every proposal that is
//     still open: the newest of each series is approved through the
//     replenishment gRPC ApproveBatch (as proposed, or scaled within the
//     policy's MOQ, pack size and maximum), older ones of the same series
//     are rejected as superseded (Reject), so a series never has two orders
//     for one need.
//   - The purchasing system places each approved order with the supplier:
//     a PurchaseOrderPlaced on inventory.v1 at the review's event time (the
//     service puts it on order), purchase order id = proposal id.
//   - The supplier delivers it after its lead time: a Receipt on
//     inventory.v1 at the expected arrival (event time), which puts it on
//     hand, closes the open order and gives the service a lead-time sample.
//
// The loop is a replay.Actor: the replay calls it before the first line at or
// after each review or arrival, once the pipeline has gone through every
// earlier line, and produces its events before that line. So the planner
// sees every proposal of the events before the review, and its orders enter
// each series' stream at the review, whatever the pipeline's speed: a wall
// clock approval latency would instead land the orders days or months of
// event time late when the replay outruns the pipeline.
//
// Its state is rebuilt from the topics (the proposals and their decisions on
// replenishment.v1, its own orders and receipts on inventory.v1), so a new
// Loop on the same stack carries on where the last one stopped: it places no
// order twice and delivers none twice.
package demoloop

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	inventoryv1 "github.com/stockcast/stockcast/proto/stockcast/inventory/v1"
	replenishmentv1 "github.com/stockcast/stockcast/proto/stockcast/replenishment/v1"

	"github.com/stockcast/stockcast/internal/replay"
	"github.com/stockcast/stockcast/pkg/kafkax"
	"github.com/stockcast/stockcast/pkg/topics"
)

// Event id prefixes of the loop's inventory events; the rest of the id is
// the proposal id, which is also the purchase order id.
const (
	POPrefix      = "demo-po-"
	ReceiptPrefix = "demo-receipt-"
)

// Config says how the planner and the supplier work.
type Config struct {
	// Review is the event time between the planner's reviews; reviews
	// happen at multiples of it since 0001-01-01 UTC (time.Truncate: 24h
	// is every UTC midnight, 168h every Monday).
	Review time.Duration
	// Scale multiplies the proposed quantity (1: approve as proposed); the
	// result is rounded up to the pack size, raised to the MOQ and capped
	// at the maximum order of the proposal's policy.
	Scale float64
	// LeadTime is the supplier's lead time from the placed order to its
	// receipt; 0: the proposal's policy lead time (whole days).
	LeadTime time.Duration
	// Supplier is the supplier id of the purchase orders.
	Supplier string
	// Planner is who approves (the Approve request's decided_by).
	Planner string
	// Parallel is how many calls (ApproveBatch or Reject) run at once.
	Parallel int
	// Batch is how many approvals go into one ApproveBatch call.
	Batch int
}

// RegisterFlags registers the loop's flags with the given prefix.
func (c *Config) RegisterFlags(fs *flag.FlagSet, prefix string) {
	fs.DurationVar(&c.Review, prefix+"planner.review", 24*time.Hour,
		"event time between the planner's reviews of the open proposals (24h: every UTC midnight; 168h: every Monday)")
	fs.Float64Var(&c.Scale, prefix+"planner.scale", 1,
		"approve this multiple of the proposed quantity (1: as proposed), rounded up to the pack size, at least the MOQ, at most the maximum order")
	fs.DurationVar(&c.LeadTime, prefix+"supplier.lead-time", 0,
		"the supplier's lead time from order to receipt, in event time (0: the proposal's policy lead time)")
	fs.StringVar(&c.Supplier, prefix+"supplier.id", "demo-supplier", "supplier id of the purchase orders")
	fs.StringVar(&c.Planner, prefix+"planner.name", "demo-planner", "who approves (decided_by)")
	fs.IntVar(&c.Parallel, prefix+"planner.parallel", 8, "ApproveBatch and Reject calls at once")
	fs.IntVar(&c.Batch, prefix+"planner.batch", 500, "approvals in one ApproveBatch call (at most 1000)")
}

// Validate checks the configuration.
func (c *Config) Validate() error {
	var errs []error
	if c.Review <= 0 || (24*time.Hour)%c.Review != 0 && c.Review%(24*time.Hour) != 0 {
		errs = append(errs, fmt.Errorf("planner review %v: want a divisor or a multiple of 24h", c.Review))
	}
	if c.Scale <= 0 || math.IsInf(c.Scale, 0) || math.IsNaN(c.Scale) {
		errs = append(errs, fmt.Errorf("planner scale %v: want more than 0", c.Scale))
	}
	if c.LeadTime < 0 {
		errs = append(errs, fmt.Errorf("supplier lead time %v: want 0 or more", c.LeadTime))
	}
	if c.Supplier == "" || c.Planner == "" {
		errs = append(errs, errors.New("planner and supplier need names"))
	}
	if c.Parallel < 1 {
		errs = append(errs, fmt.Errorf("planner parallel %d: want 1 or more", c.Parallel))
	}
	if c.Batch < 1 || c.Batch > 1000 {
		errs = append(errs, fmt.Errorf("planner batch %d: want 1 to 1000", c.Batch))
	}
	return errors.Join(errs...)
}

// order is an approved proposal on its way.
type order struct {
	id, sku, location string
	quantity          float64
	leadDays          int32     // the policy's lead time
	arrival           time.Time // zero until placed
}

// Stats are the loop's counts, rebuilt from the topics on a restart.
type Stats struct {
	Reviews        int // reviews by this Loop
	Proposals      int // proposals seen (PROPOSED records, distinct ids)
	Approved       int // decided APPROVED (by anyone)
	Superseded     int // decided REJECTED (by anyone)
	Placed         int // purchase orders placed
	Received       int // receipts
	UnitsOrdered   float64
	UnitsReceived  float64
	OpenOrders     int // placed, not received
	AwaitingReview int // proposals not decided yet
}

// Loop is the planner and the supplier; a replay.Actor.
type Loop struct {
	cfg Config
	log *slog.Logger
	cl  *kgo.Client
	adm *kadm.Client
	cc  *grpc.ClientConn
	api replenishmentv1.ReplenishmentServiceClient

	next map[string]map[int32]int64 // next offset to read, per topic and partition

	mu         sync.Mutex
	open       map[string]*replenishmentv1.Proposal // PROPOSED, not decided
	decided    map[string]replenishmentv1.ProposalStatus
	toPlace    map[string]*order // approved, no purchase order yet
	onOrder    map[string]*order // placed, not received
	received   map[string]bool
	seen       map[string]bool // proposal ids seen
	nextReview time.Time
	arrival    time.Time // earliest arrival on order; zero: none
	stats      Stats
}

var _ replay.Actor = (*Loop)(nil)

// New starts a loop on the stack of kafka and the replenishment service at
// grpcAddr, and reads what the topics say of earlier loops.
func New(ctx context.Context, cfg Config, kafka kafkax.Config, grpcAddr string, log *slog.Logger) (*Loop, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	l := &Loop{cfg: cfg, log: log, next: make(map[string]map[int32]int64),
		open: make(map[string]*replenishmentv1.Proposal), decided: make(map[string]replenishmentv1.ProposalStatus),
		toPlace: make(map[string]*order), onOrder: make(map[string]*order), received: make(map[string]bool), seen: make(map[string]bool)}
	if err := kafkax.EnsureTopics(ctx, kafka, topics.Proposals, topics.Inventory); err != nil {
		return nil, fmt.Errorf("planner: prepare topics: %w", err)
	}
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(kafka.Brokers...),
		kgo.ClientID("stockcast-demo-planner"),
		kgo.ConsumeTopics(topics.Proposals, topics.Inventory),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		// control records (transaction markers) take offsets too: seeing
		// them tells how far the reading got
		kgo.KeepControlRecords(),
		kgo.FetchMaxWait(100*time.Millisecond),
	)
	if err != nil {
		return nil, fmt.Errorf("planner: create kafka client: %w", err)
	}
	l.cl, l.adm = cl, kadm.NewClient(cl)
	starts, err := l.adm.ListStartOffsets(ctx, topics.Proposals, topics.Inventory)
	if err == nil {
		err = starts.Error()
	}
	if err != nil {
		cl.Close()
		return nil, fmt.Errorf("planner: list start offsets: %w", err)
	}
	starts.Each(func(o kadm.ListedOffset) {
		if l.next[o.Topic] == nil {
			l.next[o.Topic] = make(map[int32]int64)
		}
		l.next[o.Topic][o.Partition] = o.Offset
	})
	cc, err := grpc.NewClient(grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		cl.Close()
		return nil, fmt.Errorf("planner: connect to replenishment at %s: %w", grpcAddr, err)
	}
	l.cc, l.api = cc, replenishmentv1.NewReplenishmentServiceClient(cc)
	if err := l.catchUp(ctx); err != nil {
		l.Close()
		return nil, err
	}
	l.nextArrival()
	return l, nil
}

// Close stops the loop's clients.
func (l *Loop) Close() error {
	l.cl.Close()
	return l.cc.Close()
}

// Stats returns the counts so far.
func (l *Loop) Stats() Stats {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.stats
	s.Proposals = len(l.seen)
	s.OpenOrders = len(l.onOrder)
	s.AwaitingReview = len(l.open)
	return s
}

// Due implements replay.Actor: the next review, or an earlier arrival.
func (l *Loop) Due(t time.Time) (time.Time, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.initReview(t)
	at := l.nextReview
	if !l.arrival.IsZero() && l.arrival.Before(at) {
		at = l.arrival
	}
	return at, !t.Before(at)
}

// Act implements replay.Actor: the supplier delivers what arrives at or
// before at; at a review, the planner decides the open proposals and the
// approved ones are placed.
func (l *Loop) Act(ctx context.Context, at time.Time) ([]replay.ActorEvent, error) {
	if err := l.catchUp(ctx); err != nil {
		return nil, err
	}
	defer l.nextArrival()
	out := l.deliver(at)
	l.mu.Lock()
	l.initReview(at)
	review := !at.Before(l.nextReview)
	for !at.Before(l.nextReview) {
		l.nextReview = l.nextReview.Add(l.cfg.Review)
	}
	l.mu.Unlock()
	if !review {
		return out, nil
	}
	if err := l.review(ctx); err != nil {
		return nil, err
	}
	return append(out, l.place(at)...), nil
}

// initReview sets the first review of a new loop: the first review time at
// or after t. The caller holds mu.
func (l *Loop) initReview(t time.Time) {
	if !l.nextReview.IsZero() {
		return
	}
	l.nextReview = t.UTC().Truncate(l.cfg.Review)
	if l.nextReview.Before(t) {
		l.nextReview = l.nextReview.Add(l.cfg.Review)
	}
}

// nextArrival sets the earliest arrival of the orders on order.
func (l *Loop) nextArrival() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.arrival = time.Time{}
	for _, o := range l.onOrder {
		if l.arrival.IsZero() || o.arrival.Before(l.arrival) {
			l.arrival = o.arrival
		}
	}
}

// deliver returns the receipts of the orders that arrive at or before at.
func (l *Loop) deliver(at time.Time) []replay.ActorEvent {
	l.mu.Lock()
	defer l.mu.Unlock()
	var due []*order
	for _, o := range l.onOrder {
		if !o.arrival.After(at) {
			due = append(due, o)
		}
	}
	slices.SortFunc(due, func(a, b *order) int {
		if c := a.arrival.Compare(b.arrival); c != 0 {
			return c
		}
		return strings.Compare(a.id, b.id)
	})
	out := make([]replay.ActorEvent, 0, len(due))
	for _, o := range due {
		out = append(out, replay.ActorEvent{Kind: replay.KindReceipt, Event: Receipt(o.id, o.sku, o.location, o.quantity, o.arrival)})
		l.markReceived(o.id, o.quantity)
	}
	return out
}

// place returns the purchase orders of the approved proposals, placed at at.
func (l *Loop) place(at time.Time) []replay.ActorEvent {
	l.mu.Lock()
	defer l.mu.Unlock()
	ids := make([]string, 0, len(l.toPlace))
	for id := range l.toPlace {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	out := make([]replay.ActorEvent, 0, len(ids))
	for _, id := range ids {
		o := l.toPlace[id]
		lead := l.cfg.LeadTime
		if lead == 0 {
			lead = time.Duration(max(o.leadDays, 0)) * 24 * time.Hour
		}
		o.arrival = at.Add(lead)
		out = append(out, replay.ActorEvent{Kind: replay.KindPurchaseOrder,
			Event: PurchaseOrder(o.id, o.sku, o.location, o.quantity, at, o.arrival, l.cfg.Supplier)})
		l.markPlaced(o)
	}
	return out
}

// review decides every open proposal: per series the newest (highest
// decision_seq) is approved, the others are rejected as superseded by it.
func (l *Loop) review(ctx context.Context) error {
	l.mu.Lock()
	newest := make(map[string]*replenishmentv1.Proposal)
	for _, p := range l.open {
		if n := newest[p.GetSeriesKey()]; n == nil || p.GetDecisionSeq() > n.GetDecisionSeq() {
			newest[p.GetSeriesKey()] = p
		}
	}
	type call struct {
		p       *replenishmentv1.Proposal
		approve bool
		note    string
	}
	calls := make([]call, 0, len(l.open))
	for _, p := range l.open {
		n := newest[p.GetSeriesKey()]
		if n == p {
			calls = append(calls, call{p: p, approve: true})
		} else {
			calls = append(calls, call{p: p, note: "superseded by " + n.GetProposalId()})
		}
	}
	l.stats.Reviews++
	l.mu.Unlock()
	slices.SortFunc(calls, func(a, b call) int { return strings.Compare(a.p.GetProposalId(), b.p.GetProposalId()) })

	// The approvals go in batches (one ClickHouse lookup and insert each),
	// the rejections of superseded proposals one by one, Parallel at once.
	var approvals []*replenishmentv1.ApproveRequest
	bySeries := make(map[string]string) // proposal id -> series key, for errors
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(l.cfg.Parallel)
	for _, c := range calls {
		if c.approve {
			req := &replenishmentv1.ApproveRequest{ProposalId: c.p.GetProposalId(), DecidedBy: l.cfg.Planner, Note: "demo planner review"}
			if q := ApprovedQuantity(c.p, l.cfg.Scale); q != c.p.GetQuantity() {
				req.Quantity = &q
			}
			approvals = append(approvals, req)
			bySeries[c.p.GetProposalId()] = c.p.GetSeriesKey()
			continue
		}
		g.Go(func() error {
			resp, err := l.api.Reject(gctx, &replenishmentv1.RejectRequest{ProposalId: c.p.GetProposalId(), DecidedBy: l.cfg.Planner, Note: c.note})
			if err != nil {
				return fmt.Errorf("planner: reject proposal %s of %s: %w", c.p.GetProposalId(), c.p.GetSeriesKey(), err)
			}
			l.mu.Lock()
			l.decide(resp.GetProposal())
			l.mu.Unlock()
			return nil
		})
	}
	for start := 0; start < len(approvals); start += l.cfg.Batch {
		chunk := approvals[start:min(start+l.cfg.Batch, len(approvals))]
		g.Go(func() error {
			resp, err := l.api.ApproveBatch(gctx, &replenishmentv1.ApproveBatchRequest{Approvals: chunk})
			if err != nil {
				return fmt.Errorf("planner: approve %d proposals: %w", len(chunk), err)
			}
			if len(resp.GetResults()) != len(chunk) {
				return fmt.Errorf("planner: approve %d proposals: %d results", len(chunk), len(resp.GetResults()))
			}
			l.mu.Lock()
			defer l.mu.Unlock()
			var errs []error
			for i, r := range resp.GetResults() {
				id := chunk[i].GetProposalId()
				if r.GetCode() != int32(codes.OK) {
					errs = append(errs, fmt.Errorf("planner: approve proposal %s of %s: %w", id, bySeries[id], status.Error(codes.Code(r.GetCode()), r.GetMessage())))
					continue
				}
				l.decide(r.GetProposal())
			}
			return errors.Join(errs...)
		})
	}
	return g.Wait()
}

// ApprovedQuantity is the quantity the planner approves for p: the proposed
// quantity times scale, rounded up to the pack size, at least the MOQ, at
// most the maximum order of p's policy.
func ApprovedQuantity(p *replenishmentv1.Proposal, scale float64) float64 {
	q := p.GetQuantity()
	if scale == 1 {
		return q
	}
	q *= scale
	pol := p.GetPolicy()
	if pack := pol.GetPackSize(); pack > 0 {
		q = math.Ceil(q/pack-1e-9) * pack
	}
	if moq := pol.GetMoq(); q < moq {
		q = moq
	}
	if mx := pol.GetMaxOrder(); mx > 0 && q > mx {
		q = mx
	}
	return q
}

// decide records a decision (an Approve or Reject answer, or a status record
// read back). The caller holds mu.
func (l *Loop) decide(p *replenishmentv1.Proposal) {
	id := p.GetProposalId()
	l.seen[id] = true
	if _, ok := l.decided[id]; ok {
		return
	}
	delete(l.open, id)
	l.decided[id] = p.GetStatus()
	switch p.GetStatus() {
	case replenishmentv1.ProposalStatus_PROPOSAL_STATUS_APPROVED:
		l.stats.Approved++
		if _, placed := l.onOrder[id]; !placed && !l.received[id] {
			l.toPlace[id] = &order{id: id, sku: p.GetSku(), location: p.GetLocation(), quantity: p.GetApprovedQuantity(),
				leadDays: p.GetPolicy().GetLeadTimeDays()}
		}
	case replenishmentv1.ProposalStatus_PROPOSAL_STATUS_REJECTED:
		l.stats.Superseded++
	}
}

// markPlaced records a placed order; the caller holds mu.
func (l *Loop) markPlaced(o *order) {
	delete(l.toPlace, o.id)
	if _, ok := l.onOrder[o.id]; ok || l.received[o.id] {
		return
	}
	l.onOrder[o.id] = o
	l.stats.Placed++
	l.stats.UnitsOrdered += o.quantity
}

// markReceived records a receipt; the caller holds mu.
func (l *Loop) markReceived(id string, qty float64) {
	if l.received[id] {
		return
	}
	delete(l.onOrder, id)
	delete(l.toPlace, id)
	l.received[id] = true
	l.stats.Received++
	l.stats.UnitsReceived += qty
}

// catchUp reads both topics up to their last stable offsets.
func (l *Loop) catchUp(ctx context.Context) error {
	ends, err := l.adm.ListCommittedOffsets(ctx, topics.Proposals, topics.Inventory)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return fmt.Errorf("planner: list end offsets: %w", err)
	}
	behind := func() bool {
		b := false
		ends.Each(func(o kadm.ListedOffset) {
			if l.next[o.Topic][o.Partition] < o.Offset {
				b = true
			}
		})
		return b
	}
	for behind() {
		fetches := l.cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return err
		}
		var errs []error
		fetches.EachError(func(t string, p int32, err error) {
			errs = append(errs, fmt.Errorf("planner: read %s/%d: %w", t, p, err))
		})
		if err := errors.Join(errs...); err != nil {
			return err
		}
		l.mu.Lock()
		fetches.EachRecord(func(r *kgo.Record) {
			if l.next[r.Topic] == nil {
				l.next[r.Topic] = make(map[int32]int64)
			}
			l.next[r.Topic][r.Partition] = r.Offset + 1
			if !r.Attrs.IsControl() {
				l.observe(r)
			}
		})
		l.mu.Unlock()
	}
	return nil
}

// observe takes in one record; the caller holds mu.
func (l *Loop) observe(r *kgo.Record) {
	switch r.Topic {
	case topics.Proposals:
		var p replenishmentv1.Proposal
		if err := proto.Unmarshal(r.Value, &p); err != nil {
			l.log.Warn("planner: skip undecodable proposal", "topic", r.Topic, "partition", r.Partition, "offset", r.Offset, "err", err)
			return
		}
		if p.GetStatus() == replenishmentv1.ProposalStatus_PROPOSAL_STATUS_PROPOSED || p.GetStatus() == replenishmentv1.ProposalStatus_PROPOSAL_STATUS_UNSPECIFIED {
			l.seen[p.GetProposalId()] = true
			if _, ok := l.decided[p.GetProposalId()]; !ok {
				l.open[p.GetProposalId()] = &p
			}
			return
		}
		l.decide(&p)
	case topics.Inventory:
		id := kafkax.HeaderValue(r, topics.HeaderEventID)
		if !strings.HasPrefix(id, POPrefix) && !strings.HasPrefix(id, ReceiptPrefix) {
			return
		}
		var ev inventoryv1.InventoryEvent
		if err := proto.Unmarshal(r.Value, &ev); err != nil {
			l.log.Warn("planner: skip undecodable inventory event", "topic", r.Topic, "partition", r.Partition, "offset", r.Offset, "err", err)
			return
		}
		if po := ev.GetPurchaseOrderPlaced(); po != nil {
			l.markPlaced(&order{id: po.GetPurchaseOrderId(), sku: ev.GetSku(), location: ev.GetLocation(),
				quantity: po.GetQuantity(), arrival: po.GetExpectedAt().AsTime()})
		} else if rc := ev.GetReceipt(); rc != nil {
			l.markReceived(rc.GetPurchaseOrderId(), rc.GetQuantity())
		}
	}
}

// PurchaseOrder is the event of an order placed at at, expected at arrival.
func PurchaseOrder(id, sku, location string, qty float64, at, arrival time.Time, supplier string) *inventoryv1.InventoryEvent {
	return &inventoryv1.InventoryEvent{EventId: POPrefix + id, OccurredAt: timestamppb.New(at), Sku: sku, Location: location,
		Kind: &inventoryv1.InventoryEvent_PurchaseOrderPlaced{PurchaseOrderPlaced: &inventoryv1.PurchaseOrderPlaced{
			PurchaseOrderId: id, Quantity: qty, ExpectedAt: timestamppb.New(arrival), SupplierId: supplier}}}
}

// Receipt is the event of the delivery of order id at at.
func Receipt(id, sku, location string, qty float64, at time.Time) *inventoryv1.InventoryEvent {
	return &inventoryv1.InventoryEvent{EventId: ReceiptPrefix + id, OccurredAt: timestamppb.New(at), Sku: sku, Location: location,
		Kind: &inventoryv1.InventoryEvent_Receipt{Receipt: &inventoryv1.Receipt{PurchaseOrderId: id, Quantity: qty}}}
}

// Survey is the inventory of many series as the service reports it.
type Survey struct {
	Series          int
	Lowest          float64 // lowest inventory position
	LowestSeries    string
	Negative        int // series with a negative position (backorders beyond stock and orders)
	OutOfStock      int // series with nothing on hand
	OnOrder         int // series with units on order
	LearnedLeadTime int // series whose decisions use a learned lead time
}

// TakeSurvey asks GetSeriesState of every series key ("sku|location").
func (l *Loop) TakeSurvey(ctx context.Context, keys []string) (Survey, error) {
	s := Survey{Lowest: math.Inf(1)}
	for _, k := range keys {
		sku, loc, ok := strings.Cut(k, "|")
		if !ok {
			return s, fmt.Errorf("survey: series key %q: want sku|location", k)
		}
		st, err := l.api.GetSeriesState(ctx, &replenishmentv1.GetSeriesStateRequest{Sku: sku, Location: loc})
		if err != nil {
			return s, fmt.Errorf("survey: state of %s: %w", k, err)
		}
		s.Series++
		if pos := st.GetInventoryPosition(); pos < s.Lowest {
			s.Lowest, s.LowestSeries = pos, k
		}
		if st.GetInventoryPosition() < 0 {
			s.Negative++
		}
		if st.GetOnHand() <= 0 {
			s.OutOfStock++
		}
		if st.GetOnOrder() > 0 {
			s.OnOrder++
		}
		if st.GetLeadTimeLearned() {
			s.LearnedLeadTime++
		}
	}
	return s, nil
}
