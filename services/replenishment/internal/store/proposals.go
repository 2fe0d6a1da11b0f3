package store

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"google.golang.org/protobuf/types/known/timestamppb"

	replenishmentv1 "github.com/stockcast/stockcast/proto/stockcast/replenishment/v1"

	"github.com/stockcast/stockcast/pkg/chx"
	"github.com/stockcast/stockcast/services/replenishment/internal/planning"
)

// ProposalsTable is created at start. ReplacingMergeTree(version) by
// proposal_id makes re-inserting a redelivered proposal harmless (read with
// FINAL); version 1 is "as proposed", so a later status change written with a
// higher version survives a replay. decided_at_ns keeps the exact decision
// time (no DateTime64 on ClickHouse 18.16) and orders the listing.
const ProposalsTable = `CREATE TABLE IF NOT EXISTS proposals (
	proposal_id String,
	series_key String,
	sku String,
	location String,
	event_id String,
	forecast_id String,
	decided_at DateTime,
	decided_at_ns Int64,
	reason String,
	quantity Float64,
	unconstrained_quantity Float64,
	reorder_point Float64,
	order_up_to Float64,
	inventory_position Float64,
	on_hand Float64,
	on_order Float64,
	backorders Float64,
	safety_stock Float64,
	expected_lead_time_demand Float64,
	policy_sku String,
	policy_location String,
	policy_service_level Float64,
	policy_lead_time_days Int32,
	policy_review_period_days Int32,
	policy_moq Float64,
	policy_pack_size Float64,
	policy_max_order Float64,
	policy_order_cover_days Int32,
	projected_stockout_day String,
	expected_arrival_day String,
	status String,
	decision_seq Int64,
	version UInt64,
	decided_by String,
	status_changed_at_ns Int64,
	approved_quantity Float64,
	status_note String
) ENGINE = ReplacingMergeTree(version) ORDER BY proposal_id`

// statusColumns were added with Approve and Reject: MigrateProposals adds
// them to a table created before (18.16 has no ADD COLUMN IF NOT EXISTS).
var statusColumns = [][2]string{
	{"decided_by", "String"},
	{"status_changed_at_ns", "Int64"},
	{"approved_quantity", "Float64"},
	{"status_note", "String"},
}

// MigrateProposals creates the proposals table or adds the columns it lacks.
func MigrateProposals(ctx context.Context, conn driver.Conn) error {
	if err := chx.Migrate(ctx, conn, ProposalsTable); err != nil {
		return err
	}
	rows, err := conn.Query(ctx, "SELECT name FROM system.columns WHERE database = currentDatabase() AND table = 'proposals'")
	if err != nil {
		return fmt.Errorf("read proposals columns: %w", err)
	}
	have := map[string]bool{}
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			rows.Close()
			return fmt.Errorf("read proposals columns: %w", err)
		}
		have[name] = true
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read proposals columns: %w", err)
	}
	for _, c := range statusColumns {
		if !have[c[0]] {
			if err := conn.Exec(ctx, "ALTER TABLE proposals ADD COLUMN "+c[0]+" "+c[1]); err != nil {
				return fmt.Errorf("add proposals column %s: %w", c[0], err)
			}
		}
	}
	return nil
}

// proposalColumns in insert and select order.
const proposalColumns = `proposal_id, series_key, sku, location, event_id, forecast_id, decided_at, decided_at_ns,
	reason, quantity, unconstrained_quantity, reorder_point, order_up_to, inventory_position,
	on_hand, on_order, backorders, safety_stock, expected_lead_time_demand,
	policy_sku, policy_location, policy_service_level, policy_lead_time_days, policy_review_period_days,
	policy_moq, policy_pack_size, policy_max_order, policy_order_cover_days,
	projected_stockout_day, expected_arrival_day, status, decision_seq,
	decided_by, status_changed_at_ns, approved_quantity, status_note`

// Row versions: a proposal as decided, then its one status change
// (approved or rejected; planning.Reviewer lets only one happen).
const (
	proposedVersion = 1
	decidedVersion  = 2
)

// Proposals keeps proposals in ClickHouse.
type Proposals struct {
	conn driver.Conn
}

// NewProposals returns the ClickHouse proposal store; the table must exist
// (chx.Migrate with ProposalsTable).
func NewProposals(conn driver.Conn) *Proposals { return &Proposals{conn: conn} }

// Save inserts proposals in one batch.
func (s *Proposals) Save(ctx context.Context, props []*replenishmentv1.Proposal) error {
	return s.insert(ctx, props, proposedVersion)
}

// SaveStatus records a proposal's approval or rejection: the whole row again
// with the higher version, so FINAL shows the current status.
func (s *Proposals) SaveStatus(ctx context.Context, p *replenishmentv1.Proposal) error {
	return s.insert(ctx, []*replenishmentv1.Proposal{p}, decidedVersion)
}

// SaveStatuses records many status changes in one insert (one part in
// ClickHouse, where a SaveStatus per proposal makes one each).
func (s *Proposals) SaveStatuses(ctx context.Context, props []*replenishmentv1.Proposal) error {
	return s.insert(ctx, props, decidedVersion)
}

// Get returns a proposal with its current status, or planning.ErrNotFound.
func (s *Proposals) Get(ctx context.Context, id string) (*replenishmentv1.Proposal, error) {
	got, err := s.GetMany(ctx, []string{id})
	if err != nil {
		return nil, err
	}
	p, ok := got[id]
	if !ok {
		return nil, fmt.Errorf("%w: proposal %q", planning.ErrNotFound, id)
	}
	return p, nil
}

// getChunk bounds the ids of one GetMany query.
const getChunk = 1000

// GetMany returns the proposals of ids with their current status, by id;
// unknown ids are absent. It reads the ids' rows through the primary key
// without FINAL (which merges every part's rows of the key range on 18.16)
// and keeps each proposal's highest version: the same answer as FINAL,
// whose ReplacingMergeTree(version) keeps the highest version too.
func (s *Proposals) GetMany(ctx context.Context, ids []string) (map[string]*replenishmentv1.Proposal, error) {
	out := make(map[string]*replenishmentv1.Proposal, len(ids))
	versions := make(map[string]uint64, len(ids))
	for start := 0; start < len(ids); start += getChunk {
		chunk := ids[start:min(start+getChunk, len(ids))]
		// One placeholder per id: 18.16 takes a bound slice for an array.
		args := make([]any, len(chunk))
		for i, id := range chunk {
			args[i] = id
		}
		in := strings.Repeat("?, ", len(chunk)-1) + "?"
		rows, err := s.conn.Query(ctx, "SELECT "+proposalColumns+", version FROM proposals WHERE proposal_id IN ("+in+")", args...)
		if err != nil {
			return nil, fmt.Errorf("query %d proposals: %w", len(chunk), err)
		}
		for rows.Next() {
			var version uint64
			p, err := scanProposal(rows, &version)
			if err != nil {
				rows.Close()
				return nil, err
			}
			id := p.GetProposalId()
			if have, ok := versions[id]; !ok || version > have {
				out[id], versions[id] = p, version
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("read %d proposals: %w", len(chunk), err)
		}
	}
	return out, nil
}

func (s *Proposals) insert(ctx context.Context, props []*replenishmentv1.Proposal, version uint64) error {
	if len(props) == 0 {
		return nil
	}
	batch, err := s.conn.PrepareBatch(ctx, "INSERT INTO proposals ("+proposalColumns+", version)")
	if err != nil {
		return fmt.Errorf("prepare proposals insert: %w", err)
	}
	defer func() { _ = batch.Abort() }()
	for _, p := range props {
		at := p.GetDecidedAt().AsTime()
		pol := p.GetPolicy()
		err := batch.Append(
			p.GetProposalId(), p.GetSeriesKey(), p.GetSku(), p.GetLocation(), p.GetEventId(), p.GetForecastId(),
			at, at.UnixNano(),
			p.GetReason().String(), p.GetQuantity(), p.GetUnconstrainedQuantity(), p.GetReorderPoint(), p.GetOrderUpTo(),
			p.GetInventoryPosition(), p.GetOnHand(), p.GetOnOrder(), p.GetBackorders(), p.GetSafetyStock(),
			p.GetExpectedLeadTimeDemand(),
			pol.GetSku(), pol.GetLocation(), pol.GetServiceLevel(), pol.GetLeadTimeDays(), pol.GetReviewPeriodDays(),
			pol.GetMoq(), pol.GetPackSize(), pol.GetMaxOrder(), pol.GetOrderCoverDays(),
			p.GetProjectedStockoutDay(), p.GetExpectedArrivalDay(), p.GetStatus().String(), p.GetDecisionSeq(),
			p.GetDecidedBy(), changedNs(p), p.GetApprovedQuantity(), p.GetStatusNote(),
			version,
		)
		if err != nil {
			return fmt.Errorf("append proposal %s: %w", p.GetProposalId(), err)
		}
	}
	if err := batch.Send(); err != nil {
		return fmt.Errorf("insert %d proposals: %w", len(props), err)
	}
	return nil
}

// Filter selects proposals; empty fields match anything.
type Filter struct {
	SKU      string
	Location string
	Status   replenishmentv1.ProposalStatus
}

// ErrInvalidPageToken is a page token this store did not issue.
var ErrInvalidPageToken = errors.New("invalid page token")

// List returns up to pageSize proposals matching f, newest decision first
// (ties by proposal id), after the position in pageToken; next is empty on
// the last page.
func (s *Proposals) List(ctx context.Context, f Filter, pageSize int, pageToken string) (props []*replenishmentv1.Proposal, next string, err error) {
	var where []string
	var args []any
	if f.SKU != "" {
		where, args = append(where, "sku = ?"), append(args, f.SKU)
	}
	if f.Location != "" {
		where, args = append(where, "location = ?"), append(args, f.Location)
	}
	if pageToken != "" {
		ns, id, err := decodePageToken(pageToken)
		if err != nil {
			return nil, "", err
		}
		// Tuple comparison is spelled out: 18.16 does not compare tuples.
		where = append(where, "(decided_at_ns < ? OR (decided_at_ns = ? AND proposal_id < ?))")
		args = append(args, ns, ns, id)
	}
	q := "SELECT " + proposalColumns + " FROM proposals FINAL"
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	if f.Status != replenishmentv1.ProposalStatus_PROPOSAL_STATUS_UNSPECIFIED {
		// The status filter applies after FINAL has picked each proposal's
		// latest row: filtered before, an approved proposal's old PROPOSED
		// row would list it as proposed. The other filters are the same on
		// every row of a proposal.
		q = "SELECT " + proposalColumns + " FROM (" + q + ") WHERE status = ?"
		args = append(args, f.Status.String())
	}
	// One row more than asked says whether there is a next page.
	q += " ORDER BY decided_at_ns DESC, proposal_id DESC LIMIT " + strconv.Itoa(pageSize+1)
	rows, err := s.conn.Query(ctx, q, args...)
	if err != nil {
		return nil, "", fmt.Errorf("query proposals: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		p, err := scanProposal(rows)
		if err != nil {
			return nil, "", err
		}
		props = append(props, p)
	}
	if err := rows.Err(); err != nil {
		return nil, "", fmt.Errorf("read proposals: %w", err)
	}
	if len(props) > pageSize {
		props = props[:pageSize]
		last := props[len(props)-1]
		next = encodePageToken(last.GetDecidedAt().AsTime().UnixNano(), last.GetProposalId())
	}
	return props, next, nil
}

// scanProposal scans proposalColumns, then the extra columns into extra.
func scanProposal(rows driver.Rows, extra ...any) (*replenishmentv1.Proposal, error) {
	var (
		p                                 replenishmentv1.Proposal
		pol                               replenishmentv1.Policy
		decidedAt                         time.Time
		decidedNs, changedAtNs            int64
		reason, status                    string
		leadTime, reviewPeriod, coverDays int32
	)
	dest := []any{
		&p.ProposalId, &p.SeriesKey, &p.Sku, &p.Location, &p.EventId, &p.ForecastId, &decidedAt, &decidedNs,
		&reason, &p.Quantity, &p.UnconstrainedQuantity, &p.ReorderPoint, &p.OrderUpTo, &p.InventoryPosition,
		&p.OnHand, &p.OnOrder, &p.Backorders, &p.SafetyStock, &p.ExpectedLeadTimeDemand,
		&pol.Sku, &pol.Location, &pol.ServiceLevel, &leadTime, &reviewPeriod,
		&pol.Moq, &pol.PackSize, &pol.MaxOrder, &coverDays,
		&p.ProjectedStockoutDay, &p.ExpectedArrivalDay, &status, &p.DecisionSeq,
		&p.DecidedBy, &changedAtNs, &p.ApprovedQuantity, &p.StatusNote,
	}
	if err := rows.Scan(append(dest, extra...)...); err != nil {
		return nil, fmt.Errorf("scan proposal: %w", err)
	}
	pol.LeadTimeDays, pol.ReviewPeriodDays, pol.OrderCoverDays = leadTime, reviewPeriod, coverDays
	p.Policy = &pol
	p.DecidedAt = timestamppb.New(time.Unix(0, decidedNs).UTC())
	p.Reason = replenishmentv1.ProposalReason(replenishmentv1.ProposalReason_value[reason])
	p.Status = replenishmentv1.ProposalStatus(replenishmentv1.ProposalStatus_value[status])
	if changedAtNs != 0 {
		p.StatusChangedAt = timestamppb.New(time.Unix(0, changedAtNs).UTC())
	}
	return &p, nil
}

func changedNs(p *replenishmentv1.Proposal) int64 {
	if p.GetStatusChangedAt() == nil {
		return 0
	}
	return p.GetStatusChangedAt().AsTime().UnixNano()
}

// Page tokens are opaque to callers: base64 of "decided_at_ns/proposal_id".
func encodePageToken(ns int64, id string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(ns, 10) + "/" + id))
}

func decodePageToken(tok string) (int64, string, error) {
	raw, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil {
		return 0, "", fmt.Errorf("%w: %w", ErrInvalidPageToken, err)
	}
	nsText, id, ok := strings.Cut(string(raw), "/")
	ns, err := strconv.ParseInt(nsText, 10, 64)
	if !ok || err != nil || id == "" {
		return 0, "", fmt.Errorf("%w: %q", ErrInvalidPageToken, raw)
	}
	return ns, id, nil
}
