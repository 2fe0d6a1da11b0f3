package insight

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"math"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/stockcast/stockcast/pkg/kafkax"
	"github.com/stockcast/stockcast/pkg/topics"
	alertv1 "github.com/stockcast/stockcast/proto/stockcast/alert/v1"
)

// Rule names as the API shows them (the enum names without their prefix).
const (
	RuleStockout = "STOCKOUT_WITHIN_LEAD_TIME"
	RuleBias     = "FORECAST_BIAS"
	RuleDLQSpike = "DLQ_SPIKE"
)

// Alert is one fired rule.
type Alert struct {
	ID         string            `json:"alert_id"`
	Rule       string            `json:"rule"`
	Severity   string            `json:"severity"` // WARNING or CRITICAL
	Subject    string            `json:"subject"`
	SKU        string            `json:"sku,omitempty"`
	Location   string            `json:"location,omitempty"`
	Summary    string            `json:"summary"`
	Value      float64           `json:"value"`
	Threshold  float64           `json:"threshold"`
	ObservedAt time.Time         `json:"observed_at"`
	FiredAt    time.Time         `json:"fired_at"`
	Labels     map[string]string `json:"labels"`
}

// AlertID is the deterministic id of an alert: the rule, its subject and
// the decision or window it was found in. The same state evaluated again
// gives the same id.
func AlertID(rule, subject, occasion string) string {
	h := sha256.Sum256([]byte(rule + "\x00" + subject + "\x00" + occasion))
	return hex.EncodeToString(h[:16])
}

// StockoutAlerts fires for every stockout risk (StockoutRisks): critical
// when the stockout is at most half the lead time away. One alert per
// proposal.
func StockoutAlerts(st State) []Alert {
	var out []Alert
	for _, r := range StockoutRisks(st) {
		sev := "WARNING"
		if float64(r.DaysToStockout) <= float64(r.LeadTimeDays)/2 {
			sev = "CRITICAL"
		}
		observed, _ := time.Parse(time.DateOnly, r.DecidedDay)
		out = append(out, Alert{
			ID: AlertID(RuleStockout, r.SeriesKey, r.ProposalID), Rule: RuleStockout, Severity: sev,
			Subject: r.SeriesKey, SKU: r.SKU, Location: r.Location,
			Summary: fmt.Sprintf("%s at %s: stockout projected on %s, %d days after %s, within the %d-day lead time",
				r.SKU, r.Location, r.StockoutDay, r.DaysToStockout, r.DecidedDay, r.LeadTimeDays),
			Value: float64(r.DaysToStockout), Threshold: float64(r.LeadTimeDays), ObservedAt: observed,
			Labels: map[string]string{"proposal_id": r.ProposalID, "projected_stockout_day": r.StockoutDay,
				"proposal_status": r.ProposalStatus},
		})
	}
	return out
}

// BiasRule configures the forecast bias rule.
type BiasRule struct {
	WindowDays int     // complete days before today looked at
	MinDays    int     // series-days needed in the window
	Threshold  float64 // |Σ(f − a)/Σ a| beyond this fires
}

// BiasAlerts fires for every series whose signed relative error over the
// window (es: the window's errors sorted by series) is beyond the threshold,
// with at least MinDays days and some demand; critical beyond twice the
// threshold. windowEnd (the window's last day) makes the id: one alert per
// series and window.
func BiasAlerts(es []DayError, windowEnd string, rule BiasRule) []Alert {
	var out []Alert
	observed, _ := time.Parse(time.DateOnly, windowEnd)
	for _, s := range BySeries(es) {
		if s.Days < rule.MinDays || s.Bias == nil || math.Abs(*s.Bias) <= rule.Threshold {
			continue
		}
		sev := "WARNING"
		if math.Abs(*s.Bias) > 2*rule.Threshold {
			sev = "CRITICAL"
		}
		dir := "over"
		if *s.Bias < 0 {
			dir = "under"
		}
		sku, loc, _ := strings.Cut(s.SeriesKey, "|")
		out = append(out, Alert{
			ID: AlertID(RuleBias, s.SeriesKey, windowEnd), Rule: RuleBias, Severity: sev,
			Subject: s.SeriesKey, SKU: sku, Location: loc,
			Summary: fmt.Sprintf("%s at %s: forecasts %s by %.0f%% over the %d days to %s (forecast %.1f, sold %.1f)",
				sku, loc, dir+"shoot", math.Abs(*s.Bias)*100, s.Days, windowEnd, s.Forecast, s.Actual),
			Value: *s.Bias, Threshold: rule.Threshold, ObservedAt: observed,
			Labels: map[string]string{"window_end": windowEnd, "days": fmt.Sprint(s.Days)},
		})
	}
	return out
}

// DLQRule configures the DLQ spike rule.
type DLQRule struct {
	Window    time.Duration // windows are aligned to multiples of it (Unix time)
	Threshold float64       // records per minute
}

// DLQSpikeAlerts fires for every reason and window whose dead-lettered
// records per minute exceed the threshold; critical beyond ten times it.
// times are the records' timestamps by reason.
func DLQSpikeAlerts(times map[string][]time.Time, rule DLQRule) []Alert {
	var out []Alert
	if rule.Window <= 0 {
		return out
	}
	mins := rule.Window.Minutes()
	for reason, ts := range times {
		counts := map[int64]int{}
		for _, t := range ts {
			counts[t.UnixNano()/int64(rule.Window)]++
		}
		for b, n := range counts {
			rate := float64(n) / mins
			if rate <= rule.Threshold {
				continue
			}
			start := time.Unix(0, b*int64(rule.Window)).UTC()
			sev := "WARNING"
			if rate > 10*rule.Threshold {
				sev = "CRITICAL"
			}
			out = append(out, Alert{
				ID: AlertID(RuleDLQSpike, reason, start.Format(time.RFC3339)), Rule: RuleDLQSpike, Severity: sev,
				Subject: reason,
				Summary: fmt.Sprintf("%d records dead-lettered for %s in the %s from %s (%.2f a minute)",
					n, reason, rule.Window, start.Format(time.RFC3339), rate),
				Value: rate, Threshold: rule.Threshold, ObservedAt: start,
				Labels: map[string]string{"reason": reason, "count": fmt.Sprint(n), "window": rule.Window.String()},
			})
		}
	}
	return out
}

// SortAlerts orders alerts: critical first, then newest observation, then id.
func SortAlerts(as []Alert) {
	sort.Slice(as, func(i, j int) bool {
		if as[i].Severity != as[j].Severity {
			return as[i].Severity == "CRITICAL"
		}
		if !as[i].ObservedAt.Equal(as[j].ObservedAt) {
			return as[i].ObservedAt.After(as[j].ObservedAt)
		}
		return as[i].ID < as[j].ID
	})
}

// ToProto converts an alert to its alerts.v1 message.
func (a Alert) ToProto() *alertv1.Alert {
	return &alertv1.Alert{
		AlertId: a.ID, Rule: alertv1.AlertRule(alertv1.AlertRule_value["ALERT_RULE_"+a.Rule]),
		Severity: alertv1.AlertSeverity(alertv1.AlertSeverity_value["ALERT_SEVERITY_"+a.Severity]),
		Subject:  a.Subject, Sku: a.SKU, Location: a.Location, Summary: a.Summary, Value: a.Value, Threshold: a.Threshold,
		FiredAt: timestamppb.New(a.FiredAt), ObservedAt: timestamppb.New(a.ObservedAt), Labels: a.Labels,
	}
}

// AlertConfig configures the rules and the evaluator.
type AlertConfig struct {
	Interval time.Duration
	Bias     BiasRule
	DLQ      DLQRule
}

// RegisterFlags registers the -alerts.* flags.
func (c *AlertConfig) RegisterFlags(fs *flag.FlagSet) {
	fs.DurationVar(&c.Interval, "alerts.interval", time.Minute, "how often the alert rules are evaluated")
	fs.IntVar(&c.Bias.WindowDays, "alerts.bias-window-days", 7, "forecast bias rule: complete days looked at")
	fs.IntVar(&c.Bias.MinDays, "alerts.bias-min-days", 3, "forecast bias rule: days with a forecast a series needs")
	fs.Float64Var(&c.Bias.Threshold, "alerts.bias-threshold", 0.5, "forecast bias rule: fire when |Σ(forecast − sold)/Σ sold| exceeds this")
	fs.DurationVar(&c.DLQ.Window, "alerts.dlq-window", 5*time.Minute, "DLQ spike rule: window (aligned to multiples of it)")
	fs.Float64Var(&c.DLQ.Threshold, "alerts.dlq-threshold", 10, "DLQ spike rule: fire above this many dead-lettered records a minute in a window")
}

// Validate checks the configuration.
func (c *AlertConfig) Validate() error {
	var errs []error
	if c.Interval <= 0 {
		errs = append(errs, errors.New("-alerts.interval must be positive"))
	}
	if c.Bias.WindowDays < 1 || c.Bias.MinDays < 1 || c.Bias.Threshold <= 0 {
		errs = append(errs, errors.New("-alerts.bias-*: window and min days at least 1, threshold positive"))
	}
	if c.DLQ.Window < time.Second || c.DLQ.Threshold < 0 {
		errs = append(errs, errors.New("-alerts.dlq-*: window at least 1s, threshold not negative"))
	}
	return errors.Join(errs...)
}

var errNoReader = errors.New("no reader")

// Publisher writes records and waits for their acknowledgement
// (kafkax.Producer).
type Publisher interface {
	Produce(ctx context.Context, recs ...*kgo.Record) error
}

// Evaluator evaluates the rules periodically, keeps the current alerts for
// the console and publishes each alert id once to alerts.v1.
type Evaluator struct {
	cfg    AlertConfig
	reader *Reader
	dlq    func() map[string][]time.Time
	pub    Publisher
	log    *slog.Logger
	now    func() time.Time

	mu          sync.Mutex
	current     []Alert
	firstSeen   map[string]time.Time
	published   map[string]bool
	evaluations int
	lastErr     string
	lastAt      time.Time
	kpis        *KPIs
}

// NewEvaluator evaluates the rules on reader's state and dlq's timestamps.
func NewEvaluator(cfg AlertConfig, reader *Reader, dlq func() map[string][]time.Time, pub Publisher, log *slog.Logger, now func() time.Time) *Evaluator {
	return &Evaluator{cfg: cfg, reader: reader, dlq: dlq, pub: pub, log: log, now: now,
		current: []Alert{}, firstSeen: map[string]time.Time{}, published: map[string]bool{}}
}

// SeedPublished reads alerts.v1 from the start to its end as of now and
// marks every alert id found as published, so a restarted console does not
// publish the same alerts again. It returns how many ids it found.
func (e *Evaluator) SeedPublished(ctx context.Context, brokers []string) (int, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kafkax.ReadCommitted())
	if err != nil {
		return 0, fmt.Errorf("create alerts reader: %w", err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ends, err := adm.ListEndOffsets(ctx, topics.Alerts)
	if err != nil {
		return 0, fmt.Errorf("read %s end offsets: %w", topics.Alerts, err)
	}
	want := map[int32]kgo.Offset{}
	left := map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Err == nil && o.Offset > 0 {
			want[o.Partition] = kgo.NewOffset().AtStart()
			left[o.Partition] = o.Offset
		}
	})
	if len(left) == 0 {
		return 0, nil
	}
	cl.AddConsumePartitions(map[string]map[int32]kgo.Offset{topics.Alerts: want})
	ids := map[string]bool{}
	for len(left) > 0 {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return len(ids), fmt.Errorf("read %s: %w", topics.Alerts, err)
		}
		fs.EachRecord(func(r *kgo.Record) {
			ids[string(r.Key)] = true
			if r.Offset+1 >= left[r.Partition] {
				delete(left, r.Partition)
			}
		})
	}
	e.mu.Lock()
	for id := range ids {
		e.published[id] = true
	}
	e.mu.Unlock()
	return len(ids), nil
}

// Run evaluates at once and then every interval until ctx is done.
func (e *Evaluator) Run(ctx context.Context) error {
	t := time.NewTicker(e.cfg.Interval)
	defer t.Stop()
	for {
		ectx, cancel := context.WithTimeout(ctx, e.cfg.Interval+30*time.Second)
		if err := e.Evaluate(ectx); err != nil && ctx.Err() == nil {
			e.log.Warn("evaluate alert rules", "err", err)
		}
		cancel()
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Evaluate runs every rule once, then publishes the alerts not yet
// published.
func (e *Evaluator) Evaluate(ctx context.Context) error {
	now := e.now().UTC()
	var alerts []Alert
	var errs []error
	var st State
	var err error
	if e.reader == nil {
		err = errNoReader
	} else {
		st, err = e.reader.ReadState(ctx)
	}
	if err == errNoReader {
		// DLQ rule only (tests).
	} else if err != nil {
		errs = append(errs, err)
	} else {
		if n, err := e.reader.ProposalsOn(ctx, st.Today); err != nil {
			errs = append(errs, err)
		} else {
			k := ComputeKPIs(st, n)
			e.mu.Lock()
			e.kpis = &k
			e.mu.Unlock()
		}
		alerts = append(alerts, StockoutAlerts(st)...)
		if from, to, ok := ErrorWindow(st.Today, e.cfg.Bias.WindowDays); ok {
			es, err := e.reader.ForecastErrors(ctx, from, to, "")
			if err != nil {
				errs = append(errs, err)
			} else {
				alerts = append(alerts, BiasAlerts(es, to, e.cfg.Bias)...)
			}
		}
	}
	if e.dlq != nil {
		alerts = append(alerts, DLQSpikeAlerts(e.dlq(), e.cfg.DLQ)...)
	}
	e.mu.Lock()
	var fresh []*kgo.Record
	for i := range alerts {
		a := &alerts[i]
		if t, ok := e.firstSeen[a.ID]; ok {
			a.FiredAt = t
		} else {
			a.FiredAt = now
			e.firstSeen[a.ID] = now
		}
		if !e.published[a.ID] && e.pub != nil {
			v, err := proto.Marshal(a.ToProto())
			if err != nil {
				errs = append(errs, err)
				continue
			}
			fresh = append(fresh, &kgo.Record{Topic: topics.Alerts, Key: []byte(a.ID), Value: v,
				Headers: []kgo.RecordHeader{{Key: topics.HeaderContentType, Value: []byte(topics.ContentTypeProtobuf)}}})
		}
	}
	SortAlerts(alerts)
	if len(errs) == 0 {
		e.current = alerts
	}
	e.mu.Unlock()
	if len(fresh) > 0 {
		if err := e.pub.Produce(ctx, fresh...); err != nil {
			errs = append(errs, fmt.Errorf("publish alerts: %w", err))
		} else {
			e.mu.Lock()
			for _, r := range fresh {
				e.published[string(r.Key)] = true
			}
			e.mu.Unlock()
		}
	}
	err = errors.Join(errs...)
	e.mu.Lock()
	e.evaluations++
	e.lastAt = now
	e.lastErr = ""
	if err != nil {
		e.lastErr = err.Error()
	}
	e.mu.Unlock()
	return err
}

// AlertsView is what the console shows.
type AlertsView struct {
	Alerts      []Alert   `json:"alerts"`
	Critical    int       `json:"critical"`
	Evaluations int       `json:"evaluations"`
	Published   int       `json:"published"`
	EvaluatedAt time.Time `json:"evaluated_at"`
	Error       string    `json:"error,omitempty"`
	KPIs        *KPIs     `json:"-"` // of the last evaluation's state
}

// View returns the current alerts.
func (e *Evaluator) View() AlertsView {
	e.mu.Lock()
	defer e.mu.Unlock()
	v := AlertsView{Alerts: append([]Alert{}, e.current...), Evaluations: e.evaluations, Published: len(e.published),
		EvaluatedAt: e.lastAt, Error: e.lastErr, KPIs: e.kpis}
	for _, a := range e.current {
		if a.Severity == "CRITICAL" {
			v.Critical++
		}
	}
	return v
}
