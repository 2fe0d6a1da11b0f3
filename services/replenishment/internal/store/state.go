// Package store holds the replenishment service's adapters: the inventory
// state and policies in Redis, proposals in ClickHouse.
package store

import (
	"context"
	_ "embed"
	"errors"
	"flag"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	replenishmentv1 "github.com/stockcast/stockcast/proto/stockcast/replenishment/v1"

	"github.com/stockcast/stockcast/pkg/recovery"
	"github.com/stockcast/stockcast/pkg/replenish"
	"github.com/stockcast/stockcast/services/replenishment/internal/planning"
)

//go:embed state.lua
var stateLua string

// StateKey is the hash of a series' inventory position and decision state.
func StateKey(seriesKey string) string { return "stockcast:r:{" + seriesKey + "}" }

// SeenKey marks an event as applied to a series and records its outcome.
func SeenKey(seriesKey, eventID string) string { return StateKey(seriesKey) + ":seen:" + eventID }

// State keeps inventory positions in Redis, one hash per series, changed by
// one Lua script per event.
type State struct {
	rdb    redis.Cmdable
	script *redis.Script
	ttl    time.Duration
	cfg    StateConfig
	// With a guard key the script applies only while it exists: see
	// Guarded (pkg/recovery).
	guardKey string
}

// Service names the replenishment service's state in pkg/recovery.
const Service = "replenishment"

// Guarded returns the store applying events only while the state sentinel
// exists, so nothing is written into a Redis that lost the state.
func (s *State) Guarded() *State {
	c := *s
	c.guardKey = recovery.Key(Service)
	return &c
}

// Rebuilding returns the store as a rebuild holding the recovery lock
// writes it: applying only while the lock exists.
func (s *State) Rebuilding() *State {
	c := *s
	c.guardKey = recovery.LockKey(Service)
	return &c
}

// AppliedKey is the list of the outcomes of a series' last batch of events
// with a position, whose newest entry is the series' offset watermark
// (state.lua).
func AppliedKey(seriesKey string) string { return StateKey(seriesKey) + ":applied" }

// WithMarkers returns the store recording every event in a marker of its
// own (StateConfig.Markers), as the Redis-loss rebuild writes.
func (s *State) WithMarkers() *State {
	c := *s
	c.cfg.Markers = true
	return &c
}

// keys are the script's KEYS for an event of a series.
func (s *State) keys(series, eventID string) []string {
	keys := []string{StateKey(series), SeenKey(series, eventID), JournalKey(series), StockoutsKey(series), AppliedKey(series)}
	if s.guardKey != "" {
		keys = append(keys, s.guardKey)
	}
	return keys
}

var _ planning.StateStore = (*State)(nil)

// NewState returns the state store; seenTTL is how long an applied event is
// remembered (a redelivery after that would apply it again).
func NewState(rdb redis.Cmdable, seenTTL time.Duration) *State {
	return NewStateWith(rdb, StateConfig{SeenTTL: seenTTL, ReviseThreshold: DefaultReviseThreshold,
		ReviseMinUnits: DefaultReviseMinUnits, ReviseInterval: DefaultReviseInterval, SnapshotWindow: DefaultSnapshotWindow})
}

// NewStateWith returns the state store configured by cfg.
func NewStateWith(rdb redis.Cmdable, cfg StateConfig) *State {
	return &State{rdb: rdb, script: redis.NewScript(stateLua), ttl: cfg.SeenTTL, cfg: cfg}
}

// JournalKey is the zset of a series' on-hand movements by event time.
func JournalKey(seriesKey string) string { return StateKey(seriesKey) + ":journal" }

// StockoutsKey is the list of a series' closed stockout periods.
func StockoutsKey(seriesKey string) string { return StateKey(seriesKey) + ":stockouts" }

// Apply runs the steps' scripts in one pipeline, in order. Each script is
// atomic and idempotent, so after an error the caller may retry all steps.
func (s *State) Apply(ctx context.Context, steps []planning.Step) ([]planning.Outcome, error) {
	if len(steps) == 0 {
		return nil, nil
	}
	cmds, err := s.run(ctx, steps)
	if redis.HasErrorPrefix(err, "NOSCRIPT") {
		// Redis lost its script cache (restart, failover): load and run again;
		// the steps that did apply return their recorded outcomes.
		if err := s.script.Load(ctx, s.rdb).Err(); err != nil {
			return nil, fmt.Errorf("load state script: %w", err)
		}
		cmds, err = s.run(ctx, steps)
	}
	if err != nil {
		return nil, fmt.Errorf("apply %d events to inventory state: %w", len(steps), err)
	}
	out := make([]planning.Outcome, len(steps))
	for i, cmd := range cmds {
		o, err := parseOutcome(cmd.Val())
		if err != nil {
			return nil, fmt.Errorf("read outcome of event %s of %s: %w", steps[i].EventID, seriesKey(steps[i].Series), err)
		}
		out[i] = o
	}
	return out, nil
}

func (s *State) run(ctx context.Context, steps []planning.Step) ([]*redis.Cmd, error) {
	pipe := s.rdb.Pipeline()
	cmds := make([]*redis.Cmd, len(steps))
	ttl := strconv.FormatInt(int64(max(s.ttl, time.Second)/time.Second), 10)
	for i, st := range steps {
		key := seriesKey(st.Series)
		rop, out := "", ""
		if st.HasReorderPoint {
			rop, out = formatFloat(st.ReorderPoint), formatFloat(st.OrderUpTo)
		}
		off, part, start := "", "", ""
		if st.Pos != nil && !s.cfg.Markers {
			off, part, start = strconv.FormatInt(st.Pos.Offset, 10), strconv.Itoa(int(st.Pos.Partition)), strconv.FormatInt(st.Pos.Start, 10)
		}
		at := ""
		if st.Change.OccurredAtNs != 0 {
			at = strconv.FormatInt(st.Change.OccurredAtNs, 10)
		}
		cmds[i] = s.script.EvalSha(ctx, pipe, s.keys(key, st.EventID),
			ttl, string(st.Change.Kind), formatFloat(st.Change.Quantity), formatFloat(st.Change.Reserved),
			st.Change.PurchaseOrderID, st.Change.ExpectedDay, rop, encodeEffective(st.Policy), st.EventID,
			out, formatFloat(s.cfg.ReviseThreshold), at, st.Change.SupplierID,
			strconv.FormatInt(int64(s.cfg.SnapshotWindow), 10), encodeLeadTime(st.LeadTime), st.Change.Category,
			periodicArg(st), st.ReviewDay,
			formatFloat(max(s.cfg.ReviseMinUnits, st.Policy.PackSize)), strconv.FormatInt(int64(s.cfg.ReviseInterval), 10),
			decidedAt(st), reviewToday(st), off, part, start)
		if st.Forecast != nil {
			pipe.Set(ctx, ForecastKey(key), st.Forecast, 0)
		}
	}
	_, err := pipe.Exec(ctx)
	return cmds, err
}

// ForecastKey holds a series' latest forecast event (without its cause).
func ForecastKey(seriesKey string) string { return StateKey(seriesKey) + ":forecast" }

// LastForecast returns the series' latest forecast event, nil if none.
func (s *State) LastForecast(ctx context.Context, series planning.Scope) ([]byte, error) {
	raw, err := s.rdb.Get(ctx, ForecastKey(seriesKey(series))).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read latest forecast of %s: %w", seriesKey(series), err)
	}
	return raw, nil
}

// ScanSeries pages through the latest-forecast keys (SCAN, so Redis is never
// blocked), of one location or of all.
func (s *State) ScanSeries(ctx context.Context, location string, cursor uint64, count int64) ([]planning.Scope, uint64, error) {
	match := ForecastKey("*|" + globEscape(location))
	if location == "" {
		match = ForecastKey("*")
	}
	keys, next, err := s.rdb.Scan(ctx, cursor, match, count).Result()
	if err != nil {
		return nil, 0, fmt.Errorf("scan series: %w", err)
	}
	out := make([]planning.Scope, 0, len(keys))
	for _, k := range keys {
		inner := strings.TrimSuffix(strings.TrimPrefix(k, "stockcast:r:{"), "}:forecast")
		sku, loc, ok := strings.Cut(inner, "|")
		if !ok || sku == "" || (location != "" && loc != location) {
			continue
		}
		out = append(out, planning.Scope{SKU: sku, Location: loc})
	}
	return out, next, nil
}

// globEscape quotes the glob characters of a SCAN MATCH pattern.
func globEscape(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch r {
		case '*', '?', '[', ']', '\\', '^', '-':
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// SeriesInfo reads the series' learned lead times (field "lt") and categories.
func (s *State) SeriesInfo(ctx context.Context, series []planning.Scope) (map[planning.Scope]planning.SeriesInfo, error) {
	pipe := s.rdb.Pipeline()
	cmds := queueSeriesInfo(ctx, pipe, series)
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, fmt.Errorf("read lead times and categories of %d series: %w", len(series), err)
	}
	return readSeriesInfo(series, cmds)
}

var _ planning.SeriesPolicyReader = (*State)(nil)

// SeriesInfoAndPolicies is SeriesInfo(series) and Policies.Lookup(policies)
// in one pipeline: one round trip before each run of steps instead of two.
func (s *State) SeriesInfoAndPolicies(ctx context.Context, series, policies []planning.Scope) (map[planning.Scope]planning.SeriesInfo, map[planning.Scope]replenish.ServicePolicy, error) {
	pipe := s.rdb.Pipeline()
	infoCmds := queueSeriesInfo(ctx, pipe, series)
	policyCmds := queuePolicies(ctx, pipe, policies)
	// A missing policy is redis.Nil; every command's own error is read below.
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, nil, fmt.Errorf("read lead times and categories of %d series and %d policies: %w", len(series), len(policies), err)
	}
	info, err := readSeriesInfo(series, infoCmds)
	if err != nil {
		return nil, nil, err
	}
	stored, err := readPolicies(policies, policyCmds)
	if err != nil {
		return nil, nil, fmt.Errorf("look up policies: %w", err)
	}
	return info, stored, nil
}

// queueSeriesInfo queues the reads of SeriesInfo.
func queueSeriesInfo(ctx context.Context, pipe redis.Pipeliner, series []planning.Scope) []*redis.SliceCmd {
	cmds := make([]*redis.SliceCmd, len(series))
	for i, sc := range series {
		cmds[i] = pipe.HMGet(ctx, StateKey(seriesKey(sc)), "lt", "category")
	}
	return cmds
}

// readSeriesInfo reads the replies of queueSeriesInfo.
func readSeriesInfo(series []planning.Scope, cmds []*redis.SliceCmd) (map[planning.Scope]planning.SeriesInfo, error) {
	out := make(map[planning.Scope]planning.SeriesInfo)
	for i, cmd := range cmds {
		if err := cmd.Err(); err != nil {
			return nil, fmt.Errorf("read lead time and category of %s: %w", seriesKey(series[i]), err)
		}
		vals := cmd.Val()
		var info planning.SeriesInfo
		if raw, ok := vals[0].(string); ok {
			lt, err := parseLeadTime(raw)
			if err != nil {
				return nil, fmt.Errorf("lead time of %s: %w", seriesKey(series[i]), err)
			}
			info.LeadTime = lt
		}
		info.Category, _ = vals[1].(string)
		if info != (planning.SeriesInfo{}) {
			out[series[i]] = info
		}
	}
	return out, nil
}

// parseLeadTime reads the script's "n mean m2".
func parseLeadTime(raw string) (replenish.LeadTimeStats, error) {
	var n int
	var mean, m2 float64
	if _, err := fmt.Sscan(raw, &n, &mean, &m2); err != nil {
		return replenish.LeadTimeStats{}, fmt.Errorf("malformed %q: %w", raw, err)
	}
	lt := replenish.LeadTimeStats{N: n, Mean: mean}
	if n > 1 {
		lt.Variance = m2 / float64(n-1)
	}
	return lt, nil
}

// encodeLeadTime records the lead time a decision used ("" for the policy's).
func encodeLeadTime(lt replenish.LeadTimeStats) string {
	if lt.N == 0 {
		return ""
	}
	return strconv.Itoa(lt.N) + " " + formatFloat(lt.Mean) + " " + formatFloat(lt.Variance)
}

func decodeLeadTime(raw string) (replenish.LeadTimeStats, error) {
	if raw == "" {
		return replenish.LeadTimeStats{}, nil
	}
	var lt replenish.LeadTimeStats
	if _, err := fmt.Sscan(raw, &lt.N, &lt.Mean, &lt.Variance); err != nil {
		return lt, fmt.Errorf("decode recorded lead time %q: %w", raw, err)
	}
	return lt, nil
}

// Position reads a series' current position, for tests and operators.
func (s *State) Position(ctx context.Context, sku, location string) (replenish.Position, error) {
	vals, err := s.rdb.HMGet(ctx, StateKey(seriesKey(planning.Scope{SKU: sku, Location: location})),
		"on_hand", "on_order", "backorders").Result()
	if err != nil {
		return replenish.Position{}, fmt.Errorf("read position of %s|%s: %w", sku, location, err)
	}
	var nums [3]float64
	for i, v := range vals {
		if v == nil {
			continue
		}
		if nums[i], err = strconv.ParseFloat(v.(string), 64); err != nil {
			return replenish.Position{}, fmt.Errorf("read position of %s|%s: %w", sku, location, err)
		}
	}
	return replenish.Position{OnHand: nums[0], OnOrder: nums[1], Backorders: nums[2]}, nil
}

func seriesKey(s planning.Scope) string { return s.SKU + "|" + s.Location }

// formatFloat is the shortest text that parses back to x exactly.
func formatFloat(x float64) string { return strconv.FormatFloat(x, 'g', -1, 64) }

// parseOutcome reads the script's reply {replayed, field, value, ...}.
func parseOutcome(v any) (planning.Outcome, error) {
	reply, ok := v.([]any)
	if !ok || len(reply) == 0 || len(reply)%2 != 1 {
		return planning.Outcome{}, fmt.Errorf("unexpected script reply %v", v)
	}
	replayed, _ := reply[0].(int64)
	fields := make(map[string]string, len(reply)/2)
	for i := 1; i+1 < len(reply); i += 2 {
		k, _ := reply[i].(string)
		val, _ := reply[i+1].(string)
		fields[k] = val
	}
	var o planning.Outcome
	var err error
	num := func(name string) float64 {
		if err != nil {
			return 0
		}
		var x float64
		if x, err = strconv.ParseFloat(fields[name], 64); err != nil {
			err = fmt.Errorf("field %s: %w", name, err)
		}
		return x
	}
	o.Replayed = replayed == 1
	o.Position = replenish.Position{OnHand: num("on_hand"), OnOrder: num("on_order"), Backorders: num("backorders")}
	if err == nil {
		if o.DecisionSeq, err = strconv.ParseInt(fields["decision_seq"], 10, 64); err != nil {
			err = fmt.Errorf("field decision_seq: %w", err)
		}
	}
	o.Crossed = fields["crossed"] == "1"
	o.StockoutSignal = fields["stockout_signal"]
	if o.Crossed {
		o.ReorderPoint = num("reorder_point")
		if err == nil {
			o.Policy, err = decodeEffective(fields["policy"])
		}
		o.Reason = reasons[fields["reason"]]
		if err == nil {
			o.LeadTime, err = decodeLeadTime(fields["lead_time"])
		}
	}
	return o, err
}

// reasons maps the script's reason words to the contract; a marker written
// before reasons existed ("") is a crossing.
var reasons = map[string]replenishmentv1.ProposalReason{
	"":                 replenishmentv1.ProposalReason_PROPOSAL_REASON_CROSSED_REORDER_POINT,
	"crossed":          replenishmentv1.ProposalReason_PROPOSAL_REASON_CROSSED_REORDER_POINT,
	"forecast_changed": replenishmentv1.ProposalReason_PROPOSAL_REASON_FORECAST_CHANGED,
	"policy_changed":   replenishmentv1.ProposalReason_PROPOSAL_REASON_POLICY_CHANGED,
	"stock_corrected":  replenishmentv1.ProposalReason_PROPOSAL_REASON_STOCK_CORRECTED,
	"periodic_review":  replenishmentv1.ProposalReason_PROPOSAL_REASON_PERIODIC_REVIEW,
}

// Defaults of StateConfig.
const (
	DefaultReviseThreshold = 0.5
	DefaultReviseMinUnits  = 2
	DefaultReviseInterval  = 24 * time.Hour
	DefaultSnapshotWindow  = 7 * 24 * time.Hour
)

// StateConfig configures the state store.
type StateConfig struct {
	// How long an applied event's marker, and a series' applied log after
	// its last batch, are kept.
	SeenTTL time.Duration
	// Markers records every event in a marker of its own, also events with
	// a position in forecasts.v1: needed without Kafka transactions
	// (-kafka.transactions=false), where a batch that was handled may be
	// delivered again from an older offset than the series' last batch.
	// Without it an event with a position is recorded in the series'
	// applied log (state.lua). Not a flag: the service sets it.
	Markers bool
	// Relative move of the order-up-to level that revises an open proposal.
	ReviseThreshold float64
	// A revision for a new forecast also needs the order-up-to level to
	// move by at least this many units, and at least one pack of the policy.
	ReviseMinUnits float64
	// A revision for a new forecast comes at least this much event time
	// after the series' last decision.
	ReviseInterval time.Duration
	// How much later than the movements it counts a snapshot may arrive
	// and still be reconciled at its event time.
	SnapshotWindow time.Duration
}

// RegisterFlags registers -<prefix>dedup-ttl, -<prefix>revise-threshold,
// -<prefix>revise-min-units, -<prefix>revise-interval and
// -<prefix>snapshot-window.
func (c *StateConfig) RegisterFlags(fs *flag.FlagSet, prefix string) {
	fs.DurationVar(&c.SeenTTL, prefix+"dedup-ttl", 7*24*time.Hour,
		"how long an applied event is remembered; a redelivery later than this would be applied again")
	fs.Float64Var(&c.ReviseThreshold, prefix+"revise-threshold", DefaultReviseThreshold,
		"while a proposal is open, a move of the order-up-to level by more than this share of the proposal's revises it (0: never)")
	fs.Float64Var(&c.ReviseMinUnits, prefix+"revise-min-units", DefaultReviseMinUnits,
		"a revision for a new forecast also needs the order-up-to level to move by at least this many units (and at least the policy's pack size)")
	fs.DurationVar(&c.ReviseInterval, prefix+"revise-interval", DefaultReviseInterval,
		"a revision for a new forecast comes at least this much event time after the series' last decision (0: no spacing)")
	fs.DurationVar(&c.SnapshotWindow, prefix+"snapshot-window", DefaultSnapshotWindow,
		"on-hand movements are journaled this long by event time, so a later-arriving snapshot is reconciled at its own time")
}

// Validate checks the TTL, threshold and window.
func (c *StateConfig) Validate() error {
	switch {
	case c.SeenTTL < time.Second:
		return fmt.Errorf("dedup ttl %v: want at least 1s", c.SeenTTL)
	case !(c.ReviseThreshold >= 0) || math.IsInf(c.ReviseThreshold, 1):
		return fmt.Errorf("revise threshold %v: want >= 0", c.ReviseThreshold)
	case !(c.ReviseMinUnits >= 0) || math.IsInf(c.ReviseMinUnits, 1):
		return fmt.Errorf("revise min units %v: want >= 0", c.ReviseMinUnits)
	case c.ReviseInterval < 0:
		return fmt.Errorf("revise interval %v: want >= 0", c.ReviseInterval)
	case c.SnapshotWindow < time.Second:
		return fmt.Errorf("snapshot window %v: want at least 1s", c.SnapshotWindow)
	}
	return nil
}

// periodicArg is the script's ARGV[17]: "periodic" for a periodic review
// (R, S) decision rule, else empty.
func periodicArg(st planning.Step) string {
	if st.Periodic {
		return "periodic"
	}
	return ""
}

// decidedAt is the script's ARGV[21]: the step's decision time in ns, or
// empty when unknown.
func decidedAt(st planning.Step) string {
	if st.DecidedAtNs == 0 {
		return ""
	}
	return strconv.FormatInt(st.DecidedAtNs, 10)
}

// reviewToday is the script's ARGV[22]: "1" when the step's review day is
// the event's own day.
func reviewToday(st planning.Step) string {
	if st.ReviewIsToday {
		return "1"
	}
	return ""
}
