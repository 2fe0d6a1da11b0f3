// Package api is the console's HTTP surface: login and sessions, the JSON
// API the single-page app reads, the live event stream (SSE), the CSV
// export and the embedded app itself.
package api

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/stockcast/stockcast/pkg/modelregistry"
	"github.com/stockcast/stockcast/pkg/topics"
	featurev1 "github.com/stockcast/stockcast/proto/stockcast/feature/v1"
	forecastv1 "github.com/stockcast/stockcast/proto/stockcast/forecast/v1"
	replenishmentv1 "github.com/stockcast/stockcast/proto/stockcast/replenishment/v1"
	"github.com/stockcast/stockcast/services/console/internal/auth"
	"github.com/stockcast/stockcast/services/console/internal/insight"
	"github.com/stockcast/stockcast/services/console/internal/live"
	"github.com/stockcast/stockcast/services/console/internal/reports"
)

// Deps are what the handlers read from and write to.
type Deps struct {
	Users         auth.Users
	Sessions      *auth.Sessions
	Store         *Store
	Hub           *live.Hub
	Feature       featurev1.FeatureServiceClient
	Forecast      forecastv1.ForecastServiceClient
	Replenishment replenishmentv1.ReplenishmentServiceClient
	Assets        fs.FS // the built app: index.html and assets/
	Insight       *insight.Reader
	Alerts        *insight.Evaluator
	Models        *modelregistry.Registry
	ReportsDir    string // scheduled reports, listed and served
	Log           *slog.Logger
	Now           func() time.Time
	// CallTimeout bounds the upstream calls of one request; 0 means 5s.
	CallTimeout time.Duration
}

// Handler serves the console.
type Handler struct {
	d    Deps
	mux  *http.ServeMux
	oidc *oidcLogin // nil without -oidc.issuer

	// lastReport is the daily report built last: the Reports page's
	// downloads name its generated_at and get the same report (same
	// numbers as shown, without reading every table again).
	reportMu   sync.Mutex
	lastReport *reports.Report

	// the overview's ClickHouse part, read at ovAt (overviewTables)
	ovMu    sync.Mutex
	ovAt    time.Time
	ovFresh Freshness
	ovProps DayProposals
	ovErrs  []string
}

// maxPageSize bounds one page of proposals.
const maxPageSize = 500

// NewHandler builds the routes.
func NewHandler(d Deps) *Handler {
	if d.CallTimeout == 0 {
		d.CallTimeout = 5 * time.Second
	}
	h := &Handler{d: d, mux: http.NewServeMux()}
	m := h.mux
	m.HandleFunc("POST /api/login", h.login)
	m.HandleFunc("POST /api/logout", h.logout)
	m.HandleFunc("GET /api/login-options", h.loginOptions)
	m.Handle("GET /api/me", h.auth(auth.Viewer, h.me))
	m.Handle("GET /api/overview", h.auth(auth.Viewer, h.overview))
	m.Handle("GET /api/stream", h.auth(auth.Viewer, h.stream))
	m.Handle("GET /api/series", h.auth(auth.Viewer, h.searchSeries))
	m.Handle("GET /api/series/detail", h.auth(auth.Viewer, h.seriesDetail))
	m.Handle("GET /api/proposals", h.auth(auth.Viewer, h.listProposals))
	m.Handle("GET /api/proposals.csv", h.auth(auth.Viewer, h.exportProposals))
	m.Handle("GET /api/dlq", h.auth(auth.Viewer, h.dlq))
	m.Handle("PUT /api/policy", h.auth(auth.Planner, h.setPolicy))
	m.Handle("POST /api/proposals/{id}/approve", h.auth(auth.Planner, h.approve))
	m.Handle("POST /api/proposals/{id}/reject", h.auth(auth.Planner, h.reject))
	m.Handle("GET /api/alerts", h.auth(auth.Viewer, h.alerts))
	m.Handle("GET /api/models", h.auth(auth.Viewer, h.models))
	m.Handle("GET /api/reports", h.auth(auth.Viewer, h.listReports))
	m.Handle("GET /api/reports/daily", h.auth(auth.Viewer, h.dailyReport))
	m.Handle("GET /api/reports/files/{name}", h.auth(auth.Viewer, h.reportFile))
	m.HandleFunc("/api/", func(w http.ResponseWriter, _ *http.Request) { jsonError(w, http.StatusNotFound, "no such endpoint") })
	m.Handle("/", h.app())
	return h
}

// EnableOIDC adds the OpenID Connect login (/api/oidc/login and
// /api/oidc/callback); secure marks its state cookie Secure (TLS).
func (h *Handler) EnableOIDC(cfg OIDCConfig, secure bool) error {
	o, err := newOIDCLogin(cfg, secure)
	if err != nil {
		return err
	}
	h.oidc = o
	h.mux.HandleFunc("GET /api/oidc/login", h.oidcStart)
	h.mux.HandleFunc("GET /api/oidc/callback", h.oidcCallback)
	return nil
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hd := w.Header()
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("X-Frame-Options", "DENY")
	hd.Set("Referrer-Policy", "same-origin")
	hd.Set("Content-Security-Policy", "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'")
	h.mux.ServeHTTP(w, r)
}

type sessionKey struct{}

// auth admits requests with a live session of at least role min; unsafe
// methods must also carry the session's CSRF token and a same-origin Origin.
func (h *Handler) auth(min auth.Role, next http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sess, err := h.d.Sessions.Get(r)
		if err != nil {
			jsonError(w, http.StatusUnauthorized, "log in first")
			return
		}
		if !auth.SafeMethod(r.Method) && !auth.CheckCSRF(r, sess) {
			jsonError(w, http.StatusForbidden, "missing or wrong CSRF token")
			return
		}
		if sess.Role < min {
			jsonError(w, http.StatusForbidden, fmt.Sprintf("needs the %s role; you are %s", min, sess.Role))
			return
		}
		next(w, r.WithContext(context.WithValue(r.Context(), sessionKey{}, sess)))
	})
}

type meResponse struct {
	User string `json:"user"`
	Role string `json:"role"`
	CSRF string `json:"csrf_token"`
}

func (h *Handler) login(w http.ResponseWriter, r *http.Request) {
	if !auth.SameOrigin(r) {
		jsonError(w, http.StatusForbidden, "cross-origin login refused")
		return
	}
	var req struct {
		Username string `json:"username"`
		Password string `json:"password"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4096)).Decode(&req); err != nil {
		jsonError(w, http.StatusBadRequest, "want JSON {username, password}")
		return
	}
	u, ok := h.d.Users.Check(req.Username, req.Password)
	if !ok {
		h.d.Log.Info("login refused", "user", req.Username)
		jsonError(w, http.StatusUnauthorized, "wrong user name or password")
		return
	}
	sess := h.d.Sessions.Start(w, u)
	h.d.Log.Info("login", "user", u.Name, "role", u.Role.String())
	writeJSON(w, meResponse{User: sess.User, Role: sess.Role.String(), CSRF: sess.CSRF})
}

func (h *Handler) logout(w http.ResponseWriter, r *http.Request) {
	if sess, err := h.d.Sessions.Get(r); err == nil && !auth.CheckCSRF(r, sess) {
		jsonError(w, http.StatusForbidden, "missing or wrong CSRF token")
		return
	}
	h.d.Sessions.End(w, r)
	w.WriteHeader(http.StatusNoContent)
}

func session(r *http.Request) auth.Session { return r.Context().Value(sessionKey{}).(auth.Session) }

func (h *Handler) me(w http.ResponseWriter, r *http.Request) {
	s := session(r)
	writeJSON(w, meResponse{User: s.User, Role: s.Role.String(), CSRF: s.CSRF})
}

// Overview is the overview page's data.
type Overview struct {
	Live      live.Snapshot `json:"live"`
	Freshness Freshness     `json:"forecast_freshness"`
	Proposals DayProposals  `json:"proposals_today"`
	// KPIs and alert counts come from the alert evaluator's last run.
	KPIs        *insight.KPIs `json:"kpis"`
	Alerts      int           `json:"alerts"`
	Critical    int           `json:"critical_alerts"`
	Evaluations int           `json:"alert_evaluations"`
	Errors      []string      `json:"errors,omitempty"`
}

func (h *Handler) overviewData(ctx context.Context) Overview {
	o := Overview{Live: h.d.Hub.Snapshot()}
	o.Freshness, o.Proposals, o.Errors = h.overviewTables(ctx)
	if h.d.Alerts != nil {
		v := h.d.Alerts.View()
		o.KPIs, o.Alerts, o.Critical, o.Evaluations = v.KPIs, len(v.Alerts), v.Critical, v.Evaluations
	}
	return o
}

// overviewReuse is how long the overview's ClickHouse part (forecast
// freshness, proposals today: a scan of forecast_log and proposals FINAL)
// is shared by the requests and streams that ask for it, so that every
// open page costs the database one pair of queries a second at most.
const overviewReuse = time.Second

// overviewTables reads the overview's ClickHouse part, or reuses the one
// read less than overviewReuse ago; concurrent callers wait for one read.
func (h *Handler) overviewTables(ctx context.Context) (Freshness, DayProposals, []string) {
	h.ovMu.Lock()
	defer h.ovMu.Unlock()
	if now := time.Now(); !h.ovAt.IsZero() && now.Sub(h.ovAt) < overviewReuse {
		return h.ovFresh, h.ovProps, h.ovErrs
	}
	ctx, cancel := context.WithTimeout(ctx, h.d.CallTimeout)
	defer cancel()
	var errs []string
	fresh, err := h.d.Store.ForecastFreshness(ctx, h.d.Now())
	if err != nil {
		errs = append(errs, err.Error())
	}
	props, err := h.d.Store.ProposalsToday(ctx)
	if err != nil {
		errs = append(errs, err.Error())
	}
	h.ovFresh, h.ovProps, h.ovErrs, h.ovAt = fresh, props, errs, time.Now()
	return fresh, props, errs
}

func (h *Handler) overview(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, h.overviewData(r.Context()))
}

// stream sends the overview as a server-sent event after every scrape.
func (h *Handler) stream(w http.ResponseWriter, r *http.Request) {
	fl, ok := w.(http.Flusher)
	if !ok {
		jsonError(w, http.StatusInternalServerError, "streaming unsupported")
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Accel-Buffering", "no")
	ch, stop := h.d.Hub.Subscribe()
	defer stop()
	send := func() bool {
		b, err := json.Marshal(h.overviewData(r.Context()))
		if err != nil {
			return false
		}
		if _, err := fmt.Fprintf(w, "event: overview\ndata: %s\n\n", b); err != nil {
			return false
		}
		fl.Flush()
		return true
	}
	if !send() {
		return
	}
	for {
		select {
		case <-r.Context().Done():
			return
		case <-ch:
			if !send() {
				return
			}
		}
	}
}

func (h *Handler) dlq(w http.ResponseWriter, _ *http.Request) {
	s := h.d.Hub.Snapshot()
	writeJSON(w, map[string]any{"total": s.DLQTotal, "reasons": s.DLQ})
}

func (h *Handler) searchSeries(w http.ResponseWriter, r *http.Request) {
	q := strings.TrimSpace(r.URL.Query().Get("q"))
	ctx, cancel := context.WithTimeout(r.Context(), h.d.CallTimeout)
	defer cancel()
	hits, err := h.d.Store.SearchSeries(ctx, q, 25)
	if err != nil {
		h.fail(w, err)
		return
	}
	writeJSON(w, map[string]any{"series": hits})
}

// SeriesDetail is the series explorer's data.
type SeriesDetail struct {
	SeriesKey string          `json:"series_key"`
	SKU       string          `json:"sku"`
	Location  string          `json:"location"`
	History   []HistoryDay    `json:"history"`
	Forecast  *Forecast       `json:"forecast"`
	Proposal  *ProposalRow    `json:"latest_proposal"`
	Policy    *Policy         `json:"policy"`
	Projected []ProjectedDay  `json:"projected"`
	Events    []Event         `json:"events"`
	Errors    []string        `json:"errors,omitempty"`
	Features  *FeatureSummary `json:"features"`
	// Incoming are the open purchase orders, in the projection on their
	// expected day.
	Incoming []insight.IncomingOrder `json:"incoming"`
	// RecentError is the series' forecast error over the last complete days.
	RecentError *insight.ErrorStats `json:"recent_error"`
	ErrorFrom   string              `json:"error_from"`
	ErrorTo     string              `json:"error_to"`
}

// RecentErrorDays is the window of a series' recent forecast error.
const RecentErrorDays = 7

// HistoryDay is one day of demand.
type HistoryDay struct {
	Day      string  `json:"day"`
	Quantity float64 `json:"quantity"`
	Stockout bool    `json:"stockout"`
}

// FeatureSummary is a few of the series' features.
type FeatureSummary struct {
	Mean7       float64 `json:"mean_7"`
	Mean28      float64 `json:"mean_28"`
	HistoryDays int32   `json:"history_days"`
	Events      int64   `json:"events_applied"`
	Price       float64 `json:"price"`
	Stockout    bool    `json:"stockout"`
	AsOfDay     string  `json:"as_of_day"`
}

// Forecast is the latest forecast with its quantile bands.
type Forecast struct {
	ForecastID     string        `json:"forecast_id"`
	AsOf           string        `json:"as_of"`
	Model          string        `json:"model"`
	ModelVersion   string        `json:"model_version"`
	DemandClass    string        `json:"demand_class"`
	QuantileLevels []float64     `json:"quantile_levels"`
	Daily          []ForecastDay `json:"daily"`
	ReasonCode     string        `json:"reason_code"`
	ReasonDetail   string        `json:"reason_detail"`
	ReasonChange   float64       `json:"reason_change"`
	Components     []Component   `json:"components"`
	// Factors are the global model's features whose contributions moved
	// most since the series' previous forecast (why it changed).
	Factors              []Attribution `json:"factors"`
	PreviousModelVersion string        `json:"previous_model_version"`
	// Global is the global model's part, when the service has a champion.
	Global *GlobalPart `json:"global"`
}

// Attribution is one feature's contribution to the global prediction (on
// the model's link scale); a missing value is null.
type Attribution struct {
	Feature      string   `json:"feature"`
	Value        *float64 `json:"value"`
	Contribution float64  `json:"contribution"`
	Change       float64  `json:"change"`
}

// GlobalPart is the global model's share of a forecast and its largest
// contributions.
type GlobalPart struct {
	Version      string        `json:"version"`
	Weight       float64       `json:"weight"`
	Link         string        `json:"link"`
	Bias         float64       `json:"bias"`
	Attributions []Attribution `json:"attributions"` // the largest |contribution| first, at most maxAttributions
}

// maxAttributions bounds the contributions the series page shows.
const maxAttributions = 10

func toAttributions(as []*forecastv1.Attribution, limit int) []Attribution {
	out := []Attribution{}
	for _, a := range as {
		out = append(out, Attribution{Feature: a.GetFeature(), Value: finite(a.GetValue()), Contribution: zeroNaN(a.GetContribution()), Change: zeroNaN(a.GetChange())})
	}
	if limit > 0 {
		sort.SliceStable(out, func(i, j int) bool { return math.Abs(out[i].Contribution) > math.Abs(out[j].Contribution) })
		if len(out) > limit {
			out = out[:limit]
		}
	}
	return out
}

func finite(x float64) *float64 {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return nil
	}
	return &x
}

func zeroNaN(x float64) float64 {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return 0
	}
	return x
}

// ForecastDay is one forecast day.
type ForecastDay struct {
	Day       string    `json:"day"`
	Mean      float64   `json:"mean"`
	Quantiles []float64 `json:"quantiles"`
}

// Component is one factor of the forecast.
type Component struct {
	Name   string  `json:"name"`
	Value  float64 `json:"value"`
	Detail string  `json:"detail"`
}

// Policy is the series' replenishment policy.
type Policy struct {
	Source           string  `json:"source"`
	ServiceLevel     float64 `json:"service_level"`
	LeadTimeDays     int32   `json:"lead_time_days"`
	ReviewPeriodDays int32   `json:"review_period_days"`
	MOQ              float64 `json:"moq"`
	PackSize         float64 `json:"pack_size"`
	MaxOrder         float64 `json:"max_order"`
	OrderCoverDays   int32   `json:"order_cover_days"`
}

// ProjectedDay is the inventory position projected from the latest
// proposal's position by the forecast mean, and by its highest quantile
// (the pessimistic path).
type ProjectedDay struct {
	Day          string  `json:"day"`
	Expected     float64 `json:"expected"`
	Pessimistic  float64 `json:"pessimistic"`
	ReorderPoint float64 `json:"reorder_point"`
	Incoming     float64 `json:"incoming"` // units of open orders expected that day
}

func (h *Handler) seriesDetail(w http.ResponseWriter, r *http.Request) {
	sku, loc := r.URL.Query().Get("sku"), r.URL.Query().Get("location")
	if key := r.URL.Query().Get("key"); key != "" {
		var ok bool
		if sku, loc, ok = topics.SplitSeriesKey(key); !ok {
			jsonError(w, http.StatusBadRequest, "key must be sku|location")
			return
		}
	}
	if sku == "" || loc == "" {
		jsonError(w, http.StatusBadRequest, "give sku and location, or key")
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), h.d.CallTimeout)
	defer cancel()
	d := SeriesDetail{SeriesKey: topics.SeriesKey(sku, loc), SKU: sku, Location: loc, History: []HistoryDay{}, Events: []Event{}}
	note := func(what string, err error) {
		if err != nil && status.Code(err) != codes.NotFound {
			d.Errors = append(d.Errors, what+": "+err.Error())
		}
	}
	if f, err := h.d.Feature.GetFeatures(ctx, &featurev1.GetFeaturesRequest{Sku: sku, Location: loc, IncludeHistory: true}); err == nil {
		for _, day := range f.GetHistory() {
			d.History = append(d.History, HistoryDay{Day: day.GetDay(), Quantity: day.GetQuantity(), Stockout: day.GetStockout()})
		}
		if s := f.GetSnapshot(); s != nil {
			d.Features = &FeatureSummary{Mean7: s.GetMean_7(), Mean28: s.GetMean_28(), HistoryDays: s.GetHistoryDays(),
				Events: s.GetEventsApplied(), Price: s.GetPrice(), Stockout: s.GetStockout(), AsOfDay: s.GetAsOfDay()}
		}
	} else {
		note("features", err)
	}
	if ex, err := h.d.Forecast.Explain(ctx, &forecastv1.ExplainRequest{Sku: sku, Location: loc}); err == nil && ex.GetForecast() != nil {
		d.Forecast = toForecast(ex)
	} else {
		note("forecast", err)
	}
	if lp, err := h.d.Replenishment.ListProposals(ctx, &replenishmentv1.ListProposalsRequest{Sku: sku, Location: loc, PageSize: 1}); err == nil {
		if ps := lp.GetProposals(); len(ps) > 0 {
			d.Proposal = toProposalRow(ps[0])
		}
	} else {
		note("proposals", err)
	}
	if gp, err := h.d.Replenishment.GetPolicy(ctx, &replenishmentv1.GetPolicyRequest{Sku: sku, Location: loc}); err == nil {
		p := gp.GetPolicy()
		d.Policy = &Policy{Source: gp.GetSource(), ServiceLevel: p.GetServiceLevel(), LeadTimeDays: p.GetLeadTimeDays(),
			ReviewPeriodDays: p.GetReviewPeriodDays(), MOQ: p.GetMoq(), PackSize: p.GetPackSize(), MaxOrder: p.GetMaxOrder(),
			OrderCoverDays: p.GetOrderCoverDays()}
	} else {
		note("policy", err)
	}
	if ev, err := h.d.Store.SeriesEvents(ctx, d.SeriesKey, 100); err == nil {
		d.Events = ev
	} else {
		note("events", err)
	}
	d.Incoming = []insight.IncomingOrder{}
	if h.d.Insight != nil {
		if in, err := h.d.Insight.Incoming(ctx, d.SeriesKey); err == nil {
			d.Incoming = in
		} else {
			note("incoming orders", err)
		}
		var today string
		if len(d.History) > 0 {
			today = d.History[len(d.History)-1].Day
		}
		if from, to, ok := insight.ErrorWindow(today, RecentErrorDays); ok {
			d.ErrorFrom, d.ErrorTo = from, to
			if es, err := h.d.Insight.ForecastErrors(ctx, from, to, d.SeriesKey); err == nil {
				st := insight.Summarise(d.SeriesKey, es)
				d.RecentError = &st
			} else {
				note("forecast error", err)
			}
		}
	}
	d.Projected = Project(d.Forecast, d.Proposal, d.Incoming)
	writeJSON(w, d)
}

// Project walks the latest proposal's inventory position down the forecast:
// expected by the daily mean, pessimistic by the highest daily quantile.
// Open orders are already in the position (on order); Incoming marks the
// day each is expected. It is empty without both.
func Project(f *Forecast, p *ProposalRow, incoming []insight.IncomingOrder) []ProjectedDay {
	out := []ProjectedDay{}
	if f == nil || p == nil {
		return out
	}
	exp, pess := p.InventoryPosition, p.InventoryPosition
	for _, d := range f.Daily {
		exp -= d.Mean
		hi := d.Mean
		if n := len(d.Quantiles); n > 0 {
			hi = d.Quantiles[n-1]
		}
		pess -= hi
		in := 0.0
		for _, o := range incoming {
			if o.ExpectedDay == d.Day {
				in += o.Quantity
			}
		}
		out = append(out, ProjectedDay{Day: d.Day, Expected: exp, Pessimistic: pess, ReorderPoint: p.ReorderPoint, Incoming: in})
	}
	return out
}

func toForecast(ex *forecastv1.ExplainResponse) *Forecast {
	fe := ex.GetForecast()
	f := &Forecast{
		ForecastID: fe.GetForecastId(), AsOf: fe.GetAsOf().AsTime().UTC().Format(time.RFC3339),
		Model: fe.GetModel(), ModelVersion: fe.GetModelVersion(), DemandClass: fe.GetDemandClass(),
		QuantileLevels: fe.GetQuantileLevels(), Daily: []ForecastDay{}, Components: []Component{},
		ReasonCode:   strings.TrimPrefix(fe.GetReason().GetCode().String(), "REASON_CODE_"),
		ReasonDetail: fe.GetReason().GetDetail(), ReasonChange: fe.GetReason().GetChange(),
	}
	if f.QuantileLevels == nil {
		f.QuantileLevels = []float64{}
	}
	for _, d := range fe.GetDaily() {
		q := d.GetQuantiles()
		if q == nil {
			q = []float64{}
		}
		f.Daily = append(f.Daily, ForecastDay{Day: d.GetDay(), Mean: d.GetMean(), Quantiles: q})
	}
	for _, c := range ex.GetComponents() {
		f.Components = append(f.Components, Component{Name: c.GetName(), Value: zeroNaN(c.GetValue()), Detail: c.GetDetail()})
	}
	f.Factors = toAttributions(fe.GetReason().GetFactors(), 0)
	f.PreviousModelVersion = fe.GetReason().GetPreviousModelVersion()
	if g := fe.GetGlobal(); g != nil {
		f.Global = &GlobalPart{Version: g.GetVersion(), Weight: g.GetWeight(), Link: g.GetLink(), Bias: zeroNaN(g.GetBias()),
			Attributions: toAttributions(g.GetAttributions(), maxAttributions)}
	}
	return f
}

func toProposalRow(p *replenishmentv1.Proposal) *ProposalRow {
	pol := p.GetPolicy()
	return &ProposalRow{
		ID: p.GetProposalId(), SeriesKey: p.GetSeriesKey(), SKU: p.GetSku(), Location: p.GetLocation(),
		DecidedAt: p.GetDecidedAt().AsTime().UTC().Format(time.DateTime), Reason: p.GetReason().String(),
		Status: p.GetStatus().String(), Quantity: p.GetQuantity(), Unconstrained: p.GetUnconstrainedQuantity(),
		ReorderPoint: p.GetReorderPoint(), OrderUpTo: p.GetOrderUpTo(), InventoryPosition: p.GetInventoryPosition(),
		OnHand: p.GetOnHand(), OnOrder: p.GetOnOrder(), SafetyStock: p.GetSafetyStock(),
		StockoutDay: p.GetProjectedStockoutDay(), ArrivalDay: p.GetExpectedArrivalDay(),
		MOQ: pol.GetMoq(), PackSize: pol.GetPackSize(), MaxOrder: pol.GetMaxOrder(),
		ApprovedQuantity: p.GetApprovedQuantity(), DecidedBy: p.GetDecidedBy(), StatusNote: p.GetStatusNote(),
	}
}

func proposalQuery(r *http.Request) (ProposalQuery, error) {
	v := r.URL.Query()
	q := ProposalQuery{SKU: v.Get("sku"), Location: v.Get("location"), Sort: v.Get("sort"), Desc: v.Get("order") != "asc", Limit: 50}
	if st := v.Get("status"); st != "" {
		if !strings.HasPrefix(st, "PROPOSAL_STATUS_") {
			st = "PROPOSAL_STATUS_" + strings.ToUpper(st)
		}
		if _, ok := replenishmentv1.ProposalStatus_value[st]; !ok {
			return q, fmt.Errorf("unknown status %q", v.Get("status"))
		}
		q.Status = st
	}
	if _, ok := sortColumns[q.Sort]; q.Sort != "" && !ok {
		return q, fmt.Errorf("cannot sort by %q", q.Sort)
	}
	if s := v.Get("page_size"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > maxPageSize {
			return q, fmt.Errorf("page_size must be 1..%d", maxPageSize)
		}
		q.Limit = n
	}
	if s := v.Get("page"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			return q, errors.New("page must be >= 1")
		}
		q.Offset = (n - 1) * q.Limit
	}
	return q, nil
}

func (h *Handler) listProposals(w http.ResponseWriter, r *http.Request) {
	q, err := proposalQuery(r)
	if err != nil {
		jsonError(w, http.StatusBadRequest, err.Error())
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), h.d.CallTimeout)
	defer cancel()
	rows, total, err := h.d.Store.ListProposals(ctx, q)
	if err != nil {
		h.fail(w, err)
		return
	}
	writeJSON(w, map[string]any{"proposals": rows, "total": total, "page": q.Offset/q.Limit + 1, "page_size": q.Limit})
}

var csvHeader = []string{"proposal_id", "series_key", "sku", "location", "decided_at", "reason", "status", "quantity",
	"unconstrained_quantity", "reorder_point", "order_up_to", "inventory_position", "on_hand", "on_order",
	"safety_stock", "projected_stockout_day", "expected_arrival_day", "moq", "pack_size", "max_order", "approved_quantity", "decided_by"}

func (h *Handler) exportProposals(w http.ResponseWriter, r *http.Request) {
	q, err := proposalQuery(r)
	if err != nil {
		jsonError(w, http.StatusBadRequest, err.Error())
		return
	}
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", `attachment; filename="proposals.csv"`)
	cw := csv.NewWriter(w)
	_ = cw.Write(csvHeader)
	f := func(x float64) string { return strconv.FormatFloat(x, 'f', -1, 64) }
	err = h.d.Store.EachProposal(r.Context(), q, func(p ProposalRow) error {
		return cw.Write([]string{p.ID, p.SeriesKey, p.SKU, p.Location, p.DecidedAt, p.Reason, p.Status, f(p.Quantity),
			f(p.Unconstrained), f(p.ReorderPoint), f(p.OrderUpTo), f(p.InventoryPosition), f(p.OnHand), f(p.OnOrder),
			f(p.SafetyStock), p.StockoutDay, p.ArrivalDay, f(p.MOQ), f(p.PackSize), f(p.MaxOrder), f(p.ApprovedQuantity), p.DecidedBy})
	})
	cw.Flush()
	if err != nil {
		// The header is gone: end the body with a line that cannot be data.
		h.d.Log.Warn("export proposals", "err", err)
		fmt.Fprintf(w, "# export failed: %v\n", err)
	}
}

func (h *Handler) setPolicy(w http.ResponseWriter, r *http.Request) {
	var p struct {
		SKU      string `json:"sku"`
		Location string `json:"location"`
		Policy
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4096)).Decode(&p); err != nil {
		jsonError(w, http.StatusBadRequest, "want a JSON policy")
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), h.d.CallTimeout)
	defer cancel()
	_, err := h.d.Replenishment.SetPolicy(ctx, &replenishmentv1.SetPolicyRequest{Policy: &replenishmentv1.Policy{
		Sku: p.SKU, Location: p.Location, ServiceLevel: p.ServiceLevel, LeadTimeDays: p.LeadTimeDays,
		ReviewPeriodDays: p.ReviewPeriodDays, Moq: p.MOQ, PackSize: p.PackSize, MaxOrder: p.MaxOrder,
		OrderCoverDays: p.OrderCoverDays,
	}})
	if err != nil {
		h.fail(w, err)
		return
	}
	h.d.Log.Info("policy set", "user", session(r).User, "series", topics.SeriesKey(p.SKU, p.Location))
	writeJSON(w, map[string]string{"status": "ok"})
}

// reviewRequest is the body of approve and reject.
type reviewRequest struct {
	// Quantity adjusts the approved units; absent = as proposed.
	Quantity *float64 `json:"quantity"`
	Note     string   `json:"note"`
}

func (h *Handler) review(w http.ResponseWriter, r *http.Request, approve bool) {
	var req reviewRequest
	if r.ContentLength != 0 {
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4096)).Decode(&req); err != nil {
			jsonError(w, http.StatusBadRequest, "want JSON {quantity?, note?}")
			return
		}
	}
	id := r.PathValue("id")
	user := session(r).User
	ctx, cancel := context.WithTimeout(r.Context(), h.d.CallTimeout)
	defer cancel()
	ctx = metadata.AppendToOutgoingContext(ctx, "stockcast-user", user)
	var p *replenishmentv1.Proposal
	var err error
	if approve {
		var resp *replenishmentv1.ApproveResponse
		resp, err = h.d.Replenishment.Approve(ctx, &replenishmentv1.ApproveRequest{ProposalId: id, Quantity: req.Quantity, DecidedBy: user, Note: req.Note})
		p = resp.GetProposal()
	} else {
		var resp *replenishmentv1.RejectResponse
		resp, err = h.d.Replenishment.Reject(ctx, &replenishmentv1.RejectRequest{ProposalId: id, DecidedBy: user, Note: req.Note})
		p = resp.GetProposal()
	}
	if err != nil {
		h.fail(w, err)
		return
	}
	h.d.Log.Info("proposal reviewed", "user", user, "proposal", id, "status", p.GetStatus().String(), "approved_quantity", p.GetApprovedQuantity())
	writeJSON(w, toProposalRow(p))
}

func (h *Handler) approve(w http.ResponseWriter, r *http.Request) { h.review(w, r, true) }
func (h *Handler) reject(w http.ResponseWriter, r *http.Request)  { h.review(w, r, false) }

// fail maps an upstream error to a status: the caller's mistakes keep
// theirs, everything else is a bad gateway.
func (h *Handler) fail(w http.ResponseWriter, err error) {
	code := http.StatusBadGateway
	switch status.Code(err) {
	case codes.InvalidArgument:
		code = http.StatusBadRequest
	case codes.NotFound:
		code = http.StatusNotFound
	case codes.FailedPrecondition:
		code = http.StatusConflict
	case codes.DeadlineExceeded:
		code = http.StatusGatewayTimeout
	}
	if code == http.StatusBadGateway {
		h.d.Log.Warn("upstream call", "err", err)
	}
	jsonError(w, code, err.Error())
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(v)
}

func jsonError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": msg})
}

// app serves the built single-page app: hashed assets cached for a year,
// every other path gets index.html (client-side routes).
func (h *Handler) app() http.Handler {
	files := http.FileServerFS(h.d.Assets)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		p := strings.TrimPrefix(r.URL.Path, "/")
		if strings.HasPrefix(p, "assets/") {
			if _, err := fs.Stat(h.d.Assets, p); err == nil {
				w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
				files.ServeHTTP(w, r)
				return
			}
			http.NotFound(w, r)
			return
		}
		index, err := fs.ReadFile(h.d.Assets, "index.html")
		if err != nil {
			http.Error(w, "console assets missing: run make console-assets", http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-cache")
		_, _ = w.Write(index)
	})
}
